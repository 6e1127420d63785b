"""A node of a cluster in /metrics and /healthz: Redis up, Redis down, Redis back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis import Cluster, RedisServer, healthz
from tests.test_metrics import eventually


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, appendonly=True).start()
    yield server
    server.stop()


def test_a_node_reports_redis_up_down_and_back(cluster: Cluster, redis_server: RedisServer):
    a = cluster.node("a")
    b = cluster.node("b")
    alice = cluster.ws(a, "alice")
    cluster.tcp(b, "bob")
    s = eventually(a, lambda s: s.value("webchat_users", scope="cluster") == 2, "both users")
    assert s.value("webchat_users", scope="local") == 1
    assert s.value("webchat_redis_up") == 1
    alice.say("through the stream")
    alice.expect(lambda e: e.get("text") == "through the stream")
    s = eventually(
        a, lambda s: s.value("webchat_history_commit_seconds_count", store="redis") >= 1, "append"
    )
    assert s.value("webchat_history_commit_seconds_count", store="sqlite") >= 1
    assert s.value("webchat_delivery_latency_seconds_count") >= 1  # measured across the stream
    assert healthz(a)["cluster"]["ok"] is True  # 200 (healthz checks the code)

    redis_server.kill()
    eventually(a, lambda s: s.value("webchat_redis_up") == 0, "Redis seen down")
    health = healthz(a)  # 503 now
    assert health["status"] == "degraded" and health["cluster"]["ok"] is False
    assert any(p.startswith("cluster:") for p in health["problems"])

    redis_server.start()
    eventually(a, lambda s: s.value("webchat_redis_up") == 1, "Redis seen up again")
    assert healthz(a)["status"] == "ok"
