"""The agent workspace in real browsers (issue 11): the composer and incoming-chat
notifications, with the agents and the visitor each in their own browser context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect


def start_visitor_chat(new_page: Callable[[], Any], url: str, first: str, last: str) -> Any:
    """A visitor on the demo shop (Sales widget) who starts a chat and waits."""
    visitor = new_page()
    visitor.goto(f"{url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill(first)
    visitor.get_by_test_id("crmchat-field-lastname").fill(last)
    visitor.get_by_test_id("crmchat-field-email").fill(f"{first.lower()}@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    expect(visitor.get_by_test_id("crmchat-status")).to_have_text("Waiting for an agent…")
    return visitor


def accept_offer(console: Any, name: str) -> None:
    offer = console.get_by_test_id("incoming-chat").filter(has_text=name)
    offer.get_by_test_id("accept-button").click()
    expect(console.get_by_test_id("chat-name")).to_contain_text(name)


def last_visitor_bubble(visitor: Any) -> Any:
    return visitor.get_by_test_id("crmchat-messages").get_by_test_id("crmchat-message").last


def test_the_composer_inserts_snippets_and_emoticons_and_enter_sends_shift_enter_breaks(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Ann", "Composer")
    accept_offer(sam, "Ann Composer")
    composer = sam.get_by_test_id("message-input")

    # A snippet picked from the dropdown (found by typing part of its name) lands where
    # the cursor is, after what the agent had typed.
    composer.fill("Welcome. ")
    sam.get_by_test_id("snippet-button").click()
    sam.get_by_test_id("snippet-filter").fill("hou")
    expect(sam.get_by_test_id("snippet-item")).to_have_count(1)
    sam.get_by_test_id("snippet-item").click()
    expect(sam.get_by_test_id("snippet-picker")).to_be_hidden()
    expect(composer).to_have_value("Welcome. We are here Monday to Friday, 9:00 to 17:00 (Central European Time).")
    composer.press("Enter")
    expect(last_visitor_bubble(visitor)).to_contain_text("Welcome. We are here Monday to Friday")
    expect(composer).to_have_value("")

    # Shift+Enter makes a new line and does not send; `#name#` in the middle of a message
    # is expanded by the service; an emoticon from the picker goes in at the cursor.
    composer.press_sequentially("Line one #thanks#")
    composer.press("Shift+Enter")
    composer.press_sequentially("Line two ")
    expect(composer).to_have_value("Line one #thanks#\nLine two ")
    sam.get_by_test_id("emoji-button").click()
    sam.get_by_test_id("emoji-item").filter(has_text="👍").click()
    expect(composer).to_have_value("Line one #thanks#\nLine two 👍")
    expect(visitor.get_by_test_id("crmchat-messages")).not_to_contain_text("Line one")
    composer.press("Enter")
    bubble = last_visitor_bubble(visitor)
    expect(bubble).to_contain_text("Line one Thank you for chatting with us!")
    expect(bubble).to_contain_text("Line two 👍")
    # The new line is kept and shown as one: two lines of text in the visitor's bubble and
    # in the agent's own log.
    assert "Thank you for chatting with us!\nLine two 👍" in bubble.inner_text()
    agent_bubble = sam.get_by_test_id("messages").get_by_test_id("message-text").last
    assert "Thank you for chatting with us!\nLine two 👍" in agent_bubble.inner_text()
