"""The query options of the embedded Dataverse: `$select`, `$orderby`, `$top`, `$count`,
`$expand`, `$skiptoken`, and the `Prefer` header.

Pure functions over the `Schema`: they turn the text a client sent into names, SQL
fragments and dataclasses, or refuse it with the error Dataverse would give. `$filter` is
compiled by `connector.dataverse_local.filters`, which shares this module's error and name
resolution.

Errors (one tree, rendered by the WSGI app as `{"error": {"code", "message"}}`):

    Exception
    └── QueryError(message, code="0x80060888", status=400)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from connector.dataverse_local.store import LOOKUP_TYPES, quote
from connector.solution.model import Column, ColumnType, ManyToMany, OneToMany, Schema, Table

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_EXPANDS",
    "Expand",
    "Navigation",
    "Preferences",
    "Query",
    "QueryError",
    "parse_expand",
    "parse_orderby",
    "parse_prefer",
    "parse_query",
    "parse_select",
    "parse_top",
    "matching_paren",
    "resolve_column",
    "resolve_navigation",
    "split_top_level",
    "unknown_property",
    "wants_annotation",
]

# Dataverse's code for bad segments, properties, expands and query syntax.
BAD_QUERY_CODE = "0x80060888"
# Dataverse's default and maximum page size (records), for `odata.maxpagesize`.
DEFAULT_PAGE_SIZE = 5000
# Dataverse allows at most 15 `$expand` options in one query, nested ones included.
MAX_EXPANDS = 15
# An option value longer than this (characters) is refused before it is parsed.
MAX_OPTION_CHARS = 8000

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOP_RE = re.compile(r"[0-9]{1,10}")
_QUERY_OPTIONS = frozenset(
    {"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken"}
)
_EXPAND_OPTIONS = frozenset({"$select", "$filter", "$orderby", "$top", "$expand"})


class QueryError(Exception):
    """A query Dataverse would refuse; `status` and `code` go on the wire as they are."""

    def __init__(self, message: str, *, code: str = BAD_QUERY_CODE, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def unknown_property(name: str, table: Table) -> QueryError:
    """The error Dataverse gives for a name that is neither a column nor a navigation."""
    return QueryError(
        f"Could not find a property named '{name}' on type "
        f"'Microsoft.Dynamics.CRM.{table.logical_name}'."
    )


def resolve_column(table: Table, name: str) -> Column | None:
    """The column a query names, or None.

    Lookups are only reachable as `_<name>_value`, as in Dataverse; their bare logical name
    is not a property (it is, at most, a navigation property).
    """
    if name.startswith("_") and name.endswith("_value") and len(name) > len("__value"):
        lookup = table.columns.get(name[1 : -len("_value")])
        return lookup if lookup is not None and lookup.type in LOOKUP_TYPES else None
    column = table.columns.get(name)
    if column is None or column.type in LOOKUP_TYPES:
        return None
    return column


@dataclass(frozen=True)
class Navigation:
    """A navigation property of a table, resolved against the schema."""

    name: str
    relationship: OneToMany | ManyToMany
    collection: bool  # False: single-valued (the lookup side of a 1:N)
    target: Table


def resolve_navigation(schema: Schema, table: Table, name: str) -> Navigation | None:
    """The navigation property `name` of `table`, or None when there is none.

    Single-valued: `OneToMany.referencing_navigation` on the referencing table.
    Collection-valued: `OneToMany.referenced_navigation` on the referenced table, or either
    side of a `ManyToMany`. Raises QueryError when the other table is not in the schema.
    """
    here = table.logical_name
    found: tuple[OneToMany | ManyToMany, str, bool] | None = None
    for rel in schema.one_to_many:
        if rel.referencing_entity == here and rel.referencing_navigation == name:
            found = (rel, rel.referenced_entity, False)
            break
        if rel.referenced_entity == here and rel.referenced_navigation == name:
            found = (rel, rel.referencing_entity, True)
            break
    if found is None:
        for many in schema.many_to_many:
            if many.entity1 == here and many.entity1_navigation == name:
                found = (many, many.entity2, True)
                break
            if many.entity2 == here and many.entity2_navigation == name:
                found = (many, many.entity1, True)
                break
    if found is None:
        return None
    relationship, target_name, collection = found
    target = schema.tables.get(target_name)
    if target is None:
        raise QueryError(
            f"The navigation property '{name}' leads to table '{target_name}', "
            "which is not in the schema."
        )
    return Navigation(name, relationship, collection, target)


def _check_length(option: str, text: str) -> None:
    if len(text) > MAX_OPTION_CHARS:
        raise QueryError(
            f"The {option} query option is too long ({len(text)} characters; "
            f"the limit is {MAX_OPTION_CHARS})."
        )


def parse_select(text: str, table: Table) -> list[str]:
    """The column logical names of a `$select`, in order, without duplicates.

    `_x_value` is accepted for a lookup and returned as `x`. Raises QueryError for an
    empty item or a name that is not a column of `table`.
    """
    _check_length("$select", text)
    names: list[str] = []
    for item in text.split(","):
        name = item.strip()
        if not name:
            raise QueryError(f"Syntax error in $select: an empty item in '{text}'.")
        column = resolve_column(table, name)
        if column is None:
            raise unknown_property(name, table)
        if column.logical_name not in names:
            names.append(column.logical_name)
    return names


def parse_orderby(text: str, table: Table, *, alias: str = "t") -> str:
    """An SQL `ORDER BY` list (without the keywords) for a `$orderby`.

    Items are `col`, `col asc` or `col desc`, comma-separated; `_x_value` orders by the
    lookup's id. Text columns sort case-insensitively through their collation. Raises
    QueryError for unknown columns or bad syntax.
    """
    _check_length("$orderby", text)
    terms: list[str] = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2:
            raise QueryError(f"Syntax error in $orderby at '{item.strip()}' in '{text}'.")
        column = resolve_column(table, words[0])
        if column is None:
            raise unknown_property(words[0], table)
        if column.type == ColumnType.IMAGE:
            raise QueryError(f"The property '{words[0]}' cannot be used in $orderby.")
        direction = words[1] if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise QueryError(f"Syntax error in $orderby at '{direction}' in '{text}'.")
        terms.append(f"{alias}.{quote(column.logical_name)} {direction.upper()}")
    return ", ".join(terms)


def parse_top(text: str) -> int:
    """The positive record count of a `$top`; raises QueryError otherwise."""
    value = text.strip()
    if _TOP_RE.fullmatch(value) is None or int(value) < 1:
        raise QueryError(
            f"Invalid value '{text}' for $top query option found. "
            "The $top query option requires a positive integer value."
        )
    return int(value)


@dataclass(frozen=True)
class Expand:
    """One `$expand` item with its nested options, all already validated.

    `filter` and `orderby` stay text because the SQL alias is chosen by the caller:
    `compile_filter(e.filter, e.target, schema, alias=...)`,
    `parse_orderby(e.orderby, e.target, alias=...)`.
    """

    navigation: str
    relationship: OneToMany | ManyToMany
    collection: bool  # False: single-valued (lookup); True: 1:N or N:N collection
    target: Table
    select: list[str] | None = None
    filter: str | None = None
    orderby: str | None = None
    top: int | None = None
    expand: list[Expand] = field(default_factory=list)


def _outside_literals(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(index, character) for each character of `text` from `start` outside single-quoted
    literals (a doubled quote closes and reopens a literal, which comes out the same).

    Raises QueryError when the text ends inside a literal.
    """
    quoted = False
    for i in range(start, len(text)):
        char = text[i]
        if quoted:
            quoted = char != "'"
        elif char == "'":
            quoted = True
        else:
            yield i, char
    if quoted:
        raise QueryError(f"There is an unterminated literal at position {len(text)} in '{text}'.")


def split_top_level(text: str, separator: str, option: str) -> list[str]:
    """`text` split at `separator` outside parentheses and single-quoted literals."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in _outside_literals(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f"Syntax error in {option}: unbalanced ')' at position {i}.")
        elif char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise QueryError(f"Syntax error in {option}: unbalanced '(' in '{text}'.")
    parts.append(text[start:])
    return parts


def matching_paren(text: str, open_at: int) -> int:
    """The index of the ')' closing the '(' at `open_at`, or -1; quotes respected."""
    depth = 0
    for i, char in _outside_literals(text, open_at):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _expand_item(text: str, table: Table, schema: Schema, budget: list[int]) -> Expand:
    item = text.strip()
    open_at = item.find("(")
    name = item if open_at < 0 else item[:open_at].strip()
    options: dict[str, str] = {}
    if open_at >= 0:
        # `a(x)b(y)` is balanced yet not one item: the first '(' must close at the end.
        if matching_paren(item, open_at) != len(item) - 1:
            raise QueryError(f"Syntax error in $expand at '{item}'.")
        inner = item[open_at + 1 : -1]
        for part in split_top_level(inner, ";", "$expand"):
            if not part.strip():
                continue
            key, equals, value = part.partition("=")
            key = key.strip().lower()
            if not equals or not key.startswith("$"):
                raise QueryError(f"Syntax error in $expand at '{part.strip()}'.")
            if key not in _EXPAND_OPTIONS:
                raise QueryError(f"The query option '{key}' is not supported inside $expand.")
            if key in options:
                raise QueryError(f"The query option '{key}' appears twice in '{item}'.")
            options[key] = value.strip()
    if _NAME_RE.fullmatch(name) is None:
        if name.endswith("/$ref"):
            raise QueryError("$expand with $ref is not supported.")
        raise QueryError(f"Syntax error in $expand at '{item}'.")
    navigation = resolve_navigation(schema, table, name)
    if navigation is None:
        raise unknown_property(name, table)
    budget[0] += 1
    if budget[0] > MAX_EXPANDS:
        raise QueryError(
            f"The query has more than {MAX_EXPANDS} $expand options, the most Dataverse allows."
        )
    target = navigation.target
    if not navigation.collection:
        for key in ("$filter", "$orderby", "$top"):
            if key in options:
                raise QueryError(
                    f"The query option '{key}' is only supported on collection-valued "
                    f"navigation properties; '{name}' is single-valued."
                )
    elif "$expand" in options and ("$orderby" in options or "$top" in options):
        raise QueryError(
            "$orderby and $top are not supported with a nested $expand on the "
            f"collection-valued navigation property '{name}'."
        )
    filter_text = options.get("$filter")
    if filter_text is not None:
        # Compiled here only to refuse a bad filter early; the caller compiles it again
        # (from the cache) with its own alias. Imported here: filters imports this module.
        from connector.dataverse_local.filters import compile_filter

        compile_filter(filter_text, target, schema)
    orderby = options.get("$orderby")
    if orderby is not None:
        parse_orderby(orderby, target)
    return Expand(
        navigation=name,
        relationship=navigation.relationship,
        collection=navigation.collection,
        target=target,
        select=parse_select(options["$select"], target) if "$select" in options else None,
        filter=filter_text,
        orderby=orderby,
        top=parse_top(options["$top"]) if "$top" in options else None,
        expand=_expand_list(options["$expand"], target, schema, budget)
        if "$expand" in options
        else [],
    )


def _expand_list(text: str, table: Table, schema: Schema, budget: list[int]) -> list[Expand]:
    expands: list[Expand] = []
    for part in split_top_level(text, ",", "$expand"):
        if not part.strip():
            raise QueryError(f"Syntax error in $expand: an empty item in '{text}'.")
        expand = _expand_item(part, table, schema, budget)
        if any(e.navigation == expand.navigation for e in expands):
            raise QueryError(f"The navigation property '{expand.navigation}' is expanded twice.")
        expands.append(expand)
    return expands


def parse_expand(text: str, table: Table, schema: Schema) -> list[Expand]:
    """The items of a `$expand`, e.g. `nav($select=a,b;$filter=...;$top=3;$expand=...)`.

    Nested options are `;`-separated; commas, semicolons and parentheses inside quoted
    literals do not split. Raises QueryError for an unknown navigation property, a bad
    nested option, more than 15 expands, or an option Dataverse refuses in that place.
    """
    _check_length("$expand", text)
    return _expand_list(text, table, schema, [0])


@dataclass(frozen=True)
class Preferences:
    """What a request's `Prefer` headers ask for."""

    return_representation: bool = False
    max_page_size: int | None = None  # None: not asked for; else 1..DEFAULT_PAGE_SIZE
    include_annotations: tuple[str, ...] = ()  # "*", "-x", "Microsoft.Dynamics.CRM.*"
    continue_on_error: bool = False


def _split_header(value: str, separator: str) -> list[str]:
    """`value` split at `separator` outside double-quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in value:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_prefer(header_values: list[str] | str | None) -> Preferences:
    """The preferences in one or more `Prefer` header values.

    Several preferences may share a header (comma-separated) and values may be quoted with
    commas inside. Unknown preferences and bad values are ignored, as HTTP asks. A page size
    above 5000 is lowered to 5000.
    """
    if header_values is None:
        return Preferences()
    values = [header_values] if isinstance(header_values, str) else header_values
    representation = False
    page_size: int | None = None
    annotations: list[str] = []
    continue_on_error = False
    for header in values:
        for preference in _split_header(header, ","):
            head = next(iter(_split_header(preference, ";")), "")
            name, _, raw = head.partition("=")
            name = name.strip().lower()
            value = _unquote(raw)
            if name == "return":
                representation = value.lower() == "representation"
            elif name in ("odata.maxpagesize", "maxpagesize"):
                if value.isdigit() and int(value) > 0:
                    page_size = min(int(value), DEFAULT_PAGE_SIZE)
            elif name in ("odata.include-annotations", "include-annotations"):
                annotations.extend(p.strip() for p in value.split(",") if p.strip())
            elif name in ("odata.continue-on-error", "continue-on-error"):
                continue_on_error = value.lower() != "false"
    return Preferences(representation, page_size, tuple(annotations), continue_on_error)


@lru_cache(maxsize=256)
def _annotation_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def wants_annotation(prefs: Preferences, name: str) -> bool:
    """Whether `odata.include-annotations` asks for the annotation `name`.

    Patterns may use `*`; a `-` prefix excludes. The most specific matching pattern wins
    (most characters besides `*`); on a tie, exclusion wins.
    """
    best: tuple[int, bool] | None = None
    for pattern in prefs.include_annotations:
        excluded = pattern.startswith("-")
        body = pattern[1:] if excluded else pattern
        if _annotation_pattern(body).fullmatch(name) is None:
            continue
        specificity = len(body.replace("*", ""))
        if best is None or specificity > best[0] or (specificity == best[0] and excluded):
            best = (specificity, not excluded)
    return best is not None and best[1]


@dataclass(frozen=True)
class Query:
    """The system query options of one request, validated and compiled."""

    select: list[str] | None = None  # None: every column
    filter_text: str | None = None
    filter_sql: str | None = None  # WHERE fragment over the request's alias
    filter_params: list[object] = field(default_factory=list)
    orderby: str | None = None  # ORDER BY list over the request's alias
    top: int | None = None
    count: bool = False
    expand: list[Expand] = field(default_factory=list)
    skiptoken: str | None = None  # raw, as the client sent it back


def parse_query(
    args: Mapping[str, str], table: Table, schema: Schema, *, alias: str = "t"
) -> Query:
    """The `$` options of a request's (already URL-decoded) query string.

    Parameters without `$` are left to the caller. Raises QueryError for `$skip` and any
    other option Dataverse does not support, and for any invalid option value.
    """
    options: dict[str, str] = {}
    for key, value in args.items():
        if not key.startswith("$"):
            continue
        lowered = key.lower()
        if lowered not in _QUERY_OPTIONS:
            raise QueryError(f"The query parameter {key} is not supported")
        options[lowered] = value
    filter_text = options.get("$filter")
    filter_sql: str | None = None
    filter_params: list[object] = []
    if filter_text is not None:
        from connector.dataverse_local.filters import compile_filter

        filter_sql, filter_params = compile_filter(filter_text, table, schema, alias=alias)
    skiptoken = options.pop("$skiptoken", None)
    options.pop("$filter", None)
    rest = _other_options(table, schema, alias, options)
    return Query(
        select=rest.select,
        filter_text=filter_text,
        filter_sql=filter_sql,
        filter_params=filter_params,
        orderby=rest.orderby,
        top=rest.top,
        count=rest.count,
        expand=rest.expand,
        skiptoken=skiptoken,
    )


# The options other than $filter and $skiptoken, parsed, by table and text: the product
# sends the same few `$select`/`$orderby`/`$top`/`$expand` again and again, and parsing
# them was a sixth of an in-process filter. Parsed values are only read, never changed.
_parsed: dict[tuple[int, int, str, tuple[tuple[str, str], ...]], tuple[Table, Query]] = {}
MAX_PARSED_OPTIONS = 512


def _other_options(table: Table, schema: Schema, alias: str, options: dict[str, str]) -> Query:
    key = (id(table), id(schema), alias, tuple(sorted(options.items())))
    held = _parsed.get(key)
    if held is not None and held[0] is table:
        return held[1]
    count = options.get("$count")
    if count is not None and count.strip().lower() not in ("true", "false"):
        raise QueryError(
            f"Invalid value '{count}' for $count query option found. "
            "Valid values are 'true' and 'false'."
        )
    parsed = Query(
        select=parse_select(options["$select"], table) if "$select" in options else None,
        orderby=parse_orderby(options["$orderby"], table, alias=alias)
        if "$orderby" in options
        else None,
        top=parse_top(options["$top"]) if "$top" in options else None,
        count=count is not None and count.strip().lower() == "true",
        expand=parse_expand(options["$expand"], table, schema) if "$expand" in options else [],
    )
    if len(_parsed) >= MAX_PARSED_OPTIONS:
        _parsed.clear()
    _parsed[key] = (table, parsed)
    return parsed
