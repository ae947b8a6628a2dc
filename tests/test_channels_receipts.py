"""Receipts on a channel chat's agent messages: a state that only moves forward, a
receipt that comes before the send's answer still counts, Messenger's watermark covers
every message up to it, a failure says so in the chat, and the transcript keeps the
state each message ended in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from connector.app import create_app, stop_app
from connector.channels.model import ChannelAccount, ChannelType, EventKind, InboundEvent
from connector.channels.shared import channels_of
from connector.chat.actions.channels import do_channel_receipt, do_channel_sent
from connector.chat.actions.conversations import append_message
from connector.chat.engine import ChatEngine
from connector.chat.finish import transcript_messages
from connector.chat.model import Conversation, SenderKind
from connector.crm.chat_activity import format_transcript
from connector.services import services_of


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    yield app
    stop_app(app)


def _event(
    account: ChannelAccount,
    kind: EventKind,
    message_id: str | None,
    at: datetime,
    *,
    text: str | None = None,
    watermark: datetime | None = None,
    error: str | None = None,
) -> InboundEvent:
    return InboundEvent(
        channel=account.channel,
        account_key=account.key,
        kind=kind,
        person_id="P8",
        message_id=message_id,
        text=text,
        watermark=watermark,
        error=error,
        at=at,
    )


def _chat(app: Flask, channel: ChannelType) -> tuple[ChatEngine, ChannelAccount, Conversation]:
    channels = channels_of(app)
    engine = services_of(app).engine
    (account,) = [a for a in channels.accounts.all() if a.channel is channel]
    now = datetime.now(UTC)
    channels.bridge.do_channel_event(
        account, _event(account, EventKind.MESSAGE, "in-1", now, text="where is it?")
    )
    (chat,) = [c for c in engine.conversations.values() if c.channel]
    return engine, account, chat


def _agent_says(engine: ChatEngine, chat: Conversation, text: str) -> int:
    with engine.changing():
        message = append_message(
            engine, chat, kind=SenderKind.AGENT, sender_id="a1", sender_name="Sam", text=text
        )
    return message.seq


def _states(chat: Conversation) -> dict[str, str]:
    assert chat.channel is not None
    receipts: dict[str, str] = chat.channel.get("receipts") or {}
    return receipts


def test_a_state_moves_forward_only_and_a_receipt_before_the_send_answer_counts(
    app: Flask,
) -> None:
    engine, account, chat = _chat(app, ChannelType.WHATSAPP)
    first = _agent_says(engine, chat, "on its way")
    second = _agent_says(engine, chat, "tomorrow")
    now = datetime.now(UTC)
    do_channel_sent(engine, chat.conversation_id, first, "wamid.OUT1")
    assert _states(chat) == {str(first): "sent"}
    do_channel_receipt(engine, account, _event(account, EventKind.READ, "wamid.OUT1", now))
    # Redelivered or out of order: a delivery after the read changes nothing.
    do_channel_receipt(engine, account, _event(account, EventKind.DELIVERED, "wamid.OUT1", now))
    assert _states(chat)[str(first)] == "read"
    # The platform's delivery report arrives before its send call answered.
    do_channel_receipt(engine, account, _event(account, EventKind.DELIVERED, "wamid.OUT2", now))
    assert str(second) not in _states(chat)
    do_channel_sent(engine, chat.conversation_id, second, "wamid.OUT2")
    assert _states(chat)[str(second)] == "delivered"

    lines = format_transcript(
        transcript_messages(engine.state.messages(chat.conversation_id), _states(chat))
    ).splitlines()
    assert lines[0].endswith("where is it?")  # the person's message has no state
    assert lines[1].endswith("Sam: on its way [read]")
    assert lines[2].endswith("Sam: tomorrow [delivered]")


def test_a_messenger_read_watermark_covers_every_message_sent_before_it(app: Flask) -> None:
    engine, account, chat = _chat(app, ChannelType.MESSENGER)
    before = datetime.now(UTC) - timedelta(seconds=1)
    first = _agent_says(engine, chat, "one")
    second = _agent_says(engine, chat, "two")
    do_channel_sent(engine, chat.conversation_id, first, "m_out1")
    do_channel_sent(engine, chat.conversation_id, second, "m_out2")
    # A watermark from before the messages were sent covers none of them.
    do_channel_receipt(
        engine, account, _event(account, EventKind.READ, None, before, watermark=before)
    )
    assert _states(chat) == {str(first): "sent", str(second): "sent"}
    later = datetime.now(UTC) + timedelta(seconds=1)
    do_channel_receipt(
        engine, account, _event(account, EventKind.READ, None, later, watermark=later)
    )
    assert _states(chat) == {str(first): "read", str(second): "read"}
    # A delivery naming a message whose send answer is still coming, with a watermark
    # over the ones before: those stay read, the new one is delivered once it is known.
    third = _agent_says(engine, chat, "three")
    ahead = datetime.now(UTC) + timedelta(seconds=2)
    delivery = _event(account, EventKind.DELIVERED, "m_out3", ahead, watermark=ahead)
    do_channel_receipt(engine, account, delivery)
    do_channel_sent(engine, chat.conversation_id, third, "m_out3")
    assert _states(chat) == {str(first): "read", str(second): "read", str(third): "delivered"}


def test_a_failed_status_marks_the_message_and_tells_the_agent_why(app: Flask) -> None:
    engine, account, chat = _chat(app, ChannelType.WHATSAPP)
    seq = _agent_says(engine, chat, "are you there?")
    do_channel_sent(engine, chat.conversation_id, seq, "wamid.OUT9")
    failed = _event(
        account,
        EventKind.FAILED,
        "wamid.OUT9",
        datetime.now(UTC),
        error="131047: Re-engagement message",
    )
    do_channel_receipt(engine, account, failed)
    do_channel_receipt(engine, account, failed)  # the same report again: one line
    assert _states(chat)[str(seq)] == "failed"
    texts = [m.text for m in engine.state.messages(chat.conversation_id)]
    assert texts[-1] == "Not delivered: 131047: Re-engagement message"
    assert texts.count("Not delivered: 131047: Re-engagement message") == 1
