"""Writing records: create (with deep insert), update, upsert and delete.

Every write runs in one store transaction and fills the columns Dataverse sets itself:
createdon/modifiedon, createdby/modifiedby (the caller), ownerid (the caller unless bound),
owninguser/owningteam/owningbusinessunit, statecode 0 and a default statuscode, fullname,
and versionnumber from the global counter (the ETag).

Errors (`store.ApiError`): 400 for a bad payload or a missing required column
(`0x80040203`), 403 for a missing privilege, 404 for a missing record, 412 for an
`If-Match` ETag that does not match (`0x80060882`) or a record that already exists
(`0x80040237`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.dataverse_local import query
from connector.dataverse_local.access import access_record, fetch_existing, require
from connector.dataverse_local.autonumber import next_number
from connector.dataverse_local.column_security import check_secured_writes
from connector.dataverse_local.exchange import Exchange, Reply, json_reply
from connector.dataverse_local.expand import shape
from connector.dataverse_local.keys import find_by_alternate, parse_key
from connector.dataverse_local.links import associate, check_links
from connector.dataverse_local.records import Nav, navigation, not_found, read_payload
from connector.dataverse_local.store import (
    LOOKUP_TYPES,
    ApiError,
    coerce_value,
    new_guid,
    quote,
    utc_now,
)
from connector.dataverse_local.users import user_business_unit
from connector.solution.model import Ownership, Table

__all__ = ["MAX_DEEP_INSERT_LEVELS", "create", "delete", "patch", "update"]

MAX_DEEP_INSERT_LEVELS = 10  # nested records in one create body
_EXISTS_CODE = "0x80040237"


def create(ex: Exchange, table: Table) -> Reply:
    """`POST <set>`: 204 with `OData-EntityId`, or 201 with the record when asked."""
    payload = ex.read_json()
    with ex.store.transaction():
        record_id = _insert(ex, table, payload)
    return _written(ex, table, record_id, created=True)


def patch(ex: Exchange, table: Table, key: str) -> Reply:
    """`PATCH <set>(<key>)`: update, or upsert (create) unless `If-Match` is given."""
    record_id, alternate = parse_key(table, key)
    payload = ex.read_json()
    headers = ex.call.headers
    with ex.store.transaction():
        row = (
            ex.store.fetch(table, record_id)
            if record_id is not None
            else find_by_alternate(ex.store, table, alternate)
        )
        if headers.get("If-None-Match", "").strip() == "*" and row is not None:
            raise ApiError(412, _EXISTS_CODE, "A record with matching key values already exists.")
        if_match = headers.get("If-Match")
        if if_match is not None:
            if row is None:
                require(ex, "Write", table)
                raise not_found(table, record_id or key)
            _check_version(if_match, row)
        if row is None:
            if not isinstance(payload, dict):
                read_payload(ex.schema, table, payload, base_url=ex.base_url)
            preset = _key_values(table, alternate)
            record_id = _insert(ex, table, payload, record_id=record_id, preset=preset)
            created = True
        else:
            record_id = str(row[table.primary_id])
            update(ex, table, record_id, payload, row=row)
            created = False
    if ex.prefs.return_representation:
        return _written(ex, table, record_id, created=created)
    return Reply(204, b"", ex.entity_id_header(table, record_id))


def update(
    ex: Exchange,
    table: Table,
    record_id: str,
    payload: Any,
    *,
    row: Mapping[str, Any] | None = None,
) -> None:
    """Apply the body `payload` to an existing record (`row`, when already fetched)."""
    store = ex.store
    with store.transaction():
        current = row if row is not None else fetch_existing(ex, "Write", table, record_id)
        changes = read_payload(ex.schema, table, payload, base_url=ex.base_url)
        values = dict(changes.values)
        given = values.pop(table.primary_id, None)
        if given is not None and given != record_id:
            raise ApiError(400, "0x80048d19", "The primary key cannot be changed.")
        require(ex, "Write", table, current)
        check_secured_writes(ex, table, values, creating=False)
        check_links(ex, table, changes)
        if "ownerid" in values:
            if values["ownerid"] is None:
                raise ApiError(400, "0x80040203", "A record must have an owner.")
            require(ex, "Assign", table, current)
            if "owningbusinessunit" in table.columns:
                values["owningbusinessunit"] = _owner_unit(ex, values)
                values["owningbusinessunit__table"] = "businessunit"
            _set_owning(table, values, values)
        for column in table.columns.values():
            name = column.logical_name
            if column.system_required and name != "ownerid" and name in values:
                if values[name] is None:
                    raise _required(table, name)
        merged = {**current, **values}
        _compute(table, merged, values)
        if "modifiedon" in table.columns:
            values["modifiedon"] = utc_now()
        if "modifiedby" in table.columns:
            values["modifiedby"] = ex.caller.user_id
            values["modifiedby__table"] = "systemuser"
        values["versionnumber"] = store.next_version()
        stored = _stored(table)
        store.update(table, record_id, {k: v for k, v in values.items() if k in stored})
        for nav, target, target_id in changes.associations:
            associate(ex, table, record_id, nav, target, target_id)


def delete(ex: Exchange, table: Table, record_id: str) -> Reply:
    """`DELETE <set>(<id>)`, honouring `If-Match`; lookups pointing at it are cleared."""
    with ex.store.transaction() as db:
        row = access_record(ex, "Delete", table, record_id)
        _check_version(ex.call.headers.get("If-Match") or "*", row)
        ex.store.delete(table, record_id)
        # Dataverse removes the links that pointed at the record (RemoveLink cascade).
        for relation in ex.schema.one_to_many:
            if relation.referenced_entity != table.logical_name:
                continue
            child = ex.schema.tables.get(relation.referencing_entity)
            if child is None or relation.referencing_attribute not in child.columns:
                continue
            if child.read_only:  # activitypointer follows its activities' own links
                continue
            column = relation.referencing_attribute
            db.execute(
                f"UPDATE {quote(child.logical_name)} SET {quote(column)} = NULL, "
                f"{quote(column + '__table')} = NULL WHERE {quote(column)} = ? AND "
                f"coalesce({quote(column + '__table')}, ?) = ?",
                (record_id, table.logical_name, table.logical_name),
            )
    return Reply(204)


def _key_values(table: Table, alternate: Mapping[str, Any]) -> dict[str, Any]:
    """Alternate key values as the columns of a record an upsert creates, validated as a
    payload is (length, range, type), so the key cannot store what a body could not."""
    return {
        name: value
        if table.columns[name].type in LOOKUP_TYPES
        else coerce_value(table, table.columns[name], value)
        for name, value in alternate.items()
    }


def _check_version(if_match: str, row: Mapping[str, Any]) -> None:
    """412 unless `If-Match` is `*` or the row's ETag."""
    wanted = if_match.strip()
    if wanted != "*" and wanted != f'W/"{row.get("versionnumber")}"':
        raise ApiError(
            412,
            "0x80060882",
            "The version of the existing record doesn't match the RowVersion property provided.",
        )


def _required(table: Table, name: str) -> ApiError:
    return ApiError(
        400,
        "0x80040203",
        f"Attribute '{name}' of entity '{table.logical_name}' is required and cannot be empty.",
    )


def _written(ex: Exchange, table: Table, record_id: str, *, created: bool) -> Reply:
    """The reply to a write: 204, or with `return=representation` the record itself."""
    if not ex.prefs.return_representation:
        return Reply(204, b"", ex.entity_id_header(table, record_id))
    options = query.parse_query(ex.call.args, table, ex.schema)
    row = ex.store.fetch(table, record_id)
    assert row is not None
    record = {"@odata.context": ex.context_url(table, options.select, entity=True)}
    expands = options.expand if created else []
    record.update(shape(ex, table, row, options.select, expands))
    headers = {
        "Preference-Applied": "return=representation",
        "ETag": f'W/"{row.get("versionnumber")}"',
    }
    if created:
        headers.update(ex.entity_id_header(table, record_id))
    return json_reply(201 if created else 200, record, headers)


def _insert(
    ex: Exchange,
    table: Table,
    payload: Any,
    *,
    record_id: str | None = None,
    preset: Mapping[str, Any] | None = None,
    depth: int = 0,
) -> str:
    """Create a record from `payload` (plus `preset` values); returns its id."""
    store = ex.store
    payload, nested = _split_nested(ex, table, payload, depth)
    changes = read_payload(ex.schema, table, payload, base_url=ex.base_url)
    values = dict(preset or {})
    values.update(changes.values)
    given = values.pop(table.primary_id, None)
    if record_id is not None and given is not None and given != record_id:
        raise ApiError(400, "0x80048d19", "The id in the body does not match the id in the URL.")
    chosen = record_id or given
    record_id = chosen or new_guid()
    # Only an id the client chose can exist already; a fresh uuid4 cannot (and the primary
    # key would still refuse it), so a plain create skips the read.
    if chosen is not None and store.fetch(table, record_id) is not None:
        raise ApiError(412, _EXISTS_CODE, "A record with matching key values already exists.")
    now = utc_now()
    columns = table.columns
    server: dict[str, Any] = {}
    numbered = next_number(store, table.logical_name)
    if numbered is not None and numbered[0] in columns:
        server[numbered[0]] = numbered[1]
    for name in ("createdon", "modifiedon"):
        if name in columns:
            server[name] = now
    for name in ("createdby", "modifiedby"):
        if name in columns:
            server[name] = ex.caller.user_id
            server[name + "__table"] = "systemuser"
    if table.ownership == Ownership.USER and "ownerid" in columns:
        if values.get("ownerid") is None:
            values["ownerid"] = ex.caller.user_id
            values["ownerid__table"] = "systemuser"
        if "owningbusinessunit" in columns:
            server["owningbusinessunit"] = _owner_unit(ex, values)
            server["owningbusinessunit__table"] = "businessunit"
        _set_owning(table, values, server)
    if "statecode" in columns and values.get("statecode") is None:
        values["statecode"] = 0
    status = columns.get("statuscode")
    if status is not None and values.get("statuscode") is None and status.options:
        values["statuscode"] = 1 if 1 in status.options else min(status.options)
    values.update(server)
    _compute(table, values, values)
    for column in columns.values():
        name = column.logical_name
        if not column.system_required or name == table.primary_id:
            continue
        if name in server or name in ("fullname", "versionnumber"):
            continue
        if values.get(name) is None:
            raise _required(table, name)
    require(ex, "Create", table, {**values, table.primary_id: record_id})
    check_secured_writes(ex, table, changes.values, creating=True)
    check_links(ex, table, changes)
    values[table.primary_id] = record_id
    values["versionnumber"] = store.next_version()
    stored = _stored(table)
    store.insert(table, {k: v for k, v in values.items() if k in stored})
    for nav, target, target_id in changes.associations:
        associate(ex, table, record_id, nav, target, target_id)
    for nav, items in nested:
        _insert_children(ex, table, record_id, nav, items, depth)
    return record_id


def _split_nested(
    ex: Exchange, table: Table, payload: Any, depth: int
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
        nav = None if "@" in key or known or not deep else navigation(ex.schema, table, key)
        if nav is None:
            flat[key] = value
            continue
        if depth >= MAX_DEEP_INSERT_LEVELS:
            raise ApiError(400, "0x80048d19", "The deep insert is nested too deeply.")
        if nav.kind == "single":
            if not isinstance(value, dict) or not nav.target:
                raise ApiError(400, "0x80048d19", f"'{nav.name}' cannot hold a nested record here.")
            target = ex.schema.tables[nav.target]
            child_id = _insert(ex, target, value, depth=depth + 1)
            flat[f"{nav.name}@odata.bind"] = f"/{target.entity_set}({child_id})"
        elif isinstance(value, list):
            later.append((nav, value))
        else:
            raise ApiError(400, "0x80048d19", f"'{nav.name}' needs an array of records.")
    return flat, later


def _insert_children(
    ex: Exchange, table: Table, record_id: str, nav: Nav, items: list[Any], depth: int
) -> None:
    """Deep insert: create the records of a collection-valued property, linked to the parent."""
    target = ex.schema.tables[nav.target]
    for item in items:
        if nav.kind == "collection":
            relation = nav.relations[0]
            bind = f"{relation.referencing_navigation}@odata.bind"
            child = {**item, bind: f"/{table.entity_set}({record_id})"}
            _insert(ex, target, child, depth=depth + 1)
        else:
            child_id = _insert(ex, target, item, depth=depth + 1)
            associate(ex, table, record_id, nav, target, child_id)


def _owner_unit(ex: Exchange, values: Mapping[str, Any]) -> str | None:
    """The business unit of the record's owner (a user or a team); the caller's otherwise."""
    owner = values.get("ownerid")
    fallback = ex.caller.business_unit
    if owner is None:
        return fallback
    if owner == ex.caller.user_id and values.get("ownerid__table") == "systemuser":
        # The caller's own unit, read with the caller (and remembered until a user changes).
        return fallback
    if values.get("ownerid__table") == "team":
        teams = ex.schema.tables.get("team")
        row = ex.store.fetch(teams, str(owner)) if teams else None
        unit = row.get("businessunitid") if row else None
        return str(unit) if unit else fallback
    return user_business_unit(ex.store, str(owner)) or fallback


def _compute(table: Table, row: Mapping[str, Any], values: dict[str, Any]) -> None:
    """Fill columns Dataverse computes (fullname) from the merged row."""
    if "fullname" in table.columns and {"firstname", "lastname"} <= set(table.columns):
        if "firstname" in values or "lastname" in values or "fullname" not in row:
            first = row.get("firstname") or ""
            last = row.get("lastname") or ""
            values["fullname"] = f"{first} {last}".strip() or None


def _set_owning(table: Table, values: Mapping[str, Any], into: dict[str, Any]) -> None:
    """owninguser/owningteam follow ownerid, as Dataverse keeps them."""
    kind = values.get("ownerid__table")
    for column, owner_kind in (("owninguser", "systemuser"), ("owningteam", "team")):
        if column in table.columns:
            mine = kind == owner_kind
            into[column] = values.get("ownerid") if mine else None
            into[column + "__table"] = owner_kind if mine else None


# Per table (kept with it, so a reused id() is noticed): the names `_is_stored` accepts.
_stored_names: dict[int, tuple[Table, frozenset[str]]] = {}


def _stored(table: Table) -> frozenset[str]:
    """The payload keys that are SQL columns of `table` (payload keys may name other
    things): asked of every value of every write, so worked out once per table. Any name
    `_is_stored` accepts is a column, `versionnumber`, the primary id or a column's
    `__table`, so testing those candidates gives exactly its set."""
    held = _stored_names.get(id(table))
    if held is None or held[0] is not table:
        candidates = {table.primary_id, "versionnumber", *table.columns}
        candidates.update(name + "__table" for name in table.columns)
        names = frozenset(name for name in candidates if _is_stored(table, name))
        held = _stored_names[id(table)] = (table, names)
    return held[1]


def _is_stored(table: Table, name: str) -> bool:
    if name == table.primary_id or name == "versionnumber":
        return True
    column = table.columns.get(name.removesuffix("__table"))
    if column is None:
        return False
    return not name.endswith("__table") or column.type in LOOKUP_TYPES
