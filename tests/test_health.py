"""GET /healthz: each listener, the history and the cluster; 200 when ok, 503 when degraded.

The 503 while the cluster's Redis is down is in tests/bus/test_redis_monitoring.py
(and every healthz check of tests/bus/test_redis_failures.py checks the code too);
the history made unwritable in a real server process is in tests/test_durability.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.support.chat import RunningChat
from tests.support.clients import http_request
from tests.test_metrics import Scrape


def get_health(chat: RunningChat) -> tuple[int, dict[str, object]]:
    reply = http_request(chat.web.server_port, "GET", "/healthz")
    assert reply.headers["content-type"].startswith("application/json")
    return reply.status, json.loads(reply.body)


def test_ok_names_each_listener_and_the_history(chat):
    alice = chat.tcp("alice")
    alice.expect("alice joined")  # live, so logged: last_id stays put while we compare
    status, body = get_health(chat)
    assert status == 200
    assert body["status"] == "ok" and body["problems"] == []
    assert body["users"] == 1
    assert body["tcp"] == {"listening": True, "port": chat.tcp_port}
    assert body["web"] == {"listening": True, "port": chat.web.server_port, "tls": False}
    assert "tls" not in body  # no certificate configured
    assert body["history"] == {"ok": True, "error": None, "last_id": chat.runtime.history.last_id()}
    connections = body["connections"]  # how full the server is (never a reason for 503)
    assert isinstance(connections, dict) and connections["open"] >= 1
    assert "cluster" not in body  # one process
    alice.close()


def test_an_unwritable_history_is_503_and_says_why(make_chat):
    # /proc refuses new files even to root: a real read-only location.
    chat = make_chat(history_db="/proc/webchat-health/history.sqlite3")
    status, body = get_health(chat)
    assert status == 503 and body["status"] == "degraded"
    history = body["history"]
    assert isinstance(history, dict) and history["ok"] is False and history["error"]
    assert body["problems"] == [f"history: {history['error']}"]
    # The chat goes on meanwhile.
    alice, bob = chat.tcp("alice"), chat.ws("bob")
    alice.line("still chatting")
    assert bob.expect("message")["text"] == "still chatting"


def test_a_tcp_listener_that_stopped_is_503(chat):
    assert chat.runtime.tcp is not None
    chat.runtime.tcp.stop()
    chat.runtime.tcp = None
    status, body = get_health(chat)
    assert status == 503 and body["status"] == "degraded"
    assert body["tcp"] == {"listening": False, "port": None}
    assert body["problems"] == ["tcp is not listening"]


def test_a_chat_without_the_tcp_listener_by_choice_is_ok(make_chat):
    chat = make_chat(tcp_enabled=False)
    status, body = get_health(chat)
    assert status == 200 and body["tcp"] == {"listening": False, "port": None}


def test_with_tls_the_tls_listener_is_reported_and_its_terminals_counted(make_chat, tmp_path):
    from tests.support.tls import Pki, tls_tcp_client  # needs the cryptography package

    pki = Pki(tmp_path)
    issued = pki.issue("server")
    chat = make_chat(tls_cert=str(issued.cert_file), tls_key=str(issued.key_file), tls_port=0)
    tls_port = chat.runtime.tls_port
    assert isinstance(tls_port, int)
    secure = tls_tcp_client(tls_port, pki.client_context())
    secure.join("alice")
    plain = chat.tcp("bob")
    base = f"https://localhost:{chat.web.server_port}"  # the web port speaks HTTPS now

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(base + path, context=pki.client_context()) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    status, raw = get("/healthz")
    body = json.loads(raw)
    assert status == 200 and body["tls"] == {"listening": True, "port": tls_port}
    assert body["web"]["tls"] is True
    status, raw = get("/metrics")
    s = Scrape(raw.decode())
    assert s.value("webchat_connections", transport="tls") == 1
    assert s.value("webchat_connections", transport="tcp") == 1
    assert s.value("webchat_listener_up", listener="tls") == 1
    assert chat.runtime.tls_tcp is not None
    chat.runtime.tls_tcp.stop()
    chat.runtime.tls_tcp = None
    status, raw = get("/healthz")
    assert status == 503 and json.loads(raw)["problems"] == ["tls is not listening"]
    secure.close()
    plain.close()
