"""TLS for both ports: one server context, a handshake in the connection's own thread, reloads.

The listening sockets stay plain, and the accepting thread does no TLS work at all:
:class:`TlsAccept` (a mixin for any ``socketserver`` server) wraps each connection
in the connection's own thread and does its handshake there, under a deadline
(:func:`handshake`). A client that opens the port and says nothing holds its own
thread until the deadline, and blocks nobody. (Werkzeug's ``ssl_context`` would wrap
the listening socket instead, so that every handshake ran inside ``accept()`` on the
one accepting thread.)

A connection is a :class:`TlsStream`, not an ``ssl.SSLSocket``: see there why.

This module uses only the standard library: the terminal client imports it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import signal
import socket
import socketserver
import ssl
import threading
import time
from types import FrameType
from typing import Any, cast

from webchat.settings import Settings

log = logging.getLogger(__name__)


# Plaintext encrypted at a time: one TLS record's worth.
RECORD = 16384
# Bytes read from the socket at a time: about one whole record (16 KiB + 256 at most).
READ_SIZE = RECORD + 512


class TlsStream:
    """One TLS connection over a plain TCP socket: an ``ssl.SSLObject`` on memory buffers.

    It offers what webchat does with a socket (``recv``, ``recv_into``, ``send``,
    ``sendall``, ``makefile``, ``settimeout``, ``fileno``, ``shutdown``, ``close``), so the
    TCP chat, Werkzeug and the WebSocket code use it as they use a socket. It is not an
    ``ssl.SSLSocket`` because of what a chat connection does:

    - **Two threads at once.** A connection's reader waits in ``recv`` while its writer
      sends. OpenSSL allows one thread at a time in a connection; here the SSL object is
      used under a lock held only for the work in memory (encrypting, decrypting), never
      while waiting on the socket, so neither thread ever waits for the other's peer.
    - **Writes that do not wait.** The hub's direct send (``webchat/core/writer.py``)
      writes with ``MSG_DONTWAIT`` from the committer's thread; ``SSLSocket`` refuses
      flags. Here the plaintext is encrypted a record at a time and each record offered
      to the socket without waiting; what it does not take is kept, in order, until the
      writer thread sends it (:meth:`send_rest`). TLS sessions get the direct path too.
    - **Goodbyes.** ``shutdown(SHUT_WR)`` sends TLS's close_notify before the FIN, so
      ``openssl s_client`` ends quietly; an ``SSLSocket`` would also forget its TLS state
      and hand a reader still waiting the peer's encrypted bytes as plain text.
    """

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        server_side: bool = True,
        server_hostname: str | None = None,
    ) -> None:
        self.raw = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._tls_lock = threading.Lock()  # the SSL object and its two buffers
        self._wire_lock = threading.Lock()  # ciphertext leaves whole and in order
        # What a send_nowait took and the socket did not (under the wire lock): the rest
        # of a record's ciphertext, then plaintext not yet encrypted.
        self._backlog = b""
        self._later = b""
        self._plain = b""  # decrypted, not yet returned (the reading thread's alone)
        self._eof = False  # the peer's close_notify or FIN was read (the reading thread's)

    # The handshake.

    def do_handshake(self, timeout: float) -> None:
        """Finish the handshake within ``timeout`` seconds, one deadline for all of it,
        however slowly the peer's bytes drip in. Raises TimeoutError, ssl.SSLError, OSError."""
        deadline = time.monotonic() + timeout
        previous = self.raw.gettimeout()
        try:
            while True:
                with self._tls_lock:
                    try:
                        self._tls.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                    except ssl.SSLError:
                        failed = self._outgoing.read()  # an alert tells the peer why
                        if failed:
                            with contextlib.suppress(OSError):
                                self.raw.send(failed, socket.MSG_DONTWAIT)
                        raise
                    out = self._outgoing.read()
                if out:
                    self.raw.settimeout(max(0.001, deadline - time.monotonic()))
                    self.raw.sendall(out)
                if done:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the TLS handshake timed out")
                self.raw.settimeout(left)
                data = self.raw.recv(READ_SIZE)
                if not data:
                    raise ConnectionAbortedError("the peer closed during the TLS handshake")
                with self._tls_lock:
                    self._incoming.write(data)
        finally:
            self.raw.settimeout(previous)

    # Reading: one thread at a time (the connection's reader).

    def _decrypt(self, size: int) -> bytes | None:
        """Plaintext from what has arrived, b"" at the end of the stream, None if none yet."""
        with self._tls_lock:
            try:
                return self._tls.read(size)
            except ssl.SSLWantReadError:
                return None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._eof = True  # close_notify, or the TCP end without it
                return b""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:
            raise ValueError("flags are not supported on a TLS connection")
        if self._plain:
            ready, self._plain = self._plain[:bufsize], self._plain[bufsize:]
            return ready
        while not self._eof:
            data = self._decrypt(bufsize)
            if data is not None:
                return data
            raw = self.raw.recv(READ_SIZE)  # waits as a plain socket would, timeout included
            with self._tls_lock:
                if raw:
                    self._incoming.write(raw)
                else:
                    self._incoming.write_eof()
        return b""

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def pending(self) -> int:
        """Plaintext (or the end) ready to read now, which polling the socket would not show."""
        if not self._plain and not self._eof:
            self._plain = self._decrypt(READ_SIZE) or b""
        return len(self._plain) or int(self._eof)

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: Any) -> Any:
        """A binary file on the connection (what socketserver's handlers read lines from)."""
        if "b" not in mode:
            raise ValueError("a TLS connection only makes binary files")
        raw = socket.SocketIO(self, mode.replace("b", ""))  # type: ignore[arg-type]
        size = io.DEFAULT_BUFFER_SIZE if buffering in (None, -1) else buffering
        if size == 0:
            return raw
        return io.BufferedReader(raw, size) if "r" in mode else io.BufferedWriter(raw, size)

    def _decref_socketios(self) -> None:
        """socket.SocketIO calls this when its file closes; the connection stays open."""

    # Writing: one thread at a time (whoever holds the session's write lock).

    def _encrypt(self, data: bytes | memoryview) -> bytes:
        """At most RECORD bytes of plaintext in, ciphertext out (with whatever else the
        SSL object has for the peer). The memory buffer keeps the largest size it ever
        held, for the life of the connection: one record at a time keeps it small."""
        with self._tls_lock:
            if data:
                self._tls.write(data)
            return self._outgoing.read()

    def _send_owed(self) -> None:
        """What an earlier send_nowait took but did not send, waiting as long as it takes."""
        out, later = self._backlog, self._later
        self._backlog, self._later = b"", b""
        if out:
            self.raw.sendall(out)
        self._send_all(later)

    def _send_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), RECORD):
            self.raw.sendall(self._encrypt(view[start : start + RECORD]))

    def sendall(self, data: bytes | memoryview, flags: int = 0) -> None:
        if flags:
            raise ValueError("flags are not supported on a TLS connection")
        with self._wire_lock:
            self._send_owed()
            self._send_all(data)

    def send(self, data: bytes | memoryview, flags: int = 0) -> int:
        """With ``MSG_DONTWAIT``: see :meth:`send_nowait`. Otherwise all of it."""
        if flags & getattr(socket, "MSG_DONTWAIT", 0):
            return self.send_nowait(data)
        self.sendall(data, flags)
        return len(data)

    def send_nowait(self, data: bytes | memoryview) -> int:
        """Offer ``data`` to the socket, encrypted, without waiting.

        Returns ``len(data)`` when all of it is on its way. Otherwise 0, and the stream
        keeps what the socket did not take (the rest of a record's ciphertext, and the
        plaintext after it, not yet encrypted): :meth:`send_rest` must follow before
        anything else is sent, and nothing is ever encrypted twice.
        """
        if not self._wire_lock.acquire(blocking=False):
            return 0
        try:
            if self._backlog or self._later:
                return 0
            view = memoryview(data)
            for start in range(0, len(view), RECORD):
                out = self._encrypt(view[start : start + RECORD])
                sent = 0
                with contextlib.suppress(BlockingIOError):
                    while sent < len(out):
                        sent += self.raw.send(out[sent:], socket.MSG_DONTWAIT)
                if sent < len(out):
                    self._backlog = out[sent:]
                    self._later = bytes(view[start + RECORD :])
                    return 0
            return len(data)
        finally:
            self._wire_lock.release()

    def send_rest(self, data: bytes) -> None:
        """Finish what :meth:`send_nowait` took but could not send; ``data`` is what it was
        given, kept by the stream already, so it is not sent again."""
        with self._wire_lock:
            self._send_owed()

    # The socket's other calls.

    def shutdown(self, how: int) -> None:
        """``SHUT_WR`` (a goodbye) sends close_notify first, if it fits without waiting;
        ``SHUT_RDWR`` (cutting the connection, from any thread) does not."""
        if how == socket.SHUT_WR and self._wire_lock.acquire(blocking=False):
            try:
                with self._tls_lock, contextlib.suppress(ssl.SSLError):
                    self._tls.unwrap()  # writes close_notify; the peer's is not awaited
                if not self._backlog and not self._later:  # else the peer is not reading
                    with contextlib.suppress(OSError):
                        self.raw.send(self._encrypt(b""), socket.MSG_DONTWAIT)
            finally:
                self._wire_lock.release()
        self.raw.shutdown(how)

    def close(self) -> None:
        self.raw.close()

    def fileno(self) -> int:
        return self.raw.fileno()

    def settimeout(self, timeout: float | None) -> None:
        self.raw.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self.raw.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self.raw.setblocking(flag)

    def setsockopt(self, *args: Any) -> None:
        self.raw.setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self.raw.getsockopt(*args)

    def getpeername(self) -> Any:
        return self.raw.getpeername()

    def getsockname(self) -> Any:
        return self.raw.getsockname()

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)

    def version(self) -> str | None:
        return self._tls.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._tls.cipher()


def server_context() -> ssl.SSLContext:
    """A server context without a certificate: TLS 1.2 at least, Python's default ciphers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A renegotiation would need a reply while reading, which a reader never writes.
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


def client_context(verify: bool = True) -> ssl.SSLContext:
    """For clients: the system's trust store and host-name check, or no checks at all."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
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

    def wrap(self, sock: socket.socket) -> TlsStream:
        """Wrap an accepted socket for the server side; the handshake is left for later."""
        with self._lock:  # a reload may be loading this context right now
            return TlsStream(sock, self.context)

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


def handshake(stream: TlsStream, timeout: float, peer: str) -> bool:
    """Finish a server-side handshake within ``timeout`` seconds; False, logged without
    a traceback, if not.

    A failed handshake is the client's business (a port scan, an old TLS version, plain
    text on the TLS port), so it is logged at INFO, or DEBUG for a client that just left.
    """
    try:
        stream.do_handshake(timeout)
    except TimeoutError:
        log.info("TLS handshake from %s: not finished within %g s; closed", peer, timeout)
    except ConnectionError as exc:  # a port check, or a client that gave up
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
            stream = self.tls.wrap(request)
            # TLS 1.3 sends its session tickets after the handshake: without TCP_NODELAY the
            # first words (the TCP chat's prompt) would wait for their ACK, 40 ms delayed.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ValueError) as exc:  # e.g. the client already reset the connection
            log.info("TLS from %s: cannot start: %s", peer, exc)
            return
        if not handshake(stream, self.tls.handshake_timeout, peer):
            return  # the server's shutdown_request closes the socket
        try:
            super().finish_request(cast(socket.socket, stream), client_address)
        finally:
            with contextlib.suppress(OSError):
                stream.shutdown(socket.SHUT_WR)  # close_notify, when the handler did not
