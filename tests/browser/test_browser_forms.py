"""Records in the stand-in through the solution's own main forms and lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import (
    BEA_AGENT_ID,
    SALES_TOPIC_ID,
    SAM_AGENT_ID,
    SAM_USER_ID,
    SUPPORT_TOPIC_ID,
    admin_client,
)


def _client(service: Any) -> Any:
    return admin_client(service.app.extensions["crmchat.standin"])


def test_an_admin_opens_an_agent_through_its_form_and_sets_its_user(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "CRM Chat Admin")
    nav = page.get_by_role("navigation", name="App navigation")
    nav.get_by_role("link", name="Agents", exact=True).click()
    # The public view's columns, in its order.
    headers = page.locator("table.records thead th")
    expect(headers).to_have_text(["Chat name", "User", "Status", "Email", "Phone", "Created On"])
    page.get_by_role("link", name="Bea", exact=True).click()

    form = page.locator("form.record-form")
    expect(form.locator("legend")).to_have_text(["Agent", "Topics"])
    expect(page.get_by_label("Chat name")).to_have_value("Bea")
    user = page.get_by_label("User *")
    expect(user.locator("option")).to_contain_text(["Sam Sales"])
    user.select_option(label="Sam Sales")
    page.get_by_test_id("save-record").click()
    expect(form.get_by_role("status")).to_have_text("Saved.")

    agent = _client(service).retrieve(
        "crmchat_agents", BEA_AGENT_ID, select=["_crmchat_systemuserid_value"]
    )
    assert agent["_crmchat_systemuserid_value"] == SAM_USER_ID
    page.reload()
    expect(page.get_by_label("User *")).to_have_value(SAM_USER_ID)


def test_an_admin_adds_a_topic_to_an_agent_through_the_subgrid(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "CRM Chat Admin")
    page.goto(f"{service.url}/app/main#record/crmchat_agent/{SAM_AGENT_ID}")
    topics = page.locator('section.related[data-related="crmchat_topic"]')
    expect(topics.get_by_role("link")).to_have_text(["Sales"])
    topics.get_by_label("Add existing Topic").select_option(label="Support")
    topics.get_by_role("button", name="Add existing Topic").click()
    topics = page.locator('section.related[data-related="crmchat_topic"]')
    expect(topics.get_by_role("link")).to_have_text(["Sales", "Support"])

    related = _client(service).list_related(
        "crmchat_agents", SAM_AGENT_ID, "crmchat_agent_topic", select=["crmchat_topicid"]
    )
    assert sorted(r["crmchat_topicid"] for r in related) == sorted(
        [SALES_TOPIC_ID, SUPPORT_TOPIC_ID]
    )
    # The topic's own form lists Sam among its agents now.
    topics.get_by_role("link", name="Support", exact=True).click()
    agents = page.locator('section.related[data-related="crmchat_agent"]')
    expect(agents.get_by_role("link")).to_have_text(["Bea", "Sam"])


def test_a_new_widget_shows_design_and_generate_script_once_saved(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "CRM Chat Admin")
    nav = page.get_by_role("navigation", name="App navigation")
    nav.get_by_role("link", name="Widgets", exact=True).click()
    page.get_by_test_id("new-record").click()
    expect(page.locator("#view h1")).to_have_text("New Widget")
    commands = page.locator("#view button.command")
    # Hidden on the create form by the ribbon's FormStateRule.
    expect(commands).to_have_count(0)
    expect(page.locator('section.related[data-related="crmchat_topic"]')).to_contain_text(
        "Save the record to add topics."
    )

    page.get_by_label("Name *").fill("Partners chat")
    page.get_by_label("Enabled").check()
    page.get_by_test_id("save-record").click()

    expect(page.locator("#view h1")).to_have_text("Partners chat")
    expect(commands).to_have_text(["Design", "Generate Script"])
    found = list(
        _client(service).list(
            "crmchat_widgets",
            select=["crmchat_widgetid", "crmchat_enabled"],
            filter="crmchat_name eq 'Partners chat'",
        )
    )
    assert [row["crmchat_enabled"] for row in found] == [True]
    assert page.url.endswith(found[0]["crmchat_widgetid"])
