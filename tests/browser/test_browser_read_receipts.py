"""Read receipts on a web chat (issue 11): the visitor and the agent each in their own
browser context; each sees "Seen" under their own last message the other side read, and
only once that side really had it in view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_workspace import accept_offer, start_visitor_chat


def test_both_sides_see_seen_once_the_other_has_the_chat_in_view(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Rita", "Reader")
    accept_offer(sam, "Rita Reader")

    # Sam has the chat open: what Rita writes is read at once.
    visitor.get_by_test_id("crmchat-input").fill("Is my parcel on its way?")
    visitor.get_by_test_id("crmchat-input").press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Is my parcel on its way?")
    mine = visitor.get_by_test_id("crmchat-message").filter(has_text="Is my parcel")
    expect(mine.get_by_test_id("crmchat-seen")).to_have_text("Seen")

    # Rita minimizes the chat: Sam's answer is not seen until she opens it again.
    visitor.get_by_test_id("crmchat-launcher").click()
    expect(visitor.get_by_test_id("crmchat-input")).to_be_hidden()
    composer = sam.get_by_test_id("message-input")
    composer.fill("Yes, it left this morning.")
    composer.press("Enter")
    answer = sam.get_by_test_id("message").filter(has_text="it left this morning")
    expect(answer).to_be_visible()
    # Rita's widget has the answer (its unread badge), minimized: no receipt follows.
    expect(visitor.get_by_test_id("crmchat-unread")).to_be_visible()
    visitor.wait_for_timeout(300)  # time enough for a wrong receipt to reach Sam
    expect(sam.get_by_test_id("message-seen")).to_have_count(0)
    visitor.get_by_test_id("crmchat-launcher").click()
    expect(answer.get_by_test_id("message-seen")).to_have_text("Seen")

    # Sam's console opened anew still shows it, from the chat the service keeps.
    again = agent_console("Sam Sales")
    again.get_by_test_id("chat-tab").filter(has_text="Rita Reader").click()
    expect(
        again.get_by_test_id("message")
        .filter(has_text="it left this morning")
        .get_by_test_id("message-seen")
    ).to_have_text("Seen")
