"""Sitemap pages opened on their own, in real Chromium: no parent Xrm, so they work through
ClientGlobalContext.js.aspx's GetGlobalContext() and the same-origin Web API, signed in by
the browser's session as in a tenant (docs/solution.md, "Pages opened from the sitemap")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

SETTINGS_AT_TENANT_ADDRESS = "/WebResources/crmchat_/settings/index.html"
REPORTS_AT_TENANT_ADDRESS = "/WebResources/crmchat_/reports/index.html"


def test_the_settings_page_opened_directly_signs_in_through_get_global_context(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    shell = new_page()
    sign_in(shell, "CRM Chat Admin")
    # Another tab of the same browser, straight at the page's address: no shell around it.
    page = shell.context.new_page()
    web_api: list[str] = []
    page.on(
        "request",
        lambda request: web_api.append(request.url) if "/api/data/v9.2/" in request.url else None,
    )
    page.goto(service.url + SETTINGS_AT_TENANT_ADDRESS)
    expect(page.locator("#signin")).to_have_text("Signed in as CRM Chat Admin.")
    assert page.evaluate("() => typeof window.Xrm") == "undefined"
    assert page.evaluate("() => GetGlobalContext().userSettings.userName") == "CRM Chat Admin"
    assert page.evaluate("() => GetGlobalContext().getClientUrl()") == service.url
    # The service address came from the environment variable, read same-origin.
    expect(page.get_by_label("Address")).to_have_value(service.url)
    assert web_api and all(url.startswith(service.url + "/api/data/v9.2/") for url in web_api)


def test_the_reports_page_opened_directly_reads_its_aggregates_same_origin(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    shell = new_page()
    sign_in(shell, "CRM Chat Admin")
    page = shell.context.new_page()
    page.goto(service.url + REPORTS_AT_TENANT_ADDRESS)
    expect(page.locator("#status")).to_contain_text("finished chat")


def test_a_page_opened_without_signing_in_says_where_to_open_it(
    service: Any, new_page: Callable[[], Any]
) -> None:
    page = new_page()
    page.goto(service.url + SETTINGS_AT_TENANT_ADDRESS)
    expect(page.locator("#signin")).to_have_text(
        "Open this page from the CRM Chat app: it signs you in through Dataverse."
    )
    assert page.evaluate("() => typeof window.GetGlobalContext") == "undefined"


def test_the_channel_setup_page_opened_directly_reads_the_secured_token_as_its_user(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    shell = new_page()
    sign_in(shell, "CRM Chat Admin")
    page = shell.context.new_page()
    page.goto(service.url + "/WebResources/crmchat_/channels/index.html")
    expect(page.get_by_test_id("channel-account")).to_have_count(4)
    # retrieveRecord through the same-origin Web API, column security applied to this user.
    messenger = page.locator('[data-channel="messenger"]')
    expect(messenger.get_by_test_id("verify-token")).not_to_have_value("")


def test_the_full_page_console_opened_directly_goes_online(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    shell = new_page()
    sign_in(shell, "Sam Sales")
    page = shell.context.new_page()
    page.goto(service.url + "/WebResources/crmchat_/console/index.html")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online")
    assert page.evaluate("() => GetGlobalContext().userSettings.userName") == "Sam Sales"
