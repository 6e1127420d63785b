"""This process as one node of a cluster: the Redis connections and what runs on them.

Imported only when ``--redis-url`` is set, so the embedded chat never needs the
``redis`` package.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import TYPE_CHECKING

from webchat.bus.cluster import (
    COMMAND_TIMEOUT,
    Heartbeat,
    Keys,
    RedisClaims,
    connect,
    node_number,
    session_base,
)
from webchat.bus.redis import READ_BLOCK_MS, RedisBus
from webchat.history import History
from webchat.settings import Settings

if TYPE_CHECKING:
    from webchat.core.hub import Hub

log = logging.getLogger(__name__)


class ClusterNode:
    """Connects at start (and fails loudly if Redis cannot be reached then)."""

    def __init__(self, settings: Settings, history: History) -> None:
        self.name = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.keys = Keys(settings.redis_prefix)
        client = connect(settings.redis_url)
        reader = connect(settings.redis_url, COMMAND_TIMEOUT + READ_BLOCK_MS / 1000)
        self.number = node_number(client, self.keys)
        self.bus = RedisBus(
            client,
            reader,
            history,
            self.name,
            keys=self.keys,
            maxlen=settings.redis_stream_max,
        )
        self.claims = RedisClaims(client, self.keys)
        self.first_session_id = session_base(self.number) + 1
        self._users = self.bus.catch_up()
        self.client = client
        self._maxlen = settings.redis_stream_max
        self.heartbeat: Heartbeat | None = None
        log.info(
            "cluster: node %s (number %d) joined through %s; %d users on other nodes",
            self.name,
            self.number,
            settings.redis_url,
            len(self._users),
        )

    def start(self, hub: Hub) -> None:
        """Mirror who is on the other nodes, then keep this node's heartbeat going."""
        hub.people.mirror_all(self._users)
        self.heartbeat = Heartbeat(
            self.client,
            self.keys,
            self.number,
            self._maxlen,
            hub.people.lost_contact,
            lambda: self._register_again(hub),
            self.bus.last_id,
        )
        self.heartbeat.start()

    def _register_again(self, hub: Hub) -> None:
        """Redis came back without its data: claim this node's nicks and users again.

        Whoever lost their nick to someone else meanwhile is told so and disconnected.
        """
        with hub.lock:
            sessions = list(hub.roster.sessions.values())
            states = [s.state() for s in sessions]
        pipe = self.client.pipeline(transaction=False)
        for session, state in zip(sessions, states, strict=True):
            pipe.hsetnx(self.keys.nicks, session.key, session.id)
            pipe.hset(self.keys.users, str(session.id), json.dumps(state))
        answers = pipe.execute()
        for session, claimed in zip(sessions, answers[::2], strict=True):
            holder = self.client.hget(self.keys.nicks, session.key)
            if not claimed and holder != str(session.id).encode():
                reason = "your nick was taken while the chat cluster was down"
                hub.close_session(session, reason, 1011)
        log.warning("cluster: Redis had lost this node; %d users registered again", len(sessions))

    def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
