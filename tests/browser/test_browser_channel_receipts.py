"""Delivery and read receipts on a channel chat: the platform's report moves the state
shown next to the agent's message in the console (Sent, Delivered, Read), and the state
the message ended in is in the chat activity's transcript."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.channels.model import ChannelAccount, ChannelType
from connector.channels.shared import channels_of
from connector.demo import admin_client
from connector.services import services_of

ACTIVITY_WAIT_SECS = 15.0


def _account(service: Any, channel: ChannelType) -> ChannelAccount:
    (account,) = [a for a in channels_of(service.app).accounts.all() if a.channel is channel]
    return account


def _transcript(service: Any) -> str:
    dataverse = admin_client(services_of(service.app).standin)
    deadline = time.monotonic() + ACTIVITY_WAIT_SECS
    while True:
        chats = list(dataverse.list("crmchat_chats", select=["crmchat_transcript"]))
        if chats:
            (chat,) = chats
            text: str = chat["crmchat_transcript"]
            return text
        if time.monotonic() > deadline:
            raise AssertionError("no chat activity in Dataverse")
        time.sleep(0.25)


# Messenger reports reads by watermark, Instagram by message id, WhatsApp as statuses,
# Viber as delivered/seen callbacks with the message token.
@pytest.mark.parametrize("channel", list(ChannelType))
def test_delivered_and_read_are_shown_on_the_agents_message_and_kept_in_the_transcript(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    channel: ChannelType,
) -> None:
    sam = agent_console("Sam Sales")
    account = _account(service, channel)
    person = "4670004472" if channel is ChannelType.WHATSAPP else "psid-4472"

    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(account.key)
    platform.get_by_label("Person id").fill(person)
    platform.get_by_label("Name").fill("Pat Person")
    platform.get_by_label("Message").fill("Is my order on its way?")
    platform.get_by_role("button", name="Send as person").click()
    expect(platform.get_by_role("status")).to_have_text("Webhook answered 200.")

    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    sam.get_by_test_id("message-input").fill("It left the warehouse today.")
    sam.get_by_test_id("send-button").click()
    expect(platform.locator("#lines li[data-sender=business] .text")).to_have_text(
        "It left the warehouse today."
    )
    # The simulator, as the platforms do, reports the delivery on its own.
    receipt = sam.locator("[data-sender-kind=agent]").get_by_test_id("message-receipt")
    expect(receipt).to_have_text("Delivered")
    # The person's message has no receipt: receipts are about what we sent.
    expect(sam.locator("[data-sender-kind=visitor] [data-testid=message-receipt]")).to_have_count(0)

    platform.get_by_role("button", name="Mark read").click()
    expect(receipt).to_have_text("Read")
    expect(receipt).to_have_attribute("data-state", "read")

    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()
    assert "Sam: It left the warehouse today. [read]" in _transcript(service)
