"""Records as the caller sees them: selected columns, annotations and `$expand`.

`shape` turns a stored row into the JSON Dataverse returns, expanding navigation
properties: single-valued ones as the related record (or null), 1:N and N:N ones as an
array with the nested `$select;$filter;$orderby;$top;$expand`. Records the caller may not
read are left out of an expansion rather than failing it. `related` answers a navigation
property as a URL segment (`GET systemusers(<id>)/systemuserroles_association`).
"""

from __future__ import annotations

from typing import Any

from connector.dataverse_local import query
from connector.dataverse_local.access import access_record, can_read, require, visibility
from connector.dataverse_local.column_security import hide_unreadable
from connector.dataverse_local.exchange import Exchange, Reply, json_reply
from connector.dataverse_local.filters import compile_filter
from connector.dataverse_local.records import Nav, to_wire
from connector.dataverse_local.store import ApiError, intersect_sides, quote
from connector.solution.model import ManyToMany, Table

__all__ = ["expand_value", "related", "shape"]


def shape(
    ex: Exchange,
    table: Table,
    row: dict[str, Any],
    select: list[str] | None,
    expands: list[query.Expand],
) -> dict[str, Any]:
    """A stored row as Dataverse's JSON, with the `$expand` items filled in."""
    visible = hide_unreadable(ex, table, row)
    record = to_wire(ex.store, table, visible, select=select, annotate=ex.annotate)
    for expand in expands:
        record[expand.navigation] = expand_value(ex, table, row, expand)
    return record


def expand_value(ex: Exchange, table: Table, row: dict[str, Any], expand: query.Expand) -> Any:
    """What `expand` holds for `row`: a record or None (single-valued), or a list."""
    target = expand.target
    relation = expand.relationship
    if not expand.collection:
        assert not isinstance(relation, ManyToMany)
        target_id = row.get(relation.referencing_attribute)
        if target_id is None or row.get(relation.referencing_attribute + "__table") not in (
            None,
            target.logical_name,
        ):
            return None
        require(ex, "Read", target)
        linked = ex.store.fetch(target, str(target_id))
        if linked is None or not can_read(ex, target, linked):
            return None
        return shape(ex, target, linked, expand.select, expand.expand)
    record_id = str(row[table.primary_id])
    where, params = visibility(ex, target, "t")
    clauses = [where] if where else []
    if isinstance(relation, ManyToMany):
        here, there = intersect_sides(
            relation, ex.schema, table=table, navigation=expand.navigation
        )
        clauses.append(
            f"t.{quote(target.primary_id)} IN (SELECT {quote(there)} FROM "
            f"{quote(relation.intersect_entity)} WHERE {quote(here)} = ?)"
        )
        params.append(record_id)
    else:
        lookup = relation.referencing_attribute
        clauses.append(f"t.{quote(lookup)} = ?")
        clauses.append(f"coalesce(t.{quote(lookup + '__table')}, ?) = ?")
        params += [record_id, table.logical_name, table.logical_name]
    if expand.filter:
        sql, filter_params = compile_filter(expand.filter, target, ex.schema, alias="t")
        clauses.append(f"({sql})")
        params += list(filter_params)
    order = query.parse_orderby(expand.orderby, target, alias="t") if expand.orderby else ""
    order = (order + ", " if order else "") + f"t.{quote(target.primary_id)}"
    limit = min(expand.top or query.DEFAULT_PAGE_SIZE, query.DEFAULT_PAGE_SIZE)
    sql = f"SELECT t.* FROM {quote(target.logical_name)} AS t WHERE {' AND '.join(clauses)}"
    sql += f" ORDER BY {order} LIMIT {limit}"
    return [
        shape(ex, target, dict(r), expand.select, expand.expand)
        for r in ex.store.query(sql, params)
    ]


def related(ex: Exchange, table: Table, record_id: str, nav: Nav) -> Reply:
    """`GET <set>(<id>)/<navigation property>`, with the query options as nested ones."""
    row = access_record(ex, "Read", table, record_id)
    expand = query.parse_expand(nav.name, table, ex.schema)[0]
    nested = ";".join(f"{k}={v}" for k, v in ex.call.args.items() if k.startswith("$"))
    if nested:
        expand = query.parse_expand(f"{nav.name}({nested})", table, ex.schema)[0]
    value = expand_value(ex, table, row, expand)
    if isinstance(value, list):
        return json_reply(
            200,
            {
                "@odata.context": ex.context_url(expand.target, expand.select, entity=False),
                "value": value,
            },
        )
    if value is None:
        raise ApiError(404, "0x80060888", f"No record is linked through '{nav.name}'.")
    context = ex.context_url(expand.target, expand.select, entity=True)
    return json_reply(200, {"@odata.context": context, **value})
