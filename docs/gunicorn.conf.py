"""gunicorn settings for webchat behind a reverse proxy (see README, "Running in production").

    WEBCHAT_TRUSTED_PROXIES=1 gunicorn -c docs/gunicorn.conf.py --bind 127.0.0.1:5000

One worker: the hub (who is here, the order of events) lives in the process, and
the TCP chat is started once, in it. gthread: flask-sock keeps a thread for each
open WebSocket, so ``threads`` is how many browsers (and page loads) may be
connected at once; ``worker_connections`` matches it. Several machines or processes
are several nodes (--redis-url), not several workers.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

wsgi_app = "webchat:create_app()"
worker_class = "gthread"
workers = 1
threads = int(os.environ.get("WEBCHAT_GUNICORN_THREADS", "1000"))
worker_connections = threads
# Seconds the worker gives open connections to finish when told to stop; webchat
# says goodbye to everyone at once (below), so little of it is used.
graceful_timeout = 10
# The TCP chat runs in the worker (not `flask run`, so it must be asked for).
raw_env = ["WEBCHAT_TCP_ENABLED=true"]


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, close the chat (goodbyes, the log) while gunicorn stops the worker;
    without this, every open WebSocket would hold the worker for graceful_timeout."""
    runtime = worker.wsgi.extensions["webchat"]
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=runtime.close, name="webchat-close", daemon=True).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)
