"""`$apply`: grouping and aggregation, in the subset and wire format Dataverse supports.

Grammar (Microsoft Learn, "Aggregate data using OData", `webapi/query/aggregate-data`)::

    $apply    = [filter(<$filter text>) "/"]... (groupby | aggregate)
    groupby   = groupby((<property>[,<property>]...)[,aggregate(<item>[,<item>]...)])
    aggregate = aggregate(<item>[,<item>]...)
    item      = <column> with (sum|average|min|max|countdistinct) as <alias>
              | $count as <alias>

A grouped property is a column or a lookup as `_<name>_value`. The answer is
`{"@odata.context": "<root>/$metadata#<set>", "value": [...]}`, one object per group with
the grouped properties and the aliases, and with `odata.include-annotations` their
FormattedValue (a lookup also gets its lookuplogicalname). Only the records the caller may
read count; secured columns the caller may not read cannot be aggregated.

Refused as the real service refuses them (400 `0x80060888` unless noted):

- `groupby` over a datetime column ("groupby with datetime values is not supported");
- `$orderby` naming an aggregate alias: "The query node SingleValueOpenPropertyAccess is
  not supported";
- more than 50,000 records to aggregate: 400 `0x8004E023` AggregateQueryRecordLimitExceeded
  ("The maximum record limit is exceeded. Reduce the number of records.");
- sum/average over a column that is not a number; anything after `groupby`/`aggregate`;
  groupby through a navigation property (`primarycontactid/fullname`) is not implemented
  here and is refused rather than answered wrongly.

`$apply` goes with `$orderby` (grouped properties) and `$top`; other options are refused.

Errors: `query.QueryError` for the text, `store.ApiError` 403 `0x8004F504` for a secured
column the caller may not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from connector.dataverse_local import query
from connector.dataverse_local.access import visibility
from connector.dataverse_local.column_security import unreadable_columns
from connector.dataverse_local.exchange import Exchange, Reply, json_reply
from connector.dataverse_local.records import (
    FORMATTED,
    LOOKUP_LOGICAL_NAME,
    formatted_value,
    primary_name_of,
    wire_name,
    wire_value,
)
from connector.dataverse_local.store import LOOKUP_TYPES, ApiError, quote
from connector.solution.model import Column, ColumnType, Schema, Table

__all__ = [
    "AGGREGATE_LIMIT_CODE",
    "MAX_AGGREGATE_RECORDS",
    "Aggregate",
    "Apply",
    "aggregate_records",
    "parse_apply",
]

# Dataverse aggregates at most this many records per query (FetchXML and OData alike).
MAX_AGGREGATE_RECORDS = 50_000
AGGREGATE_LIMIT_CODE = "0x8004E023"  # AggregateQueryRecordLimitExceeded
READ_MISSING_CODE = "0x8004F504"  # AttributePermissionReadIsMissing
_METHODS = {
    "sum": "SUM",
    "average": "AVG",
    "min": "MIN",
    "max": "MAX",
    "countdistinct": "COUNT(DISTINCT",
}
_NUMBERS = frozenset(
    {ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.DECIMAL, ColumnType.DOUBLE, ColumnType.MONEY}
)
_ORDERED = _NUMBERS | {ColumnType.DATETIME}
_ITEM_RE = re.compile(
    r"^\s*(?:(\$count)|([A-Za-z_][A-Za-z0-9_]*)\s+with\s+([a-z]+))\s+as\s+"
    r"([A-Za-z_][A-Za-z0-9_]*)\s*$"
)
_WITH_APPLY = frozenset({"$apply", "$orderby", "$top"})


@dataclass(frozen=True)
class Aggregate:
    alias: str
    method: str  # "count" for `$count`, else one of _METHODS
    column: Column | None = None  # None for `$count`


@dataclass(frozen=True)
class Apply:
    """A parsed `$apply`: the filters before the grouping, the grouped columns, the items."""

    filter_sql: list[str] = field(default_factory=list)
    filter_params: list[object] = field(default_factory=list)
    group_by: list[Column] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)


def _call(step: str, name: str) -> str | None:
    """The text inside `name(...)` when `step` is exactly that call, else None."""
    text = step.strip()
    if not text.startswith(name + "(") or not text.endswith(")"):
        return None
    if query.matching_paren(text, len(name)) != len(text) - 1:
        return None
    return text[len(name) + 1 : -1]


def _aggregates(text: str, table: Table) -> list[Aggregate]:
    items: list[Aggregate] = []
    for part in query.split_top_level(text, ",", "$apply"):
        match = _ITEM_RE.match(part)
        if match is None:
            raise query.QueryError(f"Syntax error in $apply at '{part.strip()}'.")
        count, name, method, alias = match.groups()
        if any(item.alias == alias for item in items):
            raise query.QueryError(f"The alias '{alias}' is used twice in $apply.")
        if count:
            items.append(Aggregate(alias, "count"))
            continue
        if method not in _METHODS:
            raise query.QueryError(
                f"'{method}' is not a supported aggregation method; use sum, average, min, "
                "max or countdistinct."
            )
        column = query.resolve_column(table, name)
        if column is None:
            raise query.unknown_property(name, table)
        if method in ("sum", "average") and column.type not in _NUMBERS:
            raise query.QueryError(f"The property '{name}' is not a number; cannot {method} it.")
        if method in ("min", "max") and column.type not in _ORDERED:
            raise query.QueryError(f"The property '{name}' cannot be aggregated with {method}.")
        if column.type == ColumnType.IMAGE:
            raise query.QueryError(f"The property '{name}' cannot be aggregated.")
        items.append(Aggregate(alias, method, column))
    return items


def _group_columns(text: str, table: Table) -> list[Column]:
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise query.QueryError(
            f"Syntax error in $apply: groupby needs a list in parentheses: '{text}'."
        )
    columns: list[Column] = []
    for part in inner[1:-1].split(","):
        name = part.strip()
        if "/" in name:
            raise query.QueryError(
                f"Grouping by a related table's column ('{name}') is not supported here."
            )
        column = query.resolve_column(table, name)
        if column is None:
            raise query.unknown_property(name, table)
        if column.type == ColumnType.DATETIME:
            raise query.QueryError("groupby with datetime values is not supported.")
        if column.type == ColumnType.IMAGE:
            raise query.QueryError(f"The property '{name}' cannot be grouped.")
        if column not in columns:
            columns.append(column)
    return columns


def parse_apply(text: str, table: Table, schema: Schema) -> Apply:
    """The parsed `$apply` text (URL-decoded) for `table`; raises query.QueryError."""
    from connector.dataverse_local.filters import compile_filter

    if len(text) > query.MAX_OPTION_CHARS:
        raise query.QueryError("The $apply query option is too long.")
    steps = query.split_top_level(text, "/", "$apply")
    result = Apply()
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        filtered = _call(step, "filter")
        if filtered is not None:
            if last:
                raise query.QueryError("$apply must end with groupby or aggregate.")
            sql, params = compile_filter(filtered, table, schema, alias="t")
            result.filter_sql.append(f"({sql})")
            result.filter_params.extend(params)
            continue
        if not last:
            raise query.QueryError(
                f"Only filter transformations may come before the last one in $apply: '{step}'."
            )
        grouped = _call(step, "groupby")
        if grouped is not None:
            parts = query.split_top_level(grouped, ",", "$apply")
            result.group_by.extend(_group_columns(parts[0], table))
            rest = ",".join(parts[1:]).strip()
            if rest:
                items = _call(rest, "aggregate")
                if items is None:
                    raise query.QueryError(f"Syntax error in $apply groupby at '{rest}'.")
                result.aggregates.extend(_aggregates(items, table))
            continue
        items = _call(step, "aggregate")
        if items is None:
            raise query.QueryError(f"Syntax error in $apply at '{step.strip()}'.")
        result.aggregates.extend(_aggregates(items, table))
    taken = {wire_name(c) for c in result.group_by}
    for item in result.aggregates:
        if item.alias in taken:
            raise query.QueryError(f"The alias '{item.alias}' is already a grouped property.")
    return result


def _order(text: str, apply: Apply) -> str:
    """ORDER BY over the grouped columns of a `$orderby` next to `$apply`."""
    aliases = {item.alias for item in apply.aggregates}
    by_wire = {wire_name(c): c for c in apply.group_by}
    terms: list[str] = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise query.QueryError(f"Syntax error in $orderby at '{item.strip()}'.")
        if words[0] in aliases:
            raise query.QueryError("The query node SingleValueOpenPropertyAccess is not supported.")
        column = by_wire.get(words[0])
        if column is None:
            raise query.QueryError(f"$orderby can only name grouped properties: '{words[0]}'.")
        direction = "DESC" if len(words) == 2 and words[1] == "desc" else "ASC"
        terms.append(f"{quote(column.logical_name)} {direction}")
    return ", ".join(terms)


def _check_readable(ex: Exchange, table: Table, apply: Apply) -> None:
    hidden = unreadable_columns(ex, table)
    used = [c for c in apply.group_by] + [a.column for a in apply.aggregates if a.column]
    for column in used:
        if column.logical_name in hidden:
            raise ApiError(
                403,
                READ_MISSING_CODE,
                "The user does not have read permissions to a secured field. The requested "
                f"operation could not be completed. (Field: {column.logical_name})",
            )


def _aggregate_value(item: Aggregate, value: Any) -> Any:
    if value is None or item.column is None or item.method == "countdistinct":
        return None if value is None else int(value)
    if item.method == "average":
        return float(value)
    return wire_value(item.column, value)


def _aggregate_label(item: Aggregate, value: Any) -> str | None:
    if value is None:
        return None
    if item.column is None or item.method == "countdistinct":
        return f"{int(value):,}"
    if item.method == "average" and item.column.type != ColumnType.MONEY:
        return f"{float(value):,.2f}"
    return formatted_value(item.column, value)


def aggregate_records(ex: Exchange, table: Table) -> Reply:
    """`GET <set>?$apply=...`: one object per group (module docstring)."""
    args = {k.lower(): v for k, v in ex.call.args.items() if k.startswith("$")}
    for name in args:
        if name not in _WITH_APPLY:
            raise query.QueryError(f"The query option {name} is not supported with $apply.")
    apply = parse_apply(args["$apply"], table, ex.schema)
    _check_readable(ex, table, apply)
    where, params = visibility(ex, table, "t")
    clauses = ([where] if where else []) + apply.filter_sql
    params = list(params) + list(apply.filter_params)
    source = f"FROM {quote(table.logical_name)} AS t"
    if clauses:
        source += " WHERE " + " AND ".join(clauses)
    counted = ex.store.query(f"SELECT COUNT(*) {source}", params)
    if int(counted[0][0]) > MAX_AGGREGATE_RECORDS:
        raise ApiError(
            400,
            AGGREGATE_LIMIT_CODE,
            "The maximum record limit is exceeded. Reduce the number of records.",
        )
    selected: list[str] = []
    grouped: list[str] = []
    for column in apply.group_by:
        name = quote(column.logical_name)
        grouped.append(f"t.{name}")
        selected.append(f"t.{name} AS {name}")
        if column.type in LOOKUP_TYPES:
            target = quote(column.logical_name + "__table")
            grouped.append(f"t.{target}")
            selected.append(f"t.{target} AS {target}")
    for index, item in enumerate(apply.aggregates):
        if item.column is None:
            expr = "COUNT(*)"
        elif item.method == "countdistinct":
            expr = f"COUNT(DISTINCT t.{quote(item.column.logical_name)})"
        else:
            expr = f"{_METHODS[item.method]}(t.{quote(item.column.logical_name)})"
        selected.append(f"{expr} AS {quote(f'a{index}')}")
    sql = f"SELECT {', '.join(selected)} {source}"
    if grouped:
        sql += " GROUP BY " + ", ".join(grouped)
        order = _order(args["$orderby"], apply) if "$orderby" in args else ""
        sql += " ORDER BY " + (order or ", ".join(grouped))
    elif "$orderby" in args:
        _order(args["$orderby"], apply)
    limit = query.parse_top(args["$top"]) if "$top" in args else query.DEFAULT_PAGE_SIZE
    sql += f" LIMIT {min(limit, query.DEFAULT_PAGE_SIZE)}"
    rows = ex.store.query(sql, params)
    formatted = ex.annotate(FORMATTED)
    values: list[dict[str, Any]] = []
    for row in rows:
        record: dict[str, Any] = {}
        for column in apply.group_by:
            value = row[column.logical_name]
            prop = wire_name(column)
            if column.type in LOOKUP_TYPES:
                linked = ex.schema.tables.get(str(row[column.logical_name + "__table"] or ""))
                if value is not None and linked is not None:
                    label = primary_name_of(ex.store, linked, str(value)) if formatted else None
                    if label is not None:
                        record[f"{prop}@{FORMATTED}"] = label
                    if ex.annotate(LOOKUP_LOGICAL_NAME):
                        record[f"{prop}@{LOOKUP_LOGICAL_NAME}"] = linked.logical_name
                record[prop] = value
                continue
            label = formatted_value(column, value) if formatted else None
            if label is not None:
                record[f"{prop}@{FORMATTED}"] = label
            record[prop] = wire_value(column, value)
        for index, item in enumerate(apply.aggregates):
            value = row[f"a{index}"]
            label = _aggregate_label(item, value) if formatted else None
            if label is not None:
                record[f"{item.alias}@{FORMATTED}"] = label
            record[item.alias] = _aggregate_value(item, value)
        values.append(record)
    body = {"@odata.context": f"{ex.base_url}/$metadata#{table.entity_set}", "value": values}
    headers = (
        {"Preference-Applied": ex.annotations_applied()} if ex.prefs.include_annotations else {}
    )
    return json_reply(200, body, headers)
