"""Accessibility in real Chromium: axe-core finds no WCAG 2.1 A/AA violation in the widget
(open, chatting, ended), the agent console and the designer; the widget works with the
keyboard alone; new messages land in a polite live region.

axe-core is vendored under tests/browser/vendor/axe-core/ (version and licence in its
README.md) and injected into the page or frame under test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from test_browser_designer import _open_designer

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# The most Tab presses from the top of the demo page to the widget's launcher: the page's
# own links and buttons come first.
MAX_TABS = 40


def axe_violations(target: Any, include: str | None = None) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 AA violations in a page or frame (only `include`'s subtree)."""
    if not target.evaluate("() => !!window.axe"):
        target.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = target.evaluate(
        """async ([include, tags]) => {
          // Colours are judged as they end up, not halfway through an opening animation.
          const roots = [document, ...[...document.querySelectorAll("*")]
            .filter((e) => e.shadowRoot).map((e) => e.shadowRoot)];
          await Promise.all(roots.flatMap((r) => r.getAnimations())
            .map((a) => a.finished.catch(() => null)));
          const context = include ? { include: [[include]] } : document;
          const result = await axe.run(context, { runOnly: { type: "tag", values: tags },
            resultTypes: ["violations"] });
          return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary })) }));
        }""",
        [include, WCAG_21_AA],
    )
    return found


def assert_no_violations(target: Any, include: str | None = None) -> None:
    violations = axe_violations(target, include)
    assert violations == [], json.dumps(violations, indent=1, ensure_ascii=False)


def focused_test_id(page: Any) -> str | None:
    """The data-testid of the focused element, inside the widget's shadow root too."""
    found: str | None = page.evaluate(
        """() => {
          let at = document.activeElement;
          while (at && at.shadowRoot && at.shadowRoot.activeElement) {
            at = at.shadowRoot.activeElement;
          }
          return at ? at.getAttribute("data-testid") : null;
        }"""
    )
    return found


def tab_to(page: Any, test_id: str, *, key: str = "Tab") -> None:
    for _ in range(MAX_TABS):
        if focused_test_id(page) == test_id:
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} never reached {test_id}; focus is on {focused_test_id(page)}")


def start_chat_by_mouse(visitor: Any) -> None:
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-email").fill("ann@example.com")
    visitor.get_by_test_id("crmchat-start").click()


def test_axe_finds_nothing_in_the_widget_open_chatting_and_ended(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    expect(visitor.get_by_test_id("crmchat-launcher")).to_be_visible()
    assert_no_violations(visitor, "crmchat-widget")

    visitor.get_by_test_id("crmchat-launcher").click()
    expect(visitor.get_by_test_id("crmchat-prechat")).to_be_visible()
    assert_no_violations(visitor, "crmchat-widget")

    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-email").fill("ann@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("Hello, is this accessible?")
    composer.press("Enter")
    sam.get_by_test_id("message-input").fill("It should be!")
    sam.get_by_test_id("send-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("It should be!")
    assert_no_violations(visitor, "crmchat-widget")

    visitor.get_by_test_id("crmchat-end-chat").click()
    expect(visitor.get_by_test_id("crmchat-confirm")).to_be_visible()
    assert_no_violations(visitor, "crmchat-widget")
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    expect(visitor.get_by_test_id("crmchat-star-5")).to_be_visible()
    assert_no_violations(visitor, "crmchat-widget")


def test_a_visitor_opens_chats_sends_ends_and_rates_with_the_keyboard_alone(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    expect(visitor.get_by_test_id("crmchat-launcher")).to_be_visible()
    keys = visitor.keyboard

    tab_to(visitor, "crmchat-launcher")
    keys.press("Enter")
    expect(visitor.get_by_test_id("crmchat-panel")).to_be_visible()
    # Opening moves focus into the form: the first field takes the typing.
    assert focused_test_id(visitor) == "crmchat-field-firstname"
    keys.type("Kim")
    tab_to(visitor, "crmchat-field-email")
    keys.type("kim@example.com")
    keys.press("Enter")  # submits the pre-chat form
    expect(visitor.get_by_test_id("crmchat-status")).to_have_text("Waiting for an agent…")

    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")
    assert focused_test_id(visitor) == "crmchat-input"
    keys.type("Typed without a mouse")
    keys.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Typed without a mouse")

    tab_to(visitor, "crmchat-end-chat", key="Shift+Tab")
    keys.press("Enter")
    expect(visitor.get_by_test_id("crmchat-confirm")).to_be_visible()
    assert focused_test_id(visitor) == "crmchat-confirm-no"
    tab_to(visitor, "crmchat-confirm-yes")
    keys.press("Enter")
    expect(visitor.get_by_test_id("crmchat-star-1")).to_be_visible()
    # The End button is gone with the chat: focus goes on from the rating, not the page top.
    assert focused_test_id(visitor) == "crmchat-star-1"
    tab_to(visitor, "crmchat-star-4")
    keys.press("Enter")
    expect(visitor.get_by_test_id("crmchat-end")).to_contain_text("Thanks for your feedback!")
    assert chat_activity(["crmchat_rating"])["crmchat_rating"] == 4

    # Escape closes the panel and gives focus back to the launcher.
    keys.press("Escape")
    expect(visitor.get_by_test_id("crmchat-panel")).to_be_hidden()
    assert focused_test_id(visitor) == "crmchat-launcher"


def test_new_messages_land_in_a_polite_live_region(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    start_chat_by_mouse(visitor)
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    log = visitor.get_by_test_id("crmchat-messages")
    expect(log).to_have_attribute("role", "log")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(log).to_have_accessible_name("Sam")  # named by the chat's title: the agent

    sam.get_by_test_id("message-input").fill("A new message for you")
    sam.get_by_test_id("send-button").click()
    # The message is added inside the live region (a screen reader reads additions there),
    # not re-rendered around it: the region itself stays the same element.
    handle = log.element_handle()
    expect(log.get_by_test_id("crmchat-message").last).to_contain_text("A new message for you")
    assert log.element_handle().evaluate("(a, b) => a === b", handle)
    added = log.get_by_test_id("crmchat-message").last
    assert added.evaluate("(m) => m.closest('[aria-live]').dataset.testid") == "crmchat-messages"
    # Status changes (waiting, typing, reconnecting) are announced too.
    status = visitor.get_by_test_id("crmchat-status")
    expect(status).to_have_attribute("aria-live", "polite")


def test_axe_finds_nothing_in_the_agent_console_with_a_chat_open(
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
    frame = page.frame(url=lambda url: "/WebResources/crmchat_/console/index.html" in url)
    assert_no_violations(frame)

    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    start_chat_by_mouse(visitor)
    expect(console.get_by_test_id("incoming-chat")).to_have_count(1)
    assert_no_violations(frame)
    console.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(console.get_by_test_id("chat-name")).to_contain_text("Ann")
    assert_no_violations(frame)

    # A chat tab holds no second control: Delete on the focused tab closes it.
    tab = console.get_by_role("tab", name="Ann")
    tab.focus()
    page.keyboard.press("Delete")
    expect(console.get_by_test_id("chat-tab")).to_have_count(0)


def test_axe_finds_nothing_in_the_designer(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "CRM Chat Admin")
    designer = _open_designer(page)
    frame = page.frame(url=lambda url: "/WebResources/crmchat_/designer/index.html" in url)
    assert_no_violations(frame)
    # With a translation table open too.
    languages = designer.get_by_role("group", name="Languages")
    languages.get_by_label("Add a translation").fill("he")
    languages.get_by_role("button", name="Add language").click()
    expect(languages.get_by_label("Type a message…", exact=True)).to_be_visible()
    assert_no_violations(frame)


def test_axe_finds_nothing_in_the_leave_a_message_form_nor_its_answer(
    service: Any, new_page: Callable[[], Any]
) -> None:
    visitor = new_page()  # no agent is Available: the widget offers the message form
    visitor.goto(f"{service.url}/demo/message")
    visitor.get_by_test_id("crmchat-launcher").click()
    form = visitor.get_by_test_id("crmchat-ticket-form")
    expect(form).to_be_visible()
    assert_no_violations(visitor, "crmchat-widget")
    form.get_by_test_id("crmchat-ticket-field-firstname").fill("Lou")
    form.get_by_test_id("crmchat-ticket-field-email").fill("lou@example.com")
    form.get_by_test_id("crmchat-ticket-message").fill("Call me back, please.")
    form.get_by_test_id("crmchat-ticket-submit").click()
    expect(visitor.get_by_test_id("crmchat-ticket-done")).to_contain_text("CAS-")
    assert_no_violations(visitor, "crmchat-widget")
