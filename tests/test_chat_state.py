"""The SQLite live state: sequence numbers, idempotency, resync and restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.chat.model import (
    AgentStatus,
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    Participant,
    SenderKind,
    VisitorPresence,
)
from connector.chat.state import DuplicateMessage, SqliteLiveState

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def conversation(cid: str = "c1", *, visitor_id: str = "v1") -> Conversation:
    return Conversation(
        cid,
        ConversationKind.VISITOR,
        ConversationState.ACTIVE,
        T0,
        widget_id="w1",
        visitor_id=visitor_id,
        visitor_name="Vera",
        visitor_fields={"email": "v@x.org"},
        participants=[Participant("agent", "a1", "Ann")],
        regarding=None,
    )


def add(state: SqliteLiveState, c: Conversation, client_id: str, text: str) -> Message:
    c.last_seq += 1
    message = Message(
        c.conversation_id,
        c.last_seq,
        client_id,
        SenderKind.VISITOR,
        "v1",
        "Vera",
        text,
        T0 + timedelta(seconds=c.last_seq),
    )
    state.add_message(c, message)
    return message


def test_messages_keep_their_order_and_resync_returns_what_came_after(tmp_path: Path) -> None:
    state = SqliteLiveState(tmp_path / "live.sqlite")
    c = conversation()
    state.save_conversation(c)
    for n in range(1, 6):
        add(state, c, f"m{n}", f"text {n}")
    assert [m.seq for m in state.messages("c1")] == [1, 2, 3, 4, 5]
    assert [m.text for m in state.messages("c1", since_seq=3)] == ["text 4", "text 5"]
    assert state.message_by_client_id("c1", "m2").text == "text 2"  # type: ignore[union-attr]
    assert state.message_by_client_id("c1", "zz") is None


def test_a_client_id_is_stored_once_per_conversation(tmp_path: Path) -> None:
    state = SqliteLiveState(tmp_path / "live.sqlite")
    c = conversation()
    state.save_conversation(c)
    add(state, c, "same", "one")
    with pytest.raises(DuplicateMessage):
        add(state, c, "same", "two")
    assert [m.text for m in state.messages("c1")] == ["one"]
    assert state.conversation("c1").last_seq == 1  # type: ignore[union-attr]


def test_everything_survives_reopening_the_file(tmp_path: Path) -> None:
    state = SqliteLiveState(tmp_path / "live.sqlite")
    c = conversation()
    c.regarding = {"table": "lead", "id": "l1", "name": "Vera"}
    state.save_conversation(c)
    add(state, c, "m1", "hello")
    state.save_agent_status("a1", AgentStatus.BUSY)
    state.save_visitor(
        VisitorPresence(
            "v1", "w1", T0, T0, name="Vera", ip="10.0.0.1", page={"url": "https://x.org"}
        )
    )
    state.close()

    again = SqliteLiveState(tmp_path / "live.sqlite")
    restored = again.conversation("c1")
    assert restored is not None
    # What the relay path does not write is derived from the stored messages.
    assert restored.last_visitor_message_at == T0 + timedelta(seconds=1)
    assert restored.last_seq == 1
    c.last_visitor_message_at, c.waiting_since = restored.last_visitor_message_at, T0
    assert restored == c
    assert [m.text for m in again.messages("c1")] == ["hello"]
    assert again.agent_statuses() == {"a1": AgentStatus.BUSY}
    visitor = again.visitor("v1")
    assert visitor is not None and visitor.ip == "10.0.0.1" and visitor.first_seen == T0
    assert [x.conversation_id for x in again.unfinished_conversations()] == ["c1"]


def test_history_lists_the_visitors_ended_chats_newest_first(tmp_path: Path) -> None:
    state = SqliteLiveState(tmp_path / "live.sqlite")
    for n in range(3):
        c = conversation(f"c{n}")
        c.started_at = T0 + timedelta(days=n)
        c.state = ConversationState.ENDED
        c.ended_at = c.started_at + timedelta(minutes=5)
        c.finished = True
        state.save_conversation(c)
        add(state, c, "m", "x")
    state.save_conversation(conversation("other", visitor_id="v2"))
    history = state.history("v1", exclude="c2")
    assert [h.conversation_id for h in history] == ["c1", "c0"]
    assert history[0].agent == "Ann" and history[0].message_count == 1
    assert state.unfinished_conversations()[0].conversation_id == "other"
