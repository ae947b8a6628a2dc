"""The service address as an environment variable definition: packed and checked as real
exports carry it, imported into the embedded Dataverse with the platform's tables, columns,
privileges and precedence (a value record overrides the default)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from test_emulator_app import Api

from connector.dataverse_local import DataverseApp, add_user, issue_token
from connector.dataverse_local.environment_variables import definition_id, set_value_when_missing
from connector.solution.check import check_solution
from connector.solution.environment_variables import SERVICE_URL_VARIABLE
from connector.solution.model import Schema
from connector.solution.pack import pack_solution
from connector.solution.paths import SOLUTION_DIR

DEFINITION = (
    SOLUTION_DIR
    / "environmentvariabledefinitions"
    / SERVICE_URL_VARIABLE
    / "environmentvariabledefinition.xml"
)
DEFAULT_ADDRESS = "https://centralus.service.crmchat.cloud"


def _check(source: tuple[Path, Path]) -> list[str]:
    return check_solution(solution_dir=source[0], webresources_dir=source[1])


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _user(app: DataverseApp, url: str, schema: Schema, role: str, name: str) -> Api:
    found = schema.role_named(role)
    assert found is not None
    user_id = add_user(
        app.store, domain_name=f"{name}@crmchat.local", first_name=name, role_ids=[found.id]
    )
    return Api(url, issue_token(app.store.signing_secret, user_id=user_id))


# --- pack and check -------------------------------------------------------------------


def test_the_package_carries_the_definition_where_exports_put_it(tmp_path: Path) -> None:
    zip_path = pack_solution(out_dir=tmp_path)
    entry = str(DEFINITION.relative_to(SOLUTION_DIR))
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.read(entry) == DEFINITION.read_bytes()
        manifest = ET.fromstring(archive.read("solution.xml"))
    roots = [
        (c.get("type"), c.get("schemaName"))
        for c in manifest.iterfind("SolutionManifest/RootComponents/RootComponent")
    ]
    assert ("380", SERVICE_URL_VARIABLE) in roots
    definition = ET.parse(DEFINITION).getroot()
    assert definition.get("schemaname") == SERVICE_URL_VARIABLE
    assert definition.findtext("type") == "100000000"  # String
    assert definition.findtext("defaultvalue") == DEFAULT_ADDRESS


def test_check_reports_a_solution_without_the_service_address(source: tuple[Path, Path]) -> None:
    shutil.rmtree(source[0] / "environmentvariabledefinitions")
    problems = _check(source)
    assert any(f"no {SERVICE_URL_VARIABLE}" in p for p in problems), problems
    assert any(f"RootComponent type 380 {SERVICE_URL_VARIABLE}" in p for p in problems), problems


def test_check_reports_a_definition_that_is_no_root_component(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "solution.xml",
        f'      <RootComponent type="380" schemaName="{SERVICE_URL_VARIABLE}" behavior="0" />\n',
        "",
    )
    assert _check(source) == [f"solution.xml: no RootComponent type 380 for {SERVICE_URL_VARIABLE}"]


def test_check_reports_a_definition_named_unlike_its_folder(source: tuple[Path, Path]) -> None:
    path = source[0] / DEFINITION.relative_to(SOLUTION_DIR)
    _edit(path, f'schemaname="{SERVICE_URL_VARIABLE}"', 'schemaname="crmchat_Other"')
    problems = _check(source)
    assert any("differs from its folder" in p for p in problems), problems


def test_check_wants_an_https_default_for_the_service_address(source: tuple[Path, Path]) -> None:
    path = source[0] / DEFINITION.relative_to(SOLUTION_DIR)
    _edit(path, DEFAULT_ADDRESS, "http://centralus.service.crmchat.cloud")
    problems = _check(source)
    assert any("https:// address" in p for p in problems), problems


# --- the embedded Dataverse's import ---------------------------------------------------


def test_the_import_creates_the_definition_and_a_value_overrides_its_default(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema
) -> None:
    agent = _user(dataverse_app, dataverse_url, schema, "CRM Chat Agent", "ada")
    query = (
        "environmentvariabledefinitions?$select=schemaname,type,defaultvalue"
        f"&$filter=schemaname eq '{SERVICE_URL_VARIABLE}'"
    )
    found = agent.get(query)
    assert found.status_code == 200, found.text
    [definition] = found.json()["value"]
    assert definition["defaultvalue"] == DEFAULT_ADDRESS
    assert definition["type"] == 100000000
    assert definition["environmentvariabledefinitionid"] == definition_id(SERVICE_URL_VARIABLE)
    values = (
        "environmentvariablevalues?$select=value"
        f"&$filter=_environmentvariabledefinitionid_value eq {definition_id(SERVICE_URL_VARIABLE)}"
    )
    assert agent.get(values).json()["value"] == []

    set_value_when_missing(dataverse_app.store, SERVICE_URL_VARIABLE, "https://chat.example.com")
    set_value_when_missing(dataverse_app.store, SERVICE_URL_VARIABLE, "https://ignored.example")
    assert [v["value"] for v in agent.get(values).json()["value"]] == ["https://chat.example.com"]
    expanded = agent.get(
        f"environmentvariabledefinitions({definition_id(SERVICE_URL_VARIABLE)})"
        "?$select=defaultvalue"
        "&$expand=environmentvariabledefinition_environmentvariablevalue($select=value)"
    )
    assert expanded.status_code == 200, expanded.text
    related = expanded.json()["environmentvariabledefinition_environmentvariablevalue"]
    assert [v["value"] for v in related] == ["https://chat.example.com"]


def test_only_who_may_write_the_definition_sets_a_value(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, admin_token: str
) -> None:
    body = {
        "schemaname": SERVICE_URL_VARIABLE,
        "value": "https://evil.example",
        "EnvironmentVariableDefinitionId@odata.bind": (
            f"/environmentvariabledefinitions({definition_id(SERVICE_URL_VARIABLE)})"
        ),
    }
    # A value has no privileges of its own: the definition's govern it, and an agent
    # holds only Read on definitions.
    agent = _user(dataverse_app, dataverse_url, schema, "CRM Chat Agent", "ada")
    assert agent.post("environmentvariablevalues", body).status_code == 403
    admin = Api(dataverse_url, admin_token)  # System Administrator, as a customizer is
    created = admin.post("environmentvariablevalues", dict(body, value="https://chat.example.com"))
    assert created.status_code == 204, created.text


def test_importing_again_keeps_the_definition_and_its_value(tmp_path: Path, schema: Schema) -> None:
    from connector.dataverse_local import create_dataverse_app

    first = create_dataverse_app(tmp_path / "dv.db", schema=schema)
    set_value_when_missing(first.store, SERVICE_URL_VARIABLE, "https://chat.example.com")
    first.store.close()
    again = create_dataverse_app(tmp_path / "dv.db", schema=schema)
    rows = again.store.query('SELECT "schemaname" FROM "environmentvariabledefinition"')
    assert [r[0] for r in rows] == [SERVICE_URL_VARIABLE]
    values = again.store.query('SELECT "value" FROM "environmentvariablevalue"')
    assert [r[0] for r in values] == ["https://chat.example.com"]
    again.store.close()
