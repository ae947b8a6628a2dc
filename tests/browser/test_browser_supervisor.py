"""The supervisor (issue 11): a user with the CRM Chat Supervisor role and an agent
profile sees every open chat and queue live, reads a chat, messages its agent privately
and joins it; the visitor, an agent and the supervisor each in their own browser context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from playwright.sync_api import expect

from connector.crm.handshake import SignedInUser
from connector.dataverse_local import add_user
from connector.demo import SAM_USER_ID, admin_client
from connector.services import services_of
from connector.web.auth import issue_service_token

SUE_USER_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000909"
SUE_AGENT_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000910"


def add_supervisor(service: Any) -> None:
    """Sue: the solution's CRM Chat Supervisor role and an agent profile of no topic."""
    standin = services_of(service.app).standin
    role = standin.store.schema.role_named("CRM Chat Supervisor")
    assert role is not None
    add_user(
        standin.store,
        domain_name="sue@crmchat.local",
        first_name="Sue",
        last_name="Supervisor",
        user_id=SUE_USER_ID,
        role_ids=[role.id],
    )
    admin_client(standin).create(
        "crmchat_agents",
        {
            "crmchat_name": "Sue",
            "crmchat_email": "sue@crmchat.local",
            "crmchat_SystemUserId@odata.bind": f"/systemusers({SUE_USER_ID})",
        },
        record_id=SUE_AGENT_ID,
    )
    services_of(service.app).directory.invalidate()


def test_a_supervisor_sees_every_chat_and_queue_reads_one_messages_its_agent_and_joins(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    add_supervisor(service)
    sam = agent_console("Sam Sales")
    sue = agent_console("Sue Supervisor", status="busy")
    expect(sue.get_by_test_id("supervisor-panel")).to_be_visible()
    expect(sam.get_by_test_id("supervisor-panel")).to_be_hidden()

    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Gil")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Guest")
    visitor.get_by_test_id("crmchat-field-email").fill("gil@example.com")
    visitor.get_by_test_id("crmchat-start").click()

    # Sue serves no topic, yet sees the waiting chat and the Sales queue.
    row = sue.get_by_test_id("board-chat").filter(has_text="Gil Guest")
    expect(row).to_have_attribute("data-state", "waiting")
    sales = sue.get_by_test_id("board-queue").filter(has_text="Sales")
    expect(sales).to_contain_text("1 waiting · 0 active · 1 of 1 online agents available")
    expect(sue.get_by_test_id("incoming-chat")).to_have_count(0)

    sam.get_by_test_id("incoming-chat").filter(has_text="Gil Guest").get_by_test_id(
        "accept-button"
    ).click()
    expect(row).to_have_attribute("data-state", "active")
    expect(row.get_by_test_id("board-chat-agents")).to_contain_text("Sam")
    expect(sales).to_contain_text("0 waiting · 1 active")
    # Pushed over the socket (supervisor.board): the console never asked for the board.
    asked = sue.locator("body").evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter((entry) => entry.name.includes('/api/agent/supervisor/board')).length"
    )
    assert asked == 0
    visitor.get_by_test_id("crmchat-input").fill("Where is my order 1234?")
    visitor.get_by_test_id("crmchat-input").press("Enter")

    # Read: the transcript, kept up to date while open.
    row.get_by_test_id("board-read").click()
    expect(row.get_by_test_id("board-transcript")).to_contain_text("Where is my order 1234?")
    visitor.get_by_test_id("crmchat-input").fill("It was due Monday.")
    visitor.get_by_test_id("crmchat-input").press("Enter")
    expect(row.get_by_test_id("board-transcript")).to_contain_text("It was due Monday.")

    # A private message to Sam: a consult the visitor never sees.
    row.get_by_test_id("board-message-agent").filter(has_text="Message Sam").click()
    expect(sue.get_by_test_id("chat-name")).to_have_text("Consult: Gil Guest · Sam")
    sue.get_by_test_id("message-input").fill("Offer him express shipping.")
    sue.get_by_test_id("message-input").press("Enter")
    sam.get_by_test_id("chat-tab").filter(has_text="Consult: Gil Guest").click()
    expect(sam.get_by_test_id("messages")).to_contain_text("Offer him express shipping.")

    # Join: Sue is in the chat; the visitor sees that someone joined.
    row.get_by_test_id("board-join").click()
    expect(sue.get_by_test_id("chat-name")).to_have_text("Gil Guest")
    sue.get_by_test_id("message-input").fill("Hello, I am helping Sam with your order.")
    sue.get_by_test_id("message-input").press("Enter")
    messages = visitor.get_by_test_id("crmchat-messages")
    expect(messages).to_contain_text("Sue joined the chat.")
    expect(messages).to_contain_text("Hello, I am helping Sam with your order.")
    expect(messages).not_to_contain_text("express shipping")

    # The service checks the role: an agent's token reads no board.
    sam_user = SignedInUser(SAM_USER_ID, "Sam", "sam@crmchat.local", frozenset({"CRM Chat Agent"}))
    with service.app.app_context():
        token = issue_service_token(sam_user)
    answer = requests.get(
        f"{service.url}/api/agent/supervisor/board",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 403
