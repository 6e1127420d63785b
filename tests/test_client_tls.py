"""`webchat-client --tls`: the real client process against a real server's TLS port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.chat import RunningChat
from tests.support.client_process import ClientProcess
from tests.support.clients import TcpClient
from tests.support.tls import Issued, Pki
from webchat import client as client_module
from webchat.client import EXIT_LOST, EXIT_QUIT, EXIT_USAGE, main


def tls_client(args: list[str], ca_file: Path | None = None) -> ClientProcess:
    """The client, trusting ``ca_file`` as the system's certificates (for this process)."""
    env: dict[str, str | None] = {"SSL_CERT_DIR": None}
    if ca_file is not None:
        env["SSL_CERT_FILE"] = str(ca_file)
    return ClientProcess(args, env)


@pytest.fixture
def run_client() -> Iterator[Callable[..., ClientProcess]]:
    started: list[ClientProcess] = []

    def start(args: list[str], ca_file: Path | None = None) -> ClientProcess:
        client = tls_client(args, ca_file)
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def tls_chat(make_chat: Callable[..., RunningChat], cert: Issued) -> tuple[RunningChat, int]:
    chat = make_chat(tls_cert=str(cert.cert_file), tls_key=str(cert.key_file), tls_port=0)
    port = chat.runtime.tls_port
    assert port is not None
    return chat, port


def test_tls_checks_the_certificate_and_chats(
    make_chat: Callable[..., RunningChat], pki: Pki, run_client
) -> None:
    chat, port = tls_chat(make_chat, pki.issue("server"))
    client = run_client(["--tls", "localhost", str(port)], ca_file=pki.ca_file)
    client.join("alice")
    bob = TcpClient(chat.tcp_port)
    bob.join("bob")
    client.out.expect("*** bob joined")
    client.type("hello from the terminal, encrypted")
    assert bob.expect("alice:") == "alice: hello from the terminal, encrypted"
    bob.line("hi alice")
    client.out.expect("bob: hi alice")
    client.type("/quit")
    assert client.wait() == EXIT_QUIT
    # The server's goodbye, then the end: nothing after it (no ciphertext read as text).
    assert client.out.read_to_end().endswith("*** bye\n")
    assert client.err.read_to_end() == ""


def test_a_self_signed_certificate_is_refused_with_a_clear_reason(
    make_chat: Callable[..., RunningChat], pki: Pki, run_client
) -> None:
    _, port = tls_chat(make_chat, pki.issue("selfie", self_signed=True))
    client = run_client(["--tls", "127.0.0.1", str(port)], ca_file=pki.ca_file)
    assert client.wait() == EXIT_USAGE
    err = client.err.read_to_end()
    assert err == (
        f"webchat-client: cannot connect to 127.0.0.1:{port}: certificate verify failed: "
        "self-signed certificate (--insecure skips the check, e.g. for a self-signed "
        "certificate)\n"
    )
    assert client.out.read_to_end() == ""


def test_insecure_takes_a_self_signed_certificate(
    make_chat: Callable[..., RunningChat], pki: Pki, run_client
) -> None:
    _, port = tls_chat(make_chat, pki.issue("selfie", self_signed=True))
    client = run_client(["--tls", "--insecure", "127.0.0.1", str(port)])
    client.join("alice")
    client.type("/quit")
    assert client.wait() == EXIT_QUIT


def test_the_host_name_is_checked(
    make_chat: Callable[..., RunningChat], pki: Pki, run_client
) -> None:
    _, port = tls_chat(make_chat, pki.issue("elsewhere", hosts=("chat.example.org",)))
    client = run_client(["--tls", "127.0.0.1", str(port)], ca_file=pki.ca_file)
    assert client.wait() == EXIT_USAGE
    err = client.err.read_to_end()
    assert "certificate verify failed: IP address mismatch" in err
    assert "Traceback" not in err


def test_tls_to_the_plain_port_says_which_port_it_wanted(
    make_chat: Callable[..., RunningChat], pki: Pki, run_client
) -> None:
    chat, _ = tls_chat(make_chat, pki.issue("server"))
    client = run_client(["--tls", "localhost", str(chat.tcp_port)], ca_file=pki.ca_file)
    assert client.wait() == EXIT_USAGE
    err = client.err.read_to_end()
    assert f"wrong version number (is {chat.tcp_port} the server's TLS port?)" in err
    assert "Traceback" not in err


def test_the_server_going_away_exits_1_after_its_last_words(
    make_chat: Callable[..., RunningChat], pki: Pki, run_client
) -> None:
    chat, port = tls_chat(make_chat, pki.issue("server"))
    client = run_client(["--tls", "localhost", str(port)], ca_file=pki.ca_file)
    client.join("alice")
    chat.runtime.close()
    assert client.wait() == EXIT_LOST
    assert client.out.read_to_end().endswith("*** disconnected: server shutting down\n")
    assert "the server closed the connection" in client.err.read_to_end()


def test_tls_defaults_to_port_6697_and_insecure_needs_tls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, int, bool]] = []

    def fake_connect(host: str, port: int, timeout: float = 0, tls: object = None) -> None:
        seen.append((host, port, tls is not None))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(client_module, "connect", fake_connect)
    assert main(["--tls", "chat.example.org"]) == EXIT_USAGE
    assert main(["chat.example.org"]) == EXIT_USAGE
    assert main(["--tls", "chat.example.org", "7000"]) == EXIT_USAGE
    assert seen == [
        ("chat.example.org", 6697, True),
        ("chat.example.org", 8080, False),
        ("chat.example.org", 7000, True),
    ]
    assert main(["--insecure", "chat.example.org"]) == EXIT_USAGE
    assert "--insecure goes with --tls" in capsys.readouterr().err
    assert len(seen) == 3
