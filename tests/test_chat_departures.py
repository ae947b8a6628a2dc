"""Visitors who leave: waiting chats withdrawn, inactive chats closed, Visitors lists cleared.

A visitor whose last tab closed gets the leave grace (a page change reconnects within it).
After it, a chat still waiting for an agent is withdrawn from every Incoming list and
written to CRM as a missed chat; an accepted chat is closed and written once the visitor has
been gone for the widget's `inactive_close_secs`; and a departed visitor leaves the Visitors
list as soon as their chat is over.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chat_fakes import ANN, ANN_USER, BOB, FIELDS, SHOP, Inbox
from test_chat_engine import World

from connector.chat.actions import LEAVE_GRACE_SECS
from connector.chat.errors import ChatNotFound
from connector.chat.sessions import VisitorSession
from connector.crm.design import DEFAULT_INACTIVE_CLOSE_SECS


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def transcript_texts(world: World, conversation_id: str) -> list[str]:
    _, payload = world.outbox.items[conversation_id]
    return [message["text"] for message in payload["transcript"]]


def test_a_waiting_chat_whose_visitor_left_is_withdrawn_and_written_as_missed(
    world: World,
) -> None:
    _, ann_in = world.agent(ANN)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    assert ann_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id
    world.engine.do_visitor_disconnect(visitor)

    world.clock.advance(LEAVE_GRACE_SECS - 1)  # a page change reconnects within this
    assert world.engine.run_timeouts() == 0
    world.clock.advance(2)
    assert world.engine.run_timeouts() == 1

    assert ann_in.last("chat.withdrawn")["conversation_id"] == conversation_id
    _, late_in = world.agent(BOB)  # a console opened later offers nothing either
    assert late_in.last("snapshot")["incoming"] == []
    assert late_in.last("snapshot")["visitors"] == []
    assert transcript_texts(world, conversation_id)[-1] == (
        "Vera Visitor left before an agent answered."
    )
    assert world.outbox.items[conversation_id][1]["accepted_at"] is None


def test_a_visitor_back_within_the_grace_keeps_their_waiting_chat(world: World) -> None:
    _, ann_in = world.agent(ANN)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    token = v_in.last("chat.started")["token"]
    world.engine.do_visitor_disconnect(visitor)
    world.clock.advance(2)
    world.visitor(token=token)  # the next page of the site
    world.clock.advance(3600)
    assert world.engine.run_timeouts() == 0
    assert ann_in.of_type("chat.withdrawn") == []
    assert conversation_id not in world.outbox.items


def test_an_accepted_chat_whose_visitor_left_is_closed_after_the_inactive_time(
    world: World,
) -> None:
    ann, ann_in = world.agent(ANN)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    world.engine.do_agent_accept(ann, conversation_id=conversation_id)
    world.engine.do_visitor_disconnect(visitor)

    world.clock.advance(DEFAULT_INACTIVE_CLOSE_SECS - 1)
    assert world.engine.run_timeouts() == 0
    assert conversation_id not in world.outbox.items
    world.clock.advance(2)
    assert world.engine.run_timeouts() == 1

    assert ann_in.last("chat.ended")["conversation_id"] == conversation_id
    assert conversation_id in world.outbox.items  # written at once: nobody is left to rate
    assert transcript_texts(world, conversation_id)[-1].startswith("Vera Visitor left;")
    # ...and the visitor, gone and with no chat, leaves the Visitors list.
    assert ann_in.last("visitor.left")["visitor_id"] == "visitor-0001"


def test_the_inactive_close_time_is_the_admins_setting(world: World) -> None:
    shop = world.directory.widget(SHOP)
    assert shop is not None
    world.directory.set_widget(
        replace(shop, design=shop.design.model_copy(update={"inactive_close_secs": 60}))
    )
    ann, _ = world.agent(ANN)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    world.engine.do_agent_accept(ann, conversation_id=conversation_id)
    world.engine.do_visitor_disconnect(visitor)
    world.clock.advance(61)
    assert world.engine.run_timeouts() == 1
    assert conversation_id in world.outbox.items


def test_a_departed_visitor_leaves_the_visitors_list_once_the_agent_ends_the_chat(
    world: World,
) -> None:
    ann, ann_in = world.agent(ANN)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    world.engine.do_agent_accept(ann, conversation_id=conversation_id)
    world.engine.do_visitor_disconnect(visitor)
    assert ann_in.of_type("visitor.left") == []  # still in a chat: still listed
    world.engine.do_agent_end(ann, conversation_id=conversation_id)
    assert ann_in.last("visitor.left")["visitor_id"] == "visitor-0001"
    _, bob_in = world.agent(BOB)
    assert bob_in.last("snapshot")["visitors"] == []


def test_an_agent_asking_for_help_is_not_offered_their_own_request(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    # Ann, a CRM user who is also an agent, asks for help through the internal launcher.
    token = world.engine.tokens.issue_identity(user_id=ANN_USER, email="ann@x.test", name="Ann")
    inbox = Inbox()
    session = VisitorSession(inbox.subscriber, ip="10.0.0.1")
    world.engine.do_visitor_hello(
        session, widget_id=SHOP, visitor_id="visitor-ann", page={}, identity_token=token
    )
    world.engine.do_visitor_start(session, client_id="s1", fields=FIELDS)
    conversation_id = inbox.last("chat.started")["conversation_id"]
    assert bob_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id
    assert ann_in.of_type("chat.offered") == []
    _, again = world.agent(ANN)  # a second console of hers
    assert again.last("snapshot")["incoming"] == []
    with pytest.raises(ChatNotFound):
        world.engine.do_agent_accept(ann, conversation_id=conversation_id)
    world.engine.do_agent_accept(bob, conversation_id=conversation_id)
