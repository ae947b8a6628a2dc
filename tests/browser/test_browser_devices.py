"""A verified visitor's chat on another device, in real Chromium: Bea, a CRM user, starts
a chat from "Chat with an agent" on her desk computer; on her laptop (another browser,
nothing shared with the first) the same launcher shows the running chat, and what she
types there reaches Sam and her desk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_issue4 import open_internal_launcher, start_internal_chat


def test_a_verified_visitor_continues_the_chat_on_another_device(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    desk_page = new_page()
    sign_in(desk_page, "Bea Support")
    desk = open_internal_launcher(desk_page)
    start_internal_chat(desk)
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    desk.get_by_test_id("crmchat-input").fill("Typed at my desk")
    desk.get_by_test_id("crmchat-input").press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Typed at my desk")

    laptop_page = new_page()  # another browser: no cookie, no storage, no token
    sign_in(laptop_page, "Bea Support")
    laptop = open_internal_launcher(laptop_page)
    laptop.get_by_test_id("crmchat-launcher").click()
    expect(laptop.get_by_test_id("crmchat-messages")).to_contain_text("Typed at my desk")
    expect(laptop.get_by_test_id("crmchat-prechat")).to_be_hidden()
    laptop.get_by_test_id("crmchat-input").fill("Now on my laptop")
    laptop.get_by_test_id("crmchat-input").press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Now on my laptop")
    expect(desk.get_by_test_id("crmchat-messages")).to_contain_text("Now on my laptop")
    expect(sam.get_by_test_id("chat-tab")).to_have_count(1)  # one chat, not two
