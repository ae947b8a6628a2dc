"""System users, business units and roles of the embedded Dataverse.

`ensure_seeded` gives a fresh store what an environment has before anyone imports a
solution: the root business unit, the System Administrator role, one role record per
solution role (same GUID as in `customizations.xml`) and the administrator user
`admin@crmchat.local` holding System Administrator, and the solution's environment variable
definitions (`environment_variables`). `find_user` resolves the name given
to `crmchat dataverse token --user NAME`; `user_roles` is what privilege checks read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connector.dataverse_local.caller_cache import install_security_triggers
from connector.dataverse_local.security import SYSTEM_ADMINISTRATOR_ROLE_NAME
from connector.dataverse_local.store import (
    LOOKUP_TYPES,
    Store,
    intersect_columns,
    new_guid,
    quote,
    utc_now,
)
from connector.solution.environment_variables import read_environment_variables
from connector.solution.model import FieldSecurityProfile, Role, Schema

__all__ = [
    "ADMIN_DOMAIN_NAME",
    "ADMIN_FULL_NAME",
    "ADMIN_USER_ID",
    "ROOT_BUSINESS_UNIT_ID",
    "SYSTEM_ADMINISTRATOR_ROLE_ID",
    "SYSTEM_ADMINISTRATOR_ROLE_NAME",
    "Link",
    "add_user",
    "assign_field_security_profile",
    "assign_role",
    "business_unit_of",
    "ensure_seeded",
    "find_user",
    "insert_known",
    "link_between",
    "user_business_unit",
    "user_profiles",
    "user_roles",
]

# Fixed ids, so tokens and demo data stay valid when a data folder is recreated.
SYSTEM_ADMINISTRATOR_ROLE_ID = "627090ff-40a3-4053-8790-584edc5be201"
ROOT_BUSINESS_UNIT_ID = "4f6b1c1e-8d0e-4d6b-9a3c-2c7c1a000001"
ADMIN_USER_ID = "4f6b1c1e-8d0e-4d6b-9a3c-2c7c1a00ad01"
ADMIN_DOMAIN_NAME = "admin@crmchat.local"
ADMIN_FULL_NAME = "CRM Chat Admin"
ROOT_BUSINESS_UNIT_NAME = "CRM Chat"
# What a request's caller is read from besides the pairing tables: the user's row (enabled,
# business unit), role records (a role unknown to the solution is known by its name) and
# the teams and profiles the pairings point at.
CALLER_TABLES = ("systemuser", "role", "team", "fieldsecurityprofile")


@dataclass(frozen=True)
class Link:
    """An N:N pairing table: `table` holds (`left`, `right`) id pairs."""

    table: str
    left: str
    right: str


def link_between(schema: Schema, first: str, second: str, *, fallback: str) -> Link:
    """The intersect table pairing `first` and `second` records, columns in that order.

    Uses the schema's N:N relationship when there is one, else the `fallback` table
    (created on demand) so security works with a minimal schema.
    """
    for relation in schema.many_to_many:
        ends = (relation.entity1, relation.entity2)
        if set(ends) != {first, second} or first == second:
            continue
        if relation.entity1 not in schema.tables or relation.entity2 not in schema.tables:
            continue
        one, two = intersect_columns(relation, schema)
        if relation.entity1 == first:
            return Link(relation.intersect_entity, one, two)
        return Link(relation.intersect_entity, two, one)
    left = schema.tables[first].primary_id if first in schema.tables else first + "id"
    right = schema.tables[second].primary_id if second in schema.tables else second + "id"
    return Link(fallback, left, right)


def _user_roles_link(schema: Schema) -> Link:
    return link_between(schema, "systemuser", "role", fallback="systemuserroles")


def _team_roles_link(schema: Schema) -> Link:
    return link_between(schema, "team", "role", fallback="teamroles")


def _team_members_link(schema: Schema) -> Link:
    return link_between(schema, "team", "systemuser", fallback="teammembership")


def _user_profiles_link(schema: Schema) -> Link:
    return link_between(schema, "systemuser", "fieldsecurityprofile", fallback="systemuserprofiles")


def _team_profiles_link(schema: Schema) -> Link:
    return link_between(schema, "team", "fieldsecurityprofile", fallback="teamprofiles")


def _ensure_link(store: Store, link: Link) -> None:
    with store.transaction() as db:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(link.table)} ({quote(link.left)} TEXT NOT NULL, "
            f"{quote(link.right)} TEXT NOT NULL, PRIMARY KEY ({quote(link.left)}, "
            f"{quote(link.right)}))"
        )


def insert_known(store: Store, logical_name: str, values: dict[str, object]) -> None:
    """Insert `values` into a standard table, keeping only the columns it has."""
    table = store.schema.tables.get(logical_name)
    if table is None:
        return
    if store.fetch(table, str(values[table.primary_id])) is not None:
        return
    now = utc_now()
    defaults: dict[str, object] = {"createdon": now, "modifiedon": now, "statecode": 0}
    merged = {**defaults, **values}
    kept: dict[str, object] = {}
    for name, value in merged.items():
        column = table.columns.get(name.removesuffix("__table"))
        if name == table.primary_id or name in table.columns:
            kept[name] = value
        elif column is not None and column.type in LOOKUP_TYPES:
            kept[name] = value
    kept["versionnumber"] = store.next_version()
    store.insert(table, kept)


def ensure_seeded(store: Store) -> None:
    """Create the root business unit, the roles and the administrator if missing.

    Idempotent; run on every start so roles added by a newer solution appear. Every table a
    request's caller is made of counts its changes (`caller_cache.py`).
    """
    links = (
        _user_roles_link(store.schema),
        _team_roles_link(store.schema),
        _team_members_link(store.schema),
        _user_profiles_link(store.schema),
        _team_profiles_link(store.schema),
    )
    for link in links:
        _ensure_link(store, link)
    install_security_triggers(
        store,
        [*CALLER_TABLES, *(link.table for link in links)],
    )
    with store.transaction():
        insert_known(
            store,
            "businessunit",
            {"businessunitid": ROOT_BUSINESS_UNIT_ID, "name": ROOT_BUSINESS_UNIT_NAME},
        )
        roles = [(SYSTEM_ADMINISTRATOR_ROLE_ID, SYSTEM_ADMINISTRATOR_ROLE_NAME)]
        roles += [(role.id, role.name) for role in store.schema.roles]
        for role_id, name in roles:
            insert_known(
                store,
                "role",
                {
                    "roleid": role_id,
                    "name": name,
                    "businessunitid": ROOT_BUSINESS_UNIT_ID,
                    "businessunitid__table": "businessunit",
                },
            )
        for profile in store.schema.field_security_profiles:
            insert_known(
                store,
                "fieldsecurityprofile",
                {"fieldsecurityprofileid": profile.id, "name": profile.name},
            )
        add_user(
            store,
            domain_name=ADMIN_DOMAIN_NAME,
            first_name="CRM Chat",
            last_name="Admin",
            user_id=ADMIN_USER_ID,
            role_ids=[SYSTEM_ADMINISTRATOR_ROLE_ID],
        )
    # Imported here, not at the top: that module builds on this one's ids.
    from connector.dataverse_local.environment_variables import import_definitions

    import_definitions(store, read_environment_variables())


def add_user(
    store: Store,
    *,
    domain_name: str,
    first_name: str = "",
    last_name: str = "",
    user_id: str | None = None,
    role_ids: list[str] | None = None,
    business_unit_id: str = ROOT_BUSINESS_UNIT_ID,
) -> str:
    """Create a system user (if its id is new) holding `role_ids`; returns its id."""
    user_id = user_id or new_guid()
    full_name = f"{first_name} {last_name}".strip() or domain_name
    with store.transaction():
        insert_known(
            store,
            "systemuser",
            {
                "systemuserid": user_id,
                "domainname": domain_name,
                "internalemailaddress": domain_name,
                "firstname": first_name,
                "lastname": last_name,
                "fullname": full_name,
                "isdisabled": 0,
                "businessunitid": business_unit_id,
                "businessunitid__table": "businessunit",
            },
        )
        for role_id in role_ids or []:
            assign_role(store, user_id, role_id)
    return user_id


def assign_role(store: Store, user_id: str, role_id: str) -> None:
    """Give a user a role (the `systemuserroles_association` pairing)."""
    link = _user_roles_link(store.schema)
    _ensure_link(store, link)
    with store.transaction() as db:
        db.execute(
            f"INSERT OR IGNORE INTO {quote(link.table)} ({quote(link.left)}, {quote(link.right)})"
            " VALUES (?, ?)",
            (user_id, role_id),
        )


def assign_field_security_profile(store: Store, user_id: str, profile_id: str) -> None:
    """Make a user a member of a field security profile (`systemuserprofiles_association`)."""
    link = _user_profiles_link(store.schema)
    _ensure_link(store, link)
    with store.transaction() as db:
        db.execute(
            f"INSERT OR IGNORE INTO {quote(link.table)} ({quote(link.left)}, {quote(link.right)})"
            " VALUES (?, ?)",
            (user_id, profile_id.strip("{}").lower()),
        )


def user_profiles(store: Store, user_id: str) -> list[FieldSecurityProfile]:
    """The solution's field security profiles a user holds directly and through teams."""
    ids = _held_ids(
        store, _user_profiles_link(store.schema), _team_profiles_link(store.schema), user_id
    )
    return [p for p in store.schema.field_security_profiles if p.id in ids]


def _held_ids(store: Store, users: Link, teams: Link, user_id: str) -> set[str]:
    """The ids (roles, profiles) `user_id` holds through `users` directly and through the
    `teams` link of every team they are a member of."""
    members = _team_members_link(store.schema)
    ids = {
        str(row[0])
        for row in store.query(
            f"SELECT {quote(users.right)} FROM {quote(users.table)} WHERE {quote(users.left)} = ?",
            (user_id,),
        )
    }
    ids |= {
        str(row[0])
        for row in store.query(
            f"SELECT t.{quote(teams.right)} FROM {quote(teams.table)} AS t "
            f"JOIN {quote(members.table)} AS m ON m.{quote(members.left)} = "
            f"t.{quote(teams.left)} WHERE m.{quote(members.right)} = ?",
            (user_id,),
        )
    }
    return ids


def find_user(store: Store, name: str) -> str | None:
    """The id of the user whose domainname, domainname before '@', or fullname is `name`.

    Case-insensitive; None when nobody matches.
    """
    wanted = name.strip().lower()
    table = store.schema.tables.get("systemuser")
    if table is None or not wanted:
        return None
    columns = [c for c in ("domainname", "fullname", "internalemailaddress") if c in table.columns]
    if not columns:
        return None
    select = ", ".join(quote(c) for c in columns)
    rows = store.query(f"SELECT {quote(table.primary_id)}, {select} FROM {quote('systemuser')}")
    for row in rows:
        for column in columns:
            value = row[column]
            if not isinstance(value, str) or not value:
                continue
            lowered = value.lower()
            if lowered == wanted or (column != "fullname" and lowered.split("@")[0] == wanted):
                return str(row[0])
    return None


def user_business_unit(store: Store, user_id: str) -> str | None:
    """The business unit of a user, or None when the user does not exist."""
    table = store.schema.tables.get("systemuser")
    if table is None:
        return ROOT_BUSINESS_UNIT_ID if user_id == ADMIN_USER_ID else None
    row = store.fetch(table, user_id)
    return None if row is None else business_unit_of(row)


def business_unit_of(user: Mapping[str, object]) -> str:
    """The business unit of a stored systemuser row (the root one when it names none)."""
    return str(user.get("businessunitid") or ROOT_BUSINESS_UNIT_ID)


def user_roles(store: Store, user_id: str) -> list[Role]:
    """The roles a user holds directly and through teams, with the schema's privileges.

    A role record unknown to the schema (created through the API) carries no privileges;
    System Administrator is returned by name and is all-powerful for the caller.
    """
    ids = _held_ids(store, _user_roles_link(store.schema), _team_roles_link(store.schema), user_id)
    by_id = {role.id: role for role in store.schema.roles}
    roles: list[Role] = []
    for role_id in sorted(ids):
        if role_id == SYSTEM_ADMINISTRATOR_ROLE_ID:
            roles.append(Role(id=role_id, name=SYSTEM_ADMINISTRATOR_ROLE_NAME))
        elif role_id in by_id:
            roles.append(by_id[role_id])
        else:
            roles.append(Role(id=role_id, name=_role_name(store, role_id)))
    return roles


def _role_name(store: Store, role_id: str) -> str:
    table = store.schema.tables.get("role")
    row = store.fetch(table, role_id) if table is not None else None
    return str(row.get("name") or "") if row else ""
