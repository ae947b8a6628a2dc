"""Privilege names as Dataverse spells them, and which names exist at all.

A role in `customizations.xml` grants privileges by name (`RolePrivilege/@name`). The
names that exist are the platform's own (`standard_privileges.txt`, with its sources in
`docs/solution.md`) plus the ones Dataverse creates for each custom table:
`prv<Action><SchemaName>` (`prvReadcrmchat_Agent`), Assign and Share only for user-owned
tables. A custom *activity* gets no privileges of its own: like every activity it is
governed by `prv<Action>Activity`. Standard tables go by their privilege entity name,
which is the schema name except where the platform kept an old name (`systemuser` is
`User`, `annotation` is `Note`).

Dataverse looks privileges up by name ignoring case (its SQL collation is case
insensitive), so the import and the enforcement compare with `casefold`; `crmchat
solution check` also asks for the exact spelling real exports use.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from connector.solution.model import Ownership, Role, Schema, Table

__all__ = [
    "PRIVILEGE_ACTIONS",
    "STANDARD_PRIVILEGES_TXT",
    "existing_privileges",
    "privilege_entity",
    "privilege_name",
    "privilege_problems",
    "standard_privileges",
]

PRIVILEGE_ACTIONS = (
    "Create",
    "Read",
    "Write",
    "Delete",
    "Append",
    "AppendTo",
    "Assign",
    "Share",
)
STANDARD_PRIVILEGES_TXT = Path(__file__).with_name("standard_privileges.txt")
# Standard tables whose privileges keep a name other than their schema name.
# An activity party has no privileges of its own: its activity's (Activity) govern it.
# Nor has an environment variable value: its definition's govern it (real exported roles
# grant prvReadEnvironmentVariableDefinition only; docs/solution.md).
_RENAMED_PRIVILEGE_ENTITIES = {
    "systemuser": "User",
    "annotation": "Note",
    "activityparty": "Activity",
    "environmentvariablevalue": "EnvironmentVariableDefinition",
}
_ACTIVITY = "Activity"
# Tables of the Dynamics 365 Sales and Customer Service apps: their privileges exist only
# in an organization that has the tables (standard_dynamics365.xml).
_APP_TABLE_PRIVILEGE_ENTITIES = {
    "lead": "Lead",
    "incident": "Incident",
    "knowledgearticle": "KnowledgeArticle",
}
# Only user-owned tables can be assigned or shared.
_OWNER_ACTIONS = ("Assign", "Share")


@lru_cache(maxsize=1)
def standard_privileges() -> frozenset[str]:
    """The platform privilege names of `standard_privileges.txt`, as spelled there."""
    lines = STANDARD_PRIVILEGES_TXT.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def privilege_entity(table: Table) -> str:
    """The name privileges of `table` are built on: `Activity` for every activity."""
    if table.is_activity:
        return _ACTIVITY
    if not table.is_custom:
        return _RENAMED_PRIVILEGE_ENTITIES.get(table.logical_name, table.schema_name)
    return table.schema_name


def privilege_name(action: str, table: Table) -> str:
    """The privilege Dataverse checks for `action` on `table` (`prvReadActivity` for a chat).

    Raises ValueError for an action not in PRIVILEGE_ACTIONS.
    """
    if action not in PRIVILEGE_ACTIONS:
        raise ValueError(f"unknown privilege action {action!r}")
    return f"prv{action}{privilege_entity(table)}"


def existing_privileges(schema: Schema) -> dict[str, str]:
    """Every privilege name the schema's organization has: casefolded name -> spelling."""
    absent = {
        f"prv{action}{entity}"
        for table, entity in _APP_TABLE_PRIVILEGE_ENTITIES.items()
        if table not in schema.tables
        for action in PRIVILEGE_ACTIONS
    }
    names = set(standard_privileges()) - absent
    for table in schema.tables.values():
        if not table.is_custom or table.is_activity:
            continue
        for action in PRIVILEGE_ACTIONS:
            if action in _OWNER_ACTIONS and table.ownership is not Ownership.USER:
                continue
            names.add(privilege_name(action, table))
    return {name.casefold(): name for name in names}


def privilege_problems(schema: Schema, roles: tuple[Role, ...], *, exact: bool) -> list[str]:
    """Each privilege of `roles` the organization does not have, as one sentence.

    With `exact`, a name that exists only under another spelling is a problem too.
    """
    existing = existing_privileges(schema)
    problems: list[str] = []
    for role in roles:
        for name in role.privileges:
            spelled = existing.get(name.casefold())
            if spelled is None:
                hint = _hint(schema, name)
                problems.append(f"role {role.name}: privilege {name} does not exist{hint}")
            elif exact and spelled != name:
                problems.append(f"role {role.name}: privilege {name} is spelled {spelled}")
    return problems


def _hint(schema: Schema, name: str) -> str:
    """Why a wrong name is wrong, when it names a table of the schema."""
    folded = name.casefold()
    for table in schema.tables.values():
        for action in PRIVILEGE_ACTIONS:
            if folded != f"prv{action}{table.logical_name}".casefold():
                continue
            if table.is_activity:
                return f" ({table.logical_name} is an activity: use prv{action}{_ACTIVITY})"
            if action in _OWNER_ACTIONS and table.ownership is not Ownership.USER:
                return f" ({table.logical_name} is not user-owned, so it has no {action})"
            return f" (use {privilege_name(action, table)})"
    return ""
