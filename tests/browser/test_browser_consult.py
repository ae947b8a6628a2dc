"""Ask for assistance (consult, issue 11): a private thread between the chat's agent and
another agent, in their own browser contexts, that never reaches the visitor and is kept
as an internal note on the chat activity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect


def test_a_consult_stays_between_the_agents_and_becomes_a_note_on_the_chat_activity(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
    activity_notes: Callable[[str, list[str]], list[dict[str, Any]]],
) -> None:
    sam = agent_console("Sam Sales")
    bea = agent_console("Bea Support")  # another topic: an expert may be asked all the same

    # Every frame the visitor's browser receives, to show the consult is never among them.
    visitor = new_page()
    received: list[str] = []
    visitor.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda payload: received.append(str(payload))),
    )
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Cora")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Consult")
    visitor.get_by_test_id("crmchat-field-email").fill("cora@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").filter(has_text="Cora Consult").get_by_test_id(
        "accept-button"
    ).click()
    expect(sam.get_by_test_id("chat-name")).to_have_text("Cora Consult")

    # Sam asks Bea; the consult opens beside the chat for Sam and as a tab for Bea.
    sam.get_by_test_id("consult-button").click()
    sam.get_by_test_id("consult-agent").filter(has_text="Bea").click()
    expect(sam.get_by_test_id("chat-name")).to_have_text("Consult: Cora Consult · Bea")
    expect(sam.get_by_test_id("chat-banner")).to_contain_text("the customer never sees")
    expect(sam.get_by_test_id("end-button")).to_be_hidden()
    sam.get_by_test_id("message-input").fill("Does the Pro plan include phone support?")
    sam.get_by_test_id("message-input").press("Enter")

    bea_tab = bea.get_by_test_id("chat-tab").filter(has_text="Consult: Cora Consult")
    expect(bea_tab).to_have_count(1)
    bea_tab.click()
    expect(bea.get_by_test_id("chat-name")).to_have_text("Consult: Cora Consult · Sam")
    expect(bea.get_by_test_id("messages")).to_contain_text("Does the Pro plan include phone")
    bea.get_by_test_id("message-input").fill("Only the Enterprise plan, ask for a quote.")
    bea.get_by_test_id("message-input").press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Only the Enterprise plan")
    # Bea is not in the customer's chat: she has the consult only.
    expect(bea.get_by_test_id("chat-tab")).to_have_count(1)

    # Back in the customer's chat Sam answers; the visitor sees that and nothing else.
    sam.get_by_test_id("chat-tab").filter(has_text="Cora Consult").filter(
        has_not_text="Consult:"
    ).click()
    sam.get_by_test_id("message-input").fill("Phone support comes with Enterprise.")
    sam.get_by_test_id("message-input").press("Enter")
    messages = visitor.get_by_test_id("crmchat-messages")
    expect(messages).to_contain_text("Phone support comes with Enterprise.")
    expect(messages).not_to_contain_text("Pro plan include")
    assert any("Phone support comes with Enterprise." in frame for frame in received)
    for secret in ("Pro plan include", "Only the Enterprise plan", "Bea"):
        assert not any(secret in frame for frame in received), secret

    # The chat ends; its consult ends with it for both agents.
    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()
    expect(bea.locator("#chat-state")).to_have_text("Ended")
    visitor.get_by_test_id("crmchat-star-4").click()

    chat = chat_activity(["activityid", "crmchat_transcript", "crmchat_rating"])
    assert "Phone support comes with Enterprise." in chat["crmchat_transcript"]
    assert "Pro plan" not in chat["crmchat_transcript"]
    notes = activity_notes(chat["activityid"], ["subject", "notetext"])
    assert len(notes) == 1
    assert notes[0]["subject"] == "Consult (internal): Sam and Bea"
    assert "Sam: Does the Pro plan include phone support?" in notes[0]["notetext"]
    assert "Bea: Only the Enterprise plan, ask for a quote." in notes[0]["notetext"]
