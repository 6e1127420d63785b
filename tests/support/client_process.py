"""The terminal client as a real process (`python -m webchat.client ARGS...`), with
its standard streams as pipes, and a reader that tests wait on with a timeout."""

from __future__ import annotations

import codecs
import contextlib
import functools
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.clients import DEFAULT_TIMEOUT

REPO = Path(__file__).resolve().parents[2]


class ChunkReader:
    """Collects a byte stream in a helper thread; tests wait on its text with a timeout."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._read = read
        self._chunks: queue.Queue[bytes] = queue.Queue()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""  # everything decoded so far
        self.cursor = 0  # where the next expect() starts looking
        self.ended = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = self._read()
            except OSError:
                chunk = b""
            self._chunks.put(chunk)
            if not chunk:
                return

    def _take(self, timeout: float) -> bool:
        """Wait for one more chunk; False at the end of the stream."""
        if self.ended:
            return False
        try:
            chunk = self._chunks.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return True
        self.text += self._decoder.decode(chunk, final=not chunk)
        self.ended = not chunk
        return not self.ended

    def expect(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Wait until `text` appears after the cursor; return the line that holds it."""
        deadline = time.monotonic() + timeout
        while (at := self.text.find(text, self.cursor)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._take(remaining):
                raise TimeoutError(f"{text!r} did not appear; output so far: {self.text!r}")
        self.cursor = at + len(text)
        start = self.text.rfind("\n", 0, at) + 1
        end = self.text.find("\n", at)
        return self.text[start : end if end >= 0 else len(self.text)]

    def read_to_end(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while self._take(deadline - time.monotonic()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stream did not end; output so far: {self.text!r}")
        return self.text


class ClientProcess:
    """`python -m webchat.client ARGS...`; ``env`` adds to (or, as None, removes from)
    the environment it inherits."""

    def __init__(self, args: list[str], env: dict[str, str | None] | None = None) -> None:
        full = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        for name, value in (env or {}).items():
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "webchat.client", *args],
            cwd=REPO,
            env=full,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = ChunkReader(functools.partial(os.read, self.proc.stdout.fileno(), 65536))
        self.err = ChunkReader(functools.partial(os.read, self.proc.stderr.fileno(), 65536))

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def join(self, nick: str, prompt: str = "Enter your nickname: ") -> None:
        self.out.expect(prompt)
        self.type(nick)
        self.out.expect(f"*** Welcome, {nick}!")

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEFAULT_TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
