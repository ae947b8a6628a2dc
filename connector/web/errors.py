"""The service API's errors and the one handler that renders them as JSON.

Errors::

    ApiError(code, message, http_status)     every refusal the API makes on purpose
    ├── InvalidInput          400 invalid_input  (pydantic validation; carries the fields)
    ├── NotSignedIn           401 not_signed_in
    ├── Forbidden             403 forbidden
    ├── NotFound              404 not_found
    └── RateLimited           429 rate_limited   (adds Retry-After)

Anything else that escapes a view is logged with its stack trace and answered as a bare
500 `internal_error`: a user never sees a trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

__all__ = [
    "ApiError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "NotSignedIn",
    "RateLimited",
    "init_app",
]

log = logging.getLogger(__name__)


class ApiError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.data}}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInput(ApiError):
    code = "invalid_input"

    @classmethod
    def from_validation(cls, error: ValidationError) -> InvalidInput:
        """One message per bad field, without echoing the (possibly huge) input back."""
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in error.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return cls(summary, fields=fields)


class NotSignedIn(ApiError):
    code = "not_signed_in"
    http_status = 401


class Forbidden(ApiError):
    code = "forbidden"
    http_status = 403


class NotFound(ApiError):
    code = "not_found"
    http_status = 404


class RateLimited(ApiError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after_secs: int) -> None:
        super().__init__(message, retry_after=retry_after_secs)
        self.retry_after_secs = retry_after_secs

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_secs)}


def _render(error: ApiError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.http_status
    response.headers.update(error.headers())
    return response


def init_app(app: Flask) -> None:
    """Answer every error from `app` as `{"error": {"code", "message"}}`."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return _render(error)

    @app.errorhandler(ValidationError)
    def _validation_error(error: ValidationError) -> Response:
        return _render(InvalidInput.from_validation(error))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        name = (error.name or "error").lower().replace(" ", "_")
        api_error = ApiError(error.description or error.name or "error", code=name)
        api_error.http_status = error.code or 500
        return _render(api_error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error")
        api_error = ApiError("Something went wrong on our side.", code="internal_error")
        api_error.http_status = 500
        return _render(api_error)
