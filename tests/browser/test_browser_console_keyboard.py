"""The agent console with the keyboard alone, in real Chromium: Sam reaches an incoming
chat with Tab, accepts it, answers, ends it and confirms without touching the mouse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_a11y import start_chat_by_mouse

CONSOLE = "/WebResources/crmchat_/console/index.html"
# The most key presses from the stand-in's navigation to a console control.
MAX_PRESSES = 80


def focused_in(frame: Any) -> str | None:
    """The data-testid of the element focused inside the console's frame, if any."""
    found: str | None = frame.evaluate(
        "() => document.hasFocus() && document.activeElement"
        " ? document.activeElement.getAttribute('data-testid') : null"
    )
    return found


def press_to(page: Any, frame: Any, test_id: str, *, key: str = "Tab") -> None:
    for _ in range(MAX_PRESSES):
        if focused_in(frame) == test_id:
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} never reached {test_id}; focus is on {focused_in(frame)}")


def test_an_agent_accepts_answers_and_ends_a_chat_with_the_keyboard_alone(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    page = new_page()
    sign_in(page, "Sam Sales")
    console = open_console(page)
    set_status(console, "available")
    frame = page.frame(url=lambda url: CONSOLE in url)
    assert frame is not None

    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    start_chat_by_mouse(visitor)
    expect(console.get_by_test_id("incoming-chat")).to_have_count(1)

    press_to(page, frame, "accept-button")
    page.keyboard.press("Enter")
    expect(console.get_by_test_id("chat-name")).to_contain_text("Ann")
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")

    press_to(page, frame, "message-input")
    page.keyboard.type("Answered without a mouse")
    page.keyboard.press("Enter")
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Answered without a mouse")

    press_to(page, frame, "end-button")
    page.keyboard.press("Enter")
    expect(console.get_by_test_id("end-confirm-box")).to_be_visible()
    if focused_in(frame) == "disposition":  # the topic asks for one: pick the first
        page.keyboard.press("ArrowDown")
    press_to(page, frame, "end-confirm")
    page.keyboard.press("Enter")
    expect(visitor.get_by_test_id("crmchat-star-1")).to_be_visible()  # the visitor rates now
