"""The browser side: the page, `/ws` (JSON over WebSocket) and `/healthz`.

flask-sock (simple-websocket) does the handshake and reads frames. Writing is ours:
the session's writer thread frames the packets' ready-made JSON itself and sends
them with one ``sendall``, so no frame is ever half-written and no per-receiver
compression undoes "encode once" (uncompressed messages are always allowed,
RFC 7692 section 6).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from flask_sock import Sock

from webchat.commands import handle_input
from webchat.events import Event, utc_now
from webchat.hub import Hub
from webchat.session import Session
from webchat.settings import Settings
from webchat.text import NickError, clean_text
from webchat.wsconn import Closed, FrameReader, WsTransport

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
def healthz() -> dict[str, Any]:
    """200 while the chat works; "degraded" when history is off but the chat goes on."""
    runtime = current_app.extensions["webchat"]
    error = runtime.store.error
    return {
        "status": "ok" if error is None else "degraded",
        "users": runtime.hub.count(),
        "tcp": {"listening": runtime.tcp is not None, "port": runtime.tcp_port},
        "history": {"ok": error is None, "error": error, "last_id": runtime.store.last_id()},
    }


HISTORY_PAGE_MAX = 200


@bp.get("/api/history")
def api_history() -> Response | tuple[dict[str, Any], int] | dict[str, Any]:
    """Older public events for the page's scroll-back: ?before=ID&limit=N, oldest first."""
    runtime = current_app.extensions["webchat"]
    try:
        before = _query_int("before", None, 1)
        limit = _query_int("limit", 50, 1) or 50
    except ValueError as exc:
        return {"error": str(exc)}, 400
    if runtime.store.error is not None:
        return {"error": runtime.store.error, "events": [], "more": False}, 503
    limit = min(limit, HISTORY_PAGE_MAX)
    events = runtime.hub.history(limit + 1, before=before)
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
        return Response(f"Origin {origin} is not allowed to use this chat.\n", 403)
    # Refused before the upgrade, so every client learns why (the handler checks again).
    limiter = current_app.extensions["webchat"].addresses
    address = request.remote_addr or "unknown"
    if limiter.limit > 0 and limiter.count(address) >= limiter.limit:
        return Response(
            f"Too many connections from {address} (limit {limiter.limit}); close one first.\n",
            429,
        )
    return None


@sock.route("/ws", bp=bp)  # type: ignore[untyped-decorator]
def websocket(ws: Any) -> None:
    runtime = current_app.extensions["webchat"]
    settings: Settings = runtime.settings
    hub: Hub = runtime.hub
    address = request.remote_addr or "unknown"
    limiter = runtime.addresses
    transport = WsTransport(ws.sock, settings.ping_interval)
    reader = FrameReader(ws, transport, settings.max_frame_bytes)
    ws.connected = False  # flask-sock must not send a close of its own when we return
    try:
        if not limiter.acquire(address):
            with contextlib.suppress(OSError):
                transport.send_goodbye(
                    f"too many connections from {address} (limit {limiter.limit})", 1008
                )
            return
        try:
            _serve(reader, transport, settings, hub)
        finally:
            limiter.release(address)
    finally:
        _finish(reader, transport, settings.close_grace)


def _serve(reader: FrameReader, transport: WsTransport, settings: Settings, hub: Hub) -> None:
    try:
        session = _wait_for_join(reader, hub, transport, settings)
    except Closed as exc:
        if exc.code in (1002, 1009):  # our close to make, with the reason
            with contextlib.suppress(OSError):
                transport.send_goodbye(exc.reason, exc.code)
        return
    if session is None:
        return
    reader.direct = False  # from now on the session's writer sends everything
    reader.wake_writer = session.wake.set
    session.start_writer()
    reason = "connection closed"
    try:
        while not session.closing:
            raw = reader.receive(None)
            if raw is not None:
                _handle_frame(hub, session, raw)
    except Closed as exc:
        reason = exc.reason if exc.code in (1002, 1009) else "connection closed"
        if exc.code in (1002, 1009):
            session.close(exc.reason, exc.code)
    finally:
        hub.leave(session, session.close_reason if session.closing else reason)
        session.wait_closed(settings.close_grace)


def _finish(reader: FrameReader, transport: WsTransport, grace: float) -> None:
    """Wait briefly for the client's answer to our close frame, then end the TCP connection."""
    if transport.peer_close is None:
        deadline = time.monotonic() + grace
        with contextlib.suppress(Closed):
            while (left := deadline - time.monotonic()) > 0:
                reader.receive(left)
    transport.abort()


def _decode(raw: str | bytes) -> dict[str, Any] | str:
    """Parse a client frame into a dict, or return a sentence that says what is wrong."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return 'frames must be JSON, like {"type":"say","text":"hello"}'
    if not isinstance(frame, dict):
        return 'frames must be JSON objects, like {"type":"say","text":"hello"}'
    return frame


def _wait_for_join(
    reader: FrameReader, hub: Hub, transport: WsTransport, settings: Settings
) -> Session | None:
    """Until a join succeeds, the handler thread is the socket's only writer."""
    deadline = time.monotonic() + settings.nick_timeout
    while True:
        raw = reader.receive(max(0.0, deadline - time.monotonic()))
        if raw is None:
            transport.send_goodbye(f"no join within {settings.nick_timeout:g} seconds", 1008)
            return None
        frame = _decode(raw)
        if isinstance(frame, str):
            _refuse(transport, frame, "bad_frame")
            continue
        if frame.get("type") != "join":
            _refuse(transport, 'join first: {"type":"join","nick":"NAME"}', "join_first")
            continue
        nick = frame.get("nick")
        if not isinstance(nick, str):
            _refuse(transport, "join needs a nick, as a string", "nick_empty")
            continue
        since = frame.get("since")
        if since is not None and (type(since) is not int or since < 0):
            _refuse(transport, "since must be the id of the last event you saw, >= 0", "bad_frame")
            continue
        try:
            return hub.join(clean_text(nick), transport, since)
        except NickError as exc:
            _refuse(transport, str(exc), exc.code)


def _refuse(transport: WsTransport, text: str, code: str) -> None:
    transport.send_event(Event("error", text=text, ts=utc_now(), extra={"code": code}))


def _handle_frame(hub: Hub, session: Session, raw: str | bytes) -> None:
    frame = _decode(raw)
    if isinstance(frame, str):
        hub.tell(session, "error", frame, code="bad_frame")
        return
    kind = frame.get("type")
    if kind == "say":
        text = frame.get("text")
        if not isinstance(text, str):
            hub.tell(session, "error", "say needs a text, as a string", code="bad_frame")
            return
        handle_input(hub, session, text)
    elif kind == "join":
        hub.tell(session, "error", f"already joined as {session.nick}", code="already_joined")
    else:
        hub.tell(
            session,
            "error",
            f'unknown frame type {kind!r}; send {{"type":"say","text":"..."}}',
            code="bad_frame",
        )
