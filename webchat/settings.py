"""Every tunable of the server in one typed place.

Each field can be set from the environment as ``WEBCHAT_<FIELD NAME IN CAPITALS>``
(for example ``WEBCHAT_TCP_PORT=9000``) and, for the ``webchat`` command, by a flag.
Keeping them in one frozen dataclass means the hub, both transports and the docs
agree on one list of limits.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "WEBCHAT_"


@dataclass(frozen=True)
class Settings:
    """Server settings; the defaults are what `flask run` and `webchat` use."""

    web_host: str = "127.0.0.1"
    web_port: int = 5000
    tcp_host: str = "127.0.0.1"
    tcp_port: int = 8080
    # None: start the TCP listener only when serving (`flask run`, `webchat`),
    # never for `flask routes` or `flask shell`.
    tcp_enabled: bool | None = None
    # Longest TCP line, in bytes, not counting the line ending.
    max_line_bytes: int = 4096
    # Longest WebSocket frame from a client, in bytes.
    max_frame_bytes: int = 16384
    # Longest message text, in characters, over either transport.
    max_message_chars: int = 2000
    max_nick_chars: int = 24
    # Seconds a new TCP connection has to answer the nickname prompt.
    nick_timeout: float = 60.0
    # A session whose unsent backlog passes either bound is disconnected as too slow.
    outbox_max_events: int = 4096
    outbox_max_bytes: int = 2 * 1024 * 1024
    # Seconds a closing connection gets to flush its last words before it is cut.
    close_grace: float = 2.0
    # Seconds between WebSocket pings; a ping unanswered by the next one closes the socket.
    ping_interval: float = 25.0
    # Messages (and commands) per second each connection may send, after a burst of
    # rate_burst (a pasted block of lines passes). 0 turns the limit off.
    rate_per_second: float = 3.0
    rate_burst: int = 15
    # A connection with more than flood_refusals refused lines within flood_window
    # seconds is disconnected as flooding. 0 turns this off.
    flood_refusals: int = 20
    flood_window: float = 10.0
    # Open connections (TCP chat and web port together) allowed from one IP address;
    # 0 = no limit.
    max_connections_per_ip: int = 100
    # Open connections in all (TCP chat and web port); past it, newcomers are told the
    # server is full. 0: the open-files limit (raised to its hard limit at start)
    # minus a reserve of 128 (a quarter of a small limit).
    max_connections: int = 0
    # Seconds a web client has to send a request's headers, from its first byte owed.
    header_timeout: float = 5.0
    # The history log, a SQLite file. Empty: webchat.sqlite3 in Flask's instance folder.
    # ":memory:" keeps history for this run only.
    history_db: str = ""
    # Public events replayed to a newcomer; 0 turns replay off.
    history_replay: int = 50
    # Most events a reconnecting client (join with "since") is sent; more missed than
    # this and it gets a history_gap notice and the last history_replay events instead.
    history_resume_max: int = 1000
    # Retention: the log keeps at most this many events (0: no count limit) and none
    # older than this many days (0: no age limit). Enforced while the chat runs.
    history_max_events: int = 100_000
    history_max_days: float = 0.0
    # Rooms: how many one person may be in (#lobby counts), how many may exist at
    # once, the longest topic in characters, and how many seconds an empty room
    # lingers before it is forgotten (its history stays). Permanent rooms never
    # expire; #lobby always is one.
    max_rooms_per_user: int = 20
    max_rooms: int = 1000
    max_topic_chars: int = 300
    room_expiry: float = 300.0
    permanent_rooms: tuple[str, ...] = field(default_factory=tuple)
    # Crowds (webchat/core/presence.py, core/listings.py): in a room of more than
    # presence_batch_above people, joins and leaves (entries and exits) reach the room
    # as one "presence" update every presence_interval seconds instead of one event
    # each, so ten thousand people arriving is not fifty million deliveries. Each update
    # goes to the whole room: with one every 10 s, 10,000 people joined in 53 s here;
    # with one a second, 8,000 took twice as long as with 10 s (benchmarks/README.md).
    # People lists (the welcome, /who, /names) come in pages of at most people_page.
    presence_batch_above: int = 1000
    presence_interval: float = 10.0
    people_page: int = 1000
    # Several nodes: a Redis URL (redis://HOST:PORT/DB) makes this process one node of
    # the chat shared through that Redis. Empty: one process, no server needed.
    redis_url: str = ""
    # This node's name in logs and in the stream (default: host and process id).
    node_id: str = ""
    # Key prefix in Redis, so several chats can share one Redis.
    redis_prefix: str = "webchat:"
    # Events the shared stream keeps (approximately); a node that falls further
    # behind, or a new one, reads older ones from its own history.
    redis_stream_max: int = 100_000
    # Accounts: server operators are these registered nicks, logged in with their
    # password. Passwords are at least min_password_chars characters and at most
    # max_password_bytes bytes (argon2 never hashes more). login_failures wrong
    # passwords within login_window seconds, for one nick or from one address, hold
    # further attempts back until the window passes (0: no limit).
    operators: tuple[str, ...] = field(default_factory=tuple)
    min_password_chars: int = 8
    max_password_bytes: int = 1024
    login_failures: int = 5
    login_window: float = 60.0
    # A private server: a file holding the hash `webchat hash-password` printed.
    # Empty: anyone may join.
    server_password_file: str = ""
    # Reverse proxies in front of the web port whose X-Forwarded-For, -Proto, -Host and
    # -Port headers are believed (werkzeug's ProxyFix): the client's address for the
    # limits and bans, and https for the Origin rule. 0: none, the headers are ignored.
    trusted_proxies: int = 0
    # Extra origins (scheme://host[:port]) allowed to open /ws, besides the page's own.
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    # Monitoring (webchat/web/metrics.py): a bearer token /metrics asks for (empty: open),
    # and the log format of the `webchat` command: "text" or "json" (one object a line).
    metrics_token: str = field(default="", repr=False)  # a secret: never in a repr
    log_format: str = "text"
    # TLS (webchat/transports/tls.py): with a certificate (PEM, chain after the leaf) the
    # TCP chat also listens with TLS on tls_port, and the web port serves HTTPS and WSS.
    # tls_key empty: the key is in the certificate file. A client gets tls_handshake_timeout
    # seconds to finish its handshake, in its own thread. SIGHUP reloads both files.
    tls_cert: str = ""
    tls_key: str = ""
    tls_port: int = 6697
    tls_handshake_timeout: float = 10.0
    # UDP (webchat/transports/udp.py): the chat also listens for datagrams, by default on
    # the TCP chat's port number (udp_port None). A UDP session that sends nothing for
    # udp_idle_timeout seconds ends; cookie and instruction replies to addresses not yet
    # proven are held to udp_cookie_rate a second, for the whole server.
    udp_enabled: bool = True
    udp_port: int | None = None
    udp_idle_timeout: float = 60.0
    udp_cookie_rate: float = 200.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``WEBCHAT_*`` variables, then apply explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw.strip() != "":
                values[f.name] = parse_value(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def parse_value(name: str, type_name: object, raw: str) -> Any:
    """Turn one environment string into the field's type, with an error that names it."""
    text = raw.strip()
    kind = str(type_name)
    try:
        if kind.startswith("bool"):
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            if lowered in {"auto", "none"} and "None" in kind:
                return None
            raise ValueError(f"expected true or false, got {raw!r}")
        if kind in ("int", "int | None"):
            if kind != "int" and text.lower() in {"auto", "none"}:
                return None
            if not text.lstrip("-").isdigit():
                raise ValueError(f"expected a whole number, got {raw!r}")
            return int(text)
        if kind == "float":
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"expected a number, got {raw!r}") from None
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return text
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: {exc}") from None
