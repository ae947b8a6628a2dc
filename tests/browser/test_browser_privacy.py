"""Consent and masking rules in real Chromium: set in the designer, the Sales widget asks
for consent before the chat and stores it with the chat; a card number the visitor types
shows in their own bubble as typed, and masked in Sam's console and in the activity; one
Sam pastes is masked everywhere, his own console too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_designer import _open_designer
from test_browser_hours import fresh_page_load

CONSENT = "I agree that Contoso keeps this chat for 30 days."
CARD_RULE = r"\b\d(?:[ -]?\d){12,18}\b"
CARD = "4111 1111 1111 1111"
MASKED = "*" * len(CARD)


def test_consent_is_asked_and_stored_and_a_card_number_is_masked_for_the_agent(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
) -> None:
    sam = agent_console("Sam Sales")
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    privacy = designer.get_by_role("group", name="Privacy")
    privacy.get_by_label("Ask the visitor to agree before the chat starts (a checkbox)").check()
    privacy.get_by_label("Consent text (stored with the chat)").fill(CONSENT)
    rules = privacy.get_by_label("Masking rules", exact=False)
    rules.fill(r"(\w)\1")  # a backreference: RE2 cannot match it in linear time
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("masking_rules")
    rules.fill(CARD_RULE)
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")

    visitor = new_page()
    fresh_page_load(visitor, f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    expect(visitor.get_by_text(CONSENT)).to_be_visible()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-email").fill("ann@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    # Not ticked: the form does not start the chat.
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)
    visitor.get_by_label(CONSENT).check()
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()

    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill(f"my card is {CARD}")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text(f"my card is {MASKED}")
    expect(sam.get_by_test_id("messages")).not_to_contain_text(CARD)
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text(f"my card is {CARD}")
    # An agent pasting a card number: masked for the visitor and in Sam's own console.
    sam.get_by_test_id("message-input").fill(f"Is it {CARD}?")
    sam.get_by_test_id("send-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text(f"Is it {MASKED}?")
    expect(sam.get_by_test_id("messages")).to_contain_text(f"Is it {MASKED}?")
    expect(sam.get_by_test_id("messages")).not_to_contain_text(CARD)

    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    visitor.get_by_test_id("crmchat-star-4").click()
    row = chat_activity(["crmchat_visitordetails", "crmchat_transcript", "crmchat_rating"])
    assert f"Consent: {CONSENT} (" in row["crmchat_visitordetails"]
    assert f"my card is {MASKED}" in row["crmchat_transcript"]
    assert f"Is it {MASKED}?" in row["crmchat_transcript"]
    assert CARD not in row["crmchat_transcript"]
