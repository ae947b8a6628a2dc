"""What the stand-in draws from the solution's forms and views (no browser)."""

from __future__ import annotations

import dataclasses

import pytest

from connector.solution.layouts import QueryType, ViewCondition
from connector.solution.reader import load_schema
from connector.web.standin import app_description
from connector.web.standin_forms import describe_view


def test_lists_use_the_public_views_columns_filter_and_order() -> None:
    agents = app_description(load_schema())["entities"]["crmchat_agent"]
    assert [c["label"] for c in agents["columns"]][:3] == ["Chat name", "User", "Status"]
    assert agents["columns"][1]["wire"] == "_crmchat_systemuserid_value"
    assert agents["list"] == {"filter": "statecode eq 0", "orderby": "crmchat_name"}


def test_forms_say_how_each_field_is_edited_and_which_grids_add_existing() -> None:
    entities = app_description(load_schema())["entities"]
    items = [
        item
        for tab in entities["crmchat_agent"]["form"]["tabs"]
        for section in tab["sections"]
        for item in section["items"]
    ]
    user = next(i for i in items if i.get("name") == "crmchat_systemuserid")
    assert user["lookup"]["navigation"] == "crmchat_SystemUserId"
    assert user["lookup"]["set"] == "systemusers"
    owner = next(i for i in items if i.get("name") == "ownerid")
    assert (owner["create"], owner["update"]) == (False, False)
    grid = next(i for i in items if i["kind"] == "subgrid")
    assert (grid["navigation"], grid["associate"]) == ("crmchat_agent_topic", True)


def test_a_view_filter_the_stand_in_cannot_translate_is_refused_not_dropped() -> None:
    schema = load_schema()
    view = schema.view_of("crmchat_agent", QueryType.PUBLIC)
    assert view is not None
    odd = dataclasses.replace(view, conditions=(ViewCondition("crmchat_name", "begins-with", "A"),))
    with pytest.raises(ValueError, match="operator 'begins-with' is not supported"):
        describe_view(schema, odd)
    typed = dataclasses.replace(
        view, conditions=(ViewCondition("crmchat_status", "eq", "100000000"),)
    )
    assert describe_view(schema, typed)["filter"] == "crmchat_status eq 100000000"
