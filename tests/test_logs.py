"""`--log-format json`: one JSON object a line, from a real `webchat` process; no password in it."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import TcpClient, WsClient, http_request, wait_until
from tests.support.processes import ServerProcess
from webchat.logs import JsonFormatter, StderrToLog, configure_logging

WEBCHAT = str(Path(sys.executable).parent / "webchat")
PASSWORD = "correct-horse-battery"
WRONG = "wrong-horse-battery"
FIELDS = {"time", "level", "logger", "message"}


def record(message: str, level: int = logging.INFO, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("webchat.test", level, __file__, 1, message, (), exc_info)


def test_a_record_is_one_line_of_json_with_time_level_logger_message():
    line = JsonFormatter().format(record("alice joined\nvia tcp"))
    assert "\n" not in line
    data = json.loads(line)
    assert set(data) == FIELDS
    assert data["level"] == "INFO" and data["logger"] == "webchat.test"
    assert data["message"] == "alice joined\nvia tcp"
    assert data["time"].endswith("Z") and "T" in data["time"]


def test_an_exception_comes_with_its_traceback_text():
    try:
        raise RuntimeError("the disk is gone")
    except RuntimeError:
        line = JsonFormatter().format(
            record("commit failed", logging.ERROR, exc_info=sys.exc_info())
        )
    data = json.loads(line)
    assert data["level"] == "ERROR"
    assert (
        "Traceback" in data["exception"] and "RuntimeError: the disk is gone" in data["exception"]
    )


def test_terminal_colours_are_left_out():
    werkzeug_line = '127.0.0.1 - - "\x1b[33mGET /nowhere HTTP/1.1\x1b[0m" 404 -\n'
    data = json.loads(JsonFormatter().format(record(werkzeug_line)))
    assert data["message"] == '127.0.0.1 - - "GET /nowhere HTTP/1.1" 404 -'


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging changes the root logger and the hooks: put them back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = (sys.excepthook, threading.excepthook, sys.stderr)
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    sys.excepthook, threading.excepthook, sys.stderr = hooks
    logging.captureWarnings(False)


def test_configure_json_logs_records_and_thread_crashes(root_logging):
    out = io.StringIO()
    configure_logging("json", out)
    logging.getLogger("webchat.people").info("%s joined via %s", "alice", "tcp")

    def crash() -> None:
        raise ValueError("a thread fell over")

    thread = threading.Thread(target=crash, name="doomed")
    thread.start()
    thread.join()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["message"] == "alice joined via tcp" and lines[0]["logger"] == "webchat.people"
    assert lines[1]["level"] == "ERROR" and "doomed" in lines[1]["message"]
    assert "ValueError: a thread fell over" in lines[1]["exception"]


def test_an_unknown_format_is_refused(root_logging):
    with pytest.raises(ValueError, match="expected text or json"):
        configure_logging("xml", io.StringIO())


def test_lines_printed_to_stderr_become_records(root_logging):
    out = io.StringIO()
    configure_logging("json", out)
    stderr = StderrToLog(io.StringIO())
    stderr.write("Exception occurred during processing of request")
    stderr.write(" from ('127.0.0.1', 5)\nTraceback (most recent call last):\n\n")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "Exception occurred during processing of request from ('127.0.0.1', 5)",
        "Traceback (most recent call last):",
    ]
    assert all(line["logger"] == "webchat.stderr" for line in lines)


def test_webchat_logs_json_lines_and_never_a_password():
    server = ServerProcess([WEBCHAT, "--web-port", "0", "--tcp-port", "0", "--log-format", "json"])
    try:
        # The banner is one record, so one line: both ports are in it.
        banner = server.wait_for(
            r"Browser:\s+http://localhost:(\d+)/.*Terminal: nc localhost (\d+)"
        )
        web_port, tcp_port = int(banner.group(1)), int(banner.group(2))
        alice = TcpClient(tcp_port)
        alice.join("alice")
        alice.line(f"/register {PASSWORD}")
        alice.expect("is registered to you")
        alice.line("/quit")
        alice.read_until_closed()
        # A wrong password, from a terminal and from a page, then the right one.
        again = TcpClient(tcp_port)
        again.read_exact(b"Enter your nickname: ")
        again.line("alice")
        again.read_exact(b"Password for alice: ")
        again.line(WRONG)
        assert "wrong password" in again.expect("error")
        again.close()
        page = WsClient(f"http://127.0.0.1:{web_port}")
        page.send({"type": "join", "nick": "alice", "password": WRONG})
        assert page.expect("error")["code"] == "wrong_password"
        page.join("alice", password=PASSWORD)
        page.say("hello from the page")
        page.expect(lambda e: e.get("text") == "hello from the page")
        page.close()
        assert http_request(web_port, "GET", "/nowhere").status == 404
        server.wait_for(r"alice left")
        wait_until(lambda: "/nowhere" in server.output(), what="the 404 logged")
    finally:
        assert server.stop() == 0
    output = server.output()
    lines = output.splitlines()
    parsed = [json.loads(line) for line in lines]  # every line, the banner's too
    assert all(set(p) >= FIELDS for p in parsed), output
    messages = [p["message"] for p in parsed]
    assert any(m == "alice joined via tcp" for m in messages)
    assert any("/nowhere" in m and "\x1b" not in m for m in messages)
    assert PASSWORD not in output and WRONG not in output
    assert "Traceback" not in output
