"""`flask run` serves the page and the TCP chat; other flask commands never bind the TCP port."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.clients import TcpClient
from tests.support.processes import REPO, ServerProcess

FLASK = str(Path(sys.executable).parent / "flask")
LISTENING = r"TCP chat listening on \S+ port (\d+)"
RUNNING = r"Running on http://127\.0\.0\.1:(\d+)"


def occupied_port() -> socket.socket:
    """A port someone else holds: binding it again would fail loudly."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def chat_over(tcp_port: int, nick: str) -> None:
    client = TcpClient(tcp_port)
    try:
        client.join(nick)
    finally:
        client.close()


def test_flask_run_serves_page_and_tcp_once() -> None:
    server = ServerProcess(
        [FLASK, "run", "--port", "0"], env={"WEBCHAT_TCP_PORT": "0", "FLASK_DEBUG": "0"}
    )
    try:
        tcp_port = int(server.wait_for(LISTENING).group(1))
        web_port = int(server.wait_for(RUNNING).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=10) as page:
            assert b"Nickname" in page.read()
        chat_over(tcp_port, "alice")
        assert (
            len([line for line in server.output().splitlines() if "TCP chat listening" in line])
            == 1
        )
    finally:
        server.stop()


def test_flask_run_debug_reloader_starts_tcp_exactly_once(tmp_path: Path) -> None:
    holder = occupied_port()
    tcp_port = holder.getsockname()[1]
    holder.close()  # free it for the server; a second bind in the watcher would now fail loudly
    watched = tmp_path / "watched.txt"
    watched.write_text("v1\n")
    server = ServerProcess(
        [FLASK, "run", "--debug", "--port", "0", "--extra-files", str(watched)],
        env={"WEBCHAT_TCP_PORT": str(tcp_port)},
    )
    try:
        server.wait_for(LISTENING)
        server.wait_for(r"Debugger is active")
        chat_over(tcp_port, "bob")
        # A watched file changes, so the reloader restarts the serving child, which binds again.
        # The reloader may take its first snapshot after our first change, so keep changing the
        # file (each time with a later mtime) until it reports the restart.
        deadline = time.monotonic() + 30
        for step in itertools.count(1):
            stamp = time.time() + step
            os.utime(watched, (stamp, stamp))
            try:
                server.wait_for(r"Detected change", timeout=1.5)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        server.wait_for(LISTENING, timeout=30)
        chat_over(tcp_port, "carol")
        text = server.output()
        assert "Address already in use" not in text
        assert text.count("TCP chat listening") == 2  # once per serving child, never in the watcher
    finally:
        server.stop()


def test_flask_routes_does_not_bind_tcp() -> None:
    holder = occupied_port()
    try:
        env = {
            **os.environ,
            "WEBCHAT_HISTORY_DB": ":memory:",
            "WEBCHAT_TCP_PORT": str(holder.getsockname()[1]),
        }
        result = subprocess.run(
            [FLASK, "routes"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "/ws" in result.stdout and "/healthz" in result.stdout
        assert "TCP chat listening" not in result.stderr
    finally:
        holder.close()


def test_flask_shell_does_not_bind_tcp() -> None:
    holder = occupied_port()
    try:
        env = {
            **os.environ,
            "WEBCHAT_HISTORY_DB": ":memory:",
            "WEBCHAT_TCP_PORT": str(holder.getsockname()[1]),
        }
        result = subprocess.run(
            [FLASK, "shell"],
            cwd=REPO,
            env=env,
            input="print('tcp is', app.extensions['webchat'].tcp)\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "tcp is None" in result.stdout
    finally:
        holder.close()
