"""The console changes only the rows an event concerns (issue 14): a row of the visitors
list, the incoming list or the chat window survives, as the same DOM node, events about
other visitors and other messages. Redrawing every list on every event cost 75 ms of CPU
per event at 200 visitors and 50 chats, and lost what the agent had selected or hovered.
Each row is marked with an attribute the console never writes: a row drawn afresh loses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.browser.test_browser_issue13 import start_chat

MARK = "n => n.setAttribute('data-kept', 'yes')"


def say(visitor: Any, text: str) -> None:
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill(text)
    composer.press("Enter")


def test_a_visitors_row_survives_events_about_other_visitors(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    first = new_page()
    first.goto(f"{service.url}/demo/")
    rows = sam.get_by_test_id("visitor-item")
    expect(rows).to_have_count(1)
    rows.first.evaluate(MARK)
    second = new_page()
    start_chat(service, second)  # a second visitor arrives, then asks for a chat
    expect(rows).to_have_count(2)
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(1)
    expect(rows.first).to_have_attribute("data-kept", "yes")
    expect(rows.nth(1)).not_to_have_attribute("data-kept", "yes")


def test_an_incoming_chat_and_a_message_survive_unrelated_events(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    gus = new_page()
    start_chat(service, gus)
    incoming = sam.get_by_test_id("incoming-chat")
    expect(incoming).to_have_count(1)
    incoming.first.evaluate(MARK)
    other = new_page()
    other.goto(f"{service.url}/demo/")  # another visitor on the site
    expect(sam.get_by_test_id("visitor-item")).to_have_count(2)
    expect(incoming.first).to_have_attribute("data-kept", "yes")

    incoming.first.get_by_test_id("accept-button").click()
    expect(gus.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")
    chat_row = sam.get_by_test_id("visitor-chat-item")
    expect(chat_row).to_have_count(1)
    say(gus, "first question")
    messages = sam.get_by_test_id("messages").get_by_test_id("message")
    first_message = messages.filter(has_text="first question")
    expect(first_message).to_have_count(1)
    first_message.evaluate(MARK)
    say(gus, "second question")
    expect(messages.filter(has_text="second question")).to_have_count(1)
    # The new message added its row; the one before it is the same node.
    expect(first_message).to_have_attribute("data-kept", "yes")
