"""One request of the embedded Dataverse on its way through: the call, the caller, the reply.

`Call` is a request, whether it came over HTTP or out of a `$batch`; `Exchange` is a call
being answered (the store, who runs it, the absolute Web API root, the `Prefer` header);
`Reply` is the answer before it becomes a werkzeug Response or a batch part. The helpers
here build the replies and errors every route shares.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers

from connector import json_input
from connector.dataverse_local import query
from connector.dataverse_local.identity import Caller
from connector.dataverse_local.records import wire_name
from connector.dataverse_local.store import ApiError, Store
from connector.solution.model import Schema, Table

__all__ = [
    "JSON_TYPE",
    "Call",
    "Exchange",
    "Reply",
    "allow_only",
    "error_reply",
    "json_reply",
    "method_not_allowed",
    "not_segment",
]

JSON_TYPE = "application/json; odata.metadata=minimal"


@dataclass(frozen=True)
class Reply:
    """A response before it becomes a werkzeug Response or a batch part."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One request, whether it came over HTTP or out of a `$batch`."""

    method: str
    path: str  # relative to the Web API root, no leading slash, percent-decoded
    args: dict[str, str]
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class Exchange:
    """A call being answered: the store, the caller, the Web API root, the preferences."""

    store: Store
    call: Call
    caller: Caller
    base_url: str
    prefs: query.Preferences

    @property
    def schema(self) -> Schema:
        return self.store.schema

    def annotate(self, name: str) -> bool:
        """Whether the caller asked for the annotation `name` (`odata.include-annotations`)."""
        return query.wants_annotation(self.prefs, name)

    def annotations_applied(self) -> str:
        """The `Preference-Applied` value for the annotations asked for."""
        return 'odata.include-annotations="' + ",".join(self.prefs.include_annotations) + '"'

    def context_url(self, table: Table, select: list[str] | None, *, entity: bool) -> str:
        """The `@odata.context` of a collection (or, with `entity`, one record) of `table`."""
        names = ""
        if select:
            columns = [table.columns[n] for n in select if n in table.columns]
            names = "(" + ",".join(wire_name(c) for c in columns) + ")"
        suffix = "/$entity" if entity else ""
        return f"{self.base_url}/$metadata#{table.entity_set}{names}{suffix}"

    def entity_id_header(self, table: Table, record_id: str) -> dict[str, str]:
        """`OData-EntityId` naming the record's absolute URL."""
        return {"OData-EntityId": f"{self.base_url}/{table.entity_set}({record_id})"}

    def read_json(self) -> Any:
        """The request body as JSON; raises ApiError(400) when it is empty or malformed."""
        if not self.call.body.strip():
            raise ApiError(
                400, "0x80048d19", "The request body is empty; a JSON object is expected."
            )
        try:
            payload = json_input.loads(self.call.body.decode("utf-8"))
            # A lone surrogate ("\ud800") parses but cannot be stored as UTF-8 text.
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
            return payload
        except (UnicodeError, ValueError) as exc:
            raise ApiError(
                400,
                "0x80048d19",
                f"Error identified in Payload provided by the user: the body is not valid JSON "
                f"({exc}).",
            ) from None


def json_reply(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON reply in Dataverse's content type."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, {"Content-Type": JSON_TYPE, **(headers or {})})


def error_reply(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """Dataverse's error shape: `{"error": {"code", "message"}}`."""
    return json_reply(status, {"error": {"code": code, "message": message}}, headers)


def not_segment(name: str) -> ApiError:
    """The 404 for a path segment that names nothing."""
    return ApiError(404, "0x80060888", f"Resource not found for the segment '{name}'.")


def method_not_allowed(method: str) -> ApiError:
    """The 405 for a method the resource does not take."""
    return ApiError(
        405, "0x80060888", f"The requested resource does not support http method '{method}'."
    )


def allow_only(method: str, *allowed: str) -> None:
    """Raise the 405 unless `method` is one of `allowed`."""
    if method not in allowed:
        raise method_not_allowed(method)
