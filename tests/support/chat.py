"""A real chat server (web and TCP) on port 0, started in this process for one test."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer

from tests.support.clients import TcpClient, WsClient
from webchat import ChatRuntime, create_app
from webchat.settings import Settings
from webchat.web.server import web_server


@dataclass
class RunningChat:
    app: Flask
    web: BaseWSGIServer
    runtime: ChatRuntime
    stop: Callable[[], None]  # stops it early (the fixture stops it anyway)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web.server_port}"

    @property
    def tcp_port(self) -> int:
        port = self.runtime.tcp_port
        assert port is not None
        return port

    def tcp(self, nick: str | None = None) -> TcpClient:
        client = TcpClient(self.tcp_port)
        if nick is not None:
            client.join(nick)
        return client

    def ws(self, nick: str | None = None, headers: dict[str, str] | None = None) -> WsClient:
        client = WsClient(self.url, headers)
        if nick is not None:
            client.join(nick)
        return client


def start_chat(**overrides: Any) -> tuple[RunningChat, Callable[[], None]]:
    settings = Settings(
        **{
            "tcp_host": "127.0.0.1",
            "tcp_port": 0,
            "tcp_enabled": True,
            "history_db": ":memory:",
            **overrides,
        }
    )
    app = create_app(settings)
    web = web_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()

    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        web.shutdown()
        thread.join()
        web.server_close()
        app.extensions["webchat"].close()

    return RunningChat(app, web, app.extensions["webchat"], stop), stop
