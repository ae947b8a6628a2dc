"""IP masking in real Chromium: set in the designer's Privacy group, a visitor who comes
afterwards shows only their network (127.0.0.0/24) in Sam's Visitors list, in the chat's
visitor facts and on the chat activity; one who came before still shows the address."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_designer import _open_designer
from test_browser_hours import fresh_page_load

FULL, MASKED = "127.0.0.1", "127.0.0.0/24"


def test_after_the_admin_masks_ips_agents_and_the_activity_see_only_the_network(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
) -> None:
    sam = agent_console("Sam Sales")
    before = new_page()
    before.goto(f"{service.url}/demo/")
    expect(sam.get_by_test_id("visitor-ip")).to_have_text([FULL])

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    privacy = designer.get_by_role("group", name="Privacy")
    privacy.get_by_label("Keep only the network part of visitors' IP addresses").check()
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")

    visitor = new_page()
    fresh_page_load(visitor, f"{service.url}/demo/")
    expect(sam.get_by_test_id("visitor-ip")).to_have_count(2)
    expect(sam.get_by_test_id("visitor-item").filter(has_text=MASKED)).to_have_count(1)
    expect(sam.get_by_test_id("visitor-item").filter(has_text=FULL)).to_have_count(1)

    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-email").fill("ann@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("info-ip")).to_contain_text(f"IP {MASKED}")

    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    visitor.get_by_test_id("crmchat-star-5").click()
    row = chat_activity(["crmchat_visitordetails", "crmchat_rating"])
    assert f"IP address: {MASKED}" in row["crmchat_visitordetails"]
    assert f"IP address: {FULL}" not in row["crmchat_visitordetails"]  # the page URL has it
