""" "Send a new message" on the contact and the case forms' command bars (the solution's
RibbonDiffXml, crmchat_/ribbon/records.js): the console opens with the New message panel
set to the contact, or to the case's contact with the conversation regarding the case,
listing only the channel accounts the person wrote to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.channels.model import ChannelType
from connector.channels.shared import channels_of
from connector.demo import ANN_CASE_ID, ANN_CONTACT_ID

CASE_TITLE = "Order 1001 arrived with a bent wheel"


def _console(page: Any, table: str) -> Any:
    """The console the command opened (its address carries the record)."""
    console = page.frame_locator(f"iframe[src*='/console/index.html?data=message|{table}|']")
    expect(console.get_by_test_id("connection")).to_have_attribute("data-state", "online")
    return console


def test_the_contact_and_case_forms_open_a_new_message_to_the_person(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    (messenger,) = [
        a for a in channels_of(service.app).accounts.all() if a.channel is ChannelType.MESSENGER
    ]
    page = new_page()
    sign_in(page, "Sam Sales")
    sam = open_console(page)
    set_status(sam, "available")
    # Earlier: Ann wrote on Messenger and Sam linked her to her contact.
    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(messenger.key)
    platform.get_by_label("Person id").fill("psid-8008")
    platform.get_by_label("Message").fill("Any news on my wheel?")
    platform.get_by_role("button", name="Send as person").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    sam.get_by_test_id("link-query").fill("Ann")
    sam.get_by_test_id("link-search").click()
    sam.get_by_test_id("link-result").filter(has_text="Ann Smith").get_by_test_id(
        "link-choose"
    ).click()
    expect(sam.get_by_test_id("regarding")).to_have_text("Contact: Ann Smith")
    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()
    expect(sam.get_by_test_id("message-input")).to_be_disabled()

    # On Ann's contact form: the button opens the console set to her.
    page.evaluate(f"location.hash = 'record/contact/{ANN_CONTACT_ID}'")
    page.get_by_role("button", name="Send a new message").click()
    console = _console(page, "contact")
    result = console.get_by_test_id("outbound-result")
    expect(result).to_have_count(1)  # the channels Ann wrote on: Messenger only
    expect(result).to_have_text("Ann Smith · Messenger (Contoso on Messenger)Message")

    # On her case's form: the conversation regards the case.
    page.evaluate(f"location.hash = 'record/incident/{ANN_CASE_ID}'")
    page.get_by_role("button", name="Send a new message").click()
    console = _console(page, "incident")
    set_status(console, "available")
    result = console.get_by_test_id("outbound-result")
    expect(result).to_have_text(
        f"Ann Smith · Messenger (Contoso on Messenger) · regarding {CASE_TITLE}Message"
    )
    result.get_by_test_id("outbound-start").click()
    expect(console.get_by_test_id("messages")).to_contain_text(
        "Sam started this conversation on Messenger."
    )
    expect(console.get_by_test_id("regarding")).to_have_text(f"Case: {CASE_TITLE}")


def test_the_new_message_button_is_not_on_a_contact_being_created(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "Sam Sales")
    page.evaluate(f"location.hash = 'record/contact/{ANN_CONTACT_ID}'")
    expect(page.get_by_role("button", name="Send a new message")).to_have_count(1)
    page.evaluate("location.hash = 'new/contact'")
    expect(page.get_by_role("heading").first).to_be_visible()
    expect(page.get_by_role("button", name="Send a new message")).to_have_count(0)
