"""The terminal client, `webchat-client [--tls [--insecure]] [HOST] [PORT]`: the assignment's
client done right.

As in the assignment, one thread listens and one writes, but:

- the stream is a stream: bytes are decoded incrementally, so a character or a
  CRLF split across two reads comes out whole, and no read is taken for a message;
- what arrives is shown at once, even the nickname prompt that has no newline;
- it ends, with an exit code that says why, when the user quits or the server goes.

The listener writes to the stdout file descriptor and the writer reads the stdin
file descriptor directly. Neither holds a lock of Python's buffered stdio objects,
so a thread still parked in a read cannot abort the interpreter at exit.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import os
import queue
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO, cast

from webchat.text import clean_text
from webchat.transports.tls import TlsStream, client_context, describe_tls_error

PROG = "webchat-client"
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8080
DEFAULT_TLS_PORT = 6697  # the TCP chat over TLS (webchat --tls-cert), as IRC has it

EXIT_QUIT = 0  # the user quit: /quit or end of input (Ctrl-D)
EXIT_LOST = 1  # the connection ended without the user asking
EXIT_USAGE = 2  # bad arguments, or no connection could be made
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

CONNECT_TIMEOUT = 10.0  # seconds to wait for the server to accept
QUIT_GRACE = 5.0  # seconds the server gets to say goodbye and close after /quit
INTERRUPT_GRACE = 1.0  # the same after Ctrl-C, where the user wants out now
JOIN_TIMEOUT = 1.0  # seconds to wait for the listener to finish its last output
WAKE_INTERVAL = 0.5 if sys.platform == "win32" else None  # None: sleep until told

PROMPT = "Enter your nickname: "
WELCOME = "*** Welcome, "
READ_SIZE = 65536

EPILOG = f"""\
Type a line and press Enter to send it; lines that start with / are commands
(/help lists them). The server's nickname prompt comes first.

exit status:
  {EXIT_QUIT}    you quit: /quit [REASON], or end of input (Ctrl-D), which sends /quit
  {EXIT_LOST}    the server closed the connection, or it was lost, without you asking
  {EXIT_USAGE}    bad arguments, or the client cannot connect to HOST:PORT (with --tls:
       or the server's certificate does not check out)
  {EXIT_INTERRUPTED}  interrupted by Ctrl-C (the client sends /quit first when it can)
"""


def port_number(raw: str) -> int:
    """argparse type: a TCP port one can connect to."""
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, not {port}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,  # a shortened flag is an error, not a guess
        prog=PROG,
        description="Talk in a webchat conversation from a terminal, over its TCP port.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "host", nargs="?", default=DEFAULT_HOST, help=f"server address (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "port",
        nargs="?",
        default=None,
        type=port_number,
        help=f"server TCP chat port (default {DEFAULT_PORT}, with --tls {DEFAULT_TLS_PORT})",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="speak TLS, checking the server's certificate and name against the system's "
        "trusted certificates (SSL_CERT_FILE names other ones)",
    )
    parser.add_argument(
        "--udp",
        action="store_true",
        help="chat over the server's UDP port (framed datagrams, acknowledged and resent); "
        "no passwords and no encryption over UDP",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="with --tls: do not check the certificate (a self-signed one, for trying); "
        "the connection is encrypted but anyone in between could read it",
    )
    return parser


def describe(exc: BaseException) -> str:
    """A short reason for people: 'Connection refused', not '[Errno 111] ...'."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def is_quit(line: str) -> bool:
    """True if the server will read this line as /quit; parsed the way commands.py does."""
    text = clean_text(line).rstrip()
    if not text.startswith("/") or text.startswith("//"):
        return False
    return text[1:].partition(" ")[0].lower() == "quit"


class ServerText:
    """Turns the server's UTF-8, CRLF-ended byte stream into text with plain newlines.

    Reads cut the stream anywhere: inside a multi-byte character (the incremental
    decoder holds it back) or between CR and LF (a trailing CR is held back here).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cr = False

    def feed(self, data: bytes, final: bool = False) -> str:
        text = self._decoder.decode(data, final)
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r") and not final:
            text = text[:-1]
            self._cr = True
        return text.replace("\r\n", "\n")


@dataclass(frozen=True)
class Console:
    """The user's side: file descriptors and their encodings (fds, to avoid stdio locks)."""

    in_fd: int
    out_fd: int
    in_encoding: str = "utf-8"
    out_encoding: str = "utf-8"

    @classmethod
    def from_std(cls) -> Console:
        """The process's own stdin and stdout, in the encodings Python chose for them."""
        return cls(
            _fileno(sys.stdin, 0),
            _fileno(sys.stdout, 1),
            _encoding(sys.stdin),
            _encoding(sys.stdout),
        )

    def lines(self) -> Iterator[str]:
        """Lines typed, without their ending; a last unended line too. Stops at end of input."""
        decoder = codecs.getincrementaldecoder(self.in_encoding)(errors="replace")
        pending = ""
        while True:
            try:
                chunk = os.read(self.in_fd, READ_SIZE)
            except OSError:  # e.g. EIO: the terminal went away; that is the end of input
                chunk = b""
            *complete, pending = (pending + decoder.decode(chunk, not chunk)).split("\n")
            for line in complete:
                yield line.removesuffix("\r")
            if not chunk:
                if pending:
                    yield pending
                return

    def write(self, text: str) -> None:
        """Write all of it now: unbuffered, so a prompt without a newline shows."""
        data = memoryview(text.encode(self.out_encoding, "replace"))
        while data:
            data = data[os.write(self.out_fd, data) :]


def _fileno(stream: TextIO | None, default: int) -> int:
    try:
        return stream.fileno() if stream is not None else default
    except (AttributeError, OSError, ValueError):
        return default


def _encoding(stream: TextIO | None) -> str:
    name = getattr(stream, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


class ChatClient:
    """One connection: a listener thread prints, a writer thread sends, run() waits for the end.

    Both threads are daemons and report to run() through a queue; run() alone
    decides the exit code and closes the socket, whose shutdown wakes the listener.
    """

    def __init__(
        self,
        sock: socket.socket,
        console: Console,
        stderr: TextIO | None = None,
        quit_grace: float = QUIT_GRACE,
    ) -> None:
        self._sock = sock
        self._console = console
        self._stderr = stderr
        self._quit_grace = quit_grace
        self._events: queue.Queue[tuple[str, str]] = queue.Queue()
        self._quitting = threading.Event()  # the user asked to leave
        self._send_lock = threading.Lock()  # whole lines, and no send after close
        self._closed = False
        # Where the nickname dialogue stands, so /quit is never sent as a nickname.
        self._state = threading.Condition()
        self._joined = False
        self._gone = False
        self._prompts = 0  # prompts the server has sent
        self._answers = 0  # lines sent before joining: answers to prompts
        self._pre = ""  # unparsed output from before joining
        self._listener = threading.Thread(target=self._listen, name="webchat-listen", daemon=True)
        self._writer = threading.Thread(target=self._write, name="webchat-write", daemon=True)

    def run(self) -> int:
        """Chat until the user quits or the connection ends; return the exit code."""
        self._start_threads()
        try:
            return self._wait_for_end()
        except KeyboardInterrupt:
            return self._interrupted()
        finally:
            self._close()

    def _start_threads(self) -> None:
        """Start both with SIGINT blocked in them: Ctrl-C must wake the thread that waits.

        A signal taken by another thread would leave the waiting one asleep.
        """
        if not hasattr(signal, "pthread_sigmask"):  # Windows
            self._listener.start()
            self._writer.start()
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._listener.start()
            self._writer.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _wait_for_end(self) -> int:
        kind, detail = self._next_event()
        if kind == "quit":
            self._wait_gone(self._quit_grace)
            return EXIT_QUIT
        if self._quitting.is_set():
            return EXIT_QUIT
        if kind == "lost":  # a send failed; let the listener show the server's last words
            self._wait_gone(JOIN_TIMEOUT)
        if kind == "output":
            self._complain(f"cannot write to standard output: {detail}")
        elif detail:
            self._complain(f"the connection to the server was lost: {detail}")
        else:
            self._complain("the server closed the connection")
        return EXIT_LOST

    def _next_event(self) -> tuple[str, str]:
        while True:
            try:  # on Windows only a timed wait lets Ctrl-C in
                return self._events.get(timeout=WAKE_INTERVAL)
            except queue.Empty:
                continue

    def _interrupted(self) -> int:
        """Ctrl-C: say /quit if the chat is joined and the socket is free, then go."""
        self._quitting.set()
        try:
            if self._send_lock.acquire(timeout=INTERRUPT_GRACE):
                try:
                    if self._joined and not self._closed:
                        self._sock.send(b"/quit\n", getattr(socket, "MSG_DONTWAIT", 0))
                    self._sock.shutdown(socket.SHUT_WR)
                finally:
                    self._send_lock.release()
            self._wait_gone(INTERRUPT_GRACE)
        except (OSError, KeyboardInterrupt):  # a second Ctrl-C means now
            pass
        return EXIT_INTERRUPTED

    def _wait_gone(self, timeout: float) -> None:
        with self._state:
            self._state.wait_for(lambda: self._gone, timeout)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the listener's recv
        self._listener.join(JOIN_TIMEOUT)
        locked = self._send_lock.acquire(timeout=JOIN_TIMEOUT)
        try:
            self._closed = True
            self._sock.close()
        finally:
            if locked:
                self._send_lock.release()

    def _complain(self, text: str) -> None:
        print(f"{PROG}: {text}", file=self._stderr or sys.stderr, flush=True)

    # The listener thread.

    def _listen(self) -> None:
        """Copy the server's stream to the terminal as it comes, until it ends."""
        decoder = ServerText()
        at_line_start = True
        reason = ""
        try:
            while True:
                try:
                    data = self._sock.recv(READ_SIZE)
                except OSError as exc:
                    if not self._closed:
                        reason = describe(exc)
                    data = b""
                text = decoder.feed(data, final=not data)
                if text:
                    self._follow(text)
                    self._console.write(text)
                    at_line_start = text.endswith("\n")
                if not data:
                    break
            if not at_line_start:  # leave the shell, or our last words, a line of their own
                self._console.write("\n")
        except OSError as exc:
            self._finish("output", describe(exc))
            return
        self._finish("closed", reason)

    def _finish(self, kind: str, detail: str) -> None:
        with self._state:
            self._gone = True
            self._state.notify_all()
        self._events.put((kind, detail))

    def _follow(self, text: str) -> None:
        """Before joining, count the server's prompts and spot its welcome."""
        if self._joined:
            return
        buf = self._pre + text
        prompts = 0
        joined = False
        while buf:
            if buf.startswith(WELCOME):
                joined = True
                break
            if buf.startswith(PROMPT):
                prompts += 1
                buf = buf[len(PROMPT) :]
                continue
            end = buf.find("\n")
            if end < 0:
                break
            buf = buf[end + 1 :]
        with self._state:
            self._prompts += prompts
            self._joined = joined
            self._pre = "" if joined else buf[-len(PROMPT) :]
            self._state.notify_all()

    # The writer thread.

    def _write(self) -> None:
        """Send each line typed; at /quit or end of input, quit and stop sending."""
        try:
            for line in self._console.lines():
                if is_quit(line):
                    self._quitting.set()
                    if self._chatting():
                        self._send(line)
                    break
                self._send(line)
            else:
                self._quitting.set()
                if self._chatting():
                    self._send("/quit")
            with self._send_lock:
                if not self._closed:
                    self._sock.shutdown(socket.SHUT_WR)  # no more from us: the server closes
        except OSError as exc:
            if not self._quitting.is_set():
                self._events.put(("lost", describe(exc)))
                return
        self._events.put(("quit", ""))

    def _send(self, line: str) -> None:
        with self._state:
            if not self._joined:
                self._answers += 1
        with self._send_lock:
            if self._closed:
                raise OSError(errno.EBADF, "the connection is closed")
            self._sock.sendall((line + "\n").encode("utf-8", "replace"))

    def _chatting(self) -> bool:
        """Whether a /quit now would reach the chat rather than the nickname prompt.

        If a nickname is on its way, wait (bounded) for the server's answer to it.
        """
        with self._state:
            self._state.wait_for(
                lambda: self._joined or self._gone or self._prompts > self._answers,
                self._quit_grace,
            )
            return self._joined


def connect(
    host: str, port: int, timeout: float = CONNECT_TIMEOUT, tls: ssl.SSLContext | None = None
) -> socket.socket:
    """Open the TCP connection (and do the TLS handshake, within the same timeout);
    blocking afterwards, because both threads block on it."""
    sock = socket.create_connection((host, port), timeout=timeout)
    if tls is not None:
        try:
            stream = TlsStream(sock, tls, server_side=False, server_hostname=host)
            stream.do_handshake(timeout)
        except BaseException:
            sock.close()
            raise
        sock = cast(socket.socket, stream)  # used as the socket it stands for
    sock.settimeout(None)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client; return the exit status documented in --help."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage or the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    host: str = args.host
    if args.insecure and not args.tls:
        print(f"{PROG}: --insecure goes with --tls", file=sys.stderr)
        return EXIT_USAGE
    port: int = args.port or (DEFAULT_TLS_PORT if args.tls else DEFAULT_PORT)
    if args.udp:
        if args.tls:
            print(f"{PROG}: --udp and --tls do not go together", file=sys.stderr)
            return EXIT_USAGE
        from webchat.udp_terminal import run

        try:
            return run(host, port)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    try:
        try:
            sock = connect(host, port, tls=client_context(not args.insecure) if args.tls else None)
        except OSError as exc:
            where = f"[{host}]" if ":" in host else host
            why = describe_tls_error(exc) if args.tls else describe(exc)
            if isinstance(exc, ssl.SSLCertVerificationError):
                why += " (--insecure skips the check, e.g. for a self-signed certificate)"
            elif isinstance(exc, ssl.SSLError) and exc.reason == "WRONG_VERSION_NUMBER":
                why += f" (is {port} the server's TLS port?)"
            print(f"{PROG}: cannot connect to {where}:{port}: {why}", file=sys.stderr)
            return EXIT_USAGE
        return ChatClient(sock, Console.from_std()).run()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
