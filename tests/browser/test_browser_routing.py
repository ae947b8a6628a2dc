"""Routing in real browsers (issue 11): one agent rings at a time, reject and the answer
time limit move the chat on, capacity queues it; the agents and the visitors each in
their own browser context. The admin's settings go through the app's forms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.services import services_of


def bea_serves_sales_too(service: Any) -> None:
    """Link Bea to the Sales topic (as an admin would on her form's Topics grid)."""
    from connector.crm import tables
    from connector.demo import BEA_AGENT_ID, SALES_TOPIC_ID, admin_client

    client = admin_client(services_of(service.app).standin)
    client.associate(
        tables.AGENTS, BEA_AGENT_ID, tables.AGENT_TOPICS, tables.TOPICS, SALES_TOPIC_ID
    )


def admin_sets(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    record: str,
    label: str,
    value: str,
) -> None:
    """The admin types `value` into the `label` field of `record` and saves it."""
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.goto(f"{service.url}/app/main#record/{record}")
    admin.get_by_label(label).fill(value)
    admin.get_by_test_id("save-record").click()
    expect(admin.locator("form.record-form").get_by_role("status")).to_have_text("Saved.")


def start_visitor_chat(new_page: Callable[[], Any], url: str, first: str) -> Any:
    visitor = new_page()
    visitor.goto(f"{url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill(first)
    visitor.get_by_test_id("crmchat-field-lastname").fill("Visitor")
    visitor.get_by_test_id("crmchat-field-email").fill(f"{first.lower()}@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    expect(visitor.get_by_test_id("crmchat-status")).to_contain_text("Waiting for an agent…")
    return visitor


def test_a_chat_rings_for_one_agent_and_a_reject_rings_the_next(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    bea_serves_sales_too(service)
    services_of(service.app).directory.invalidate()
    sam = agent_console("Sam Sales")
    bea = agent_console("Bea Support")
    visitor = start_visitor_chat(new_page, service.url, "Rita")

    # Neither was offered a chat yet: it rings for the first of them (Sam) only; Bea
    # sees it under Waiting chats.
    expect(sam.get_by_test_id("offer-toast")).to_contain_text("Rita Visitor")
    expect(bea.get_by_test_id("waiting-chat")).to_contain_text("Rita Visitor")
    expect(bea.get_by_test_id("offer-toast")).to_have_count(0)

    sam.get_by_test_id("offer-toast").get_by_test_id("offer-reject").click()
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)
    expect(sam.get_by_test_id("waiting-chat")).to_have_count(0)  # never Sam's again
    expect(bea.get_by_test_id("offer-toast")).to_contain_text("Rita Visitor")
    expect(bea.get_by_test_id("waiting-chat")).to_have_count(0)  # it is in her Incoming
    bea.get_by_test_id("offer-toast").get_by_test_id("offer-accept").click()
    expect(bea.get_by_test_id("chat-name")).to_contain_text("Rita Visitor")
    expect(visitor.get_by_test_id("crmchat-status")).not_to_have_text("Waiting for an agent…")

    # Bea hands it to the Support queue: she leaves it, and it waits there (Sam does
    # not serve Support; the visitor is told).
    bea.get_by_test_id("transfer-button").click()
    bea.get_by_test_id("transfer-queue").filter(has_text="Support").click()
    expect(bea.locator("#chat-state")).to_have_text("Ended")
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text(
        "Bea transferred the chat to the Support queue."
    )
    # Queued again: the visitor's widget waits and shows the chat's new place.
    expect(visitor.get_by_test_id("crmchat-queue")).to_contain_text("You are number 1 in the queue")
    expect(visitor.get_by_test_id("crmchat-status")).to_contain_text("Waiting for an agent…")
    place = visitor.evaluate(
        "Microsoft.Omnichannel.LiveChatWidget.SDK.getAgentAvailability()"
        ".then(a => a.positionInQueue)"
    )
    assert place == 1


def test_an_offer_ringing_past_the_topics_limit_pauses_the_agent_and_rings_the_next(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    from connector.demo import SALES_TOPIC_ID

    admin_sets(
        service,
        new_page,
        sign_in,
        f"crmchat_topic/{SALES_TOPIC_ID}",
        "Answer time limit (seconds)",
        "5",
    )
    bea_serves_sales_too(service)
    services_of(service.app).directory.invalidate()  # as the next refresh would
    sam = agent_console("Sam Sales")
    bea = agent_console("Bea Support")
    start_visitor_chat(new_page, service.url, "Max")
    expect(sam.get_by_test_id("offer-toast")).to_contain_text("Max Visitor")

    # Sam lets it ring: after 5 s he is paused and it rings for Bea.
    expect(sam.get_by_test_id("status-menu")).to_have_value("paused")
    expect(sam.get_by_test_id("status-menu").locator("option:checked")).to_have_text(
        "Paused — missed chat"
    )
    expect(sam.get_by_test_id("toast").first).to_contain_text("Paused — missed chat")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)
    expect(bea.get_by_test_id("offer-toast")).to_contain_text("Max Visitor")
    # Paused, Sam still sees it waiting and could take it; Bea does.
    expect(sam.get_by_test_id("waiting-chat")).to_contain_text("Max Visitor")
    bea.get_by_test_id("offer-toast").get_by_test_id("offer-accept").click()
    expect(sam.get_by_test_id("waiting-chat")).to_have_count(0)
    # Sam comes back by choosing Available.
    set_status(sam, "available")


def test_with_capacity_one_the_second_chat_waits_and_is_offered_when_the_first_ends(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import SAM_AGENT_ID

    admin_sets(service, new_page, sign_in, f"crmchat_agent/{SAM_AGENT_ID}", "Concurrent chats", "1")
    services_of(service.app).directory.invalidate()
    sam = agent_console("Sam Sales")
    first = start_visitor_chat(new_page, service.url, "Una")
    sam.get_by_test_id("offer-toast").get_by_test_id("offer-accept").click()
    expect(sam.get_by_test_id("chat-name")).to_contain_text("Una Visitor")

    start_visitor_chat(new_page, service.url, "Vic")
    # Sam is full: nothing rings; Vic waits in the queue, listed under Waiting chats.
    expect(sam.get_by_test_id("waiting-chat")).to_contain_text("Vic Visitor")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)

    first.get_by_test_id("crmchat-end-chat").click()
    first.get_by_test_id("crmchat-confirm-yes").click()
    # The freed place rings for Vic at once.
    expect(sam.get_by_test_id("offer-toast")).to_contain_text("Vic Visitor")
    expect(sam.get_by_test_id("waiting-chat")).to_have_count(0)


def test_a_topics_chats_per_agent_limit_queues_its_second_chat_within_the_agents_capacity(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import SALES_TOPIC_ID

    # Sam keeps his own three places; Sales gives him one of its chats at a time.
    admin_sets(
        service, new_page, sign_in, f"crmchat_topic/{SALES_TOPIC_ID}", "Chats per agent", "1"
    )
    services_of(service.app).directory.invalidate()
    sam = agent_console("Sam Sales")
    first = start_visitor_chat(new_page, service.url, "Una")
    sam.get_by_test_id("offer-toast").get_by_test_id("offer-accept").click()
    expect(sam.get_by_test_id("chat-name")).to_contain_text("Una Visitor")

    start_visitor_chat(new_page, service.url, "Vic")
    expect(sam.get_by_test_id("waiting-chat")).to_contain_text("Vic Visitor")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)

    first.get_by_test_id("crmchat-end-chat").click()
    first.get_by_test_id("crmchat-confirm-yes").click()
    expect(sam.get_by_test_id("offer-toast")).to_contain_text("Vic Visitor")


def test_a_chat_in_wrapup_holds_the_agents_place_until_it_is_closed(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import SALES_TOPIC_ID, SAM_AGENT_ID

    admin_sets(service, new_page, sign_in, f"crmchat_agent/{SAM_AGENT_ID}", "Concurrent chats", "1")
    admin_sets(
        service,
        new_page,
        sign_in,
        f"crmchat_topic/{SALES_TOPIC_ID}",
        "Dispositions (one per line)",
        "Sold\nNo interest",
    )
    services_of(service.app).directory.invalidate()
    sam = agent_console("Sam Sales")
    first = start_visitor_chat(new_page, service.url, "Una")
    sam.get_by_test_id("offer-toast").get_by_test_id("offer-accept").click()
    expect(sam.get_by_test_id("chat-name")).to_contain_text("Una Visitor")
    first.get_by_test_id("crmchat-end-chat").click()
    first.get_by_test_id("crmchat-confirm-yes").click()
    expect(sam.locator("#chat-state")).to_have_text("Wrap-up")

    # Block capacity for wrap-up is Yes by default: Vic waits while Sam chooses.
    start_visitor_chat(new_page, service.url, "Vic")
    expect(sam.get_by_test_id("waiting-chat")).to_contain_text("Vic Visitor")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)

    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("disposition-select").select_option("Sold")
    sam.get_by_test_id("end-confirm").click()
    expect(sam.get_by_test_id("offer-toast")).to_contain_text("Vic Visitor")
