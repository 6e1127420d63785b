"""The raw TCP chat (`nc localhost 8080`): lines in, packets back out as lines.

The handler thread reads. Until the nickname is accepted it also writes (the
prompt, refusals); after that only the session's writer does, or the hub's direct
send under the same write lock (see :mod:`webchat.core.writer`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from webchat.core.events import Packet
from webchat.core.hub import Hub
from webchat.core.serve import Ended, JoinRequest, Line, Refusal, serve
from webchat.core.session import Session
from webchat.policy.connections import ConnectionGate
from webchat.settings import Settings
from webchat.text import ChatError, clean_text, strip_telnet
from webchat.transports.guarded import GuardedServer
from webchat.transports.sockets import SocketTransport

log = logging.getLogger(__name__)

PROMPT = b"Enter your nickname: "


class TooLong:
    """A line that passed the limit; its bytes were read and dropped, never buffered."""

    def __init__(self, size: int, ended: bool) -> None:
        self.size = size
        self.ended = ended


class LineReader:
    """Reads CRLF- or LF-ended lines with a hard bound on memory."""

    def __init__(self, rfile: Any, limit: int) -> None:
        self.rfile = rfile
        self.limit = limit

    def read(self) -> bytes | TooLong | None:
        """Return one line without its ending, a TooLong, or None at end of stream.

        A line cut by the end of the stream is dropped: the peer went away mid-line.
        """
        data: bytes = self.rfile.readline(self.limit + 2)
        if not data.endswith(b"\n"):
            if len(data) < self.limit + 2:
                return None
            return TooLong(len(data), False)
        line = data[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.limit:
            return TooLong(len(line), True)
        return line

    def skip_to_line_end(self) -> int:
        """Drop bytes up to and including the next newline; return how many were dropped."""
        dropped = 0
        while True:
            chunk: bytes = self.rfile.readline(65536)
            dropped += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                return dropped


class TcpTransport(SocketTransport):
    """Writes packets as lines (who writes, and when: see SocketTransport)."""

    kind = "tcp"
    shows_own_input = True  # nc and telnet show what was typed: no echo of one's own lines
    keepalive_interval: float | None = None

    def frame(self, packets: list[Packet]) -> bytes:
        return packets[0].line if len(packets) == 1 else b"".join([p.line for p in packets])

    def keepalive(self) -> str | None:
        return None

    def unanswered(self) -> str | None:
        return None

    def ping(self) -> bytes:
        return b""  # never asked: a terminal gets no keepalives (keepalive_interval None)

    def goodbye(self, reason: str, code: int) -> bytes:
        if code == 1000:
            text = f"bye ({reason})" if reason and reason != "quit" else "bye"
        else:
            text = f"disconnected: {reason}"
        return f"*** {text}\r\n".encode()

    def send_goodbye(self, reason: str, code: int) -> None:
        self.sock.sendall(self.goodbye(reason, code))
        self.end_write()

    def end_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)  # a FIN after the last line (TLS: close_notify)

    def flush_control(self) -> None:
        return None


class ChatRequestHandler(socketserver.StreamRequestHandler):
    """One TCP client: the nickname prompt, then a line loop until EOF or /quit."""

    server: ChatTCPServer
    # Lines are read whatever the buffer size; a small one saves 6 KB on every idle
    # connection, which counts at thousands of them.
    rbufsize = 2048

    def handle(self) -> None:
        """Admitted already (GuardedServer.verify_request): the connection's life."""
        settings = self.server.settings
        self.connection.settimeout(settings.nick_timeout)
        conn = TcpConnection(self, LineReader(self.rfile, settings.max_line_bytes))
        serve(self.server.hub, conn, settings.close_grace)

    def say(self, text: str) -> None:
        """Write before the session exists; the writer thread is not running yet."""
        with contextlib.suppress(OSError):
            self.wfile.write(f"*** {text}\r\n".encode())


class TcpConnection:
    """A TCP client's side of :func:`~webchat.core.serve.serve`: a prompt, then lines."""

    asks = True  # a person at a terminal answers prompts

    def __init__(self, handler: ChatRequestHandler, reader: LineReader) -> None:
        self.handler = handler
        self.reader = reader
        self.transport = TcpTransport(handler.connection)
        self.address = str(handler.client_address[0])
        self._mid_line = False

    def ask(self, prompt: str) -> str | None:
        """A password line: read like a nick line, and never written anywhere."""
        return self._prompt(prompt, "password", "password_too_long")

    def read_join(self) -> JoinRequest | None:
        while True:
            try:
                nick = self._prompt(PROMPT.decode(), "nickname", "nick_too_long")
            except ChatError as exc:  # a line over the limit: told, then asked again
                self.handler.say(f"error: {exc}")
                continue
            return None if nick is None else JoinRequest(clean_text(nick))

    def _prompt(self, prompt: str, what: str, too_long: str) -> str | None:
        """Ask, and read one line; None if the client left or stayed silent (told why)."""
        handler, reader = self.handler, self.reader
        try:
            handler.wfile.write(prompt.encode())
            line = reader.read()
            if line is None:
                return None
            if isinstance(line, TooLong):
                if not line.ended:
                    reader.skip_to_line_end()
                raise ChatError(too_long, f"{what} line is too long (limit {reader.limit} bytes)")
            return strip_telnet(line).decode("utf-8", "replace")
        except TimeoutError:
            timeout = handler.server.settings.nick_timeout
            handler.say(f"no {what} given within {timeout:g} seconds; bye")
        except OSError:
            pass
        return None

    def refuse_join(self, error: ChatError) -> None:
        self.handler.say(f"error: {error}")

    def joined(self, wake_writer: Callable[[], None]) -> None:
        self.handler.connection.settimeout(None)

    def read(self, session: Session) -> Line | Refusal | None:
        reader = self.reader
        try:
            if self._mid_line:  # the rest of a refused line: told first, dropped now
                self._mid_line = False
                if not reader.skip_to_line_end():
                    return None
            line = reader.read()
            if line is None:
                return None
            if isinstance(line, TooLong):
                self._mid_line = not line.ended
                return Refusal(
                    f"line too long: more than {reader.limit} bytes; it was not sent",
                    "line_too_long",
                )
        except OSError as exc:
            raise Ended(f"connection lost: {exc.strerror or exc.__class__.__name__}") from None
        return Line(strip_telnet(line).decode("utf-8", "replace"))


class ChatTCPServer(GuardedServer, socketserver.ThreadingTCPServer):
    """Thread per connection, as the assignment asks; stopped with shutdown().

    Who is let in is decided in the accept thread (GuardedServer): a refused client
    gets one line and is closed, without a thread of its own.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False

    def __init__(self, settings: Settings, hub: Hub, gate: ConnectionGate) -> None:
        self.settings = settings
        self.hub = hub
        self.init_guard(gate)
        if ":" in settings.tcp_host:
            self.address_family = socket.AF_INET6
        super().__init__((settings.tcp_host, settings.tcp_port), ChatRequestHandler)
        self._thread: threading.Thread | None = None

    def refusal(self, reason: str, text: str) -> bytes:
        return f"*** error: {text}\r\n".encode()

    def refused(self, reason: str, address: str) -> None:
        self.hub.stats.refused.add(reason)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, name="tcp-accept", kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        self.announce()

    def announce(self) -> None:
        """Log where to connect (the TLS listener says it its own way)."""
        log.info(
            "TCP chat listening on %s port %d: connect with  nc %s %d",
            self.settings.tcp_host,
            self.port,
            self.settings.tcp_host,
            self.port,
        )

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
