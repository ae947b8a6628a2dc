"""What the stand-in draws from the solution's own forms and views (`solution.layouts`).

`describe_form` turns a table's main form into the JSON the shell renders: tabs, sections,
fields (with how each is edited and, for a lookup, which table it picks from and the
navigation property a save binds), and subgrids (the navigation property listing the
related records, and whether an N:N grid offers "Add existing"). `describe_view` turns a
public view into the list's columns and its `$filter` / `$orderby`, so a list shows what
the same view shows in a tenant.
"""

from __future__ import annotations

from typing import Any

from connector.dataverse import odata
from connector.solution.layouts import Form, FormField, FormSubgrid, View, ViewCondition
from connector.solution.model import Column, ColumnType, Schema, Table

__all__ = ["describe_form", "describe_view", "wire_name"]

_LOOKUP_TYPES = (ColumnType.LOOKUP, ColumnType.CUSTOMER, ColumnType.OWNER)
_NUMBER_TYPES = (
    ColumnType.INTEGER,
    ColumnType.BIGINT,
    ColumnType.PICKLIST,
    ColumnType.STATE,
    ColumnType.STATUS,
)
# FetchXML operators of a view's filter the stand-in turns into OData; a view using any
# other makes describe_view raise, so the list never silently shows more than the view.
_COMPARISONS = {"eq": odata.eq, "ne": odata.ne, "gt": odata.gt, "ge": odata.ge}
_COMPARISONS |= {"lt": odata.lt, "le": odata.le}


def wire_name(table: Table, name: str) -> str:
    """The Web API property of column `name`: `_<name>_value` for a lookup."""
    if table.columns[name].type in _LOOKUP_TYPES:
        return f"_{name}_value"
    return name


def describe_form(schema: Schema, form: Form) -> dict[str, Any]:
    """The JSON the shell renders a record with."""
    table = schema.tables[form.table]
    return {
        "id": form.id,
        "name": form.name,
        "tabs": [
            {
                "label": tab.label,
                "sections": [
                    {
                        "label": section.label,
                        "items": [_item(schema, table, item) for item in section.items],
                    }
                    for section in tab.sections
                ],
            }
            for tab in form.tabs
        ],
    }


def _item(schema: Schema, table: Table, item: FormField | FormSubgrid) -> dict[str, Any]:
    if isinstance(item, FormSubgrid):
        return _subgrid(schema, table, item)
    column = table.columns[item.column]
    described: dict[str, Any] = {
        "kind": "field",
        "name": column.logical_name,
        "wire": wire_name(table, column.logical_name),
        "label": item.label or column.display_name or column.logical_name,
        "type": str(column.type),
        "required": column.required,
        "create": column.valid_for_create and not column.secured,
        "update": column.valid_for_update and not column.secured,
    }
    if column.options and column.type not in (ColumnType.STATE, ColumnType.STATUS):
        described["options"] = [[value, label] for value, label in column.options.items()]
    if column.type == ColumnType.MEMO:
        described["multiline"] = True
    lookup = _lookup(schema, table, column)
    if lookup is not None:
        described["lookup"] = lookup
    elif column.type in _LOOKUP_TYPES:
        # Owner and multi-table lookups (regarding) show their value; this stand-in has
        # no picker for them (assigning and re-regarding are done elsewhere).
        described["create"] = described["update"] = False
    return described


def _lookup(schema: Schema, table: Table, column: Column) -> dict[str, Any] | None:
    if column.type != ColumnType.LOOKUP:
        return None
    name = column.logical_name
    owned = schema.lookups_of(table.logical_name)
    relations = [r for r in owned if r.referencing_attribute == name]
    if len(relations) != 1:
        return None
    relation = relations[0]
    target = schema.tables[relation.referenced_entity]
    return {
        "target": target.logical_name,
        "navigation": relation.referencing_navigation,
        "set": target.entity_set,
        "id": target.primary_id,
        "name": target.primary_name,
    }


def _subgrid(schema: Schema, table: Table, grid: FormSubgrid) -> dict[str, Any]:
    target = schema.tables[grid.target]
    described: dict[str, Any] = {
        "kind": "subgrid",
        "name": grid.name,
        "label": grid.label,
        "target": target.logical_name,
        "id": target.primary_id,
        "display": target.primary_name,
    }
    for many in schema.many_to_many:
        if many.schema_name == grid.relationship:
            # N:N: one navigation property of the relationship's name on both sides;
            # "Add existing" associates through it ($ref).
            described |= {"navigation": many.schema_name, "associate": True}
    for one in schema.one_to_many:
        if one.schema_name == grid.relationship:
            described |= {"navigation": one.referenced_navigation, "associate": False}
    return described


def describe_view(schema: Schema, view: View) -> dict[str, Any]:
    """The list of `view`: its columns (label, Web API property), `$filter`, `$orderby`."""
    table = schema.tables[view.table]
    filters = [
        _condition(table, condition) for condition in view.conditions if not condition.quick_find
    ]
    orders = [
        f"{wire_name(table, column)}{' desc' if descending else ''}"
        for column, descending in view.orders
    ]
    return {
        "id": view.id,
        "name": view.name,
        "columns": [
            {
                "name": name,
                "wire": wire_name(table, name),
                "label": table.columns[name].display_name or name,
            }
            for name in view.columns
        ],
        "filter": " and ".join(filters),
        "orderby": ",".join(orders),
    }


def _condition(table: Table, condition: ViewCondition) -> str:
    wire = wire_name(table, condition.column)
    if condition.operator == "null":
        return odata.eq(wire, None)
    if condition.operator == "not-null":
        return odata.ne(wire, None)
    compare = _COMPARISONS.get(condition.operator)
    if compare is None or condition.value is None:
        raise ValueError(
            f"view of {table.logical_name}: operator {condition.operator!r} is not supported"
        )
    return compare(wire, _literal(table.columns[condition.column], condition.value))


def _literal(column: Column, value: str) -> odata.ODataValue:
    if column.type in _NUMBER_TYPES:
        return int(value)
    if column.type == ColumnType.BOOLEAN:
        return value in ("1", "true")
    return value
