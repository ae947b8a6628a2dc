"""Issue 8 in the stand-in: the agent console in the app's side pane."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import ANN_CONTACT_ID, SALES_WIDGET_ID

PANE_FRAME = 'iframe[data-pane="crmchat_console"]'


def test_the_side_pane_console_keeps_chatting_while_the_agent_opens_a_contact(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    set_status: Callable[[Any, str], None],
) -> None:
    page = new_page()
    sign_in(page, "Sam Sales")
    page.get_by_test_id("open-console-pane").click()
    console = page.frame_locator(PANE_FRAME)
    expect(console.get_by_test_id("connection")).to_have_attribute("data-state", "online")
    set_status(console, "available")
    expect(page.get_by_test_id("sidepane-tab")).to_have_text("CRM Chat")

    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Smith")
    visitor.get_by_test_id("crmchat-field-email").fill("ann.smith@example.com")
    visitor.get_by_test_id("crmchat-start").click()

    # The pane's badge counts the chat offered to Sam, and clears once he takes it.
    badge = page.get_by_test_id("sidepane-badge")
    expect(badge).to_have_text("1")
    console.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(badge).to_be_hidden()
    page.evaluate(f"() => {{ document.querySelector('{PANE_FRAME}').contentWindow.kept = 1; }}")

    # Sam opens a contact in the main area; the console beside it is the same page.
    page.evaluate(
        "(id) => Xrm.Navigation.navigateTo("
        "{pageType: 'entityrecord', entityName: 'contact', entityId: id})",
        ANN_CONTACT_ID,
    )
    expect(page.locator("#view h1")).to_have_text("Ann Smith")
    assert page.evaluate(f"() => document.querySelector('{PANE_FRAME}').contentWindow.kept") == 1

    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("Are you still there?")
    composer.press("Enter")
    expect(console.get_by_test_id("messages")).to_contain_text("Are you still there?")
    console.get_by_test_id("message-input").fill("Yes, I have your record open.")
    console.get_by_test_id("send-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text(
        "Yes, I have your record open."
    )


def test_the_widget_form_carries_design_and_generate_script_from_the_ribbon(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "CRM Chat Admin")
    page.evaluate(
        "(id) => Xrm.Navigation.navigateTo("
        "{pageType: 'entityrecord', entityName: 'crmchat_widget', entityId: id})",
        SALES_WIDGET_ID,
    )
    commands = page.locator("#view button.command")
    expect(commands).to_have_text(["Design", "Generate Script"])

    page.get_by_role("button", name="Generate Script", exact=True).click()
    designer = page.frame_locator("#frames iframe:visible")
    expect(designer.get_by_test_id("designer-widget-name")).to_have_text("Sales chat")
    script = designer.get_by_test_id("designer-script")
    expect(script).to_be_visible()
    expect(script).to_have_value(re.compile(SALES_WIDGET_ID))
