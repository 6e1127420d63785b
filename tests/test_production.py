"""The production recipe: gunicorn (gthread, one worker) serving webchat:create_app()
with docs/gunicorn.conf.py, as a reverse proxy would reach it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_websocket import Client

from tests.support.clients import TcpClient, WsClient, http_request, websocket_upgrade_headers
from tests.support.processes import REPO, ServerProcess

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
CONFIG = str(REPO / "docs" / "gunicorn.conf.py")


class Gunicorn:
    def __init__(self, **env: str) -> None:
        self.server = ServerProcess(
            [GUNICORN, "-c", CONFIG, "--bind", "127.0.0.1:0"],
            env={"WEBCHAT_TCP_PORT": "0", "WEBCHAT_GUNICORN_THREADS": "64", **env},
        )
        self.web_port = int(self.server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)")[1])
        self.tcp_port = int(self.server.wait_for(r"TCP chat listening on \S+ port (\d+)")[1])
        self.url = f"http://127.0.0.1:{self.web_port}"


@pytest.fixture
def gunicorn() -> Iterator[Gunicorn]:
    running = Gunicorn(WEBCHAT_TRUSTED_PROXIES="1", WEBCHAT_MAX_CONNECTIONS_PER_IP="1")
    yield running
    running.server.stop()


def proxied(host: str, address: str) -> dict[str, str]:
    """What a TLS-terminating reverse proxy adds for a client of https://HOST."""
    return {
        "X-Forwarded-For": address,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": host,
        "Origin": f"https://{host}",
    }


def test_gunicorn_serves_the_page_and_both_transports_with_one_tcp_chat(
    gunicorn: Gunicorn,
) -> None:
    page = http_request(gunicorn.web_port, "GET", "/")
    assert page.status == 200 and b"<html" in page.body.lower()
    web = WsClient(gunicorn.url, headers=proxied("chat.example.org", "203.0.113.7"))
    web.join("webby")
    terminal = TcpClient(gunicorn.tcp_port)
    terminal.join("tcpy")
    web.say("hello from the browser")
    assert terminal.expect("hello") == "webby: hello from the browser"
    terminal.line("hello from the terminal")
    web.expect(lambda e: e.get("text") == "hello from the terminal")
    started = [
        line for line in gunicorn.server.output().splitlines() if "TCP chat listening" in line
    ]
    assert len(started) == 1


def test_behind_the_proxy_the_client_address_and_https_origin_count(gunicorn: Gunicorn) -> None:
    first = WsClient(gunicorn.url, headers=proxied("chat.example.org", "203.0.113.7"))
    first.join("first")
    # Another client behind the same proxy is another address: the limit of 1 holds per client.
    second = WsClient(gunicorn.url, headers=proxied("chat.example.org", "203.0.113.8"))
    second.join("second")
    same = http_request(
        gunicorn.web_port,
        "GET",
        "/ws",
        websocket_upgrade_headers(proxied("chat.example.org", "203.0.113.7")),
    )
    assert same.status == 429 and same.headers.get("retry-after") == "5"
    assert b"203.0.113.7" in same.body
    foreign = http_request(
        gunicorn.web_port,
        "GET",
        "/ws",
        websocket_upgrade_headers(
            {**proxied("chat.example.org", "203.0.113.9"), "Origin": "https://evil.example.com"}
        ),
    )
    assert foreign.status == 403


def test_without_trusting_a_proxy_forwarded_headers_are_ignored() -> None:
    running = Gunicorn()
    try:
        reply = http_request(
            running.web_port,
            "GET",
            "/ws",
            websocket_upgrade_headers(proxied("chat.example.org", "203.0.113.7")),
        )
        assert reply.status == 403  # https://chat.example.org is not this server's origin
    finally:
        running.server.stop()


def test_sigterm_says_goodbye_and_stops_promptly() -> None:
    running = Gunicorn()
    web = Client.connect(running.url.replace("http", "ws", 1) + "/ws")
    web.send('{"type":"join","nick":"stayer"}')
    terminal = TcpClient(running.tcp_port)
    terminal.join("waiter")
    started = time.monotonic()
    code = running.server.stop()
    assert time.monotonic() - started < 8.0  # well under graceful_timeout (10 s)
    assert code == 0
    assert b"server shutting down" in terminal.read_until_closed()
