"""TLS on both ports: the TCP chat on tls_port, HTTPS and WSS on the web port, and reloads.

Real sockets on port 0, a real ssl client, throwaway certificates from a test CA
(tests/support/tls.py). Nothing here sleeps and hopes: every wait is on a condition.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.chat import RunningChat
from tests.support.clients import (
    DEFAULT_TIMEOUT,
    RawWsClient,
    TcpClient,
    assert_no_tracebacks,
    read_http_head,
    wait_until,
    websocket_upgrade_headers,
)
from tests.support.processes import ServerProcess
from tests.support.tls import Issued, Pki, peer_certificate, tls_tcp_client
from webchat import ChatRuntime
from webchat.cli import banner
from webchat.settings import Settings
from webchat.transports.tcp import TcpTransport
from webchat.transports.tls import TlsContext, TlsStream

PROMPT = b"Enter your nickname: "
WEBCHAT = str(Path(sys.executable).parent / "webchat")


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="webchat.transports.tls")
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def server_cert(pki: Pki) -> Issued:
    return pki.issue("server")


@dataclass
class TlsChat:
    runtime: ChatRuntime
    web_port: int

    @property
    def url(self) -> str:
        return f"https://localhost:{self.web_port}"

    @property
    def tls_port(self) -> int:
        port = self.runtime.tls_port
        assert port is not None
        return port

    @property
    def tcp_port(self) -> int:
        port = self.runtime.tcp_port
        assert port is not None
        return port


@pytest.fixture
def make_tls_chat(
    make_chat: Callable[..., RunningChat], server_cert: Issued
) -> Callable[..., TlsChat]:
    """A chat with a certificate on port 0, its web port served as `webchat` serves it."""

    def make(**overrides: Any) -> TlsChat:
        cert, key = str(server_cert.cert_file), str(server_cert.key_file)
        chat = make_chat(tls_cert=cert, tls_key=key, tls_port=0, **overrides)
        return TlsChat(chat.runtime, chat.web.server_port)

    return make


@pytest.fixture
def tls_chat(make_tls_chat: Callable[..., TlsChat]) -> TlsChat:
    return make_tls_chat()


def tls_records(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "webchat.transports.tls" and text in r.getMessage()
    ]


def still_open(sock: socket.socket) -> bool:
    """True while the server has neither closed nor written to this silent connection."""
    try:
        sock.recv(1, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def wait_closed(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait for the server to close a connection we never wrote a whole handshake on."""
    sock.settimeout(timeout)
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(4096) == b""


# The TCP chat over TLS.


def test_a_tls_terminal_user_and_a_plain_one_chat(tls_chat: TlsChat, pki: Pki) -> None:
    alice = tls_tcp_client(tls_chat.tls_port, pki.client_context())
    assert isinstance(alice.sock, ssl.SSLSocket)
    assert alice.sock.version() in {"TLSv1.2", "TLSv1.3"}
    alice.read_exact(PROMPT)
    alice.line("alice")
    alice.expect("Welcome, alice!")
    bob = TcpClient(tls_chat.tcp_port)
    bob.join("bob")
    alice.expect("bob joined")
    alice.line("hello over TLS ✓")
    assert bob.expect("alice:") == "alice: hello over TLS ✓"
    bob.line("hi, in the clear")
    assert alice.expect("bob:") == "bob: hi, in the clear"
    alice.line("/quit")
    alice.expect("bye")
    with pytest.raises(EOFError):  # then the end of the stream, and not a byte of garbage
        alice.read_line()
    assert bob.expect("alice left")


def test_tls_sessions_get_direct_sends_too(tls_chat: TlsChat, pki: Pki) -> None:
    """The hub writes to a TLS session without waiting, as to a plain one (TlsStream)."""
    alice = tls_tcp_client(tls_chat.tls_port, pki.client_context())
    alice.join("alice")
    (session,) = [s for s in tls_chat.runtime.hub.roster.everyone() if s.nick == "alice"]
    assert isinstance(session.transport, TcpTransport)
    stream = session.transport.sock
    assert isinstance(stream, TlsStream)
    assert session.transport.direct is True
    # The prompt must not wait behind TLS 1.3's session tickets for a delayed ACK.
    assert stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def tls_pair(tls: TlsContext, pki: Pki, buffer: int) -> tuple[TlsStream, TlsStream]:
    """A server and a client TlsStream on two ends of a real TCP connection, both with
    small socket buffers, so that a peer that does not read soon stalls. (Not an
    ssl.SSLSocket for the client: read in one thread while written in another, one
    crashed this test's interpreter, a segmentation fault in about one run in ten.)"""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        raw_client = socket.socket()
        raw_client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        raw_client.connect(listener.getsockname())
        raw_server, _ = listener.accept()
    raw_server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
    stream = tls.wrap(raw_server)
    client = TlsStream(raw_client, pki.client_context(), False, "localhost")
    client.settimeout(DEFAULT_TIMEOUT)
    shaking = threading.Thread(target=client.do_handshake, args=(DEFAULT_TIMEOUT,))
    shaking.start()
    stream.do_handshake(DEFAULT_TIMEOUT)
    shaking.join()
    return stream, client


def test_a_send_that_does_not_wait_keeps_what_a_stalled_peer_did_not_take(
    pki: Pki, server_cert: Issued
) -> None:
    stream, client = tls_pair(
        TlsContext(str(server_cert.cert_file), str(server_cert.key_file)), pki, 4096
    )
    offered: list[bytes] = []
    for i in range(10_000):  # until the socket refuses: the peer is not reading
        data = f"{i:08d}".encode() * 512
        offered.append(data)
        taken = stream.send_nowait(data)
        if taken == 0:
            break
        assert taken == len(data)
    else:
        pytest.fail("the socket never filled up")
    # Owed ciphertext goes first: nothing new is taken until it is out.
    assert stream.send_nowait(b"not now") == 0
    received = bytearray()

    def read_all() -> None:
        while not received.endswith(b"END"):
            chunk = client.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    stream.send_rest(offered[-1])  # what the writer thread does with the plaintext left
    stream.sendall(b"END")
    reader.join(DEFAULT_TIMEOUT)
    # Every offered byte exactly once, in order: the last chunk was encrypted once only.
    assert bytes(received) == b"".join(offered) + b"END"
    stream.shutdown(socket.SHUT_WR)  # close_notify, then the FIN
    assert client.recv(10) == b""
    client.close()
    stream.close()


def test_reading_and_writing_at_once_from_two_threads(pki: Pki, server_cert: Issued) -> None:
    stream, client = tls_pair(
        TlsContext(str(server_cert.cert_file), str(server_cert.key_file)), pki, 65536
    )
    lines = [f"line {i} ".encode() * 20 + b"\n" for i in range(2000)]
    echoed = bytearray()
    got = bytearray()

    def server_reads() -> None:  # the connection's reader, while its writer writes
        while len(got) < sum(map(len, lines)):
            chunk = stream.recv(4096)
            if not chunk:
                return
            got.extend(chunk)

    def client_reads() -> None:
        while len(echoed) < sum(map(len, lines)):
            chunk = client.recv(65536)
            if not chunk:
                return
            echoed.extend(chunk)

    threads = [threading.Thread(target=server_reads), threading.Thread(target=client_reads)]
    for thread in threads:
        thread.start()
    for line in lines:
        client.sendall(line)
        if stream.send_nowait(line) == 0:
            stream.send_rest(line)
    for thread in threads:
        thread.join(DEFAULT_TIMEOUT)
    assert bytes(got) == b"".join(lines)
    assert bytes(echoed) == b"".join(lines)
    client.close()
    stream.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # asking for TLS 1.1 on purpose
def test_tls_1_1_is_refused_and_1_2_is_accepted(
    tls_chat: TlsChat, caplog: pytest.LogCaptureFixture
) -> None:
    def attempt(version: ssl.TLSVersion) -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that only the server can say no
        with (
            socket.create_connection(("127.0.0.1", tls_chat.tls_port), DEFAULT_TIMEOUT) as raw,
            context.wrap_socket(raw) as sock,
        ):
            assert sock.recv(len(PROMPT)) == PROMPT
            return str(sock.version())

    with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL"):
        attempt(ssl.TLSVersion.TLSv1_1)
    wait_until(lambda: tls_records(caplog, "unsupported protocol"), what="the refusal logged")
    assert attempt(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


def test_a_silent_client_blocks_nobody_and_is_closed_after_the_deadline(
    make_tls_chat: Callable[..., TlsChat], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    deadline = 2.0
    chat = make_tls_chat(tls_handshake_timeout=deadline)
    opened = time.monotonic()
    silent = [socket.create_connection(("127.0.0.1", chat.tls_port)) for _ in range(5)]
    drip = socket.create_connection(("127.0.0.1", chat.tls_port))
    drip.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, and then nothing
    # A real client is served while all six are still being waited for: their
    # handshakes do not happen in accept(), which would have to wait them out first.
    alice = tls_tcp_client(chat.tls_port, pki.client_context())
    alice.read_exact(PROMPT)
    assert all(still_open(s) for s in [*silent, drip])
    alice.line("alice")
    alice.expect("Welcome, alice!")
    # Then each silent one is closed, at its deadline and not before.
    for sock in [*silent, drip]:
        wait_closed(sock)
        sock.close()
    assert time.monotonic() - opened >= deadline
    wait_until(
        lambda: len(tls_records(caplog, f"not finished within {deadline:g} s")) == 6,
        what="six handshake timeouts logged",
    )
    alice.line("still here")  # and the one who came in is untouched
    alice.line("/quit")
    alice.expect("bye")


def test_plain_text_on_the_tls_port_is_closed_and_logged_without_a_traceback(
    tls_chat: TlsChat, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.create_connection(("127.0.0.1", tls_chat.tls_port), DEFAULT_TIMEOUT) as sock:
        sock.sendall(b"alice\r\n")
        wait_closed(sock)
    (line,) = wait_until(lambda: tls_records(caplog, "failed"), what="the failure logged")
    assert line.startswith("TLS handshake from 127.0.0.1 failed: ")
    records = [r for r in caplog.records if r.name == "webchat.transports.tls"]
    assert all(r.levelno <= logging.INFO and r.exc_info is None for r in records)


def test_the_per_address_limit_counts_connections_in_their_handshake(
    make_tls_chat: Callable[..., TlsChat], pki: Pki
) -> None:
    chat = make_tls_chat(max_connections_per_ip=2)
    silent = [socket.create_connection(("127.0.0.1", chat.tls_port)) for _ in range(2)]
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 2, what="two slots taken")
    with pytest.raises((ssl.SSLError, OSError)):  # closed: it cannot be told why before a handshake
        tls_tcp_client(chat.tls_port, pki.client_context()).read_exact(PROMPT)
    for sock in silent:
        sock.close()
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 0, what="the slots given back")
    alice = tls_tcp_client(chat.tls_port, pki.client_context())
    alice.join("alice")


# HTTPS and WSS on the web port.


def https_get(url: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=DEFAULT_TIMEOUT, context=context) as reply:
        return reply.status, reply.read()


def test_the_page_is_served_over_https(tls_chat: TlsChat, pki: Pki) -> None:
    status, body = https_get(tls_chat.url + "/", pki.client_context())
    assert status == 200
    assert b"<html" in body.lower()
    status, body = https_get(tls_chat.url + "/healthz", pki.client_context())
    assert status == 200


def test_plain_http_on_the_https_port_gets_nothing(
    tls_chat: TlsChat, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.create_connection(("127.0.0.1", tls_chat.web_port), DEFAULT_TIMEOUT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        wait_closed(sock)
    wait_until(lambda: tls_records(caplog, "failed: http request"), what="the failure logged")


def test_a_wss_user_and_a_tls_terminal_user_chat(tls_chat: TlsChat, pki: Pki) -> None:
    # The page's own origin is https://; the Host is localhost, as the certificate says.
    ws = RawWsClient(tls_chat.web_port, headers={"Origin": tls_chat.url}, tls=pki.client_context())
    assert ws.status == 101
    ws.join("carol")
    alice = tls_tcp_client(tls_chat.tls_port, pki.client_context())
    alice.join("alice")
    ws.expect(lambda e: e.get("type") == "join" and e.get("nick") == "alice")
    alice.line("hello, browser")
    assert ws.expect("message")["text"] == "hello, browser"
    ws.send({"type": "say", "text": "hello, terminal"})
    assert alice.expect("carol:") == "carol: hello, terminal"
    ws.send_frame(struct.pack("!H", 1000), opcode=0x8)  # close
    ws.read_until_closed()
    assert ws.close_code == 1000
    alice.expect("carol left")


def wss_handshake_status(chat: TlsChat, context: ssl.SSLContext, origin: str) -> int:
    raw = socket.create_connection(("127.0.0.1", chat.web_port), DEFAULT_TIMEOUT)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        lines = ["GET /ws HTTP/1.1", f"Host: localhost:{chat.web_port}"]
        headers = websocket_upgrade_headers({"Origin": origin})
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return read_http_head(sock).status


def test_the_origin_rule_takes_the_https_origin_and_no_other(tls_chat: TlsChat, pki: Pki) -> None:
    context = pki.client_context()
    assert wss_handshake_status(tls_chat, context, tls_chat.url) == 101
    assert wss_handshake_status(tls_chat, context, f"http://localhost:{tls_chat.web_port}") == 403
    assert wss_handshake_status(tls_chat, context, "https://evil.example") == 403


def test_a_silent_client_on_the_web_port_blocks_nobody(
    make_tls_chat: Callable[..., TlsChat], pki: Pki
) -> None:
    chat = make_tls_chat(tls_handshake_timeout=5.0)
    silent = [socket.create_connection(("127.0.0.1", chat.web_port)) for _ in range(5)]
    status, _ = https_get(chat.url + "/healthz", pki.client_context())
    assert status == 200
    ws = RawWsClient(chat.web_port, headers={"Origin": chat.url}, tls=pki.client_context())
    ws.join("carol")
    assert all(still_open(s) for s in silent)
    for sock in silent:
        sock.close()
    ws.close()


# The certificate: loading, refusing bad files, reloading.


def test_a_reload_serves_new_connections_the_new_certificate_and_keeps_the_old_ones(
    tls_chat: TlsChat, pki: Pki, server_cert: Issued, caplog: pytest.LogCaptureFixture
) -> None:
    context = pki.client_context()
    alice = tls_tcp_client(tls_chat.tls_port, context)
    alice.join("alice")
    assert alice.sock.getpeercert(binary_form=True) == server_cert.der  # type: ignore[attr-defined]
    renewed = pki.issue("renewed")
    renewed.write_to(server_cert.cert_file, server_cert.key_file)
    tls = tls_chat.runtime.tls
    assert tls is not None
    assert tls.reload()
    assert peer_certificate(tls_chat.tls_port, context) == renewed.der
    assert peer_certificate(tls_chat.web_port, context) == renewed.der
    bob = tls_tcp_client(tls_chat.tls_port, context)
    bob.join("bob")
    alice.line("after the reload")
    assert bob.expect("alice:") == "alice: after the reload"
    assert tls_records(caplog, "TLS certificate reloaded from")


def test_a_bad_file_at_reload_keeps_the_old_certificate(
    tls_chat: TlsChat, pki: Pki, server_cert: Issued, caplog: pytest.LogCaptureFixture
) -> None:
    context = pki.client_context()
    other = pki.issue("other")
    tls = tls_chat.runtime.tls
    assert tls is not None
    cases = [
        (b"not a certificate\n", server_cert.key_file.read_bytes(), "not a PEM certificate"),
        (other.cert_file.read_bytes(), server_cert.key_file.read_bytes(), "does not belong"),
    ]
    for cert_bytes, key_bytes, why in cases:
        server_cert.cert_file.write_bytes(cert_bytes)
        server_cert.key_file.write_bytes(key_bytes)
        assert not tls.reload()
        assert peer_certificate(tls_chat.tls_port, context) == server_cert.der
        (line,) = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.ERROR and why in r.getMessage()
        ]
        assert "NOT reloaded, the old one stays in use" in line
    caplog.clear()  # the errors above were the point


def test_unusable_files_stop_the_start_with_a_clear_reason(tmp_path: Path, pki: Pki) -> None:
    good = pki.issue("good")
    other = pki.issue("other")
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(good.key_file.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = [
        (str(tmp_path / "missing.pem"), str(good.key_file), "No such file"),
        (str(good.cert_file), str(other.key_file), "the key does not belong to the certificate"),
        (str(good.cert_file), str(encrypted), "the key is encrypted"),
        (str(good.cert_file), "", "not a PEM certificate and key"),  # no key in the file
    ]
    for cert, key_file, why in cases:
        with pytest.raises(ValueError, match=why) as info:
            TlsContext(cert, key_file)
        assert str(info.value).startswith(f"cannot load the TLS certificate: {cert}")
    with pytest.raises(ValueError, match="needs --tls-cert"):
        TlsContext.from_settings(Settings(tls_key=str(good.key_file)))
    assert TlsContext.from_settings(Settings()) is None
    both = tmp_path / "both.pem"
    both.write_bytes(good.cert_file.read_bytes() + good.key_file.read_bytes())
    assert TlsContext(str(both)).fingerprint.count(":") == 31  # key in the certificate file


def test_the_banner_names_https_and_the_tls_port() -> None:
    text = banner(Settings(tls_cert="cert.pem"), 5000, 8080, 6697)
    assert "Browser:  https://localhost:5000/" in text
    assert "openssl s_client -quiet -connect localhost:6697" in text
    assert "webchat-client --tls localhost 6697" in text
    assert "TLS" not in banner(Settings(), 5000, 8080)


# The `webchat` command.


def test_webchat_with_a_bad_certificate_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [WEBCHAT, "--web-port", "0", "--tcp-port", "0", "--tls-cert", str(tmp_path / "no.pem")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WEBCHAT_HISTORY_DB": ":memory:"},
    )
    assert result.returncode == 2
    assert "webchat: cannot load the TLS certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_sighup_reloads_the_certificate_without_dropping_anyone(
    pki: Pki, server_cert: Issued
) -> None:
    server = ServerProcess(
        [
            *(WEBCHAT, "--web-port", "0", "--tcp-port", "0", "--tls-port", "0"),
            *("--tls-cert", str(server_cert.cert_file), "--tls-key", str(server_cert.key_file)),
        ]
    )
    try:
        web_port = int(server.wait_for(r"Browser:\s+https://localhost:(\d+)/").group(1))
        tcp_port = int(server.wait_for(r"Terminal: nc localhost (\d+)").group(1))
        tls_port = int(server.wait_for(r"TLS:\s+openssl s_client .*localhost:(\d+)").group(1))
        context = pki.client_context()
        alice = tls_tcp_client(tls_port, context)
        alice.join("alice")
        assert alice.sock.getpeercert(binary_form=True) == server_cert.der  # type: ignore[attr-defined]
        bob = TcpClient(tcp_port)
        bob.join("bob")

        renewed = pki.issue("renewed")
        renewed.write_to(server_cert.cert_file, server_cert.key_file)
        os.killpg(server.proc.pid, signal.SIGHUP)
        server.wait_for(r"INFO .*TLS certificate reloaded from")
        assert peer_certificate(tls_port, context) == renewed.der
        assert peer_certificate(web_port, context) == renewed.der
        alice.line("still here")
        assert bob.expect("alice:") == "alice: still here"
        bob.line("so am I")
        assert alice.expect("bob:") == "bob: so am I"

        server_cert.cert_file.write_text("garbage\n")  # a botched renewal
        os.killpg(server.proc.pid, signal.SIGHUP)
        server.wait_for(r"ERROR .*TLS certificate NOT reloaded")
        assert peer_certificate(tls_port, context) == renewed.der
        alice.line("and still")
        assert bob.expect("alice:") == "alice: and still"
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.output()


def test_a_goodbye_over_tls_ends_with_close_notify(tls_chat: TlsChat, pki: Pki) -> None:
    """The goodbye goes out as a direct send; the stream still ends cleanly (close_notify),
    so the client reads a clean end, not an abrupt one (ssl.SSLEOFError)."""
    client = TcpClient(tls_chat.tls_port)
    client.sock = pki.client_context().wrap_socket(
        client.sock, server_hostname="localhost", suppress_ragged_eofs=False
    )
    client.join("leaving")
    client.line("/quit see you")
    ended = client.read_until_closed()  # raises on an end without close_notify
    assert ended.endswith(b"*** bye (see you)\r\n")
    client.close()
