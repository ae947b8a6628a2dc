"""The service's log lines: one JSON object per line (or readable text in development), one
line per HTTP request and per chat event, each with the request id it belongs to.

Credentials never reach a log line: every line is scrubbed as it is formatted, whoever
wrote it (our code, Flask, gunicorn, a traceback), so `token=` query parameters, bearer
tokens and `"token": "..."` JSON members come out as `[redacted]`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["REQUEST_ID", "configure_logging", "redact"]

# The request (or socket) a line belongs to; "-" outside any request.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("crmchat_request_id", default="-")

# Names whose value is a credential wherever it appears: query parameters, form fields,
# JSON members, key=value pairs in messages.
_SECRET_NAMES = r"(?:token|access_token|id_token|resume_token|secret|secret_word|password|word)"
_PATTERNS = (
    # token=abc in a query string or message (up to the next separator)
    re.compile(rf"(?i)(\b{_SECRET_NAMES}=)[^&\s\"',;]+"),
    # "token": "abc" in JSON text
    re.compile(rf"(?i)(\"{_SECRET_NAMES}\"\s*:\s*\")[^\"]*"),
    # Authorization: Bearer abc
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
)
REDACTED = "[redacted]"

# LogRecord attributes that are not "extra" fields a caller added.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
}


def redact(text: str) -> str:
    """`text` with every credential value replaced by `[redacted]`."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(text)


def configure_logging(level: str, fmt: Literal["json", "text"]) -> None:
    """Route every logger (ours, Flask's, werkzeug's, gunicorn's) to one stderr handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "crmchat", False):
            root.removeHandler(old)
    handler.crmchat = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # werkzeug's own request lines would double ours (and carry the raw query string).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
