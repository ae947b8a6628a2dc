"""The service API's errors and the one handler that renders them as JSON.

Errors::

    ApiError(code, message, http_status)     every refusal the API makes on purpose
    ├── InvalidInput          400 invalid_input  (pydantic validation; carries the fields)
    ├── NotSignedIn           401 not_signed_in
    ├── Forbidden             403 forbidden
    ├── NotFound              404 not_found
    ├── RateLimited           429 rate_limited   (adds Retry-After)
    └── CrmError              502 crm_error      (a Dataverse error no view expected)

A `DataverseError` that escapes a view becomes one `CrmError` carrying Dataverse's
reason (its message and hex code), here and nowhere else.

Anything else that escapes a view is logged with its stack trace and answered as a bare
500 `internal_error`: a user never sees a trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from connector import json_input
from connector.dataverse.errors import DataverseError

__all__ = [
    "ApiError",
    "CrmError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "NotSignedIn",
    "RateLimited",
    "init_app",
    "json_body",
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


def json_body() -> Any:
    """The request's JSON body; `{}` when there is none.

    Raises InvalidInput when the body is not JSON or nests too deep, so a view never
    mistakes garbage for an empty (all-defaults) input.
    """
    if not request.get_data(cache=True):
        return {}
    try:
        return json_input.loads(request.get_data(cache=True))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"The body is not valid JSON: {error}") from None


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


class CrmError(ApiError):
    code = "crm_error"
    http_status = 502

    @classmethod
    def from_dataverse(cls, error: DataverseError, *, doing: str = "") -> CrmError:
        """The error a user sees when Dataverse refused or failed what the service asked."""
        reason = error.message or "no answer"
        prefix = f"CRM refused {doing}: " if doing else "CRM refused the request: "
        return cls(prefix + reason, crm_status=error.status, crm_code=error.code)


def _render(error: ApiError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.http_status
    response.headers.update(error.headers())
    return response


class _DepthLimitedJson(DefaultJSONProvider):
    """Flask's JSON with `json_input`'s depth limit: a too-deep body is a 400, not a 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json_input.loads(s)


def init_app(app: Flask) -> None:
    """Answer every error from `app` as `{"error": {"code", "message"}}`; parse request
    bodies with a depth limit."""
    app.json = _DepthLimitedJson(app)

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return _render(error)

    @app.errorhandler(ValidationError)
    def _validation_error(error: ValidationError) -> Response:
        return _render(InvalidInput.from_validation(error))

    @app.errorhandler(DataverseError)
    def _dataverse_error(error: DataverseError) -> Response:
        log.warning("Dataverse error in %s: %s", request.path, error)
        return _render(CrmError.from_dataverse(error))

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
