"""A messaging channel end to end: a person writes on the platform simulator, the
conversation is offered in the agent console like a web chat, the agent's reply arrives
on the simulator, and the ended conversation is a chat activity in the embedded
Dataverse with its channel and the person's platform id."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from connector.channels.model import ChannelAccount, ChannelType
from connector.channels.shared import channels_of
from connector.channels.templates import do_sync_templates
from connector.channels.webhooks import webhook_path
from connector.channels.wire import meta_message_body, signed_request
from connector.demo import admin_client
from connector.services import services_of

ACTIVITY_WAIT_SECS = 15.0


def _account(service: Any, channel: ChannelType) -> ChannelAccount:
    (account,) = [a for a in channels_of(service.app).accounts.all() if a.channel is channel]
    return account


def _platform_lines(service: Any, account: ChannelAccount, person: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{service.url}/simulator/api/conversation",
        params={"account": account.key, "person": person},
        timeout=10,
    )
    lines: list[dict[str, Any]] = answer.json()["lines"]
    return lines


def _activity(service: Any, person: str) -> dict[str, Any]:
    dataverse = admin_client(services_of(service.app).standin)
    deadline = time.monotonic() + ACTIVITY_WAIT_SECS
    while True:
        chats = list(
            dataverse.list(
                "crmchat_chats",
                select=["crmchat_transcript", "crmchat_visitordetails", "crmchat_visitorid"],
            )
        )
        if chats:
            (chat,) = chats
            found: dict[str, Any] = chat
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no chat activity for {person} in Dataverse")
        time.sleep(0.25)


# (channel, its label, the person's name): WhatsApp's and Viber's webhooks carry it,
# Messenger's and Instagram's come from their User Profile APIs.
CHANNELS = [
    (ChannelType.MESSENGER, "Messenger · Contoso on Messenger", "Pat Person"),
    (ChannelType.INSTAGRAM, "Instagram · @contoso", "Pat Person"),
    (ChannelType.WHATSAPP, "WhatsApp · Contoso +1 555 0100", "Pat Person"),
    (ChannelType.VIBER, "Viber · Contoso bot", "Pat Person"),
]


@pytest.mark.parametrize(("channel", "label", "name"), CHANNELS)
def test_a_person_on_a_channel_is_answered_from_the_console(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    channel: ChannelType,
    label: str,
    name: str,
) -> None:
    sam = agent_console("Sam Sales")  # topic Sales, which the demo accounts route to
    messenger = _account(service, channel)
    person = "4670004471" if channel is ChannelType.WHATSAPP else "psid-4471"

    # The person writes on the simulator's page: a signed webhook to the service.
    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(messenger.key)
    platform.get_by_label("Person id").fill(person)
    platform.get_by_label("Name").fill("Pat Person")
    platform.get_by_label("Message").fill("Do you ship to Oslo?")
    platform.get_by_role("button", name="Send as person").click()
    expect(platform.get_by_role("status")).to_have_text("Webhook answered 200.")

    # Offered to Sam like a web chat, with its channel shown instead of a widget.
    offer = sam.get_by_test_id("incoming-chat")
    expect(offer).to_have_count(1)
    expect(offer.get_by_test_id("chat-channel")).to_have_text(label)
    offer.get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("messages")).to_contain_text("Do you ship to Oslo?")
    expect(sam.get_by_test_id("info-channel")).to_have_text(label)
    rule = sam.get_by_test_id("channel-rule")
    if channel is ChannelType.VIBER:
        expect(rule).to_have_text("Viber: Replies allowed.")
    else:
        expect(rule).to_contain_text(f"{label.split(' · ')[0]}: Replies allowed until ")
        after = {
            ChannelType.WHATSAPP: "; then only approved templates (the 24-hour window has closed).",
            ChannelType.MESSENGER: "; then only a human agent's reply until ",
            ChannelType.INSTAGRAM: "; then only a human agent's reply until ",
        }[channel]
        expect(rule).to_contain_text(after)

    # Sam answers with a snippet; it reaches the person on the platform, once.
    sam.get_by_test_id("message-input").fill("#hello#")
    sam.get_by_test_id("send-button").click()
    business = platform.locator("#lines li[data-sender=business] .text")
    expect(business).to_have_text("Hello! How can I help you today?")
    # A second message from the person continues the same conversation.
    platform.get_by_label("Message").fill("Great, thanks")
    platform.get_by_role("button", name="Send as person").click()
    expect(sam.get_by_test_id("messages")).to_contain_text("Great, thanks")
    assert [line["text"] for line in _platform_lines(service, messenger, person)] == [
        "Do you ship to Oslo?",
        "Hello! How can I help you today?",
        "Great, thanks",
    ]

    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()

    chat = _activity(service, person)
    assert f"{name}: Do you ship to Oslo?" in chat["crmchat_transcript"]
    assert "Sam: Hello! How can I help you today?" in chat["crmchat_transcript"]
    assert label.split(" · ")[0] in chat["crmchat_visitordetails"]
    assert person in chat["crmchat_visitordetails"]
    assert chat["crmchat_visitorid"] == f"channel:{messenger.key}:{person}"


def test_outside_the_24_hour_window_the_console_offers_only_templates(
    service: Any, agent_console: Callable[..., Any]
) -> None:
    whatsapp = _account(service, ChannelType.WHATSAPP)
    channels = channels_of(service.app)
    # An administrator has synced the business account's templates (the setup page's
    # button; its own test below).
    assert do_sync_templates(services_of(service.app).dataverse, channels.clients.meta, whatsapp)
    sam = agent_console("Sam Sales")
    person = "4670000001"
    # A message the platform delivers 25 hours late: the window it opened has closed.
    body = meta_message_body(
        whatsapp,
        person_id=person,
        person_name="Wes",
        message_id="wamid.late-1",
        at=datetime.now(UTC) - timedelta(hours=25),
        text="hi",
    )
    raw, headers = signed_request(whatsapp, body)
    answer = requests.post(service.url + webhook_path(whatsapp), data=raw, headers=headers)
    assert answer.status_code == 200
    offer = sam.get_by_test_id("incoming-chat")
    expect(offer.get_by_test_id("chat-channel")).to_contain_text("WhatsApp")
    offer.get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("messages")).to_contain_text("hi")
    expect(sam.get_by_test_id("channel-rule")).to_have_text(
        "WhatsApp: Only approved templates (the 24-hour window has closed)."
    )
    # Free text is closed (the service refuses it too: tests/test_channels_templates.py).
    expect(sam.get_by_test_id("message-input")).to_be_disabled()
    expect(sam.get_by_test_id("message-input")).to_have_attribute(
        "placeholder", "The 24-hour window has closed: send an approved template."
    )
    expect(sam.get_by_test_id("send-button")).to_be_disabled()

    sam.get_by_test_id("template-button").click()
    choice = sam.get_by_test_id("template-choice")
    # The approved ones (the pending one is not offered).
    expect(choice.locator("option")).to_have_text(
        [
            "delivery_slot (en_US)",
            "follow_up (en_US)",
            "order_update (en_US)",
            "receipt_photo (en_US)",
        ]
    )
    choice.select_option(label="order_update (en_US)")
    params = sam.get_by_test_id("template-param")
    expect(params).to_have_count(2)
    params.nth(0).fill("Wes")
    params.nth(1).fill("1042")
    expect(sam.get_by_test_id("template-preview")).to_have_text(
        "Hi Wes, your order 1042 has shipped.\n\nContoso"
    )
    sam.get_by_test_id("template-send").click()
    expect(sam.get_by_test_id("messages")).to_contain_text(
        "[Template order_update] Hi Wes, your order 1042 has shipped."
    )
    deadline = time.monotonic() + ACTIVITY_WAIT_SECS
    while not (lines := _platform_lines(service, whatsapp, person)):
        assert time.monotonic() < deadline, "the template never reached the platform"
        time.sleep(0.2)
    assert [line["text"] for line in lines if line["sender"] == "business"] == [
        "[template order_update (en_US)] Wes | 1042"
    ]
    expect(sam.get_by_test_id("message-receipt").last).to_have_text("Delivered")

    # A template with a header variable and a URL button's variable asks for both.
    sam.get_by_test_id("template-button").click()
    sam.get_by_test_id("template-choice").select_option(label="delivery_slot (en_US)")
    params = sam.get_by_test_id("template-param")
    expect(params).to_have_count(3)
    sam.get_by_label("Header {{1}}").fill("Wes")
    sam.get_by_label("Body {{1}}").fill("Friday")
    sam.get_by_label("Button {{1}}").fill("1042")
    expect(sam.get_by_test_id("template-preview")).to_have_text(
        "Delivery for Wes\n\nYour parcel arrives on Friday.\n\n"
        "[Track it] https://contoso.example/track/1042 [Call me]"
    )
    sam.get_by_test_id("template-send").click()
    deadline = time.monotonic() + ACTIVITY_WAIT_SECS
    while len(lines := _platform_lines(service, whatsapp, person)) < 2:
        assert time.monotonic() < deadline, "the second template never reached the platform"
        time.sleep(0.2)
    assert lines[-1]["text"] == "[template delivery_slot (en_US)] Wes | Friday | 1042"


def test_the_setup_page_shows_what_to_paste_and_tests_each_connection(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.get_by_role("navigation", name="App navigation").get_by_role(
        "link", name="Channel setup", exact=True
    ).click()
    setup = admin.frame_locator('iframe[data-subarea="sub_channels"]')
    cards = setup.get_by_test_id("channel-account")
    expect(cards).to_have_count(4)

    messenger = _account(service, ChannelType.MESSENGER)
    card = setup.locator(f'[data-account-id="{messenger.key}"]')
    expect(card.get_by_test_id("webhook-url")).to_have_value(
        f"{service.url}/channels/{messenger.key}/webhook"
    )
    # The administrator reads the secured column through Xrm.WebApi (as in Dataverse).
    assert messenger.verify_token is not None
    expect(card.get_by_test_id("verify-token")).to_have_value(
        messenger.verify_token.get_secret_value()
    )
    card.get_by_test_id("test-connection").click()
    expect(card.get_by_test_id("test-result")).to_have_text(
        "Connected: Messenger knows this account as Contoso on Messenger."
    )

    whatsapp = setup.locator('[data-channel="whatsapp"]')
    whatsapp.get_by_test_id("sync-templates").click()
    expect(whatsapp.get_by_test_id("sync-result")).to_have_text("5 template(s) in CRM.")
    expect(setup.get_by_test_id("sync-templates")).to_have_count(1)  # WhatsApp's alone

    viber = setup.locator('[data-channel="viber"]')
    expect(viber.get_by_test_id("verify-token")).to_have_count(0)
    viber.get_by_test_id("test-connection").click()
    expect(viber.get_by_test_id("test-result")).to_have_text(
        "Connected: Viber knows this account as Contoso bot."
    )
