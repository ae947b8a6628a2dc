"""The Dataverse schema as an import sees it: tables, columns, relationships, roles.

`connector.solution.reader` builds a `Schema` from `customizations.xml`; the embedded
Dataverse creates its SQLite tables, validates payloads, names navigation properties and
enforces privileges from it; `crmchat solution check` resolves references against it.
All names are logical names (lower case), except navigation properties, which keep the
casing Dataverse gives them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum

from connector.solution.layouts import Form, View

__all__ = [
    "AccessLevel",
    "Column",
    "ColumnType",
    "FieldPermission",
    "FieldSecurityProfile",
    "ManyToMany",
    "OneToMany",
    "Ownership",
    "Role",
    "Schema",
    "Table",
]


class ColumnType(StrEnum):
    """Attribute types, named as Dataverse's `AttributeType` in lower case."""

    STRING = "string"  # nvarchar: single line of text, max_length applies
    MEMO = "memo"  # multiple lines of text, max_length applies
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    DOUBLE = "double"
    MONEY = "money"
    BOOLEAN = "boolean"
    DATETIME = "datetime"  # stored and returned as UTC, "2025-01-01T10:00:00Z"
    PICKLIST = "picklist"  # choice; options give the labels
    STATE = "state"  # statecode
    STATUS = "status"  # statuscode
    LOOKUP = "lookup"  # single-valued reference; targets from the OneToMany relationships
    CUSTOMER = "customer"  # polymorphic lookup to account or contact
    OWNER = "owner"  # ownerid: systemuser or team
    UNIQUEIDENTIFIER = "uniqueidentifier"  # the primary key, or a plain GUID column
    IMAGE = "image"  # base64 in the JSON payload


class Ownership(StrEnum):
    USER = "user"  # UserOwned: has ownerid, privileges checked at the role's level
    ORGANIZATION = "organization"  # OrgOwned: no ownerid
    NONE = "none"  # intersect tables and the like


class AccessLevel(StrEnum):
    """A role privilege's depth, as `RolePrivilege/@level` writes it."""

    BASIC = "Basic"  # user: own records
    LOCAL = "Local"  # business unit
    DEEP = "Deep"  # business unit and child units
    GLOBAL = "Global"  # organization


@dataclass(frozen=True)
class Column:
    logical_name: str
    type: ColumnType
    max_length: int | None = None  # strings and memos
    required: bool = False  # ApplicationRequired / SystemRequired
    options: dict[int, str] = field(default_factory=dict)  # picklist/state/status labels
    min_value: float | None = None
    max_value: float | None = None
    display_name: str = ""
    # Only SystemRequired is enforced by the Web API; ApplicationRequired ("required" above)
    # is a form rule, and a POST without such a column still succeeds.
    system_required: bool = False
    valid_for_create: bool = True  # False: server-set (createdon, fullname, ticketnumber)
    valid_for_update: bool = True
    default_value: int | None = None  # picklist/boolean default an import declares
    # status columns: statuscode value -> the statecode value it belongs to
    state_of_status: dict[int, int] = field(default_factory=dict)
    # state columns: statecode value -> the statuscode it gets when none is given
    default_status: dict[int, int] = field(default_factory=dict)
    # IsSecured: column security; only a field security profile (or System Administrator)
    # lets a caller read, create or update it
    secured: bool = False


@dataclass(frozen=True)
class Table:
    logical_name: str  # "crmchat_agent"
    schema_name: str  # "crmchat_Agent"
    entity_set: str  # "crmchat_agents"
    primary_id: str  # "crmchat_agentid"; "activityid" for activities
    primary_name: str  # "crmchat_name"; "subject" for activities
    columns: dict[str, Column]
    ownership: Ownership = Ownership.USER
    is_activity: bool = False
    is_custom: bool = True
    display_name: str = ""
    # alternate key name -> its columns, e.g. {"crmchat_snippet_name": ("crmchat_name",)}
    alternate_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    has_notes: bool = False  # annotations can point at it (objectid_<table>)
    has_activities: bool = False  # activities can be regarding it (regardingobjectid_<table>_*)
    # Only GET: a table the platform fills itself (activitypointer, one row per activity).
    read_only: bool = False
    # Only GET on its entity set, yet stored: its rows are written through their parent's
    # create (activityparty, through `<activity>_activity_parties`).
    get_only: bool = False


@dataclass(frozen=True)
class OneToMany:
    """A lookup: `referencing_entity.referencing_attribute` points at `referenced_entity`.

    A polymorphic lookup (customerid, regardingobjectid, ownerid) is one of these per target.
    """

    schema_name: str  # "crmchat_widget_chat"
    referenced_entity: str  # the "one" side, e.g. "crmchat_widget"
    referencing_entity: str  # the "many" side, e.g. "crmchat_chat"
    referencing_attribute: str  # the lookup column, e.g. "crmchat_widgetid"
    # Single-valued navigation property on the referencing entity, used in
    # "<name>@odata.bind" and $expand, e.g. "crmchat_WidgetId" or "customerid_contact".
    referencing_navigation: str
    # Collection-valued navigation property on the referenced entity; Dataverse uses the
    # relationship's schema name.
    referenced_navigation: str


@dataclass(frozen=True)
class ManyToMany:
    schema_name: str  # "crmchat_agent_topic"; also the navigation property on both sides
    entity1: str
    entity2: str
    intersect_entity: str  # the SQLite table that holds the pairs
    entity1_navigation: str  # collection property on entity1 (Dataverse: the schema name)
    entity2_navigation: str


@dataclass(frozen=True)
class Role:
    id: str  # GUID, lower case, no braces
    name: str  # "CRM Chat Agent"
    # privilege name ("prvReadActivity", "prvReadcrmchat_Agent") -> depth
    privileges: dict[str, AccessLevel] = field(default_factory=dict)
    from_solution: bool = True  # False: a role of the platform (standard.xml)


@dataclass(frozen=True)
class FieldPermission:
    """What a field security profile allows on one secured column (each flag 0 or 4)."""

    table: str  # logical name, e.g. "crmchat_widget"
    column: str  # logical name, e.g. "crmchat_secret"
    can_read: bool = False
    can_update: bool = False
    can_create: bool = False


@dataclass(frozen=True)
class FieldSecurityProfile:
    id: str  # GUID, lower case, no braces
    name: str  # "CRM Chat Secrets"
    permissions: tuple[FieldPermission, ...] = ()


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table]  # by logical name
    one_to_many: tuple[OneToMany, ...] = ()
    many_to_many: tuple[ManyToMany, ...] = ()
    roles: tuple[Role, ...] = ()
    field_security_profiles: tuple[FieldSecurityProfile, ...] = ()
    forms: tuple[Form, ...] = ()
    views: tuple[View, ...] = ()

    def main_form(self, logical_name: str) -> Form | None:
        """The first main form of `logical_name` (the one a record opens in), or None."""
        for form in self.forms:
            if form.table == logical_name and form.type == "main":
                return form
        return None

    def view_of(self, logical_name: str, query_type: int) -> View | None:
        """The default view of `query_type` for `logical_name` (else the first), or None."""
        candidates = [
            v for v in self.views if v.table == logical_name and v.query_type == query_type
        ]
        defaults = [v for v in candidates if v.is_default]
        found = defaults or candidates
        return found[0] if found else None

    def table_for_set(self, entity_set: str) -> Table | None:
        """The table whose entity set name is `entity_set`, or None.

        Every request names its table by entity set, so the sets are indexed once
        (`_tables_by_set`); a hit is checked against `tables` and a miss looked up the
        long way, so a table added or replaced later is still found.
        """
        found = self._tables_by_set.get(entity_set)
        if found is not None and self.tables.get(found.logical_name) is found:
            return found
        for table in self.tables.values():
            if table.entity_set == entity_set:
                self.__dict__.pop("_tables_by_set", None)  # out of date: index again
                return table
        return None

    @functools.cached_property
    def _tables_by_set(self) -> dict[str, Table]:
        index: dict[str, Table] = {}
        for table in self.tables.values():
            index.setdefault(table.entity_set, table)  # the first, as the long way finds
        return index

    def lookups_of(self, logical_name: str) -> list[OneToMany]:
        """The relationships in which `logical_name` holds the lookup column."""
        return [r for r in self.one_to_many if r.referencing_entity == logical_name]

    def many_to_many_of(self, logical_name: str) -> list[ManyToMany]:
        """The N:N relationships `logical_name` takes part in."""
        return [r for r in self.many_to_many if logical_name in (r.entity1, r.entity2)]

    def role_named(self, name: str) -> Role | None:
        """The security role called `name` (as Dataverse compares: ignoring case), or None."""
        for role in self.roles:
            if role.name.casefold() == name.casefold():
                return role
        return None
