"""TLS for both ports: one server context, a handshake in the connection's own thread, reloads.

The listening sockets stay plain, and the accepting thread does no TLS work at all:
:class:`TlsAccept` (a mixin for any ``socketserver`` server) wraps each connection
in the connection's own thread and does its handshake there, under a deadline
(:func:`handshake`). A client that opens the port and says nothing holds its own
thread until the deadline, and blocks nobody. (Werkzeug's ``ssl_context`` would wrap
the listening socket instead, so that every handshake ran inside ``accept()`` on the
one accepting thread.)

This module uses only the standard library: the terminal client imports it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import socket
import socketserver
import ssl
import threading
from types import FrameType
from typing import Any

from webchat.settings import Settings

log = logging.getLogger(__name__)


class TlsSocket(ssl.SSLSocket):
    """An SSLSocket whose ``shutdown()`` leaves TLS on.

    ``ssl.SSLSocket.shutdown`` first forgets the TLS session, so that another thread
    still reading the socket (the reader after the writer said goodbye, the terminal
    client's listener after it sent /quit) would read the peer's encrypted records as
    if they were plain text. Here a shutdown is the TCP shutdown alone: the FIN goes
    out, and whatever still arrives is decrypted as before. (No close_notify is sent;
    a peer sees the end of the stream, as with plain TCP.)
    """

    def shutdown(self, how: int) -> None:
        socket.socket.shutdown(self, how)


def server_context() -> ssl.SSLContext:
    """A server context without a certificate: TLS 1.2 at least, Python's default ciphers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = TlsSocket
    return context


def client_context(verify: bool = True) -> ssl.SSLContext:
    """For clients: the system's trust store and host-name check, or no checks at all."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.sslsocket_class = TlsSocket
    return context


def describe_tls_error(exc: BaseException) -> str:
    """A short reason: 'certificate verify failed: self-signed certificate', no file names."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.strerror or type(exc).__name__
        return str(reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def fingerprint(cert_file: str) -> str:
    """SHA-256 of the first certificate in the file, as `openssl x509 -fingerprint -sha256`."""
    with open(cert_file, encoding="ascii", errors="replace") as f:
        text = f.read()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        return "unknown"
    der = ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)])
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


class TlsContext:
    """The server's one ``ssl.SSLContext``, its certificate files, and their reloading.

    A reload loads the files into a scratch context first: a bad file (unreadable, not
    PEM, a key of another certificate, an encrypted key) leaves everything as it was.
    Only then is the same context loaded again, under the lock that every wrap takes, so
    no connection is ever made from a context caught between the new certificate and
    the old key. Connections already open keep the certificate they were made with.
    """

    def __init__(self, cert_file: str, key_file: str = "", handshake_timeout: float = 10.0) -> None:
        if not cert_file:
            raise ValueError("TLS needs a certificate file (--tls-cert)")
        self.cert_file = cert_file
        self.key_file = key_file or None
        self.handshake_timeout = handshake_timeout
        self._lock = threading.Lock()
        self.context = server_context()
        try:
            self._load(self.context)
        except ValueError as exc:
            raise ValueError(f"cannot load the TLS certificate: {exc}") from None
        self.fingerprint = fingerprint(cert_file)
        log.info("TLS certificate %s (sha256 %s)", cert_file, self.fingerprint)

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsContext | None:
        """The context for ``--tls-cert``/``--tls-key``, or None when TLS is off."""
        if not settings.tls_cert:
            if settings.tls_key:
                raise ValueError("--tls-key (WEBCHAT_TLS_KEY) needs --tls-cert as well")
            return None
        if settings.tls_handshake_timeout <= 0:
            raise ValueError("--tls-handshake-timeout must be more than 0 seconds")
        return cls(settings.tls_cert, settings.tls_key, settings.tls_handshake_timeout)

    def _load(self, context: ssl.SSLContext) -> None:
        """load_cert_chain, with errors as one ValueError saying which file and why."""
        asked: list[bool] = []

        def no_passphrase() -> bytes:
            # Without a callback OpenSSL would prompt on the terminal, from a SIGHUP too.
            asked.append(True)
            return b""

        where = self.cert_file + (f" with key {self.key_file}" if self.key_file else "")
        try:
            context.load_cert_chain(self.cert_file, self.key_file, password=no_passphrase)
        except ssl.SSLError as exc:
            if asked:
                why = "the key is encrypted; webchat needs it without a passphrase"
            elif exc.reason == "KEY_VALUES_MISMATCH":
                why = "the key does not belong to the certificate"
            else:
                why = f"not a PEM certificate and key ({describe_tls_error(exc)})"
            raise ValueError(f"{where}: {why}") from None
        except OSError as exc:
            raise ValueError(f"{where}: {exc.strerror or exc}") from None

    def wrap(self, sock: socket.socket) -> TlsSocket:
        """Wrap an accepted socket for the server side; the handshake is left for later."""
        with self._lock:
            wrapped = self.context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        assert isinstance(wrapped, TlsSocket)
        return wrapped

    def reload(self) -> bool:
        """Read the files again; on any error keep the old certificate and log why."""
        try:
            checked = server_context()
            self._load(checked)
            with self._lock:
                try:
                    self._load(self.context)
                except ValueError:
                    # The files changed again since the check: the checked copy takes over.
                    self.context = checked
            self.fingerprint = fingerprint(self.cert_file)
        except (ValueError, OSError) as exc:
            log.error("TLS certificate NOT reloaded, the old one stays in use: %s", exc)
            return False
        log.info("TLS certificate reloaded from %s (sha256 %s)", self.cert_file, self.fingerprint)
        return True


def reload_on_sighup(tls: TlsContext) -> None:
    """From the main thread: SIGHUP reloads the certificate (in a thread of its own, so
    the handler never waits for the lock that the interrupted code may hold)."""

    def on_hup(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=tls.reload, name="tls-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)


def handshake(sock: ssl.SSLSocket, timeout: float, peer: str) -> bool:
    """Finish a server-side handshake within ``timeout`` seconds (one deadline for all of
    it, however slowly the bytes drip in); False, logged without a traceback, if not.

    A failed handshake is the client's business (a port scan, an old TLS version, plain
    text on the TLS port), so it is logged at INFO.
    """
    try:
        sock.settimeout(timeout)
        sock.do_handshake()
        sock.settimeout(None)
    except TimeoutError:
        log.info("TLS handshake from %s: not finished within %g s; closed", peer, timeout)
    except (ssl.SSLEOFError, ConnectionError) as exc:  # a port check, or a client that gave up
        log.debug("TLS handshake from %s: closed by the client (%s)", peer, exc)
    except OSError as exc:
        log.info("TLS handshake from %s failed: %s", peer, describe_tls_error(exc))
    else:
        return True
    return False


class TlsAccept(socketserver.BaseServer):
    """A mixin, first among a ``socketserver`` server's bases, that makes it speak TLS.

    ``finish_request`` runs in the connection's own thread (``ThreadingMixIn``): the
    socket is wrapped and its handshake done there, then the server's handler gets the
    TLS socket. Admission (``verify_request``, in the accept thread) still sees the
    plain socket; a refused client gets no words (``refusal``), since it could not read
    them before a handshake, and the accept thread must not do one.
    """

    tls: TlsContext

    def refusal(self, reason: str, text: str) -> bytes:
        return b""

    def finish_request(self, request: Any, client_address: Any) -> None:
        peer = str(client_address[0]) if client_address else "unknown"
        try:
            sock = self.tls.wrap(request)
        except (OSError, ValueError) as exc:  # e.g. the client already reset the connection
            log.info("TLS from %s: cannot start: %s", peer, exc)
            return
        try:
            if handshake(sock, self.tls.handshake_timeout, peer):
                super().finish_request(sock, client_address)
        finally:
            # The server's shutdown_request gets the plain socket, now detached: close here.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            sock.close()
