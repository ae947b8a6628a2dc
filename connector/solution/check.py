"""Check the solution source before it is packed: XSD, files and references.

`check_solution` returns human-readable problems (an empty list means the solution is
fine). It never raises for a problem in the solution itself; a missing schema folder, a
file that is not XML or a schema the reader rejects are problems like any other. It checks:

- customizations.xml against Microsoft's CustomizationsSolution.xsd (9.0.0.2090, patched);
- every listed web resource maps to an existing file of the right type, and every file
  under webresources/ that could be a web resource is listed;
- sitemap `Entity` and `Privilege Entity` name known tables; `$webresource:` names are
  listed web resources;
- app module components, role maps and icon resolve, the app includes every table a page
  opens (the sitemap's, the console's regarding records), and every mapped role grants
  prvReadAppModule (without it the app stays hidden from the role's users);
- role privileges exist in the platform, spelled as real exports spell them
  (`connector.solution.privileges`: the chat, an activity, uses the Activity privileges);
- the environment variable definitions are readable, carry the publisher prefix, include
  `crmchat_ServiceUrl` (a String with an https default) and are type-380 root components
  (`connector.solution.environment_variables`);
- ribbon buttons name their commands and labels, commands run a function their listed
  library defines (`connector.solution.ribbon`);
- relationships name existing tables and columns (through `load_schema`), and every
  custom lookup has a relationship;
- solution.xml root components resolve, and every table, role, sitemap and app module
  of customizations.xml is a root component;
- custom names carry the publisher prefix and custom choice values its option prefix;
- system charts, dashboards and field security profiles (`check_reports`);
- the core imports into an environment without the Dynamics 365 apps (no lead, incident,
  knowledgearticle), and the second solution in `dynamics365/` imports on top of it
  (`connector.solution.check_layers`);
- every custom table of the app has a main form and the public, Advanced Find, Associated,
  Quick Find and Lookup views; forms and views name only existing columns, and subgrids
  existing relationships (the latter through `load_schema`, as an import fails on them).

The XSD is built once per process (it takes about 0.6 s); pass `schemas_dir` or set
`CRMCHAT_SCHEMAS_DIR` to use another copy.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import get_args

import xmlschema

from connector import __version__
from connector.crm.tables import RegardingTable
from connector.solution.check_layers import layer_problems
from connector.solution.check_reports import dashboard_ids, report_problems
from connector.solution.environment_variables import (
    ROOT_COMPONENT_ENVIRONMENT_VARIABLE,
    EnvironmentVariableError,
    environment_variable_problems,
    read_environment_variables,
)
from connector.solution.layouts import coverage_problems, read_layouts
from connector.solution.model import ColumnType, Schema
from connector.solution.pack import (
    WEBRESOURCE_PREFIX,
    WebResource,
    read_web_resources,
    web_resource_file,
)
from connector.solution.paths import DYNAMICS365_SOLUTION_DIR, SOLUTION_DIR, WEBRESOURCES_DIR
from connector.solution.privileges import privilege_problems
from connector.solution.reader import SchemaError, load_schema
from connector.solution.ribbon import ribbon_problems

__all__ = [
    "DEFAULT_SCHEMAS_DIR",
    "SCHEMAS_DIR_ENV",
    "WEB_RESOURCE_TYPES",
    "check_solution",
    "default_schemas_dir",
]

SCHEMAS_DIR_ENV = "CRMCHAT_SCHEMAS_DIR"
# Vendored inside the package (see schemas/README.md for their origin), so a lone clone and
# an installed wheel both have them.
DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas" / "dataverse-9.0"
CUSTOMIZATIONS_XSD = "CustomizationsSolution.xsd"
MAX_XSD_ERRORS = 50  # past this many, one broken element repeats itself; say so instead

# File extension -> WebResourceType (the values Dataverse uses).
# Folders under webresources/ that only the local service serves, never Dataverse: the
# stand-in for the model-driven app and its demo website.
LOCAL_ONLY_DIRS = frozenset({"standin"})
WEB_RESOURCE_TYPES: dict[str, int] = {
    ".htm": 1,
    ".html": 1,
    ".css": 2,
    ".js": 3,
    ".xml": 4,
    ".png": 5,
    ".jpg": 6,
    ".jpeg": 6,
    ".gif": 7,
    ".xap": 8,
    ".xsl": 9,
    ".xslt": 9,
    ".ico": 10,
    ".svg": 11,
    ".resx": 12,
}
# Icon every app module may use without shipping one (Dataverse's default app icon).
DEFAULT_APP_ICON_ID = "953b9fac-1e5e-e611-80d6-00155ded156f"
_READ_APP_MODULE = "prvReadAppModule"
_WEBRESOURCE_REF = re.compile(r"\$webresource:([^\s?#\"']+)")
_VERSION = re.compile(r"^\d+(\.\d+){1,3}$")
_ROOT_TYPE_ENTITY, _ROOT_TYPE_ROLE, _ROOT_TYPE_WEB_RESOURCE = "1", "20", "61"
_ROOT_TYPE_SITEMAP, _ROOT_TYPE_APP_MODULE = "62", "80"
_ROOT_TYPE_DASHBOARD, _ROOT_TYPE_FIELD_SECURITY_PROFILE = "60", "70"
_ROOT_TYPE_ENVIRONMENT_VARIABLE = ROOT_COMPONENT_ENVIRONMENT_VARIABLE
_LOOKUPS = (ColumnType.LOOKUP, ColumnType.CUSTOMER)


def default_schemas_dir() -> Path:
    """`$CRMCHAT_SCHEMAS_DIR` when set, else the vendored `schemas/dataverse-9.0`."""
    configured = os.environ.get(SCHEMAS_DIR_ENV)
    return Path(configured) if configured else DEFAULT_SCHEMAS_DIR


def check_solution(
    *,
    solution_dir: Path = SOLUTION_DIR,
    webresources_dir: Path = WEBRESOURCES_DIR,
    schemas_dir: Path | None = None,
) -> list[str]:
    """Problems found in the solution source; an empty list means it is fine."""
    problems: list[str] = []
    customizations_path = solution_dir / "customizations.xml"
    customizations = _parse(customizations_path, problems)
    manifest = _parse(solution_dir / "solution.xml", problems)
    if customizations is None:
        return problems
    schemas = schemas_dir or default_schemas_dir()
    problems += _xsd_problems(customizations_path, schemas)

    schema: Schema | None = None
    try:
        # The core must import into any Dataverse environment: check it against one
        # without the Dynamics 365 apps (what needs them is the second solution's).
        schema = load_schema(customizations_path, verify_privileges=False, dynamics_apps=False)
    except SchemaError as exc:
        problems.append(f"customizations.xml: {exc}")
    tables = set(schema.tables) if schema is not None else _declared_tables(customizations)
    prefix = "crmchat"
    option_prefix: int | None = None
    if manifest is not None:
        prefix = (manifest.findtext("SolutionManifest/Publisher/CustomizationPrefix") or "").strip()
        option_text = manifest.findtext("SolutionManifest/Publisher/CustomizationOptionValuePrefix")
        option_prefix = int(option_text) if option_text and option_text.strip().isdigit() else None

    resources = read_web_resources(customizations)
    problems += _web_resource_problems(resources, webresources_dir)
    problems += _naming_problems(customizations, prefix=prefix, option_prefix=option_prefix)
    if schema is not None:
        problems += _lookup_problems(schema)
    problems += _role_problems(customizations, schema)
    problems += _sitemap_problems(customizations, tables, resources)
    problems += _app_module_problems(customizations, tables, resources)
    problems += _layout_problems(customizations, prefix=prefix)
    problems += report_problems(customizations, schema, schemas)
    problems += [
        f"customizations.xml: {problem}"
        for problem in ribbon_problems(
            customizations, {r.name: web_resource_file(r.name, webresources_dir) for r in resources}
        )
    ]
    problems += environment_variable_problems(solution_dir, prefix=prefix)
    if manifest is not None:
        problems += _manifest_problems(manifest, customizations, resources, solution_dir)
    layer_dir = solution_dir / DYNAMICS365_SOLUTION_DIR.name
    if layer_dir.is_dir():
        # A missing XSD is reported once, above.
        problems += layer_problems(
            layer_dir,
            solution_dir,
            lambda path: [p for p in _xsd_problems(path, schemas) if not p.startswith("schemas:")],
        )
    return problems


def _parse(path: Path, problems: list[str]) -> ET.Element | None:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        problems.append(f"{path.name}: not well-formed XML: {exc}")
    except OSError as exc:
        problems.append(f"{path.name}: cannot read {path}: {exc.strerror or exc}")
    return None


@lru_cache(maxsize=2)
def _xsd(path: str) -> xmlschema.XMLSchema10:
    # Building the schema set takes ~0.6 s; every check in a process shares one.
    return xmlschema.XMLSchema10(path)


def _xsd_problems(customizations_path: Path, schemas_dir: Path) -> list[str]:
    xsd_path = schemas_dir / CUSTOMIZATIONS_XSD
    if not xsd_path.is_file():
        return [
            f"schemas: {xsd_path} not found; set {SCHEMAS_DIR_ENV} to the folder holding "
            f"{CUSTOMIZATIONS_XSD} (the XSD check was skipped)"
        ]
    try:
        schema = _xsd(str(xsd_path.resolve()))
    except (xmlschema.XMLSchemaException, OSError) as exc:
        return [f"schemas: cannot load {xsd_path}: {exc}"]
    problems: list[str] = []
    for error in schema.iter_errors(str(customizations_path)):
        if len(problems) == MAX_XSD_ERRORS:
            problems.append(f"customizations.xml: more XSD errors after the first {MAX_XSD_ERRORS}")
            break
        where = getattr(error, "path", None) or "?"
        problems.append(f"customizations.xml: XSD: {where}: {error.reason or error.message}")
    return problems


def _declared_tables(customizations: ET.Element) -> set[str]:
    return {
        (entity.findtext("Name") or "").strip().lower()
        for entity in customizations.iterfind("Entities/Entity")
    }


def _web_resource_problems(resources: list[WebResource], webresources_dir: Path) -> list[str]:
    problems: list[str] = []
    for label, values in (("name", [r.name for r in resources]), ("id", [r.id for r in resources])):
        for value, count in Counter(values).items():
            if count > 1:
                problems.append(
                    f"customizations.xml: web resource {label} {value} is used {count} times"
                )
    listed: set[Path] = set()
    for resource in resources:
        source = web_resource_file(resource.name, webresources_dir)
        if source is None:
            problems.append(
                f"customizations.xml: web resource {resource.name!r}: the name must be "
                f"{WEBRESOURCE_PREFIX}<path under webresources/>"
            )
            continue
        listed.add(source.resolve())
        if not source.is_file():
            problems.append(
                f"customizations.xml: web resource {resource.name}: file {source} does not exist"
            )
        expected = WEB_RESOURCE_TYPES.get(source.suffix.lower())
        if expected is None:
            problems.append(
                f"customizations.xml: web resource {resource.name}: "
                f"{source.suffix or 'no extension'} is not a web resource file type"
            )
        elif resource.type != expected:
            problems.append(
                f"customizations.xml: web resource {resource.name}: WebResourceType "
                f"{resource.type}, but a {source.suffix} file is type {expected}"
            )
    if webresources_dir.is_dir():
        for path in sorted(webresources_dir.rglob("*")):
            relative = path.relative_to(webresources_dir)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            if relative.parts[0] in LOCAL_ONLY_DIRS:
                continue
            if path.suffix.lower() in WEB_RESOURCE_TYPES and path.resolve() not in listed:
                problems.append(
                    f"webresources/{relative.as_posix()}: not listed in customizations.xml "
                    f"(add a <WebResource> named {WEBRESOURCE_PREFIX}{relative.as_posix()})"
                )
    return problems


def _naming_problems(
    customizations: ET.Element, *, prefix: str, option_prefix: int | None
) -> list[str]:
    problems: list[str] = []
    for entity in customizations.iterfind("Entities/Entity"):
        table = (entity.findtext("Name") or "").strip().lower()
        if entity.find("EntityInfo") is None:
            continue  # a shell of a standard table (its command bar only): Microsoft's name
        if not table.startswith(f"{prefix}_"):
            problems.append(f"customizations.xml: table {table} lacks the prefix {prefix}_")
        for attribute in entity.iterfind("EntityInfo/entity/attributes/attribute"):
            if (attribute.findtext("IsCustomField") or "").strip() != "1":
                continue
            column = (attribute.findtext("LogicalName") or "").strip()
            if not column.startswith(f"{prefix}_"):
                problems.append(
                    f"customizations.xml: column {table}.{column} lacks the prefix {prefix}_"
                )
            if option_prefix is None or (attribute.findtext("Type") or "").strip() != "picklist":
                continue
            low = option_prefix * 10_000  # custom choice values are prefix * 10000 + n
            for option in attribute.iterfind("optionset/options/option"):
                value = int(option.get("value", "0"))
                if not low <= value < low + 10_000:
                    problems.append(
                        f"customizations.xml: {table}.{column} option {value} is outside "
                        f"{low}..{low + 9_999} (CustomizationOptionValuePrefix {option_prefix})"
                    )
    return problems


def _lookup_problems(schema: Schema) -> list[str]:
    problems: list[str] = []
    for table in (t for t in schema.tables.values() if t.is_custom):
        targets = {r.referencing_attribute for r in schema.lookups_of(table.logical_name)}
        for column in table.columns.values():
            if column.type in _LOOKUPS and column.logical_name not in targets:
                problems.append(
                    f"customizations.xml: lookup {table.logical_name}.{column.logical_name} "
                    "has no relationship naming its target"
                )
    return problems


def _role_problems(customizations: ET.Element, schema: Schema | None) -> list[str]:
    problems: list[str] = []
    ids = Counter(
        (role.get("id") or "").strip("{}").lower() for role in customizations.iterfind("Roles/Role")
    )
    problems += [
        f"customizations.xml: role id {i} is used {n} times" for i, n in ids.items() if n > 1
    ]
    for role in customizations.iterfind("Roles/Role"):
        name = role.get("name", "")
        seen = Counter(p.get("name", "") for p in role.iterfind("RolePrivileges/RolePrivilege"))
        for privilege, count in seen.items():
            if count > 1:
                problems.append(
                    f"customizations.xml: role {name}: {privilege} is listed {count} times"
                )
    if schema is not None:
        mine = tuple(role for role in schema.roles if role.from_solution)
        problems += [
            f"customizations.xml: {problem}"
            for problem in privilege_problems(schema, mine, exact=True)
        ]
    return problems


def _sitemap_problems(
    customizations: ET.Element, tables: set[str], resources: list[WebResource]
) -> list[str]:
    problems: list[str] = []
    names = {r.name for r in resources}
    for sitemap in customizations.iterfind("AppModuleSiteMaps/AppModuleSiteMap"):
        unique = (sitemap.findtext("SiteMapUniqueName") or "").strip()
        ids = Counter(e.get("Id") for e in sitemap.iter() if e.get("Id"))
        for element_id, count in ids.items():
            if count > 1:
                problems.append(f"sitemap {unique}: Id {element_id} is used {count} times")
        parents = {child: parent for parent in sitemap.iter() for child in parent}
        for element in sitemap.iter():
            where = _describe(element, parents)
            entity = element.get("Entity")
            if entity is not None and entity not in tables:
                problems.append(f"sitemap {unique}: {where} names unknown table {entity}")
            for attribute, value in element.attrib.items():
                for reference in _WEBRESOURCE_REF.findall(value):
                    if reference not in names:
                        problems.append(
                            f"sitemap {unique}: {where} {attribute} names web resource "
                            f"{reference}, which customizations.xml does not list"
                        )
    return problems


def _describe(element: ET.Element, parents: dict[ET.Element, ET.Element]) -> str:
    """`SubArea sub_settings`; an element without Id (Privilege) goes by its parent's."""
    if element.get("Id"):
        return f"{element.tag} {element.get('Id')}"
    parent = parents.get(element)
    return f"{_describe(parent, parents)} {element.tag}" if parent is not None else element.tag


def _layout_problems(customizations: ET.Element, *, prefix: str) -> list[str]:
    """Every custom table an app shows needs its main form and five views (`layouts`).

    A table no app includes (the sign-in handshake, which only the service writes) is
    never opened by a person, so it needs neither.
    """
    forms, views = [], []
    for entity in customizations.iterfind("Entities/Entity"):
        entity_forms, entity_views = read_layouts(entity)
        forms += entity_forms
        views += entity_views
    shown = {
        c.get("schemaName", "").lower()
        for c in customizations.iterfind("AppModules/AppModule/AppModuleComponents/*")
        if c.get("type") == _ROOT_TYPE_ENTITY
    }
    custom = sorted(t for t in shown if t.startswith(f"{prefix.lower()}_"))
    return [f"customizations.xml: {p}" for p in coverage_problems(custom, forms, views)]


def _app_module_problems(
    customizations: ET.Element, tables: set[str], resources: list[WebResource]
) -> list[str]:
    problems: list[str] = []
    sitemaps = {
        (s.findtext("SiteMapUniqueName") or "").strip()
        for s in customizations.iterfind("AppModuleSiteMaps/AppModuleSiteMap")
    }
    roles = {(r.get("id") or "").strip("{}").lower() for r in customizations.iterfind("Roles/Role")}
    # Microsoft's app-visibility rules: a user sees an app through a role the app maps
    # *and* read on the Model-driven App table (prvReadAppModule).
    opens_apps = {
        (r.get("id") or "").strip("{}").lower()
        for r in customizations.iterfind("Roles/Role")
        if any(
            p.get("name", "").casefold() == _READ_APP_MODULE.casefold()
            for p in r.iterfind("RolePrivileges/RolePrivilege")
        )
    }
    resource_ids = {r.id for r in resources} | {DEFAULT_APP_ICON_ID}
    for app in customizations.iterfind("AppModules/AppModule"):
        unique = (app.findtext("UniqueName") or "").strip()
        icon = (app.findtext("WebResourceId") or "").strip().strip("{}").lower()
        if icon not in resource_ids:
            problems.append(
                f"app module {unique}: WebResourceId {icon} is not a listed web resource"
            )
        included = {
            c.get("schemaName", "")
            for c in app.iterfind("AppModuleComponents/AppModuleComponent")
            if c.get("type") == _ROOT_TYPE_ENTITY
        }
        # A page that opens a table the app lacks shows the user an error instead.
        for table, page in _opened_tables(customizations):
            if table in tables and table not in included:
                problems.append(
                    f"app module {unique}: {page} opens {table} records, "
                    "but the app does not include that table"
                )
        for component in app.iterfind("AppModuleComponents/AppModuleComponent"):
            kind, name = component.get("type"), component.get("schemaName", "")
            if kind == _ROOT_TYPE_ENTITY and name not in tables:
                problems.append(f"app module {unique}: component table {name} does not exist")
            if kind == _ROOT_TYPE_SITEMAP and name not in sitemaps:
                problems.append(f"app module {unique}: component sitemap {name} does not exist")
            dashboard = (component.get("id") or "").strip("{}").lower()
            if kind == _ROOT_TYPE_DASHBOARD and dashboard not in dashboard_ids(customizations):
                problems.append(
                    f"app module {unique}: component dashboard {dashboard} does not exist"
                )
        if unique not in sitemaps:
            problems.append(f"app module {unique}: no AppModuleSiteMap with that unique name")
        for role in app.iterfind("AppModuleRoleMaps/Role"):
            role_id = (role.get("id") or "").strip("{}").lower()
            if role_id not in roles:
                problems.append(
                    f"app module {unique}: role map {role_id} is not a role of the solution"
                )
            elif role_id not in opens_apps:
                problems.append(
                    f"app module {unique}: role {role_id} lacks {_READ_APP_MODULE}, so its "
                    "users cannot open the app"
                )
    return problems


def _opened_tables(customizations: ET.Element) -> list[tuple[str, str]]:
    """(table, the page that opens it): the sitemap's tables, and the records the agent
    console opens from a chat (its regarding record, `connector.crm.tables.RegardingTable`)."""
    opened = [
        (entity.lower(), "the sitemap")
        for entity in (
            e.get("Entity") for e in customizations.iterfind("AppModuleSiteMaps//SubArea")
        )
        if entity
    ]
    opened += [(table, "the agent console") for table in get_args(RegardingTable)]
    return opened


def _manifest_problems(
    manifest: ET.Element,
    customizations: ET.Element,
    resources: list[WebResource],
    solution_dir: Path,
) -> list[str]:
    problems: list[str] = []
    version = (manifest.findtext("SolutionManifest/Version") or "").strip()
    if not _VERSION.match(version):
        problems.append(f"solution.xml: Version {version!r} is not like 1.0.0.0")
    elif version != __version__:
        # pack writes connector.__version__; a different number here would only mislead.
        problems.append(
            f"solution.xml: Version {version} is not connector.__version__ {__version__}, "
            "which pack writes"
        )
    if not (manifest.findtext("SolutionManifest/UniqueName") or "").strip():
        problems.append("solution.xml: SolutionManifest has no UniqueName")
    known: dict[str, set[str]] = {
        _ROOT_TYPE_ENTITY: _declared_tables(customizations),
        _ROOT_TYPE_ROLE: {
            (r.get("id") or "").strip("{}").lower() for r in customizations.iterfind("Roles/Role")
        },
        _ROOT_TYPE_WEB_RESOURCE: {r.name for r in resources},
        _ROOT_TYPE_SITEMAP: {
            (s.findtext("SiteMapUniqueName") or "").strip()
            for s in customizations.iterfind("AppModuleSiteMaps/AppModuleSiteMap")
        },
        _ROOT_TYPE_APP_MODULE: {
            (a.findtext("UniqueName") or "").strip()
            for a in customizations.iterfind("AppModules/AppModule")
        },
        _ROOT_TYPE_DASHBOARD: dashboard_ids(customizations),
        _ROOT_TYPE_FIELD_SECURITY_PROFILE: {
            (p.get("fieldsecurityprofileid") or "").strip("{}").lower()
            for p in customizations.iterfind("FieldSecurityProfiles/FieldSecurityProfile")
        },
        _ROOT_TYPE_ENVIRONMENT_VARIABLE: _variable_names(solution_dir),
    }
    listed: dict[str, set[str]] = {kind: set() for kind in known}
    for component in manifest.iterfind("SolutionManifest/RootComponents/RootComponent"):
        kind = component.get("type", "")
        key = component.get("schemaName") or (component.get("id") or "").strip("{}").lower()
        if kind not in known:
            problems.append(
                f"solution.xml: RootComponent type {kind} ({key}) is not one CRM Chat uses"
            )
            continue
        listed[kind].add(key)
        if key not in known[kind]:
            problems.append(
                f"solution.xml: RootComponent type {kind} {key} is not in customizations.xml"
            )
    # Web resources become root components when packed; the others must be listed.
    for kind in (
        _ROOT_TYPE_ENTITY,
        _ROOT_TYPE_ROLE,
        _ROOT_TYPE_SITEMAP,
        _ROOT_TYPE_APP_MODULE,
        _ROOT_TYPE_DASHBOARD,
        _ROOT_TYPE_FIELD_SECURITY_PROFILE,
        _ROOT_TYPE_ENVIRONMENT_VARIABLE,
    ):
        for missing in sorted(known[kind] - listed[kind]):
            problems.append(f"solution.xml: no RootComponent type {kind} for {missing}")
    return problems


def _variable_names(solution_dir: Path) -> set[str]:
    # An unreadable definition is reported by environment_variable_problems already.
    try:
        return {v.schema_name for v in read_environment_variables(solution_dir)}
    except EnvironmentVariableError:
        return set()
