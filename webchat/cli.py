"""The `webchat` command: serve the page, /ws and the TCP chat from one process."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, NoReturn

from webchat import create_app
from webchat.accounts.passwords import Passwords
from webchat.logs import configure_logging
from webchat.settings import ENV_PREFIX, Settings, parse_value
from webchat.text import ChatError
from webchat.transports.tls import reload_on_sighup
from webchat.web.server import web_server

# Seconds between the web server's looks for a shutdown request: SIGTERM waits up to
# this long before the goodbyes start, and the loop wakes this often when idle.
POLL_INTERVAL = 0.1

log = logging.getLogger(__name__)

HELP = {
    "web_host": "address for the web page and /ws",
    "web_port": "port for the web page and /ws",
    "tcp_host": "address for the TCP chat (nc)",
    "tcp_port": "port for the TCP chat (nc)",
    "tcp_enabled": "run the TCP chat: true or false",
    "max_line_bytes": "longest TCP line, in bytes",
    "max_frame_bytes": "longest WebSocket frame from a client, in bytes",
    "max_message_chars": "longest message, in characters",
    "max_nick_chars": "longest nickname, in characters",
    "nick_timeout": "seconds to give a nickname (TCP) or to join (WebSocket)",
    "outbox_max_events": "events a client may lag behind before it is cut off as too slow",
    "outbox_max_bytes": "bytes a client may lag behind before it is cut off as too slow",
    "close_grace": "seconds a closing connection gets to flush its last words",
    "ping_interval": "seconds between WebSocket pings (0 turns them off)",
    "rate_per_second": "lines per second each connection may send after its burst (0: no limit)",
    "rate_burst": "lines a connection may send at once, e.g. a pasted block",
    "flood_refusals": "refused lines within the flood window that disconnect (0: never)",
    "flood_window": "seconds over which refused lines are counted",
    "max_connections_per_ip": "open connections allowed from one IP address (0: no limit)",
    "max_connections": "open connections in all, TCP and web (0: the open-files limit "
    "minus a reserve)",
    "header_timeout": "seconds a web client has to send a request's headers",
    "history_db": "SQLite file for history (default: webchat.sqlite3 in the instance folder; "
    ":memory: for none on disk)",
    "history_replay": "events replayed to a newcomer (0: none)",
    "history_resume_max": "most missed events a reconnecting page is sent",
    "history_max_events": "events the history keeps (0: no limit)",
    "history_max_days": "days the history keeps events (0: no limit)",
    "max_rooms_per_user": "rooms one person may be in at once, #lobby included",
    "max_rooms": "rooms that may exist at once",
    "max_topic_chars": "longest room topic, in characters",
    "room_expiry": "seconds an empty room lingers before it is forgotten (its history stays)",
    "permanent_rooms": "comma-separated rooms that always exist (#lobby always does)",
    "presence_batch_above": "in a room of more people than this, joins and leaves arrive as "
    "one presence update per interval",
    "presence_interval": "seconds between presence updates in a crowded room",
    "people_page": "most people in one list (the welcome, /who, /names); the rest by page",
    "redis_url": "make this process one node of a chat shared through this Redis, "
    "e.g. redis://127.0.0.1:6379/0 (needs the redis extra)",
    "node_id": "this node's name in logs and in the stream (default: host and pid)",
    "redis_prefix": "key prefix in Redis, so several chats can share one",
    "redis_stream_max": "events the shared Redis stream keeps (approximately)",
    "operators": "comma-separated registered nicks that are server operators",
    "min_password_chars": "shortest password, in characters",
    "max_password_bytes": "longest password, in bytes",
    "login_failures": "wrong passwords (per nick, per address) before attempts are held back "
    "(0: no limit)",
    "login_window": "seconds over which wrong passwords are counted",
    "server_password_file": "file with a hash from `webchat hash-password`: joining then "
    "needs that password",
    "trusted_proxies": "reverse proxies in front whose X-Forwarded-* headers are believed "
    "(0: none)",
    "allowed_origins": "comma-separated extra origins allowed to open /ws",
    "metrics_token": "bearer token GET /metrics asks for (empty: /metrics is open); "
    "prefer the variable, flags show in the process list",
    "log_format": "log lines as text or json (one JSON object a line)",
    "tls_cert": "certificate file (PEM, chain after it): the TCP chat also listens with TLS "
    "and the web port serves HTTPS and WSS; SIGHUP reloads it",
    "tls_key": "private key file (PEM) for --tls-cert (default: in the certificate file)",
    "tls_port": "port for the TCP chat over TLS (with --tls-cert)",
    "tls_handshake_timeout": "seconds a client gets to finish its TLS handshake",
    "udp_enabled": "run the UDP chat (nc -u, webchat-client --udp): true or false",
    "udp_port": "port for the UDP chat (auto: the TCP chat's port number)",
    "udp_idle_timeout": "seconds of silence after which a UDP session ends",
    "udp_cookie_rate": "replies per second to UDP addresses not yet proven (cookies, "
    "instructions), for the whole server",
}


def value_parser(name: str, type_name: object) -> Callable[[str], Any]:
    """argparse calls this on the flag's text; errors name the variable and the value."""

    def parse(raw: str) -> Any:
        try:
            return parse_value(name, type_name, raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webchat",
        # A mistyped or shortened flag is an error: --max-connections must never quietly
        # mean --max-connections-per-ip.
        allow_abbrev=False,
        description="Run the chat: a web page and a TCP port (for nc) in one conversation. "
        "`webchat hash-password` makes a hash for --server-password-file.",
        epilog=f"Every option is also an environment variable, e.g. {ENV_PREFIX}TCP_PORT=9000.",
    )
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        default = f.default if f.default is not dataclasses.MISSING else "none"
        if default is None:
            default = "auto"
        parser.add_argument(
            flag,
            dest=f.name,
            metavar=f.name.split("_")[-1].upper(),
            type=value_parser(f.name, f.type),
            help=f"{HELP[f.name]} (env {env}; default {default})",
        )
    parser.add_argument("--no-tcp", action="store_true", help="do not run the TCP chat")
    parser.add_argument("--no-udp", action="store_true", help="do not run the UDP chat")
    return parser


def hash_password(argv: Sequence[str]) -> int:
    """`webchat hash-password`: print the hash for --server-password-file.

    The password is read from standard input (one line) or, at a terminal, asked
    twice without echo; it is never a command-line argument, which other users of
    the machine could read in the process list.
    """
    parser = argparse.ArgumentParser(
        prog="webchat hash-password",
        allow_abbrev=False,
        description="Read a password (stdin, or asked at the terminal) and print its argon2 "
        "hash, for --server-password-file.",
    )
    parser.parse_args(argv)
    settings = Settings.from_env()
    if sys.stdin.isatty():
        password = getpass.getpass("Server password: ")
        if getpass.getpass("Again: ") != password:
            print("webchat: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        print(Passwords(settings.min_password_chars, settings.max_password_bytes).hash(password))
    except ChatError as exc:
        print(f"webchat: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["hash-password"]:
        return hash_password(argv[1:])
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)
    }
    if args.no_tcp:
        overrides["tcp_enabled"] = False
    elif overrides["tcp_enabled"] is None:
        overrides["tcp_enabled"] = True
    if args.no_udp:
        overrides["udp_enabled"] = False
    try:
        settings = Settings.from_env(**overrides)
        configure_logging(settings.log_format)  # before the app: it logs as it starts
    except ValueError as exc:
        print(f"webchat: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)
        server = web_server(app, settings.web_host, settings.web_port)
    except OSError as exc:
        print(f"webchat: cannot listen: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"webchat: {exc}", file=sys.stderr)
        return 2
    runtime = app.extensions["webchat"]

    def stopping() -> None:
        log.info("SIGTERM: stopping")  # here, not in the handler: it may hold the log's lock
        server.shutdown()

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=stopping, daemon=True).start()

    # Before the banner: whoever reads it may stop us at once.
    signal.signal(signal.SIGTERM, stop)
    if runtime.tls is not None:
        reload_on_sighup(runtime.tls)  # a renewed certificate, without dropping anyone
    else:  # `systemctl reload` sends it (docs/webchat.service): never a reason to stop
        signal.signal(signal.SIGHUP, lambda signum, frame: log.info("SIGHUP: nothing to reload"))
    text = banner(
        settings, server.server_port, runtime.tcp_port, runtime.tls_port, runtime.udp_port
    )
    if settings.log_format == "json":
        log.info("%s", text)  # standard output too is one JSON object a line
    else:
        print(text, flush=True)
    try:
        server.serve_forever(poll_interval=POLL_INTERVAL)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        runtime.close(release_threads=False)  # the process ends now, and they with it
        log.info("stopped")
    end_process(0)


def end_process(code: int) -> NoReturn:
    """Exit now that everything is closed (the history, the accounts, every socket said
    goodbye), without Python's own teardown: with ten thousand connection threads it took
    2.7 s after the chat had stopped, and a service manager may not wait that long."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def banner(
    settings: Settings,
    web_port: int,
    tcp_port: int | None,
    tls_port: int | None = None,
    udp_port: int | None = None,
) -> str:
    """Tell the person who started it where everyone connects."""
    web_host = (
        "localhost" if settings.web_host in {"0.0.0.0", "::", "127.0.0.1"} else settings.web_host
    )
    scheme = "https" if settings.tls_cert else "http"
    lines = ["webchat is running.", f"  Browser:  {scheme}://{web_host}:{web_port}/"]
    if tcp_port is not None:
        tcp_host = (
            "localhost"
            if settings.tcp_host in {"0.0.0.0", "::", "127.0.0.1"}
            else settings.tcp_host
        )
        lines.append(
            f"  Terminal: nc {tcp_host} {tcp_port}    (or: webchat-client {tcp_host} {tcp_port})"
        )
        if tls_port is not None:
            lines.append(
                f"  TLS:      openssl s_client -quiet -connect {tcp_host}:{tls_port}"
                f"    (or: webchat-client --tls {tcp_host} {tls_port})"
            )
        if udp_port is not None:
            lines.append(
                f"  UDP:      nc -u {tcp_host} {udp_port}    (or: webchat-client --udp "
                f"{tcp_host} {udp_port}; no passwords over UDP)"
            )
    if "0.0.0.0" in (settings.web_host, settings.tcp_host) or "::" in (
        settings.web_host,
        settings.tcp_host,
    ):
        lines.append("  Others on your network use this machine's address instead of localhost.")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)
