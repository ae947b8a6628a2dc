"""The Dataverse solution: XSD validity, packing, checking and the schema it yields."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import xmlschema

import connector
from connector.dataverse_local.security import effective_depth
from connector.solution.check import CUSTOMIZATIONS_XSD, check_solution, default_schemas_dir
from connector.solution.model import AccessLevel, ColumnType, Ownership, Schema
from connector.solution.pack import PackError, pack_solution, read_web_resources, zip_entry_name
from connector.solution.paths import SOLUTION_DIR, STANDARD_XML, WEBRESOURCES_DIR
from connector.solution.privileges import privilege_name
from connector.solution.reader import SchemaError, load_schema
from connector.solution.ribbon import read_commands

ADMIN_ROLE_ID = "e7437f0a-9ae6-4932-bd70-75245ce5c0eb"
CUSTOM_TABLES = (
    "crmchat_agent",
    "crmchat_topic",
    "crmchat_widget",
    "crmchat_snippet",
    "crmchat_chat",
    "crmchat_settings",
    "crmchat_handshake",
)


@pytest.fixture(scope="module")
def xsd() -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(default_schemas_dir() / CUSTOMIZATIONS_XSD))


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _check(source: tuple[Path, Path]) -> list[str]:
    solution_dir, webresources_dir = source
    return check_solution(solution_dir=solution_dir, webresources_dir=webresources_dir)


# --- validity -------------------------------------------------------------------------


def test_customizations_xml_validates_against_the_xsd(xsd: xmlschema.XMLSchema10) -> None:
    errors = [e.reason for e in xsd.iter_errors(str(SOLUTION_DIR / "customizations.xml"))]
    assert errors == []


def test_standard_tables_file_validates_against_the_xsd(xsd: xmlschema.XMLSchema10) -> None:
    assert [e.reason for e in xsd.iter_errors(str(STANDARD_XML))] == []


def test_check_finds_nothing_wrong_with_the_repository_solution() -> None:
    assert check_solution() == []


# --- pack -----------------------------------------------------------------------------


def test_pack_writes_exactly_the_expected_entries(tmp_path: Path) -> None:
    customizations = ET.parse(SOLUTION_DIR / "customizations.xml").getroot()
    resources = read_web_resources(customizations)

    zip_path = pack_solution(out_dir=tmp_path / "out")

    assert zip_path.name == "CRMChat_1_0_0_0.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
    web_entries = {zip_entry_name(r) for r in resources}
    variables = {
        "environmentvariabledefinitions/crmchat_ServiceUrl/environmentvariabledefinition.xml"
    }
    assert (
        set(names)
        == {"[Content_Types].xml", "solution.xml", "customizations.xml"} | web_entries | variables
    )
    assert len(names) == len(set(names))
    assert all("\\" not in name for name in names)


def test_pack_writes_managed_and_unmanaged_packages_with_the_one_version(
    tmp_path: Path, source: tuple[Path, Path]
) -> None:
    solution_dir, webresources_dir = source
    unmanaged = pack_solution(
        out_dir=tmp_path, solution_dir=solution_dir, webresources_dir=webresources_dir
    )
    managed = pack_solution(
        out_dir=tmp_path,
        solution_dir=solution_dir,
        webresources_dir=webresources_dir,
        managed=True,
    )
    assert unmanaged.name == f"CRMChat_{connector.__version__.replace('.', '_')}.zip"
    assert managed.name == f"CRMChat_{connector.__version__.replace('.', '_')}_managed.zip"
    for path, flag in ((unmanaged, "0"), (managed, "1")):
        with zipfile.ZipFile(path) as archive:
            manifest = ET.fromstring(archive.read("solution.xml"))
        assert manifest.findtext("SolutionManifest/Managed") == flag
        assert manifest.findtext("SolutionManifest/Version") == connector.__version__


def test_check_reports_a_manifest_version_that_is_not_the_package_version(
    source: tuple[Path, Path],
) -> None:
    _edit(source[0] / "solution.xml", "<Version>1.0.0.0</Version>", "<Version>1.2.0.0</Version>")
    problems = _check(source)
    assert any("Version 1.2.0.0 is not connector.__version__" in p for p in problems), problems


def test_packed_web_resources_match_their_files_byte_for_byte(tmp_path: Path) -> None:
    zip_path = pack_solution(out_dir=tmp_path)
    with zipfile.ZipFile(zip_path) as archive:
        customizations = ET.fromstring(archive.read("customizations.xml"))
        for element in customizations.iterfind("WebResources/WebResource"):
            name = element.findtext("Name") or ""
            entry = (element.findtext("FileName") or "").lstrip("/")
            source = WEBRESOURCES_DIR / name.removeprefix("crmchat_/")
            assert archive.read(entry) == source.read_bytes(), name


def test_packed_customizations_still_validate(tmp_path: Path, xsd: xmlschema.XMLSchema10) -> None:
    zip_path = pack_solution(out_dir=tmp_path)
    with zipfile.ZipFile(zip_path) as archive:
        packed = tmp_path / "customizations.xml"
        packed.write_bytes(archive.read("customizations.xml"))
    assert [e.reason for e in xsd.iter_errors(str(packed))] == []


def test_pack_lists_web_resources_in_content_types_and_manifest(tmp_path: Path) -> None:
    zip_path = pack_solution(out_dir=tmp_path)
    with zipfile.ZipFile(zip_path) as archive:
        content_types = archive.read("[Content_Types].xml")
        manifest = ET.fromstring(archive.read("solution.xml"))
        customizations = ET.fromstring(archive.read("customizations.xml"))
    resources = read_web_resources(customizations)

    assert content_types.startswith(b"\xef\xbb\xbf<?xml")
    assert b"\n" not in content_types
    overrides = {
        o.get("PartName")
        for o in ET.fromstring(content_types[3:]).iter(
            "{http://schemas.openxmlformats.org/package/2006/content-types}Override"
        )
    }
    assert overrides == {"/" + zip_entry_name(r) for r in resources}
    roots = {
        c.get("schemaName")
        for c in manifest.iterfind("SolutionManifest/RootComponents/RootComponent")
        if c.get("type") == "61"
    }
    assert roots == {r.name for r in resources}


def test_pack_is_byte_identical_whatever_the_file_times(
    tmp_path: Path, source: tuple[Path, Path]
) -> None:
    solution_dir, webresources_dir = source
    first = pack_solution(
        out_dir=tmp_path / "a", solution_dir=solution_dir, webresources_dir=webresources_dir
    )
    for path in webresources_dir.rglob("*"):
        os.utime(path, (1_900_000_000, 1_900_000_000))
    second = pack_solution(
        out_dir=tmp_path / "b", solution_dir=solution_dir, webresources_dir=webresources_dir
    )
    assert first.read_bytes() == second.read_bytes()


def test_pack_refuses_a_listed_web_resource_without_its_file(
    tmp_path: Path, source: tuple[Path, Path]
) -> None:
    solution_dir, webresources_dir = source
    (webresources_dir / "icons" / "crmchat.svg").unlink()
    with pytest.raises(PackError, match="crmchat_/icons/crmchat.svg"):
        pack_solution(
            out_dir=tmp_path, solution_dir=solution_dir, webresources_dir=webresources_dir
        )


# --- check ----------------------------------------------------------------------------


def test_check_reports_a_missing_web_resource_file(source: tuple[Path, Path]) -> None:
    (source[1] / "icons" / "crmchat.svg").unlink()
    problems = _check(source)
    assert len(problems) == 1
    assert "crmchat_/icons/crmchat.svg" in problems[0]
    assert "does not exist" in problems[0]


def test_check_reports_a_web_resource_file_nobody_listed(source: tuple[Path, Path]) -> None:
    (source[1] / "unlisted").mkdir()
    (source[1] / "unlisted" / "index.html").write_text("<!doctype html>", encoding="utf-8")
    problems = _check(source)
    assert len(problems) == 1
    assert "webresources/unlisted/index.html" in problems[0]
    assert "crmchat_/unlisted/index.html" in problems[0]


def test_check_reports_a_dangling_sitemap_entity(source: tuple[Path, Path]) -> None:
    _edit(source[0] / "customizations.xml", 'Entity="crmchat_topic"', 'Entity="crmchat_topics"')
    problems = _check(source)
    assert any("sub_topics" in p and "crmchat_topics" in p for p in problems), problems


def test_check_reports_a_sitemap_privilege_on_an_unknown_table(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        '<Privilege Entity="crmchat_settings"',
        '<Privilege Entity="crmchat_setting"',
    )
    problems = _check(source)
    assert problems == [
        "sitemap crmchat_chatapp: SubArea sub_settings Privilege "
        "names unknown table crmchat_setting"
    ]


def test_check_reports_a_sitemap_link_to_an_unlisted_web_resource(
    source: tuple[Path, Path],
) -> None:
    _edit(
        source[0] / "customizations.xml",
        'Url="$webresource:crmchat_/settings/index.html"',
        'Url="$webresource:crmchat_/settings/main.html"',
    )
    problems = _check(source)
    assert any("crmchat_/settings/main.html" in p for p in problems), problems


def test_check_reports_a_privilege_the_platform_does_not_have(
    source: tuple[Path, Path],
) -> None:
    _edit(
        source[0] / "customizations.xml",
        'name="prvReadcrmchat_Topic" level="Global"',
        'name="prvReadcrmchat_Topics" level="Global"',
    )
    problems = _check(source)
    assert any("prvReadcrmchat_Topics does not exist" in p for p in problems), problems


def test_check_reports_a_chat_privilege_of_its_own(source: tuple[Path, Path]) -> None:
    # A custom activity has no privileges of its own; real imports know only prvReadActivity.
    _edit(
        source[0] / "customizations.xml",
        'name="prvReadActivity" level="Basic"',
        'name="prvReadcrmchat_Chat" level="Basic"',
    )
    problems = _check(source)
    assert any(
        "prvReadcrmchat_Chat does not exist (crmchat_chat is an activity: use prvReadActivity)" in p
        for p in problems
    ), problems


def test_check_reports_a_standard_privilege_named_after_the_logical_name(
    source: tuple[Path, Path],
) -> None:
    _edit(
        source[0] / "customizations.xml",
        'name="prvReadNote" level="Global"',
        'name="prvReadannotation" level="Global"',
    )
    problems = _check(source)
    assert any("prvReadannotation does not exist (use prvReadNote)" in p for p in problems)


def test_check_asks_for_the_spelling_of_real_exports(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        'name="prvReadcrmchat_Topic" level="Global"',
        'name="prvReadcrmchat_topic" level="Global"',
    )
    problems = _check(source)
    assert any("prvReadcrmchat_topic is spelled prvReadcrmchat_Topic" in p for p in problems)


def test_check_reports_assign_on_an_organization_owned_table(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        'name="prvReadcrmchat_Settings" level="Global"',
        'name="prvAssigncrmchat_Settings" level="Global"',
    )
    problems = _check(source)
    assert any("crmchat_settings is not user-owned, so it has no Assign" in p for p in problems)


def test_check_reports_an_app_role_that_cannot_open_the_app(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        '<RolePrivilege name="prvReadAppModule" level="Global" />\n      </RolePrivileges>\n'
        "    </Role>\n  </Roles>",
        "</RolePrivileges>\n    </Role>\n  </Roles>",
    )
    problems = _check(source)
    assert any(
        "role 98b3e608-08eb-4b5d-aa92-4eae579eb9e7 lacks prvReadAppModule" in p for p in problems
    )


def test_the_widget_form_gains_design_and_generate_script_once_saved() -> None:
    commands = read_commands(ET.parse(SOLUTION_DIR / "customizations.xml").getroot())
    widget = commands["crmchat_widget"]
    assert [(c.label, c.function, c.library) for c in widget] == [
        ("Design", "CRMChat.WidgetRibbon.openDesigner", "crmchat_/ribbon/widget.js"),
        ("Generate Script", "CRMChat.WidgetRibbon.generateScript", "crmchat_/ribbon/widget.js"),
    ]
    assert all(c.hidden_on_create for c in widget)


def test_the_contact_form_gains_export_and_delete_chat_data_after_loading_the_sign_in() -> None:
    commands = read_commands(ET.parse(SOLUTION_DIR / "customizations.xml").getroot())
    signin, ribbon = "crmchat_/common/signin.js", "crmchat_/ribbon/contact.js"
    assert [(c.label, c.function, c.libraries) for c in commands["contact"]] == [
        (
            "Send a new message",
            "CRMChat.RecordRibbon.sendNewMessage",
            ("crmchat_/ribbon/records.js",),
        ),
        ("Export chat data", "CRMChat.ContactRibbon.exportChatData", (signin, ribbon)),
        ("Delete chat data", "CRMChat.ContactRibbon.deleteChatData", (signin, ribbon)),
    ]
    assert all(c.hidden_on_create for c in commands["contact"])


def test_check_reports_a_ribbon_function_its_library_does_not_define(
    source: tuple[Path, Path],
) -> None:
    _edit(
        source[0] / "customizations.xml",
        'FunctionName="CRMChat.WidgetRibbon.generateScript"',
        'FunctionName="CRMChat.WidgetRibbon.makeScript"',
    )
    problems = _check(source)
    assert any("does not define CRMChat.WidgetRibbon.makeScript" in p for p in problems), problems


def test_check_reports_a_ribbon_button_without_its_command(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        'Command="crmchat.crmchat_widget.Design.Command"',
        'Command="crmchat.crmchat_widget.Draw.Command"',
    )
    problems = _check(source)
    assert any("names no CommandDefinition" in p for p in problems), problems


def test_check_reports_a_table_the_console_opens_but_the_app_lacks(
    source: tuple[Path, Path],
) -> None:
    _edit(
        source[0] / "customizations.xml", '<AppModuleComponent type="1" schemaName="contact" />', ""
    )
    problems = _check(source)
    assert any(
        "the agent console opens contact records, but the app does not include that table" in p
        for p in problems
    ), problems


def test_import_fails_on_a_privilege_the_platform_does_not_have(
    source: tuple[Path, Path],
) -> None:
    path = source[0] / "customizations.xml"
    _edit(path, 'name="prvReadActivity" level="Basic"', 'name="prvReadcrmchat_chat" level="Basic"')
    with pytest.raises(SchemaError, match="the import fails: role CRM Chat Agent: privilege "):
        load_schema(path)


def test_import_accepts_a_privilege_in_other_case(source: tuple[Path, Path]) -> None:
    # The platform's lookup ignores case; only `solution check` insists on the spelling.
    path = source[0] / "customizations.xml"
    _edit(path, 'name="prvReadNote" level="Global"', 'name="prvreadnote" level="Global"')
    schema = load_schema(path)
    admin = schema.role_named("CRM Chat Administrator")
    assert admin is not None
    read_notes = privilege_name("Read", schema.tables["annotation"])
    assert effective_depth([admin], read_notes) is AccessLevel.GLOBAL


def test_check_reports_a_relationship_to_a_missing_column(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        "<ReferencingAttributeName>crmchat_WidgetId</ReferencingAttributeName>",
        "<ReferencingAttributeName>crmchat_FormId</ReferencingAttributeName>",
    )
    problems = _check(source)
    assert any("crmchat_chat.crmchat_formid" in p for p in problems), problems


def test_check_reports_xsd_errors(source: tuple[Path, Path]) -> None:
    _edit(source[0] / "customizations.xml", "<Type>nvarchar</Type>", "<Type>varchar2</Type>")
    problems = _check(source)
    assert any("XSD" in p for p in problems), problems


def test_check_reports_a_missing_schemas_folder_instead_of_failing(
    tmp_path: Path, source: tuple[Path, Path]
) -> None:
    problems = check_solution(
        solution_dir=source[0], webresources_dir=source[1], schemas_dir=tmp_path / "nowhere"
    )
    assert len(problems) == 1
    assert "not found" in problems[0]


def test_check_reports_a_root_component_that_does_not_exist(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "solution.xml",
        'schemaName="crmchat_widget" behavior="0"',
        'schemaName="crmchat_gadget" behavior="0"',
    )
    problems = _check(source)
    assert any("crmchat_gadget" in p for p in problems), problems
    assert any("no RootComponent type 1 for crmchat_widget" in p for p in problems), problems


# --- load_schema ----------------------------------------------------------------------


def test_schema_has_the_solution_tables_with_their_sets_and_keys(schema: Schema) -> None:
    expected = {
        "crmchat_agent": ("crmchat_agents", "crmchat_agentid", "crmchat_name"),
        "crmchat_topic": ("crmchat_topics", "crmchat_topicid", "crmchat_name"),
        "crmchat_widget": ("crmchat_widgets", "crmchat_widgetid", "crmchat_name"),
        "crmchat_snippet": ("crmchat_snippets", "crmchat_snippetid", "crmchat_name"),
        "crmchat_chat": ("crmchat_chats", "activityid", "subject"),
        "crmchat_settings": ("crmchat_settingses", "crmchat_settingsid", "crmchat_name"),
        "crmchat_handshake": ("crmchat_handshakes", "crmchat_handshakeid", "crmchat_name"),
    }
    for name, (entity_set, primary_id, primary_name) in expected.items():
        table = schema.tables[name]
        assert (table.entity_set, table.primary_id, table.primary_name) == (
            entity_set,
            primary_id,
            primary_name,
        )
        assert table.is_custom
        assert schema.table_for_set(entity_set) is table
    assert schema.tables["crmchat_settings"].ownership == Ownership.ORGANIZATION
    assert schema.tables["crmchat_handshake"].ownership == Ownership.USER
    assert schema.tables["crmchat_snippet"].alternate_keys == {
        "crmchat_snippet_name": ("crmchat_name",)
    }


def test_schema_columns_carry_types_lengths_and_options(schema: Schema) -> None:
    agent = schema.tables["crmchat_agent"].columns
    assert agent["crmchat_status"].type == ColumnType.PICKLIST
    assert set(agent["crmchat_status"].options.values()) == {"Available", "Busy", "Away", "Offline"}
    assert agent["crmchat_systemuserid"].type == ColumnType.LOOKUP
    assert agent["crmchat_name"].max_length == 100
    assert schema.tables["crmchat_topic"].columns["crmchat_color"].max_length == 7
    widget = schema.tables["crmchat_widget"].columns
    assert widget["crmchat_design"].type == ColumnType.MEMO
    assert widget["crmchat_design"].max_length == 1_048_576
    assert widget["crmchat_enabled"].type == ColumnType.BOOLEAN
    rating = schema.tables["crmchat_chat"].columns["crmchat_rating"]
    assert (rating.type, rating.min_value, rating.max_value) == (ColumnType.INTEGER, 1, 5)
    origin = schema.tables["incident"].columns["caseorigincode"]
    assert origin.options[3] == "Web"
    assert schema.tables["incident"].columns["customerid"].system_required


def test_schema_adds_the_system_columns_an_import_adds(schema: Schema) -> None:
    for name in (*CUSTOM_TABLES, "contact", "incident"):
        columns = schema.tables[name].columns
        for column in ("createdon", "modifiedon", "createdby", "modifiedby", "versionnumber"):
            assert column in columns, (name, column)
        assert columns["statecode"].type == ColumnType.STATE
    agent = schema.tables["crmchat_agent"].columns
    assert agent["ownerid"].type == ColumnType.OWNER
    assert {"owninguser", "owningbusinessunit"} <= agent.keys()
    assert "ownerid" not in schema.tables["crmchat_settings"].columns
    assert not agent["createdon"].valid_for_create


def test_chat_is_an_activity_with_the_activitypointer_columns(schema: Schema) -> None:
    chat = schema.tables["crmchat_chat"]
    assert chat.is_activity
    for column in (
        "activityid",
        "subject",
        "description",
        "actualstart",
        "actualend",
        "actualdurationminutes",
        "regardingobjectid",
        "ownerid",
        "crmchat_transcript",
        "crmchat_visitorid",
    ):
        assert column in chat.columns, column
    assert chat.columns["statecode"].options == {0: "Open", 1: "Completed", 2: "Canceled"}
    assert chat.columns["statuscode"].state_of_status[2] == 1


def test_schema_names_the_navigation_properties_dataverse_uses(schema: Schema) -> None:
    def navigations(table: str) -> dict[str, str]:
        return {r.referencing_navigation: r.referenced_entity for r in schema.lookups_of(table)}

    chat = navigations("crmchat_chat")
    assert chat["regardingobjectid_contact_crmchat_chat"] == "contact"
    assert chat["regardingobjectid_incident_crmchat_chat"] == "incident"
    assert chat["crmchat_WidgetId"] == "crmchat_widget"
    incident = navigations("incident")
    assert incident["customerid_contact"] == "contact"
    assert incident["customerid_account"] == "account"
    assert navigations("contact")["parentcustomerid_account"] == "account"
    assert navigations("annotation")["objectid_crmchat_chat"] == "crmchat_chat"
    assert navigations("crmchat_agent")["crmchat_SystemUserId"] == "systemuser"
    owners = {
        r.referenced_entity
        for r in schema.lookups_of("crmchat_handshake")
        if r.referencing_navigation == "ownerid"
    }
    assert owners == {"systemuser", "team"}


def test_schema_has_the_many_to_many_relationships(schema: Schema) -> None:
    pairs = {
        r.schema_name: (r.entity1, r.entity2, r.intersect_entity, r.entity1_navigation)
        for r in schema.many_to_many
    }
    assert pairs["crmchat_agent_topic"] == (
        "crmchat_agent",
        "crmchat_topic",
        "crmchat_agent_topic",
        "crmchat_agent_topic",
    )
    assert pairs["crmchat_widget_topic"][:2] == ("crmchat_widget", "crmchat_topic")
    assert pairs["systemuserroles_association"][:3] == ("systemuser", "role", "systemuserroles")
    assert pairs["teammembership_association"][:3] == ("systemuser", "team", "teammembership")
    assert pairs["teamroles_association"][:3] == ("team", "role", "teamroles")


def test_schema_has_the_roles_with_their_privileges(schema: Schema) -> None:
    assert {r.name for r in schema.roles} == {
        "CRM Chat Administrator",
        "CRM Chat Agent",
        "CRM Chat App User",
        "CRM Chat Service",
        "CRM Chat Supervisor",
    }
    service = schema.role_named("CRM Chat Service")
    assert service is not None
    assert service.privileges == {"prvActOnBehalfOfAnotherUser": AccessLevel.GLOBAL}
    admin = schema.role_named("CRM Chat Administrator")
    agent = schema.role_named("crm chat agent")
    app_user = schema.role_named("CRM Chat App User")
    assert admin is not None and agent is not None and app_user is not None
    assert admin.id == ADMIN_ROLE_ID
    for table in ("Agent", "Topic", "Widget", "Snippet", "Settings", "Handshake"):
        for action in ("Create", "Read", "Write", "Delete"):
            assert admin.privileges[f"prv{action}crmchat_{table}"] == AccessLevel.GLOBAL
    # The service holds the admin role and writes the chats, which are activities.
    for action in ("Create", "Read", "Write", "Append", "Assign"):
        assert admin.privileges[f"prv{action}Activity"] == AccessLevel.GLOBAL
    # Agents read their own chats; Create on Activity would let them make any activity.
    assert agent.privileges["prvReadActivity"] == AccessLevel.BASIC
    assert "prvCreateActivity" not in agent.privileges
    assert "prvWriteActivity" not in agent.privileges
    assert agent.privileges["prvReadcrmchat_Topic"] == AccessLevel.GLOBAL
    assert agent.privileges["prvReadcrmchat_Snippet"] == AccessLevel.GLOBAL
    assert agent.privileges["prvCreatecrmchat_Snippet"] == AccessLevel.BASIC
    assert agent.privileges["prvWritecrmchat_Snippet"] == AccessLevel.BASIC
    assert admin.privileges["prvWritecrmchat_Snippet"] == AccessLevel.GLOBAL
    assert agent.privileges["prvCreateLead"] == AccessLevel.BASIC
    assert agent.privileges["prvDeletecrmchat_Handshake"] == AccessLevel.BASIC
    assert app_user.privileges["prvCreatecrmchat_Handshake"] == AccessLevel.BASIC
    assert app_user.privileges["prvReadAppModule"] == AccessLevel.GLOBAL
    assert "prvReadActivity" not in app_user.privileges
    # A supervisor is an agent who reads every chat activity, and writes none.
    supervisor = schema.role_named("CRM Chat Supervisor")
    assert supervisor is not None
    assert supervisor.privileges["prvReadActivity"] == AccessLevel.GLOBAL
    assert "prvCreateActivity" not in supervisor.privileges
    assert "prvWriteActivity" not in supervisor.privileges
    assert supervisor.privileges["prvReadcrmchat_Agent"] == AccessLevel.GLOBAL


def test_load_schema_rereads_a_changed_file(source: tuple[Path, Path]) -> None:
    path = source[0] / "customizations.xml"
    before = load_schema(path)
    assert load_schema(path) is before
    _edit(path, "<MaxLength>7</MaxLength>", "<MaxLength>9</MaxLength>")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = load_schema(path)
    assert after.tables["crmchat_topic"].columns["crmchat_color"].max_length == 9


def test_load_schema_rejects_a_relationship_to_a_missing_table(source: tuple[Path, Path]) -> None:
    path = source[0] / "customizations.xml"
    _edit(
        path,
        "<ReferencedEntityName>crmchat_Widget</ReferencedEntityName>",
        "<ReferencedEntityName>crmchat_Gadget</ReferencedEntityName>",
    )
    with pytest.raises(SchemaError, match="crmchat_gadget"):
        load_schema(path)
