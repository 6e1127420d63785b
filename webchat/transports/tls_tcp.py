"""The TCP chat over TLS (`openssl s_client -quiet -connect HOST:6697`): the same chat, encrypted.

A :class:`~webchat.transports.tcp.ChatTCPServer` on ``tls_port`` (same host) with
:class:`~webchat.transports.tls.TlsAccept` in front: each connection is admitted as
a plain one is (the same gate), wrapped and handshaken in its own thread under the
deadline, then lives the same life (the prompt, :func:`~webchat.core.serve.serve`, the
same hub). Its transport is a plain TcpTransport on the TLS socket, which is never
written without waiting (see :class:`~webchat.transports.sockets.SocketTransport`).
"""

from __future__ import annotations

import dataclasses
import logging

from webchat.core.hub import Hub
from webchat.policy.connections import ConnectionGate
from webchat.settings import Settings
from webchat.transports.tcp import ChatTCPServer
from webchat.transports.tls import TlsAccept, TlsContext

log = logging.getLogger(__name__)


class TlsChatTCPServer(TlsAccept, ChatTCPServer):
    """The TCP chat's server on ``settings.tls_port``, speaking TLS."""

    def __init__(self, settings: Settings, hub: Hub, gate: ConnectionGate, tls: TlsContext) -> None:
        self.tls = tls
        super().__init__(dataclasses.replace(settings, tcp_port=settings.tls_port), hub, gate)

    def announce(self) -> None:
        host = self.settings.tcp_host
        where = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        log.info(
            "TCP chat over TLS listening on %s port %d: connect with  "
            "openssl s_client -quiet -connect %s",
            host,
            self.port,
            where,
        )
