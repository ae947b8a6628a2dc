"""Issue 12: `startChat({inNewWindow: true})`, the chat in a window of its own.

Omnichannel's live chat SDK: `inNewWindow` "decides whether to open the chat in a new
window" (Microsoft Learn, startChat,
https://learn.microsoft.com/dynamics365/customer-service/develop/reference/methods/startchat).
The page is written as for Omnichannel (fixtures/omnichannel/window.html, only its tag
swapped); the window is the service's `/widget/window/<id>`, and the conversation is the
same one in the page and in the window, before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.browser.test_browser_omnichannel_pages import fill_prechat, site

__all__ = ["site"]  # the customer's site fixture


def say(page: Any, text: str) -> None:
    composer = page.get_by_test_id("crmchat-input")
    composer.fill(text)
    composer.press("Enter")


def test_a_chat_in_progress_moves_to_a_new_window_and_back(
    service: Any, site: str, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{site}/window.html")
    visitor.get_by_test_id("crmchat-launcher").click()
    fill_prechat(visitor, "Wes", "Window", "wes@example.com")
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    say(visitor, "Written on the page")
    expect(sam.get_by_test_id("messages")).to_contain_text("Written on the page")

    with visitor.expect_popup() as opened:
        visitor.get_by_role("button", name="Chat in a new window").click()
    window = opened.value
    assert window.url == f"{service.url}/widget/window/{_widget_id(visitor)}"
    # The same conversation: what was said on the page is there, the panel is the window.
    expect(window.get_by_test_id("crmchat-messages")).to_contain_text("Written on the page")
    expect(window.get_by_test_id("crmchat-launcher")).to_be_hidden()
    expect(window.get_by_test_id("crmchat-minimize")).to_be_hidden()
    expect(visitor.get_by_test_id("crmchat-panel")).to_be_hidden()  # the page's minimized
    say(window, "Written in the window")
    expect(sam.get_by_test_id("messages")).to_contain_text("Written in the window")
    sam.get_by_test_id("message-input").fill("Seen in both")
    sam.get_by_test_id("send-button").click()
    expect(window.get_by_test_id("crmchat-messages")).to_contain_text("Seen in both")

    # The window closed, the page carries on with the whole conversation.
    window.close()
    visitor.get_by_test_id("crmchat-launcher").click()
    messages = visitor.get_by_test_id("crmchat-messages")
    expect(messages).to_contain_text("Written in the window")
    expect(messages).to_contain_text("Seen in both")
    say(visitor, "Back on the page")
    expect(sam.get_by_test_id("messages")).to_contain_text("Back on the page")
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)  # one chat all along


def test_a_chat_started_in_the_window_has_the_pages_context_and_reaches_the_page(
    site: str, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{site}/window.html")
    expect(visitor.get_by_test_id("crmchat-launcher")).to_be_visible()
    with visitor.expect_popup() as opened:
        visitor.get_by_role("button", name="Chat in a new window").click()
    window = opened.value
    fill_prechat(window, "Nia", "Newwindow", "nia@example.com")
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    # The page's context provider gave the context, through the page.
    details = sam.get_by_test_id("additional-details")
    expect(details.get_by_test_id("context-item").filter(has_text="Order")).to_contain_text(
        "SO-1234"
    )
    say(window, "Started in the window")
    expect(sam.get_by_test_id("messages")).to_contain_text("Started in the window")
    # The page took the chat too: its widget shows it and can write in it.
    visitor.get_by_test_id("crmchat-launcher").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Started in the window")
    say(visitor, "And on the page")
    expect(sam.get_by_test_id("messages")).to_contain_text("And on the page")


def _widget_id(page: Any) -> str:
    return str(page.evaluate("window.CRMChat.widgetId"))
