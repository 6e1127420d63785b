"""webchat: one process, one conversation, for browsers and for `nc`.

:func:`create_app` is the Flask app factory (`flask run` finds it through
``.flaskenv``). It wires the hub, the web blueprint and, when the app is being
served, the TCP listener.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask import Flask
from flask.helpers import get_debug_flag
from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from webchat.bus.node import ClusterNode

from webchat.accounts import AccountStore
from webchat.accounts.guard import LoginGuard
from webchat.accounts.logins import Logins
from webchat.accounts.passwords import Passwords, read_password_file
from webchat.accounts.sqlite import SqliteAccounts
from webchat.bus import Bus
from webchat.bus.local import LocalBus
from webchat.core.hub import Hub
from webchat.core.limits import HubLimits
from webchat.history import SqliteHistory
from webchat.memory import limit_malloc_arenas
from webchat.policy.connections import ConnectionGate
from webchat.policy.files import connection_limit, raise_open_files_limit
from webchat.settings import Settings
from webchat.text import ChatError
from webchat.transports.tcp import ChatTCPServer
from webchat.transports.tls import TlsContext
from webchat.transports.tls_tcp import TlsChatTCPServer
from webchat.transports.udp import UdpChatServer
from webchat.transports.websocket import NoReaderThread

log = logging.getLogger(__name__)

__all__ = ["ChatRuntime", "Settings", "create_app"]


def asset_folder(name: str) -> str:
    """`templates/` and `static/` live at the repository's top level and inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return str(candidate)
    raise RuntimeError(f"webchat cannot find its {name}/ folder next to {here}")


class ChatRuntime:
    """Everything one running chat owns; kept in ``app.extensions['webchat']``."""

    def __init__(self, settings: Settings, history_path: str = ":memory:") -> None:
        self.settings = settings
        self.history = SqliteHistory(
            history_path,
            retention_events=settings.history_max_events,
            retention_seconds=settings.history_max_days * 86400,
        )
        limits = HubLimits.from_settings(settings)
        # Read first: a missing or bad password file stops the start, before any port opens.
        server_password = read_password_file(settings.server_password_file)
        # Likewise the TLS certificate and key (None: no TLS).
        self.tls = TlsContext.from_settings(settings)
        self.cluster: ClusterNode | None = None
        self.bus: Bus
        store: AccountStore
        if settings.redis_url:
            from webchat.accounts.redis import RedisAccounts
            from webchat.bus.node import ClusterNode

            self.cluster = ClusterNode(settings, self.history)
            self.bus = self.cluster.bus
            store = RedisAccounts(self.cluster.client, self.cluster.keys)
            logins = self._logins(settings, store, server_password)
            claims, first = self.cluster.claims, self.cluster.first_session_id
            self.hub = Hub(limits, self.bus, self.history, claims, first, logins)
            self.cluster.start(self.hub)
        else:
            self.bus = LocalBus(self.history)
            store = SqliteAccounts(history_path)
            logins = self._logins(settings, store, server_password)
            self.hub = Hub(limits, self.bus, self.history, logins=logins)
        self.accounts = store
        try:
            self.hub.moderation.load()  # the mutes in force survive a restart
        except ChatError as exc:
            log.error("mutes could not be loaded: %s", exc)
        self.tcp: ChatTCPServer | None = None
        self.tls_tcp: TlsChatTCPServer | None = None  # the TCP chat over TLS, with --tls-cert
        self.udp: UdpChatServer | None = None  # the UDP chat (nc -u, webchat-client --udp)
        # Every connection of the server, TCP chat and web port alike, takes a slot here.
        files = raise_open_files_limit()
        total = connection_limit(settings.max_connections, files)
        log.info(
            "connections: at most %d in all, %d from one address (0: no limit)",
            total,
            settings.max_connections_per_ip,
        )
        self.gate = ConnectionGate(total, settings.max_connections_per_ip)

    @staticmethod
    def _logins(settings: Settings, store: AccountStore, server_password: str | None) -> Logins:
        return Logins(
            store,
            Passwords(settings.min_password_chars, settings.max_password_bytes),
            LoginGuard(settings.login_failures, settings.login_window),
            server_password,
            settings.operators,
        )

    @property
    def tcp_port(self) -> int | None:
        return self.tcp.port if self.tcp is not None else None

    @property
    def tls_port(self) -> int | None:
        return self.tls_tcp.port if self.tls_tcp is not None else None

    @property
    def udp_port(self) -> int | None:
        return self.udp.port if self.udp is not None else None

    def start_udp(self) -> UdpChatServer | None:
        """The UDP chat, on the TCP chat's port number unless udp_port says otherwise.

        With that default, a port number already taken for UDP is logged and the chat
        runs without UDP (/healthz reports it); a chosen --udp-port must be free.
        """
        if self.udp is None:
            chosen = self.settings.udp_port
            port = chosen if chosen is not None else (self.tcp_port or self.settings.tcp_port)
            try:
                self.udp = UdpChatServer(self.settings, self.hub, self.gate, port)
            except OSError as exc:
                if chosen is not None:
                    raise
                if self.settings.tcp_port != 0:
                    log.error("the UDP chat cannot listen on port %d: %s", port, exc)
                    return None
                # TCP on "any free port" (tests): UDP takes any free port too.
                self.udp = UdpChatServer(self.settings, self.hub, self.gate, 0)
            self.udp.start()
        return self.udp

    def start_tcp(self) -> ChatTCPServer:
        if self.tcp is None:
            self.tcp = ChatTCPServer(self.settings, self.hub, self.gate)
            self.tcp.start()
        if self.tls is not None and self.tls_tcp is None:
            self.tls_tcp = TlsChatTCPServer(self.settings, self.hub, self.gate, self.tls)
            self.tls_tcp.start()
        return self.tcp

    def close(self, release_threads: bool = True) -> None:
        """Stop accepting, say goodbye to everyone, and release the port.

        ``release_threads`` False leaves the connections' threads waiting (see
        Hub.release), for a process that exits at once.
        """
        if self.tcp is not None:
            self.tcp.stop()
            self.tcp = None
        if self.tls_tcp is not None:
            self.tls_tcp.stop()
            self.tls_tcp = None
        self.hub.shutdown()
        if self.udp is not None:  # after the goodbyes, which it carries
            self.udp.stop()
            self.udp = None
        self.accounts.close()
        if self.cluster is not None:
            self.cluster.stop()
        if release_threads:
            self.hub.release()


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the app; `settings` defaults to the ``WEBCHAT_*`` environment."""
    if settings is None:
        settings = Settings.from_env(**overrides)
    limit_malloc_arenas()  # before the connection threads start allocating
    app = Flask(
        __name__,
        template_folder=asset_folder("templates"),
        static_folder=asset_folder("static"),
        instance_relative_config=True,
    )
    app.config["SOCK_SERVER_OPTIONS"] = {
        "max_message_size": settings.max_frame_bytes,
        "ping_interval": None,  # our writer thread pings, so only it writes
        "thread_class": NoReaderThread,  # the request thread reads (webchat/wsconn.py)
    }
    from webchat.web import bp, sock
    from webchat.web.metrics import init_metrics

    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(logging.INFO)  # say where to connect, who joins and leaves
    if settings.trusted_proxies > 0:  # the client's address and scheme, as the proxy saw them
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    app.register_blueprint(bp)
    sock.init_app(app)
    runtime = ChatRuntime(settings, history_path(app, settings))
    app.extensions["webchat"] = runtime
    init_metrics(app, runtime)  # GET /metrics, from this app's own registry
    start = settings.tcp_enabled if settings.tcp_enabled is not None else serving_under_flask_run()
    if start:
        runtime.start_tcp()
        if settings.udp_enabled:
            runtime.start_udp()
    return app


def history_path(app: Flask, settings: Settings) -> str:
    """The configured log, or one in the instance folder (made on first use)."""
    if settings.history_db:
        return settings.history_db
    try:
        os.makedirs(app.instance_path, exist_ok=True)
    except OSError as exc:
        log.error("cannot create the instance folder %s: %s", app.instance_path, exc)
    return os.path.join(app.instance_path, "webchat.sqlite3")


def serving_under_flask_run() -> bool:
    """True in the process that `flask run` serves from, and only there.

    `flask routes` and `flask shell` load the app too, and so does the reloader's
    watcher process under `flask run --debug`; none of them may bind the TCP port.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.info_name != "run":
        return False
    if os.environ.get("WERKZEUG_RUN_MAIN") == "true":
        return True
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload
