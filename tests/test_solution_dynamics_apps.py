"""Two solutions: the core `CRMChat`, importable into any Dataverse environment, and
`CRMChatSales` ("CRM Chat for Dynamics 365") on top of it, holding everything that names
a Dynamics 365 Sales / Customer Service table (lead, incident, knowledgearticle).
The embedded Dataverse with and without those apps imports them as a real one does
(docs/solution.md, "Two solutions")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.solution.check import check_solution
from connector.solution.model import Role
from connector.solution.paths import DYNAMICS365_SOLUTION_DIR
from connector.solution.privileges import existing_privileges
from connector.solution.reader import SchemaError, load_schema

APP_TABLES = {"lead", "incident", "knowledgearticle"}
AGENT_ROLE = "CRM Chat Agent"


def _edit(path: Path, pattern: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    changed, count = re.subn(pattern, new, text, count=1, flags=re.DOTALL)
    assert count == 1, f"{pattern!r} not in {path.name}"
    path.write_text(changed, encoding="utf-8")


def _check(source: tuple[Path, Path]) -> list[str]:
    return check_solution(solution_dir=source[0], webresources_dir=source[1])


def _role(roles: tuple[Role, ...], name: str) -> Role:
    return next(r for r in roles if r.name == name and r.from_solution)


def test_by_default_the_organization_has_the_apps_and_both_solutions() -> None:
    schema = load_schema()
    assert APP_TABLES <= set(schema.tables)
    assert "prvcreateincident" in existing_privileges(schema)
    # The second solution's column, relationship and role privileges are there.
    assert "crmchat_leadid" in schema.tables["crmchat_platformlink"].columns
    assert "crmchat_lead_platformlink" in {r.schema_name for r in schema.one_to_many}
    agent = _role(schema.roles, AGENT_ROLE)
    assert {"prvReadLead", "prvCreateIncident", "prvReadKnowledgeArticle"} <= set(agent.privileges)
    # ... and the core's, which the second solution's copy of the role keeps.
    assert "prvReadActivity" in agent.privileges


def test_the_core_imports_into_an_environment_without_the_apps() -> None:
    schema = load_schema(dynamics_apps=False)
    assert not APP_TABLES & set(schema.tables)
    assert {"contact", "account", "crmchat_chat"} <= set(schema.tables)
    privileges = existing_privileges(schema)
    assert "prvreadcontact" in privileges
    assert not {"prvreadlead", "prvcreateincident", "prvreadknowledgearticle"} & set(privileges)
    assert "lead" not in {r.referenced_entity for r in schema.one_to_many}
    assert "crmchat_leadid" not in schema.tables["crmchat_platformlink"].columns
    agent = _role(schema.roles, AGENT_ROLE)
    assert not any(name.endswith(("Lead", "Incident")) for name in agent.privileges)


def test_the_second_solution_fails_without_the_apps_with_the_platforms_error() -> None:
    with pytest.raises(SchemaError) as raised:
        load_schema(dynamics_apps=False, layers=(DYNAMICS365_SOLUTION_DIR,))
    message = str(raised.value)
    assert "0x8004801D" in message
    assert "The following solution cannot be imported: CRMChatSales" in message
    assert "Some dependencies are missing" in message
    for table in APP_TABLES:
        assert f"{table} (" in message


def test_the_second_solution_needs_the_core_below_it(source: tuple[Path, Path]) -> None:
    # Without the core's table the second solution is refused before anything is merged.
    core = source[0] / "customizations.xml"
    _edit(core, r"<Entity>\s*<Name LocalizedName=\"Platform user link\".*?</Entity>", "")
    expected = r"0x8004801D.*crmchat_platformlink \(Platform user link, solution CRMChat\)"
    with pytest.raises(SchemaError, match=expected):
        load_schema(core, layers=(source[0] / "dynamics365",))


def test_a_core_role_granting_a_case_privilege_fails_the_import_without_the_apps(
    source: tuple[Path, Path],
) -> None:
    core = source[0] / "customizations.xml"
    _edit(
        core,
        r'<RolePrivilege name="prvReadAppModule"',
        '<RolePrivilege name="prvReadIncident" level="Global" />'
        '<RolePrivilege name="prvReadAppModule"',
    )
    with pytest.raises(SchemaError, match="privilege prvReadIncident does not exist"):
        load_schema(core, dynamics_apps=False)
    assert "incident" in load_schema(core).tables
    # The check reports it too: the core must stay importable everywhere.
    assert any("privilege prvReadIncident does not exist" in p for p in _check(source))


def test_check_reports_a_lead_lookup_left_in_the_core(source: tuple[Path, Path]) -> None:
    sales = (source[0] / "dynamics365" / "customizations.xml").read_text(encoding="utf-8")
    relationship = re.search(
        r"<EntityRelationship Name=\"crmchat_lead_platformlink\">.*?</EntityRelationship>",
        sales,
        flags=re.DOTALL,
    )
    assert relationship is not None
    _edit(
        source[0] / "customizations.xml",
        r"</EntityRelationships>",
        relationship.group(0) + "</EntityRelationships>",
    )
    problems = _check(source)
    assert any("crmchat_lead_platformlink: no table lead" in p for p in problems), problems


def test_check_reports_a_second_solution_role_missing_a_core_privilege(
    source: tuple[Path, Path],
) -> None:
    sales = source[0] / "dynamics365" / "customizations.xml"
    _edit(sales, r'\s*<RolePrivilege name="prvReadActivity" level="Basic" />', "")
    problems = _check(source)
    assert (
        "dynamics365/customizations.xml: role CRM Chat Agent replaces the core role but "
        "lacks prvReadActivity (roles do not merge: the top one wins)"
    ) in problems


def test_check_reports_an_undeclared_dependency_on_an_app_table(
    source: tuple[Path, Path],
) -> None:
    _edit(
        source[0] / "dynamics365" / "solution.xml",
        r"<MissingDependency>\s*<Required type=\"1\" schemaName=\"knowledgearticle\""
        r".*?</MissingDependency>",
        "",
    )
    problems = _check(source)
    assert (
        "dynamics365/solution.xml: the solution needs knowledgearticle from a Dynamics 365 "
        "app, but MissingDependencies does not list it as Required"
    ) in problems


def test_check_reports_the_merged_app_lacking_a_table_the_console_opens(
    source: tuple[Path, Path],
) -> None:
    _edit(
        source[0] / "dynamics365" / "customizations.xml",
        r'\s*<AppModuleComponent type="1" schemaName="incident" />',
        "",
    )
    problems = _check(source)
    assert any(
        "the agent console opens incident records, but the app does not include" in p
        for p in problems
    ), problems


def test_check_validates_the_second_solution_against_the_xsd(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "dynamics365" / "customizations.xml",
        r"<IsCustomizable>1</IsCustomizable>",
        "<IsCustomizable>1</IsCustomizable><NotAnElement />",
    )
    problems = _check(source)
    assert any(p.startswith("dynamics365/customizations.xml: XSD:") for p in problems), problems
