"""`$batch`: many operations in one request, with atomic changesets.

```python
batch = client.batch()
with batch.changeset():                       # all or nothing
    account = batch.create("accounts", {"name": "Contoso"})
    batch.create("contacts", {"lastname": "O'Neil",
                              "parentcustomerid_account@odata.bind": account})
    batch.update("accounts", account, {"telephone1": "555"})
results = batch.execute()
```

Each operation gets a ``Content-ID`` and returns a `Ref` (``$1``, ``$2``, ...). Inside the
same changeset a `Ref` names the record that operation created: pass it as the record id
of a later operation (the URL becomes ``$1``) or as an ``@odata.bind`` / ``@odata.id``
value. Dataverse resolves references only within one changeset, so using one elsewhere
raises ValueError before anything is sent.

Microsoft advises small batches (about 10 operations): batching does not get around the
service protection limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector import json_input

from .client import UpsertMode
from .errors import DataverseError, error_from_response
from .multipart import (
    HttpRequest,
    MultipartError,
    Part,
    boundary_of,
    format_http_request,
    header,
    join_multipart,
    parse_http_response,
    split_multipart,
)
from .odata import check_name, encode_json, guid, record_id_from_headers
from .query import Record, encode_query, query_options

if TYPE_CHECKING:
    from .client import DataverseClient

__all__ = ["MAX_BATCH_OPERATIONS", "Batch", "BatchResult", "Ref"]

# Dataverse refuses a batch of more than 1000 operations.
MAX_BATCH_OPERATIONS = 1000


class Ref(str):
    """``$n``: the record created by the batch operation with ``Content-ID: n``.

    A `str`, so it can be used directly as an ``@odata.bind`` value.
    """

    @property
    def content_id(self) -> int:
        """The n in ``$n``."""
        return int(self[1:])


@dataclass
class BatchResult:
    """The reply to one batch operation.

    `error` holds the typed error when `status` is 400 or more (only returned with
    ``continue_on_error=True``; otherwise `Batch.execute` raises it).
    """

    content_id: str | None
    status: int
    headers: dict[str, str]
    body: bytes
    error: DataverseError | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx reply."""
        return 200 <= self.status < 300

    @property
    def entity_id(self) -> str | None:
        """The id in ``OData-EntityId`` (set for creates and upserts)."""
        return record_id_from_headers(self.headers)

    def json(self) -> Record | None:
        """The JSON body (e.g. a retrieved record), or None when there is none."""
        if not self.body.strip():
            return None
        payload: Any = json_input.loads(self.body)
        return payload if isinstance(payload, dict) else None


@dataclass
class _Operation:
    content_id: int
    changeset: int | None
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class Batch:
    """Collects operations for one ``$batch`` request; see the module docstring."""

    def __init__(self, client: DataverseClient) -> None:
        self._client = client
        self._operations: list[_Operation] = []
        self._changeset: int | None = None
        self._changesets = 0

    def __len__(self) -> int:
        return len(self._operations)

    @contextmanager
    def changeset(self) -> Iterator[None]:
        """Group the operations added inside the block: they succeed or fail together."""
        if self._changeset is not None:
            raise ValueError("changesets cannot be nested")
        self._changesets += 1
        self._changeset = self._changesets
        try:
            yield
        finally:
            self._changeset = None

    # ----- operations -------------------------------------------------------------------

    def create(self, entity_set: str, data: Mapping[str, Any]) -> Ref:
        """Add a create (POST); the returned `Ref` names the new record in this changeset."""
        url = self._client.base_url + check_name(entity_set, "entity set")
        return self._add("POST", url, data, {})

    def update(
        self,
        entity_set: str,
        record_id: str | uuid.UUID | Ref,
        data: Mapping[str, Any],
        *,
        etag: str | None = None,
    ) -> Ref:
        """Add an update (PATCH with ``If-Match``) of an existing record or of a `Ref`."""
        return self._add(
            "PATCH", self._target(entity_set, record_id), data, {"If-Match": etag or "*"}
        )

    def upsert(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        data: Mapping[str, Any],
        *,
        mode: UpsertMode = UpsertMode.ANY,
    ) -> Ref:
        """Add an upsert (PATCH to a caller-chosen id); see `DataverseClient.upsert`."""
        return self._add("PATCH", self._target(entity_set, record_id), data, mode.headers())

    def delete(self, entity_set: str, record_id: str | uuid.UUID | Ref) -> Ref:
        """Add a delete of a record or of a `Ref`."""
        return self._add("DELETE", self._target(entity_set, record_id), None, {"If-Match": "*"})

    def associate(
        self,
        entity_set: str,
        record_id: str | uuid.UUID | Ref,
        navigation: str,
        target_set: str,
        target_id: str | uuid.UUID | Ref,
    ) -> Ref:
        """Add an N:N or 1:N link (POST ``…/navigation/$ref``); either side may be a `Ref`."""
        url = f"{self._target(entity_set, record_id)}/{check_name(navigation, 'navigation')}/$ref"
        target = self._target(target_set, target_id)
        return self._add("POST", url, {"@odata.id": target}, {})

    def retrieve(
        self,
        entity_set: str,
        record_id: str | uuid.UUID,
        *,
        select: Sequence[str] | None = None,
    ) -> Ref:
        """Add a GET of one record (not allowed inside a changeset)."""
        url = self._target(entity_set, record_id)
        params, _ = query_options(select=select)
        if params:
            url += "?" + encode_query(params)
        return self._add("GET", url, None, {})

    # ----- sending ----------------------------------------------------------------------

    def execute(self, *, continue_on_error: bool = False) -> list[BatchResult]:
        """Send the batch and return one result per operation reply, in order.

        Without `continue_on_error` Dataverse stops at the first failure (rolling back
        its changeset) and this raises that failure's typed error; operations outside
        changesets that ran before it stay applied. With it, every operation runs and
        failures come back as results with `error` set.

        Raises:
            DataverseError: the batch request itself failed, its reply is unreadable, or
                (without `continue_on_error`) an operation failed.
        """
        if not self._operations:
            return []
        boundary = f"batch_{uuid.uuid4()}"
        headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
        if continue_on_error:
            headers["Prefer"] = "odata.continue-on-error"
        response = self._client.request(
            "POST",
            "$batch",
            body=join_multipart(self._parts(), boundary),
            headers=headers,
            accept=_is_multipart,
        )
        results = _parse_reply(
            response.status_code, response.headers, response.content, response.url
        )
        if not continue_on_error:
            for result in results:
                if result.error is not None:
                    raise result.error
        return results

    def _parts(self) -> list[Part]:
        parts: list[Part] = []
        index = 0
        while index < len(self._operations):
            operation = self._operations[index]
            if operation.changeset is None:
                parts.append(_http_part(operation))
                index += 1
                continue
            group = [op for op in self._operations[index:] if op.changeset == operation.changeset]
            index += len(group)
            boundary = f"changeset_{uuid.uuid4()}"
            parts.append(
                Part(
                    headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
                    body=join_multipart([_http_part(op) for op in group], boundary),
                )
            )
        return parts

    def _add(
        self, method: str, url: str, data: Mapping[str, Any] | None, headers: dict[str, str]
    ) -> Ref:
        if len(self._operations) >= MAX_BATCH_OPERATIONS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_OPERATIONS} operations")
        if method == "GET" and self._changeset is not None:
            raise ValueError("GET is not allowed inside a changeset")
        body = b""
        if data is not None:
            self._check_refs(data.values())
            body = encode_json(dict(data))
            headers = {"Content-Type": "application/json; type=entry", **headers}
        content_id = len(self._operations) + 1
        self._operations.append(_Operation(content_id, self._changeset, method, url, headers, body))
        return Ref(f"${content_id}")

    def _target(self, entity_set: str, record_id: str | uuid.UUID | Ref) -> str:
        if isinstance(record_id, Ref):
            self._check_refs([record_id])
            return str(record_id)
        return self._client.base_url + self._client.record_path(entity_set, guid(record_id))

    def _check_refs(self, values: Any) -> None:
        for value in values:
            if not isinstance(value, Ref):
                continue
            known = value.content_id - 1
            if not (0 <= known < len(self._operations)):
                raise ValueError(f"{value} is not an operation of this batch")
            if self._changeset is None or self._operations[known].changeset != self._changeset:
                raise ValueError(f"{value} can only be used inside the changeset that created it")


def _http_part(operation: _Operation) -> Part:
    request = HttpRequest(
        method=operation.method, url=operation.url, headers=operation.headers, body=operation.body
    )
    return Part(
        headers={
            "Content-Type": "application/http",
            "Content-Transfer-Encoding": "binary",
            "Content-ID": str(operation.content_id),
        },
        body=format_http_request(request),
    )


def _is_multipart(response: Any) -> bool:
    return boundary_of(response.headers.get("Content-Type", "")) is not None


def _parse_reply(
    status: int, headers: Mapping[str, str], body: bytes, url: str
) -> list[BatchResult]:
    boundary = boundary_of(headers.get("Content-Type", ""))
    if boundary is None:
        raise DataverseError(status, "", "batch reply is not multipart/mixed", url)
    results: list[BatchResult] = []
    try:
        for part in split_multipart(body, boundary):
            nested = boundary_of(header(part, "Content-Type") or "")
            if nested is None:
                results.append(_result(part, url))
            else:
                results.extend(_result(inner, url) for inner in split_multipart(part.body, nested))
    except MultipartError as exc:
        raise DataverseError(status, "", f"unreadable batch reply: {exc}", url) from None
    return results


def _result(part: Part, url: str) -> BatchResult:
    reply = parse_http_response(part.body)
    content_id = header(part, "Content-ID") or header(reply, "Content-ID")
    error = None
    if reply.status >= 400:
        error = error_from_response(reply.status, reply.reason, reply.headers, reply.body, url)
    return BatchResult(content_id, reply.status, reply.headers, reply.body, error)
