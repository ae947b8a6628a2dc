"""The service address in a real browser: the settings page sets the environment variable
crmchat_ServiceUrl to an address of the admin's own, and the console, the internal launcher
and the designer then talk to that address, read back through the Web API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from connector.demo import admin_client
from connector.services import services_of
from tests.browser.conftest import CONSOLE_URL
from tests.browser.test_browser_designer import _open_designer
from tests.browser.test_browser_issue4 import open_internal_launcher


def _record_hosts(page: Any) -> list[str]:
    """Every `scheme://host:port` the page (and its frames) sends a request or socket to."""
    seen: list[str] = []

    def note(url: str) -> None:
        parts = urlsplit(url)
        seen.append(f"{parts.scheme}://{parts.netloc}")

    page.on("request", lambda request: note(request.url))
    page.on("websocket", lambda socket: note(socket.url))
    return seen


def test_a_custom_service_address_set_in_settings_is_what_every_page_then_uses(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
) -> None:
    # The same service under another name: a different origin, as a self-hosted service is.
    port = urlsplit(service.url).port
    custom = f"http://localhost:{port}"

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.get_by_role("navigation", name="App navigation").get_by_role(
        "link", name="Settings", exact=True
    ).click()
    settings = admin.frame_locator('iframe[data-subarea="sub_settings"]')
    expect(settings.locator("#signin")).to_have_text("Signed in as CRM Chat Admin.")
    settings.get_by_label("Region").select_option(label="Other address")
    settings.get_by_label("Address").fill(custom + "/chat")
    settings.get_by_role("button", name="Save address").click()
    expect(settings.locator("#address-form .result")).to_contain_text("no path")
    settings.get_by_label("Address").fill("http://chat.example.com")
    settings.get_by_role("button", name="Save address").click()
    expect(settings.locator("#address-form .result")).to_contain_text("Use https://")
    settings.get_by_label("Address").fill(custom)
    settings.get_by_role("button", name="Save address").click()
    expect(settings.locator("#address-form .result")).to_have_text(
        f"Address saved. CRM Chat pages opened from now on use {custom}."
    )

    sam = new_page()
    hosts = _record_hosts(sam)
    sign_in(sam, "Sam Sales")
    open_console(sam)  # online: signed in and its socket open at the custom address
    assert f"http://localhost:{port}" in hosts
    assert f"ws://localhost:{port}" in hosts

    bea = new_page()
    bea_hosts = _record_hosts(bea)
    sign_in(bea, "Bea Support")
    launcher = open_internal_launcher(bea)
    expect(launcher.get_by_test_id("internal-status")).to_contain_text("Bea Support")
    assert f"http://localhost:{port}" in bea_hosts

    admin_hosts = _record_hosts(admin)
    _open_designer(admin)
    assert f"http://localhost:{port}" in admin_hosts


def test_without_a_value_record_a_page_uses_the_definitions_default(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    client = admin_client(services_of(service.app).standin)
    for row in client.list("environmentvariablevalues", select=["environmentvariablevalueid"]):
        client.delete("environmentvariablevalues", row["environmentvariablevalueid"])

    page = new_page()
    sign_in(page, "Sam Sales")
    page.evaluate(
        "() => Xrm.Navigation.navigateTo("
        "{pageType: 'webresource', webresourceName: 'crmchat_/console/index.html'})"
    )
    console = page.frame_locator(f'iframe[src="{CONSOLE_URL}"]')
    address = console.locator("body").evaluate("() => CRMChatSignIn.serviceUrl()")
    assert address == "https://centralus.service.crmchat.cloud"
