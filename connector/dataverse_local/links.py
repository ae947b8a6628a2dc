"""Links between records: N:N pairs in intersect tables and 1:N lookups set from the parent.

`associate` and `disassociate` make or remove one link seen from `table` through its
navigation property; `check_links` makes sure the records a payload binds to exist and
that the caller may append to them. Errors (`store.ApiError`): 403 for a missing
Append/AppendTo/Write privilege, 404 for a missing or unlinked target.
"""

from __future__ import annotations

from connector.dataverse_local.access import require
from connector.dataverse_local.exchange import Exchange
from connector.dataverse_local.records import Changes, Nav, not_found
from connector.dataverse_local.store import intersect_sides, quote
from connector.solution.model import ManyToMany, Table

__all__ = ["associate", "check_links", "disassociate"]


def associate(
    ex: Exchange, table: Table, record_id: str, nav: Nav, target: Table, target_id: str
) -> None:
    """Link `target_id` to `record_id` through `nav` (idempotent for N:N)."""
    if nav.kind == "many" and nav.many is not None:
        pairs, here, there = _intersect(ex, table, nav, nav.many)
        with ex.store.transaction() as db:
            db.execute(
                f"INSERT OR IGNORE INTO {pairs} ({here}, {there}) VALUES (?, ?)",
                (record_id, target_id),
            )
        return
    _set_parent(ex, nav, target, target_id, parent=(record_id, table.logical_name))


def disassociate(
    ex: Exchange, table: Table, record_id: str, nav: Nav, target: Table, target_id: str
) -> None:
    """Remove the link from `record_id` to `target_id` through `nav`."""
    if nav.kind == "many" and nav.many is not None:
        pairs, here, there = _intersect(ex, table, nav, nav.many)
        with ex.store.transaction() as db:
            db.execute(
                f"DELETE FROM {pairs} WHERE {here} = ? AND {there} = ?", (record_id, target_id)
            )
        return
    _set_parent(ex, nav, target, target_id, parent=None, linked_to=record_id)


def _intersect(ex: Exchange, table: Table, nav: Nav, many: ManyToMany) -> tuple[str, str, str]:
    """The quoted intersect table, this side's column and the other side's column."""
    here, there = intersect_sides(many, ex.schema, table=table, navigation=nav.name)
    return quote(many.intersect_entity), quote(here), quote(there)


def _set_parent(
    ex: Exchange,
    nav: Nav,
    target: Table,
    target_id: str,
    *,
    parent: tuple[str, str] | None,
    linked_to: str | None = None,
) -> None:
    """Point the 1:N lookup of `target_id` at `parent` (id, table), or clear it.

    With `linked_to`, the record must point at that id now (404 otherwise).
    """
    column = nav.relations[0].referencing_attribute
    child = ex.store.fetch(target, target_id)
    if child is None or (linked_to is not None and child.get(column) != linked_to):
        raise not_found(target, target_id)
    require(ex, "Write", target, child)
    parent_id, parent_table = parent if parent is not None else (None, None)
    ex.store.update(
        target,
        target_id,
        {
            column: parent_id,
            column + "__table": parent_table,
            "versionnumber": ex.store.next_version(),
        },
    )


def check_links(ex: Exchange, table: Table, changes: Changes) -> None:
    """The records `changes` binds to exist, and the caller may Append/AppendTo them."""
    if changes.bound or changes.associations:
        require(ex, "Append", table)
    targets = list(changes.bound.values()) + [(t, i) for _, t, i in changes.associations]
    for target, target_id in targets:
        if ex.store.fetch(target, target_id) is None:
            raise not_found(target, target_id)
        require(ex, "AppendTo", target)
