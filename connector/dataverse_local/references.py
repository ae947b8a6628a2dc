"""`$ref`: associate and disassociate records through a navigation property's URL.

    POST   <set>(<id>)/<nav>/$ref            {"@odata.id": "<url>"}   N:N or 1:N: add a link
    DELETE <set>(<id>)/<nav>(<other>)/$ref                            remove that link
    DELETE <set>(<id>)/<nav>/$ref?$id=<url>                           the same, by URL
    PUT    <set>(<id>)/<nav>/$ref            {"@odata.id": "<url>"}   single-valued: set it
    DELETE <set>(<id>)/<nav>/$ref                                     single-valued: clear it

Errors (`store.ApiError`): 400 for a bad reference body or key, 403 for a missing
Append/AppendTo/Write privilege, 404 for missing records, 405 for other methods.
"""

from __future__ import annotations

from typing import Any

from connector.dataverse_local.access import fetch_existing, require
from connector.dataverse_local.exchange import Exchange, Reply, method_not_allowed, not_segment
from connector.dataverse_local.links import associate, disassociate
from connector.dataverse_local.records import Nav, not_found, parse_reference
from connector.dataverse_local.store import ApiError, normalise_guid
from connector.dataverse_local.writes import update
from connector.solution.model import Table

__all__ = ["reference"]


def reference(
    ex: Exchange, table: Table, record_id: str, nav: Nav, inner: str | None, rest: list[str]
) -> Reply:
    """Answer `<set>(<id>)/<nav>[(<inner>)]/$ref`; `rest` is the path after the record."""
    method = ex.call.method
    if len(rest) != 2:
        raise not_segment(rest[-1])
    with ex.store.transaction():
        row = fetch_existing(ex, "Read", table, record_id)
        if nav.kind == "single":
            if inner is not None:
                raise not_segment(rest[0])
            if method == "PUT" or method == "POST":
                target, target_id = _referenced(ex)
                bind = {f"{nav.name}@odata.bind": f"/{target.entity_set}({target_id})"}
                update(ex, table, record_id, bind, row=row)
                return Reply(204)
            if method == "DELETE":
                update(ex, table, record_id, {f"{nav.name}@odata.bind": None}, row=row)
                return Reply(204)
            raise method_not_allowed(method)
        target_table = ex.schema.tables[nav.target]
        if method == "POST" and inner is None:
            target, target_id = _referenced(ex)
            if target.logical_name != target_table.logical_name:
                raise ApiError(400, "0x80060888", f"'{nav.name}' holds '{nav.target}' records.")
            if ex.store.fetch(target, target_id) is None:
                raise not_found(target, target_id)
            require(ex, "Append", table, row)
            require(ex, "AppendTo", target)
            associate(ex, table, record_id, nav, target, target_id)
            return Reply(204)
        if method == "DELETE":
            target_id = _inner_id(inner) if inner is not None else _id_option(ex)
            require(ex, "Append", table, row)
            disassociate(ex, table, record_id, nav, target_table, target_id)
            return Reply(204)
        raise method_not_allowed(method)


def _referenced(ex: Exchange) -> tuple[Table, str]:
    """The record a `{"@odata.id": "<url>"}` body names."""
    payload: Any = ex.read_json()
    if not isinstance(payload, dict) or "@odata.id" not in payload:
        raise ApiError(400, "0x80048d19", 'The body must be {"@odata.id": "<url>"}.')
    return parse_reference(ex.schema, payload["@odata.id"], base_url=ex.base_url)


def _inner_id(inner: str) -> str:
    inner_id = normalise_guid(inner)
    if inner_id is None:
        raise ApiError(400, "0x80060888", f"Invalid key '{inner}'.")
    return inner_id


def _id_option(ex: Exchange) -> str:
    """The record id in the `$id` query option's URL."""
    reference_url = ex.call.args.get("$id")
    if reference_url is None:
        raise ApiError(400, "0x80060888", "The $id query option is required.")
    return parse_reference(ex.schema, reference_url, base_url=ex.base_url)[1]
