"""Reading one record: `GET <set>(<key>)` and its single properties (`…/name`, `…/name/$value`).

A record answers with its ETag, and `304 Not Modified` to a matching `If-None-Match` unless
the answer carries more than the record (`$expand`, annotations). Errors (`store.ApiError`):
403 without read access to the record, 404 when it does not exist.
"""

from __future__ import annotations

import base64
import binascii
import json

from connector.dataverse_local import query
from connector.dataverse_local.access import access_record
from connector.dataverse_local.column_security import hide_unreadable
from connector.dataverse_local.exchange import Exchange, Reply, json_reply
from connector.dataverse_local.expand import shape
from connector.dataverse_local.records import to_wire, wire_name
from connector.solution.model import ColumnType, Table

__all__ = ["read_property", "retrieve"]


def retrieve(ex: Exchange, table: Table, record_id: str) -> Reply:
    """`GET <set>(<id>)` with `$select` and `$expand`."""
    options = query.parse_query(ex.call.args, table, ex.schema)
    row = access_record(ex, "Read", table, record_id)
    etag = f'W/"{row.get("versionnumber")}"'
    conditional = ex.call.headers.get("If-None-Match")
    if conditional == etag and not options.expand and not ex.prefs.include_annotations:
        return Reply(304, b"", {"ETag": etag})
    record = {"@odata.context": ex.context_url(table, options.select, entity=True)}
    record.update(shape(ex, table, row, options.select, options.expand))
    headers = {"ETag": etag}
    if ex.prefs.include_annotations:
        headers["Preference-Applied"] = ex.annotations_applied()
    return json_reply(200, record, headers)


def read_property(ex: Exchange, table: Table, record_id: str, name: str, *, raw: bool) -> Reply:
    """`GET <set>(<id>)/<name>` as `{"value": ...}`, or with `raw` (`…/$value`) the bare value.

    An empty property answers 204; an image's `$value` is its bytes.
    """
    row = access_record(ex, "Read", table, record_id)
    column = table.columns[name]
    visible = hide_unreadable(ex, table, row)
    value = to_wire(ex.store, table, visible, select=[name], annotate=lambda _: False)
    wire = value.get(wire_name(column))
    if wire is None:
        return Reply(204)
    if raw:
        text = wire if isinstance(wire, str) else json.dumps(wire)
        if column.type == ColumnType.IMAGE:
            try:
                return Reply(
                    200, base64.b64decode(text), {"Content-Type": "application/octet-stream"}
                )
            except (binascii.Error, ValueError):
                pass
        return Reply(200, text.encode("utf-8"), {"Content-Type": "text/plain"})
    context = f"{ex.base_url}/$metadata#{table.entity_set}({record_id})/{wire_name(column)}"
    return json_reply(200, {"@odata.context": context, "value": wire})
