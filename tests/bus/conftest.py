"""The cluster tests' nodes: started on the test's own redis-server, all stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis import Cluster, RedisServer


@pytest.fixture
def cluster(redis_server: RedisServer) -> Iterator[Cluster]:
    """Nodes on the ``redis_server`` of the test's own module (with or without AOF)."""
    c = Cluster(redis_server.url)
    yield c
    c.close()
