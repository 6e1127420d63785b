"""What ``/healthz`` says: each listener, the history and the cluster, and one verdict.

A load balancer acts on the status code (200 ok, 503 degraded); people read the
JSON. ``/metrics`` reports the same checks as gauges (:mod:`webchat.web.metrics`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webchat import ChatRuntime


def listeners(runtime: ChatRuntime, web_port: int | None, web_tls: bool) -> dict[str, Any]:
    """Each listener: whether it listens, its port, and whether it should (``expected``).

    The web listener is the one answering this request, so it listens. The TCP chat is
    expected when the settings turn it on; under ``flask run`` (``tcp_enabled`` unset)
    it is started only in the serving process, and nobody else asks. The TLS listener
    is expected whenever a certificate is configured.
    """
    settings = runtime.settings
    tcp = runtime.tcp
    out: dict[str, Any] = {
        "web": {"listening": True, "port": web_port, "tls": web_tls, "expected": True},
        "tcp": {
            "listening": tcp is not None,
            "port": runtime.tcp_port,
            "expected": settings.tcp_enabled is True,
        },
    }
    if settings.tls_cert:
        tls_port = _tls_port(runtime)
        out["tls"] = {"listening": tls_port is not None, "port": tls_port, "expected": True}
    udp_port = getattr(runtime, "udp_port", None)  # the UDP chat starts with the TCP one
    out["udp"] = {
        "listening": udp_port is not None,
        "port": udp_port,
        "expected": settings.tcp_enabled is True and settings.udp_enabled,
    }
    return out


def _tls_port(runtime: ChatRuntime) -> int | None:
    """The TLS chat's port while it listens (the TLS listener lives on the runtime)."""
    port = getattr(runtime, "tls_port", None)
    return port if isinstance(port, int) else None


def health(runtime: ChatRuntime, web_port: int | None, web_tls: bool) -> dict[str, Any]:
    """The whole answer of ``/healthz``; ``status`` is "ok" or "degraded"."""
    history_error = runtime.history.error
    cluster_error = runtime.bus.error
    ports = listeners(runtime, web_port, web_tls)
    problems = [
        f"{name} is not listening"
        for name, state in ports.items()
        if state["expected"] and not state["listening"]
    ]
    if history_error is not None:
        problems.append(f"history: {history_error}")
    if cluster_error is not None:
        problems.append(f"cluster: {cluster_error}")
    answer: dict[str, Any] = {
        "status": "degraded" if problems else "ok",
        "users": runtime.hub.people.count(),
        **{
            name: {k: v for k, v in state.items() if k != "expected"}
            for name, state in ports.items()
        },
        "history": {
            "ok": history_error is None,
            "error": history_error,
            "last_id": runtime.history.last_id(),
        },
        "problems": problems,
    }
    gate = getattr(runtime, "gate", None)
    if gate is not None:  # how full the server is: a load figure, never "degraded"
        answer["connections"] = {"open": gate.open, "max": gate.total or None}
    if runtime.cluster is not None:
        answer["cluster"] = {
            "ok": cluster_error is None,
            "error": cluster_error,
            "node": runtime.cluster.name,
        }
    return answer
