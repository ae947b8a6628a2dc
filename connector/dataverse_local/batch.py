"""`POST $batch` for the embedded Dataverse: changesets, `$n` references, continue-on-error.

`run_batch` reads the multipart request, checks its whole shape before running anything,
then hands each operation to the app's `dispatch` as an `HttpRequest` whose `url` is
**relative to the Web API root** (`accounts(<id>)/primarycontactid/$ref?$select=name`, no
leading slash), whatever form the client wrote: absolute
(`https://host/api/data/v9.2/accounts`), server-relative (`/api/data/v9.2/accounts`),
relative (`accounts`) or a Content-ID reference (`$1`, `$1/lastname`).

A `$n` reference resolves to the URL in the `OData-EntityId` (else `Location`) header of
the reply to the part with `Content-ID: n`. In JSON bodies, a `…@odata.bind` value `"$n"`
becomes `/accounts(<id>)` (the form the docs show for binds) and an `@odata.id` value
becomes the absolute URL (the form the docs show for `$ref` bodies). References are
batch-wide; those made by a changeset that rolled back are forgotten.

Replies follow Dataverse: `multipart/mixed; boundary=batchresponse_<guid>`, a successful
changeset as a nested `changesetresponse_<guid>` part, a failed changeset as its one
failing part (everything in it rolled back). Without continue-on-error the first failure
ends processing and the batch answers 400 with the parts so far plus the failing one.

A batch that cannot be run at all (not multipart, broken parts, a GET in a changeset, a
nested batch, more than 1000 operations, a reference to an undeclared Content-ID) gets a
400 `application/json` error, never an exception. The code is `0x80048d19`, the code
Dataverse gives for "Error identified in Payload provided by the user"; the real service's
code for these particular cases is not documented.

Errors::

    Exception
    └── BatchError(status, code, message)   the whole batch is refused
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from connector import json_input
from connector.dataverse.multipart import (
    HttpRequest,
    HttpResponse,
    MultipartError,
    Part,
    TooManyParts,
    boundary_of,
    format_http_response,
    header,
    join_multipart,
    parse_http_request,
    split_multipart,
)

__all__ = [
    "BATCH_PAYLOAD_ERROR_CODE",
    "MAX_BATCH_OPERATIONS",
    "BatchError",
    "continue_on_error_requested",
    "run_batch",
]

# Dataverse: "Batch requests can contain up to 1000 individual requests".
MAX_BATCH_OPERATIONS = 1000
# Dataverse's "Error identified in Payload provided by the user" (see module docstring).
BATCH_PAYLOAD_ERROR_CODE = "0x80048d19"

_JSON_ERROR_CONTENT_TYPE = "application/json; odata.metadata=minimal"
_CHANGESET_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# OData resources whose names start with "$" and are not Content-ID references.
_SYSTEM_RESOURCES = frozenset(
    {"$metadata", "$batch", "$entity", "$crossjoin", "$all", "$root", "$count"}
)
_REFERENCE = re.compile(r"^\$([^/?#()$]+)(.*)$", re.DOTALL)
_API_ROOT_PATH = re.compile(r"^/api/data/v\d+(?:\.\d+)*(?:/|$)")


class BatchError(Exception):
    """The whole batch is refused; the app answers `status` with the standard error JSON."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> bytes:
        """The Dataverse error body, `{"error":{"code":…,"message":…}}`."""
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()


def _payload_error(message: str) -> BatchError:
    return BatchError(400, BATCH_PAYLOAD_ERROR_CODE, message)


def _missing_reference(name: str) -> str:
    return f"Content-ID Reference: '${name}' does not exist in the batch context."


@dataclass
class _Operation:
    request: HttpRequest
    content_id: str | None
    # The body as JSON (None when empty or not JSON) and the `$n` it links to, read once:
    # checking the references and resolving them used to parse every body three times.
    document: Any | None = None
    links: list[str] = field(default_factory=list)


@dataclass
class _Changeset:
    operations: list[_Operation] = field(default_factory=list)


class _ChangesetFailed(Exception):
    """Raised inside the changeset block so the savepoint rolls back."""


def run_batch(
    body: bytes,
    content_type: str,
    *,
    dispatch: Callable[[HttpRequest], HttpResponse],
    changeset: Callable[[], AbstractContextManager[None]],
    continue_on_error: bool,
    base_url: str,
) -> tuple[int, str, bytes]:
    """Run a `$batch` request and return (status, content type, body) for the reply.

    `dispatch` runs one operation (its `url` relative to the Web API root, see the
    module docstring) and answers it; it must not raise for a Dataverse error.
    `changeset()` opens a savepoint that commits on normal exit and rolls back when an
    exception leaves it. `base_url` is the absolute Web API root
    (`https://localhost:8443/api/data/v9.2`). A batch that cannot be run answers 400
    with the Dataverse error JSON; nothing is raised for bad input.
    """
    try:
        plan = _read_batch(body, content_type)
        return _Runner(dispatch, changeset, continue_on_error, base_url).run(plan)
    except BatchError as exc:
        return exc.status, _JSON_ERROR_CONTENT_TYPE, exc.to_json()


def continue_on_error_requested(prefer: str | None) -> bool:
    """Whether a `Prefer` header asks for `odata.continue-on-error` (`=false` says no)."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "odata.continue-on-error":
            return value.strip().strip('"').lower() != "false"
    return False


# -- reading and checking ---------------------------------------------------------------


def _read_batch(body: bytes, content_type: str) -> list[_Operation | _Changeset]:
    boundary = boundary_of(content_type)
    if boundary is None:
        raise _payload_error(
            "The batch request must have a 'Content-Type' header of 'multipart/mixed' "
            "with a 'boundary' parameter."
        )
    parts = _split(body, boundary)
    plan: list[_Operation | _Changeset] = []
    count = 0
    for part in parts:
        media_type = (header(part, "Content-Type") or "").split(";")[0].strip().lower()
        if media_type == "multipart/mixed":
            inner_boundary = boundary_of(header(part, "Content-Type") or "")
            if inner_boundary is None:
                raise _payload_error("A changeset part has no 'boundary' parameter.")
            changeset = _Changeset()
            for inner in _split(part.body, inner_boundary):
                inner_type = (header(inner, "Content-Type") or "").split(";")[0].strip()
                if inner_type.lower() == "multipart/mixed":
                    raise _payload_error("A changeset cannot contain another changeset or batch.")
                operation = _read_operation(inner)
                if operation.request.method not in _CHANGESET_METHODS:
                    raise _payload_error(
                        f"An invalid HTTP method '{operation.request.method}' was detected "
                        "for a request in a change set. Requests in change sets only "
                        "support the HTTP methods 'POST', 'PUT', 'DELETE', and 'PATCH'."
                    )
                changeset.operations.append(operation)
            count += len(changeset.operations)
            plan.append(changeset)
        else:
            plan.append(_read_operation(part))
            count += 1
        if count > MAX_BATCH_OPERATIONS:
            raise _too_many()
    _check_references(plan)
    return plan


def _too_many() -> BatchError:
    return _payload_error(
        f"The batch holds more than {MAX_BATCH_OPERATIONS} requests; "
        f"a batch can contain up to {MAX_BATCH_OPERATIONS}."
    )


def _split(body: bytes, boundary: str) -> list[Part]:
    try:
        return split_multipart(body, boundary, max_parts=MAX_BATCH_OPERATIONS)
    except TooManyParts as exc:
        raise _too_many() from exc
    except MultipartError as exc:
        raise _payload_error(f"The batch request body is malformed: {exc}") from exc


def _read_operation(part: Part) -> _Operation:
    media_type = (header(part, "Content-Type") or "").split(";")[0].strip().lower()
    if media_type != "application/http":
        raise _payload_error(
            f"A batch part has Content-Type '{header(part, 'Content-Type') or ''}'; "
            "expected 'application/http' or 'multipart/mixed'."
        )
    try:
        request = parse_http_request(part.body)
    except MultipartError as exc:
        raise _payload_error(f"A batch part holds no valid HTTP request: {exc}") from exc
    path = urlsplit(request.url).path if "://" in request.url else request.url
    if re.search(r"(?:^|/)\$batch(?:[/?]|$)", path.split("?")[0]):
        raise _payload_error("A batch request cannot contain another batch request.")
    content_id = header(part, "Content-ID")
    document = _json_body(request)
    return _Operation(
        request=request,
        content_id=content_id.strip() if content_id else None,
        document=document,
        links=_references_in_body(document),
    )


def _references_in_url(url: str) -> list[str]:
    match = _REFERENCE.match(url)
    if match is None or f"${match.group(1)}" in _SYSTEM_RESOURCES:
        return []
    return [match.group(1)]


def _references_in_body(document: Any | None) -> list[str]:
    found: list[str] = []

    def visit(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, k)
        elif isinstance(value, list):
            for item in value:
                visit(item, key)
        elif isinstance(value, str) and key is not None and _is_link_key(key):
            found.extend(_references_in_url(value))

    if document is not None:
        visit(document, None)
    return found


def _is_link_key(key: str) -> bool:
    return key.endswith("@odata.bind") or key == "@odata.id"


def _json_body(request: HttpRequest) -> Any | None:
    if not request.body.strip():
        return None
    try:
        return json_input.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: dispatch answers it as the app would


def _check_references(plan: list[_Operation | _Changeset]) -> None:
    """Refuse a `$n` that no earlier part declares (Dataverse answers the whole batch 400)."""
    declared: set[str] = set()
    operations = [
        op for item in plan for op in (item.operations if isinstance(item, _Changeset) else [item])
    ]
    for op in operations:
        for name in _references_in_url(op.request.url) + op.links:
            if name not in declared:
                raise _payload_error(_missing_reference(name))
        if op.content_id is not None:
            declared.add(op.content_id)


# -- running ----------------------------------------------------------------------------


class _Runner:
    def __init__(
        self,
        dispatch: Callable[[HttpRequest], HttpResponse],
        changeset: Callable[[], AbstractContextManager[None]],
        continue_on_error: bool,
        base_url: str,
    ) -> None:
        self._dispatch = dispatch
        self._changeset = changeset
        self._continue = continue_on_error
        self._root = base_url.rstrip("/")
        self._root_path = urlsplit(self._root).path.rstrip("/")
        self._entities: dict[str, str] = {}  # Content-ID -> absolute entity URL

    def run(self, plan: list[_Operation | _Changeset]) -> tuple[int, str, bytes]:
        parts: list[Part] = []
        status = 200
        for item in plan:
            if isinstance(item, _Changeset):
                part, ok = self._run_changeset(item)
            else:
                response = self._run_operation(item)
                part, ok = _response_part(response, item.content_id), response.status < 400
            parts.append(part)
            if not ok and not self._continue:
                status = 400
                break
        boundary = f"batchresponse_{uuid.uuid4()}"
        return status, f"multipart/mixed; boundary={boundary}", join_multipart(parts, boundary)

    def _run_changeset(self, changeset: _Changeset) -> tuple[Part, bool]:
        declared: list[str] = []
        parts: list[Part] = []
        failing: Part | None = None
        try:
            with self._changeset():
                for op in changeset.operations:
                    response = self._run_operation(op)
                    part = _response_part(response, op.content_id)
                    if response.status >= 400:
                        failing = part
                        raise _ChangesetFailed()
                    parts.append(part)
                    if op.content_id is not None and op.content_id in self._entities:
                        declared.append(op.content_id)
        except _ChangesetFailed:
            pass  # the savepoint has rolled back
        if failing is not None:
            # The rows are gone, so must be the references to them.
            for content_id in declared:
                self._entities.pop(content_id, None)
            return failing, False
        boundary = f"changesetresponse_{uuid.uuid4()}"
        nested = Part(
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            body=join_multipart(parts, boundary),
        )
        return nested, True

    def _run_operation(self, op: _Operation) -> HttpResponse:
        try:
            request = self._resolve(op)
        except BatchError as exc:
            # Declared, but the part that declared it failed or was rolled back.
            return HttpResponse(
                status=exc.status,
                reason="",
                headers={"Content-Type": _JSON_ERROR_CONTENT_TYPE, "OData-Version": "4.0"},
                body=exc.to_json(),
            )
        response = self._dispatch(request)
        entity = header(response, "OData-EntityId") or header(response, "Location")
        if op.content_id is not None and entity and response.status < 400:
            self._entities[op.content_id] = entity
        return response

    def _resolve(self, op: _Operation) -> HttpRequest:
        request = op.request
        url = self._relative(self._substitute(request.url))
        body = request.body
        headers = dict(request.headers)
        if op.document is not None and op.links:
            body = json.dumps(self._substitute_links(op.document, None)).encode()
            for name in [k for k in headers if k.lower() == "content-length"]:
                del headers[name]
        return HttpRequest(method=request.method, url=url, headers=headers, body=body)

    def _substitute(self, url: str) -> str:
        """`$n…` with the absolute URL of the entity part n created; other URLs unchanged."""
        names = _references_in_url(url)
        if not names:
            return url
        entity = self._entities.get(names[0])
        if entity is None:
            raise _payload_error(_missing_reference(names[0]))
        match = _REFERENCE.match(url)
        assert match is not None  # _references_in_url matched it
        return entity + match.group(2)

    def _substitute_links(self, value: Any, key: str | None) -> Any:
        if isinstance(value, dict):
            return {k: self._substitute_links(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute_links(item, key) for item in value]
        if isinstance(value, str) and key is not None and _is_link_key(key):
            resolved = self._substitute(value)
            if resolved is value or key == "@odata.id":
                return resolved
            return "/" + self._relative(resolved)
        return value

    def _relative(self, url: str) -> str:
        """`url` relative to the Web API root (path and query, no leading slash)."""
        if "://" in url:
            split = urlsplit(url)
            path = split.path
            query = f"?{split.query}" if split.query else ""
        else:
            path, sep, rest = url.partition("?")
            query = f"?{rest}" if sep else ""
        if path.startswith("/"):
            if self._root_path and (
                path == self._root_path or path.startswith(self._root_path + "/")
            ):
                path = path[len(self._root_path) :]
            else:
                match = _API_ROOT_PATH.match(path)
                if match is None:
                    raise _payload_error(
                        f"The request URI '{url}' is not under the service root '{self._root}/'."
                    )
                path = path[match.end() :]
        return path.lstrip("/") + query


def _response_part(response: HttpResponse, content_id: str | None) -> Part:
    headers = dict(response.headers)
    entity_id = header(headers, "OData-EntityId")
    location = header(headers, "Location")
    # Dataverse sends both on a create; clients read either.
    if header(headers, "OData-Version") is None:
        headers["OData-Version"] = "4.0"
    if entity_id and not location:
        headers["Location"] = entity_id
    elif location and not entity_id and response.status == 204:
        headers["OData-EntityId"] = location
    part_headers = {"Content-Type": "application/http", "Content-Transfer-Encoding": "binary"}
    if content_id is not None:
        part_headers["Content-ID"] = content_id
    return Part(
        headers=part_headers,
        body=format_http_response(
            HttpResponse(response.status, response.reason, headers, response.body)
        ),
    )
