""" "Send a new message" from the console: a contact who wrote to us on Messenger is found
in the New message panel, the agent opens a conversation with them there and writes
first; the message reaches the person on the simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from playwright.sync_api import expect

from connector.channels.model import ChannelType
from connector.channels.shared import channels_of


def test_an_agent_messages_a_contact_who_wrote_on_messenger_before(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    (account,) = [
        a for a in channels_of(service.app).accounts.all() if a.channel is ChannelType.MESSENGER
    ]
    # Earlier: Ann wrote on Messenger and Sam linked her to her contact.
    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(account.key)
    platform.get_by_label("Person id").fill("psid-7007")
    platform.get_by_label("Message").fill("Is my bike ready?")
    platform.get_by_role("button", name="Send as person").click()
    expect(platform.get_by_role("status")).to_have_text("Webhook answered 200.")
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

    # Now Sam has news: New message -> Ann -> Messenger.
    sam.get_by_test_id("outbound-query").fill("Smith")
    sam.get_by_test_id("outbound-search").click()
    result = sam.get_by_test_id("outbound-result")
    expect(result).to_have_count(1)  # the channels Ann wrote on: Messenger only
    expect(result).to_have_text("Ann Smith · Messenger (Contoso on Messenger)Message")
    result.get_by_test_id("outbound-start").click()
    expect(sam.get_by_test_id("messages")).to_contain_text(
        "Sam started this conversation on Messenger."
    )
    expect(sam.get_by_test_id("regarding")).to_have_text("Contact: Ann Smith")
    expect(sam.get_by_test_id("channel-rule")).to_contain_text("Messenger: Replies allowed until")
    sam.get_by_test_id("message-input").fill("Your bike is ready to collect.")
    sam.get_by_test_id("send-button").click()

    deadline = time.monotonic() + 15
    while True:
        lines = requests.get(
            f"{service.url}/simulator/api/conversation",
            params={"account": account.key, "person": "psid-7007"},
            timeout=10,
        ).json()["lines"]
        sent = [line["text"] for line in lines if line["sender"] == "business"]
        if sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sent == ["Your bike is ready to collect."]
