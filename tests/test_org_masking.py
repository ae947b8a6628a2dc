"""Issue 12: masking rules for the whole organisation (the settings page), applied to web
chats of every widget and to messaging-channel messages, which have no widget design.
An admin's rule is checked when saved: a pattern RE2 refuses, an empty one, one too long
or one too many is a 400 naming the rule, and nothing is saved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chat_fakes import BOB
from flask import Flask
from flask.testing import FlaskClient
from test_chat_engine import World
from test_settings_api import SignIn, client, sign_in, users  # noqa: F401 - fixtures
from test_settings_api import app as settings_app  # noqa: F401 - a fixture

from connector.app import create_app, stop_app
from connector.channels.model import ChannelType, EventKind, InboundEvent
from connector.channels.shared import channels_of
from connector.chat.actions import agents, visitors
from connector.crm import org_settings, tables
from connector.crm.masking import MAX_RULES, stored_rules
from connector.demo import admin_client
from connector.services import services_of

CARD_RULE = r"\b\d(?:[ -]?\d){12,18}\b"
CARD = "4111 1111 1111 1111"
MASKED_CARD = "*" * len(CARD)


@pytest.fixture
def app(settings_app: Flask) -> Flask:  # noqa: F811 - test_settings_api's, renamed
    return settings_app


def _stored(app: Flask) -> object:
    row = admin_client(services_of(app).standin).retrieve(
        tables.SETTINGS, tables.SETTINGS_ID, select=["crmchat_maskingrules"]
    )
    return row.get("crmchat_maskingrules")


def test_an_admin_sets_the_organisations_rules_and_a_bad_one_is_refused_by_place(
    app: Flask,
    client: FlaskClient,  # noqa: F811
    sign_in: SignIn,  # noqa: F811
) -> None:
    headers = sign_in("crmadmin")
    saved = client.put(
        "/api/admin/settings/masking", json={"rules": [CARD_RULE, r"\d{4}"]}, headers=headers
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.get_json()["masking_rules"] == [CARD_RULE, r"\d{4}"]
    assert json.loads(str(_stored(app))) == [CARD_RULE, r"\d{4}"]

    for rules, why in (
        ([CARD_RULE, r"(\w)\1"], "Rule 2: the pattern is not accepted"),  # a backreference
        ([r"(a"], "Rule 1: the pattern is not accepted"),
        ([""], "Rule 1: a masking pattern may not be empty"),
        (["x?"], "Rule 1: a masking pattern must not match empty text"),
        (["a" * 501], "Rule 1: a masking pattern has at most 500 characters"),
    ):
        refused = client.put("/api/admin/settings/masking", json={"rules": rules}, headers=headers)
        assert refused.status_code == 400, rules
        error = refused.get_json()["error"]
        assert error["code"] == "invalid_masking_rule"
        assert error["message"].startswith(why), error
    too_many = client.put(
        "/api/admin/settings/masking", json={"rules": ["a"] * (MAX_RULES + 1)}, headers=headers
    )
    assert too_many.status_code == 400
    assert (
        client.put("/api/admin/settings/masking", json={"rules": "a"}, headers=headers).status_code
        == 400
    )
    # Nothing of the refused saves was kept.
    assert json.loads(str(_stored(app))) == [CARD_RULE, r"\d{4}"]
    # Agents may not change them.
    agent = client.put("/api/admin/settings/masking", json={"rules": []}, headers=sign_in("agent"))
    assert agent.status_code == 403


def test_a_rule_edited_by_hand_into_something_broken_is_left_out() -> None:
    assert stored_rules(json.dumps([CARD_RULE, r"(\w)\1", 7])) == (CARD_RULE,)
    assert stored_rules("not json") == ()
    assert stored_rules(None) == ()


def test_the_organisations_rules_mask_a_web_chat_of_a_widget_without_rules(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.directory.org_masking_rules = (CARD_RULE,)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text=f"card {CARD}")
    assert bob_in.last("message.created")["text"] == f"card {MASKED_CARD}"
    assert v_in.last("message.created")["text"] == f"card {CARD}"  # as typed
    assert [m.text for m in world.state.messages(conversation_id)][-1] == f"card {MASKED_CARD}"


@pytest.fixture
def demo_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    yield app
    stop_app(app)


def test_the_organisations_rules_mask_a_messaging_channel_message(demo_app: Flask) -> None:
    org_settings.save_masking_rules(services_of(demo_app).dataverse, [CARD_RULE])
    services_of(demo_app).directory.invalidate()
    channels = channels_of(demo_app)
    engine = services_of(demo_app).engine
    (account,) = [a for a in channels.accounts.all() if a.channel is ChannelType.WHATSAPP]
    event = InboundEvent(
        channel=ChannelType.WHATSAPP,
        account_key=account.key,
        kind=EventKind.MESSAGE,
        person_id="15551230000",
        message_id="wamid.1",
        text=f"my card is {CARD}",
        at=datetime.now(UTC),
    )
    channels.bridge.do_channel_event(account, event)
    (chat,) = [c for c in engine.conversations.values() if c.channel]
    texts = [m.text for m in engine.state.messages(chat.conversation_id)]
    assert texts == [f"my card is {MASKED_CARD}"]
