"""HTTPS and WSS on the web port, with each handshake in its request's thread.

Werkzeug's ``make_server(ssl_context=...)`` wraps the *listening* socket, so every
TLS handshake runs inside ``accept()`` on the server's one accepting thread: one
client that connects and sends nothing stops everyone else from connecting. Here
the server class gets :class:`~webchat.transports.tls.TlsAccept` in front of its
bases instead, which wraps and handshakes each connection in the thread that then
serves its requests.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from webchat.transports.tls import TlsAccept, TlsContext

S = TypeVar("S", bound=BaseWSGIServer)


def tls_server(server_class: type[S], tls: TlsContext, *args: Any, **kwargs: Any) -> S:
    """``server_class(*args, **kwargs)``, serving HTTPS and WSS with ``tls``.

    Werkzeug says ``https`` in ``wsgi.url_scheme`` when the server has an
    ``ssl_context``, so ``request.scheme`` is ``https`` and the page's own origin,
    checked on the WebSocket handshake, is ``https://HOST:PORT``.
    """
    cls = type(f"Tls{server_class.__name__}", (TlsAccept, server_class), {"tls": tls})
    server = cast(S, cls(*args, **kwargs))
    server.ssl_context = tls.context
    return server


def https_server(
    host: str,
    port: int,
    app: Flask,
    tls: TlsContext,
    handler: type[WSGIRequestHandler] = WSGIRequestHandler,
    server_class: type[BaseWSGIServer] = ThreadedWSGIServer,
) -> BaseWSGIServer:
    """Werkzeug's ``server_class(host, port, app, handler)``, with HTTPS and WSS."""
    return tls_server(server_class, tls, host, port, app, handler)
