"""Ended chats leave the service's own live-chat store (SQLite and Redis alike): a finished
chat is deleted with its messages, files and consults, past its widget's or channel
account's retention, or a week after it ended when nothing needs it; an open chat, or one
whose activity is not queued yet, never is. With a fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_chat_state import T0, add, conversation
from test_retention import chat, widget

from connector.chat.actions.channels import channel_visitor_id
from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    Participant,
    SenderKind,
    VisitorPresence,
)
from connector.chat.redis_state import RedisLiveState
from connector.chat.state import LiveState, SqliteLiveState
from connector.cli import main
from connector.crm.retention import FINISHED_KEEP, drop_live_chats, purge_expired_chats
from connector.dataverse_local import DataverseApp
from connector.demo import admin_client

WIDGET = "w1"
ACCOUNT = "a0000000-0000-0000-0000-00000000000a"


@pytest.fixture(params=["sqlite", "redis"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveState]:
    if request.param == "sqlite":
        state: Any = SqliteLiveState(tmp_path / "live.sqlite")
    else:
        state = RedisLiveState.from_url(request.getfixturevalue("redis_url"), prefix="t:")
    yield state
    state.close()


def ended(
    live: LiveState,
    cid: str,
    *,
    days_ago: float,
    now: datetime,
    finished: bool = True,
    widget_id: str | None = WIDGET,
    visitor_id: str = "v1",
    channel: dict[str, Any] | None = None,
) -> Conversation:
    """A visitor chat with two messages and a file, ended `days_ago` before `now`."""
    c = replace(conversation(cid, visitor_id=visitor_id), widget_id=widget_id, channel=channel)
    c.started_at = now - timedelta(days=days_ago, minutes=10)
    live.save_conversation(c)
    add(live, c, f"{cid}-1", "my card is 4242 4242 4242 4242")  # type: ignore[arg-type]
    add(live, c, f"{cid}-2", "thanks")  # type: ignore[arg-type]
    # A file is stored with the message that announces it (actions/attachments.py).
    live.save_attachment(cid, "f1", b"invoice")
    c.last_seq += 1
    file = {"id": "f1", "name": "invoice.pdf", "type": "application/pdf", "size": 7}
    live.add_message(
        c,
        Message(cid, c.last_seq, f"{cid}-3", SenderKind.VISITOR, "v1", "Vera", "", now, file),
    )
    c.state = ConversationState.ENDED
    c.ended_at = now - timedelta(days=days_ago)
    c.finished = finished
    live.save_conversation(c)
    return c


def gone(live: LiveState, cid: str) -> bool:
    return (
        live.conversation(cid) is None
        and live.messages(cid) == []
        and live.attachment_data(cid, "f1") is None
    )


def test_only_a_finished_chat_is_deleted_with_its_messages_and_files(live: LiveState) -> None:
    now = T0 + timedelta(days=30)
    done = ended(live, "done", days_ago=2, now=now)
    rating = ended(live, "rating", days_ago=2, now=now, finished=False)  # activity not queued
    open_chat = conversation("open", visitor_id="v1")
    live.save_conversation(open_chat)

    finished = live.finished_conversations(ended_before=now)
    assert [c.conversation_id for c in finished] == ["done"]
    assert sorted(c.conversation_id for c in live.history("v1")) == ["done", "rating"]

    assert live.delete_conversation("done") is True
    assert gone(live, "done")
    assert [c.conversation_id for c in live.history("v1")] == ["rating"]
    assert live.finished_conversations(ended_before=now) == []
    assert live.delete_conversation("done") is False  # already gone: nothing to do
    # Never an open chat, nor one still waiting for its rating and activity.
    assert live.delete_conversation("open") is False
    assert live.delete_conversation("rating") is False
    assert live.conversation("open") is not None
    assert [m.text for m in live.messages("rating")][1] == "thanks"
    assert live.attachment_data("rating", "f1") == b"invoice"
    assert done.conversation_id not in [c.conversation_id for c in live.unfinished_conversations()]
    assert rating.conversation_id in [c.conversation_id for c in live.unfinished_conversations()]


def test_finished_chats_leave_past_their_retention_or_after_a_week(live: LiveState) -> None:
    now = T0 + timedelta(days=60)
    person = channel_visitor_id(ACCOUNT, "person-1")
    ended(live, "recent", days_ago=2, now=now)
    ended(live, "past-retention", days_ago=4, now=now)
    ended(live, "no-retention-old", days_ago=8, now=now, widget_id="w2", visitor_id="v2")
    ended(live, "no-retention-new", days_ago=6, now=now, widget_id="w2", visitor_id="v2")
    # A channel person's chats: the newest is what their next chat's reply window reads.
    viber = {"type": "viber", "subscribed": False}
    ended(
        live, "person-old", days_ago=20, now=now, widget_id=None, visitor_id=person, channel=viber
    )
    ended(live, "person-new", days_ago=9, now=now, widget_id=None, visitor_id=person, channel=viber)
    # A consult between agents about an old chat goes with it.
    old = ended(live, "with-consult", days_ago=8, now=now, widget_id="w2", visitor_id="v3")
    consult = Conversation(
        "consult",
        ConversationKind.AGENT,
        ConversationState.ENDED,
        old.started_at,
        participants=[Participant("agent", "a1", "Ann"), Participant("agent", "a2", "Bob")],
        consult_of="with-consult",
        ended_at=old.ended_at,
    )
    live.save_conversation(consult)
    add(live, consult, "k1", "the card was 4242 4242 4242 4242")  # type: ignore[arg-type]
    old.consult_ids = ["consult"]
    live.save_conversation(old)

    dropped = drop_live_chats(live, now=now, widget_days={WIDGET: 3}, account_days={})
    assert dropped == 4  # the consult is not counted: it went with its chat
    kept = {"recent", "no-retention-new", "person-new"}
    for cid in ("past-retention", "no-retention-old", "person-old", "with-consult", "consult"):
        assert live.conversation(cid) is None and live.messages(cid) == [], cid
    for cid in kept:
        assert live.conversation(cid) is not None, cid
    # Idempotent: the same moment again deletes nothing.
    assert drop_live_chats(live, now=now, widget_days={WIDGET: 3}, account_days={}) == 0

    # The channel account's own retention deletes even the person's newest chat.
    assert drop_live_chats(live, now=now, widget_days={}, account_days={ACCOUNT: 5}) == 1
    assert live.conversation("person-new") is None
    # A week on, what had no retention has had its week.
    later = now + FINISHED_KEEP
    assert drop_live_chats(live, now=later, widget_days={}, account_days={}) == 2
    assert live.finished_conversations(ended_before=later) == []


def test_the_retention_job_deletes_the_live_copy_with_the_activity(
    dataverse_app: DataverseApp, tmp_path: Path
) -> None:
    client = admin_client(dataverse_app)
    now = T0 + timedelta(days=60)
    month = widget(client, 30)
    chat(client, month, ended_days_ago=31, now=now)
    live = SqliteLiveState(tmp_path / "live.sqlite")
    ended(live, "old", days_ago=31, now=now, widget_id=month.upper())
    # Within its 30 days, and within the week: stays for resume and the History card.
    ended(live, "new", days_ago=5, now=now, widget_id=month)

    result = purge_expired_chats(client, now=now, live=live)
    assert (result.chats, result.live_chats) == (1, 1)
    assert live.conversation("old") is None
    assert "4242" not in json.dumps([m.text for m in live.messages("old")])
    assert live.conversation("new") is not None
    live.close()


def test_the_cli_purges_the_live_copy_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from connector.crm.connection import connect
    from connector.settings import Settings

    monkeypatch.setenv("CRMCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRMCHAT_DEMO", "0")
    client = connect(Settings()).client
    three_days = widget(client, 3)
    now = datetime.now(UTC)  # the CLI reads the real clock
    live = SqliteLiveState(tmp_path / "data" / "live.sqlite")
    ended(live, "old", days_ago=4, now=now, widget_id=three_days)
    ended(live, "kept", days_ago=2, now=now, widget_id=three_days)
    live.close()

    assert main(["privacy", "purge"]) == 0
    assert "and 1 ended chats from the live-chat store" in capsys.readouterr().out
    live = SqliteLiveState(tmp_path / "data" / "live.sqlite")
    assert live.conversation("old") is None and live.messages("old") == []
    assert live.conversation("kept") is not None
    live.close()


def test_a_presence_record_is_deleted(live: LiveState) -> None:
    live.save_visitor(VisitorPresence("v1", WIDGET, T0, T0, name="Vera"))
    live.save_visitor(VisitorPresence("v2", WIDGET, T0, T0, name="Vic"))
    assert live.delete_visitor("v1") is True
    assert live.visitor("v1") is None
    assert live.delete_visitor("v1") is False
    assert live.visitor("v2") is not None
