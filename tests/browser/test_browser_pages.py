"""The admin's pages in the console (issue 11): the Page panel (an https:// page in an
iframe, with the chat in its query) and the button beside Reject on an offer; an
address that is not https:// is never loaded. Each person in their own browser context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from connector.crm.org_settings import save_chat_enabled
from connector.crm.tables import SETTINGS_ID
from connector.demo import admin_client
from connector.services import services_of


def save_settings(service: Any, new_page: Callable[[], Any], sign_in: Any, **fields: str) -> None:
    """The admin fills the Settings record's form, as in the app."""
    save_chat_enabled(admin_client(services_of(service.app).standin), True)  # the row exists
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.goto(f"{service.url}/app/main#record/crmchat_settings/{SETTINGS_ID}")
    for label, value in fields.items():
        admin.get_by_label(label.replace("_", " "), exact=True).fill(value)
    admin.get_by_test_id("save-record").click()
    expect(admin.locator("form.record-form").get_by_role("status")).to_have_text("Saved.")


def start_chat(new_page: Callable[[], Any], url: str) -> Any:
    visitor = new_page()
    visitor.goto(f"{url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Pam")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Page")
    visitor.get_by_test_id("crmchat-field-email").fill("pam@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    return visitor


def test_the_page_panel_and_the_offer_button_open_the_admins_https_pages_with_the_chat(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    save_settings(
        service,
        new_page,
        sign_in,
        Page_panel_address="https://tools.example/lookup?source=crm",
        Offer_button_address="https://orders.example/find",
        Offer_button_text="Orders",
    )
    sam = agent_console("Sam Sales")
    start_chat(new_page, service.url)

    # Beside Reject, in the toast and in the Incoming list: the chat in the query.
    toast = sam.get_by_test_id("offer-toast").filter(has_text="Pam Page")
    button = toast.get_by_test_id("offer-url-button")
    expect(button).to_have_text("Orders")
    expect(button).to_have_attribute("target", "_blank")
    href = button.get_attribute("href") or ""
    assert href.startswith("https://orders.example/find?")
    conversation_id = toast.get_attribute("data-conversation-id")
    assert parse_qs(urlsplit(href).query)["conversation_id"] == [conversation_id]
    incoming = sam.get_by_test_id("incoming-chat").filter(has_text="Pam Page")
    expect(incoming.get_by_test_id("offer-url-button")).to_have_text("Orders")

    incoming.get_by_test_id("accept-button").click()
    frame = sam.get_by_test_id("page-frame")
    expect(sam.get_by_test_id("page-panel")).to_be_visible()
    src = frame.get_attribute("src") or ""
    query = parse_qs(urlsplit(src).query)
    assert src.startswith("https://tools.example/lookup?")
    assert query["source"] == ["crm"]  # the admin's own query stays
    assert query["conversation_id"] == [conversation_id]
    assert query["email"] == ["pam@example.com"]
    assert query["name"] == ["Pam Page"]
    assert query["topic"] == ["Sales"]
    sandbox = frame.get_attribute("sandbox") or ""
    assert sandbox.split() == ["allow-scripts", "allow-forms", "allow-popups", "allow-same-origin"]


def test_an_address_that_is_not_https_is_never_loaded(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    save_settings(
        service,
        new_page,
        sign_in,
        Page_panel_address="javascript:alert(1)",
        Offer_button_address="http://orders.example/find",
    )
    sam = agent_console("Sam Sales")
    start_chat(new_page, service.url)
    offer = sam.get_by_test_id("incoming-chat").filter(has_text="Pam Page")
    expect(offer).to_have_count(1)
    expect(sam.get_by_test_id("offer-url-button")).to_have_count(0)
    offer.get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("page-note")).to_have_text(
        "The Page panel's address must be an https:// address."
    )
    expect(sam.get_by_test_id("page-frame")).to_be_hidden()
    assert sam.get_by_test_id("page-frame").get_attribute("src") == "about:blank"
