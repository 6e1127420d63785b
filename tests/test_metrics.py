"""GET /metrics on a live server: Prometheus text from prometheus_client, figures that move.

Each test starts a real chat (web and TCP on port 0), drives it with real clients,
and parses every scrape with prometheus_client's own parser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.chat import RunningChat
from tests.support.clients import TcpClient, WsClient, http_request, wait_until
from webchat.accounts import Sanction
from webchat.core.stats import (
    COMMIT_BUCKETS,
    DISCONNECT_REASONS,
    Histogram,
    disconnect_reason,
)

NO_REFILL = 0.001  # a refill so slow that the burst is exact while a test runs


class Scrape:
    """One scrape of /metrics, parsed: samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in self.families.values():
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((sample.labels, sample.value))

    def value(self, name: str, **labels: str) -> float:
        """The one sample of ``name`` with these labels (others may have more)."""
        found = [v for got, v in self.samples.get(name, []) if labels.items() <= got.items()]
        assert len(found) == 1, f"{name}{labels}: {found} in\n{self.text}"
        return found[0]

    def has(self, name: str) -> bool:
        return name in self.samples


def scrape(chat: RunningChat, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    reply = http_request(chat.web.server_port, "GET", "/metrics", headers)
    assert reply.status == 200, reply
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return Scrape(reply.body.decode())


def eventually(chat: RunningChat, check: Callable[[Scrape], Any], what: str) -> Scrape:
    """Scrape until ``check`` holds: figures follow events a moment later, never sooner."""
    last: list[Scrape] = []

    def holds() -> bool:
        last[:] = [scrape(chat)]
        return bool(check(last[0]))

    try:
        wait_until(holds, 10, what)
    except TimeoutError:
        raise AssertionError(f"{what}; last scrape:\n{last[0].text}") from None
    return last[0]


def test_metrics_names_every_figure_with_build_info_and_zeroes_at_start(chat):
    s = scrape(chat)
    info = s.value("webchat_build_info")
    assert info == 1.0
    [(labels, _)] = s.samples["webchat_build_info"]
    assert labels["version"] == version("webchat") and labels["python"]
    for transport in ("tcp", "web", "tls", "udp"):
        assert s.value("webchat_connections", transport=transport) == 0
    assert s.value("webchat_users", scope="local") == 0
    assert s.value("webchat_users", scope="cluster") == 0
    assert s.value("webchat_rooms") == 1  # #lobby
    assert s.value("webchat_deliveries_total") == 0
    assert s.value("webchat_delivery_latency_seconds_count") == 0
    assert s.value("webchat_rate_limited_lines_total") == 0
    for reason in DISCONNECT_REASONS:
        assert s.value("webchat_disconnects_total", reason=reason) == 0
    for reason in ("per_address", "server_full", "origin", "banned"):
        assert s.value("webchat_refused_connections_total", reason=reason) == 0
    assert s.value("webchat_history_up") == 1
    assert s.value("webchat_listener_up", listener="tcp") == 1
    assert not s.has("webchat_redis_up")  # only on a node of a cluster
    assert s.families["webchat_delivery_latency_seconds"].type == "histogram"
    assert s.families["webchat_history_commit_seconds"].type == "histogram"
    assert s.families["webchat_events"].type == "counter"


def test_each_app_has_its_own_registry(make_chat):
    one, two = make_chat(), make_chat()
    alice = one.tcp("alice")
    s1 = eventually(one, lambda s: s.value("webchat_users", scope="local") == 1, "alice counted")
    s2 = scrape(two)
    assert s1.value("webchat_events_total", type="join") == 1
    assert s2.value("webchat_users", scope="local") == 0
    assert not s2.has("webchat_events_total")  # no event published there yet
    alice.close()


def test_figures_follow_people_joining_talking_and_leaving(chat):
    alice = chat.tcp("alice")
    bob = chat.ws("bob")
    s = eventually(chat, lambda s: s.value("webchat_users", scope="local") == 2, "two users")
    assert s.value("webchat_connections", transport="tcp") == 1
    assert s.value("webchat_connections", transport="web") == 1
    assert s.value("webchat_users", scope="cluster") == 2
    assert s.value("webchat_events_total", type="join") == 2
    before = s

    for i in range(5):
        bob.say(f"hello {i}")
    alice.expect("bob: hello 4")
    bob.expect(lambda e: e.get("text") == "hello 4")  # bob's own copy is delivered too
    s = eventually(
        chat,
        lambda s: s.value("webchat_events_total", type="message") == 5,
        "five messages counted",
    )
    # Each message reached two sockets: ten deliveries at least, with their latency.
    delivered = s.value("webchat_deliveries_total") - before.value("webchat_deliveries_total")
    assert delivered >= 10
    writes = s.value("webchat_delivery_latency_seconds_count") - before.value(
        "webchat_delivery_latency_seconds_count"
    )
    assert 1 <= writes <= delivered  # per write, not per packet
    assert s.value("webchat_delivery_latency_seconds_bucket", le="+Inf") == s.value(
        "webchat_delivery_latency_seconds_count"
    )
    assert 0 < s.value("webchat_delivery_latency_seconds_sum") < writes * 5
    commits = s.value("webchat_history_commit_seconds_count", store="sqlite")
    assert commits > before.value("webchat_history_commit_seconds_count", store="sqlite")
    assert s.value("webchat_history_last_event_id") >= 7  # 2 joins, 5 messages

    bob.say("/join #dev")
    bob.expect(lambda e: e.get("type") == "enter" and e.get("room") == "#dev")
    eventually(chat, lambda s: s.value("webchat_rooms") == 2, "#dev counted")

    alice.line("/quit bye now")
    alice.read_until_closed()
    s = eventually(
        chat, lambda s: s.value("webchat_disconnects_total", reason="quit") == 1, "a quit"
    )
    assert s.value("webchat_connections", transport="tcp") == 0
    assert s.value("webchat_events_total", type="leave") == 1

    bob.close()  # the peer goes away
    s = eventually(
        chat, lambda s: s.value("webchat_disconnects_total", reason="closed") == 1, "a close"
    )
    assert s.value("webchat_users", scope="local") == 0
    # The writers of people who left are still counted: counters never go down.
    assert s.value("webchat_deliveries_total") >= delivered
    assert s.value("webchat_delivery_latency_seconds_count") >= writes


def test_rate_limited_lines_and_a_flooder_are_counted(make_chat):
    chat = make_chat(rate_per_second=NO_REFILL, rate_burst=2, flood_refusals=3, flood_window=60)
    calm = chat.tcp("calm")
    flooder = chat.tcp("flooder")
    for i in range(2 + 3):  # the burst, then three refused lines
        flooder.line(f"spam {i}")
    for _ in range(3):
        flooder.expect("slow down")
    s = eventually(
        chat, lambda s: s.value("webchat_rate_limited_lines_total") == 3, "three refused lines"
    )
    assert s.value("webchat_events_total", type="error") == 3  # each refusal is told
    flooder.line("one too many")
    assert b"disconnected: flooding" in flooder.read_until_closed()
    s = eventually(
        chat,
        lambda s: s.value("webchat_disconnects_total", reason="flooding") == 1,
        "the flooder's disconnect",
    )
    # Its refusals stay counted after it left (the last line refused is the fourth).
    assert s.value("webchat_rate_limited_lines_total") == 4
    calm.close()


def test_refused_connections_are_counted_by_reason(make_chat):
    chat = make_chat(max_connections_per_ip=1)
    other = "127.0.0.2"  # another address: the scrapes from 127.0.0.1 stay within its limit
    first = TcpClient(chat.tcp_port, source=other)
    first.join("first")
    refused = TcpClient(chat.tcp_port, source=other)
    assert b"too many connections" in refused.read_until_closed()
    eventually(
        chat,
        lambda s: s.value("webchat_refused_connections_total", reason="per_address") == 1,
        "a TCP refusal per address",
    )
    upgrade = "\r\n".join(
        [
            "GET /ws HTTP/1.1",
            f"Host: 127.0.0.1:{chat.web.server_port}",
            f"Origin: {chat.url}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    )
    browser = TcpClient(chat.web.server_port, source=other)
    browser.send(upgrade + "\r\n\r\n")
    assert browser.read_line().split()[1] == "429"
    browser.close()
    foreign = {
        "Origin": "https://evil.example",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    assert http_request(chat.web.server_port, "GET", "/ws", foreign).status == 403
    # That request's connection holds 127.0.0.1's one slot until its thread lets go of
    # it, a moment after the client read the answer: the scrape waits for it.
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 0)
    s = scrape(chat)
    assert s.value("webchat_refused_connections_total", reason="per_address") == 2
    assert s.value("webchat_refused_connections_total", reason="origin") == 1
    first.close()


def test_a_banned_join_is_counted(chat):
    chat.runtime.accounts.add_sanction(
        Sanction("ban", "#lobby", "troll", "troll", None, "op", "spam", None, time.time())
    )
    troll = WsClient(chat.url)
    troll.send({"type": "join", "nick": "troll"})
    assert troll.expect("error")["code"] == "banned"
    s = scrape(chat)
    assert s.value("webchat_refused_connections_total", reason="banned") == 1
    troll.close()


def test_the_token_guards_metrics_only(make_chat):
    chat = make_chat(metrics_token="s3cret-token")
    port = chat.web.server_port
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
        reply = http_request(port, "GET", "/metrics", headers)
        assert reply.status == 401, headers
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert b"webchat_" not in reply.body
    assert scrape(chat, "s3cret-token").value("webchat_history_up") == 1
    assert http_request(port, "GET", "/healthz").status == 200  # health stays open
    assert "s3cret-token" not in repr(chat.runtime.settings)


@pytest.mark.parametrize(
    ("closing", "code", "close_reason", "reason", "label"),
    [
        (True, 1000, "", "", "quit"),
        (True, 1000, "too slow: I am off", "", "quit"),  # a user's own words
        (False, 1000, "", "connection closed", "closed"),
        (False, 1000, "", "connection lost: Connection reset by peer", "closed"),
        (True, 1008, "too slow: more than 4096 events waiting to be sent", "", "too_slow"),
        (True, 1008, "too slow: its writer did not keep up", "", "too_slow"),
        (True, 1008, "flooding: more than 20 lines refused within 10 seconds", "", "flooding"),
        (True, 1008, "kicked by alice: spam", "", "kicked"),
        (True, 1008, "banned by alice", "", "banned"),
        (True, 1008, "ping timeout: no answer to the last ping", "", "timeout"),
        (True, 1009, "message too big: the limit is 16384 bytes", "", "error"),
        (True, 1002, "protocol error: bad frame", "", "error"),
        (True, 1011, "lost contact with the chat cluster; reconnect", "", "error"),
        (True, 1001, "server shutting down", "", "shutdown"),
    ],
)
def test_every_disconnect_reason_maps_to_one_label(closing, code, close_reason, reason, label):
    assert disconnect_reason(closing, code, close_reason, reason) == label
    assert label in DISCONNECT_REASONS


def test_a_histogram_counts_each_value_in_the_first_bucket_that_holds_it():
    h = Histogram((0.001, 0.01))
    for value in (0.0005, 0.001, 0.002, 0.01, 5.0):
        h.observe(value)
    assert h.counts == [2, 2, 1]  # le 0.001, le 0.01, +Inf
    assert h.sum == pytest.approx(5.0135)
    total = Histogram((0.001, 0.01))
    total.add(h)
    total.add(h)
    assert total.counts == [4, 4, 2] and h.copy().counts == h.counts
    assert len(Histogram(COMMIT_BUCKETS).counts) == len(COMMIT_BUCKETS) + 1
