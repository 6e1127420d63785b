"""The page over HTTPS in chromium: it opens wss:// by itself and chats with a TLS terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import expect

from tests.support.chat import RunningChat
from tests.support.tls import Pki, tls_tcp_client
from tests.web.helpers import OpenPage, join, say


def test_the_page_over_https_chats_over_wss(
    make_chat: Callable[..., RunningChat], open_page: OpenPage, tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    cert = pki.issue("server")
    chat = make_chat(tls_cert=str(cert.cert_file), tls_key=str(cert.key_file), tls_port=0)
    tls_port = chat.runtime.tls_port
    assert tls_port is not None
    sockets: list[str] = []
    page = open_page(f"https://localhost:{chat.web.server_port}", ignore_https_errors=True)
    page.on("websocket", lambda ws: sockets.append(ws.url))
    join(page, "carol")
    assert sockets == [f"wss://localhost:{chat.web.server_port}/ws"]
    alice = tls_tcp_client(tls_port, pki.client_context())
    alice.join("alice")
    say(page, "hello from the page")
    assert alice.expect("carol:") == "carol: hello from the page"
    alice.line("hello from the terminal")
    expect(page.locator("#log")).to_contain_text("hello from the terminal")
