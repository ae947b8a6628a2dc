"""Safe OData literals, GUIDs, `$filter` expressions and the small wire helpers around them.

This module is the only way values enter a Dataverse URL or query:

- `quote(value)` turns a Python value into an OData literal (a string's single quotes
  are doubled, so ``O'Neil`` stays one literal);
- `guid(value)` checks an id before it goes into a path such as ``contacts(<id>)``;
- the filter builders (`eq`, `contains`, `and_`, ...) combine column names and quoted
  values into `$filter` text;
- `check_name` guards entity set and navigation names in paths, `encode_json` writes
  request bodies, and `record_id_from_headers` reads a new record's id from
  ``OData-EntityId``.

Column names are checked against `COLUMN_PATTERN`: they come from our code, never from
users, and the check makes a slip fail loudly instead of building a different query.

```python
and_(eq("emailaddress1", "ann@x.com"), ne("statecode", 1))
# "(emailaddress1 eq 'ann@x.com') and (statecode ne 1)"
```
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from .multipart import header

__all__ = [
    "COLUMN_PATTERN",
    "ODataValue",
    "and_",
    "check_name",
    "column",
    "contains",
    "encode_json",
    "endswith",
    "eq",
    "ge",
    "gt",
    "guid",
    "is_null",
    "le",
    "lt",
    "ne",
    "not_",
    "or_",
    "quote",
    "record_id_from_headers",
    "startswith",
]

# Logical names, lookup properties (_x_value) and navigation paths (a/b).
COLUMN_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_/]*$")

_GUID_PATTERN = re.compile(
    r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$"
)

# Entity set and navigation property names.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The key of an entity URL such as .../contacts(<guid>).
_ENTITY_ID = re.compile(
    r"\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12})\)\s*$"
)

ODataValue = str | int | float | Decimal | bool | uuid.UUID | datetime | date | None


def quote(value: ODataValue) -> str:
    """Return `value` as an OData literal.

    Strings are single-quoted with inner quotes doubled; None is ``null``; booleans are
    ``true``/``false``; numbers are written as they are; UUIDs are unquoted; aware
    datetimes become ISO 8601 UTC with ``Z``; dates become ``YYYY-MM-DD``.

    Raises:
        ValueError: for a naive datetime or a non-finite number.
        TypeError: for any other type.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return _format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"no OData literal for {type(value).__name__}")


def _format_datetime(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: give it a time zone so the instant is unambiguous")
    utc = value.astimezone(UTC)
    timespec = "seconds" if utc.microsecond == 0 else "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def guid(value: str | uuid.UUID) -> str:
    """Return `value` as a lower-case hyphenated GUID, safe to put in a URL.

    Accepts a `uuid.UUID` or text in the 8-4-4-4-12 form, optionally in braces (as
    ``Xrm`` user ids are). Raises ValueError on anything else.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"not a GUID: {type(value).__name__}")
    match = _GUID_PATTERN.fullmatch(value)
    if match is None or value.startswith("{") != value.endswith("}"):
        raise ValueError(f"not a GUID: {value!r}")
    return match.group(1).lower()


def column(name: str) -> str:
    """Return `name` if it is a valid column, lookup or navigation path; else ValueError."""
    if not isinstance(name, str) or COLUMN_PATTERN.fullmatch(name) is None:
        raise ValueError(f"not a column name: {name!r}")
    return name


def _compare(name: str, operator: str, value: ODataValue) -> str:
    return f"{column(name)} {operator} {quote(value)}"


def eq(name: str, value: ODataValue) -> str:
    """``name eq value``; a None value tests for null."""
    return _compare(name, "eq", value)


def ne(name: str, value: ODataValue) -> str:
    """``name ne value``; a None value tests for not-null."""
    return _compare(name, "ne", value)


def gt(name: str, value: ODataValue) -> str:
    """``name gt value``."""
    return _compare(name, "gt", value)


def ge(name: str, value: ODataValue) -> str:
    """``name ge value``."""
    return _compare(name, "ge", value)


def lt(name: str, value: ODataValue) -> str:
    """``name lt value``."""
    return _compare(name, "lt", value)


def le(name: str, value: ODataValue) -> str:
    """``name le value``."""
    return _compare(name, "le", value)


def _string_function(function: str, name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{function}() takes a string, not {type(value).__name__}")
    return f"{function}({column(name)},{quote(value)})"


def contains(name: str, value: str) -> str:
    """``contains(name,'value')``; Dataverse compares case-insensitively."""
    return _string_function("contains", name, value)


def startswith(name: str, value: str) -> str:
    """``startswith(name,'value')``."""
    return _string_function("startswith", name, value)


def endswith(name: str, value: str) -> str:
    """``endswith(name,'value')``."""
    return _string_function("endswith", name, value)


def is_null(name: str) -> str:
    """``name eq null``."""
    return f"{column(name)} eq null"


def _combine(operator: str, clauses: tuple[str, ...]) -> str:
    if not clauses:
        raise ValueError(f"{operator}_() needs at least one clause")
    if len(clauses) == 1:
        return clauses[0]
    # Parenthesise every operand so precedence never depends on what a clause holds.
    return f" {operator} ".join(f"({clause})" for clause in clauses)


def and_(*clauses: str) -> str:
    """All `clauses` (built by this module) hold."""
    return _combine("and", clauses)


def or_(*clauses: str) -> str:
    """Any of `clauses` (built by this module) holds."""
    return _combine("or", clauses)


def not_(clause: str) -> str:
    """`clause` (built by this module) does not hold."""
    return f"not ({clause})"


def encode_json(data: Any) -> bytes:
    """Serialise a request body as UTF-8 JSON.

    Besides JSON types, accepts aware datetimes (ISO 8601 UTC), dates, UUIDs and
    Decimals, so records can be built from typed values.
    """

    def default(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return quote(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, Decimal):
            return float(value)
        raise TypeError(f"cannot send {type(value).__name__} to Dataverse")

    return json.dumps(data, default=default, ensure_ascii=False, separators=(",", ":")).encode()


def record_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """The record id in an ``OData-EntityId`` (or ``Location``) header, lower-case."""
    for name in ("OData-EntityId", "Location"):
        match = _ENTITY_ID.search(header(headers, name) or "")
        if match is not None:
            return match.group(1).lower()
    return None


def check_name(value: str, what: str) -> str:
    """Return an entity set or navigation property name, or raise ValueError.

    Names come from our code; the check keeps a slip from changing the URL's shape.
    """
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise ValueError(f"not a valid {what}: {value!r}")
    return value
