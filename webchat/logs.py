"""The `webchat` command's log: text for people, or one JSON object a line for machines.

``--log-format json`` (``WEBCHAT_LOG_FORMAT=json``) writes every record as one line
of JSON with ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus
``exception`` (the traceback's text) when there is one. Everything that would
otherwise reach standard error as free text in that mode goes through the log too:
exceptions escaping a thread or the main program, warnings, Werkzeug's request
lines (without their terminal colours). Passwords never reach a log record in the
first place (see webchat/accounts/).
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Werkzeug colours its request lines with ANSI escapes; a log line for machines has none.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
log = logging.getLogger("webchat")
_stderr_log = logging.getLogger("webchat.stderr")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        message = _ANSI.sub("", record.getMessage()).rstrip()
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        if record.threadName and record.threadName != "MainThread":
            out["thread"] = record.threadName
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", stream: TextIO | None = None) -> None:
    """Set up the root logger for the `webchat` command (never for tests or `flask run`).

    Raises ValueError for a format that is neither "text" nor "json".
    """
    if fmt not in FORMATS:
        raise ValueError(f"WEBCHAT_LOG_FORMAT: expected text or json, got {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if fmt == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_exception
        if stream is None:  # whatever else writes to stderr becomes log lines too
            sys.stderr = StderrToLog(sys.stderr)


class StderrToLog(io.TextIOBase):
    """Standard error for code that prints rather than logs (socketserver's handle_error,
    a library's warning): each line becomes one record of the "webchat.stderr" logger.

    The log handler keeps the real stream, so nothing loops; a write made while this
    thread is already logging one (logging's own error report) goes straight out.
    """

    def __init__(self, real: TextIO) -> None:
        super().__init__()
        self.real = real
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.real.fileno()

    def write(self, text: str) -> int:
        local = self._local
        if getattr(local, "busy", False):
            return self.real.write(text)
        local.busy = True
        try:
            pending = getattr(local, "pending", "") + text
            *lines, local.pending = pending.split("\n")
            for line in lines:
                if line.strip():
                    _stderr_log.error("%s", line.rstrip())
        finally:
            local.busy = False
        return len(text)

    def flush(self) -> None:
        self.real.flush()


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    log.critical("uncaught exception: %s", value, exc_info=(kind, value, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    log.error(
        "uncaught exception in %s: %s",
        name,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
