"""Check the second solution, `CRMChatSales` ("CRM Chat for Dynamics 365"), against the core.

The core solution (`solution/`) must import into any Dataverse environment, so everything
that names a Dynamics 365 Sales / Customer Service table (lead, incident,
knowledgearticle) lives in `solution/dynamics365/`, imported on top of the core where
those apps are installed. `layer_problems` reports, for that folder:

- customizations.xml against the XSD (the caller passes its XSD check in);
- the import on top of the core in an organization with the apps fails
  (`connector.solution.reader.load_schema(layers=...)`), or a role grants a privilege the
  organization lacks or spells one otherwise than real exports;
- a role replacing a core role (same id: roles are "top wins" across solutions) without
  every privilege the core role grants at the same level, so importing the second solution
  would take a privilege away;
- a Dynamics 365 table the layer names (relationship, app module component, privilege)
  that solution.xml's `MissingDependencies` does not declare as `Required`, and a
  declared core table the core does not have;
- the app, as the two solutions merge it, lacks a table a page opens, or a component
  table does not exist; root components that do not resolve.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from connector.crm.tables import RegardingTable
from connector.solution.model import Role, Schema
from connector.solution.privileges import PRIVILEGE_ACTIONS, privilege_name, privilege_problems
from connector.solution.reader import SchemaError, load_schema

__all__ = ["layer_problems"]

_ROOT_TYPE_ENTITY, _ROOT_TYPE_ROLE, _ROOT_TYPE_APP_MODULE = "1", "20", "80"


def layer_problems(
    layer_dir: Path,
    core_dir: Path,
    xsd_problems: Callable[[Path], list[str]],
) -> list[str]:
    """Problems of the solution in `layer_dir` imported on top of the one in `core_dir`."""
    where = f"{layer_dir.name}/"
    problems: list[str] = []
    try:
        customizations = ET.parse(layer_dir / "customizations.xml").getroot()
        manifest = ET.parse(layer_dir / "solution.xml").getroot()
        core = ET.parse(core_dir / "customizations.xml").getroot()
    except (ET.ParseError, OSError) as exc:
        return [f"{where}: cannot read the solution: {exc}"]
    problems += [
        problem.replace("customizations.xml", f"{where}customizations.xml", 1)
        for problem in xsd_problems(layer_dir / "customizations.xml")
    ]
    core_path = core_dir / "customizations.xml"
    try:
        full = load_schema(core_path, layers=(layer_dir,), verify_privileges=False)
        plain = load_schema(core_path, dynamics_apps=False, verify_privileges=False)
    except SchemaError as exc:
        return [*problems, f"{where}: importing it on top of the core fails: {exc}"]
    layer_ids = {_id(r) for r in customizations.iterfind("Roles/Role")}
    layer_roles = tuple(r for r in full.roles if r.from_solution and r.id in layer_ids)
    problems += [
        f"{where}customizations.xml: {p}" for p in privilege_problems(full, layer_roles, exact=True)
    ]
    problems += _role_problems(core, layer_roles, where)
    problems += _dependency_problems(customizations, manifest, layer_roles, full, plain, where)
    problems += _app_problems(core, customizations, full, where)
    problems += _root_component_problems(customizations, manifest, where)
    return problems


def _id(element: ET.Element) -> str:
    return (element.get("id") or "").strip("{}").lower()


def _role_problems(core: ET.Element, layer_roles: tuple[Role, ...], where: str) -> list[str]:
    problems: list[str] = []
    by_id = {role.id: role for role in layer_roles}
    for element in core.iterfind("Roles/Role"):
        layer = by_id.get(_id(element))
        if layer is None:
            continue
        granted = {name.casefold(): level for name, level in layer.privileges.items()}
        for privilege in element.iterfind("RolePrivileges/RolePrivilege"):
            name, level = privilege.get("name", ""), privilege.get("level", "")
            if granted.get(name.casefold(), None) is None:
                problems.append(
                    f"{where}customizations.xml: role {layer.name} replaces the core role "
                    f"but lacks {name} (roles do not merge: the top one wins)"
                )
            elif granted[name.casefold()].value != level:
                problems.append(
                    f"{where}customizations.xml: role {layer.name} grants {name} at "
                    f"{granted[name.casefold()].value}, the core role at {level}"
                )
    return problems


def _dependency_problems(
    customizations: ET.Element,
    manifest: ET.Element,
    layer_roles: tuple[Role, ...],
    full: Schema,
    plain: Schema,
    where: str,
) -> list[str]:
    app_tables = {name: full.tables[name] for name in full.tables.keys() - plain.tables.keys()}
    named: set[str] = set()
    for relationship in customizations.iterfind("EntityRelationships/EntityRelationship"):
        for tag in ("ReferencedEntityName", "ReferencingEntityName"):
            named.add((relationship.findtext(tag) or "").strip().lower())
    for component in customizations.iterfind("AppModules/AppModule/AppModuleComponents/*"):
        if component.get("type") == _ROOT_TYPE_ENTITY:
            named.add(component.get("schemaName", "").lower())
    granted = {name.casefold() for role in layer_roles for name in role.privileges}
    for name, table in app_tables.items():
        if any(privilege_name(a, table).casefold() in granted for a in PRIVILEGE_ACTIONS):
            named.add(name)
    required = {
        (r.get("schemaName") or "").lower()
        for r in manifest.iterfind("SolutionManifest/MissingDependencies/*/Required")
        if r.get("type") == _ROOT_TYPE_ENTITY
    }
    problems = [
        f"{where}solution.xml: the solution needs {name} from a Dynamics 365 app, but "
        "MissingDependencies does not list it as Required"
        for name in sorted(named & app_tables.keys() - required)
    ]
    problems += [
        f"{where}solution.xml: Required table {name} is in neither the core solution nor "
        "the Dynamics 365 apps"
        for name in sorted(required - full.tables.keys())
    ]
    return problems


def _app_problems(
    core: ET.Element, customizations: ET.Element, full: Schema, where: str
) -> list[str]:
    """Apps merge across solutions: the app a user gets has both solutions' components."""
    problems: list[str] = []
    core_apps = {
        (a.findtext("UniqueName") or "").strip(): a for a in core.iterfind("AppModules/AppModule")
    }
    for app in customizations.iterfind("AppModules/AppModule"):
        unique = (app.findtext("UniqueName") or "").strip()
        if unique not in core_apps:
            problems.append(f"{where}customizations.xml: app module {unique} is not the core's")
            continue
        included: set[str] = set()
        for source in (core_apps[unique], app):
            for component in source.iterfind("AppModuleComponents/AppModuleComponent"):
                if component.get("type") == _ROOT_TYPE_ENTITY:
                    included.add(component.get("schemaName", "").lower())
        for table in sorted(included - full.tables.keys()):
            problems.append(
                f"{where}customizations.xml: app module {unique}: component table {table} "
                "does not exist"
            )
        for table in get_args(RegardingTable):
            if table in full.tables and table not in included:
                problems.append(
                    f"{where}customizations.xml: app module {unique}: the agent console "
                    f"opens {table} records, but the app does not include that table"
                )
    return problems


def _root_component_problems(
    customizations: ET.Element, manifest: ET.Element, where: str
) -> list[str]:
    known = {
        _ROOT_TYPE_ENTITY: {
            (e.findtext("Name") or "").strip().lower()
            for e in customizations.iterfind("Entities/Entity")
        },
        _ROOT_TYPE_ROLE: {_id(r) for r in customizations.iterfind("Roles/Role")},
        _ROOT_TYPE_APP_MODULE: {
            (a.findtext("UniqueName") or "").strip()
            for a in customizations.iterfind("AppModules/AppModule")
        },
    }
    listed: dict[str, set[str]] = {kind: set() for kind in known}
    problems: list[str] = []
    for component in manifest.iterfind("SolutionManifest/RootComponents/RootComponent"):
        kind = component.get("type", "")
        key = component.get("schemaName") or _id(component)
        if kind not in known or key not in known[kind]:
            problems.append(
                f"{where}solution.xml: RootComponent type {kind} {key} is not in customizations.xml"
            )
            continue
        listed[kind].add(key)
    for kind, names in known.items():
        for missing in sorted(names - listed[kind]):
            problems.append(f"{where}solution.xml: no RootComponent type {kind} for {missing}")
    return problems
