"""`webchat-client --udp [HOST] [PORT]`: the terminal client over the framed UDP protocol.

As the assignment asks for UDP, a thread receives (the :class:`UdpClient`'s, which
also acknowledges and retransmits) while the main thread reads what the user
types. Events are shown as a terminal user of the TCP chat sees them. The exit
status is the TCP client's: 0 quit, 1 lost, 2 no server, 130 Ctrl-C.
"""

from __future__ import annotations

import os
import queue
import select
import sys
import threading
from typing import Any, TextIO

from webchat.core.events import Event, render_line
from webchat.transports.udp_client import Refused, UdpClient

EXIT_QUIT, EXIT_LOST, EXIT_USAGE = 0, 1, 2
PROMPT = "Enter your nickname: "
QUIT_GRACE = 5.0
_FIELDS = {"type", "id", "ts", "nick", "room", "text"}


def render(event: dict[str, Any]) -> str:
    """The line the TCP chat would show for this event."""
    extra = {key: value for key, value in event.items() if key not in _FIELDS}
    return render_line(
        Event(
            str(event.get("type", "")),
            event.get("nick"),
            event.get("text"),
            event.get("id"),
            event.get("ts"),
            extra,
            event.get("room"),
        )
    )


class StdinLines:
    """Lines from a file descriptor, waiting at most ``timeout`` for each (None: not yet)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def next(self, timeout: float) -> str | None:
        while b"\n" not in self.buffer and not self.eof:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
            self.buffer += chunk
        if b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
        elif self.buffer:
            line, self.buffer = self.buffer, b""
        else:
            raise EOFError
        return line.decode("utf-8", "replace").rstrip("\r")


def run(host: str, port: int, stdin_fd: int = 0, out: TextIO = sys.stdout) -> int:
    prog = "webchat-client"
    try:
        client = UdpClient(host, port)
    except OSError as exc:
        print(f"{prog}: cannot reach {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    lines = StdinLines(stdin_fd)

    def show(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    while True:  # the nickname, until one is taken
        out.write(PROMPT)
        out.flush()
        try:
            nick = None
            while nick is None:
                nick = lines.next(1.0)
        except EOFError:
            return EXIT_QUIT
        try:
            client.join(nick)
            break
        except Refused as refused:
            show(f"*** error: {refused.text}")
        except TimeoutError:
            print(f"{prog}: no answer over UDP from {host}:{port}", file=sys.stderr)
            client.close(bye=False)
            return EXIT_USAGE
    ended = threading.Event()

    def listen() -> None:
        while True:
            try:
                event = client.events.get(timeout=1.0)
            except queue.Empty:
                continue
            if event is None:
                break
            show(render(event))
        end = client.end
        if end is not None:
            reason = str(end.get("reason", ""))
            if end.get("code") == 1000:
                show(f"*** bye ({reason})" if reason and reason != "quit" else "*** bye")
            else:
                show(f"*** disconnected: {reason}")
        else:
            show(f"*** connection lost: {client.lost}")
        ended.set()

    threading.Thread(target=listen, name="udp-listen", daemon=True).start()
    quitting = False
    try:
        while not ended.is_set():
            try:
                line = lines.next(0.2)
            except EOFError:
                line = "/quit"
            if line is None:
                continue
            client.say(line)
            if line.strip().lower().split(" ")[0] == "/quit":
                quitting = True
                ended.wait(QUIT_GRACE)
                break
    except KeyboardInterrupt:
        client.close()
        return 130
    client.close()
    return EXIT_QUIT if quitting else EXIT_LOST
