"""One log line per HTTP request (and per websocket, when it closes), with a request id.

The id is the proxy's `X-Request-Id` when it looks like one (so a line can be matched with
the proxy's), else a fresh one; it is answered in `X-Request-Id` and stamped on every log
line written while the request runs (`connector.logs.REQUEST_ID`). The query string is
logged through `connector.logs.redact`, like every line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from connector.logs import REQUEST_ID

__all__ = ["init_app"]

log = logging.getLogger("crmchat.request")

_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def _begin() -> None:
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if _GOOD_ID.fullmatch(offered) else uuid.uuid4().hex
    g.request_id = request_id
    g.request_token = REQUEST_ID.set(request_id)
    g.request_started = time.perf_counter()


def _end(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:
        return response
    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    response.headers["X-Request-Id"] = g.request_id
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        101 if websocket else response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "status": 101 if websocket else response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "remote": request.remote_addr or "",
            "websocket": websocket,
        },
    )
    return response


def _reset(_error: BaseException | None) -> None:
    token = g.pop("request_token", None)
    if token is not None:
        REQUEST_ID.reset(token)


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_end)
    app.teardown_request(_reset)
