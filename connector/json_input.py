"""JSON from outside (request bodies, socket frames, tokens), parsed with a depth limit.

`json.loads` on `[[[[...` 100,000 deep raises RecursionError, which no caller expects (a
500 with a trace), and a few hundred levels that do parse can still overflow later code
that walks the value. `loads` turns both into `JsonTooDeep`, a ValueError, so every
caller's existing "not valid JSON" path answers a 400.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "JsonTooDeep", "loads"]

# Nothing the product reads nests deeper than a few levels (a $batch body, an OData
# create with deep inserts); 64 leaves ample room and stays far below Python's stack.
MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    """The JSON text nests arrays/objects deeper than MAX_JSON_DEPTH."""


def loads(text: str | bytes | bytearray) -> Any:
    """Parse JSON text; raises ValueError (JsonTooDeep when too deep) or UnicodeDecodeError."""
    try:
        value = json.loads(text)
    except RecursionError as error:
        raise JsonTooDeep(f"JSON may nest at most {MAX_JSON_DEPTH} levels.") from error
    check_depth(value)
    return value


def check_depth(value: Any) -> None:
    """Raise JsonTooDeep when `value` nests deeper than MAX_JSON_DEPTH (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= MAX_JSON_DEPTH:
            raise JsonTooDeep(f"JSON may nest at most {MAX_JSON_DEPTH} levels.")
        stack.extend((child, depth + 1) for child in children)
