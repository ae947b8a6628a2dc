"""Consent before chat (design `privacy.consent_required`): `chat.start` without it is
refused by the service with `consent_required`; given, the text the widget showed and the
time are stored with the chat and written to its activity."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from chat_fakes import BOB, FIELDS, SHOP
from test_chat_engine import World

from connector.chat.actions import agents, visitors
from connector.chat.errors import ChatConsentRequired
from connector.crm.chat_activity import FinishedChat, chat_activity_payload

CONSENT = "I agree that this chat is kept for 30 days."


def _world_asking_consent(tmp_path: Path) -> World:
    world = World(tmp_path)
    shop = world.directory._widgets[SHOP]
    privacy = shop.design.privacy.model_copy(
        update={"consent_required": True, "consent_text": CONSENT}
    )
    design = shop.design.model_copy(update={"privacy": privacy})
    world.directory._widgets[SHOP] = dataclasses.replace(shop, design=design)
    return world


def test_a_chat_without_consent_is_refused_and_offered_to_nobody(tmp_path: Path) -> None:
    world = _world_asking_consent(tmp_path)
    _, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    with pytest.raises(ChatConsentRequired) as refused:
        visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)
    assert refused.value.code == "consent_required" and refused.value.http_status == 403
    assert bob_in.of_type("chat.offered") == []
    assert v_in.of_type("chat.started") == []


def test_the_consent_given_is_stored_with_the_chat_and_its_activity(tmp_path: Path) -> None:
    world = _world_asking_consent(tmp_path)
    bob, _ = world.agent(BOB)
    visitor, v_in = world.visitor()
    visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS, consent=True)
    conversation_id = str(v_in.last("chat.started")["conversation_id"])
    stored = world.state.conversation(conversation_id)
    assert stored is not None and stored.consent is not None
    assert stored.consent["text"] == CONSENT
    assert stored.consent["at"] == world.clock().isoformat().replace("+00:00", "Z")

    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    agents.do_agent_end(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    _, payload = world.outbox.items[conversation_id]
    activity = chat_activity_payload(FinishedChat.from_dict(payload))
    assert f"Consent: {CONSENT} ({stored.consent['at']})" in activity["crmchat_visitordetails"]
    assert CONSENT in activity["crmchat_visitorinfo"]


def test_a_widget_without_the_option_starts_as_before(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    stored = world.state.conversation(conversation_id)
    assert stored is not None and stored.consent is None
