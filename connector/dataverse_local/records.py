"""Records on the wire and in SQLite: payload validation, binds, navigation, formatting.

`read_payload` turns a create/update JSON body into validated SQL values plus the links it
asks for (`nav@odata.bind`); `to_wire` turns a stored row into the JSON Dataverse returns
(`_x_value` lookups, `@odata.etag`, optional annotations). `navigation` names what a
navigation property points at; `parse_reference` reads `/accounts(<id>)`, `accounts(<id>)`
or an absolute URL. Failures raise `store.ApiError` with Dataverse's codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from connector.dataverse_local.store import (
    LOOKUP_TYPES,
    SERVER_SET_COLUMNS,
    ApiError,
    Store,
    coerce_value,
    normalise_guid,
    quote,
)
from connector.solution.model import Column, ColumnType, ManyToMany, OneToMany, Schema, Table

__all__ = [
    "FORMATTED",
    "LOOKUP_LOGICAL_NAME",
    "NAVIGATION_PROPERTY",
    "Changes",
    "Nav",
    "formatted_value",
    "lookup_relations",
    "navigation",
    "not_found",
    "parse_reference",
    "primary_name_of",
    "property_error",
    "read_payload",
    "to_wire",
    "wire_name",
    "wire_value",
]

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION_PROPERTY = "Microsoft.Dynamics.CRM.associatednavigationproperty"
_REFERENCE = re.compile(r"^/?([A-Za-z0-9_]+)\((.+)\)$")
_OWNER_TARGETS = ("systemuser", "team")


def not_found(table: Table, record_id: str) -> ApiError:
    """The 404 Dataverse answers for a missing record."""
    return ApiError(404, "0x80040217", f"{table.logical_name} With Id = {record_id} Does Not Exist")


def property_error(table: Table, name: str) -> ApiError:
    """The 400 for a property the table does not have."""
    return ApiError(
        400,
        "0x80060888",
        f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM."
        f"{table.logical_name}'. Make sure to only use property names that are defined by "
        "the type.",
    )


def wire_name(column: Column) -> str:
    """The JSON property of a column: `_x_value` for lookups, the logical name otherwise."""
    if column.type in LOOKUP_TYPES:
        return f"_{column.logical_name}_value"
    return column.logical_name


@dataclass(frozen=True)
class Nav:
    """What a navigation property of `table` points at.

    `single`: the lookup `relation.referencing_attribute` on this table (one relation per
    polymorphic target); `collection`: the records of `relation.referencing_entity` whose
    lookup points here; `many`: the other side of an N:N relationship.
    """

    name: str
    kind: Literal["single", "collection", "many"]
    target: str  # logical name of the table on the other side ("" for polymorphic single)
    relations: tuple[OneToMany, ...] = ()
    many: ManyToMany | None = None
    column: str = ""  # single: the lookup column on this table


def lookup_relations(schema: Schema, table: Table, column: str) -> list[OneToMany]:
    """The relationships behind lookup `column` of `table` (one per target)."""
    return [
        r
        for r in schema.lookups_of(table.logical_name)
        if r.referencing_attribute == column and r.referenced_entity in schema.tables
    ]


def _lookup_targets(schema: Schema, table: Table, column: Column) -> list[str]:
    targets = [r.referenced_entity for r in lookup_relations(schema, table, column.logical_name)]
    if not targets and column.type == ColumnType.OWNER:
        targets = [name for name in _OWNER_TARGETS if name in schema.tables]
    if not targets and column.type == ColumnType.CUSTOMER:
        targets = [name for name in ("account", "contact") if name in schema.tables]
    return targets


def navigation(schema: Schema, table: Table, name: str) -> Nav | None:
    """The navigation property `name` of `table` (exact casing first, then any), or None."""
    for exact in (True, False):
        found = _navigation(schema, table, name, exact=exact)
        if found is not None:
            return found
    return None


def _navigation(schema: Schema, table: Table, name: str, *, exact: bool) -> Nav | None:
    def same(candidate: str) -> bool:
        return candidate == name if exact else candidate.lower() == name.lower()

    singles = tuple(
        r
        for r in schema.lookups_of(table.logical_name)
        if same(r.referencing_navigation) and r.referenced_entity in schema.tables
    )
    if singles:
        target = singles[0].referenced_entity if len(singles) == 1 else ""
        return Nav(
            singles[0].referencing_navigation,
            "single",
            target,
            relations=singles,
            column=singles[0].referencing_attribute,
        )
    for relation in schema.one_to_many:
        if relation.referenced_entity == table.logical_name and same(
            relation.referenced_navigation
        ):
            if relation.referencing_entity in schema.tables:
                return Nav(
                    relation.referenced_navigation,
                    "collection",
                    relation.referencing_entity,
                    relations=(relation,),
                )
    for many in schema.many_to_many:
        if many.entity1 not in schema.tables or many.entity2 not in schema.tables:
            continue
        if many.entity1 == table.logical_name and same(many.entity1_navigation):
            return Nav(many.entity1_navigation, "many", many.entity2, many=many)
        if many.entity2 == table.logical_name and same(many.entity2_navigation):
            return Nav(many.entity2_navigation, "many", many.entity1, many=many)
    # A lookup column without relationships in the schema (ownerid in a small schema):
    # its logical name doubles as the navigation property, as Dataverse does for ownerid.
    column = table.columns.get(name if exact else name.lower())
    if column is not None and column.type in LOOKUP_TYPES:
        if not lookup_relations(schema, table, column.logical_name):
            return Nav(column.logical_name, "single", "", column=column.logical_name)
    return None


def parse_reference(schema: Schema, text: object, *, base_url: str = "") -> tuple[Table, str]:
    """The table and id of an entity reference: `/accounts(<id>)`, `accounts(<id>)` or a URL."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "0x80060888", f"Invalid entity reference: {text!r}.")
    value = text.strip()
    if "://" in value:
        path = urlsplit(value).path
        root = urlsplit(base_url).path.rstrip("/") if base_url else ""
        if root and path.startswith(root + "/"):
            path = path[len(root) :]
        else:
            match = re.search(r"/api/data/v[0-9.]+(/.*)$", path)
            path = match.group(1) if match else path
        value = unquote(path)
    elif value.startswith("/api/data/"):
        value = re.sub(r"^/api/data/v[0-9.]+", "", value)
    match = _REFERENCE.match(value)
    if match is None:
        raise ApiError(400, "0x80060888", f"Invalid entity reference: '{text}'.")
    table = schema.table_for_set(match.group(1))
    if table is None:
        raise ApiError(400, "0x80060888", f"Resource not found for the segment '{match.group(1)}'.")
    guid = normalise_guid(match.group(2))
    if guid is None:
        raise ApiError(400, "0x80060888", f"Invalid key in entity reference '{text}'.")
    return table, guid


@dataclass
class Changes:
    """A payload read against a table: SQL values, and links to make after the write."""

    values: dict[str, Any] = field(default_factory=dict)
    # (navigation, target table, target id) for collection-valued binds
    associations: list[tuple[Nav, Table, str]] = field(default_factory=list)
    # lookup column -> (target table, target id): checked to exist by the caller
    bound: dict[str, tuple[Table, str]] = field(default_factory=dict)


def read_payload(schema: Schema, table: Table, body: object, *, base_url: str) -> Changes:
    """Validate a create/update body; raises ApiError(400) for anything Dataverse refuses."""
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "0x80048d19",
            "Error identified in Payload provided by the user: a JSON object is expected.",
        )
    changes = Changes()
    for key, value in body.items():
        if not isinstance(key, str):
            raise property_error(table, str(key))
        if key.endswith("@odata.bind"):
            _read_bind(schema, table, key[: -len("@odata.bind")], value, changes, base_url)
            continue
        if "@" in key or key.startswith("@"):
            continue  # other annotations (@odata.type, ...) carry nothing to store
        column = table.columns.get(key) or table.columns.get(key.lower())
        if column is None:
            nav = navigation(schema, table, key)
            if nav is not None and nav.kind == "single" and value is None:
                _unbind(nav, changes)
                continue
            raise property_error(table, key)
        name = column.logical_name
        if name in SERVER_SET_COLUMNS or (name == table.primary_id and value is None):
            continue
        if column.type in LOOKUP_TYPES:
            if value is not None:
                raise ApiError(
                    400,
                    "0x80060888",
                    f"A value for lookup '{name}' must be set with "
                    f"'<navigation property>@odata.bind'.",
                )
            changes.values[name] = None
            changes.values[name + "__table"] = None
            continue
        if name == table.primary_id:
            guid = normalise_guid(value)
            if guid is None:
                raise ApiError(400, "0x80048d19", f"Invalid value for '{name}': {value!r}.")
            changes.values[name] = guid
            continue
        changes.values[name] = coerce_value(table, column, value)
    return changes


def _unbind(nav: Nav, changes: Changes) -> None:
    changes.values[nav.column] = None
    changes.values[nav.column + "__table"] = None
    changes.bound.pop(nav.column, None)


def _read_bind(
    schema: Schema,
    table: Table,
    name: str,
    value: object,
    changes: Changes,
    base_url: str,
) -> None:
    nav = navigation(schema, table, name)
    if nav is None:
        raise ApiError(
            400,
            "0x80060888",
            f"An undeclared property '{name}' which only has property annotations in the "
            "payload but no property value was found in the payload. In OData, only declared "
            "navigation properties and declared named streams can be represented as "
            "properties without values.",
        )
    if nav.kind == "single":
        if value is None:
            _unbind(nav, changes)
            return
        target, target_id = parse_reference(schema, value, base_url=base_url)
        allowed = [r.referenced_entity for r in nav.relations]
        if not allowed:
            column = table.columns[nav.column]
            allowed = _lookup_targets(schema, table, column)
        if target.logical_name not in allowed:
            raise ApiError(
                400,
                "0x80060888",
                f"The navigation property '{nav.name}' cannot point at an entity of type "
                f"'{target.logical_name}'.",
            )
        column_name = nav.relations[0].referencing_attribute if nav.relations else nav.column
        changes.values[column_name] = target_id
        changes.values[column_name + "__table"] = target.logical_name
        changes.bound[column_name] = (target, target_id)
        return
    if not isinstance(value, list):
        raise ApiError(
            400,
            "0x80060888",
            f"A collection-valued navigation property '{nav.name}' needs an array of references.",
        )
    for item in value:
        target, target_id = parse_reference(schema, item, base_url=base_url)
        if target.logical_name != nav.target:
            raise ApiError(
                400,
                "0x80060888",
                f"The navigation property '{nav.name}' holds '{nav.target}' records, "
                f"not '{target.logical_name}'.",
            )
        changes.associations.append((nav, target, target_id))


def formatted_value(column: Column, value: Any) -> str | None:
    """The FormattedValue annotation of a stored value, or None when it has none."""
    if value is None:
        return None
    if column.type in (ColumnType.PICKLIST, ColumnType.STATE, ColumnType.STATUS):
        return column.options.get(int(value), str(value))
    if column.type == ColumnType.BOOLEAN:
        labels = column.options or {0: "No", 1: "Yes"}
        return labels.get(int(value), "Yes" if value else "No")
    if column.type == ColumnType.DATETIME:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        hour = moment.hour % 12 or 12
        suffix = "AM" if moment.hour < 12 else "PM"
        return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d} {suffix}"
    if column.type == ColumnType.MONEY:
        return f"${float(value):,.2f}"
    if column.type in (ColumnType.INTEGER, ColumnType.BIGINT):
        return f"{int(value):,}"
    if column.type in (ColumnType.DECIMAL, ColumnType.DOUBLE):
        return f"{float(value):,.2f}"
    return None


def wire_value(column: Column, value: Any) -> Any:
    """A stored value as the JSON the Web API sends for its column type."""
    if value is None:
        return None
    if column.type == ColumnType.BOOLEAN:
        return bool(value)
    if column.type in (ColumnType.DECIMAL, ColumnType.DOUBLE, ColumnType.MONEY):
        number = float(value)
        return int(number) if number.is_integer() and column.type != ColumnType.DOUBLE else number
    return value


def primary_name_of(store: Store, target: Table, target_id: str) -> str | None:
    """The primary name of a record (a lookup's FormattedValue), or None."""
    if target.primary_name not in target.columns:
        return None
    rows = store.query(
        f"SELECT {quote(target.primary_name)} FROM {quote(target.logical_name)} "
        f"WHERE {quote(target.primary_id)} = ?",
        (target_id,),
    )
    if not rows or rows[0][0] is None:
        return None
    return str(rows[0][0])


def _associated_navigation(schema: Schema, table: Table, column: str, target: str) -> str:
    for relation in lookup_relations(schema, table, column):
        if relation.referenced_entity == target:
            return relation.referencing_navigation
    return column


_WirePlan = tuple[tuple[Column, str, str, bool], ...]
_plans: dict[tuple[int, tuple[str, ...] | None], tuple[Table, _WirePlan]] = {}
# Plans remembered: one per table and `$select` the product sends, with room to spare.
MAX_WIRE_PLANS = 1024


def _wire_plan(table: Table, select: list[str] | None) -> _WirePlan:
    """(column, logical name, JSON property, is a lookup) of each of `table`'s columns
    (those in `select`, in the table's order, when given), worked out once per table and
    `$select`: every record of every answer walks this list, and a `$select` of two
    columns used to walk all of a contact's."""
    key = (id(table), None if select is None else tuple(select))
    held = _plans.get(key)
    # The id is only trusted while the very same Table is alive in the entry.
    if held is not None and held[0] is table:
        return held[1]
    plan = tuple(
        (column, column.logical_name, wire_name(column), column.type in LOOKUP_TYPES)
        for column in table.columns.values()
        if select is None or column.logical_name in select
    )
    if len(_plans) >= MAX_WIRE_PLANS:
        _plans.clear()
    _plans[key] = (table, plan)
    return plan


def to_wire(
    store: Store,
    table: Table,
    row: dict[str, Any],
    *,
    select: list[str] | None,
    annotate: Callable[[str], bool],
) -> dict[str, Any]:
    """A stored row as Dataverse's JSON: selected columns, lookups as `_x_value`, the ETag.

    `select` holds logical names (lookups by their logical name); None means all columns.
    `annotate(name)` says whether an annotation such as FORMATTED is wanted.
    """
    record: dict[str, Any] = {}
    if row.get("versionnumber") is not None:
        record["@odata.etag"] = f'W/"{row["versionnumber"]}"'
    formatted = annotate(FORMATTED)
    navigation = annotate(NAVIGATION_PROPERTY)
    logical_name = annotate(LOOKUP_LOGICAL_NAME)
    for column, name, prop, lookup in _wire_plan(table, select):
        value = row.get(name)
        if lookup:
            target_name = row.get(name + "__table")
            if value is not None and target_name:
                target = store.schema.tables.get(str(target_name))
                if formatted and target is not None:
                    label = primary_name_of(store, target, str(value))
                    if label is not None:
                        record[f"{prop}@{FORMATTED}"] = label
                if navigation:
                    record[f"{prop}@{NAVIGATION_PROPERTY}"] = _associated_navigation(
                        store.schema, table, name, str(target_name)
                    )
                if logical_name:
                    record[f"{prop}@{LOOKUP_LOGICAL_NAME}"] = str(target_name)
            record[prop] = value
            continue
        if name == table.primary_id:
            record[prop] = row.get(table.primary_id)
            continue
        if formatted:
            label = formatted_value(column, value)
            if label is not None:
                record[f"{prop}@{FORMATTED}"] = label
        record[prop] = wire_value(column, value)
    record[table.primary_id] = row.get(table.primary_id)
    return record
