"""A whole visitor chat in real browsers: the demo website's widget, two agents' consoles in
the app stand-in, and the chat activity it leaves in the embedded Dataverse.

Three browser contexts are three people: Sam Sales (topic Sales), Bea Support (topic
Support) and a website visitor. The demo site's home page carries the Sales widget.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID, SAM_USER_ID, admin_client
from connector.services import services_of


def visitor_messages(page: Any) -> Any:
    return page.get_by_test_id("crmchat-messages").get_by_test_id("crmchat-message")


def test_a_visitor_chats_with_the_sales_agent_and_the_chat_lands_in_dataverse(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
    chat_activity: Callable[[list[str]], dict[str, Any]],
) -> None:
    sam_page = new_page()
    sign_in(sam_page, "Sam Sales")
    sam = open_console(sam_page, from_nav=True)
    set_status(sam, "available")

    bea_page = new_page()
    sign_in(bea_page, "Bea Support")
    bea = open_console(bea_page, from_nav=True)
    set_status(bea, "available")

    # The visitor opens the demo site; the Sales widget shows because Sam is Available.
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    launcher = visitor.get_by_test_id("crmchat-launcher")
    expect(launcher).to_be_visible()
    launcher.click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Visitor")
    visitor.get_by_test_id("crmchat-field-email").fill("ann.visitor@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    expect(visitor.get_by_test_id("crmchat-status")).to_have_text("Waiting for an agent…")

    # Sam (topic Sales) is offered the chat and accepts it.
    offer = sam.get_by_test_id("incoming-chat")
    expect(offer).to_have_count(1)
    expect(offer).to_contain_text("Ann Visitor")
    offer.get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)
    expect(sam.get_by_test_id("chat-name")).to_contain_text("Ann Visitor")
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")

    # Bea (topic Support) never saw the chat nor its visitor.
    expect(bea.get_by_test_id("incoming-chat")).to_have_count(0)
    expect(bea.get_by_test_id("visitor-item")).to_have_count(0)
    expect(bea.get_by_test_id("visitors-panel")).not_to_contain_text("Ann")

    # They talk: the visitor asks, the agent answers with a snippet.
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("Hi! Do you deliver to Lyon?")
    composer.press("Enter")
    agent_log = sam.get_by_test_id("messages")
    expect(agent_log).to_contain_text("Hi! Do you deliver to Lyon?")

    sam.get_by_test_id("message-input").fill("#hello#")
    sam.get_by_test_id("send-button").click()
    expect(visitor_messages(visitor).last).to_contain_text("Hello! How can I help you today?")
    expect(visitor_messages(visitor).last).to_have_attribute("data-kind", "agent")

    # The visitor moves to another page of the site: the chat carries on there.
    visitor.get_by_role("link", name="See our prices").click()
    visitor.wait_for_url(f"{service.url}/demo/pricing")
    expect(visitor.get_by_test_id("crmchat-panel")).to_be_visible()
    log = visitor.get_by_test_id("crmchat-messages")
    expect(log).to_contain_text("Hi! Do you deliver to Lyon?")
    expect(log).to_contain_text("Hello! How can I help you today?")

    # ... and answers with an emoji from the picker.
    visitor.get_by_test_id("crmchat-emoji").click()
    visitor.get_by_test_id("crmchat-emoji-option").filter(has_text="👍").click()
    composer = visitor.get_by_test_id("crmchat-input")
    composer.press("End")
    composer.press_sequentially(" Great, thanks")
    composer.press("Enter")
    expect(agent_log).to_contain_text("👍 Great, thanks")

    # The agent makes the visitor a contact; the chat is now regarding it.
    sam.get_by_test_id("create-contact").click()
    expect(sam.get_by_test_id("regarding")).to_contain_text("Ann Visitor")

    # The visitor ends the chat (confirming) and rates it.
    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    visitor.get_by_test_id("crmchat-star-4").click()
    expect(visitor.get_by_test_id("crmchat-end")).to_contain_text("Thanks for your feedback!")

    dataverse = admin_client(services_of(service.app).standin)
    chat = chat_activity(
        [
            "subject",
            "crmchat_transcript",
            "crmchat_rating",
            "crmchat_participants",
            "crmchat_visitorinfo",
            "_regardingobjectid_value",
            "_crmchat_widgetid_value",
            "_ownerid_value",
        ]
    )
    contacts = list(
        dataverse.list(
            "contacts",
            select=["contactid", "fullname"],
            filter="emailaddress1 eq 'ann.visitor@example.com'",
        )
    )
    assert [c["fullname"] for c in contacts] == ["Ann Visitor"]
    assert chat["_regardingobjectid_value"] == contacts[0]["contactid"]
    assert chat["_crmchat_widgetid_value"] == SALES_WIDGET_ID
    assert chat["_ownerid_value"] == SAM_USER_ID
    assert chat["crmchat_rating"] == 4
    transcript = chat["crmchat_transcript"]
    for line in (
        "] Ann Visitor: Hi! Do you deliver to Lyon?",
        "] Sam: Hello! How can I help you today?",
        "] Ann Visitor: 👍 Great, thanks",
    ):
        assert line in transcript, transcript
    assert "#hello#" not in transcript
    agents = [p for p in json.loads(chat["crmchat_participants"]) if p["kind"] == "agent"]
    assert [p["name"] for p in agents] == ["Sam"]
    info = json.loads(chat["crmchat_visitorinfo"])
    assert info["fields"]["email"] == "ann.visitor@example.com"
    assert info["page"].startswith(f"{service.url}/demo/")

    # Sam opens the contact: the finished chat is on its timeline, and opens from there.
    sam_page.evaluate(
        "(id) => Xrm.Navigation.navigateTo("
        "{pageType: 'entityrecord', entityName: 'contact', entityId: id})",
        contacts[0]["contactid"],
    )
    item = sam_page.get_by_test_id("timeline-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Chat")
    expect(item).to_contain_text(chat["subject"])
    item.get_by_role("link", name=chat["subject"]).click()
    expect(sam_page.get_by_label("Transcript")).to_have_value(
        re.compile("Ann Visitor: Hi! Do you deliver")
    )


def test_no_widget_shows_while_no_agent_of_its_topic_is_available(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    # Sam (Sales) is Available, but the support page's widget needs a Support agent.
    sam_page = new_page()
    sign_in(sam_page, "Sam Sales")
    set_status(open_console(sam_page, from_nav=True), "available")

    visitor = new_page()
    visitor.goto(f"{service.url}/demo/support")
    expect(visitor.get_by_test_id("crmchat-root")).to_be_attached()
    launcher = visitor.get_by_test_id("crmchat-launcher")
    expect(launcher).to_be_hidden()

    # Bea (Support) signs in but is Away: still nothing.
    bea_page = new_page()
    sign_in(bea_page, "Bea Support")
    bea = open_console(bea_page, from_nav=True)
    set_status(bea, "away")
    visitor.wait_for_timeout(500)
    expect(launcher).to_be_hidden()

    # Bea becomes Available: the widget appears without a reload ...
    set_status(bea, "available")
    expect(launcher).to_be_visible()

    # ... and goes away again when she leaves.
    bea_page.close()
    expect(launcher).to_be_hidden()
