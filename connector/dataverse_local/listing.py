"""Collection queries: `GET <set>` and `GET <set>/$count`.

A list is the caller's visible records matching `$filter`, in `$orderby` order with the
primary id as the last tie-breaker, `$top` or `Prefer: odata.maxpagesize` records at a
time. A page that is not the last carries an absolute `@odata.nextLink` whose `$skiptoken`
is a keyset cursor: base64 JSON of the last row's sort values, so rows inserted between
pages neither repeat nor vanish. `@odata.count` and `/$count` stop at `MAX_COUNT`.

Errors (`store.ApiError`): 400 `0x80060888` for a `$skiptoken` that does not fit the query,
403 without read access; broken query options raise `query.QueryError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from connector import json_input
from connector.dataverse_local import query
from connector.dataverse_local.access import visibility
from connector.dataverse_local.aggregate import aggregate_records
from connector.dataverse_local.exchange import Exchange, Reply, json_reply
from connector.dataverse_local.expand import shape
from connector.dataverse_local.store import LOOKUP_TYPES, ApiError, quote
from connector.solution.model import Table

__all__ = ["MAX_COUNT", "count_records", "list_records"]

MAX_COUNT = 5000  # records: @odata.count is capped here, as Dataverse does

# (SQL expression, stored column, descending) for one sort key
_SortKey = tuple[str, str, bool]


def list_records(ex: Exchange, table: Table) -> Reply:
    """`GET <set>`: one page of records with the query options applied (or `$apply`'s groups)."""
    if any(key.lower() == "$apply" for key in ex.call.args):
        return aggregate_records(ex, table)
    options = query.parse_query(ex.call.args, table, ex.schema)
    clauses, params = _conditions(ex, table, options)
    keys = _order_keys(ex.call.args.get("$orderby"), table)
    keys.append((f"t.{quote(table.primary_id)}", table.primary_id, False))
    page_size = ex.prefs.max_page_size
    limit = page_size or options.top or query.DEFAULT_PAGE_SIZE
    if page_size is None and options.top is not None:
        limit = min(options.top, query.DEFAULT_PAGE_SIZE)
    paged_clauses = list(clauses)
    paged_params = list(params)
    if options.skiptoken:
        sql, values = _after(keys, _read_token(options.skiptoken, len(keys)))
        paged_clauses.append(sql)
        paged_params += values
    columns = _columns(ex, table, options, keys)
    sql = f"SELECT {columns} {_from_where(table, paged_clauses)} ORDER BY " + ", ".join(
        f"{expr} {'DESC' if desc else 'ASC'}" for expr, _, desc in keys
    )
    sql += f" LIMIT {limit + 1}"
    rows = ex.store.query_dicts(sql, paged_params)
    more = len(rows) > limit and (page_size is not None or options.top is None)
    rows = rows[:limit]
    body: dict[str, Any] = {"@odata.context": ex.context_url(table, options.select, entity=False)}
    if options.count:
        body["@odata.count"] = _count(ex, table, clauses, params)
    body["value"] = [shape(ex, table, row, options.select, options.expand) for row in rows]
    headers: dict[str, str] = {}
    applied = []
    if page_size is not None:
        applied.append(f"odata.maxpagesize={page_size}")
    if ex.prefs.include_annotations:
        applied.append(ex.annotations_applied())
    if applied:
        headers["Preference-Applied"] = ",".join(applied)
    if more and rows:
        token = _make_token([rows[-1].get(column) for _, column, _ in keys])
        args = {k: v for k, v in ex.call.args.items() if k.lower() != "$skiptoken"}
        args["$skiptoken"] = token
        link = urlencode(args, quote_via=url_quote, safe="$(),';:@/")
        body["@odata.nextLink"] = f"{ex.base_url}/{table.entity_set}?{link}"
    return json_reply(200, body, headers)


def count_records(ex: Exchange, table: Table) -> Reply:
    """`GET <set>/$count`: the number of visible records matching `$filter`, as text."""
    options = query.parse_query(ex.call.args, table, ex.schema)
    clauses, params = _conditions(ex, table, options)
    count = _count(ex, table, clauses, params)
    return Reply(200, str(count).encode(), {"Content-Type": "text/plain"})


def _conditions(ex: Exchange, table: Table, options: query.Query) -> tuple[list[str], list[Any]]:
    """The WHERE clauses (and parameters) every list of `table` needs: visibility, $filter."""
    where, params = visibility(ex, table, "t")
    clauses = [where] if where else []
    if options.filter_sql:
        clauses.append(f"({options.filter_sql})")
        params += list(options.filter_params)
    return clauses, params


# The column lists of pages by table, `$select` and sort keys (see `_columns`).
_column_lists: dict[tuple[int, tuple[str, ...], tuple[str, ...]], tuple[Table, str]] = {}
MAX_COLUMN_LISTS = 1024


def _columns(ex: Exchange, table: Table, options: query.Query, keys: list[_SortKey]) -> str:
    """What a page SELECTs: with a `$select`, only what its answer is made of (the
    selected columns, a selected lookup's target table, the version behind the ETag, the
    primary id, the sort keys behind the next link); every column when `$expand` or
    annotations read more of each row, or without a `$select`. Reading and converting a
    contact's 27 stored columns to return two was a third of a filter's SQL time
    (bench/dataverse_vs_sqlite.py)."""
    if options.select is None or options.expand or ex.prefs.include_annotations:
        return "t.*"
    key = (id(table), tuple(options.select), tuple(column for _, column, _ in keys))
    held = _column_lists.get(key)
    # The id is only trusted while the very same Table is alive in the entry.
    if held is not None and held[0] is table:
        return held[1]
    names = [table.primary_id, "versionnumber"]
    for name in options.select:
        names.append(name)
        if table.columns[name].type in LOOKUP_TYPES:
            names.append(name + "__table")
    names += key[2]
    text = ", ".join(f"t.{quote(name)}" for name in dict.fromkeys(names))
    if len(_column_lists) >= MAX_COLUMN_LISTS:
        _column_lists.clear()
    _column_lists[key] = (table, text)
    return text


def _from_where(table: Table, clauses: list[str]) -> str:
    sql = f"FROM {quote(table.logical_name)} AS t"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return sql


def _count(ex: Exchange, table: Table, clauses: list[str], params: list[Any]) -> int:
    rows = ex.store.query(f"SELECT COUNT(*) {_from_where(table, clauses)}", params)
    return min(int(rows[0][0]), MAX_COUNT)


def _order_keys(text: str | None, table: Table) -> list[_SortKey]:
    """(SQL expression, stored column, descending) for each `$orderby` item."""
    keys: list[_SortKey] = []
    if not text:
        return keys
    for item in text.split(","):
        words = item.split()
        column = query.resolve_column(table, words[0]) if words else None
        if column is None:
            continue  # parse_query already refused it
        desc = len(words) > 1 and words[1].lower() == "desc"
        keys.append((f"t.{quote(column.logical_name)}", column.logical_name, desc))
    return keys


def _make_token(values: list[Any]) -> str:
    """A `$skiptoken`: the sort-key values of the page's last row (a keyset cursor)."""
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, size: int) -> list[Any]:
    """The sort-key values in a `$skiptoken`; 400 unless they are `size` plain values."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json_input.loads(raw)
    except (binascii.Error, ValueError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != size
        or any(isinstance(v, list | dict) for v in values)
    ):
        raise ApiError(400, "0x80060888", "The $skiptoken is invalid for this query.")
    return values


def _after(keys: list[_SortKey], values: list[Any]) -> tuple[str, list[Any]]:
    """A WHERE fragment for the rows after `values` in the order `keys` (NULLs first asc)."""
    terms: list[str] = []
    params: list[Any] = []
    for i, (expr, _, desc) in enumerate(keys):
        parts: list[str] = []
        for prior, value in zip((key[0] for key in keys[:i]), values[:i], strict=True):
            if value is None:
                parts.append(f"{prior} IS NULL")
            else:
                parts.append(f"{prior} = ?")
                params.append(value)
        value = values[i]
        if value is None:
            parts.append("0" if desc else f"{expr} IS NOT NULL")
        elif desc:
            parts.append(f"({expr} < ? OR {expr} IS NULL)")
            params.append(value)
        else:
            parts.append(f"{expr} > ?")
            params.append(value)
        terms.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(terms) + ")", params
