"""The embedded Dataverse's WSGI app: the entry point and the routes.

`create_dataverse_app(db_path)` answers the Web API under `/api/data/v9.2/`, either
standalone (the path carries `/api/data/v9.2`) or mounted with that prefix as
`SCRIPT_NAME` (werkzeug's `DispatcherMiddleware`). Absolute URLs (`OData-EntityId`,
`@odata.context`, `@odata.nextLink`) come from the request's scheme and host unless a
`base_url` is given.

Every request needs `Authorization: Bearer <token>` signed with the store's secret and
runs as that token's system user (`identity.py`), through the privileges of the user's
roles (`access.py`). The routes hand over to the modules named after what they answer:
`reads.py`, `listing.py`, `expand.py`, `writes.py`, `references.py`, `metadata.py`,
`batch.py`. Every failure is Dataverse's error shape, never a stack trace:

    Exception
    ├── ApiError(status, code, message)    store.py: anything we refuse, 4xx
    ├── QueryError(code, message, status)  query.py: a broken $filter/$select/...
    └── anything else                      logged, answered 500 with the error shape
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from werkzeug.sansio.utils import get_host
from werkzeug.wsgi import get_content_length, get_input_stream

from connector.dataverse.multipart import HttpRequest, HttpResponse
from connector.dataverse_local import metadata, query
from connector.dataverse_local.batch import run_batch
from connector.dataverse_local.caller_cache import CallerCache
from connector.dataverse_local.exchange import (
    Call,
    Exchange,
    Reply,
    RequestHeaders,
    allow_only,
    error_reply,
    header_key,
    json_reply,
    method_not_allowed,
    not_segment,
)
from connector.dataverse_local.expand import related
from connector.dataverse_local.identity import Caller, authenticate
from connector.dataverse_local.keys import existing_id
from connector.dataverse_local.listing import count_records, list_records
from connector.dataverse_local.reads import read_property, retrieve
from connector.dataverse_local.records import navigation
from connector.dataverse_local.references import reference
from connector.dataverse_local.store import ApiError, Store, open_store
from connector.dataverse_local.throttle import ServiceProtection, Throttled
from connector.dataverse_local.users import ensure_seeded
from connector.dataverse_local.writes import create, delete, patch, update
from connector.solution.model import Schema, Table

__all__ = [
    "API_ROOT",
    "DEFAULT_PAGE_SIZE",
    "MAX_BODY_BYTES",
    "DataverseApp",
    "create_dataverse_app",
]

log = logging.getLogger(__name__)

API_ROOT = "/api/data/v9.2"
MAX_BODY_BYTES = 16 * 1024 * 1024  # bytes; Dataverse refuses larger requests too
DEFAULT_PAGE_SIZE = query.DEFAULT_PAGE_SIZE
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_TOO_LARGE = error_reply(413, "0x80040216", "The request body is too large.")
_ENTITY_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\((.*)\))?$", re.DOTALL)
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class DataverseApp:
    """The WSGI callable; one per store."""

    def __init__(
        self,
        store: Store,
        *,
        limits: ServiceProtection | None = None,
        base_url: str | None = None,
    ) -> None:
        self.store = store
        self.schema: Schema = store.schema
        self.limits = limits
        self.base_url = base_url.rstrip("/") if base_url else None
        self.callers = CallerCache()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            reply = self._serve_environ(environ)
        except Exception:  # the last resort: never a stack trace on the wire
            reply = _failed(environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
        status, headers, body = _finish(reply)
        start_response(status, headers)
        return [body]

    def respond(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The in-process call: (status line, headers, body), the very reply the WSGI
        entry gives the environ a server builds for this request (`transport._environ`),
        without building one. The service calls its embedded Dataverse this way
        (`transport.WsgiSession`); building the environ, and reading it back, was a fifth
        of a retrieve (bench/dataverse_vs_sqlite.py)."""
        try:
            reply = self._serve_url(method, url, headers, body)
        except Exception:  # the last resort, as in __call__
            reply = _failed(method, url)
        return _finish(reply)

    def _serve_environ(self, environ: dict[str, Any]) -> Reply:
        length = get_content_length(environ)
        if length is not None and length > MAX_BODY_BYTES:
            return _TOO_LARGE
        body = get_input_stream(environ).read(MAX_BODY_BYTES + 1)
        scheme = str(environ.get("wsgi.url_scheme", "http"))
        server = (environ.get("SERVER_NAME", ""), _port(environ.get("SERVER_PORT")))
        return self._serve(
            str(environ.get("REQUEST_METHOD", "GET")),
            lambda: get_host(scheme, environ.get("HTTP_HOST"), server),
            scheme,
            _wsgi_text(environ.get("SCRIPT_NAME", "")),
            _wsgi_text(environ.get("PATH_INFO", "")),
            str(environ.get("QUERY_STRING", "")),
            RequestHeaders.from_environ(environ),
            body,
        )

    def _serve_url(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """As `_serve_environ` for the environ `transport._environ` builds of this request."""
        parts = _split_url(url)
        scheme = parts.scheme or "http"
        values = {"host": parts.netloc}
        for name, value in headers.items():
            values[header_key(name)] = value
        # The environ's CONTENT_LENGTH is the body's, whatever a header said.
        values["content-length"] = str(len(body))
        return self._serve(
            method,
            lambda: _host(scheme, values["host"]),
            scheme,
            "",
            _wsgi_text(unquote(parts.path or "/", encoding="latin-1")),
            parts.query,
            RequestHeaders(values),
            body,
        )

    def _serve(
        self,
        method: str,
        host: Callable[[], str],
        scheme: str,
        script: str,
        path_info: str,
        query_string: str,
        headers: RequestHeaders,
        body: bytes,
    ) -> Reply:
        """One request: `host()` gives the `host[:port]` of absolute URLs (unless the app
        has a `base_url`), `script` and `path_info` are the decoded mount point and path."""
        if len(body) > MAX_BODY_BYTES:
            return _TOO_LARGE
        path = "/" + path_info.lstrip("/")
        script = script.rstrip("/")
        if path == API_ROOT or path.startswith(API_ROOT + "/"):
            root = script + API_ROOT
            relative = path[len(API_ROOT) :]
        else:
            root = script
            relative = path
        base_url = self.base_url or f"{scheme}://{host()}{root}"
        try:
            caller = authenticate(self.store, headers, callers=self.callers)
        except ApiError as exc:
            return error_reply(exc.status, exc.code, exc.message, exc.headers)
        call = Call(
            method=method.upper(),
            path=relative.lstrip("/"),
            args=_query_args(query_string),
            headers=headers,
            body=body,
        )
        if self.limits is None:
            return self._dispatch(call, caller, base_url)
        try:
            with self.limits.admit(caller.user_id):
                return self._dispatch(call, caller, base_url)
        except Throttled as exc:
            retry_after = {"Retry-After": str(max(1, int(exc.retry_after_secs)))}
            return error_reply(429, exc.code, exc.message, retry_after)

    def _dispatch(self, call: Call, caller: Caller, base_url: str) -> Reply:
        try:
            prefs = query.parse_prefer(call.headers.get("Prefer"))
            return _route(self, Exchange(self.store, call, caller, base_url, prefs))
        except ApiError as exc:
            return error_reply(exc.status, exc.code, exc.message, exc.headers)
        except query.QueryError as exc:
            return error_reply(exc.status, exc.code, exc.message)

    def batch_dispatch(
        self, caller: Caller, base_url: str
    ) -> Callable[[HttpRequest], HttpResponse]:
        """A `run_batch` dispatcher that runs each part as `caller`."""

        def dispatch(part: HttpRequest) -> HttpResponse:
            path, _, query_string = part.url.partition("?")
            call = Call(
                method=part.method.upper(),
                path=unquote(path.lstrip("/")),
                args=_query_args(query_string),
                headers=RequestHeaders({header_key(k): v for k, v in part.headers.items()}),
                body=part.body,
            )
            if call.path == "$batch":
                reply = error_reply(400, "0x80048d19", "A batch may not contain another batch.")
            else:
                try:
                    reply = self._dispatch(call, caller, base_url)
                except Exception:
                    log.exception("embedded Dataverse failed on a batch part")
                    reply = error_reply(500, "0x80040216", "An unexpected error occurred.")
            return HttpResponse(
                reply.status, _reason(reply.status), dict(reply.headers), reply.body
            )

        return dispatch


def _finish(reply: Reply) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line, headers and body of `reply` on the wire.

    Straight to start_response: a werkzeug Response per call cost more than the query
    behind a retrieve (bench/dataverse_vs_sqlite.py).
    """
    headers = {name: value for name, value in reply.headers.items() if value is not None}
    headers.setdefault("Content-Type", "text/plain")
    headers["OData-Version"] = "4.0"
    body = reply.body
    if reply.status in (204, 304):
        headers.pop("Content-Type", None)
        body = b""
    headers["Content-Length"] = str(len(body))
    return f"{reply.status} {_reason(reply.status)}", list(headers.items()), body


def _failed(method: object, where: object) -> Reply:
    log.exception("embedded Dataverse failed on %s %s", method, where)
    return error_reply(500, "0x80040216", "An unexpected error occurred.")


@functools.lru_cache(maxsize=64)
def _host(scheme: str, netloc: str) -> str:
    """`host[:port]` of a URL's origin, as werkzeug reads it from the environ a server
    builds for it (HTTP_HOST is the netloc; the default port is left out)."""
    parts = urlsplit(f"{scheme}://{netloc}")
    port = str(parts.port) if parts.port else _DEFAULT_PORTS.get(scheme, "80")
    return get_host(scheme, netloc, (parts.hostname or "localhost", _port(port)))


def _wsgi_text(value: str) -> str:
    """A path from the environ (latin-1 text of the raw bytes, PEP 3333) as UTF-8 text."""
    return value.encode("latin-1").decode("utf-8", "replace")


def _port(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _reason(status: int) -> str:
    """The reason phrase for a status line (ours first, so batch parts and replies agree)."""
    if status in _REASONS:
        return _REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# A URL `urlsplit` would take apart as `scheme://netloc/path?query`: ASCII with nothing
# it strips or treats apart (whitespace and control characters, `#`, `[`, `\\`), a lower-case
# scheme. Such URLs (every one the client sends) are split with three `partition`s.
_PLAIN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\[\]\\\s\x00-\x1f\x7f@]*(?:/[!-~]*)?")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


class _UrlParts(NamedTuple):
    scheme: str
    netloc: str
    path: str
    query: str


def _split_url(url: str) -> _UrlParts:
    """`urlsplit(url)`'s scheme, netloc, path and query, quicker for plain URLs."""
    if url.isascii() and _PLAIN_URL.fullmatch(url) and "#" not in url:
        scheme, _, rest = url.partition("://")
        netloc, slash, rest = rest.partition("/")
        path, _, query = rest.partition("?")
        return _UrlParts(scheme, netloc, slash + path if slash else "", query)
    parts = urlsplit(url)
    return _UrlParts(parts.scheme, parts.netloc, parts.path, parts.query)


def _unquote(text: str) -> str:
    """`urllib.parse.unquote(text)`: each run of `%XX` as UTF-8 (errors replaced).

    The same text (a literal character always ends a UTF-8 sequence, so decoding run by
    run is decoding the whole), without urllib's walk through every escape in Python.
    """
    if "%" not in text:
        return text
    return _PERCENT_RUN.sub(_decoded_run, text)


def _decoded_run(run: re.Match[str]) -> str:
    text = run.group()
    # Runs of up to one UTF-8 character are remembered; longer ones are rare.
    return _decode_run(text) if len(text) <= 12 else _decode_run.__wrapped__(text)


@functools.lru_cache(maxsize=1024)
def _decode_run(run: str) -> str:
    """One run of `%XX` as UTF-8 text: a query string holds the same few (`%20` for a
    space) again and again."""
    return bytes.fromhex(run.replace("%", "")).decode("utf-8", "replace")


def _query_args(query_string: str) -> dict[str, str]:
    """Query options, '+' decoded as a space (the Python SDK sends spaces as '+').

    What `dict(parse_qsl(query_string, keep_blank_values=True))` gives, without its
    per-call argument coercion (a twelfth of an in-process filter).
    """
    args: dict[str, str] = {}
    for piece in query_string.split("&"):
        if piece:
            if "+" in piece:
                piece = piece.replace("+", " ")
            name, _, value = piece.partition("=")
            args[_unquote(name)] = _unquote(value)
    return args


def _split_path(path: str) -> list[str]:
    """Split on '/' outside parentheses and quotes (keys may hold slashes)."""
    if "/" not in path:
        return [path]  # one segment (a set, a record): nothing to walk
    segments: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    for char in path:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth = max(0, depth - 1)
        if char == "/" and depth == 0 and not quoted:
            segments.append("".join(current))
            current = []
            continue
        current.append(char)
    segments.append("".join(current))
    return segments


def _route(app: DataverseApp, ex: Exchange) -> Reply:
    """The answer to one call, by its first path segment."""
    segments = _split_path(ex.call.path)
    while len(segments) > 1 and segments[-1] == "":
        segments.pop()
    first = segments[0]
    method = ex.call.method
    if first == "" and len(segments) == 1:
        allow_only(method, "GET")
        return _service_document(ex)
    if first == "$metadata":
        allow_only(method, "GET")
        return Reply(200, metadata.csdl(ex.schema).encode(), {"Content-Type": "application/xml"})
    if first == "$batch" and len(segments) == 1:
        allow_only(method, "POST")
        return _batch(app, ex)
    if first in ("WhoAmI", "WhoAmI()") and len(segments) == 1:
        allow_only(method, "GET")
        return _who_am_i(ex)
    if first.startswith("EntityDefinitions"):
        allow_only(method, "GET")
        status, payload = metadata.answer(ex.schema, segments, ex.call.args, ex.base_url)
        return json_reply(status, payload)
    match = _ENTITY_SEGMENT.match(first)
    table = ex.schema.table_for_set(match.group(1)) if match else None
    if match is None or table is None:
        raise not_segment(match.group(1) if match else first)
    key = match.group(2)
    rest = segments[1:]
    if table.read_only or table.get_only:
        # activitypointer rows come from the activities themselves, activityparty rows
        # are written through their activity: GET only, as the Web API reference lists
        # for both EntityTypes.
        allow_only(method, "GET")
    if key is None:
        return _collection(ex, table, rest)
    return _entity(ex, table, key, rest)


def _collection(ex: Exchange, table: Table, rest: list[str]) -> Reply:
    """`<set>` and `<set>/$count`."""
    method = ex.call.method
    if not rest:
        if method == "GET":
            return list_records(ex, table)
        if method == "POST":
            return create(ex, table)
        raise method_not_allowed(method)
    if rest == ["$count"]:
        allow_only(method, "GET")
        return count_records(ex, table)
    raise not_segment(rest[0])


def _entity(ex: Exchange, table: Table, key: str, rest: list[str]) -> Reply:
    """`<set>(<key>)` and what lies below it: navigation properties, `$ref`, properties."""
    method = ex.call.method
    if not rest:
        if method == "GET":
            return retrieve(ex, table, existing_id(ex.store, table, key))
        if method == "PATCH":
            return patch(ex, table, key)
        if method == "DELETE":
            return delete(ex, table, existing_id(ex.store, table, key))
        raise method_not_allowed(method)
    name = rest[0]
    nav_match = _ENTITY_SEGMENT.match(name)
    nav = navigation(ex.schema, table, nav_match.group(1) if nav_match else name)
    if nav is not None and rest[-1] == "$ref":
        inner = nav_match.group(2) if nav_match else None
        return reference(ex, table, existing_id(ex.store, table, key), nav, inner, rest)
    if nav is not None and len(rest) == 1:
        allow_only(method, "GET")
        return related(ex, table, existing_id(ex.store, table, key), nav)
    column = table.columns.get(name)
    if column is None or len(rest) > 2 or (len(rest) == 2 and rest[1] != "$value"):
        raise not_segment(name)
    record_id = existing_id(ex.store, table, key)
    if method == "GET":
        return read_property(ex, table, record_id, column.logical_name, raw=len(rest) == 2)
    if len(rest) != 1:
        raise method_not_allowed(method)
    if method == "PUT":
        payload = ex.read_json()
        if not isinstance(payload, dict) or "value" not in payload:
            raise ApiError(400, "0x80048d19", 'The body must be {"value": ...}.')
        update(ex, table, record_id, {column.logical_name: payload["value"]})
        return Reply(204)
    if method == "DELETE":
        update(ex, table, record_id, {column.logical_name: None})
        return Reply(204)
    raise method_not_allowed(method)


def _who_am_i(ex: Exchange) -> Reply:
    return json_reply(
        200,
        {
            "@odata.context": f"{ex.base_url}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": ex.caller.business_unit,
            "UserId": ex.caller.user_id,
            "OrganizationId": ex.store.organization_id,
        },
    )


def _service_document(ex: Exchange) -> Reply:
    sets = sorted(t.entity_set for t in ex.schema.tables.values())
    return json_reply(
        200,
        {
            "@odata.context": f"{ex.base_url}/$metadata",
            "value": [{"name": s, "kind": "EntitySet", "url": s} for s in sets],
        },
    )


def _batch(app: DataverseApp, ex: Exchange) -> Reply:
    """`POST $batch`: each part runs as the caller; a changeset is one savepoint."""

    @contextmanager
    def changeset() -> Iterator[None]:
        with ex.store.transaction():
            yield None

    continue_on_error = ex.prefs.continue_on_error
    status, reply_type, body = run_batch(
        ex.call.body,
        ex.call.headers.get("Content-Type", ""),
        dispatch=app.batch_dispatch(ex.caller, ex.base_url),
        changeset=changeset,
        continue_on_error=continue_on_error,
        base_url=ex.base_url,
    )
    headers = {"Content-Type": reply_type}
    if continue_on_error:
        headers["Preference-Applied"] = "odata.continue-on-error"
    return Reply(status, body, headers)


def create_dataverse_app(
    db_path: Path | Store,
    *,
    schema: Schema | None = None,
    limits: ServiceProtection | None = None,
    base_url: str | None = None,
) -> DataverseApp:
    """The embedded Dataverse as a WSGI app over the SQLite file `db_path` (or an open Store).

    `schema` defaults to the solution's (`connector.solution.reader.load_schema()`); the
    store is created or upgraded and seeded (root business unit, roles, administrator).
    An open `Store` is used as it is, with its own schema. `limits` turns on service
    protection; `base_url` fixes the absolute Web API root used in `OData-EntityId` and
    links (default: from each request).
    """
    if isinstance(db_path, Store):
        store = db_path
    else:
        if schema is None:
            from connector.solution.reader import load_schema

            schema = load_schema()
        store = open_store(db_path, schema)
    ensure_seeded(store)
    return DataverseApp(store, limits=limits, base_url=base_url)
