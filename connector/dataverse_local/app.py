"""The embedded Dataverse's WSGI app: routing, identity, privileges and the wire format.

`create_dataverse_app(db_path)` answers the Web API under `/api/data/v9.2/`, either
standalone (the path carries `/api/data/v9.2`) or mounted with that prefix as
`SCRIPT_NAME` (werkzeug's `DispatcherMiddleware`). Absolute URLs (`OData-EntityId`,
`@odata.context`, `@odata.nextLink`) come from the request's scheme and host unless a
`base_url` is given.

Every request needs `Authorization: Bearer <token>` signed with the store's secret and
runs as that token's system user, through the privileges of the user's roles (direct and
through teams). Every failure is Dataverse's error shape, never a stack trace:

    Exception
    ├── ApiError(status, code, message)    store.py: anything we refuse, 4xx
    ├── QueryError(code, message, status)  query.py: a broken $filter/$select/...
    └── anything else                      logged, answered 500 with the error shape
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode
from urllib.parse import quote as url_quote

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from connector.dataverse.multipart import HttpRequest, HttpResponse
from connector.dataverse_local import metadata, query
from connector.dataverse_local.batch import run_batch
from connector.dataverse_local.records import (
    Changes,
    Nav,
    navigation,
    not_found,
    parse_reference,
    property_error,
    read_payload,
    to_wire,
    wire_name,
)
from connector.dataverse_local.security import (
    NO_ROLES_CODE,
    PRIVILEGE_DENIED_CODE,
    TokenError,
    access_denied_message,
    can_touch,
    effective_depth,
    missing_privilege_message,
    no_roles_message,
    privilege_name,
    verify_token,
)
from connector.dataverse_local.store import (
    LOOKUP_TYPES,
    ApiError,
    Store,
    intersect_columns,
    new_guid,
    normalise_guid,
    open_store,
    quote,
    utc_now,
)
from connector.dataverse_local.throttle import ServiceProtection, Throttled
from connector.dataverse_local.users import (
    ensure_seeded,
    link_between,
    user_business_unit,
    user_roles,
)
from connector.solution.model import (
    AccessLevel,
    ColumnType,
    ManyToMany,
    Ownership,
    Role,
    Schema,
    Table,
)

__all__ = [
    "API_ROOT",
    "DEFAULT_PAGE_SIZE",
    "MAX_BODY_BYTES",
    "DataverseApp",
    "create_dataverse_app",
]

log = logging.getLogger(__name__)

API_ROOT = "/api/data/v9.2"
MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_PAGE_SIZE = 5000  # Dataverse's default and maximum page size
MAX_COUNT = 5000  # @odata.count is capped here, as Dataverse does
MAX_DEEP_INSERT_LEVELS = 10  # nested records in one create body
JSON_TYPE = "application/json; odata.metadata=minimal"
_ENTITY_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\((.*)\))?$", re.DOTALL)
_KEY_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^,]+)\s*(?:,|$)")
_ADMIN_NAME = "system administrator"


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
class Caller:
    """Who a request runs as."""

    user_id: str
    business_unit: str | None
    roles: tuple[Role, ...]

    @property
    def is_admin(self) -> bool:
        return any(role.name.casefold() == _ADMIN_NAME for role in self.roles)


def _json(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, {"Content-Type": JSON_TYPE, **(headers or {})})


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return _json(status, {"error": {"code": code, "message": message}}, headers)


def _split_path(path: str) -> list[str]:
    """Split on '/' outside parentheses and quotes (keys may hold slashes)."""
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


def _not_segment(name: str) -> ApiError:
    return ApiError(404, "0x80060888", f"Resource not found for the segment '{name}'.")


def _method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405, "0x80060888", f"The requested resource does not support http method '{method}'."
    )


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

    # -- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            reply = self._serve(request)
        except Exception:  # the last resort: never a stack trace on the wire
            log.exception("embedded Dataverse failed on %s %s", request.method, request.path)
            reply = _error(500, "0x80040216", "An unexpected error occurred.")
        response = Response(reply.body, status=reply.status)
        response.headers.clear()
        for name, value in reply.headers.items():
            response.headers[name] = value
        response.headers.setdefault("Content-Type", "text/plain")
        response.headers["OData-Version"] = "4.0"
        if reply.status in (204, 304):
            response.headers.pop("Content-Type", None)
        return response(environ, start_response)

    def _root(self, request: Request) -> tuple[str, str]:
        """(absolute Web API root URL, path relative to it)."""
        path = request.path
        script = request.root_path.rstrip("/")
        if path == API_ROOT or path.startswith(API_ROOT + "/"):
            root = script + API_ROOT
            relative = path[len(API_ROOT) :]
        else:
            root = script
            relative = path
        base = self.base_url or (request.host_url.rstrip("/") + root)
        return base, relative.lstrip("/")

    def _serve(self, request: Request) -> Reply:
        base_url, path = self._root(request)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _error(413, "0x80040216", "The request body is too large.")
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "0x80040216", "The request body is too large.")
        try:
            caller = self._authenticate(request.headers)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.headers)
        call = Call(
            method=request.method.upper(),
            path=path,
            args=_query_args(request.query_string.decode("latin-1")),
            headers=request.headers,
            body=body,
        )
        if self.limits is None:
            return self._dispatch(call, caller, base_url)
        try:
            with self.limits.admit(caller.user_id):
                return self._dispatch(call, caller, base_url)
        except Throttled as exc:
            return _error(
                429, exc.code, exc.message, {"Retry-After": str(max(1, int(exc.retry_after_secs)))}
            )

    def _authenticate(self, headers: Headers) -> Caller:
        challenge = {
            "WWW-Authenticate": 'Bearer authorization_uri="local", resource_id="crmchat-local"'
        }
        value = headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "0x80072560", "The user is not authenticated.", headers=challenge)
        try:
            claims = verify_token(self.store.signing_secret, token.strip())
        except TokenError as exc:
            raise ApiError(401, "0x80072560", exc.message, headers=challenge) from None
        caller = self._caller(claims.user_id)
        if caller is None:
            raise ApiError(
                401,
                "0x80072560",
                "The user is not a member of the organization.",
                headers=challenge,
            )
        impersonated = headers.get("MSCRMCallerID") or headers.get("CallerObjectId")
        if impersonated:
            return self._impersonate(
                caller, impersonated, by_object_id="MSCRMCallerID" not in headers
            )
        return caller

    def _caller(self, user_id: str) -> Caller | None:
        user_id = user_id.lower()
        users = self.schema.tables.get("systemuser")
        if users is not None:
            row = self.store.fetch(users, user_id)
            if row is None or row.get("isdisabled"):
                return None
        business_unit = user_business_unit(self.store, user_id)
        return Caller(user_id, business_unit, tuple(user_roles(self.store, user_id)))

    def _impersonate(self, caller: Caller, target: str, *, by_object_id: bool) -> Caller:
        allowed = caller.is_admin or effective_depth(caller.roles, "prvActOnBehalfOfAnotherUser")
        if not allowed:
            raise ApiError(
                403,
                PRIVILEGE_DENIED_CODE,
                f"Principal user (Id={caller.user_id}) is missing prvActOnBehalfOfAnotherUser "
                "privilege.",
            )
        user_id = normalise_guid(target)
        users = self.schema.tables.get("systemuser")
        if by_object_id and user_id and users is not None:
            if "azureactivedirectoryobjectid" in users.columns:
                rows = self.store.query(
                    "SELECT systemuserid FROM systemuser WHERE azureactivedirectoryobjectid = ?",
                    (user_id,),
                )
                user_id = str(rows[0][0]) if rows else None
        found = self._caller(user_id) if user_id else None
        if found is None:
            raise ApiError(404, "0x80040217", f"systemuser With Id = {target} Does Not Exist")
        return found

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, call: Call, caller: Caller, base_url: str) -> Reply:
        try:
            return _Handler(self, call, caller, base_url).run()
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.headers)
        except query.QueryError as exc:
            return _error(exc.status, exc.code, exc.message)

    def batch_dispatch(
        self, caller: Caller, base_url: str
    ) -> Callable[[HttpRequest], HttpResponse]:
        """A `run_batch` dispatcher that runs each part as `caller`."""

        def dispatch(part: HttpRequest) -> HttpResponse:
            path, _, query_string = part.url.partition("?")
            call = Call(
                method=part.method.upper(),
                path=_unquote_path(path.lstrip("/")),
                args=_query_args(query_string),
                headers=Headers(list(part.headers.items())),
                body=part.body,
            )
            if call.path == "$batch":
                reply = _error(400, "0x80048d19", "A batch may not contain another batch.")
            else:
                try:
                    reply = self._dispatch(call, caller, base_url)
                except Exception:
                    log.exception("embedded Dataverse failed on a batch part")
                    reply = _error(500, "0x80040216", "An unexpected error occurred.")
            reason = _REASONS.get(reply.status, "")
            return HttpResponse(reply.status, reason, dict(reply.headers), reply.body)

        return dispatch


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


def _unquote_path(path: str) -> str:
    return unquote(path)


def _query_args(query_string: str) -> dict[str, str]:
    """Query options, '+' decoded as a space (the Python SDK sends spaces as '+')."""
    args: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        args[name] = value
    return args


class _Handler:
    """One request: the route, the caller, the preferences."""

    def __init__(self, app: DataverseApp, call: Call, caller: Caller, base_url: str) -> None:
        self.app = app
        self.store = app.store
        self.schema = app.schema
        self.call = call
        self.caller = caller
        self.base_url = base_url
        self.prefs = query.parse_prefer(call.headers.getlist("Prefer"))

    # -- routing -------------------------------------------------------------------------

    def run(self) -> Reply:
        segments = _split_path(self.call.path)
        while len(segments) > 1 and segments[-1] == "":
            segments.pop()
        first = segments[0]
        method = self.call.method
        if first == "" and len(segments) == 1:
            self._only(method, "GET")
            return self._service_document()
        if first == "$metadata":
            self._only(method, "GET")
            return Reply(
                200, metadata.csdl(self.schema).encode(), {"Content-Type": "application/xml"}
            )
        if first == "$batch" and len(segments) == 1:
            self._only(method, "POST")
            return self._batch()
        if first in ("WhoAmI", "WhoAmI()") and len(segments) == 1:
            self._only(method, "GET")
            return self._who_am_i()
        if first.startswith("EntityDefinitions"):
            self._only(method, "GET")
            status, payload = metadata.answer(self.schema, segments, self.call.args, self.base_url)
            return _json(status, payload)
        match = _ENTITY_SEGMENT.match(first)
        table = self.schema.table_for_set(match.group(1)) if match else None
        if match is None or table is None:
            raise _not_segment(match.group(1) if match else first)
        key = match.group(2)
        rest = segments[1:]
        if key is None:
            return self._collection(table, rest)
        return self._entity(table, key, rest)

    def _only(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _method_not_allowed(method)

    def _collection(self, table: Table, rest: list[str]) -> Reply:
        method = self.call.method
        if not rest:
            if method == "GET":
                return self._list(table)
            if method == "POST":
                return self._create(table)
            raise _method_not_allowed(method)
        if rest == ["$count"]:
            self._only(method, "GET")
            options = query.parse_query(self.call.args, table, self.schema)
            where, params = self._visibility(table, "t")
            clauses = [where] if where else []
            if options.filter_sql:
                clauses.append(f"({options.filter_sql})")
                params += list(options.filter_params)
            sql = f"SELECT COUNT(*) FROM {quote(table.logical_name)} AS t"
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            count = int(self.store.query(sql, params)[0][0])
            return Reply(200, str(min(count, MAX_COUNT)).encode(), {"Content-Type": "text/plain"})
        raise _not_segment(rest[0])

    def _entity(self, table: Table, key: str, rest: list[str]) -> Reply:
        method = self.call.method
        if not rest:
            if method == "GET":
                return self._retrieve(table, self._existing_id(table, key))
            if method == "PATCH":
                return self._patch(table, key)
            if method == "DELETE":
                return self._delete(table, self._existing_id(table, key))
            raise _method_not_allowed(method)
        name = rest[0]
        nav_match = _ENTITY_SEGMENT.match(name)
        nav_name = nav_match.group(1) if nav_match else name
        nav = navigation(self.schema, table, nav_name)
        if nav is not None and rest[-1] == "$ref":
            inner = nav_match.group(2) if nav_match else None
            return self._reference(table, self._existing_id(table, key), nav, inner, rest)
        if nav is not None and len(rest) == 1:
            self._only(method, "GET")
            return self._related(table, self._existing_id(table, key), nav)
        column = table.columns.get(name)
        if column is None or len(rest) > 2 or (len(rest) == 2 and rest[1] != "$value"):
            raise _not_segment(name)
        record_id = self._existing_id(table, key)
        if method == "GET":
            return self._property(table, record_id, column.logical_name, raw=len(rest) == 2)
        if len(rest) != 1:
            raise _method_not_allowed(method)
        if method == "PUT":
            payload = self._body()
            if not isinstance(payload, dict) or "value" not in payload:
                raise ApiError(400, "0x80048d19", 'The body must be {"value": ...}.')
            self._update(table, record_id, {column.logical_name: payload["value"]})
            return Reply(204)
        if method == "DELETE":
            self._update(table, record_id, {column.logical_name: None})
            return Reply(204)
        raise _method_not_allowed(method)

    # -- keys ----------------------------------------------------------------------------

    def _existing_id(self, table: Table, key: str) -> str:
        """The id a key names; 404 when an alternate key matches nothing."""
        record_id, alternate = self._key(table, key)
        if record_id is not None:
            return record_id
        row = self._find_by_alternate(table, alternate)
        if row is None:
            description = ",".join(f"{k}:{v}" for k, v in alternate.items())
            raise ApiError(
                404,
                "0x80040217",
                f"A record with the specified key values does not exist in "
                f"{table.logical_name} entity ({description})",
            )
        return str(row[table.primary_id])

    def _key(self, table: Table, key: str) -> tuple[str | None, dict[str, Any]]:
        guid = normalise_guid(key)
        if guid is not None:
            return guid, {}
        pairs: dict[str, Any] = {}
        position = 0
        text = key.strip()
        while position < len(text):
            match = _KEY_PAIR.match(text, position)
            if match is None or match.end() == position:
                raise ApiError(
                    400, "0x80060888", f"Bad Request - Error in query syntax: invalid key '{key}'."
                )
            name, raw = match.group(1), match.group(2).strip()
            position = match.end()
            if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
                value: Any = raw[1:-1].replace("''", "'")
            elif normalise_guid(raw):
                value = normalise_guid(raw)
            else:
                try:
                    value = json.loads(raw)
                except ValueError:
                    raise ApiError(
                        400, "0x80060888", f"Bad Request - Error in query syntax: '{raw}'."
                    ) from None
            if name == table.primary_id:
                guid = normalise_guid(value)
                if guid is None:
                    raise ApiError(400, "0x80060888", f"Invalid key '{key}'.")
                return guid, {}
            column = table.columns.get(name)
            if column is None:
                raise property_error(table, name)
            pairs[column.logical_name] = value
        if not pairs:
            raise ApiError(400, "0x80060888", f"Invalid key '{key}'.")
        return None, pairs

    def _find_by_alternate(self, table: Table, pairs: dict[str, Any]) -> dict[str, Any] | None:
        where = " AND ".join(f"{quote(name)} = ?" for name in pairs)
        rows = self.store.query(
            f"SELECT * FROM {quote(table.logical_name)} WHERE {where} LIMIT 1",
            [1 if v is True else 0 if v is False else v for v in pairs.values()],
        )
        return dict(rows[0]) if rows else None

    # -- security ------------------------------------------------------------------------

    def _require(
        self, action: str, table: Table, row: Mapping[str, Any] | None = None
    ) -> AccessLevel:
        """The caller's depth for `action` on `table` (and `row`); 403 when it falls short."""
        caller = self.caller
        if caller.is_admin:
            return AccessLevel.GLOBAL
        if not caller.roles:
            raise ApiError(403, NO_ROLES_CODE, no_roles_message(caller.user_id))
        privilege = privilege_name(action, table)
        depth = effective_depth(caller.roles, privilege)
        if depth is None:
            raise ApiError(
                403,
                PRIVILEGE_DENIED_CODE,
                missing_privilege_message(
                    user_id=caller.user_id,
                    privilege=privilege,
                    table=table,
                    role_count=len(caller.roles),
                    business_unit_id=caller.business_unit,
                ),
            )
        if row is not None and not self._reaches(depth, table, row):
            raise ApiError(
                403,
                PRIVILEGE_DENIED_CODE,
                access_denied_message(
                    action=action,
                    table=table,
                    record_id=str(row.get(table.primary_id)),
                    owner_id=self._owner(table, row),
                    user_id=caller.user_id,
                    owner_business_unit=row.get("owningbusinessunit"),
                ),
            )
        return depth

    def _owner(self, table: Table, row: Mapping[str, Any]) -> str | None:
        if table.ownership != Ownership.USER or "ownerid" not in table.columns:
            return None
        owner = row.get("ownerid")
        return str(owner) if owner else None

    def _reaches(self, depth: AccessLevel, table: Table, row: Mapping[str, Any]) -> bool:
        owner = self._owner(table, row)
        if owner is not None and row.get("ownerid__table") == "team":
            if self._in_team(owner):
                return True
        unit = row.get("owningbusinessunit")
        return can_touch(
            depth,
            owner_id=owner,
            user_id=self.caller.user_id,
            owner_business_unit=str(unit) if unit else None,
            user_business_unit=self.caller.business_unit,
        )

    def _in_team(self, team_id: str) -> bool:
        link = link_between(self.schema, "team", "systemuser", fallback="teammembership")
        rows = self.store.query(
            f"SELECT 1 FROM {quote(link.table)} WHERE {quote(link.left)} = ? "
            f"AND {quote(link.right)} = ?",
            (team_id, self.caller.user_id),
        )
        return bool(rows)

    def _visibility(self, table: Table, alias: str) -> tuple[str, list[Any]]:
        """A WHERE fragment limiting `table` to the records the caller may read."""
        depth = self._require("Read", table)
        if depth == AccessLevel.GLOBAL or table.ownership != Ownership.USER:
            return "", []
        if "ownerid" not in table.columns:
            return "", []
        owner = f"{alias}.{quote('ownerid')}"
        link = link_between(self.schema, "team", "systemuser", fallback="teammembership")
        teams = (
            f"{owner} IN (SELECT {quote(link.left)} FROM {quote(link.table)} "
            f"WHERE {quote(link.right)} = ?)"
        )
        if depth == AccessLevel.BASIC:
            return f"({owner} = ? OR {teams})", [self.caller.user_id, self.caller.user_id]
        unit = f"{alias}.{quote('owningbusinessunit')}"
        return (
            f"({owner} = ? OR {teams} OR {unit} = ?)",
            [self.caller.user_id, self.caller.user_id, self.caller.business_unit],
        )

    # -- reading -------------------------------------------------------------------------

    def _annotate(self, name: str) -> bool:
        return query.wants_annotation(self.prefs, name)

    def _context(self, table: Table, select: list[str] | None, *, entity: bool) -> str:
        names = ""
        if select:
            columns = [table.columns[n] for n in select if n in table.columns]
            names = "(" + ",".join(wire_name(c) for c in columns) + ")"
        suffix = "/$entity" if entity else ""
        return f"{self.base_url}/$metadata#{table.entity_set}{names}{suffix}"

    def _shape(
        self,
        table: Table,
        row: dict[str, Any],
        select: list[str] | None,
        expands: list[query.Expand],
    ) -> dict[str, Any]:
        record = to_wire(self.store, table, row, select=select, annotate=self._annotate)
        for expand in expands:
            record[expand.navigation] = self._expand(table, row, expand)
        return record

    def _expand(self, table: Table, row: dict[str, Any], expand: query.Expand) -> Any:
        target = expand.target
        record_id = str(row[table.primary_id])
        if not expand.collection:
            relation = expand.relationship
            assert not isinstance(relation, ManyToMany)
            target_id = row.get(relation.referencing_attribute)
            if target_id is None or row.get(relation.referencing_attribute + "__table") not in (
                None,
                target.logical_name,
            ):
                return None
            self._require("Read", target)
            related = self.store.fetch(target, str(target_id))
            if related is None or not self._can_read(target, related):
                return None
            return self._shape(target, related, expand.select, expand.expand)
        where, params = self._visibility(target, "t")
        clauses = [where] if where else []
        relation = expand.relationship
        if isinstance(relation, ManyToMany):
            first, second = _intersect(self.schema, relation)
            here, there = (
                (first, second)
                if relation.entity1 == table.logical_name
                else (
                    second,
                    first,
                )
            )
            if (
                relation.entity1 == relation.entity2
                and expand.navigation == relation.entity2_navigation
            ):
                here, there = second, first
            clauses.append(
                f"t.{quote(target.primary_id)} IN (SELECT {quote(there)} FROM "
                f"{quote(relation.intersect_entity)} WHERE {quote(here)} = ?)"
            )
            params.append(record_id)
        else:
            clauses.append(f"t.{quote(relation.referencing_attribute)} = ?")
            params.append(record_id)
            clauses.append(
                f"coalesce(t.{quote(relation.referencing_attribute + '__table')}, ?) = ?"
            )
            params += [table.logical_name, table.logical_name]
        if expand.filter:
            from connector.dataverse_local.filters import compile_filter

            sql, filter_params = compile_filter(expand.filter, target, self.schema, alias="t")
            clauses.append(f"({sql})")
            params += list(filter_params)
        order = query.parse_orderby(expand.orderby, target, alias="t") if expand.orderby else ""
        order = (order + ", " if order else "") + f"t.{quote(target.primary_id)}"
        sql = f"SELECT t.* FROM {quote(target.logical_name)} AS t WHERE {' AND '.join(clauses)}"
        sql += f" ORDER BY {order} LIMIT {min(expand.top or DEFAULT_PAGE_SIZE, DEFAULT_PAGE_SIZE)}"
        return [
            self._shape(target, dict(r), expand.select, expand.expand)
            for r in self.store.query(sql, params)
        ]

    def _can_read(self, table: Table, row: Mapping[str, Any]) -> bool:
        try:
            self._require("Read", table, row)
        except ApiError:
            return False
        return True

    def _retrieve(self, table: Table, record_id: str) -> Reply:
        options = query.parse_query(self.call.args, table, self.schema)
        row = self.store.fetch(table, record_id)
        if row is None:
            self._require("Read", table)
            raise not_found(table, record_id)
        self._require("Read", table, row)
        etag = f'W/"{row.get("versionnumber")}"'
        conditional = self.call.headers.get("If-None-Match")
        if conditional == etag and not options.expand and not self.prefs.include_annotations:
            return Reply(304, b"", {"ETag": etag})
        record = {"@odata.context": self._context(table, options.select, entity=True)}
        record.update(self._shape(table, row, options.select, options.expand))
        headers = {"ETag": etag}
        if self.prefs.include_annotations:
            headers["Preference-Applied"] = self._annotations_applied()
        return _json(200, record, headers)

    def _annotations_applied(self) -> str:
        return 'odata.include-annotations="' + ",".join(self.prefs.include_annotations) + '"'

    def _list(self, table: Table) -> Reply:
        options = query.parse_query(self.call.args, table, self.schema)
        where, params = self._visibility(table, "t")
        clauses = [where] if where else []
        if options.filter_sql:
            clauses.append(f"({options.filter_sql})")
            params += list(options.filter_params)
        keys = _order_keys(self.call.args.get("$orderby"), table)
        keys.append((f"t.{quote(table.primary_id)}", table.primary_id, False))
        page_size = self.prefs.max_page_size
        limit = page_size or options.top or DEFAULT_PAGE_SIZE
        if page_size is None and options.top is not None:
            limit = min(options.top, DEFAULT_PAGE_SIZE)
        paged_clauses = list(clauses)
        paged_params = list(params)
        if options.skiptoken:
            sql, values = _after(keys, _read_token(options.skiptoken, len(keys)))
            paged_clauses.append(sql)
            paged_params += values
        base = f"FROM {quote(table.logical_name)} AS t"
        sql = f"SELECT t.* {base}"
        if paged_clauses:
            sql += " WHERE " + " AND ".join(paged_clauses)
        sql += " ORDER BY " + ", ".join(
            f"{expr} {'DESC' if desc else 'ASC'}" for expr, _, desc in keys
        )
        sql += f" LIMIT {limit + 1}"
        rows = [dict(r) for r in self.store.query(sql, paged_params)]
        more = len(rows) > limit and (page_size is not None or options.top is None)
        rows = rows[:limit]
        body: dict[str, Any] = {
            "@odata.context": self._context(table, options.select, entity=False)
        }
        if options.count:
            count_sql = f"SELECT COUNT(*) {base}"
            if clauses:
                count_sql += " WHERE " + " AND ".join(clauses)
            body["@odata.count"] = min(int(self.store.query(count_sql, params)[0][0]), MAX_COUNT)
        body["value"] = [self._shape(table, row, options.select, options.expand) for row in rows]
        headers: dict[str, str] = {}
        applied = []
        if page_size is not None:
            applied.append(f"odata.maxpagesize={page_size}")
        if self.prefs.include_annotations:
            applied.append(self._annotations_applied())
        if applied:
            headers["Preference-Applied"] = ",".join(applied)
        if more and rows:
            token = _make_token([rows[-1].get(column) for _, column, _ in keys])
            args = {k: v for k, v in self.call.args.items() if k.lower() != "$skiptoken"}
            args["$skiptoken"] = token
            link = urlencode(args, quote_via=url_quote, safe="$(),';:@/")
            body["@odata.nextLink"] = f"{self.base_url}/{table.entity_set}?{link}"
        return _json(200, body, headers)

    def _property(self, table: Table, record_id: str, name: str, *, raw: bool) -> Reply:
        row = self.store.fetch(table, record_id)
        if row is None:
            self._require("Read", table)
            raise not_found(table, record_id)
        self._require("Read", table, row)
        column = table.columns[name]
        value = to_wire(self.store, table, row, select=[name], annotate=lambda _: False)
        wire = value.get(wire_name(column))
        if wire is None:
            return Reply(204)
        if raw:
            text = wire if isinstance(wire, str) else json.dumps(wire)
            if column.type == ColumnType.IMAGE:
                try:
                    return Reply(
                        200, base64.b64decode(text), {"Content-Type": "application/octet-stream"}
                    )
                except (binascii.Error, ValueError):
                    pass
            return Reply(200, text.encode("utf-8"), {"Content-Type": "text/plain"})
        context = f"{self.base_url}/$metadata#{table.entity_set}({record_id})/{wire_name(column)}"
        return _json(200, {"@odata.context": context, "value": wire})

    def _related(self, table: Table, record_id: str, nav: Nav) -> Reply:
        row = self.store.fetch(table, record_id)
        if row is None:
            self._require("Read", table)
            raise not_found(table, record_id)
        self._require("Read", table, row)
        items = query.parse_expand(nav.name, table, self.schema)
        options = self.call.args
        expand = items[0]
        if options:
            nested = ";".join(f"{k}={v}" for k, v in options.items() if k.startswith("$"))
            if nested:
                expand = query.parse_expand(f"{nav.name}({nested})", table, self.schema)[0]
        value = self._expand(table, row, expand)
        if isinstance(value, list):
            return _json(
                200,
                {
                    "@odata.context": self._context(expand.target, expand.select, entity=False),
                    "value": value,
                },
            )
        if value is None:
            raise ApiError(404, "0x80060888", f"No record is linked through '{nav.name}'.")
        context = self._context(expand.target, expand.select, entity=True)
        return _json(200, {"@odata.context": context, **value})

    # -- writing -------------------------------------------------------------------------

    def _body(self) -> Any:
        if not self.call.body.strip():
            raise ApiError(
                400, "0x80048d19", "The request body is empty; a JSON object is expected."
            )
        try:
            payload = json.loads(self.call.body.decode("utf-8"))
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

    def _entity_id_header(self, table: Table, record_id: str) -> dict[str, str]:
        return {"OData-EntityId": f"{self.base_url}/{table.entity_set}({record_id})"}

    def _create(self, table: Table) -> Reply:
        payload = self._body()
        with self.store.transaction():
            record_id = self._insert(table, payload)
        return self._written(table, record_id, created=True)

    def _written(self, table: Table, record_id: str, *, created: bool) -> Reply:
        if not self.prefs.return_representation:
            return Reply(204, b"", self._entity_id_header(table, record_id))
        options = query.parse_query(self.call.args, table, self.schema)
        row = self.store.fetch(table, record_id)
        assert row is not None
        record = {"@odata.context": self._context(table, options.select, entity=True)}
        expands = options.expand if created else []
        record.update(self._shape(table, row, options.select, expands))
        headers = {
            "Preference-Applied": "return=representation",
            "ETag": f'W/"{row.get("versionnumber")}"',
        }
        if created:
            headers.update(self._entity_id_header(table, record_id))
        return _json(201 if created else 200, record, headers)

    def _insert(
        self,
        table: Table,
        payload: Any,
        *,
        record_id: str | None = None,
        preset: Mapping[str, Any] | None = None,
        depth: int = 0,
    ) -> str:
        payload, nested = self._split_nested(table, payload, depth)
        changes = read_payload(self.schema, table, payload, base_url=self.base_url)
        values = dict(preset or {})
        values.update(changes.values)
        given = values.pop(table.primary_id, None)
        if record_id is not None and given is not None and given != record_id:
            raise ApiError(
                400, "0x80048d19", "The id in the body does not match the id in the URL."
            )
        record_id = record_id or given or new_guid()
        if self.store.fetch(table, record_id) is not None:
            raise ApiError(412, "0x80040237", "A record with matching key values already exists.")
        now = utc_now()
        columns = table.columns
        server: dict[str, Any] = {}
        for name in ("createdon", "modifiedon"):
            if name in columns:
                server[name] = now
        for name in ("createdby", "modifiedby"):
            if name in columns:
                server[name] = self.caller.user_id
                server[name + "__table"] = "systemuser"
        if table.ownership == Ownership.USER and "ownerid" in columns:
            if values.get("ownerid") is None:
                values["ownerid"] = self.caller.user_id
                values["ownerid__table"] = "systemuser"
            if "owningbusinessunit" in columns:
                server["owningbusinessunit"] = self._owner_unit(values)
                server["owningbusinessunit__table"] = "businessunit"
            _set_owning(table, values, server)
        if "statecode" in columns and values.get("statecode") is None:
            values["statecode"] = 0
        status = columns.get("statuscode")
        if status is not None and values.get("statuscode") is None and status.options:
            values["statuscode"] = 1 if 1 in status.options else min(status.options)
        values.update(server)
        self._compute(table, values, values)
        for column in columns.values():
            if not column.system_required or column.logical_name == table.primary_id:
                continue
            if column.logical_name in server or column.logical_name in (
                "fullname",
                "versionnumber",
            ):
                continue
            if values.get(column.logical_name) is None:
                raise ApiError(
                    400,
                    "0x80040203",
                    f"Attribute '{column.logical_name}' of entity '{table.logical_name}' is "
                    "required and cannot be empty.",
                )
        self._require("Create", table, {**values, table.primary_id: record_id})
        self._check_links(table, changes)
        values[table.primary_id] = record_id
        values["versionnumber"] = self.store.next_version()
        self.store.insert(table, {k: v for k, v in values.items() if _stored(table, k)})
        for nav, target, target_id in changes.associations:
            self._associate(table, record_id, nav, target, target_id)
        for nav, items in nested:
            self._insert_children(table, record_id, nav, items, depth)
        return record_id

    def _split_nested(
        self, table: Table, payload: Any, depth: int
    ) -> tuple[Any, list[tuple[Nav, list[Any]]]]:
        """Deep insert: create nested single-valued records now and return the collections.

        `{"primarycontactid": {...}}` creates the contact and binds it;
        `{"Account_Tasks": [{...}]}` is returned, to be created after the parent.
        """
        if not isinstance(payload, dict):
            return payload, []
        flat: dict[str, Any] = {}
        later: list[tuple[Nav, list[Any]]] = []
        for key, value in payload.items():
            deep = isinstance(value, dict) or (
                isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
            )
            known = key in table.columns or key.lower() in table.columns
            nav = None if "@" in key or known or not deep else navigation(self.schema, table, key)
            if nav is None:
                flat[key] = value
                continue
            if depth >= MAX_DEEP_INSERT_LEVELS:
                raise ApiError(400, "0x80048d19", "The deep insert is nested too deeply.")
            if nav.kind == "single":
                if not isinstance(value, dict) or not nav.target:
                    raise ApiError(
                        400, "0x80048d19", f"'{nav.name}' cannot hold a nested record here."
                    )
                target = self.schema.tables[nav.target]
                child_id = self._insert(target, value, depth=depth + 1)
                flat[f"{nav.name}@odata.bind"] = f"/{target.entity_set}({child_id})"
            elif isinstance(value, list):
                later.append((nav, value))
            else:
                raise ApiError(400, "0x80048d19", f"'{nav.name}' needs an array of records.")
        return flat, later

    def _insert_children(
        self, table: Table, record_id: str, nav: Nav, items: list[Any], depth: int
    ) -> None:
        target = self.schema.tables[nav.target]
        for item in items:
            if nav.kind == "collection":
                relation = nav.relations[0]
                bind = f"{relation.referencing_navigation}@odata.bind"
                child = {**item, bind: f"/{table.entity_set}({record_id})"}
                self._insert(target, child, depth=depth + 1)
            else:
                child_id = self._insert(target, item, depth=depth + 1)
                self._associate(table, record_id, nav, target, child_id)

    def _owner_unit(self, values: Mapping[str, Any]) -> str | None:
        owner = values.get("ownerid")
        if owner is None:
            return self.caller.business_unit
        if values.get("ownerid__table") == "team":
            teams = self.schema.tables.get("team")
            row = self.store.fetch(teams, str(owner)) if teams else None
            unit = row.get("businessunitid") if row else None
            return str(unit) if unit else self.caller.business_unit
        return user_business_unit(self.store, str(owner)) or self.caller.business_unit

    def _compute(self, table: Table, row: Mapping[str, Any], values: dict[str, Any]) -> None:
        """Fill columns Dataverse computes (fullname) from the merged row."""
        if "fullname" in table.columns and {"firstname", "lastname"} <= set(table.columns):
            if "firstname" in values or "lastname" in values or "fullname" not in row:
                first = row.get("firstname") or ""
                last = row.get("lastname") or ""
                values["fullname"] = f"{first} {last}".strip() or None

    def _check_links(self, table: Table, changes: Changes) -> None:
        if changes.bound or changes.associations:
            self._require("Append", table)
        for target, target_id in list(changes.bound.values()) + [
            (t, i) for _, t, i in changes.associations
        ]:
            if self.store.fetch(target, target_id) is None:
                raise not_found(target, target_id)
            self._require("AppendTo", target)

    def _patch(self, table: Table, key: str) -> Reply:
        record_id, alternate = self._key(table, key)
        payload = self._body()
        headers = self.call.headers
        with self.store.transaction():
            row = (
                self.store.fetch(table, record_id)
                if record_id is not None
                else self._find_by_alternate(table, alternate)
            )
            if headers.get("If-None-Match", "").strip() == "*" and row is not None:
                raise ApiError(
                    412, "0x80040237", "A record with matching key values already exists."
                )
            if_match = headers.get("If-Match")
            if if_match is not None:
                if row is None:
                    self._require("Write", table)
                    raise not_found(table, record_id or key)
                if (
                    if_match.strip() != "*"
                    and if_match.strip() != f'W/"{row.get("versionnumber")}"'
                ):
                    raise ApiError(
                        412,
                        "0x80060882",
                        "The version of the existing record doesn't match the RowVersion "
                        "property provided.",
                    )
            if row is None:
                if not isinstance(payload, dict):
                    read_payload(self.schema, table, payload, base_url=self.base_url)
                preset = {}
                for name, value in alternate.items():
                    preset[name] = value
                record_id = self._insert(table, payload, record_id=record_id, preset=preset)
                created = True
            else:
                record_id = str(row[table.primary_id])
                self._update(table, record_id, payload, row=row)
                created = False
        if self.prefs.return_representation:
            return self._written(table, record_id, created=created)
        return Reply(204, b"", self._entity_id_header(table, record_id))

    def _update(
        self,
        table: Table,
        record_id: str,
        payload: Any,
        *,
        row: Mapping[str, Any] | None = None,
    ) -> None:
        with self.store.transaction():
            current = row if row is not None else self.store.fetch(table, record_id)
            if current is None:
                self._require("Write", table)
                raise not_found(table, record_id)
            changes = read_payload(self.schema, table, payload, base_url=self.base_url)
            values = dict(changes.values)
            given = values.pop(table.primary_id, None)
            if given is not None and given != record_id:
                raise ApiError(400, "0x80048d19", "The primary key cannot be changed.")
            self._require("Write", table, current)
            self._check_links(table, changes)
            if "ownerid" in values:
                if values["ownerid"] is None:
                    raise ApiError(400, "0x80040203", "A record must have an owner.")
                self._require("Assign", table, current)
                if "owningbusinessunit" in table.columns:
                    values["owningbusinessunit"] = self._owner_unit(values)
                    values["owningbusinessunit__table"] = "businessunit"
                _set_owning(table, values, values)
            for column in table.columns.values():
                if (
                    column.system_required
                    and column.logical_name in values
                    and values[column.logical_name] is None
                ):
                    if column.logical_name != "ownerid":
                        raise ApiError(
                            400,
                            "0x80040203",
                            f"Attribute '{column.logical_name}' of entity '{table.logical_name}' "
                            "is required and cannot be empty.",
                        )
            merged = {**current, **values}
            self._compute(table, merged, values)
            if "modifiedon" in table.columns:
                values["modifiedon"] = utc_now()
            if "modifiedby" in table.columns:
                values["modifiedby"] = self.caller.user_id
                values["modifiedby__table"] = "systemuser"
            values["versionnumber"] = self.store.next_version()
            self.store.update(
                table, record_id, {k: v for k, v in values.items() if _stored(table, k)}
            )
            for nav, target, target_id in changes.associations:
                self._associate(table, record_id, nav, target, target_id)

    def _delete(self, table: Table, record_id: str) -> Reply:
        with self.store.transaction() as db:
            row = self.store.fetch(table, record_id)
            if row is None:
                self._require("Delete", table)
                raise not_found(table, record_id)
            self._require("Delete", table, row)
            if_match = (self.call.headers.get("If-Match") or "*").strip()
            if if_match != "*" and if_match != f'W/"{row.get("versionnumber")}"':
                raise ApiError(
                    412,
                    "0x80060882",
                    "The version of the existing record doesn't match the RowVersion "
                    "property provided.",
                )
            self.store.delete(table, record_id)
            # Dataverse removes the links that pointed at the record (RemoveLink cascade).
            for relation in self.schema.one_to_many:
                if relation.referenced_entity != table.logical_name:
                    continue
                child = self.schema.tables.get(relation.referencing_entity)
                if child is None or relation.referencing_attribute not in child.columns:
                    continue
                column = relation.referencing_attribute
                db.execute(
                    f"UPDATE {quote(child.logical_name)} SET {quote(column)} = NULL, "
                    f"{quote(column + '__table')} = NULL WHERE {quote(column)} = ? AND "
                    f"coalesce({quote(column + '__table')}, ?) = ?",
                    (record_id, table.logical_name, table.logical_name),
                )
        return Reply(204)

    # -- links ---------------------------------------------------------------------------

    def _reference(
        self, table: Table, record_id: str, nav: Nav, inner: str | None, rest: list[str]
    ) -> Reply:
        method = self.call.method
        if len(rest) != 2:
            raise _not_segment(rest[-1])
        with self.store.transaction():
            row = self.store.fetch(table, record_id)
            if row is None:
                self._require("Read", table)
                raise not_found(table, record_id)
            if nav.kind == "single":
                if inner is not None:
                    raise _not_segment(rest[0])
                if method == "PUT" or method == "POST":
                    target, target_id = parse_reference(
                        self.schema, self._reference_body(), base_url=self.base_url
                    )
                    self._update(
                        table,
                        record_id,
                        {f"{nav.name}@odata.bind": f"/{target.entity_set}({target_id})"},
                        row=row,
                    )
                    return Reply(204)
                if method == "DELETE":
                    self._update(table, record_id, {f"{nav.name}@odata.bind": None}, row=row)
                    return Reply(204)
                raise _method_not_allowed(method)
            target_table = self.schema.tables[nav.target]
            if method == "POST" and inner is None:
                target, target_id = parse_reference(
                    self.schema, self._reference_body(), base_url=self.base_url
                )
                if target.logical_name != target_table.logical_name:
                    raise ApiError(400, "0x80060888", f"'{nav.name}' holds '{nav.target}' records.")
                if self.store.fetch(target, target_id) is None:
                    raise not_found(target, target_id)
                self._require("Append", table, row)
                self._require("AppendTo", target)
                self._associate(table, record_id, nav, target, target_id)
                return Reply(204)
            if method == "DELETE":
                if inner is not None:
                    inner_id = normalise_guid(inner)
                    if inner_id is None:
                        raise ApiError(400, "0x80060888", f"Invalid key '{inner}'.")
                    target_id = inner_id
                else:
                    reference = self.call.args.get("$id")
                    if reference is None:
                        raise ApiError(400, "0x80060888", "The $id query option is required.")
                    _, target_id = parse_reference(self.schema, reference, base_url=self.base_url)
                self._require("Append", table, row)
                self._disassociate(table, record_id, nav, target_table, target_id)
                return Reply(204)
            raise _method_not_allowed(method)

    def _reference_body(self) -> Any:
        payload = self._body()
        if not isinstance(payload, dict) or "@odata.id" not in payload:
            raise ApiError(400, "0x80048d19", 'The body must be {"@odata.id": "<url>"}.')
        return payload["@odata.id"]

    def _associate(
        self, table: Table, record_id: str, nav: Nav, target: Table, target_id: str
    ) -> None:
        if nav.kind == "many" and nav.many is not None:
            here, there = _sides(self.schema, nav, table)
            with self.store.transaction() as db:
                db.execute(
                    f"INSERT OR IGNORE INTO {quote(nav.many.intersect_entity)} "
                    f"({quote(here)}, {quote(there)}) VALUES (?, ?)",
                    (record_id, target_id),
                )
            return
        relation = nav.relations[0]
        child = self.store.fetch(target, target_id)
        if child is None:
            raise not_found(target, target_id)
        self._require("Write", target, child)
        column = relation.referencing_attribute
        self.store.update(
            target,
            target_id,
            {
                column: record_id,
                column + "__table": table.logical_name,
                "versionnumber": self.store.next_version(),
            },
        )

    def _disassociate(
        self, table: Table, record_id: str, nav: Nav, target: Table, target_id: str
    ) -> None:
        if nav.kind == "many" and nav.many is not None:
            here, there = _sides(self.schema, nav, table)
            with self.store.transaction() as db:
                db.execute(
                    f"DELETE FROM {quote(nav.many.intersect_entity)} WHERE {quote(here)} = ? "
                    f"AND {quote(there)} = ?",
                    (record_id, target_id),
                )
            return
        relation = nav.relations[0]
        child = self.store.fetch(target, target_id)
        column = relation.referencing_attribute
        if child is None or child.get(column) != record_id:
            raise not_found(target, target_id)
        self._require("Write", target, child)
        self.store.update(
            target,
            target_id,
            {column: None, column + "__table": None, "versionnumber": self.store.next_version()},
        )

    # -- the rest ------------------------------------------------------------------------

    def _who_am_i(self) -> Reply:
        return _json(
            200,
            {
                "@odata.context": (
                    f"{self.base_url}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"
                ),
                "BusinessUnitId": self.caller.business_unit,
                "UserId": self.caller.user_id,
                "OrganizationId": self.store.organization_id,
            },
        )

    def _service_document(self) -> Reply:
        sets = sorted(t.entity_set for t in self.schema.tables.values())
        return _json(
            200,
            {
                "@odata.context": f"{self.base_url}/$metadata",
                "value": [{"name": s, "kind": "EntitySet", "url": s} for s in sets],
            },
        )

    def _batch(self) -> Reply:
        content_type = self.call.headers.get("Content-Type", "")

        @contextmanager
        def changeset() -> Iterator[None]:
            with self.store.transaction():
                yield None

        status, reply_type, body = run_batch(
            self.call.body,
            content_type,
            dispatch=self.app.batch_dispatch(self.caller, self.base_url),
            changeset=changeset,
            continue_on_error=self.prefs.continue_on_error,
            base_url=self.base_url,
        )
        headers = {"Content-Type": reply_type}
        if self.prefs.continue_on_error:
            headers["Preference-Applied"] = "odata.continue-on-error"
        return Reply(status, body, headers)


def _set_owning(table: Table, values: Mapping[str, Any], into: dict[str, Any]) -> None:
    """owninguser/owningteam follow ownerid, as Dataverse keeps them."""
    kind = values.get("ownerid__table")
    for column, owner_kind in (("owninguser", "systemuser"), ("owningteam", "team")):
        if column in table.columns:
            mine = kind == owner_kind
            into[column] = values.get("ownerid") if mine else None
            into[column + "__table"] = owner_kind if mine else None


def _stored(table: Table, name: str) -> bool:
    if name == table.primary_id or name == "versionnumber":
        return True
    column = table.columns.get(name.removesuffix("__table"))
    if column is None:
        return False
    return not name.endswith("__table") or column.type in LOOKUP_TYPES


def _intersect(schema: Schema, relation: ManyToMany) -> tuple[str, str]:
    return intersect_columns(relation, schema)


def _sides(schema: Schema, nav: Nav, table: Table) -> tuple[str, str]:
    """(this side's column, the other side's column) in an N:N intersect table."""
    assert nav.many is not None
    first, second = _intersect(schema, nav.many)
    if nav.many.entity1 == table.logical_name and nav.name == nav.many.entity1_navigation:
        return first, second
    return second, first


def _order_keys(text: str | None, table: Table) -> list[tuple[str, str, bool]]:
    """(SQL expression, stored column, descending) for each `$orderby` item."""
    keys: list[tuple[str, str, bool]] = []
    if not text:
        return keys
    for item in text.split(","):
        words = item.split()
        column = query.resolve_column(table, words[0]) if words else None
        if column is None:
            continue  # parse_query already refused it
        desc = len(words) > 1 and words[1].lower() == "desc"
        keys.append((f"t.{quote(column.logical_name)}", column.logical_name, desc))
    return keys


def _make_token(values: list[Any]) -> str:
    """A `$skiptoken`: the sort-key values of the page's last row (a keyset cursor)."""
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise ApiError(400, "0x80060888", "The $skiptoken is invalid for this query.")
    if any(isinstance(v, list | dict) for v in values):
        raise ApiError(400, "0x80060888", "The $skiptoken is invalid for this query.")
    return values


def _after(keys: list[tuple[str, str, bool]], values: list[Any]) -> tuple[str, list[Any]]:
    """A WHERE fragment for the rows after `values` in the order `keys` (NULLs first asc)."""
    terms: list[str] = []
    params: list[Any] = []
    for i, (expr, _, desc) in enumerate(keys):
        parts: list[str] = []
        term_params: list[Any] = []
        for j in range(i):
            prior, value = keys[j][0], values[j]
            if value is None:
                parts.append(f"{prior} IS NULL")
            else:
                parts.append(f"{prior} = ?")
                term_params.append(value)
        value = values[i]
        if value is None:
            parts.append("0" if desc else f"{expr} IS NOT NULL")
        elif desc:
            parts.append(f"({expr} < ? OR {expr} IS NULL)")
            term_params.append(value)
        else:
            parts.append(f"{expr} > ?")
            term_params.append(value)
        terms.append("(" + " AND ".join(parts) + ")")
        params += term_params
    return "(" + " OR ".join(terms) + ")", params


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
