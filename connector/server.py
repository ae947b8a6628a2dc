"""`crmchat serve`: the service under gunicorn's threaded worker (gthread).

Why gthread and not gevent (figures: `bench/server_workers.py`, docs/deploy.md): the
engine, the outbox and the embedded Dataverse are written for threads (locks, sqlite3,
blocking `requests`); gevent would need monkey-patching all of that, and sqlite3 calls
would still block its one loop. flask-sock holds one thread per open socket under
gthread, so `CRMCHAT_THREADS` caps the sockets one process holds.

What this adds to a plain gthread worker:

- a deadline on the request head (`CRMCHAT_HEADER_TIMEOUT_SECS`): a connection that sent
  part of a request and stalled is closed instead of holding a thread for minutes;
- graceful SIGTERM: stop accepting, close every open websocket with 1012 (Service Restart,
  in the IANA WebSocket Close Code Number Registry, RFC 6455 §11.7), which the widget and
  the console treat like any drop and reconnect (to the next process), let requests in
  flight finish within
  `CRMCHAT_GRACEFUL_TIMEOUT_SECS`, stop the engine and the outbox (pending writes stay in
  the outbox file for the next start), exit.

More than one worker needs Redis (`CRMCHAT_REDIS_URL`): without it each process would
hold its own chats, and a visitor and an agent on two processes would never meet.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

from connector.settings import Settings
from connector.web import open_sockets

__all__ = ["CLOSE_SERVICE_RESTART", "check_workers", "serve"]

log = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 1012
# While the head of a request trickles in, look again this often.
_HEAD_POLL_SECS = 0.05
_HEAD_END = b"\r\n\r\n"
_MAX_HEAD_BYTES = 64 * 1024  # past this, gunicorn's parser answers 431 itself


def check_workers(settings: Settings) -> str | None:
    """Why these settings cannot run, in one line; None when they can."""
    if settings.workers > 1 and settings.redis_url is None:
        return (
            f"CRMCHAT_WORKERS={settings.workers} needs CRMCHAT_REDIS_URL: without Redis each "
            "worker keeps its own chats, so run one worker (the default)"
        )
    return None


def _head_arrives(sock: socket.socket, deadline_secs: float) -> bool:
    """True once the request head is complete (or the peer closed, or it is huge: gunicorn
    answers those itself); False when `deadline_secs` passed first."""
    with selectors.DefaultSelector() as waiter:
        waiter.register(sock, selectors.EVENT_READ)
        return _head_in(sock, waiter, deadline_secs)


def _head_in(sock: socket.socket, waiter: selectors.BaseSelector, deadline_secs: float) -> bool:
    # A selector (epoll on Linux), not select(): select() refuses descriptors past 1023,
    # which a process holding ~500 chats (two sockets each) reaches; every connection after
    # that was reset (found by bench/chat_load.py at 500 pairs).
    deadline = time.monotonic() + deadline_secs
    seen = -1
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not waiter.select(min(left, 1.0)):
            continue
        try:
            data = sock.recv(_MAX_HEAD_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            return True  # let gunicorn see (and log quietly) the broken connection
        if not data or _HEAD_END in data or len(data) >= _MAX_HEAD_BYTES:
            return True
        if len(data) == seen:
            # Peeked bytes keep the socket readable: wait for more instead of spinning.
            time.sleep(min(_HEAD_POLL_SECS, max(left, 0)))
        seen = len(data)


class CrmChatWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with a request-head deadline and a SIGTERM that tells sockets to reconnect."""

    header_timeout_secs = 10.0

    def handle(self, conn: Any) -> Any:
        if not self.cfg.is_ssl and not conn.is_http2:
            if not _head_arrives(conn.sock, self.header_timeout_secs):
                log.info("closed a connection whose request head did not arrive in time")
                return False
        return super().handle(conn)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)  # stop accepting; finish what is in flight
        closed = open_sockets.close_all(CLOSE_SERVICE_RESTART, "service restarting")
        log.info("shutting down: told %d open socket(s) to reconnect", closed)


class _PlainLogger(Logger):  # type: ignore[misc]
    """gunicorn's messages through the service's own log setup (JSON or text, redacted)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True
        self.access_log.disabled = True  # connector.web.request_log writes request lines


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, make_app: Any, options: dict[str, Any]) -> None:
        self._make_app = make_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        app: Flask = self._make_app()
        return app


def serve(settings: Settings, make_app: Any) -> None:
    """Run `make_app()` (called in the worker, after fork) under gunicorn; returns on exit."""
    worker = type(
        "CrmChatWorker", (CrmChatWorker,), {"header_timeout_secs": settings.header_timeout_secs}
    )

    def worker_exit(_arbiter: Any, worker_process: Any) -> None:
        from connector.app import stop_app

        app = getattr(worker_process, "wsgi", None)
        if isinstance(app, Flask):
            stop_app(app)

    options: dict[str, Any] = {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": worker,
        "threads": settings.threads,
        # gthread keeps an idle connection open only while connections exceed threads
        # (`worker_connections - threads` of them); equal, it closed every connection
        # after one answer and CRMCHAT_KEEPALIVE_SECS did nothing. Idle ones wait in the
        # poller, not on a thread, so room for as many as there are threads.
        "worker_connections": 2 * settings.threads,
        "keepalive": settings.keepalive_secs,
        "graceful_timeout": settings.graceful_timeout_secs,
        # The worker's heartbeat; gthread's main loop beats while sockets stay open.
        "timeout": 60,
        "logger_class": _PlainLogger,
        "loglevel": settings.log_level.lower(),
        "worker_exit": worker_exit,
        "proc_name": "crmchat",
        # The proxy's X-Forwarded-* are applied by the app (CRMCHAT_BEHIND_PROXY) only.
        "forwarded_allow_ips": "",
    }
    _Gunicorn(make_app, options).run()
