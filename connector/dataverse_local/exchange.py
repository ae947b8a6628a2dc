"""One request of the embedded Dataverse on its way through: the call, the caller, the reply.

`Call` is a request, whether it came over HTTP or out of a `$batch`; `Exchange` is a call
being answered (the store, who runs it, the absolute Web API root, the `Prefer` header);
`Reply` is the answer before it becomes a werkzeug Response or a batch part. The helpers
here build the replies and errors every route shares.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

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
    "RequestHeaders",
    "allow_only",
    "error_reply",
    "header_key",
    "json_reply",
    "method_not_allowed",
    "not_segment",
]

JSON_TYPE = "application/json; odata.metadata=minimal"
# One encoder for every reply: `json.dumps` with options builds a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(payload: object) -> bytes:
    """`payload` as the compact UTF-8 JSON every reply carries."""
    return _ENCODER.encode(payload).encode("utf-8")


class RequestHeaders:
    """A request's headers by name, compared as a WSGI server compares them.

    A WSGI server names each header `HTTP_<NAME>` (upper case, `-` as `_`) and joins
    repeated lines with ", " (PEP 3333), as `multipart._parse_headers` joins a `$batch`
    part's. Keyed once by that normal form (`header_key`), each read is one dict lookup:
    werkzeug's `EnvironHeaders` looked through the environ on every `get`.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, str]) -> None:
        """`values` keyed by `header_key(name)`."""
        self._values = values

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> RequestHeaders:
        """The headers of a WSGI environ (`HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`)."""
        values: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                values[header_key(key[5:])] = value
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                values[header_key(key)] = value
        return cls(values)

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(header_key(name), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._values

    def items(self) -> Iterable[tuple[str, str]]:
        return self._values.items()


@functools.lru_cache(maxsize=512)
def header_key(name: str) -> str:
    """The one spelling of a header name: what a WSGI server's `HTTP_<NAME>` keeps of it."""
    return name.lower().replace("_", "-")


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
    headers: RequestHeaders
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
            encode_json(payload)
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
    body = encode_json(payload)
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
