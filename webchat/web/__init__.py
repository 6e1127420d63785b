"""The browser side: the page, `/ws` (JSON over WebSocket), `/api/history` and `/healthz`.

flask-sock (simple-websocket) does only the handshake. Reading frames is wsproto's,
on the request thread (:mod:`webchat.transports.websocket`), and writing is ours:
the packets' ready-made JSON is framed once and sent whole, so no frame is ever
half-written and no per-receiver compression undoes "encode once" (uncompressed
messages are always allowed, RFC 7692 section 6).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from flask_sock import Sock

from webchat.core.events import LOBBY
from webchat.core.hub import Hub
from webchat.core.rooms import check_room
from webchat.core.serve import serve
from webchat.policy.connections import PER_ADDRESS, SERVER_FULL, ConnectionGate
from webchat.settings import Settings
from webchat.text import ChatError
from webchat.transports.websocket import Closed, FrameReader, WsConnection, WsTransport
from webchat.web.health import health
from webchat.web.server import COUNTED

log = logging.getLogger(__name__)

bp = Blueprint("chat", __name__)
sock = Sock()


def _settings() -> Settings:
    settings: Settings = current_app.extensions["webchat"].settings
    return settings


def _hub() -> Hub:
    hub: Hub = current_app.extensions["webchat"].hub
    return hub


@bp.get("/")
def index() -> str:
    return render_template("index.html", max_message_chars=_settings().max_message_chars)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    """200 while the chat works; 503 and "degraded" while the chat goes on without
    something: the history, the cluster's Redis, or a listener (webchat/web/health.py)."""
    port = request.environ.get("SERVER_PORT")
    web_port = int(port) if port and port.isdecimal() else None
    answer = health(current_app.extensions["webchat"], web_port, request.scheme == "https")
    return answer, 200 if answer["status"] == "ok" else 503


HISTORY_PAGE_MAX = 200


@bp.get("/api/history")
def api_history() -> Response | tuple[dict[str, Any], int] | dict[str, Any]:
    """A room's older public events for scroll-back: ?room=%23dev&before=ID&limit=N, oldest first.

    The room defaults to #lobby. A room that no longer exists still has its history.
    """
    runtime = current_app.extensions["webchat"]
    try:
        before = _query_int("before", None, 1)
        limit = _query_int("limit", 50, 1) or 50
        room = check_room(request.args.get("room") or LOBBY)
    except ValueError as exc:
        code = exc.code if isinstance(exc, ChatError) else "bad_query"
        return {"error": str(exc), "code": code}, 400
    if runtime.history.error is not None:
        return {"error": runtime.history.error, "events": [], "more": False}, 503
    limit = min(limit, HISTORY_PAGE_MAX)
    events = runtime.hub.membership.history(room, limit + 1, before=before)
    more = len(events) > limit
    events = events[-limit:]
    return {"events": [e.as_dict() for e in events], "more": more}


def _query_int(name: str, default: int | None, minimum: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdecimal() or int(raw) < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, not {raw!r}")
    return int(raw)


def _normal_origin(origin: str) -> str:
    """Lower-case, no trailing slash, and no default port, so equal origins compare equal."""
    origin = origin.rstrip("/").lower()
    for scheme, port in (("http", ":80"), ("https", ":443")):
        if origin.startswith(scheme + "://") and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def own_origins(scheme: str, host: str, server_port: str) -> set[str]:
    """The origins of the page this server serves, as seen through this request's Host.

    A client that leaves the port out of Host reached us on the port we listen on.
    """
    origins = {_normal_origin(f"{scheme}://{host}")}
    has_port = "]:" in host if host.startswith("[") else ":" in host
    if host and not has_port:
        origins.add(_normal_origin(f"{scheme}://{host}:{server_port}"))
    return origins


def origin_allowed(origin: str | None, own: set[str], allowed: tuple[str, ...]) -> bool:
    """Browsers always send Origin; a page elsewhere must not drive our socket."""
    if origin is None:
        return True  # not a browser: a bot or a script
    wanted = _normal_origin(origin)
    return wanted in own or wanted in {_normal_origin(a) for a in allowed}


@bp.before_request
def guard_websocket() -> Response | None:
    if request.endpoint != "chat.websocket":
        return None
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return Response("This is the WebSocket endpoint; connect with a WebSocket client.\n", 400)
    origin = request.headers.get("Origin")
    own = own_origins(request.scheme, request.host, str(request.environ.get("SERVER_PORT", "")))
    if not origin_allowed(origin, own, _settings().allowed_origins):
        log.warning("refused WebSocket from foreign origin %s", origin)
        _hub().stats.refused.add("origin")
        return Response(f"Origin {origin} is not allowed to use this chat.\n", 403)
    # Served by another server (gunicorn), this connection holds no slot yet: refused
    # before the upgrade, so every client learns why (the handler takes the slot).
    gate: ConnectionGate = current_app.extensions["webchat"].gate
    address = request.remote_addr or "unknown"
    if not request.environ.get(COUNTED) and (reason := _full(gate, address)) is not None:
        _hub().stats.refused.add(reason)
        status = 503 if reason == SERVER_FULL else 429
        text = gate.explain(reason, address)
        return Response(text[0].upper() + text[1:] + ".\n", status, {"Retry-After": "5"})
    return None


def _full(gate: ConnectionGate, address: str) -> str | None:
    """Why one more connection would be refused now, without taking a slot."""
    if gate.total > 0 and gate.open >= gate.total:
        return SERVER_FULL
    if gate.limit > 0 and gate.count(address) >= gate.limit:
        return PER_ADDRESS
    return None


@sock.route("/ws", bp=bp)  # type: ignore[untyped-decorator]
def websocket(ws: Any) -> None:
    runtime = current_app.extensions["webchat"]
    settings: Settings = runtime.settings
    hub: Hub = runtime.hub
    address = request.remote_addr or "unknown"
    ws.sock.settimeout(None)  # the header deadline is over: a chat may stay quiet for hours
    transport = WsTransport(ws.sock, settings.ping_interval)
    reader = FrameReader(ws, transport, settings.max_frame_bytes)
    ws.connected = False  # flask-sock must not send a close of its own when we return
    counted = bool(request.environ.get(COUNTED))  # our server took the slot at accept
    try:
        if not counted and (reason := runtime.gate.acquire(address)) is not None:
            hub.stats.refused.add(reason)
            with contextlib.suppress(OSError):
                transport.send_goodbye(runtime.gate.explain(reason, address), 1008)
            return
        try:
            conn = WsConnection(reader, transport, settings.nick_timeout, address)
            serve(hub, conn, settings.close_grace)
        finally:
            if not counted:
                runtime.gate.release(address)
    finally:
        _finish(reader, transport, settings.close_grace)


def _finish(reader: FrameReader, transport: WsTransport, grace: float) -> None:
    """Wait briefly for the client's answer to our close frame, then end the TCP connection."""
    if transport.peer_close is None:
        deadline = time.monotonic() + grace
        with contextlib.suppress(Closed):
            while (left := deadline - time.monotonic()) > 0:
                reader.receive(left)
    transport.abort()
