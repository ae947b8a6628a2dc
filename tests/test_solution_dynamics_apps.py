"""The embedded Dataverse with and without the Dynamics 365 Sales / Customer Service tables
(lead, incident, knowledgearticle), and what the base solution must leave out to import
into a plain Dataverse environment (docs/solution.md)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from connector.solution.paths import CUSTOMIZATIONS_XML
from connector.solution.privileges import existing_privileges
from connector.solution.reader import SchemaError, load_schema

APP_TABLES = {"lead", "incident", "knowledgearticle"}
APP_PRIVILEGE_ENTITIES = ("Lead", "Incident", "KnowledgeArticle")


def _without_app_references(target: Path) -> Path:
    """solution/customizations.xml minus what names a Sales / Customer Service table."""
    tree = ET.parse(CUSTOMIZATIONS_XML)
    root = tree.getroot()
    for parent in root.iter():
        for child in list(parent):
            name = child.get("name") or ""
            lead_lookup = child.tag == "attribute" and child.findtext("LogicalName") == (
                "crmchat_leadid"
            )
            app_privilege = child.tag == "RolePrivilege" and name.endswith(APP_PRIVILEGE_ENTITIES)
            app_component = child.tag == "AppModuleComponent" and (
                (child.get("schemaName") or "").lower() in APP_TABLES
            )
            lead_relationship = (
                child.tag == "EntityRelationship"
                and child.findtext("ReferencedEntityName", "").lower() in APP_TABLES
            )
            if lead_lookup or app_privilege or app_component or lead_relationship:
                parent.remove(child)
    tree.write(target, encoding="utf-8", xml_declaration=True)
    return target


def test_by_default_the_embedded_dataverse_has_the_dynamics_365_tables() -> None:
    schema = load_schema()
    assert APP_TABLES <= set(schema.tables)
    assert "prvcreateincident" in existing_privileges(schema)


def test_without_the_apps_the_tables_and_their_privileges_do_not_exist(tmp_path: Path) -> None:
    schema = load_schema(_without_app_references(tmp_path / "base.xml"), dynamics_apps=False)
    assert not APP_TABLES & set(schema.tables)
    # Contact and account are every environment's; the Sales / Service ones are gone.
    assert {"contact", "account"} <= set(schema.tables)
    privileges = existing_privileges(schema)
    assert "prvreadcontact" in privileges
    assert not {"prvreadlead", "prvcreateincident", "prvreadknowledgearticle"} & set(privileges)
    # Nor can an activity party or a chat point at a lead any more.
    assert "lead" not in {r.referenced_entity for r in schema.one_to_many}


def test_todays_base_solution_does_not_import_without_the_apps() -> None:
    # The dependency the split must remove: the platform link's lookup to lead first.
    with pytest.raises(SchemaError, match=r"crmchat_lead_platformlink: no table lead .*Dynamics"):
        load_schema(dynamics_apps=False)


def test_a_role_granting_a_case_privilege_fails_the_import_without_the_apps(
    tmp_path: Path,
) -> None:
    base = _without_app_references(tmp_path / "base.xml")
    text = base.read_text(encoding="utf-8").replace(
        '<RolePrivilege name="prvReadAppModule"',
        '<RolePrivilege name="prvReadIncident" level="Global" />'
        '<RolePrivilege name="prvReadAppModule"',
        1,
    )
    base.write_text(text, encoding="utf-8")
    with pytest.raises(SchemaError, match="privilege prvReadIncident does not exist"):
        load_schema(base, dynamics_apps=False)
    assert "incident" in load_schema(base).tables
