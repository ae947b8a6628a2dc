"""Errors raised by the Dataverse Web API client.

Every failure the client meets is raised, never returned::

    DataverseError                 status, code, message, url
     ├── BadRequest                400  malformed request, plugin error, bad $filter
     ├── Unauthorized              401  token missing, expired or for the wrong audience
     ├── Forbidden                 403  the caller lacks a privilege
     ├── NotFound                  404  no such record, entity set or segment
     ├── PreconditionFailed        412  ETag mismatch, or create-only upsert hit a record
     ├── RetryLater                the server asks to be called again; retry_after
     │    ├── TooManyRequests      429  service protection limit
     │    └── ServiceUnavailable   503  server busy or down
     ├── ServerError               other 5xx
     ├── AuthError                 no token from the identity provider (status None)
     └── ConnectionFailed          network failure or timeout (status None)

`retry_after` is the ``Retry-After`` header in whole seconds, or None when it is absent
or a date. Statuses without a class of their own (405, 409, 413, ...) raise a plain
`DataverseError`. `code` is Dataverse's hex error code (e.g. ``0x80040217``), often
empty. Messages come from the server's error body or the identity provider and never
contain the bearer token or client secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector import json_input

from .multipart import header

__all__ = [
    "AuthError",
    "BadRequest",
    "ConnectionFailed",
    "DataverseError",
    "Forbidden",
    "NotFound",
    "PreconditionFailed",
    "RetryLater",
    "ServerError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "error_from_response",
    "parse_retry_after",
]

# Error bodies can be whole HTML pages from a proxy; keep exceptions readable.
_MAX_MESSAGE_CHARS = 500


class DataverseError(Exception):
    """Base of every error raised by `connector.dataverse`.

    Args:
        status: the HTTP status, or None when no HTTP reply was received.
        code: Dataverse's error code such as ``0x80040217``; empty when unknown.
        message: the server's human-readable message.
        url: the request URL (never includes credentials).
    """

    def __init__(self, status: int | None, code: str, message: str, url: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.url = url
        super().__init__(self._describe())

    def _describe(self) -> str:
        status = "" if self.status is None else f"{self.status} "
        code = f"[{self.code}] " if self.code else ""
        where = f" ({self.url})" if self.url else ""
        return f"{status}{code}{self.message}{where}"


class BadRequest(DataverseError):
    """400: the server rejected the request (bad syntax, plugin error, validation)."""


class Unauthorized(DataverseError):
    """401: the bearer token was missing, expired or not valid for this environment."""


class Forbidden(DataverseError):
    """403: the caller is authenticated but lacks the privilege for this operation."""


class NotFound(DataverseError):
    """404: the record (or entity set, property, segment) does not exist."""


class PreconditionFailed(DataverseError):
    """412: If-Match did not match the record's ETag, or If-None-Match: * found a record."""


class RetryLater(DataverseError):
    """The server asks to be called again, after `retry_after` seconds when given."""

    def __init__(
        self, status: int | None, code: str, message: str, url: str, *, retry_after: int | None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status, code, message, url)


class TooManyRequests(RetryLater):
    """429: a service protection limit was hit; wait `retry_after` seconds."""


class ServiceUnavailable(RetryLater):
    """503: the service is temporarily unavailable; `retry_after` seconds when given."""


class ServerError(DataverseError):
    """Any other 5xx: the server failed while handling the request."""


class AuthError(DataverseError):
    """The identity provider gave no access token.

    Args:
        error: the OAuth error code, e.g. ``invalid_client``.
        description: the provider's explanation (it never contains the secret).
    """

    def __init__(self, error: str, description: str) -> None:
        self.error = error
        self.description = description
        super().__init__(None, error, description, "")


class ConnectionFailed(DataverseError):
    """The request got no HTTP reply: DNS, refused connection, reset, or timeout.

    `maybe_delivered` is False only when the request certainly never reached the server
    (so even a create can be sent again); a read timeout or a reset leaves it True.
    """

    def __init__(self, message: str, url: str, *, maybe_delivered: bool = True) -> None:
        self.maybe_delivered = maybe_delivered
        super().__init__(None, "", message, url)


_STATUS_ERRORS: dict[int, type[DataverseError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    412: PreconditionFailed,
}


def parse_retry_after(value: str | None) -> int | None:
    """Read a ``Retry-After`` header given in whole seconds; None if absent or a date."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _parse_error_body(body: bytes, reason: str) -> tuple[str, str]:
    """Return (code, message) from an OData error body, falling back to the raw text."""
    text = body.decode("utf-8", errors="replace")
    try:
        payload: Any = json_input.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        return str(error.get("code") or ""), str(error.get("message") or reason)
    message = text.strip()[:_MAX_MESSAGE_CHARS]
    return "", message or reason


def error_from_response(
    status: int, reason: str, headers: Mapping[str, str], body: bytes, url: str
) -> DataverseError:
    """Build the typed error for a failed HTTP reply.

    Args:
        status: HTTP status (>= 400).
        reason: the reason phrase, used when the body carries no message.
        headers: reply headers; a case-insensitive mapping or a plain dict.
        body: the raw reply body.
        url: the request URL.
    """
    code, message = _parse_error_body(body, reason)
    if status in (429, 503):
        retry_after = parse_retry_after(header(headers, "Retry-After"))
        cls = TooManyRequests if status == 429 else ServiceUnavailable
        return cls(status, code, message, url, retry_after=retry_after)
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status](status, code, message, url)
    if status >= 500:
        return ServerError(status, code, message, url)
    return DataverseError(status, code, message, url)
