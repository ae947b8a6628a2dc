"""`EntityDefinitions` answers of the embedded Dataverse, built from the `Schema`.

Covers what clients ask for in practice: the entity list (with `$select` and a simple
`$filter` of `Prop eq 'value'` terms joined by `and`/`or`), one entity by
`(LogicalName='x')` or its MetadataId, its `Attributes` (all, one, or cast to a type such
as `Microsoft.Dynamics.CRM.PicklistAttributeMetadata`, with `$expand=OptionSet`), and a
minimal `$metadata` document listing the entity sets.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from connector.solution.model import Column, ColumnType, Ownership, Schema, Table

__all__ = ["answer", "attribute_definition", "csdl", "entity_definition", "metadata_id"]

_NAMESPACE = uuid.UUID("0c0a8d3e-2f55-4d1c-9f2e-6b6a6d0c0001")
_ATTRIBUTE_TYPES = {
    ColumnType.STRING: ("String", "StringAttributeMetadata"),
    ColumnType.MEMO: ("Memo", "MemoAttributeMetadata"),
    ColumnType.INTEGER: ("Integer", "IntegerAttributeMetadata"),
    ColumnType.BIGINT: ("BigInt", "BigIntAttributeMetadata"),
    ColumnType.DECIMAL: ("Decimal", "DecimalAttributeMetadata"),
    ColumnType.DOUBLE: ("Double", "DoubleAttributeMetadata"),
    ColumnType.MONEY: ("Money", "MoneyAttributeMetadata"),
    ColumnType.BOOLEAN: ("Boolean", "BooleanAttributeMetadata"),
    ColumnType.DATETIME: ("DateTime", "DateTimeAttributeMetadata"),
    ColumnType.PICKLIST: ("Picklist", "PicklistAttributeMetadata"),
    ColumnType.STATE: ("State", "StateAttributeMetadata"),
    ColumnType.STATUS: ("Status", "StatusAttributeMetadata"),
    ColumnType.LOOKUP: ("Lookup", "LookupAttributeMetadata"),
    ColumnType.CUSTOMER: ("Customer", "LookupAttributeMetadata"),
    ColumnType.OWNER: ("Owner", "LookupAttributeMetadata"),
    ColumnType.UNIQUEIDENTIFIER: ("Uniqueidentifier", "UniqueIdentifierAttributeMetadata"),
    ColumnType.IMAGE: ("Virtual", "ImageAttributeMetadata"),
}
_OWNERSHIP = {
    Ownership.USER: "UserOwned",
    Ownership.ORGANIZATION: "OrganizationOwned",
    Ownership.NONE: "None",
}
_KEY = re.compile(r"^(?:LogicalName\s*=\s*'([^']*)'|([0-9a-fA-F-]{36}))$")
_TERM = re.compile(r"^\s*([A-Za-z]+)\s+eq\s+('(?:[^']|'')*'|true|false|-?\d+)\s*$", re.IGNORECASE)


def metadata_id(*names: str) -> str:
    """A stable MetadataId for a table or a column."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(names)))


def _label(text: str) -> dict[str, Any]:
    localized = {"Label": text, "LanguageCode": 1033}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def entity_definition(table: Table) -> dict[str, Any]:
    """The EntityMetadata properties clients read."""
    display = table.display_name or table.logical_name
    return {
        "MetadataId": metadata_id(table.logical_name),
        "LogicalName": table.logical_name,
        "SchemaName": table.schema_name,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "CollectionSchemaName": table.entity_set,
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "IsActivity": table.is_activity,
        "IsCustomEntity": table.is_custom,
        "OwnershipType": _OWNERSHIP[table.ownership],
        "DisplayName": _label(display),
    }


def attribute_definition(table: Table, column: Column) -> dict[str, Any]:
    """The AttributeMetadata properties clients read, typed by `@odata.type`."""
    attribute_type, odata_type = _ATTRIBUTE_TYPES[column.type]
    definition: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{odata_type}",
        "MetadataId": metadata_id(table.logical_name, column.logical_name),
        "LogicalName": column.logical_name,
        "SchemaName": column.logical_name,
        "EntityLogicalName": table.logical_name,
        "AttributeType": attribute_type,
        "IsPrimaryId": column.logical_name == table.primary_id,
        "IsPrimaryName": column.logical_name == table.primary_name,
        "IsCustomAttribute": column.logical_name.startswith(table.logical_name.split("_")[0] + "_")
        and table.is_custom,
        "RequiredLevel": {"Value": "ApplicationRequired" if column.required else "None"},
        "DisplayName": _label(column.display_name or column.logical_name),
    }
    if column.max_length is not None:
        definition["MaxLength"] = column.max_length
    if column.min_value is not None:
        definition["MinValue"] = column.min_value
    if column.max_value is not None:
        definition["MaxValue"] = column.max_value
    if column.type in (ColumnType.PICKLIST, ColumnType.STATE, ColumnType.STATUS):
        definition["OptionSet"] = {
            "Options": [
                {"Value": value, "Label": _label(label)}
                for value, label in sorted(column.options.items())
            ]
        }
    return definition


def _select(record: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return record
    wanted = {name.strip() for name in select.split(",") if name.strip()}
    wanted |= {"MetadataId", "@odata.type"}
    return {k: v for k, v in record.items() if k in wanted}


def _matches(record: dict[str, Any], text: str | None) -> bool:
    """A small `$filter`: `Prop eq 'v'` terms joined by `and` or `or` (no parentheses)."""
    if not text:
        return True
    for alternative in re.split(r"\s+or\s+", text.strip(), flags=re.IGNORECASE):
        ok = True
        for term in re.split(r"\s+and\s+", alternative, flags=re.IGNORECASE):
            match = _TERM.match(term)
            if match is None:
                raise ValueError(f"Unsupported $filter on metadata: '{term.strip()}'.")
            name, raw = match.group(1), match.group(2)
            actual = record.get(name)
            if raw.startswith("'"):
                expected: Any = raw[1:-1].replace("''", "'")
                ok = ok and isinstance(actual, str) and actual.lower() == expected.lower()
            elif raw.lower() in ("true", "false"):
                ok = ok and actual is (raw.lower() == "true")
            else:
                ok = ok and actual == int(raw)
        if ok:
            return True
    return False


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


def _find(schema: Schema, key: str) -> Table | None:
    match = _KEY.match(key.strip())
    if match is None:
        return None
    if match.group(1) is not None:
        return schema.tables.get(match.group(1).lower())
    wanted = match.group(2).lower()
    for table in schema.tables.values():
        if metadata_id(table.logical_name) == wanted:
            return table
    return None


def answer(
    schema: Schema, segments: list[str], args: Mapping[str, str], base_url: str
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for a GET under `EntityDefinitions`."""
    context = f"{base_url}/$metadata#EntityDefinitions"
    head = segments[0]
    select = args.get("$select")
    if head == "EntityDefinitions":
        if len(segments) > 1:
            return _error(404, "0x80060888", f"Resource not found for the segment '{segments[1]}'.")
        try:
            rows = [
                _select(entity_definition(t), select)
                for t in sorted(schema.tables.values(), key=lambda t: t.logical_name)
                if _matches(entity_definition(t), args.get("$filter"))
            ]
        except ValueError as exc:
            return _error(400, "0x80060888", str(exc))
        if select:
            context += f"({select})"
        return 200, {"@odata.context": context, "value": rows}
    if not head.startswith("EntityDefinitions(") or not head.endswith(")"):
        return _error(404, "0x80060888", f"Resource not found for the segment '{head}'.")
    table = _find(schema, head[len("EntityDefinitions(") : -1])
    if table is None:
        return _error(
            404,
            "0x80040217",
            f"Could not find entity with key {head[len('EntityDefinitions') :]}.",
        )
    if len(segments) == 1:
        return 200, {
            "@odata.context": context + "/$entity",
            **_select(entity_definition(table), select),
        }
    return _attributes(table, segments[1:], args, context)


def _attributes(
    table: Table, segments: list[str], args: Mapping[str, str], context: str
) -> tuple[int, dict[str, Any]]:
    head = segments[0]
    select = args.get("$select")
    expand = args.get("$expand", "")
    columns = sorted(table.columns.values(), key=lambda c: c.logical_name)
    if head.startswith("Attributes(") and head.endswith(")") and len(segments) == 1:
        key = head[len("Attributes(") : -1]
        match = _KEY.match(key)
        for column in columns:
            if match and (
                match.group(1) == column.logical_name
                or match.group(2) == metadata_id(table.logical_name, column.logical_name)
            ):
                record = _select(attribute_definition(table, column), select)
                return 200, _with_option_set(record, attribute_definition(table, column), expand)
        return _error(404, "0x80040217", f"Could not find attribute with key {key}.")
    if head != "Attributes" or len(segments) > 2:
        return _error(404, "0x80060888", f"Resource not found for the segment '{head}'.")
    cast = segments[1] if len(segments) == 2 else None
    rows = []
    for column in columns:
        full = attribute_definition(table, column)
        if cast is not None and full["@odata.type"] != f"#{cast}":
            continue
        try:
            if not _matches(full, args.get("$filter")):
                continue
        except ValueError as exc:
            return _error(400, "0x80060888", str(exc))
        rows.append(_with_option_set(_select(full, select), full, expand))
    return 200, {"@odata.context": f"{context}/Attributes", "value": rows}


def _with_option_set(record: dict[str, Any], full: dict[str, Any], expand: str) -> dict[str, Any]:
    if "OptionSet" in expand and "OptionSet" in full:
        record = {**record, "OptionSet": full["OptionSet"]}
    return record


def csdl(schema: Schema) -> str:
    """A minimal `$metadata` document: the entity types' keys and the entity sets."""
    types = []
    sets = []
    for table in sorted(schema.tables.values(), key=lambda t: t.logical_name):
        name = quoteattr(table.logical_name)
        key = quoteattr(table.primary_id)
        types.append(
            f"<EntityType Name={name}><Key><PropertyRef Name={key}/></Key>"
            f'<Property Name={key} Type="Edm.Guid" Nullable="false"/></EntityType>'
        )
        sets.append(
            f"<EntitySet Name={quoteattr(table.entity_set)} "
            f"EntityType={quoteattr('Microsoft.Dynamics.CRM.' + table.logical_name)}/>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
        '<edmx:DataServices><Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" '
        'xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        + "".join(types)
        + '<EntityContainer Name="System">'
        + "".join(sets)
        + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )
