"""The HTTP server of the `webchat` command: Werkzeug's, with the guards it lacks.

Werkzeug's server runs a thread for every open connection and waits forever for
a request's headers. That is the same model as the rest of webchat (a thread per
connection) and the same as gunicorn's ``gthread`` worker that flask-sock needs,
so webchat keeps it and adds what a public port needs (measurements in
benchmarks/README.md, "The web port under a slow-header flood"):

- every connection takes a slot of the server's
  :class:`~webchat.policy.connections.ConnectionGate` in the accept thread, so
  the total and the per-address limits cover plain HTTP too, and a refused client
  is answered 503 (full) or 429 (too many from its address) with ``Retry-After``
  without costing a thread (:mod:`webchat.transports.guarded`);
- a client gets ``header_timeout`` seconds to send a request's headers, counted
  from the first byte it owes (a slow trickle does not reset it): a watchdog
  shuts down connections past their deadline, so half-sent requests cannot hold
  threads for long. A WebSocket is exempt once upgraded.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from webchat.policy.connections import SERVER_FULL
from webchat.transports.guarded import GuardedServer
from webchat.transports.https import https_server

log = logging.getLogger(__name__)

# Seconds between two looks for connections past their header deadline.
WATCH_EVERY = 0.5
# What a refused client is asked to wait before trying again, in seconds.
RETRY_AFTER = 5
# The WSGI environ key that says the connection already holds a gate slot, so the
# WebSocket route does not count it twice.
COUNTED = "webchat.counted"


class GuardedRequestHandler(WSGIRequestHandler):
    """One connection to the web port: requests until it closes or is upgraded."""

    server: ChatWSGIServer
    # A WebSocket keeps its HTTP request's read buffer for life: keep it small.
    rbufsize = 2048

    def setup(self) -> None:
        super().setup()
        # Each read of the headers waits at most this long; the watchdog bounds the whole.
        self.connection.settimeout(self.server.header_timeout)

    def handle_one_request(self) -> None:
        self.server.headers_owed(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.headers_owed(self.connection, done=True)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.server.headers_owed(self.connection, done=True)
        return parsed

    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ[COUNTED] = True
        return environ

    def log_error(self, format: str, *args: Any) -> None:
        """A request that timed out or broke is the client's business: no error lines."""
        log.debug("%s: " + format, self.client_address[0], *args)


class ChatWSGIServer(GuardedServer, ThreadedWSGIServer):
    """Werkzeug's threaded server behind the connection gate and a header deadline."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(
        self,
        host: str,
        port: int,
        app: Flask,
        handler: type[WSGIRequestHandler] = GuardedRequestHandler,
    ) -> None:
        runtime = app.extensions["webchat"]
        self.init_guard(runtime.gate)
        self.header_timeout: float = runtime.settings.header_timeout
        self._owed: dict[socket.socket, float] = {}  # connection -> header deadline
        self._owed_lock = threading.Lock()
        super().__init__(host, port, app, handler=handler)
        self._stopping = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="web-headers", daemon=True)
        self._watchdog.start()

    def refusal(self, reason: str, text: str) -> bytes:
        status = "503 Service Unavailable" if reason == SERVER_FULL else "429 Too Many Requests"
        body = (text[0].upper() + text[1:] + ".\n").encode()
        head = (
            f"HTTP/1.1 {status}\r\nRetry-After: {RETRY_AFTER}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + body

    def refused(self, reason: str, address: str) -> None:
        runtime = self.app.extensions["webchat"]  # type: ignore[attr-defined]
        runtime.hub.stats.refused.add(reason)

    def headers_owed(self, conn: socket.socket, done: bool = False) -> None:
        """Start (or stop) the clock on the headers this connection owes."""
        with self._owed_lock:
            if done:
                self._owed.pop(conn, None)
            elif self.header_timeout > 0:
                self._owed[conn] = time.monotonic() + self.header_timeout

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_EVERY):
            now = time.monotonic()
            with self._owed_lock:
                late = [c for c, deadline in self._owed.items() if deadline <= now]
                for conn in late:
                    del self._owed[conn]
            for conn in late:  # its thread sees the end of the stream and finishes
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            if late:
                log.info("closed %d connections that did not send their headers in time", len(late))

    def server_close(self) -> None:
        self._stopping.set()
        super().server_close()


def web_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """The server `webchat` (and the tests) run the page and /ws on: HTTPS and WSS
    when the chat has a certificate (each handshake in its connection's thread)."""
    tls = app.extensions["webchat"].tls
    if tls is None:
        return ChatWSGIServer(host, port, app)
    return https_server(host, port, app, tls, GuardedRequestHandler, ChatWSGIServer)
