"""A real redis-server for the cluster tests: its own free port and folder, never 6379."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.support.chat import RunningChat, start_chat
from tests.support.clients import TcpClient, WsClient, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Started by a test, stopped by it; ``appendonly`` keeps data across a restart."""

    def __init__(self, folder: Path, appendonly: bool = False) -> None:
        self.folder = folder
        self.port = free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 10, "redis-server answering")
        client.close()
        return self

    def kill(self) -> None:
        """kill -9: no goodbye, no save."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> RedisServer:
        """Kill it if it runs, then start it again on the same port and folder."""
        self.kill()
        return self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


class Cluster:
    """Nodes of one chat on one Redis, and the clients a test opened on them.

    Every node is a real chat server in this process (web and TCP on port 0) with
    ``rate_per_second=0``; :meth:`close` stops clients first, then the nodes.
    """

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.nodes: dict[str, RunningChat] = {}
        self._stops: list[Callable[[], None]] = []
        self._clients: list[TcpClient | WsClient] = []

    def node(self, node_id: str, **overrides: Any) -> RunningChat:
        settings: dict[str, Any] = {
            "redis_url": self.redis_url,
            "node_id": node_id,
            "rate_per_second": 0,
            **overrides,
        }
        chat, stop = start_chat(**settings)
        self.nodes[node_id] = chat
        self._stops.append(stop)
        return chat

    def tcp(self, chat: RunningChat, nick: str | None = None) -> TcpClient:
        client = TcpClient(chat.tcp_port)
        self._clients.append(client)
        if nick is not None:
            client.join(nick)
        return client

    def ws(self, chat: RunningChat, nick: str | None = None, **join: Any) -> WsClient:
        client = WsClient(chat.url)
        self._clients.append(client)
        if nick is not None:
            client.join(nick, **join)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for stop in reversed(self._stops):
            stop()


def healthz(chat: RunningChat) -> dict[str, Any]:
    """/healthz's answer; its status code is 200 when "ok" and 503 when "degraded"."""
    try:
        with urllib.request.urlopen(chat.url + "/healthz", timeout=5) as reply:
            code, body = reply.status, dict(json.load(reply))
    except urllib.error.HTTPError as exc:
        code, body = exc.code, dict(json.load(exc))
    assert code == (200 if body["status"] == "ok" else 503), (code, body)
    return body


def api_history(chat: RunningChat, query: str = "") -> dict[str, Any]:
    with urllib.request.urlopen(chat.url + "/api/history" + query, timeout=5) as reply:
        return dict(json.load(reply))


TIMEOUT = 5.0  # seconds a cluster test waits for one thing to happen
_marks = itertools.count(1)


def mark(prefix: str = "fence") -> str:
    """A text nobody else sends: read up to it to know everything before it arrived."""
    return f"{prefix}-{next(_marks)}"


def text_is(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("text") == text
