"""The Omnichannel context a visitor's page passes at chat start, checked.

Rules of Dynamics 365 Omnichannel's `setContextProvider`: at most 100 variables; names
1-100 characters; a value is a string, number or boolean, or
``{"value": <one of those>, "isDisplayable": bool}``; values at most 4,000 characters.
A plain value is displayable (shown to the agent); every variable is stored on the chat
activity.

```python
context = parse_context({"Email": "ann@x.test", "Plan": {"value": "Pro", "isDisplayable": False}})
displayable(context)        # [{"name": "Email", "value": "ann@x.test"}]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "MAX_CONTEXT_NAME_CHARS",
    "MAX_CONTEXT_VALUE_CHARS",
    "MAX_CONTEXT_VARS",
    "ContextError",
    "displayable",
    "parse_context",
]

MAX_CONTEXT_VARS = 100
MAX_CONTEXT_NAME_CHARS = 100
MAX_CONTEXT_VALUE_CHARS = 4000

Primitive = (
    Annotated[StrictStr, Field(max_length=MAX_CONTEXT_VALUE_CHARS)]
    | StrictBool
    | StrictInt
    | StrictFloat
)


class _Wrapped(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    value: Primitive
    is_displayable: StrictBool = Field(default=True, alias="isDisplayable")


_CONTEXT: TypeAdapter[dict[str, Primitive | _Wrapped]] = TypeAdapter(
    dict[
        Annotated[str, Field(min_length=1, max_length=MAX_CONTEXT_NAME_CHARS)],
        Primitive | _Wrapped,
    ]
)


class ContextError(ValueError):
    """The context breaks the rules; the message says which."""


def parse_context(raw: object) -> dict[str, Any]:
    """The context, checked, as stored: name -> ``{"value", "isDisplayable"}``.

    None means no context. Raises ContextError.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ContextError("The context must be an object.")
    if len(raw) > MAX_CONTEXT_VARS:
        raise ContextError(f"At most {MAX_CONTEXT_VARS} context variables.")
    try:
        parsed = _CONTEXT.validate_python(dict(raw))
    except ValidationError as error:
        item = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in item["loc"]) or "context"
        raise ContextError(f"context {where}: {item['msg']}") from None
    out: dict[str, Any] = {}
    for name, value in parsed.items():
        if isinstance(value, _Wrapped):
            out[name] = {"value": value.value, "isDisplayable": value.is_displayable}
        else:
            out[name] = {"value": value, "isDisplayable": True}
    return out


def displayable(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The variables the agent may see, as ``[{"name", "value"}]`` in the page's order."""
    shown: list[dict[str, Any]] = []
    for name, item in context.items():
        if not isinstance(item, Mapping):  # a plain value (chats stored before the rules)
            shown.append({"name": name, "value": item})
        elif item.get("isDisplayable", True):
            shown.append({"name": name, "value": item.get("value")})
    return shown
