"""Privilege enforcement: what the caller may do to a table and to one record of it.

`require` answers the caller's depth for an action (`Read`, `Write`, `Create`, `Delete`,
`Append`, `AppendTo`, `Assign`) or raises; `visibility` is the same rule as a SQL `WHERE`
fragment for lists; `access_record` fetches a record with the check. Roles count directly
and through teams; Basic depth reaches the caller's own (and own teams') records,
Local/Deep the business unit; System Administrator passes everything.

Errors (`store.ApiError`): 403 `0x80042f09` without any role, 403 `0x80040220` for a
missing privilege or a record out of reach, 404 for a missing record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.dataverse_local.exchange import Exchange
from connector.dataverse_local.records import not_found
from connector.dataverse_local.security import (
    NO_ROLES_CODE,
    PRIVILEGE_DENIED_CODE,
    access_denied_message,
    can_touch,
    effective_depth,
    missing_privilege_message,
    no_roles_message,
    privilege_name,
)
from connector.dataverse_local.store import ApiError, quote
from connector.dataverse_local.users import link_between
from connector.solution.model import AccessLevel, Ownership, Table

__all__ = ["access_record", "can_read", "fetch_existing", "require", "visibility"]


def require(
    ex: Exchange, action: str, table: Table, row: Mapping[str, Any] | None = None
) -> AccessLevel:
    """The caller's depth for `action` on `table` (and `row`); 403 when it falls short."""
    caller = ex.caller
    if caller.is_admin:
        return AccessLevel.GLOBAL
    if not caller.roles:
        raise ApiError(403, NO_ROLES_CODE, no_roles_message(caller.user_id))
    privilege = privilege_name(action, table)
    depth = effective_depth(caller.roles, privilege)
    if depth is None:
        raise ApiError(
            403,
            PRIVILEGE_DENIED_CODE,
            missing_privilege_message(
                user_id=caller.user_id,
                privilege=privilege,
                table=table,
                role_count=len(caller.roles),
                business_unit_id=caller.business_unit,
            ),
        )
    if row is not None and not _reaches(ex, depth, table, row):
        raise ApiError(
            403,
            PRIVILEGE_DENIED_CODE,
            access_denied_message(
                action=action,
                table=table,
                record_id=str(row.get(table.primary_id)),
                owner_id=_owner(table, row),
                user_id=caller.user_id,
                owner_business_unit=row.get("owningbusinessunit"),
            ),
        )
    return depth


def can_read(ex: Exchange, table: Table, row: Mapping[str, Any]) -> bool:
    """Whether the caller may read `row` (no error: expanded records the caller may not
    see are left out, as Dataverse does)."""
    try:
        require(ex, "Read", table, row)
    except ApiError:
        return False
    return True


def fetch_existing(ex: Exchange, action: str, table: Table, record_id: str) -> dict[str, Any]:
    """The stored row of `record_id`; when it is missing, the 403 for `action` on the table
    comes before the 404, so a caller without the privilege learns nothing."""
    row = ex.store.fetch(table, record_id)
    if row is None:
        require(ex, action, table)
        raise not_found(table, record_id)
    return row


def access_record(ex: Exchange, action: str, table: Table, record_id: str) -> dict[str, Any]:
    """The stored row of `record_id` once the caller may `action` it; raises 403/404."""
    row = fetch_existing(ex, action, table, record_id)
    require(ex, action, table, row)
    return row


def visibility(ex: Exchange, table: Table, alias: str) -> tuple[str, list[Any]]:
    """A WHERE fragment limiting `table` to the records the caller may read."""
    depth = require(ex, "Read", table)
    if depth == AccessLevel.GLOBAL or table.ownership != Ownership.USER:
        return "", []
    if "ownerid" not in table.columns:
        return "", []
    user_id = ex.caller.user_id
    owner = f"{alias}.{quote('ownerid')}"
    link = link_between(ex.schema, "team", "systemuser", fallback="teammembership")
    teams = (
        f"{owner} IN (SELECT {quote(link.left)} FROM {quote(link.table)} "
        f"WHERE {quote(link.right)} = ?)"
    )
    if depth == AccessLevel.BASIC:
        return f"({owner} = ? OR {teams})", [user_id, user_id]
    unit = f"{alias}.{quote('owningbusinessunit')}"
    return (
        f"({owner} = ? OR {teams} OR {unit} = ?)",
        [user_id, user_id, ex.caller.business_unit],
    )


def _owner(table: Table, row: Mapping[str, Any]) -> str | None:
    if table.ownership != Ownership.USER or "ownerid" not in table.columns:
        return None
    owner = row.get("ownerid")
    return str(owner) if owner else None


def _reaches(ex: Exchange, depth: AccessLevel, table: Table, row: Mapping[str, Any]) -> bool:
    owner = _owner(table, row)
    if owner is not None and row.get("ownerid__table") == "team":
        if _in_team(ex, owner):
            return True
    unit = row.get("owningbusinessunit")
    return can_touch(
        depth,
        owner_id=owner,
        user_id=ex.caller.user_id,
        owner_business_unit=str(unit) if unit else None,
        user_business_unit=ex.caller.business_unit,
    )


def _in_team(ex: Exchange, team_id: str) -> bool:
    link = link_between(ex.schema, "team", "systemuser", fallback="teammembership")
    rows = ex.store.query(
        f"SELECT 1 FROM {quote(link.table)} WHERE {quote(link.left)} = ? "
        f"AND {quote(link.right)} = ?",
        (team_id, ex.caller.user_id),
    )
    return bool(rows)
