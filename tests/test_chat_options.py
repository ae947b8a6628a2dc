"""Chat options (docs/protocol.md, "Chat options, identity and context"): the design's
options, the organisation-wide switch, topic choice and routing, the Omnichannel context,
nobody accepting (ticket fallback), and labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import (
    ANN,
    BILLING,
    BOB,
    CID,
    FIELDS,
    HELP,
    SALES,
    SHOP,
    SUPPORT,
    VIP,
    FakeDirectory,
    FakeOutbox,
)
from flask import Flask
from flask.testing import FlaskClient
from test_chat_engine import World
from test_sockets import Server

from connector.chat.actions import agents, conversations, due, finishing, visitors
from connector.chat.context import ContextError, displayable, parse_context
from connector.chat.errors import (
    ChatInvalid,
    ChatInvalidContext,
    ChatUnavailable,
)
from connector.chat.finish import CHAT_ACTIVITY_KIND
from connector.chat.model import AgentStatus
from connector.chat.routing import AgentRoute, agents_for_chat
from connector.crm.chat_activity import FinishedChat, chat_activity_payload
from connector.crm.design import DesignError, TicketFallback, WidgetDesign, parse_design
from connector.crm.directory import WidgetRecord
from connector.services import services_of

BOTH = "20000000-0000-0000-0000-000000000009"
BARE = "20000000-0000-0000-0000-000000000008"


def fallback_design(timeout_secs: int = 30) -> WidgetDesign:
    return WidgetDesign(
        ticket_fallback=TicketFallback(enabled=True, accept_timeout_secs=timeout_secs)
    )


def add_widgets(directory: FakeDirectory) -> None:
    directory.set_widget(
        WidgetRecord(BOTH, "Both", True, WidgetDesign(), frozenset({SALES, SUPPORT}))
    )
    directory.set_widget(WidgetRecord(BARE, "Bare", True, WidgetDesign(), frozenset()))


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(tmp_path)
    add_widgets(made.directory)
    return made


# ----- the design's options -------------------------------------------------------------


def test_the_design_has_every_chat_option_with_its_default() -> None:
    design = parse_design("{}")
    assert design.require_login is False and design.ask_name_email is True
    assert design.proactive.enabled is False
    assert design.proactive.message == "Hi! Have any questions? I'm here to help"
    assert design.ticket_fallback.accept_timeout_secs == 120
    dumped = WidgetDesign(require_login=True).model_dump(mode="json")
    assert dumped["require_login"] is True and dumped["initial_state"] == "minimized"
    with pytest.raises(DesignError):
        parse_design('{"ticket_fallback": {"accept_timeout_secs": 1}}')
    with pytest.raises(DesignError):
        parse_design('{"proactive": {"delay_secs": -5}}')


def test_with_ask_name_email_off_no_field_is_required(world: World) -> None:
    shop = world.directory.widget(SHOP)
    assert shop is not None
    world.directory.set_widget(replace(shop, design=WidgetDesign(ask_name_email=False)))
    world.agent(ANN)
    visitor, inbox = world.visitor()
    visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields={})
    assert inbox.last("chat.started")["conversation_id"]
    assert WidgetDesign(ask_name_email=False).check_fields({}) == {}


# ----- topics ---------------------------------------------------------------------------


def test_routing_offers_a_chat_only_to_agents_of_its_topic() -> None:
    routes = [
        AgentRoute(ANN, frozenset({SALES}), AgentStatus.AVAILABLE, True),
        AgentRoute(BOB, frozenset({SALES, SUPPORT}), AgentStatus.AVAILABLE, True),
        AgentRoute(CID, frozenset({SUPPORT}), AgentStatus.AVAILABLE, True),
    ]
    assert agents_for_chat(frozenset({SUPPORT}), routes) == [BOB, CID]
    assert agents_for_chat(frozenset({SALES}), routes) == [ANN, BOB]


def test_with_several_topics_the_visitor_picks_one_and_only_its_agents_are_offered(
    world: World,
) -> None:
    _, ann_in = world.agent(ANN)
    _, bob_in = world.agent(BOB)
    _, cid_in = world.agent(CID)
    visitor, v_in = world.visitor(widget_id=BOTH)
    with pytest.raises(ChatInvalid, match="topic"):
        visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)
    with pytest.raises(ChatInvalid):  # a topic the widget does not offer
        visitors.do_visitor_start(
            world.engine,
            visitor,
            client_id="s1",
            fields=FIELDS,
            topic_id="10000000-0000-0000-0000-0000000000ff",
        )
    visitors.do_visitor_start(
        world.engine, visitor, client_id="s1", fields=FIELDS, topic_id=SUPPORT
    )
    conversation_id = v_in.last("chat.started")["conversation_id"]
    # It rings for one Support agent (Bob, first by id of two never offered a chat);
    # both list it in Waiting chats; Ann, Sales only, neither.
    offered = bob_in.last("chat.offered")["chat"]
    assert offered["conversation_id"] == conversation_id
    assert [t["name"] for t in offered["topics"]] == ["Support"]
    assert cid_in.last("chat.waiting")["chat"]["conversation_id"] == conversation_id
    assert ann_in.of_type("chat.offered") == [] and ann_in.of_type("chat.waiting") == []
    # Ann (Sales only) may not take it either.
    with pytest.raises(Exception, match="no such chat"):
        agents.do_agent_accept(
            world.engine, world_agent_session(world, ANN), conversation_id=conversation_id
        )


def world_agent_session(world: World, agent_id: str) -> Any:
    session, _ = world.agent(agent_id)
    return session


def test_a_widget_without_topics_offers_no_chat(world: World) -> None:
    world.agent(BOB)
    visitor, v_in = world.visitor(widget_id=BARE)
    assert v_in.last("hello.ok")["available"] is False
    with pytest.raises(ChatUnavailable):
        visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)


def test_the_chosen_topic_names_the_activity(world: World) -> None:
    world.agent(CID)
    visitor, _ = world.visitor(widget_id=BOTH)
    visitors.do_visitor_start(
        world.engine, visitor, client_id="s1", fields=FIELDS, topic_id=SUPPORT
    )
    visitors.do_visitor_end(world.engine, visitor)
    visitors.do_visitor_disconnect(world.engine, visitor)
    world.clock.advance(60)
    due.run_due_timers(world.engine)
    ((kind, payload),) = world.outbox.items.values()
    assert kind == CHAT_ACTIVITY_KIND and payload["topic_names"] == ["Support"]


# ----- context --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "context",
    [
        {f"v{i}": i for i in range(101)},  # too many
        {"x" * 101: "long name"},
        {"": "empty name"},
        {"Note": "x" * 4001},
        {"Nested": {"a": 1}},
        {"List": [1, 2]},
        {"Null": None},
        {"Wrapped": {"value": "x", "isDisplayable": "yes"}},
    ],
)
def test_context_outside_the_omnichannel_rules_is_refused(context: dict[str, Any]) -> None:
    with pytest.raises(ContextError):
        parse_context(context)


def test_context_within_the_rules_is_kept_and_only_displayable_ones_are_shown() -> None:
    context = parse_context(
        {
            "Email": "ann@x.test",
            "Orders": 3,
            "Plan": {"value": "Pro", "isDisplayable": True},
            "Secret": {"value": "internal", "isDisplayable": False},
            "Max": "x" * 4000,
            **{f"v{i}": True for i in range(95)},
        }
    )
    assert len(context) == 100
    shown = displayable(context)
    assert {"name": "Plan", "value": "Pro"} in shown
    assert all(item["name"] != "Secret" for item in shown)


def test_the_agent_sees_displayable_context_and_the_activity_stores_all(world: World) -> None:
    _, ann_in = world.agent(ANN)
    visitor, _ = world.visitor()
    with pytest.raises(ChatInvalidContext):
        visitors.do_visitor_start(
            world.engine, visitor, client_id="s1", fields=FIELDS, context={"Bad": [1]}
        )
    visitors.do_visitor_start(
        world.engine,
        visitor,
        client_id="s1",
        fields=FIELDS,
        context={"Plan": "Pro", "Secret": {"value": "x1", "isDisplayable": False}},
    )
    chat = ann_in.last("chat.offered")["chat"]
    assert chat["context"] == [{"name": "Plan", "value": "Pro"}]
    assert chat["visitor"]["context"] == {"Plan": "Pro"}
    visitors.do_visitor_end(world.engine, visitor)
    visitors.do_visitor_disconnect(world.engine, visitor)
    world.clock.advance(60)
    due.run_due_timers(world.engine)
    ((_, payload),) = world.outbox.items.values()
    body = chat_activity_payload(FinishedChat.from_dict(payload))
    assert '"Secret":{"value":"x1","isDisplayable":false}' in body["crmchat_context"]


# ----- the organisation-wide switch -----------------------------------------------------


def test_the_switch_turns_every_widget_off(world: World) -> None:
    world.agent(BOB)
    world.directory.chat_on = False
    visitor, v_in = world.visitor()
    assert v_in.last("hello.ok")["available"] is False
    with pytest.raises(ChatUnavailable):
        visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)
    status = conversations.widget_status(world.engine, HELP)
    assert status is not None and status[1] is False


# ----- nobody accepts -------------------------------------------------------------------


def test_nobody_accepting_in_time_times_the_chat_out_and_withdraws_the_offer(
    world: World,
) -> None:
    shop = world.directory.widget(SHOP)
    assert shop is not None
    world.directory.set_widget(replace(shop, design=fallback_design(30)))
    _, ann_in = world.agent(ANN)
    visitor, v_in = world.visitor()
    visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)
    conversation_id = v_in.last("chat.started")["conversation_id"]
    world.clock.advance(29)
    assert finishing.run_timeouts(world.engine) == 0
    world.clock.advance(2)
    assert finishing.run_timeouts(world.engine) == 1
    assert v_in.last("chat.timeout")["conversation_id"] == conversation_id
    assert ann_in.last("chat.withdrawn")["conversation_id"] == conversation_id
    assert finishing.run_timeouts(world.engine) == 0  # once
    # Written to CRM at once (nobody will rate it), and the visitor may start again.
    assert conversation_id in world.outbox.items
    visitors.do_visitor_start(world.engine, visitor, client_id="s2", fields=FIELDS)
    assert v_in.last("chat.started")["conversation_id"] != conversation_id


def test_without_ticket_fallback_a_waiting_chat_keeps_waiting(world: World) -> None:
    world.agent(ANN)
    visitor, v_in = world.visitor()
    visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)
    world.clock.advance(3600)
    assert finishing.run_timeouts(world.engine) == 0
    assert v_in.of_type("chat.timeout") == []


# ----- labels ---------------------------------------------------------------------------


def test_agents_label_their_chats_and_the_activity_keeps_the_names(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, _ = world.agent(BOB)
    assert [label["name"] for label in ann_in.last("snapshot")["labels"]] == ["Billing", "VIP"]
    visitor, v_in = world.visitor()
    visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)
    conversation_id = v_in.last("chat.started")["conversation_id"]
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    with pytest.raises(Exception, match="no such chat"):  # Bob is not in the chat
        agents.do_agent_labels(world.engine, bob, conversation_id=conversation_id, label_ids=[VIP])
    with pytest.raises(ChatInvalid):
        agents.do_agent_labels(
            world.engine,
            ann,
            conversation_id=conversation_id,
            label_ids=["50000000-0000-0000-0000-0000000000ff"],
        )
    agents.do_agent_labels(
        world.engine, ann, conversation_id=conversation_id, label_ids=[VIP, BILLING]
    )
    chat = ann_in.last("chat.updated")["chat"]
    assert [label["name"] for label in chat["labels"]] == ["VIP", "Billing"]
    visitors.do_visitor_end(world.engine, visitor)
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    ((_, payload),) = world.outbox.items.values()
    body = chat_activity_payload(FinishedChat.from_dict(payload))
    assert body["crmchat_labels"] == "Billing, VIP"


# ----- over the sockets and HTTP --------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, FakeOutbox())
    add_widgets(services_of(running.app).directory)
    yield running
    running.stop()


def test_config_lists_the_topics_and_options_and_follows_the_switch(server: Server) -> None:
    client = server.app.test_client()
    body = client.get(f"/api/widgets/{BOTH}/config").get_json()
    assert [t["name"] for t in body["topics"]] == ["Sales", "Support"]
    assert body["design"]["ticket_fallback"]["accept_timeout_secs"] == 120
    assert body["design"]["proactive"]["enabled"] is False
    assert body["enabled"] is True
    bare = client.get(f"/api/widgets/{BARE}/config").get_json()
    assert bare["topics"] == [] and bare["available"] is False
    services_of(server.app).directory.chat_on = False
    off = client.get(f"/api/widgets/{SHOP}/config").get_json()
    assert off["enabled"] is False and off["available"] is False


def test_socket_start_with_a_topic_and_context_then_labels(server: Server) -> None:
    cid = server.agent("40000000-0000-0000-0000-000000000003")
    visitor = server.visitor("visitor-0042", widget_id=BOTH)
    visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
    assert visitor.expect("error")["code"] == "invalid_input"
    visitor.send(
        {
            "type": "chat.start",
            "client_id": "s1",
            "fields": FIELDS,
            "topic_id": SUPPORT,
            "context": {"Bad": {"value": [1]}},
        }
    )
    assert visitor.expect("error")["code"] == "invalid_context"
    visitor.send(
        {
            "type": "chat.start",
            "client_id": "s1",
            "fields": FIELDS,
            "topic_id": SUPPORT,
            "context": {"Plan": "Pro"},
        }
    )
    conversation_id = visitor.expect("chat.started")["conversation_id"]
    chat = cid.expect("chat.offered")["chat"]
    assert chat["context"] == [{"name": "Plan", "value": "Pro"}]
    cid.send({"type": "chat.accept", "conversation_id": conversation_id})
    cid.expect("chat.accepted")
    cid.send({"type": "chat.labels", "conversation_id": conversation_id, "label_ids": [VIP]})
    assert [x["name"] for x in cid.expect("chat.updated")["chat"]["labels"]] == ["VIP"]


def test_an_admin_switches_chat_off_and_every_widgets_config_says_so(
    tmp_path: Path, handshake_headers: Callable[[FlaskClient, Flask, str], dict[str, str]]
) -> None:
    from test_identity import _user

    from connector.app import create_app, stop_app
    from connector.crm import tables

    app = create_app(
        {"data_dir": tmp_path, "secret_key": "test-secret-key"}, outbox=FakeOutbox(), start=False
    )
    try:
        client = app.test_client()
        service = services_of(app).dataverse
        topic = service.create(tables.TOPICS, {"crmchat_name": "Switch topic"})
        widget = service.create(
            tables.WIDGETS,
            {
                "crmchat_name": "Switch widget",
                "crmchat_widget_topic@odata.bind": [tables.bind(tables.TOPICS, topic)],
            },
        )
        assert client.get(f"/api/widgets/{widget}/config").get_json()["enabled"] is True
        admin = _user(app, "CRM Chat Administrator", email="ada@contoso.test")
        headers = handshake_headers(client, app, admin)
        bad = client.put("/api/admin/settings/chat", json={"enabled": "no"}, headers=headers)
        assert bad.status_code == 400
        off = client.put("/api/admin/settings/chat", json={"enabled": False}, headers=headers)
        assert off.status_code == 200 and off.get_json()["chat_enabled"] is False
        config = client.get(f"/api/widgets/{widget}/config").get_json()
        assert config["enabled"] is False and config["available"] is False
        on = client.put("/api/admin/settings/chat", json={"enabled": True}, headers=headers)
        assert on.get_json()["chat_enabled"] is True
        assert client.get(f"/api/widgets/{widget}/config").get_json()["enabled"] is True
    finally:
        stop_app(app)


def test_unsubscribing_stops_chat_everywhere_and_keeps_every_record(
    tmp_path: Path, handshake_headers: Callable[[FlaskClient, Flask, str], dict[str, str]]
) -> None:
    from test_identity import _user

    from connector.app import create_app, stop_app
    from connector.crm import tables

    app = create_app(
        {"data_dir": tmp_path, "secret_key": "test-secret-key"}, outbox=FakeOutbox(), start=False
    )
    try:
        client = app.test_client()
        service = services_of(app).dataverse
        topic = service.create(tables.TOPICS, {"crmchat_name": "Sub topic"})
        widget = service.create(
            tables.WIDGETS,
            {
                "crmchat_name": "Sub widget",
                "crmchat_widget_topic@odata.bind": [tables.bind(tables.TOPICS, topic)],
            },
        )
        chat = service.create(tables.CHATS, {"subject": "An old chat"})
        before = {
            name: len(list(service.list(entity_set, select=[key])))
            for name, entity_set, key in (
                ("widgets", tables.WIDGETS, "crmchat_widgetid"),
                ("topics", tables.TOPICS, "crmchat_topicid"),
                ("chats", tables.CHATS, "activityid"),
                ("agents", tables.AGENTS, "crmchat_agentid"),
            )
        }
        admin = _user(app, "CRM Chat Administrator", email="ada@contoso.test")
        agent = _user(app, "CRM Chat Agent", email="bo@contoso.test")
        headers = handshake_headers(client, app, admin)
        refused = client.put(
            "/api/admin/settings/subscription",
            json={"subscribed": False},
            headers=handshake_headers(client, app, agent),
        )
        assert refused.status_code == 403
        bad = client.put(
            "/api/admin/settings/subscription", json={"subscribed": 0}, headers=headers
        )
        assert bad.status_code == 400

        off = client.put(
            "/api/admin/settings/subscription", json={"subscribed": False}, headers=headers
        )
        assert off.status_code == 200 and off.get_json()["subscribed"] is False
        config = client.get(f"/api/widgets/{widget}/config").get_json()
        assert config["enabled"] is False and config["available"] is False  # widget hidden
        assert services_of(app).directory.subscribed() is False
        after = {
            name: len(list(service.list(entity_set, select=[key])))
            for name, entity_set, key in (
                ("widgets", tables.WIDGETS, "crmchat_widgetid"),
                ("topics", tables.TOPICS, "crmchat_topicid"),
                ("chats", tables.CHATS, "activityid"),
                ("agents", tables.AGENTS, "crmchat_agentid"),
            )
        }
        assert after == before
        assert service.retrieve(tables.CHATS, chat, select=["subject"])["subject"] == "An old chat"

        on = client.put(
            "/api/admin/settings/subscription", json={"subscribed": True}, headers=headers
        )
        assert on.get_json()["subscribed"] is True
        assert client.get(f"/api/widgets/{widget}/config").get_json()["enabled"] is True
    finally:
        stop_app(app)
