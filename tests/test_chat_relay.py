"""The relay path off the engine lock: a message is committed in a group by one writer
thread, acknowledged only once committed, and published in commit order (seq order)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from chat_fakes import ANN, BOB, FIELDS, SHOP, FakeDirectory, FakeOutbox, Inbox

from connector.chat.actions import agents, visitors
from connector.chat.engine import ChatEngine
from connector.chat.errors import ChatUnavailable
from connector.chat.hub import Hub
from connector.chat.model import Message
from connector.chat.sessions import AgentSession, VisitorSession
from connector.chat.state import AppendResult, SqliteLiveState
from connector.chat.tokens import ChatTokens

PAGE = {"url": "https://shop.example/p/1", "title": "P1", "referrer": ""}


class GatedState(SqliteLiveState):
    """The live state whose batch commits can be held (a slow disk) or fail (a full one)."""

    def __init__(self, path: Path) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()  # a batch is waiting at the gate
        self.fail_next = False
        super().__init__(path)

    def _append_batch(self, drafts: Sequence[Message]) -> list[AppendResult]:
        self.writing.set()
        self.gate.wait(timeout=10)
        if self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("database or disk is full")
        return super()._append_batch(drafts)


class World:
    def __init__(self, folder: Path) -> None:
        self.state = GatedState(folder / "live.sqlite")
        self.engine = ChatEngine(
            self.state, Hub(), FakeDirectory(), FakeOutbox(), ChatTokens(b"test-secret")
        )

    def chat(
        self, visitor_id: str, agent_id: str
    ) -> tuple[VisitorSession, Inbox, AgentSession, Inbox]:
        agent_in = Inbox()
        agent = AgentSession(agent_in.subscriber, agent_id)
        agents.do_agent_connect(self.engine, agent)
        visitor_in = Inbox()
        visitor = VisitorSession(visitor_in.subscriber, ip="203.0.113.7")
        visitors.do_visitor_hello(
            self.engine, visitor, widget_id=SHOP, visitor_id=visitor_id, page=PAGE
        )
        visitors.do_visitor_start(self.engine, visitor, client_id="start", fields=FIELDS)
        conversation_id = str(visitor_in.last("chat.started")["conversation_id"])
        agents.do_agent_accept(self.engine, agent, conversation_id=conversation_id)
        return visitor, visitor_in, agent, agent_in


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def texts(inbox: Inbox) -> list[str]:
    return [str(m["text"]) for m in inbox.of_type("message.created")]


def test_a_slow_commit_holds_its_sender_but_not_the_other_chats(world: World) -> None:
    vera, vera_in, _, ann_in = world.chat("visitor-0001", ANN)
    walt, _, _, bob_in = world.chat("visitor-0002", BOB)
    world.state.gate.clear()  # the disk stalls
    world.state.writing.clear()
    sender = threading.Thread(
        target=visitors.do_visitor_send,
        args=(world.engine, vera),
        kwargs={"client_id": "v1", "text": "Is it in stock?"},
    )
    sender.start()
    assert world.state.writing.wait(timeout=5)

    # Meanwhile another chat goes on: the engine's lock is not held across the commit.
    done = threading.Thread(
        target=visitors.do_visitor_typing, args=(world.engine, walt), kwargs={"on": True}
    )
    done.start()
    done.join(timeout=2)
    assert not done.is_alive()
    assert bob_in.last("typing")["on"] is True
    # Nothing is acknowledged or relayed before it is on disk.
    assert "Is it in stock?" not in texts(vera_in) + texts(ann_in)

    world.state.gate.set()
    sender.join(timeout=5)
    assert texts(vera_in)[-1] == "Is it in stock?" and texts(ann_in)[-1] == "Is it in stock?"


def test_a_failed_commit_acknowledges_nothing_and_the_resend_is_stored_once(world: World) -> None:
    vera, vera_in, _, ann_in = world.chat("visitor-0001", ANN)
    conversation_id = str(vera_in.last("chat.started")["conversation_id"])
    before = [m.seq for m in world.state.messages(conversation_id)]
    world.state.fail_next = True

    with pytest.raises(ChatUnavailable):
        visitors.do_visitor_send(world.engine, vera, client_id="v1", text="hello?")

    assert "hello?" not in texts(vera_in) + texts(ann_in)
    assert [m.seq for m in world.state.messages(conversation_id)] == before
    visitors.do_visitor_send(world.engine, vera, client_id="v1", text="hello?")
    visitors.do_visitor_send(world.engine, vera, client_id="v1", text="hello?")
    stored = world.state.messages(conversation_id)
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
    assert [m.text for m in stored].count("hello?") == 1
    assert texts(ann_in).count("hello?") == 1


def test_both_sides_sending_at_once_get_every_message_once_in_seq_order(world: World) -> None:
    vera, vera_in, ann, ann_in = world.chat("visitor-0001", ANN)
    conversation_id = str(vera_in.last("chat.started")["conversation_id"])
    count = 60

    def visitor_side() -> None:
        for n in range(count):
            visitors.do_visitor_send(world.engine, vera, client_id=f"v{n}", text=f"v{n}")

    def agent_side() -> None:
        for n in range(count):
            agents.do_agent_send(
                world.engine, ann, conversation_id=conversation_id, client_id=f"a{n}", text=f"a{n}"
            )

    threads = [threading.Thread(target=visitor_side), threading.Thread(target=agent_side)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    stored = world.state.messages(conversation_id)
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
    sent = {f"v{n}" for n in range(count)} | {f"a{n}" for n in range(count)}
    assert sorted(m.text for m in stored if m.text in sent) == sorted(sent)
    for inbox in (vera_in, ann_in):
        relayed = inbox.of_type("message.created")
        seqs = [m["seq"] for m in relayed]
        # Each side hears every message once, in the order of the seqs.
        assert seqs == sorted(set(seqs))
        assert sent <= {m["text"] for m in relayed}
