"""Issue 12, masking rules for the whole organisation in real Chromium: an admin sets them
on the settings page (a rule RE2 refuses is named and nothing is saved); then a card
number reaches Sam masked from a web chat of a widget without rules of its own and from a
WhatsApp message on the platform simulator, while the web visitor sees what they typed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_a11y import assert_no_violations
from test_browser_hours import fresh_page_load

from connector.channels.model import ChannelType
from connector.channels.shared import channels_of

CARD_RULE = r"\b\d(?:[ -]?\d){12,18}\b"
CARD = "4111 1111 1111 1111"
MASKED = "*" * len(CARD)


def _set_rules(page: Any, rules: str) -> Any:
    settings = page.frame_locator('iframe[data-subarea="sub_settings"]')
    expect(settings.locator("#signin")).to_have_text("Signed in as CRM Chat Admin.")
    card = settings.get_by_role("region", name="Masking rules")
    card.get_by_label("Rules").fill(rules)
    card.get_by_role("button", name="Save rules").click()
    return card.locator(".result")


def test_the_organisations_rules_mask_web_chats_and_channel_messages_for_agents(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.get_by_role("navigation", name="App navigation").get_by_role(
        "link", name="Settings", exact=True
    ).click()
    result = _set_rules(admin, CARD_RULE + "\n" + r"(\w)\1")  # a backreference
    expect(result).to_contain_text("Rule 2: the pattern is not accepted")
    # The settings page, the rule's error shown, is clean for axe-core (WCAG 2.1 AA).
    assert_no_violations(admin.frame(url=lambda url: "/settings/index.html" in url))
    result = _set_rules(admin, CARD_RULE)
    expect(result).to_have_text("Masking rules saved.")

    visitor = new_page()
    fresh_page_load(visitor, f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-email").fill("ann@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill(f"my card is {CARD}")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text(f"my card is {MASKED}")
    expect(sam.get_by_test_id("messages")).not_to_contain_text(CARD)
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text(f"my card is {CARD}")
    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()

    (whatsapp,) = [
        a for a in channels_of(service.app).accounts.all() if a.channel is ChannelType.WHATSAPP
    ]
    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(whatsapp.key)
    platform.get_by_label("Person id").fill("4670004471")
    platform.get_by_label("Name").fill("Pat Person")
    platform.get_by_label("Message").fill(f"pay with {CARD}")
    platform.get_by_role("button", name="Send as person").click()
    expect(platform.get_by_role("status")).to_have_text("Webhook answered 200.")
    offer = sam.get_by_test_id("incoming-chat")
    expect(offer).to_have_count(1)
    offer.get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("messages")).to_contain_text(f"pay with {MASKED}")
    expect(sam.get_by_test_id("messages")).not_to_contain_text(CARD)
