"""The solution's forms and views: what each table shows, and the checks that guard them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from connector.solution.check import check_solution
from connector.solution.layouts import QueryType
from connector.solution.model import Schema
from connector.solution.paths import SOLUTION_DIR
from connector.solution.reader import SchemaError, load_schema

APP_TABLES = (
    "crmchat_agent",
    "crmchat_topic",
    "crmchat_label",
    "crmchat_widget",
    "crmchat_snippet",
    "crmchat_chat",
    "crmchat_settings",
)
# The tables people create by hand: each ships a quick create form.
HAND_MADE_TABLES = (
    "crmchat_agent",
    "crmchat_topic",
    "crmchat_label",
    "crmchat_widget",
    "crmchat_snippet",
)
# Machine data of the chat: JSON a person cannot read, never on its form.
CHAT_MACHINE_COLUMNS = {
    "crmchat_visitorinfo",
    "crmchat_participants",
    "crmchat_context",
    "crmchat_labels",
}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema()


def _edit(path: Path, pattern: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    changed, count = re.subn(pattern, new, text, count=1, flags=re.DOTALL)
    assert count == 1, f"{pattern!r} not in {path.name}"
    path.write_text(changed, encoding="utf-8")


def _check(source: tuple[Path, Path]) -> list[str]:
    return check_solution(solution_dir=source[0], webresources_dir=source[1])


def _fields(schema: Schema, table: str) -> list[str]:
    form = schema.main_form(table)
    assert form is not None, table
    return [f.column for f in form.fields()]


def _subgrids(schema: Schema, table: str) -> set[tuple[str, str]]:
    form = schema.main_form(table)
    assert form is not None, table
    return {(g.relationship, g.target) for g in form.subgrids()}


# --- what the solution ships ---------------------------------------------------------


def test_every_app_table_has_a_main_form_and_the_five_views(schema: Schema) -> None:
    for table in APP_TABLES:
        assert schema.main_form(table) is not None, table
        for kind in QueryType:
            view = schema.view_of(table, kind)
            assert view is not None, (table, kind)
            assert view.columns, (table, kind)
            assert schema.tables[table].primary_name in view.columns, (table, kind)


def test_tables_made_by_hand_offer_their_quick_create_form(schema: Schema) -> None:
    # A tenant shows a quick create form only on a table enabled for quick create
    # (EntityMetadata.IsQuickCreateEnabled); the chat, written by the service, has none.
    root = ET.parse(SOLUTION_DIR / "customizations.xml").getroot()
    enabled = {
        (entity.findtext("Name") or "").lower(): entity.findtext(
            "EntityInfo/entity/IsQuickCreateEnabled"
        )
        for entity in root.iterfind("Entities/Entity")
    }
    quick = {f.table for f in schema.forms if f.type == "quick"}
    assert quick == set(HAND_MADE_TABLES)
    for table in APP_TABLES:
        assert enabled[table] == ("1" if table in HAND_MADE_TABLES else "0"), table


def test_the_handshake_is_not_in_the_app_and_has_no_form(schema: Schema) -> None:
    # Only the service writes sign-in handshakes; nobody opens one.
    assert schema.main_form("crmchat_handshake") is None


def test_agent_form_has_the_user_the_contact_details_the_picture_and_topics(
    schema: Schema,
) -> None:
    fields = _fields(schema, "crmchat_agent")
    for column in ("crmchat_systemuserid", "crmchat_name", "crmchat_email", "crmchat_phone"):
        assert column in fields
    assert "crmchat_image" in fields
    assert _subgrids(schema, "crmchat_agent") == {("crmchat_agent_topic", "crmchat_topic")}


def test_topic_form_has_its_colour_and_its_agents_and_widgets(schema: Schema) -> None:
    assert "crmchat_color" in _fields(schema, "crmchat_topic")
    assert _subgrids(schema, "crmchat_topic") == {
        ("crmchat_agent_topic", "crmchat_agent"),
        ("crmchat_widget_topic", "crmchat_widget"),
    }


def test_widget_form_has_enabled_and_topics_but_never_its_secret_or_design(
    schema: Schema,
) -> None:
    fields = _fields(schema, "crmchat_widget")
    assert "crmchat_enabled" in fields
    assert "crmchat_secret" not in fields and "crmchat_design" not in fields
    assert _subgrids(schema, "crmchat_widget") == {("crmchat_widget_topic", "crmchat_topic")}


def test_chat_form_reads_as_a_conversation_without_raw_json(schema: Schema) -> None:
    fields = _fields(schema, "crmchat_chat")
    for column in (
        "subject",
        "crmchat_widgetid",
        "regardingobjectid",
        "actualstart",
        "actualend",
        "actualdurationminutes",
        "crmchat_rating",
        "crmchat_agentid",
        "crmchat_transcript",
        "crmchat_participantnames",
        "crmchat_visitordetails",
    ):
        assert column in fields, column
    assert not CHAT_MACHINE_COLUMNS & set(fields)


def test_the_chat_keeps_its_reports_view_beside_the_five(schema: Schema) -> None:
    names = {v.name for v in schema.views if v.table == "crmchat_chat"}
    assert "Finished chats (reports)" in names
    assert len(names) == 6


def test_quick_find_searches_the_name_and_lists_active_records(schema: Schema) -> None:
    view = schema.view_of("crmchat_agent", QueryType.QUICK_FIND)
    assert view is not None
    searched = {c.column for c in view.conditions if c.quick_find}
    assert searched == {"crmchat_name", "crmchat_email"}
    assert any(c.column == "statecode" and c.value == "0" for c in view.conditions)


# --- solution check and import --------------------------------------------------------


def test_check_reports_a_table_without_its_main_form(source: tuple[Path, Path]) -> None:
    # The first main form in the file is the agent's.
    _edit(source[0] / "customizations.xml", r'<forms type="main">.*?</forms>\s*', "")
    problems = _check(source)
    assert any("crmchat_agent: no main form" in p for p in problems), problems


def test_check_reports_a_quick_create_form_nobody_would_see(source: tuple[Path, Path]) -> None:
    # The first IsQuickCreateEnabled in the file is the agent's.
    _edit(
        source[0] / "customizations.xml",
        r"<IsQuickCreateEnabled>1</IsQuickCreateEnabled>",
        "<IsQuickCreateEnabled>0</IsQuickCreateEnabled>",
    )
    problems = _check(source)
    assert problems == [
        "customizations.xml: crmchat_agent: ships a quick create form but"
        " IsQuickCreateEnabled is not 1"
    ], problems


def test_check_reports_a_table_without_its_lookup_view(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        r"<querytype>64</querytype>",
        "<querytype>8192</querytype>",
    )
    problems = _check(source)
    assert any("crmchat_agent: no lookup view (querytype 64)" in p for p in problems), problems


def test_import_fails_on_a_form_field_that_is_not_a_column(source: tuple[Path, Path]) -> None:
    path = source[0] / "customizations.xml"
    _edit(path, r'datafieldname="crmchat_phone"', 'datafieldname="crmchat_fax"')
    with pytest.raises(SchemaError, match="field crmchat_fax is not a column of crmchat_agent"):
        load_schema(path)
    problems = _check(source)
    assert any("field crmchat_fax is not a column of crmchat_agent" in p for p in problems)


@pytest.mark.parametrize(
    ("pattern", "replacement", "error"),
    [
        # A view's column, a view's filter, a subgrid's relationship: missing or wrong.
        (
            r'<cell name="crmchat_color"',
            '<cell name="crmchat_colour"',
            "crmchat_colour is not a column of crmchat_topic",
        ),
        (
            r'<condition attribute="crmchat_email"',
            '<condition attribute="crmchat_mail"',
            "crmchat_mail is not a column of crmchat_agent",
        ),
        (
            r"<RelationshipName>crmchat_agent_topic</RelationshipName>",
            "<RelationshipName>crmchat_agent_topics</RelationshipName>",
            "'crmchat_agent_topics' does not exist",
        ),
        (
            # The agent form's topics grid through the widget's relationship.
            r"<RelationshipName>crmchat_agent_topic</RelationshipName>",
            "<RelationshipName>crmchat_widget_topic</RelationshipName>",
            "crmchat_widget_topic does not join crmchat_agent to crmchat_topic",
        ),
    ],
)
def test_import_fails_on_a_view_or_subgrid_naming_what_does_not_exist(
    source: tuple[Path, Path], pattern: str, replacement: str, error: str
) -> None:
    path = source[0] / "customizations.xml"
    _edit(path, pattern, replacement)
    with pytest.raises(SchemaError, match=re.escape(error)):
        load_schema(path)
