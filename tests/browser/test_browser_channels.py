"""The messaging-platform simulator against the running service: signed webhooks in,
the platforms' send APIs out (real success and error bodies), and its page in Chromium."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from connector.channels import (
    ChannelAccount,
    ChannelType,
    EventKind,
    InboundEvent,
    NotSubscribed,
    OutsideWindow,
    RateLimited,
    reply_window,
)
from connector.channels.intake import RecentEvents
from connector.channels.replies import ChannelClients, do_channel_reply
from connector.channels.rules import ReplyMode, ReplyWindow
from connector.channels.shared import channels_of

FREE = ReplyWindow(ReplyMode.FREE)


@pytest.fixture(autouse=True)
def _keep_events(service: Any) -> None:
    """These tests look at the platform side alone: the events are kept, not handed to
    the engine (tests/browser/test_browser_channel_chat.py has the whole way)."""
    channels_of(service.app).intake.sink = RecentEvents()


def _account(service: Any, channel: str) -> ChannelAccount:
    """The demo account of `channel`, as the service reads it from Dataverse."""
    accounts = channels_of(service.app).accounts.all()
    (account,) = [a for a in accounts if a.channel is ChannelType(channel)]
    return account


def _clients(service: Any) -> ChannelClients:
    return channels_of(service.app).clients


def _events(service: Any, count: int) -> list[InboundEvent]:
    sink = channels_of(service.app).intake.sink
    assert isinstance(sink, RecentEvents)
    return sink.wait_for(count, timeout=10)


def _write(service: Any, account: ChannelAccount, person: str, **message: str) -> dict[str, Any]:
    answer = requests.post(
        f"{service.url}/simulator/api/person-message",
        json={"account": account.key, "person_id": person, "person_name": "Pat", **message},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _conversation(service: Any, account: ChannelAccount, person: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{service.url}/simulator/api/conversation",
        params={"account": account.key, "person": person},
        timeout=10,
    )
    lines: list[dict[str, Any]] = answer.json()["lines"]
    return lines


@pytest.mark.parametrize("channel", ["messenger", "instagram", "whatsapp", "viber"])
def test_round_trip_webhook_in_reply_out_receipt_back(service: Any, channel: str) -> None:
    account = _account(service, channel)
    person = "16315551181" if channel == "whatsapp" else "person-7"
    written = _write(service, account, person, text="Do you ship to Oslo?")
    assert written["webhook_status"] == 200
    assert written["webhook_answer"] == {"accepted": 1, "events": 1}
    (inbound,) = _events(service, 1)
    assert (inbound.channel, inbound.kind, inbound.person_id, inbound.text) == (
        ChannelType(channel),
        EventKind.MESSAGE,
        person,
        "Do you ship to Oslo?",
    )

    window = reply_window(
        account.channel, last_inbound_at=inbound.at, now=datetime.now(UTC), subscribed=True
    )
    sent = do_channel_reply(_clients(service), account, person, window, text="We do!")
    lines = _conversation(service, account, person)
    assert [(line["sender"], line["text"]) for line in lines] == [
        ("person", "Do you ship to Oslo?"),
        ("business", "We do!"),
    ]
    assert lines[1]["message_id"] == sent.message_id

    receipt = _events(service, 2)[1]  # the platform's delivery receipt, signed, after
    assert receipt.kind is EventKind.DELIVERED
    assert receipt.message_id == sent.message_id


def test_the_simulated_platforms_refuse_as_the_real_ones(service: Any) -> None:
    clients = _clients(service)
    messenger = _account(service, "messenger")
    _write(service, messenger, "late-1", text="hello")
    requests.post(
        f"{service.url}/simulator/api/age",
        json={"account": messenger.key, "person_id": "late-1", "hours": 25},
        timeout=10,
    )
    # Bypassing the service's own rule: the platform itself refuses (code 10 / 2018278).
    with pytest.raises(OutsideWindow) as outside:
        clients.meta.send_text(messenger, "late-1", "untagged")
    assert outside.value.code == "10/2018278"
    clients.meta.send_text(messenger, "late-1", "tagged", tag="HUMAN_AGENT")

    requests.post(
        f"{service.url}/simulator/api/rate-limit",
        json={"account": messenger.key, "sends_left": 0},
        timeout=10,
    )
    with pytest.raises(RateLimited) as limited:
        clients.meta.send_text(messenger, "late-1", "one more", tag="HUMAN_AGENT")
    assert limited.value.retry_after == 60

    viber = _account(service, "viber")
    with pytest.raises(NotSubscribed):
        do_channel_reply(clients, viber, "stranger", FREE, text="hi")

    # WhatsApp takes a free-form message outside the window and fails it afterwards,
    # in a status webhook (131047).
    whatsapp = _account(service, "whatsapp")
    _write(service, whatsapp, "4470000", text="hi")
    requests.post(
        f"{service.url}/simulator/api/age",
        json={"account": whatsapp.key, "person_id": "4470000", "hours": 25},
        timeout=10,
    )
    sent = clients.meta.send_whatsapp_text(whatsapp, "4470000", "too late")
    failed = next(e for e in _events(service, 4) if e.kind is EventKind.FAILED)
    assert failed.message_id == sent.message_id
    assert failed.error == "131047: Re-engagement message"


def test_a_person_writes_on_the_simulator_page_and_sees_the_reply(
    service: Any, new_page: Callable[[], Any]
) -> None:
    page = new_page()
    page.goto(f"{service.url}/simulator/")
    viber = _account(service, "viber")
    page.get_by_label("Channel account").select_option(viber.key)
    expect(page.locator("#webhook-url")).to_contain_text(f"/channels/{viber.key}/webhook")
    page.get_by_label("Message").fill("<b>Hi</b> from Viber")
    page.get_by_role("button", name="Send as person").click()
    person_line = page.locator("#lines li[data-sender=person]")
    expect(person_line).to_have_text("<b>Hi</b> from Viberwebhook answered 200")
    expect(page.get_by_role("status")).to_have_text("Webhook answered 200.")

    (inbound,) = _events(service, 1)
    assert inbound.text == "<b>Hi</b> from Viber"
    subscribed = reply_window(
        ChannelType.VIBER, last_inbound_at=inbound.at, now=datetime.now(UTC), subscribed=True
    )
    do_channel_reply(_clients(service), viber, "person-1", subscribed, text="Hello Pat")
    expect(page.locator("#lines li[data-sender=business] .text")).to_have_text("Hello Pat")


def test_opening_the_viber_bot_shows_its_welcome_message(service: Any) -> None:
    viber = _account(service, "viber")
    assert viber.welcome_text
    answer = requests.post(
        f"{service.url}/simulator/api/person-event",
        json={
            "account": viber.key,
            "person_id": "V5150",
            "person_name": "Vera",
            "event": "conversation_started",
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["webhook_answer"] == {
        "sender": {"name": viber.platform_id},
        "type": "text",
        "text": viber.welcome_text,
    }
    lines = _conversation(service, viber, "V5150")
    assert [(line["sender"], line["text"]) for line in lines] == [("business", viber.welcome_text)]
