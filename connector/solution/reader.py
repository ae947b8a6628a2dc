"""Read `customizations.xml` into a `Schema`, the way a solution import builds tables.

Two files in the same `<ImportExportXml>` format feed one `Schema`:

- `solution/customizations.xml`: CRM Chat's tables, relationships and security roles
  (the core solution, `CRMChat`), and on top of it, where the organization has the
  Dynamics 365 apps, the second solution `solution/dynamics365/` (`CRMChatSales`, see
  "Layers" below);
- `connector/dataverse_local/standard.xml`: the standard tables of every Dataverse
  environment CRM Chat uses (systemuser, contact, account, annotation, ...), trimmed to the
  columns the project touches; and `standard_dynamics365.xml`, the tables the Dynamics 365
  Sales and Customer Service apps add (lead, incident, knowledgearticle), read too unless
  `load_schema(dynamics_apps=False)` stands in for an environment without those apps.

Neither file spells out what Dataverse adds on its own when a table is created, so the
reader adds it here, under the names a real organization uses:

- on every table: `createdon`, `modifiedon`, `createdby`, `modifiedby`, `versionnumber`,
  and (except business-owned system tables) `statecode`/`statuscode`;
- on user-owned tables: `ownerid` (systemuser or team), `owninguser`, `owningteam`,
  `owningbusinessunit`;
- on activity tables: the activitypointer columns (`activityid`, `subject`, `description`,
  `actualstart`, `actualend`, `actualdurationminutes`, `scheduledstart`, `scheduledend`,
  `scheduleddurationminutes`, `prioritycode`, `regardingobjectid`);
- the `activitypointer` table (`ACTIVITY_POINTER`), read-only, over every activity;
- the `activityparty` table (`ACTIVITY_PARTY`): GET only on its set, written through an
  activity's `<activity>_activity_parties` (deep insert); `partyid` over contact, lead,
  account and systemuser (`partyid_<table>`);
- the relationships behind those lookups: `lk_<t>_createdby`, `lk_<t>_modifiedby`,
  `owner_<t>` and `team_owner_<t>` (ownerid), `user_<t>`, `team_<t>`,
  `business_unit_<t>`; one `<target>_<activity>` per activity and table with
  `HasRelatedActivities` (navigation `regardingobjectid_<target>_<activity>`); one per
  table with `HasRelatedNotes` for `annotation.objectid` (navigation `objectid_<table>`).

A column or relationship the XML declares itself always wins over a synthesized one.

Layers: a solution imported on top of another (`load_schema(layers=...)`, folders holding
solution.xml and customizations.xml) is first checked against its manifest's
`MissingDependencies`: a required table the organization lacks fails the import with the
platform's error (0x8004801D, "The following solution cannot be imported: ... Some
dependencies are missing"). Then, as Microsoft's solution layering merges them: a table
the layer names that exists below is a shell and adds its columns; relationships, forms and
views add up; a role with the id of one below replaces it whole ("top wins": only apps,
forms and sitemaps merge). App modules are not part of the `Schema`.

Errors:

    ValueError
     └── SchemaError   the XML does not describe a usable schema: unreadable XML, an
                       unknown column type, a table without a primary name, a relationship
                       naming a table or column that does not exist, an unknown access level,
                       a field security profile naming a column that is missing or not
                       secured (a real import fails with AttributeNotSecured, 0x8004F508),
                       a form or view naming a column or relationship that does not exist
                       (`connector.solution.layouts`)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from connector.solution.layouts import Form, View, read_layouts, reference_problems
from connector.solution.model import (
    AccessLevel,
    Column,
    ColumnType,
    FieldPermission,
    FieldSecurityProfile,
    ManyToMany,
    OneToMany,
    Ownership,
    Role,
    Schema,
    Table,
)
from connector.solution.paths import (
    CUSTOMIZATIONS_XML,
    DYNAMICS365_SOLUTION_DIR,
    DYNAMICS365_XML,
    REPO_ROOT,
    SOLUTION_DIR,
    STANDARD_XML,
    WEBRESOURCES_DIR,
)
from connector.solution.privileges import privilege_problems

__all__ = [
    "ACTIVITY_PARTY",
    "ACTIVITY_POINTER",
    "CUSTOMIZATIONS_XML",
    "REPO_ROOT",
    "SOLUTION_DIR",
    "STANDARD_XML",
    "WEBRESOURCES_DIR",
    "SchemaError",
    "load_schema",
]

LANGUAGE_CODE = "1033"  # labels are read in English, the solution's base language

# customizations.xml <Type> -> ColumnType
_TYPES: dict[str, ColumnType] = {
    "nvarchar": ColumnType.STRING,
    "varchar": ColumnType.STRING,
    "nchar": ColumnType.STRING,
    "char": ColumnType.STRING,
    "ntext": ColumnType.MEMO,
    "text": ColumnType.MEMO,
    "int": ColumnType.INTEGER,
    "smallint": ColumnType.INTEGER,
    "tinyint": ColumnType.INTEGER,
    "bigint": ColumnType.BIGINT,
    "decimal": ColumnType.DECIMAL,
    "numeric": ColumnType.DECIMAL,
    "float": ColumnType.DOUBLE,
    "real": ColumnType.DOUBLE,
    "money": ColumnType.MONEY,
    "smallmoney": ColumnType.MONEY,
    "bit": ColumnType.BOOLEAN,
    "datetime": ColumnType.DATETIME,
    "smalldatetime": ColumnType.DATETIME,
    "picklist": ColumnType.PICKLIST,
    "state": ColumnType.STATE,
    "status": ColumnType.STATUS,
    "lookup": ColumnType.LOOKUP,
    "customer": ColumnType.CUSTOMER,
    "owner": ColumnType.OWNER,
    "primarykey": ColumnType.UNIQUEIDENTIFIER,
    "uniqueidentifier": ColumnType.UNIQUEIDENTIFIER,
    "image": ColumnType.IMAGE,
}

_OWNERSHIP: dict[str, Ownership] = {
    "UserOwned": Ownership.USER,
    "OrgOwned": Ownership.ORGANIZATION,
    "BusinessOwned": Ownership.ORGANIZATION,
    "None": Ownership.NONE,
}

_REFERENCING_ROLE = "1"  # RelationshipRoleType of the side that holds the lookup
_REFERENCED_ROLE = "0"


class SchemaError(ValueError):
    """The customizations XML does not describe a usable schema."""


def load_schema(
    customizations_xml: Path | None = None,
    *,
    verify_privileges: bool = True,
    dynamics_apps: bool = True,
    layers: tuple[Path, ...] | None = None,
) -> Schema:
    """The schema an import of `customizations_xml` plus the standard tables produces.

    `customizations_xml` defaults to `solution/customizations.xml` in the repository.
    `layers` are solution folders imported on top of it, in order; by default the second
    solution (`solution/dynamics365/`) when the organization has the Dynamics 365 apps and
    `customizations_xml` is the repository's, else none.
    With `dynamics_apps` false the organization is a plain Dataverse environment: it lacks
    the Dynamics 365 Sales and Customer Service tables and their privileges, and an import
    of a solution that names them fails on the missing dependency, as a real one does.
    As a real import does, it fails when a role grants a privilege the organization does
    not have (`connector.solution.privileges`); `verify_privileges=False` skips that, for
    `crmchat solution check`, which reports those names among its other findings.
    Results are cached by path and modification time, so repeated calls are cheap; the
    returned `Schema` is shared between callers and must not be mutated. Raises
    `SchemaError` when the files do not describe a usable schema and `OSError` when
    a file cannot be read.
    """
    path = (customizations_xml or CUSTOMIZATIONS_XML).resolve()
    if layers is None:
        layers = (DYNAMICS365_SOLUTION_DIR,) if dynamics_apps and not customizations_xml else ()
    folders = tuple(layer.resolve() for layer in layers)
    files = [path, STANDARD_XML, DYNAMICS365_XML]
    files += [folder / name for folder in folders for name in _LAYER_FILES]
    stamps = tuple((stat.st_mtime_ns, stat.st_size) for stat in (f.stat() for f in files))
    schema = _load(str(path), stamps, dynamics_apps, tuple(str(f) for f in folders))
    if verify_privileges:
        solution_roles = tuple(r for r in schema.roles if r.from_solution)
        problems = privilege_problems(schema, solution_roles, exact=False)
        if problems:
            raise SchemaError(f"{path}: the import fails: " + "; ".join(problems))
    return schema


@lru_cache(maxsize=8)
def _load(
    path: str, _stamps: tuple[tuple[int, int], ...], dynamics_apps: bool, layers: tuple[str, ...]
) -> Schema:
    standard = _parse_file(STANDARD_XML, custom=False)
    if dynamics_apps:
        standard = _joined(standard, _parse_file(DYNAMICS365_XML, custom=False))
    # A standard table the solution names (its command bar) is a shell of that table.
    solution = _parse_file(Path(path), custom=True, shells=standard.tables)
    for layer in layers:
        solution = _layered(solution, standard, Path(layer))
    try:
        return _build(standard, solution)
    except SchemaError as exc:
        if dynamics_apps:
            raise
        # Say why a table is missing: the solution depends on an app this one lacks.
        raise SchemaError(
            f"{exc} (this organization has no Dynamics 365 Sales / Customer Service tables)"
        ) from exc


@dataclass
class _Document:
    """What one customizations file declares, before the import adds anything."""

    tables: dict[str, Table] = field(default_factory=dict)
    one_to_many: list[OneToMany] = field(default_factory=list)
    many_to_many: list[ManyToMany] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)
    profiles: list[FieldSecurityProfile] = field(default_factory=list)
    business_owned: set[str] = field(default_factory=set)
    forms: list[Form] = field(default_factory=list)
    views: list[View] = field(default_factory=list)


def _joined(first: _Document, second: _Document) -> _Document:
    """Two files of standard tables as one (they declare different tables)."""
    clash = first.tables.keys() & second.tables.keys()
    if clash:
        raise SchemaError(f"standard tables declared twice: {sorted(clash)}")
    return _Document(
        tables=first.tables | second.tables,
        one_to_many=first.one_to_many + second.one_to_many,
        many_to_many=first.many_to_many + second.many_to_many,
        roles=first.roles + second.roles,
        profiles=first.profiles + second.profiles,
        business_owned=first.business_owned | second.business_owned,
        forms=first.forms + second.forms,
        views=first.views + second.views,
    )


_LAYER_FILES = ("solution.xml", "customizations.xml")
# The platform's error for an import whose required components the organization lacks
# (ImportSolution result 0x8004801D, as import logs show it).
MISSING_DEPENDENCIES = (
    "the import fails (0x8004801D): The following solution cannot be imported: {solution}. "
    "Some dependencies are missing: {missing}"
)
_ROOT_TYPE_ENTITY = "1"


def _layered(below: _Document, standard: _Document, folder: Path) -> _Document:
    """`below` with the solution in `folder` imported on top of it."""
    manifest = _parse_root(folder / "solution.xml")
    have = standard.tables.keys() | below.tables.keys()
    missing = []
    for dependency in manifest.iterfind("SolutionManifest/MissingDependencies/MissingDependency"):
        required = dependency.find("Required")
        if required is None or required.get("type") != _ROOT_TYPE_ENTITY:
            continue
        table = required.get("schemaName", "").lower()
        if table not in have:
            dependent = dependency.find("Dependent")
            by = None if dependent is None else dependent.get("displayName")
            missing.append(
                f"{table} ({required.get('displayName') or table}, solution "
                f"{required.get('solution') or '?'})" + (f" required by {by}" if by else "")
            )
    if missing:
        raise SchemaError(
            MISSING_DEPENDENCIES.format(
                solution=(manifest.findtext("SolutionManifest/UniqueName") or folder.name).strip(),
                missing="; ".join(missing),
            )
        )
    layer = _parse_file(
        folder / "customizations.xml", custom=True, shells=standard.tables | below.tables
    )
    replaced = {role.id for role in layer.roles}
    return _Document(
        tables=below.tables | layer.tables,
        one_to_many=below.one_to_many + layer.one_to_many,
        many_to_many=below.many_to_many + layer.many_to_many,
        roles=[r for r in below.roles if r.id not in replaced] + layer.roles,
        profiles=below.profiles + layer.profiles,
        business_owned=below.business_owned | layer.business_owned,
        forms=below.forms + layer.forms,
        views=below.views + layer.views,
    )


def _parse_root(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise SchemaError(f"{path}: not well-formed XML: {exc}") from exc


def _parse_file(path: Path, *, custom: bool, shells: dict[str, Table] | None = None) -> _Document:
    """What `path` declares; an entity named in `shells` only adds its columns (and its
    forms, views, ribbon) to that table."""
    root = _parse_root(path)
    document = _Document()
    for entity in root.iterfind("Entities/Entity"):
        if entity.find("EntityInfo") is None and entity.find("RibbonDiffXml") is not None:
            # A platform table carried for its command bar only (connector/solution/ribbon.py),
            # as a solution exports a table added without its metadata: no schema change.
            continue
        shell = (shells or {}).get((_text(entity, "Name") or "").lower())
        if shell is not None:
            added = [
                _parse_attribute(a, table=shell.logical_name, source=path)[0]
                for a in entity.iterfind("EntityInfo/entity/attributes/attribute")
            ]
            if added:  # else only its ribbon: the table is the one below, unchanged
                columns = shell.columns | {c.logical_name: c for c in added}
                document.tables[shell.logical_name] = replace(shell, columns=columns)
            forms, views = read_layouts(entity)
            document.forms += forms
            document.views += views
            continue
        table, business_owned = _parse_entity(entity, custom=custom, source=path)
        if table.logical_name in document.tables:
            raise SchemaError(f"{path}: table {table.logical_name} is declared twice")
        document.tables[table.logical_name] = table
        forms, views = read_layouts(entity)
        document.forms += forms
        document.views += views
        if business_owned:
            document.business_owned.add(table.logical_name)
    for relationship in root.iterfind("EntityRelationships/EntityRelationship"):
        kind = _text(relationship, "EntityRelationshipType")
        if kind == "OneToMany":
            document.one_to_many.append(_parse_one_to_many(relationship, source=path))
        elif kind == "ManyToMany":
            document.many_to_many.append(_parse_many_to_many(relationship, source=path))
        else:
            raise SchemaError(f"{path}: relationship {relationship.get('Name')}: type {kind!r}")
    for role in root.iterfind("Roles/Role"):
        document.roles.append(_parse_role(role, source=path, custom=custom))
    for profile in root.iterfind("FieldSecurityProfiles/FieldSecurityProfile"):
        document.profiles.append(_parse_profile(profile))
    return document


def _text(element: ET.Element, path: str) -> str | None:
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _label(element: ET.Element | None, path: str) -> str:
    """The English label under `element` (`description` attribute), else the first one."""
    if element is None:
        return ""
    labels = element.findall(path)
    for label in labels:
        if label.get("languagecode") == LANGUAGE_CODE:
            return label.get("description", "")
    return labels[0].get("description", "") if labels else ""


def _parse_entity(entity: ET.Element, *, custom: bool, source: Path) -> tuple[Table, bool]:
    schema_name = _text(entity, "Name")
    info = entity.find("EntityInfo/entity")
    if not schema_name or info is None:
        raise SchemaError(f"{source}: an <Entity> without <Name> or <EntityInfo>")
    logical = schema_name.lower()
    is_activity = _text(info, "IsActivity") == "1"
    ownership_mask = _text(info, "OwnershipTypeMask") or "UserOwned"
    if ownership_mask not in _OWNERSHIP:
        raise SchemaError(f"{source}: {logical}: OwnershipTypeMask {ownership_mask!r}")

    columns: dict[str, Column] = {}
    primary_id = "activityid" if is_activity else ""
    primary_name = "subject" if is_activity else ""
    for attribute in info.iterfind("attributes/attribute"):
        column, xml_type = _parse_attribute(attribute, table=logical, source=source)
        columns[column.logical_name] = column
        if xml_type == "primarykey" and not is_activity:
            primary_id = column.logical_name
        mask = (_text(attribute, "DisplayMask") or "").split("|")
        if "PrimaryName" in mask and not is_activity:
            primary_name = column.logical_name
    if not primary_id:
        primary_id = f"{logical}id"
    if not primary_name:
        raise SchemaError(f"{source}: {logical}: no attribute has DisplayMask PrimaryName")
    if primary_name not in columns and not is_activity:
        raise SchemaError(f"{source}: {logical}: primary name {primary_name} is not a column")

    keys: dict[str, tuple[str, ...]] = {}
    for key in info.iterfind("EntityKeys/EntityKey"):
        key_name = _text(key, "LogicalName") or _text(key, "Name") or ""
        attributes = tuple(
            (name.text or "").strip().lower()
            for name in key.iterfind("EntityKeyAttributes/AttributeName")
        )
        keys[key_name.lower()] = attributes

    table = Table(
        logical_name=logical,
        schema_name=schema_name,
        entity_set=_text(info, "EntitySetName") or f"{logical}s",
        primary_id=primary_id,
        primary_name=primary_name,
        columns=columns,
        ownership=_OWNERSHIP[ownership_mask],
        is_activity=is_activity,
        is_custom=custom,
        display_name=_label(info, "LocalizedNames/LocalizedName"),
        alternate_keys=keys,
        has_notes=_text(info, "HasRelatedNotes") == "True",
        has_activities=_text(info, "HasRelatedActivities") == "True",
    )
    return table, ownership_mask == "BusinessOwned"


def _parse_attribute(attribute: ET.Element, *, table: str, source: Path) -> tuple[Column, str]:
    physical = attribute.get("PhysicalName", "")
    logical = (_text(attribute, "LogicalName") or _text(attribute, "Name") or physical).lower()
    xml_type = (_text(attribute, "Type") or "").lower()
    if xml_type not in _TYPES:
        raise SchemaError(f"{source}: {table}.{logical}: unknown <Type> {xml_type!r}")
    required_level = (_text(attribute, "RequiredLevel") or "none").lower()
    options: dict[int, str] = {}
    state_of_status: dict[int, int] = {}
    default_status: dict[int, int] = {}
    optionset = attribute.find("optionset")
    if optionset is not None:
        for option in optionset.iterfind("options/option"):
            options[int(option.get("value", "0"))] = _label(option, "labels/label")
        for state in optionset.iterfind("states/state"):
            value = int(state.get("value", "0"))
            options[value] = _label(state, "labels/label")
            default_status[value] = int(state.get("defaultstatus", "0"))
        for status in optionset.iterfind("statuses/status"):
            value = int(status.get("value", "0"))
            options[value] = _label(status, "labels/label")
            state_of_status[value] = int(status.get("state", "0"))
    default = _text(attribute, "AppDefaultValue")
    column = Column(
        logical_name=logical,
        type=_TYPES[xml_type],
        max_length=_int_or_none(_text(attribute, "MaxLength")),
        required=required_level in ("required", "systemrequired", "applicationrequired"),
        options=options,
        min_value=_float_or_none(_text(attribute, "MinValue")),
        max_value=_float_or_none(_text(attribute, "MaxValue")),
        display_name=_label(attribute, "displaynames/displayname"),
        system_required=required_level == "systemrequired",
        valid_for_create=_text(attribute, "ValidForCreateApi") != "0",
        valid_for_update=_text(attribute, "ValidForUpdateApi") != "0",
        default_value=int(default) if default not in (None, "", "-1") else None,
        state_of_status=state_of_status,
        default_status=default_status,
        secured=_text(attribute, "IsSecured") == "1",
    )
    return column, xml_type


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text else None


def _float_or_none(text: str | None) -> float | None:
    return float(text) if text else None


def _navigations(relationship: ET.Element) -> dict[str, list[str]]:
    """RelationshipRoleType -> the navigation property names its roles declare."""
    found: dict[str, list[str]] = {}
    for role in relationship.iterfind("EntityRelationshipRoles/EntityRelationshipRole"):
        name = _text(role, "NavigationPropertyName")
        if name:
            found.setdefault(_text(role, "RelationshipRoleType") or "0", []).append(name)
    return found


def _parse_one_to_many(relationship: ET.Element, *, source: Path) -> OneToMany:
    name = relationship.get("Name", "")
    referencing = _text(relationship, "ReferencingEntityName")
    referenced = _text(relationship, "ReferencedEntityName")
    attribute = _text(relationship, "ReferencingAttributeName")
    if not (name and referencing and referenced and attribute):
        raise SchemaError(
            f"{source}: OneToMany {name!r} needs Name, ReferencingEntityName, "
            "ReferencedEntityName and ReferencingAttributeName"
        )
    navigations = _navigations(relationship)
    # Without roles Dataverse names the lookup side after the lookup's schema name and the
    # collection side after the relationship.
    return OneToMany(
        schema_name=name,
        referenced_entity=referenced.lower(),
        referencing_entity=referencing.lower(),
        referencing_attribute=attribute.lower(),
        referencing_navigation=navigations.get(_REFERENCING_ROLE, [attribute])[0],
        referenced_navigation=navigations.get(_REFERENCED_ROLE, [name])[0],
    )


def _parse_many_to_many(relationship: ET.Element, *, source: Path) -> ManyToMany:
    name = relationship.get("Name", "")
    first = _text(relationship, "FirstEntityName")
    second = _text(relationship, "SecondEntityName")
    if not (name and first and second):
        raise SchemaError(f"{source}: ManyToMany {name!r} needs FirstEntityName, SecondEntityName")
    navigations = [
        _text(role, "NavigationPropertyName") or name
        for role in relationship.iterfind("EntityRelationshipRoles/EntityRelationshipRole")
    ]
    navigations += [name] * (2 - len(navigations))
    return ManyToMany(
        schema_name=name,
        entity1=first.lower(),
        entity2=second.lower(),
        intersect_entity=(_text(relationship, "IntersectEntityName") or name).lower(),
        entity1_navigation=navigations[0],
        entity2_navigation=navigations[1],
    )


def _parse_role(role: ET.Element, *, source: Path, custom: bool) -> Role:
    role_id = role.get("id", "").strip("{}").lower()
    privileges: dict[str, AccessLevel] = {}
    for privilege in role.iterfind("RolePrivileges/RolePrivilege"):
        level = privilege.get("level", "")
        try:
            privileges[privilege.get("name", "")] = AccessLevel(level)
        except ValueError:
            raise SchemaError(
                f"{source}: role {role.get('name')}: access level {level!r}"
            ) from None
    return Role(id=role_id, name=role.get("name", ""), privileges=privileges, from_solution=custom)


# --- what the import adds ---------------------------------------------------------------

_ACTIVE_STATES = Column(
    "statecode",
    ColumnType.STATE,
    required=True,
    system_required=True,
    options={0: "Active", 1: "Inactive"},
    default_status={0: 1, 1: 2},
    display_name="Status",
)
_ACTIVE_STATUSES = Column(
    "statuscode",
    ColumnType.STATUS,
    options={1: "Active", 2: "Inactive"},
    state_of_status={1: 0, 2: 1},
    display_name="Status Reason",
)
_ACTIVITY_STATES = Column(
    "statecode",
    ColumnType.STATE,
    required=True,
    system_required=True,
    options={0: "Open", 1: "Completed", 2: "Canceled"},
    default_status={0: 1, 1: 2, 2: 3},
    display_name="Activity Status",
)
_ACTIVITY_STATUSES = Column(
    "statuscode",
    ColumnType.STATUS,
    options={1: "Open", 2: "Completed", 3: "Canceled", 4: "Scheduled"},
    state_of_status={1: 0, 2: 1, 3: 2, 4: 0},
    display_name="Status Reason",
)


def _server_set(name: str, kind: ColumnType, display: str) -> Column:
    return Column(name, kind, display_name=display, valid_for_create=False, valid_for_update=False)


_AUDIT_COLUMNS = (
    _server_set("createdon", ColumnType.DATETIME, "Created On"),
    _server_set("modifiedon", ColumnType.DATETIME, "Modified On"),
    _server_set("createdby", ColumnType.LOOKUP, "Created By"),
    _server_set("modifiedby", ColumnType.LOOKUP, "Modified By"),
    _server_set("versionnumber", ColumnType.BIGINT, "Version Number"),
)
_OWNER_COLUMNS = (
    Column("ownerid", ColumnType.OWNER, required=True, display_name="Owner"),
    _server_set("owninguser", ColumnType.LOOKUP, "Owning User"),
    _server_set("owningteam", ColumnType.LOOKUP, "Owning Team"),
    _server_set("owningbusinessunit", ColumnType.LOOKUP, "Owning Business Unit"),
)
_ACTIVITY_COLUMNS = (
    Column("subject", ColumnType.STRING, max_length=400, required=True, display_name="Subject"),
    Column("description", ColumnType.MEMO, max_length=1_048_576, display_name="Description"),
    Column("actualstart", ColumnType.DATETIME, display_name="Actual Start"),
    Column("actualend", ColumnType.DATETIME, display_name="Actual End"),
    Column(
        "actualdurationminutes",
        ColumnType.INTEGER,
        min_value=0,
        max_value=2_147_483_647,
        display_name="Actual Duration",
    ),
    Column("scheduledstart", ColumnType.DATETIME, display_name="Start Date"),
    Column("scheduledend", ColumnType.DATETIME, display_name="Due Date"),
    Column(
        "scheduleddurationminutes",
        ColumnType.INTEGER,
        min_value=0,
        max_value=2_147_483_647,
        display_name="Scheduled Duration",
    ),
    Column(
        "prioritycode",
        ColumnType.PICKLIST,
        options={0: "Low", 1: "Normal", 2: "High"},
        default_value=1,
        display_name="Priority",
    ),
    Column("regardingobjectid", ColumnType.LOOKUP, display_name="Regarding"),
)


# Every organization has it: one row per activity of any type, same activityid, with
# `activitytypecode` naming the activity's table; the Web API offers it for GET only.
ACTIVITY_POINTER = Table(
    logical_name="activitypointer",
    schema_name="ActivityPointer",
    entity_set="activitypointers",
    primary_id="activityid",
    primary_name="subject",
    columns={
        "activitytypecode": Column(
            "activitytypecode",
            ColumnType.STRING,
            max_length=64,
            display_name="Activity Type",
            valid_for_create=False,
            valid_for_update=False,
        )
    },
    is_activity=True,
    is_custom=False,
    display_name="Activity",
    read_only=True,
)


# The people an activity involves, one row per person and role (Microsoft Learn,
# "ActivityParty table/entity reference"; "Activity party types" for the masks). Its set
# answers GET only; rows are written in the activity's create, through
# `<activity>_activity_parties`, with `partyid_<table>@odata.bind`.
PARTICIPATION_TYPES = {
    1: "Sender",
    2: "To Recipient",
    3: "CC Recipient",
    4: "BCC Recipient",
    5: "Required attendee",
    6: "Optional attendee",
    7: "Organizer",
    8: "Regarding",
    9: "Owner",
    10: "Resource",
    11: "Customer",
}
# The tables a CRM Chat party can be: the customer (contact, lead, account), the agents.
PARTY_TABLES = {
    "contact": "contact_activity_parties",
    "lead": "lead_activity_parties",
    "account": "account_activity_parties",
    "systemuser": "system_user_activity_parties",
}
ACTIVITY_PARTY = Table(
    logical_name="activityparty",
    schema_name="ActivityParty",
    entity_set="activityparties",
    primary_id="activitypartyid",
    primary_name="partyidname",
    columns={
        "activityid": Column(
            "activityid", ColumnType.LOOKUP, required=True, display_name="Activity"
        ),
        "partyid": Column("partyid", ColumnType.LOOKUP, display_name="Party"),
        "partyidname": _server_set("partyidname", ColumnType.STRING, "Party Name"),
        "participationtypemask": Column(
            "participationtypemask",
            ColumnType.PICKLIST,
            required=True,
            options=PARTICIPATION_TYPES,
            display_name="Participation Type",
        ),
        "addressused": Column(
            "addressused", ColumnType.STRING, max_length=320, display_name="Address"
        ),
    },
    ownership=Ownership.NONE,
    is_custom=False,
    display_name="Activity Party",
    get_only=True,
)


def _with_import_columns(table: Table, *, business_owned: bool) -> Table:
    """`table` with the columns an import adds; declared columns keep their definition."""
    added: list[Column] = []
    if table.primary_id not in table.columns:
        added.append(
            Column(
                table.primary_id,
                ColumnType.UNIQUEIDENTIFIER,
                system_required=True,
                valid_for_update=False,
                display_name=table.display_name,
            )
        )
    merged: dict[str, Column] = {c.logical_name: c for c in added}
    merged.update(table.columns)
    extra: list[Column] = []
    if table.is_activity:
        extra += _ACTIVITY_COLUMNS
    if not business_owned:
        if table.is_activity:
            extra += (_ACTIVITY_STATES, _ACTIVITY_STATUSES)
        else:
            extra += (_ACTIVE_STATES, _ACTIVE_STATUSES)
    if table.ownership == Ownership.USER:
        extra += _OWNER_COLUMNS
    extra += _AUDIT_COLUMNS
    for column in extra:
        merged.setdefault(column.logical_name, column)
    return replace(table, columns=merged)


def _import_relationships(tables: dict[str, Table]) -> list[OneToMany]:
    """The relationships an import creates for system and polymorphic lookups."""
    found: list[OneToMany] = []

    def add(name: str, referenced: str, referencing: str, column: str, navigation: str) -> None:
        if referenced in tables and column in tables[referencing].columns:
            found.append(OneToMany(name, referenced, referencing, column, navigation, name))

    for logical, table in tables.items():
        add(f"lk_{logical}_createdby", "systemuser", logical, "createdby", "createdby")
        add(f"lk_{logical}_modifiedby", "systemuser", logical, "modifiedby", "modifiedby")
        if table.ownership == Ownership.USER:
            # ownerid is one polymorphic lookup over systemuser and team; Dataverse binds
            # both through the single navigation property "ownerid".
            add(f"owner_{logical}", "systemuser", logical, "ownerid", "ownerid")
            add(f"team_owner_{logical}", "team", logical, "ownerid", "ownerid")
            add(f"user_{logical}", "systemuser", logical, "owninguser", "owninguser")
            add(f"team_{logical}", "team", logical, "owningteam", "owningteam")
            add(
                f"business_unit_{logical}",
                "businessunit",
                logical,
                "owningbusinessunit",
                "owningbusinessunit",
            )
    for activity in (t for t in tables.values() if t.is_activity):
        for target in (t for t in tables.values() if t.has_activities):
            name = f"{target.logical_name}_{activity.logical_name}"
            navigation = f"regardingobjectid_{target.logical_name}_{activity.logical_name}"
            add(name, target.logical_name, activity.logical_name, "regardingobjectid", navigation)
    if ACTIVITY_PARTY.logical_name in tables:
        for activity in (t for t in tables.values() if t.is_activity and not t.read_only):
            name = f"{activity.logical_name}_activity_parties"
            navigation = f"activityid_{activity.logical_name}"
            add(name, activity.logical_name, "activityparty", "activityid", navigation)
        for party, name in PARTY_TABLES.items():
            add(name, party, "activityparty", "partyid", f"partyid_{party}")
    if "annotation" in tables:
        for target in (t for t in tables.values() if t.has_notes):
            # Standard tables call it "Contact_Annotation"; custom ones "<table>_Annotations".
            name = (
                f"{target.logical_name}_Annotations"
                if target.is_custom
                else f"{target.schema_name}_Annotation"
            )
            add(
                name,
                target.logical_name,
                "annotation",
                "objectid",
                f"objectid_{target.logical_name}",
            )
    return found


# FieldPermission CanRead/CanUpdate/CanCreate: 0 "Not Allowed", 4 "Allowed"
_PERMISSION_ALLOWED = "4"


def _parse_profile(profile: ET.Element) -> FieldSecurityProfile:
    permissions = tuple(
        FieldPermission(
            table=(_text(permission, "EntityName") or "").lower(),
            column=(_text(permission, "AttributeName") or "").lower(),
            can_read=_text(permission, "CanRead") == _PERMISSION_ALLOWED,
            can_update=_text(permission, "CanUpdate") == _PERMISSION_ALLOWED,
            can_create=_text(permission, "CanCreate") == _PERMISSION_ALLOWED,
        )
        for permission in profile.iterfind("FieldPermissions/FieldPermission")
    )
    return FieldSecurityProfile(
        id=profile.get("fieldsecurityprofileid", "").strip("{}").lower(),
        name=profile.get("name", ""),
        permissions=permissions,
    )


def _build(standard: _Document, solution: _Document) -> Schema:
    clash = standard.tables.keys() & solution.tables.keys()
    if clash:
        raise SchemaError(f"the solution redefines standard tables: {sorted(clash)}")
    business_owned = standard.business_owned | solution.business_owned
    declared_tables = (
        standard.tables
        | solution.tables
        | {ACTIVITY_POINTER.logical_name: ACTIVITY_POINTER}
        | {ACTIVITY_PARTY.logical_name: ACTIVITY_PARTY}
    )
    tables = {
        # An activity party has no state of its own (it follows its activity's).
        name: _with_import_columns(table, business_owned=name in business_owned or table.get_only)
        for name, table in declared_tables.items()
    }
    declared = standard.one_to_many + solution.one_to_many
    taken = {(r.referencing_entity, r.referencing_attribute, r.referenced_entity) for r in declared}
    one_to_many = declared + [
        r
        for r in _import_relationships(tables)
        if (r.referencing_entity, r.referencing_attribute, r.referenced_entity) not in taken
    ]
    for relation in one_to_many:
        for entity in (relation.referenced_entity, relation.referencing_entity):
            if entity not in tables:
                raise SchemaError(f"relationship {relation.schema_name}: no table {entity}")
        referencing = tables[relation.referencing_entity]
        if relation.referencing_attribute not in referencing.columns:
            raise SchemaError(
                f"relationship {relation.schema_name}: no column "
                f"{referencing.logical_name}.{relation.referencing_attribute}"
            )
    many_to_many = standard.many_to_many + solution.many_to_many
    for many in many_to_many:
        for entity in (many.entity1, many.entity2):
            if entity not in tables:
                raise SchemaError(f"relationship {many.schema_name}: no table {entity}")
        if many.intersect_entity in tables:
            raise SchemaError(
                f"relationship {many.schema_name}: intersect {many.intersect_entity} is a table"
            )
    names = Counter([r.schema_name for r in one_to_many] + [r.schema_name for r in many_to_many])
    duplicates = sorted(name for name, count in names.items() if count > 1)
    if duplicates:
        raise SchemaError(f"relationship names used twice: {duplicates}")
    schema = Schema(
        tables=tables,
        one_to_many=tuple(one_to_many),
        many_to_many=tuple(many_to_many),
        roles=tuple(standard.roles + solution.roles),
        field_security_profiles=tuple(
            _checked_profiles(standard.profiles + solution.profiles, tables)
        ),
        forms=tuple(standard.forms + solution.forms),
        views=tuple(standard.views + solution.views),
    )
    # Forms and views depend on the columns and relationships they name: an import whose
    # form or view names a missing one fails on the missing dependency.
    broken = reference_problems(schema, schema.forms, schema.views)
    if broken:
        raise SchemaError("the import fails: " + "; ".join(broken))
    return schema


def _checked_profiles(
    profiles: list[FieldSecurityProfile], tables: dict[str, Table]
) -> list[FieldSecurityProfile]:
    """The profiles, once each permission names a secured column (as an import requires)."""
    for profile in profiles:
        for permission in profile.permissions:
            column = tables.get(permission.table, None)
            found = column.columns.get(permission.column) if column is not None else None
            if found is None:
                raise SchemaError(
                    f"field security profile {profile.name}: no column "
                    f"{permission.table}.{permission.column}"
                )
            if not found.secured:
                raise SchemaError(
                    f"field security profile {profile.name}: "
                    f"{permission.table}.{permission.column} is not secured (IsSecured=0)"
                )
    return profiles
