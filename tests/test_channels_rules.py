"""The platforms' reply rules: 24-hour windows, the HUMAN_AGENT tag up to 7 days,
WhatsApp templates outside the window, Viber only to subscribers, nobody who never wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from connector.channels import (
    ChannelType,
    NotSubscribed,
    OutsideWindow,
    ReplyMode,
    WhatsAppTemplate,
    check_reply,
    reply_window,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
META = [ChannelType.MESSENGER, ChannelType.INSTAGRAM]


@pytest.mark.parametrize("channel", META)
def test_messenger_and_instagram_reply_freely_for_24_hours(channel: ChannelType) -> None:
    last = NOW - timedelta(hours=23, minutes=59)
    window = reply_window(channel, last_inbound_at=last, now=NOW)
    assert window.mode is ReplyMode.FREE
    assert window.until == last + timedelta(hours=24)
    assert check_reply(channel, window) is None  # messaging_type RESPONSE, no tag


@pytest.mark.parametrize("channel", META)
def test_after_24_hours_only_a_human_agent_tagged_reply_until_7_days(channel: ChannelType) -> None:
    last = NOW - timedelta(hours=24)
    window = reply_window(channel, last_inbound_at=last, now=NOW)
    assert window.mode is ReplyMode.HUMAN_AGENT_TAG
    assert window.until == last + timedelta(days=7)
    assert check_reply(channel, window) == "HUMAN_AGENT"
    with pytest.raises(OutsideWindow) as refused:
        check_reply(channel, window, by_human=False)  # automation may not use the tag
    assert refused.value.mode == "human_agent_tag"

    late = reply_window(channel, last_inbound_at=NOW - timedelta(days=7), now=NOW)
    assert late.mode is ReplyMode.CLOSED
    with pytest.raises(OutsideWindow):
        check_reply(channel, late)


def test_whatsapp_free_form_inside_24_hours_templates_outside() -> None:
    inside = reply_window(ChannelType.WHATSAPP, last_inbound_at=NOW - timedelta(hours=3), now=NOW)
    assert inside.mode is ReplyMode.FREE
    assert inside.until == NOW + timedelta(hours=21)
    assert check_reply(ChannelType.WHATSAPP, inside) is None

    outside = reply_window(ChannelType.WHATSAPP, last_inbound_at=NOW - timedelta(days=30), now=NOW)
    assert outside.mode is ReplyMode.TEMPLATE_ONLY and outside.until is None
    with pytest.raises(OutsideWindow) as refused:
        check_reply(ChannelType.WHATSAPP, outside)
    assert refused.value.mode == "template_only"
    assert check_reply(ChannelType.WHATSAPP, outside, template=True) is None


@pytest.mark.parametrize("channel", [*META, ChannelType.WHATSAPP])
def test_nobody_who_never_wrote_can_be_messaged(channel: ChannelType) -> None:
    window = reply_window(channel, last_inbound_at=None, now=NOW)
    assert window.mode is ReplyMode.CLOSED
    with pytest.raises(OutsideWindow):
        check_reply(channel, window, template=channel is ChannelType.WHATSAPP)


def test_viber_only_to_subscribed_people_without_a_window() -> None:
    long_ago = NOW - timedelta(days=90)
    subscribed = reply_window(ChannelType.VIBER, last_inbound_at=long_ago, now=NOW, subscribed=True)
    assert subscribed.mode is ReplyMode.FREE and subscribed.until is None
    check_reply(ChannelType.VIBER, subscribed)
    gone = reply_window(ChannelType.VIBER, last_inbound_at=NOW, now=NOW, subscribed=False)
    with pytest.raises(NotSubscribed):
        check_reply(ChannelType.VIBER, gone)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        reply_window(ChannelType.WHATSAPP, last_inbound_at=None, now=datetime(2026, 1, 1))  # noqa: DTZ001 (naive on purpose)


def test_template_payload_and_limits() -> None:
    template = WhatsAppTemplate(name="order_update", language="en_US", parameters=("Pat", "#1042"))
    assert template.to_payload() == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Pat"}, {"type": "text", "text": "#1042"}],
            }
        ],
    }
    for bad in (
        {"name": "Order Update", "language": "en_US"},
        {"name": "x", "language": "english"},
        {"name": "x", "language": "en", "parameters": ("",)},
        {"name": "x", "language": "en", "parameters": ("p",) * 21},
    ):
        with pytest.raises(ValidationError):
            WhatsAppTemplate.model_validate(bad)
