"""Column security: secured columns (`IsSecured=1`) and the field security profiles that open them.

A column the solution marks secured is closed to every caller except holders of the
System Administrator role and members (directly or through a team) of a field security
profile whose `FieldPermission` allows the action. As the real service does:

- **read**: a caller without read permission gets the column as `null` on retrieve, list,
  `$expand`, `return=representation` and single-property reads; the rest of the record is
  unchanged (no error);
- **create**: a body that sets a secured column without create permission is refused
  with 403 `0x8004F502` (AttributePrivilegeCreateIsMissing);
- **update**: a body that sets it without update permission is refused with 403
  `0x8004F507` (AttributePermissionUpdateIsMissingDuringUpdate); nothing is written.

Sources: Microsoft Learn "Column-level security" (System Administrators see every secured
column; `CanRead`/`CanUpdate`/`CanCreate` are 4 "Allowed" or 0 "Not Allowed") and
"Web service error codes" (the two codes above; both are among the 403s the Web API's
"Compose HTTP requests and handle errors" page lists).

Errors (`store.ApiError`): 403 with the codes above.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connector.dataverse_local.exchange import Exchange
from connector.dataverse_local.store import ApiError
from connector.solution.model import Table

__all__ = [
    "CREATE_MISSING_CODE",
    "UPDATE_MISSING_CODE",
    "check_secured_writes",
    "hide_unreadable",
    "unreadable_columns",
]

CREATE_MISSING_CODE = "0x8004F502"  # AttributePrivilegeCreateIsMissing
UPDATE_MISSING_CODE = "0x8004F507"  # AttributePermissionUpdateIsMissingDuringUpdate


def _allowed(ex: Exchange, table: Table, column: str, action: str) -> bool:
    if ex.caller.is_admin:
        return True
    for profile in ex.caller.profiles:
        for permission in profile.permissions:
            if permission.table == table.logical_name and permission.column == column:
                if getattr(permission, f"can_{action}"):
                    return True
    return False


def unreadable_columns(ex: Exchange, table: Table) -> frozenset[str]:
    """The secured columns of `table` the caller may not read (logical names)."""
    return frozenset(
        name
        for name, column in table.columns.items()
        if column.secured and not _allowed(ex, table, name, "read")
    )


def hide_unreadable(ex: Exchange, table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """`row` with the columns the caller may not read set to None (the stored row is kept)."""
    hidden = unreadable_columns(ex, table)
    if not hidden:
        return dict(row)
    return {name: (None if name in hidden else value) for name, value in row.items()}


def check_secured_writes(
    ex: Exchange, table: Table, names: Iterable[str], *, creating: bool
) -> None:
    """Raise 403 when the body sets a secured column the caller may not create/update."""
    action = "create" if creating else "update"
    for name in names:
        column = table.columns.get(name)
        if column is None or not column.secured or _allowed(ex, table, name, action):
            continue
        if creating:
            raise ApiError(
                403,
                CREATE_MISSING_CODE,
                "The user does not have create permissions to a secured field. The requested "
                f"operation could not be completed. (Field: {table.logical_name}.{name})",
            )
        raise ApiError(
            403,
            UPDATE_MISSING_CODE,
            "The user doesn't have AttributePrivilegeUpdate and not granted shared access for "
            f"a secured attribute during update operation (Field: {table.logical_name}.{name})",
        )
