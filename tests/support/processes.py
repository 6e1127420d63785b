"""Run a real server process and wait on what it prints, never on the clock."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ServerProcess:
    """A subprocess whose combined output is collected line by line in the background."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path | str = REPO,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """``preexec_fn`` runs in the child before the server starts (e.g. a lower ulimit)."""
        # History stays in memory unless a test asks for a file: never in the checkout.
        full_env = {
            "WEBCHAT_HISTORY_DB": ":memory:",
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self._cursor = 0

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _drain(self, timeout: float) -> bool:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        if item is None:
            self._queue.put(None)
            return False
        self.lines.append(item)
        return True

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait for a printed line matching the regex, after the last one matched."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            while self._cursor < len(self.lines):
                match = regex.search(self.lines[self._cursor])
                self._cursor += 1
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (
                not self._drain(min(remaining, 0.5)) and self._cursor >= len(self.lines)
            ):
                output = "\n".join(self.lines)
                raise TimeoutError(f"no line matched {pattern!r}; output so far:\n{output}")

    def output(self) -> str:
        while self._drain(0.05):
            if self._queue.empty():
                break
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self._reader.join(timeout)
        return self.proc.returncode
