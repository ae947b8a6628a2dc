"""The solution's forms (`<FormXml>`) and views (`<SavedQueries>`), as a person sees them.

`read_layouts` turns one table's `<Entity>` into `Form`s (tabs, sections, fields and
subgrids) and `View`s (the layout's columns, the fetch's filter and order), which the
stand-in draws and the checks verify:

- `reference_problems`: a form field or view column naming a column the table lacks, a
  subgrid naming a relationship that does not exist or does not join its table to its
  target. A real import fails on those (forms and views depend on the columns and
  relationships they name), so the embedded Dataverse's import fails too.
- `coverage_problems`: a table of the app without its main form or one of the five views
  (public, Advanced Find, Associated, Quick Find, Lookup). A real import would accept the
  table and create bare defaults, so only `crmchat solution check` reports this.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.solution.model import Schema

__all__ = [
    "Form",
    "FormField",
    "FormSection",
    "FormSubgrid",
    "FormTab",
    "QueryType",
    "View",
    "ViewCondition",
    "coverage_problems",
    "read_layouts",
    "reference_problems",
]

# The form types an import knows (`<forms type="...">`); only main forms are required.
MAIN_FORM, QUICK_CREATE_FORM = "main", "quick"


class QueryType(IntEnum):
    """`savedquery.querytype` values of the views every table ships (Microsoft Learn,
    "SavedQuery table": QueryType choices)."""

    PUBLIC = 0
    ADVANCED_FIND = 1
    ASSOCIATED = 2
    QUICK_FIND = 4
    LOOKUP = 64


REQUIRED_VIEWS = tuple(QueryType)


@dataclass(frozen=True)
class FormField:
    column: str  # logical name (`datafieldname`)
    label: str


@dataclass(frozen=True)
class FormSubgrid:
    name: str  # the control id
    label: str
    relationship: str  # `RelationshipName`
    target: str  # `TargetEntityType`, the table the grid lists


@dataclass(frozen=True)
class FormSection:
    label: str
    items: tuple[FormField | FormSubgrid, ...]


@dataclass(frozen=True)
class FormTab:
    label: str
    sections: tuple[FormSection, ...]


@dataclass(frozen=True)
class Form:
    id: str  # GUID, lower case, no braces
    table: str
    type: str  # "main", "quick", ...
    name: str
    tabs: tuple[FormTab, ...]

    def fields(self) -> list[FormField]:
        """Every field of the form, in the order a person reads them."""
        return [i for i in self._items() if isinstance(i, FormField)]

    def subgrids(self) -> list[FormSubgrid]:
        return [i for i in self._items() if isinstance(i, FormSubgrid)]

    def _items(self) -> Iterable[FormField | FormSubgrid]:
        for tab in self.tabs:
            for section in tab.sections:
                yield from section.items


@dataclass(frozen=True)
class ViewCondition:
    column: str
    operator: str  # FetchXML operator: "eq", "like", ...
    value: str | None
    quick_find: bool = False  # in the `isquickfindfields` filter: matched against the search


@dataclass(frozen=True)
class View:
    id: str  # GUID, lower case, no braces
    table: str
    name: str
    query_type: int
    is_default: bool
    columns: tuple[str, ...]  # the layout's cells, left to right
    attributes: tuple[str, ...]  # the fetch's <attribute>s
    conditions: tuple[ViewCondition, ...]
    orders: tuple[tuple[str, bool], ...]  # (column, descending)


def read_layouts(entity: ET.Element) -> tuple[list[Form], list[View]]:
    """The forms and views one `<Entity>` of customizations.xml declares."""
    table = (entity.findtext("Name") or "").strip().lower()
    forms = [
        _read_form(systemform, table=table, form_type=forms.get("type", ""))
        for forms in entity.iterfind("FormXml/forms")
        for systemform in forms.iterfind("systemform")
    ]
    views = [
        _read_view(query, table=table)
        for query in entity.iterfind("SavedQueries/savedqueries/savedquery")
    ]
    return forms, views


def _guid(text: str | None) -> str:
    return (text or "").strip().strip("{}").lower()


def _label(element: ET.Element) -> str:
    label = element.find("labels/label")
    return label.get("description", "") if label is not None else ""


def _read_form(systemform: ET.Element, *, table: str, form_type: str) -> Form:
    name = systemform.find("LocalizedNames/LocalizedName")
    tabs = tuple(
        FormTab(
            label=_label(tab),
            sections=tuple(
                FormSection(label=_label(section), items=tuple(_read_cells(section)))
                for section in tab.iterfind("columns/column/sections/section")
            ),
        )
        for tab in systemform.iterfind("form/tabs/tab")
    )
    return Form(
        id=_guid(systemform.findtext("formid")),
        table=table,
        type=form_type,
        name=name.get("description", "") if name is not None else "",
        tabs=tabs,
    )


def _read_cells(section: ET.Element) -> Iterable[FormField | FormSubgrid]:
    for cell in section.iterfind("rows/row/cell"):
        control = cell.find("control")
        if control is None:
            continue
        relationship = control.findtext("parameters/RelationshipName")
        target = control.findtext("parameters/TargetEntityType")
        if target is not None:
            yield FormSubgrid(
                name=control.get("id", ""),
                label=_label(cell),
                relationship=(relationship or "").strip(),
                target=target.strip().lower(),
            )
        elif control.get("datafieldname"):
            yield FormField(column=control.get("datafieldname", "").lower(), label=_label(cell))


def _read_view(query: ET.Element, *, table: str) -> View:
    name = query.find("LocalizedNames/LocalizedName")
    entity = query.find("fetchxml/fetch/entity")
    conditions: list[ViewCondition] = []
    attributes: list[str] = []
    orders: list[tuple[str, bool]] = []
    if entity is not None:
        attributes = [a.get("name", "").lower() for a in entity.iterfind("attribute")]
        orders = [
            (o.get("attribute", "").lower(), o.get("descending") == "true")
            for o in entity.iterfind("order")
        ]
        for filter_ in entity.iter("filter"):
            quick_find = filter_.get("isquickfindfields") == "1"
            conditions += [
                ViewCondition(
                    column=c.get("attribute", "").lower(),
                    operator=c.get("operator", ""),
                    value=c.get("value"),
                    quick_find=quick_find,
                )
                for c in filter_.iterfind("condition")
            ]
    query_type = (query.findtext("querytype") or "").strip()
    return View(
        id=_guid(query.findtext("savedqueryid")),
        table=table,
        name=name.get("description", "") if name is not None else "",
        query_type=int(query_type) if query_type.isdigit() else -1,
        is_default=(query.findtext("isdefault") or "").strip() == "1",
        columns=tuple(c.get("name", "").lower() for c in query.iterfind("layoutxml/grid/row/cell")),
        attributes=tuple(attributes),
        conditions=tuple(conditions),
        orders=tuple(orders),
    )


def reference_problems(schema: Schema, forms: Iterable[Form], views: Iterable[View]) -> list[str]:
    """Columns and relationships the forms and views name that the schema lacks."""
    problems: list[str] = []
    for form in forms:
        table = schema.tables.get(form.table)
        if table is None:
            continue
        where = f"{form.table} form {form.name!r}"
        problems += [
            f"{where}: field {f.column} is not a column of {form.table}"
            for f in form.fields()
            if f.column not in table.columns
        ]
        for grid in form.subgrids():
            problem = _subgrid_problem(schema, form.table, grid)
            if problem:
                problems.append(f"{where}: subgrid {grid.name}: {problem}")
    for view in views:
        table = schema.tables.get(view.table)
        if table is None:
            continue
        named = (
            list(view.columns)
            + list(view.attributes)
            + [c.column for c in view.conditions]
            + [column for column, _ in view.orders]
        )
        problems += [
            f"{view.table} view {view.name!r}: {column} is not a column of {view.table}"
            for column in dict.fromkeys(named)
            if column not in table.columns
        ]
    return problems


def _subgrid_problem(schema: Schema, table: str, grid: FormSubgrid) -> str | None:
    if grid.target not in schema.tables:
        return f"target {grid.target} is not a table"
    for many in schema.many_to_many:
        if many.schema_name == grid.relationship:
            if {many.entity1, many.entity2} != {table, grid.target}:
                return f"relationship {grid.relationship} does not join {table} to {grid.target}"
            return None
    for one in schema.one_to_many:
        if one.schema_name == grid.relationship:
            if (one.referenced_entity, one.referencing_entity) != (table, grid.target):
                return f"relationship {grid.relationship} does not join {table} to {grid.target}"
            return None
    return f"relationship {grid.relationship!r} does not exist"


def quick_create_problems(entity: ET.Element, forms: list[Form]) -> list[str]:
    """A quick create form needs its table's IsQuickCreateEnabled 1: the platform shows
    quick create forms only for tables enabled for them (EntityMetadata.IsQuickCreateEnabled,
    docs/solution.md), so with 0 the form ships and nobody ever sees it."""
    table = (entity.findtext("Name") or "").strip().lower()
    enabled = (entity.findtext("EntityInfo/entity/IsQuickCreateEnabled") or "").strip()
    if enabled != "1" and any(f.type == QUICK_CREATE_FORM for f in forms):
        return [f"{table}: ships a quick create form but IsQuickCreateEnabled is not 1"]
    return []


def coverage_problems(tables: Iterable[str], forms: list[Form], views: list[View]) -> list[str]:
    """What each of `tables` (the app's own tables) lacks: a main form, one of five views."""
    problems: list[str] = []
    for table in tables:
        if not any(f.table == table and f.type == MAIN_FORM for f in forms):
            problems.append(f'{table}: no main form (<FormXml><forms type="main">)')
        types = {v.query_type for v in views if v.table == table}
        problems += [
            f"{table}: no {kind.name.lower().replace('_', ' ')} view (querytype {kind.value})"
            for kind in REQUIRED_VIEWS
            if kind.value not in types
        ]
    return problems
