"""The request handler both werkzeug servers use (the service and the embedded Dataverse).

Errors the HTTP layer answers before any app runs (a header line over 64 KiB, more than
100 headers, a malformed request line) come from `http.server` as an HTML page. Every
client of ours reads JSON errors, so they get the same `{"error": {"code", "message"}}`
shape the apps answer with.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from werkzeug.serving import WSGIRequestHandler

__all__ = ["JsonErrorRequestHandler"]


class JsonErrorRequestHandler(WSGIRequestHandler):
    """`WSGIRequestHandler` whose own error answers are JSON, not HTML."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        try:
            status = HTTPStatus(code)
            phrase, description = status.phrase, status.description
        except ValueError:
            phrase, description = "Error", ""
        self.log_error("code %d, message %s", code, message or phrase)
        self.send_response(code, message or phrase)
        self.send_header("Connection", "close")
        body = b""
        if code >= 200 and code not in (204, 205, 304):
            error = {
                "code": phrase.lower().replace(" ", "_").replace("-", "_"),
                "message": message or explain or description or phrase,
            }
            body = json.dumps({"error": error}).encode("utf-8")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
