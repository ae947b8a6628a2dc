"""Records in the stand-in through the solution's own main forms and lists."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chat_fakes import write_chat
from playwright.sync_api import expect

from connector.crm.chat_activity import FinishedChat
from connector.crm.regarding import Regarding
from connector.dataverse_local import ADMIN_USER_ID
from connector.demo import (
    ANN_CASE_ID,
    ANN_CONTACT_ID,
    BEA_AGENT_ID,
    SALES_TOPIC_ID,
    SALES_WIDGET_ID,
    SAM_AGENT_ID,
    SAM_USER_ID,
    SUPPORT_TOPIC_ID,
    admin_client,
)
from connector.services import services_of


def _client(service: Any) -> Any:
    return admin_client(services_of(service.app).standin)


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
    expect(user.locator("option")).to_contain_text(["CRM Chat Admin", "Sam Sales"])
    status = form.get_by_role("status")
    # Sam has an agent already: one agent per user (the table's alternate key).
    user.select_option(label="Sam Sales")
    page.get_by_test_id("save-record").click()
    expect(status).to_contain_text("Could not save: A record that has the attribute values")
    user.select_option(label="CRM Chat Admin")
    page.get_by_test_id("save-record").click()
    expect(status).to_have_text("Saved.")

    agent = _client(service).retrieve(
        "crmchat_agents", BEA_AGENT_ID, select=["_crmchat_systemuserid_value"]
    )
    assert agent["_crmchat_systemuserid_value"] == ADMIN_USER_ID
    page.reload()
    expect(page.get_by_label("User *")).to_have_value(ADMIN_USER_ID)


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


def test_a_finished_chat_about_a_case_shows_on_its_customers_timeline(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    # Regarding Ann's case, not Ann: only its From party puts it on her timeline.
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    chat = FinishedChat(
        conversation_id=str(uuid.uuid4()),
        widget_id=SALES_WIDGET_ID,
        topic_names=["Sales"],
        visitor_name="Ann Smith",
        visitor_fields={},
        visitor_id="v-1",
        page=f"{service.url}/demo/",
        ip="127.0.0.1",
        started_at=started,
        accepted_at=started + timedelta(seconds=10),
        ended_at=started + timedelta(minutes=3),
        owner_user_id=SAM_USER_ID,
        participants=[{"kind": "agent", "id": SAM_AGENT_ID, "name": "Sam"}],
        rating=None,
        transcript=[],
        regarding=Regarding(table="incident", id=ANN_CASE_ID, name="Ann's case"),
        contact={"id": ANN_CONTACT_ID, "name": "Ann Smith"},
    )
    write_chat(_client(service), chat)

    page = new_page()
    sign_in(page, "Sam Sales")
    page.evaluate(
        "(id) => Xrm.Navigation.navigateTo("
        "{pageType: 'entityrecord', entityName: 'contact', entityId: id})",
        ANN_CONTACT_ID,
    )
    expect(page.locator("#view h1")).to_have_text("Ann Smith")
    item = page.get_by_test_id("timeline-item").filter(has_text="Sales")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Chat")
    item.get_by_role("link", name="Sales").click()
    expect(page.get_by_label("Regarding")).to_have_value(re.compile("."))
    # The chat form reads as text: who took part, no JSON.
    expect(page.get_by_label("Participants")).to_have_value("Sam (agent)")
    expect(page.get_by_label("Visitor", exact=True)).to_have_value(
        re.compile(r"^Ann Smith\nPage: ")
    )
