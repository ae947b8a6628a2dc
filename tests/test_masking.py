"""Masking rules (design `privacy.masking_rules`): what a rule matches reaches agents, the
live state and the chat activity masked; the visitor's own tabs show what they typed;
a pattern that could stall the service is refused or runs in linear time."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from chat_fakes import ANN, BOB, FIELDS, SHOP, FakeDirectory, FakeOutbox
from test_chat_engine import World
from test_sockets import Server

from connector.chat.actions import agents, consults, visitors
from connector.crm import tables
from connector.crm.design import DesignError, Privacy, TicketFallback, WidgetDesign, parse_design
from connector.crm.masking import MaskingError, check_pattern, mask_text
from connector.services import services_of

CARD_RULE = r"\b\d(?:[ -]?\d){12,18}\b"
CARD = "4111 1111 1111 1111"
MASKED_CARD = "*" * len(CARD)


def _world_with_rules(tmp_path: Path, *rules: str) -> World:
    world = World(tmp_path)
    shop = world.directory._widgets[SHOP]
    privacy = shop.design.privacy.model_copy(update={"masking_rules": rules})
    design = shop.design.model_copy(update={"privacy": privacy})
    world.directory._widgets[SHOP] = dataclasses.replace(shop, design=design)
    return world


def test_a_card_number_reaches_the_agent_and_the_activity_masked(tmp_path: Path) -> None:
    world = _world_with_rules(tmp_path, CARD_RULE)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text=f"my card is {CARD}")

    def typed(frames: list[dict[str, object]]) -> list[object]:
        return [
            f["text"]
            for f in frames
            if f["type"] == "message.created" and f["sender"]["kind"] == "visitor"  # type: ignore[index]
        ]

    assert typed(bob_in.frames) == [f"my card is {MASKED_CARD}"]
    assert typed(v_in.frames) == [f"my card is {CARD}"]
    # A console opened later (resync) reads the live state: masked there too.
    assert CARD not in json.dumps([m.text for m in world.state.messages(conversation_id)])

    agents.do_agent_end(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    _, payload = world.outbox.items[conversation_id]
    assert CARD not in json.dumps(payload)
    assert f"my card is {MASKED_CARD}" in [t["text"] for t in payload["transcript"]]


def test_an_agents_card_number_is_stored_and_relayed_masked_consults_too(tmp_path: Path) -> None:
    world = _world_with_rules(tmp_path, CARD_RULE)
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    agents.do_agent_send(
        world.engine, ann, conversation_id=conversation_id, client_id="a1", text=f"card {CARD}?"
    )
    # The visitor, the agent's own console and the live state all have the masked text.
    assert v_in.last("message.created")["text"] == f"card {MASKED_CARD}?"
    assert ann_in.last("message.created")["text"] == f"card {MASKED_CARD}?"
    # A consult between agents about the chat follows the chat's widget rules.
    consults.do_consult_start(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    consult_id = bob_in.last("chat.accepted")["chat"]["conversation_id"]
    agents.do_agent_send(
        world.engine, bob, conversation_id=consult_id, client_id="b1", text=f"it is {CARD}"
    )
    assert ann_in.last("message.created")["text"] == f"it is {MASKED_CARD}"
    stored = [m.text for c in (conversation_id, consult_id) for m in world.state.messages(c)]
    assert CARD not in json.dumps(stored)

    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id)
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    _, payload = world.outbox.items[conversation_id]
    assert CARD not in json.dumps(payload)
    assert f"card {MASKED_CARD}?" in [t["text"] for t in payload["transcript"]]
    assert f"it is {MASKED_CARD}" in json.dumps(payload["consults"])


def test_without_rules_the_message_is_relayed_as_typed(tmp_path: Path) -> None:
    world = World(tmp_path)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text=f"card {CARD}")
    assert bob_in.last("message.created")["text"] == f"card {CARD}"


def test_every_rule_applies_in_turn() -> None:
    text = "pin 1234, mail ann@example.com"
    assert mask_text((r"\d{4}", r"[^@\s]+@[^@\s]+"), text) == "pin ****, mail " + "*" * 15


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "not accepted"),  # a backreference has no linear-time match
        (r"(?=\d)", "not accepted"),  # nor a lookahead
        ("a{1000}{1000}", "not accepted"),  # a program far past the size budget
        ("(", "not accepted"),
        ("a*", "empty text"),  # would mask between every character
        ("", "empty"),
        ("x" * 501, "at most 500"),
    ],
)
def test_a_dangerous_or_broken_pattern_is_refused(pattern: str, why: str) -> None:
    with pytest.raises(MaskingError, match=why):
        check_pattern(pattern)


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    # Python's re needs 2**n steps for (a+)+$ on "aaa…!" and would never return here.
    text = "a" * 200_000 + "!"
    assert mask_text((r"(a+)+$",), text) == text
    assert mask_text((r"(a+)+!",), text) == "*" * len(text)


def test_the_design_refuses_a_bad_rule_with_its_reason() -> None:
    with pytest.raises(DesignError, match=r"privacy\.masking_rules\.0.*not accepted"):
        parse_design(json.dumps({"privacy": {"masking_rules": [r"(\w)\1"]}}))
    design = parse_design(json.dumps({"privacy": {"masking_rules": [CARD_RULE]}}))
    assert design.privacy.masking_rules == (CARD_RULE,)
    with pytest.raises(DesignError, match="at most 20"):
        parse_design(json.dumps({"privacy": {"masking_rules": [r"\d{4}"] * 21}}))


def test_a_message_left_as_a_case_is_stored_masked(tmp_path: Path) -> None:
    server = Server(tmp_path, FakeOutbox())
    try:
        directory: FakeDirectory = services_of(server.app).directory
        shop = directory.widget(SHOP)
        assert shop is not None
        design = WidgetDesign(
            ticket_fallback=TicketFallback(enabled=True),
            privacy=Privacy(masking_rules=(CARD_RULE,)),
        )
        directory.set_widget(dataclasses.replace(shop, design=design))
        visitor = server.visitor("visitor-mask1")
        message = f"Refund to card {CARD} please."
        visitor.send(
            {"type": "ticket.create", "client_id": "t1", "fields": FIELDS, "message": message}
        )
        visitor.expect("ticket.created")
        crm = services_of(server.app).dataverse
        stored = [c["description"] for c in crm.list(tables.INCIDENTS, select=["description"])]
        assert f"Refund to card {MASKED_CARD} please." in stored
        assert CARD not in json.dumps(stored)
    finally:
        server.stop()
