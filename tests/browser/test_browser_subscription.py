"""Unsubscribing in Settings, in a real browser: the widget disappears from the demo site,
the agent console says why, and subscribing again brings chat back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.crm import tables
from connector.demo import admin_client
from connector.services import services_of

# Long enough for the widget's config call to have answered (milliseconds).
QUIET_MS = 1500


def test_unsubscribing_hides_widgets_and_the_console_says_why(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    client = admin_client(services_of(service.app).standin)
    widgets_before = len(list(client.list(tables.WIDGETS, select=["crmchat_widgetid"])))
    agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    expect(visitor.get_by_test_id("crmchat-launcher")).to_be_visible()

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.on("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("navigation", name="App navigation").get_by_role(
        "link", name="Settings", exact=True
    ).click()
    settings = admin.frame_locator('iframe[data-subarea="sub_settings"]')
    expect(settings.locator("#subscription-state")).to_contain_text("Subscribed")
    settings.get_by_role("button", name="Unsubscribe").click()
    expect(settings.locator("#subscription-form .result")).to_have_text(
        "Unsubscribed. Chat is stopped everywhere."
    )
    expect(settings.get_by_role("button", name="Subscribe again")).to_be_visible()

    later = new_page()
    with later.expect_response(lambda r: r.url.endswith("/config")) as answered:
        later.goto(f"{service.url}/demo/")
    assert answered.value.json()["enabled"] is False
    later.wait_for_timeout(QUIET_MS)
    expect(later.get_by_test_id("crmchat-launcher")).to_have_count(0)  # no widget at all

    agent = new_page()
    sign_in(agent, "Bea Support")
    agent.evaluate(
        "() => Xrm.Navigation.navigateTo("
        "{pageType: 'webresource', webresourceName: 'crmchat_/console/index.html'})"
    )
    console = agent.frame_locator('iframe[src="/WebResources/crmchat_/console/index.html"]')
    connection = console.get_by_test_id("connection")
    expect(connection).to_have_attribute("data-state", "offline")
    expect(connection).to_contain_text("unsubscribed from CRM Chat")
    # Nothing was deleted.
    assert len(list(client.list(tables.WIDGETS, select=["crmchat_widgetid"]))) == widgets_before

    settings.get_by_role("button", name="Subscribe again").click()
    expect(settings.locator("#subscription-form .result")).to_have_text("Subscribed again.")
    again = new_page()
    again.goto(f"{service.url}/demo/")
    expect(again.get_by_test_id("crmchat-launcher")).to_be_visible()
