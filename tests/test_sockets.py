"""The two WebSockets end to end: a real threaded server, `simple_websocket.Client`s.

The app is the real service (`create_app`, embedded Dataverse) with a fake Directory and
Outbox (tests/chat_fakes.py), so no CRM configuration needs seeding.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import (
    ANN,
    ANN_USER,
    BOB,
    BOB_USER,
    CID_USER,
    FIELDS,
    NOBODY_USER,
    SALES,
    SHOP,
    FakeDirectory,
    FakeOutbox,
    ensure_user,
)
from flask import Flask
from simple_websocket import Client, ConnectionClosed
from werkzeug.serving import BaseWSGIServer, make_server

from connector.app import create_app, stop_app
from connector.crm.handshake import SignedInUser
from connector.services import services_of
from connector.web.auth import AGENT_SUBPROTOCOL, agent_subprotocols, issue_service_token

AGENT_ROLE = frozenset({"CRM Chat Agent"})
WAIT_SECS = 5.0


class Server:
    """create_app on `folder`, served by werkzeug's threaded server on a free port."""

    def __init__(self, folder: Path, outbox: FakeOutbox, **settings: Any) -> None:
        self.app: Flask = create_app(
            {"data_dir": folder, "secret_key": "s" * 40, **settings},
            directory=FakeDirectory(),
            outbox=outbox,
            start=False,
        )
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"ws://127.0.0.1:{self.server.server_port}"
        self.clients: list[Ws] = []

    def token(self, user_id: str, roles: frozenset[str] = AGENT_ROLE) -> str:
        ensure_user(self.app, user_id, roles)
        with self.app.app_context():
            return issue_service_token(SignedInUser(user_id, "User", "u@example.com", roles))

    def agent(self, user_id: str) -> Ws:
        ws = self.connect("/ws/agent", token=self.token(user_id))
        ws.expect("snapshot")
        ws.expect("pong")
        return ws

    def visitor(self, visitor_id: str = "visitor-0001", **hello: Any) -> Ws:
        ws = self.connect("/ws/visitor")
        ws.send(
            {
                "type": "hello",
                "widget_id": SHOP,
                "visitor_id": visitor_id,
                "page": {"url": "https://shop.example/", "title": "Shop"},
                **hello,
            }
        )
        ws.expect("hello.ok")
        return ws

    def connect(self, path: str, *, token: str | None = None) -> Ws:
        """A socket on `path`; `token` is offered the way the console does (a subprotocol)."""
        subprotocols = agent_subprotocols(token) if token is not None else None
        ws = Ws(Client.connect(self.base + path, subprotocols=subprotocols))
        # simple_websocket's Client parses only the handshake answer from its first read;
        # a frame the server sent right behind it (the agent's snapshot) waits for more
        # bytes. A ping makes the server send some.
        ws.send({"type": "ping"})
        self.clients.append(ws)
        return ws

    def stop(self) -> None:
        for ws in self.clients:
            ws.close()
        time.sleep(0.2)  # let the socket threads run their disconnect actions
        self.server.shutdown()
        self.thread.join(timeout=5)
        stop_app(self.app)


class Ws:
    """A websocket client that reads JSON frames and finds them by type."""

    def __init__(self, client: Client, *, wait_secs: float = WAIT_SECS) -> None:
        self.client = client
        self.wait_secs = wait_secs
        self.seen: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any] | str) -> None:
        self.client.send(frame if isinstance(frame, str) else json.dumps(frame))

    def expect(self, type_: str, **match: Any) -> dict[str, Any]:
        """The next unseen frame of `type_` (and matching fields), waiting up to wait_secs."""
        deadline = time.monotonic() + self.wait_secs
        while True:
            for index, frame in enumerate(self.seen):
                if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                    del self.seen[index]
                    return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_} {match} in {self.seen}")
            raw = self.client.receive(timeout=left)
            if raw is not None:
                self.seen.append(json.loads(raw))

    def drain(self, secs: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives within `secs`."""
        deadline = time.monotonic() + secs
        while (left := deadline - time.monotonic()) > 0:
            raw = self.client.receive(timeout=left)
            if raw is not None:
                self.seen.append(json.loads(raw))
        frames, self.seen = self.seen, []
        return frames

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - already closed by the server
            pass


@pytest.fixture
def outbox() -> FakeOutbox:
    return FakeOutbox()


@pytest.fixture
def server(tmp_path: Path, outbox: FakeOutbox) -> Iterator[Server]:
    running = Server(tmp_path, outbox)
    yield running
    running.stop()


def start_chat(visitor: Ws) -> dict[str, Any]:
    visitor.send({"type": "chat.start", "client_id": "start-1", "fields": FIELDS})
    return visitor.expect("chat.started")


def test_a_visitor_chats_with_the_agent_who_accepts_first(server: Server) -> None:
    ann = server.agent(ANN_USER)
    bob = server.agent(BOB_USER)
    cid = server.agent(CID_USER)  # Support only: must never see the Shop chat
    visitor = server.visitor()
    started = start_chat(visitor)
    conversation_id = started["conversation_id"]

    # It rings for Ann (of two never offered a chat, the first by id); Bob lists it in
    # Waiting chats and picks it up.
    assert ann.expect("chat.offered")["chat"]["conversation_id"] == conversation_id
    assert bob.expect("chat.waiting")["chat"]["conversation_id"] == conversation_id
    bob.send({"type": "chat.accept", "conversation_id": conversation_id})
    assert bob.expect("chat.accepted")["chat"]["state"] == "active"
    assert ann.expect("chat.withdrawn")["conversation_id"] == conversation_id
    ann.send({"type": "chat.accept", "conversation_id": conversation_id})
    assert ann.expect("error")["code"] == "conflict"
    assert visitor.expect("chat.accepted")["agent"]["name"] == "Bob"

    visitor.send({"type": "message.send", "client_id": "v1", "text": "Do you ship to Oslo?"})
    mine = visitor.expect("message.created", client_id="v1")
    relayed = bob.expect("message.created", client_id="v1")
    assert relayed["text"] == "Do you ship to Oslo?" and relayed["seq"] == mine["seq"]
    bob.send(
        {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_id": "b1",
            "text": "#hello# We do.",
        }
    )
    answer = visitor.expect("message.created", client_id="b1")
    assert answer["text"] == "Hello! How can I help you today? We do."
    assert answer["sender"] == {"kind": "agent", "name": "Bob"}

    assert not [f for f in cid.drain() if f["type"] in ("chat.offered", "message.created")]


def test_invite_and_transfer_over_the_sockets(server: Server) -> None:
    ann = server.agent(ANN_USER)
    bob = server.agent(BOB_USER)
    visitor = server.visitor()
    conversation_id = start_chat(visitor)["conversation_id"]
    ann.send({"type": "chat.accept", "conversation_id": conversation_id})
    ann.expect("chat.accepted")

    ann.send({"type": "chat.invite", "conversation_id": conversation_id, "agent_id": BOB})
    assert bob.expect("chat.accepted")["chat"]["conversation_id"] == conversation_id
    ann.send({"type": "chat.transfer", "conversation_id": conversation_id, "agent_id": BOB})
    assert ann.expect("chat.withdrawn")["conversation_id"] == conversation_id
    ann.drain()
    visitor.send({"type": "message.send", "client_id": "v9", "text": "still there?"})
    assert bob.expect("message.created", client_id="v9")["text"] == "still there?"
    assert not [f for f in ann.drain() if f["type"] == "message.created"]


def test_ending_and_rating_queue_one_chat_activity(server: Server, outbox: FakeOutbox) -> None:
    bob = server.agent(BOB_USER)
    visitor = server.visitor()
    conversation_id = start_chat(visitor)["conversation_id"]
    bob.expect("chat.offered")
    bob.send({"type": "chat.accept", "conversation_id": conversation_id})
    visitor.expect("chat.accepted")
    visitor.send({"type": "message.send", "client_id": "v1", "text": "bye"})
    bob.expect("message.created", client_id="v1")
    visitor.send({"type": "chat.end"})
    assert visitor.expect("chat.ended")["by"] == "visitor"
    assert bob.expect("chat.ended")["conversation_id"] == conversation_id
    assert outbox.items == {}
    visitor.send({"type": "chat.rate", "rating": 4})
    assert visitor.expect("chat.rated")["rating"] == 4
    deadline = time.monotonic() + WAIT_SECS
    while conversation_id not in outbox.items and time.monotonic() < deadline:
        time.sleep(0.02)  # queued right after the answer is sent
    kind, payload = outbox.items[conversation_id]
    assert kind == "chat_activity" and payload["rating"] == 4
    assert payload["visitor_fields"] == FIELDS
    visitor.send({"type": "message.send", "client_id": "v2", "text": "too late"})
    assert visitor.expect("error")["code"] == "chat_ended"


def test_a_restart_mid_chat_loses_nothing(tmp_path: Path, outbox: FakeOutbox) -> None:
    first = Server(tmp_path, outbox)
    bob = first.agent(BOB_USER)
    visitor = first.visitor()
    started = start_chat(visitor)
    conversation_id = started["conversation_id"]
    bob.send({"type": "chat.accept", "conversation_id": conversation_id})
    visitor.expect("chat.accepted")
    visitor.send({"type": "message.send", "client_id": "v1", "text": "one"})
    last_seen = visitor.expect("message.created", client_id="v1")["seq"]
    bob.send(
        {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_id": "b1",
            "text": "two",
        }
    )
    bob.expect("message.created", client_id="b1")
    first.stop()

    second = Server(tmp_path, outbox)
    try:
        bob = second.agent(BOB_USER)
        tab = second.connect("/ws/visitor")
        tab.send(
            {
                "type": "hello",
                "widget_id": SHOP,
                "visitor_id": "visitor-0001",
                "resume": {"token": started["token"], "since_seq": last_seen},
            }
        )
        hello = tab.expect("hello.ok")
        assert hello["chat"]["state"] == "active"
        assert [m["text"] for m in hello["chat"]["messages"]] == ["two"]
        tab.send({"type": "message.send", "client_id": "v2", "text": "three"})
        assert bob.expect("message.created", client_id="v2")["seq"] == last_seen + 2
        bob.send({"type": "chat.resync", "conversation_id": conversation_id, "since_seq": 0})
        texts = [bob.expect("message.created")["text"] for _ in range(4)]
        assert texts[1:] == ["one", "two", "three"]
    finally:
        second.stop()


def test_limits_answer_with_errors_and_keep_the_socket_open(server: Server) -> None:
    server.agent(ANN_USER)
    visitor = server.visitor()
    start_chat(visitor)

    visitor.send("{not json")
    assert visitor.expect("error")["code"] == "invalid_input"
    visitor.send(json.dumps({"type": "message.send", "client_id": "big", "text": "x" * 20000}))
    assert visitor.expect("error")["code"] == "frame_too_large"
    visitor.send({"type": "message.send", "client_id": "long", "text": "x" * 4001})
    assert visitor.expect("error", ref="long")["code"] == "invalid_input"
    time.sleep(2.5)  # refill the bucket after the frames above
    for n in range(30):
        visitor.send({"type": "message.send", "client_id": f"f{n}", "text": "flood"})
    limited = visitor.expect("error", code="rate_limited")
    assert limited["retry_after_ms"] > 0
    stored = [f for f in visitor.drain(1.0) if f["type"] == "message.created"]
    assert 15 <= len(stored) + 1 <= 25  # the burst went through, the rest was dropped
    time.sleep(0.3)
    visitor.send({"type": "ping"})
    assert visitor.expect("pong") == {"type": "pong"}


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("forged", "not_signed_in"),
        ("", "not_signed_in"),
        (None, "not_signed_in"),
        ("in the URL", "not_signed_in"),
        ("role", "forbidden"),
        ("profile", "forbidden"),
    ],
)
def test_an_agent_without_sign_in_role_or_profile_is_refused(
    server: Server, token: str | None, code: str
) -> None:
    path = "/ws/agent"
    if token == "role":
        token = server.token(BOB_USER, roles=frozenset({"Salesperson"}))
    elif token == "profile":
        token = server.token(NOBODY_USER)
    elif token == "in the URL":
        # The old way: a good token in the query string no longer signs a console in.
        path, token = f"/ws/agent?token={server.token(BOB_USER)}", None
    ws = server.connect(path, token=token)
    assert ws.expect("error")["code"] == code
    deadline = time.monotonic() + 5
    with contextlib.suppress(ConnectionClosed):
        ws.send({"type": "ping"})
        while time.monotonic() < deadline:
            assert ws.client.receive(timeout=0.2) is None  # no pong, no snapshot: refused
    assert not ws.client.connected


def test_while_unsubscribed_a_console_is_refused_and_told_why(server: Server) -> None:
    directory = services_of(server.app).directory
    directory.subscription_on = False
    ws = server.connect("/ws/agent", token=server.token(BOB_USER))
    refused = ws.expect("error")
    assert refused["code"] == "unsubscribed"
    assert "unsubscribed from CRM Chat" in refused["message"]
    assert "kept" in refused["message"]  # nothing was deleted
    directory.subscription_on = True
    again = server.connect("/ws/agent", token=server.token(BOB_USER))
    assert again.expect("snapshot")["me"]["name"] == "Bob"


def test_the_service_answers_the_protocol_never_the_token(server: Server) -> None:
    token = server.token(BOB_USER)
    ws = server.connect("/ws/agent", token=token)
    assert ws.expect("snapshot")["me"]["name"] == "Bob"
    # The handshake's answer names the protocol only: the token is not sent back.
    assert ws.client.subprotocol == AGENT_SUBPROTOCOL


def test_with_capacity_one_the_second_visitor_hears_their_place_and_is_offered_when_it_frees(
    server: Server,
) -> None:
    directory = services_of(server.app).directory
    ann_profile = directory.agent(ANN)
    directory.set_agent(replace(ann_profile, capacity=1))
    ann = server.agent(ANN_USER)
    first = server.visitor("visitor-0001")
    first_id = start_chat(first)["conversation_id"]
    assert first.expect("chat.queued") == {
        "type": "chat.queued",
        "conversation_id": first_id,
        "position": 1,
        "estimated_wait_secs": None,
    }
    ann.expect("chat.offered")
    ann.send({"type": "chat.accept", "conversation_id": first_id})
    ann.expect("chat.accepted")
    ann.drain()

    second = server.visitor("visitor-0002")
    second_id = start_chat(second)["conversation_id"]
    queued = second.expect("chat.queued")
    assert (queued["conversation_id"], queued["position"]) == (second_id, 1)
    assert ann.expect("chat.waiting")["chat"]["conversation_id"] == second_id
    assert [f for f in ann.drain() if f["type"] == "chat.offered"] == []  # Ann is full

    first.send({"type": "chat.end"})
    assert ann.expect("chat.offered")["chat"]["conversation_id"] == second_id


def test_routing_frames_refuse_what_the_protocol_does_not_allow(server: Server) -> None:
    ann = server.agent(ANN_USER)
    # Paused is the service's to set.
    ann.send({"type": "status.set", "status": "paused"})
    assert ann.expect("error")["code"] == "invalid_input"
    # A transfer names an agent or a queue, not both, not neither.
    chat = "00000000-0000-0000-0000-000000000001"
    for extra in ({}, {"agent_id": BOB, "topic_id": SALES}):
        ann.send({"type": "chat.transfer", "conversation_id": chat, **extra})
        assert ann.expect("error")["code"] == "invalid_input"
    ann.send({"type": "chat.transfer", "conversation_id": chat, "topic_id": SALES})
    assert ann.expect("error")["code"] == "not_found"
