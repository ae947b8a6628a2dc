"""IP masking: with the widget's `privacy.mask_ip`, agents, the live state and the chat
activity only ever see the visitor's network prefix."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from chat_fakes import BOB, SHOP
from test_chat_engine import World

from connector.chat.actions import agents, visitors
from connector.crm.ip_masking import mask_ip


@pytest.mark.parametrize(
    ("ip", "prefix"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", "2001:db8:85a3::/48"),
        ("::ffff:198.51.100.23", "198.51.100.0/24"),
        ("not an address", ""),
        ("", ""),
    ],
)
def test_an_address_keeps_only_its_network(ip: str, prefix: str) -> None:
    assert mask_ip(ip) == prefix


def test_with_masking_on_no_full_address_is_stored_or_shown(tmp_path: Path) -> None:
    world = World(tmp_path)
    shop = world.directory._widgets[SHOP]
    design = shop.design.model_copy(
        update={"privacy": shop.design.privacy.model_copy(update={"mask_ip": True})}
    )
    world.directory._widgets[SHOP] = dataclasses.replace(shop, design=design)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()  # from 203.0.113.7
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text="hi")

    seen = json.dumps(bob_in.frames)
    assert "203.0.113.7" not in seen and "203.0.113.0/24" in seen
    stored = world.state.visitor("visitor-0001")
    assert stored is not None and stored.ip == "203.0.113.0/24"
    conversation = world.state.conversation(conversation_id)
    assert conversation is not None and conversation.ip == "203.0.113.0/24"


def test_without_masking_the_address_is_kept_as_before(tmp_path: Path) -> None:
    world = World(tmp_path)
    _, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    world.start_chat(visitor, v_in)
    assert "203.0.113.7" in json.dumps(bob_in.frames)
