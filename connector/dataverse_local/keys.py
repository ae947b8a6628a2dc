"""Entity keys in a URL: a GUID (`accounts(<id>)`) or alternate key values
(`accounts(name='x',accountnumber=7)`, any column may serve as one).

Errors (`store.ApiError`): 400 `0x80060888` for a malformed key or an unknown column, 404
`0x80040217` when alternate key values match no record.
"""

from __future__ import annotations

import re
from typing import Any

from connector import json_input
from connector.dataverse_local.records import property_error
from connector.dataverse_local.store import ApiError, Store, normalise_guid, quote
from connector.solution.model import Table

__all__ = ["existing_id", "find_by_alternate", "parse_key"]

_NOT_A_KEY = object()
_KEY_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^,]+)\s*(?:,|$)")


def existing_id(store: Store, table: Table, key: str) -> str:
    """The id a key names; 404 when an alternate key matches nothing."""
    record_id, alternate = parse_key(table, key)
    if record_id is not None:
        return record_id
    row = find_by_alternate(store, table, alternate)
    if row is None:
        description = ",".join(f"{k}:{v}" for k, v in alternate.items())
        raise ApiError(
            404,
            "0x80040217",
            f"A record with the specified key values does not exist in "
            f"{table.logical_name} entity ({description})",
        )
    return str(row[table.primary_id])


def parse_key(table: Table, key: str) -> tuple[str | None, dict[str, Any]]:
    """(the GUID, {}) or (None, {column: value}) for the text between the parentheses."""
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
        value = _key_value(raw)
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


def _key_value(raw: str) -> Any:
    """A key literal: 'text' (quotes doubled inside), a GUID, or a JSON number/boolean."""
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    guid = normalise_guid(raw)
    if guid:
        return guid
    try:
        value = json_input.loads(raw)
    except ValueError:
        value = _NOT_A_KEY
    # Only scalars name a record: an array or object literal is no key value at all.
    if value is _NOT_A_KEY or isinstance(value, list | dict):
        raise ApiError(400, "0x80060888", f"Bad Request - Error in query syntax: '{raw}'.")
    return value


def find_by_alternate(store: Store, table: Table, pairs: dict[str, Any]) -> dict[str, Any] | None:
    """The first row whose columns hold the values in `pairs`, or None."""
    where = " AND ".join(f"{quote(name)} = ?" for name in pairs)
    rows = store.query(
        f"SELECT * FROM {quote(table.logical_name)} WHERE {where} LIMIT 1",
        [1 if v is True else 0 if v is False else v for v in pairs.values()],
    )
    return dict(rows[0]) if rows else None
