"""``GET /metrics``: the chat's figures in the Prometheus text format, from prometheus_client.

Nothing here is counted as it happens: the core keeps plain numbers
(:mod:`webchat.core.stats`, the writers, the buses' commit times) and
:class:`ChatCollector` reads them when Prometheus scrapes. Each app has a
:class:`~prometheus_client.CollectorRegistry` of its own (never the process-wide
default one), so any number of chats can run in one process, as the tests do.

With ``metrics_token`` set, a scrape must carry ``Authorization: Bearer TOKEN``;
anything else gets 401.
"""

from __future__ import annotations

import hmac
import platform
import ssl
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from webchat.core.session import Session
from webchat.core.stats import DISCONNECT_REASONS, Histogram
from webchat.transports.tls import TlsStream
from webchat.web.health import listeners

if TYPE_CHECKING:
    from webchat import ChatRuntime

metrics_bp = Blueprint("metrics", __name__)

# Transports every scrape reports, at 0 when nobody uses them (a series is always there).
TRANSPORTS = ("tcp", "web", "tls", "udp")
# Refusal reasons every scrape reports, at 0 until one happens.
REFUSALS = ("per_address", "server_full", "origin", "banned")
REGISTRY_KEY = "webchat.metrics"
# What a TLS connection's socket is (webchat's own TLS stream, or the standard one).
TLS_SOCKETS = (TlsStream, ssl.SSLSocket)


def build_version() -> str:
    try:
        return version("webchat")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class ChatCollector:
    """Reads one chat's figures at scrape time; registered in that app's own registry."""

    def __init__(self, runtime: ChatRuntime) -> None:
        self.runtime = runtime
        self.version = build_version()

    def describe(self) -> Iterable[Metric]:
        return []  # the names are not needed up front: one collector per registry

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        hub = runtime.hub
        with hub.lock:  # a consistent snapshot, copied quickly; everything else is off it
            sessions = list(hub.roster.sessions.values())
            remote = len(hub.roster.remote)
            rooms = len(hub.rooms.listing())
            events = dict(hub.stats.events)
            disconnects = dict(hub.stats.disconnects)
            rate_limited = hub.stats.rate_limited_gone + sum(s.bucket.refused for s in sessions)
        delivered, latency = hub.delivery.totals()

        info = InfoMetricFamily("webchat_build", "The running webchat: version and Python.")
        info.add_metric([], {"version": self.version, "python": platform.python_version()})
        yield info

        by_transport = Counter(_transport(s) for s in sessions)
        yield _gauge(
            "webchat_connections",
            "Joined connections on this node, by transport: tcp, web, tls (the TCP "
            "chat's TLS port) and udp.",
            "transport",
            {**dict.fromkeys(TRANSPORTS, 0), **by_transport},
        )
        yield _gauge(
            "webchat_users",
            "Users online: on this node (local), and on every node of the chat (cluster).",
            "scope",
            {"local": len(sessions), "cluster": len(sessions) + remote},
        )
        yield GaugeMetricFamily("webchat_rooms", "Rooms that exist now, #lobby included.", rooms)
        yield _counter(
            "webchat_events",
            "Events this node published, by type (replies to one user included).",
            "type",
            events,
        )
        yield CounterMetricFamily(
            "webchat_deliveries",
            "Packets written to clients' sockets (live events, replies and replayed history).",
            value=delivered,
        )
        yield _histogram(
            "webchat_delivery_latency_seconds",
            "Seconds from publishing an event to writing it to a socket, measured on the "
            "first event of each write.",
            None,
            {"": latency},
        )
        yield _histogram(
            "webchat_history_commit_seconds",
            "Seconds one batch of events took to go into a store: the SQLite log (sqlite) "
            "or, on a node of a cluster, the Redis stream (redis).",
            "store",
            _commit_times(runtime),
        )
        yield _counter(
            "webchat_disconnects",
            "Sessions of this node that ended, by reason.",
            "reason",
            {**dict.fromkeys(DISCONNECT_REASONS, 0), **disconnects},
        )
        yield CounterMetricFamily(
            "webchat_rate_limited_lines",
            "Lines refused because their connection sent faster than the rate limit.",
            value=rate_limited,
        )
        yield _counter(
            "webchat_refused_connections",
            "Connections (and joins) refused, by reason.",
            "reason",
            {**dict.fromkeys(REFUSALS, 0), **hub.stats.refused.snapshot()},
        )
        history_error = runtime.history.error
        yield GaugeMetricFamily(
            "webchat_history_up",
            "1 while the history log works, 0 while it is off.",
            value=int(history_error is None),
        )
        yield GaugeMetricFamily(
            "webchat_history_last_event_id",
            "The highest event id in the history log.",
            value=runtime.history.last_id(),
        )
        if runtime.cluster is not None:
            yield GaugeMetricFamily(
                "webchat_redis_up",
                "1 while this node reaches the cluster's Redis, 0 while it cannot.",
                value=int(runtime.bus.error is None),
            )
        gate = getattr(runtime, "gate", None)  # every open socket, joined or not
        if gate is not None:
            yield GaugeMetricFamily(
                "webchat_open_connections",
                "Open connections of every kind (TCP chat and web port, joined or not).",
                value=gate.open,
            )
            yield GaugeMetricFamily(
                "webchat_max_connections",
                "The most open connections the server takes (0: no limit).",
                value=gate.total,
            )
        ports = listeners(runtime, None, False)
        yield _gauge(
            "webchat_listener_up",
            "1 for each listener that is listening (the web one answers this scrape).",
            "listener",
            {name: int(state["listening"]) for name, state in ports.items()},
        )


def _transport(session: Session) -> str:
    """How a session is connected: its transport's kind, and "tls" for the TCP chat's
    TLS port (a terminal there is a "tcp" session on a TLS socket)."""
    kind = session.via
    if kind == "tcp" and isinstance(getattr(session.transport, "sock", None), TLS_SOCKETS):
        return "tls"
    return kind


def _gauge(name: str, doc: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _counter(name: str, doc: str, label: str, values: Mapping[str, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _histogram(
    name: str, doc: str, label: str | None, histograms: Mapping[str, Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label] if label else [])
    for key, histogram in sorted(histograms.items()):
        counts = histogram.counts[:]  # one copy: buckets and count agree
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*histogram.bounds, float("inf")), counts, strict=True):
            total += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
        family.add_metric([key] if label else [], buckets, histogram.sum)
    return family


def _commit_times(runtime: ChatRuntime) -> dict[str, Histogram]:
    """The bus's commit-time histograms by store (LocalBus: sqlite; RedisBus: both)."""
    times: Any = getattr(runtime.bus, "commit_times", None)
    if not isinstance(times, Mapping):
        return {}
    return {str(k): v for k, v in times.items() if isinstance(v, Histogram)}


def init_metrics(app: Flask, runtime: ChatRuntime) -> None:
    """Give the app its own registry with this chat's collector, and the route."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ChatCollector(runtime))
    app.extensions[REGISTRY_KEY] = registry
    app.register_blueprint(metrics_bp)


def token_ok(token: str, header: str | None) -> bool:
    """True when no token is set, or when the header is ``Bearer <that token>``."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@metrics_bp.get("/metrics")
def metrics() -> Response:
    runtime: ChatRuntime = current_app.extensions["webchat"]
    if not token_ok(runtime.settings.metrics_token, request.headers.get("Authorization")):
        return Response(
            "A bearer token is needed for /metrics.\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="webchat metrics"'},
            mimetype="text/plain",
        )
    registry: CollectorRegistry = current_app.extensions[REGISTRY_KEY]
    # The text format, or OpenMetrics when the scraper asks for it (Prometheus does).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), 200, {"Content-Type": content_type})
