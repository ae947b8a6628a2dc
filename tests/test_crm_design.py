"""The widget design: defaults for every option, validation, the visitor's display name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from connector.crm.design import (
    FONTS,
    MAX_FIELDS,
    WIDGET_TEXT_KEYS,
    DesignError,
    FieldsError,
    WidgetDesign,
    parse_design,
)


def test_an_empty_design_has_a_default_for_every_option() -> None:
    design = parse_design(None)
    assert design == parse_design("") == parse_design("{}") == WidgetDesign()
    assert [f.name for f in design.fields] == ["firstname", "lastname", "email"]
    assert [f.type for f in design.fields] == ["text", "text", "email"]
    assert design.display_name_template == "{firstname} {lastname}"
    assert design.title == "Chat with us"
    assert (design.start_button, design.send_button) == ("Start chat", "Send")
    assert design.show_agent_image and design.emoji and design.rating
    assert (design.confirm_end.message, design.confirm_end.yes, design.confirm_end.no) == (
        "End this chat?",
        "Yes",
        "No",
    )
    assert design.end.type == "text" and design.end.title and design.end.link is None
    assert design.colors.primary == "#0f6cbd"
    assert design.font == "Segoe UI" and design.font in FONTS
    assert design.label_position == "above" and design.corners == "rounded"


def test_the_published_json_reads_back_the_same() -> None:
    design = parse_design(
        json.dumps(
            {
                "title": "Hi",
                "end": {"type": "link", "link": "https://shop.example/thanks"},
                "colors": {"primary": "#ABCDEF"},
                "font": "Verdana",
            }
        )
    )
    assert parse_design(design.model_dump_json()) == design
    assert design.colors.primary == "#abcdef"  # stored lower case
    assert design.colors.background == "#ffffff"  # the rest keep their defaults


def test_unknown_keys_are_ignored_at_every_level() -> None:
    design = parse_design(
        '{"future_option": 1, "confirm_end": {"message": "Sure?", "icon": "x"},'
        ' "fields": [{"name": "company", "label": "Company", "placeholder": "ACME"}]}'
    )
    assert design.confirm_end.message == "Sure?"
    assert [f.name for f in design.fields] == ["company"]
    assert "future_option" not in design.model_dump()


@pytest.mark.parametrize(
    "color",
    ["red", "#12345", "#ggg", "0f6cbd", "#fff;background:url(x)", "", "#0f6cbd00"],
)
def test_colours_must_be_hex(color: str) -> None:
    with pytest.raises(DesignError, match="colors.primary"):
        parse_design(json.dumps({"colors": {"primary": color}}))


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "/thanks",
        "//evil.example/x",
        "https://",
        'https://ok.example/"onmouseover="x',
        "ftp://files.example/x",
    ],
)
def test_end_links_must_be_absolute_http_urls(link: str) -> None:
    with pytest.raises(DesignError, match="end.link"):
        parse_design(json.dumps({"end": {"type": "link", "link": link}}))


def test_an_end_link_design_needs_its_link() -> None:
    with pytest.raises(DesignError, match="needs a link"):
        parse_design('{"end": {"type": "link"}}')
    ok = parse_design('{"end": {"type": "link", "link": "http://shop.example/thanks?a=1"}}')
    assert ok.end.link == "http://shop.example/thanks?a=1"


@pytest.mark.parametrize(
    "design",
    [
        {"title": "x" * 101},
        {"send_button": ""},
        {"start_button": "x" * 41},
        {"confirm_end": {"yes": ""}},
        {"end": {"text": "x" * 1001}},
        {"display_name_template": "x" * 201},
        {"font": "Papyrus"},
        {"font": "Arial</style><script>"},
        {"label_position": "below"},
        {"corners": "wavy"},
        {"rating": "maybe"},
        {"delay_ms": -1},
        {"fields": [{"name": "first name", "label": "First"}]},
        {"fields": [{"name": "__proto__", "label": "x"}]},
        {"fields": [{"name": "a", "label": "A"}, {"name": "a", "label": "B"}]},
        {"fields": [{"name": "a", "label": "A", "type": "password"}]},
        {"fields": [{"name": f"f{i}", "label": "F"} for i in range(MAX_FIELDS + 1)]},
    ],
)
def test_options_out_of_bounds_are_refused(design: dict[str, object]) -> None:
    with pytest.raises(DesignError):
        parse_design(json.dumps(design))


@pytest.mark.parametrize("text", ["{", "[1, 2]", '"a string"', "null"])
def test_a_design_must_be_a_json_object(text: str) -> None:
    with pytest.raises(DesignError):
        parse_design(text)


def test_display_name_follows_the_template() -> None:
    design = WidgetDesign()
    assert design.display_name({"firstname": " Ann ", "lastname": "Lee"}) == "Ann Lee"
    assert design.display_name({"firstname": "Ann"}) == "Ann"
    custom = parse_design('{"display_name_template": "{company}: {firstname}"}')
    assert custom.display_name({"company": "ACME", "firstname": "Bo"}) == "ACME: Bo"


@pytest.mark.parametrize("fields", [{}, {"firstname": "  ", "lastname": ""}, {"email": "a@b.c"}])
def test_display_name_falls_back_to_visitor(fields: dict[str, str]) -> None:
    assert WidgetDesign().display_name(fields) == "Visitor"


def test_a_template_with_nothing_typed_names_the_visitor_visitor() -> None:
    # "ask name and email" off: no field was asked, so no placeholder has a value.
    design = parse_design('{"display_name_template": "{firstname} from {company}"}')
    assert design.display_name({}) == "Visitor"
    assert design.display_name({"company": "ACME"}) == "from ACME"


def test_display_name_is_not_a_format_string_and_is_bounded() -> None:
    design = parse_design('{"display_name_template": "{firstname.__class__} {0} {lastname}"}')
    assert design.display_name({"firstname": "Ann", "lastname": "Lee"}) == (
        "{firstname.__class__} {0} Lee"
    )
    long = WidgetDesign().display_name({"firstname": "A\x00\u202eB" + "x" * 500})
    assert len(long) <= 100 and "\x00" not in long and "\u202e" not in long


def test_check_fields_keeps_the_designs_fields_only() -> None:
    clean = WidgetDesign().check_fields(
        {"firstname": " Ann ", "email": "ann@shop.example", "admin": "yes"}
    )
    assert clean == {"firstname": "Ann", "email": "ann@shop.example"}


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"email": "ann@shop.example"}, "firstname: required"),
        ({"firstname": "Ann", "email": "not-an-address"}, "email: not an email"),
        ({"firstname": "x" * 501, "email": "a@b.co"}, "at most 500"),
        ({"firstname": ["Ann"], "email": "a@b.co"}, "must be text"),
    ],
)
def test_check_fields_refuses_bad_input(values: dict[str, object], problem: str) -> None:
    with pytest.raises(FieldsError, match=problem):
        WidgetDesign().check_fields(values)


def test_translations_are_kept_by_lower_case_language_and_published() -> None:
    design = parse_design(
        json.dumps(
            {
                "language": "EN",
                "translations": {
                    "he-IL": {"title": "דברו איתנו", "field.email": 'דוא"ל', "open": "פתח"},
                    "ar": {"confirm_end.yes": "نعم", "transcriptDownload": "تنزيل"},
                },
            }
        )
    )
    assert design.language == "en"
    published = design.model_dump(mode="json")["translations"]
    assert published["he-il"] == {"title": "דברו איתנו", "field.email": 'דוא"ל', "open": "פתח"}
    assert published["ar"]["confirm_end.yes"] == "نعم"


@pytest.mark.parametrize(
    ("translations", "problem"),
    [
        ({"he": {"nonsense": "x"}}, "nonsense is not a widget text"),
        ({"he": {"field.company": "x"}}, "field.company is not a widget text"),
        ({"he": {"title": ""}}, "at least 1 character"),
        ({"he": {"title": "x" * 1001}}, "at most 1000 characters"),
        ({"<script>": {"title": "x"}}, "translations"),
        ({"e": {"title": "x"}}, "translations"),
        ({f"en-x{i:02d}": {"title": "x"} for i in range(41)}, "at most 40 items"),
    ],
)
def test_translations_give_only_widget_texts_within_limits(
    translations: dict[str, dict[str, str]], problem: str
) -> None:
    with pytest.raises(DesignError) as raised:
        parse_design(json.dumps({"translations": translations}))
    assert problem in str(raised.value)


def test_every_text_the_widget_has_may_be_translated() -> None:
    folder = Path(__file__).resolve().parent.parent / "webresources" / "widget"
    block = re.compile(r"const DEFAULT_TEXTS = \{(.*?)\n  \};", re.S)
    texts = block.search((folder / "widget.js").read_text(encoding="utf-8"))
    extras = block.search((folder / "extras.js").read_text(encoding="utf-8"))
    assert texts is not None and extras is not None
    keys = re.findall(r"(\w+): \"", texts.group(1) + extras.group(1))
    assert len(keys) > 30
    assert sorted(keys) == sorted(WIDGET_TEXT_KEYS)
