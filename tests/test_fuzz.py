"""Fuzzing (hypothesis): no input makes the service answer >= 500 or fail a frame.

Every route of the service's URL map (and the embedded Dataverse's main paths) gets
random ids, query strings, headers and bodies, signed in as an admin, an agent or nobody;
every frame type of both sockets gets random fields, sent through the real socket loops
(`visitor_socket`, `agent_socket`) after a valid or random hello. No answer may be a 5xx,
no frame may answer `internal_error`, and nothing may be logged at ERROR.
"""

from __future__ import annotations

import json
import logging
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from chat_fakes import ensure_user
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simple_websocket import ConnectionClosed

from connector.app import create_app, stop_app
from connector.chat import frames
from connector.crm import secret_word
from connector.crm.handshake import SignedInUser
from connector.dataverse_local import ADMIN_USER_ID, issue_token
from connector.demo import SALES_TOPIC_ID, SALES_WIDGET_ID, SAM_AGENT_ID, SAM_USER_ID
from connector.web.auth import issue_service_token
from connector.web.sockets import agent_socket, visitor_socket

HTTP_EXAMPLES = 1500
FRAME_EXAMPLES = 700  # per socket; each example is a hello and up to four more frames


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


KNOWN_IDS = [SALES_WIDGET_ID, SALES_TOPIC_ID, SAM_AGENT_ID, SAM_USER_ID, ADMIN_USER_ID]
DATAVERSE_PATHS = [
    "/api/data/v9.2/WhoAmI",
    "/api/data/v9.2/$metadata",
    "/api/data/v9.2/$batch",
    "/api/data/v9.2/contacts",
    "/api/data/v9.2/contacts({id})",
    "/api/data/v9.2/crmchat_snippets",
    "/api/data/v9.2/crmchat_snippets({id})",
    "/api/data/v9.2/crmchat_chats({id})",
    "/api/data/v9.2/systemusers({id})/systemuserroles_association",
]


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setattr(secret_word, "WRONG_GUESS_BASE_DELAY_SECS", 0.0)
    app = create_app(
        {"data_dir": tmp_path, "secret_key": "f" * 40, "demo": True, "log_level": "WARNING"},
        start=False,
    )
    yield app
    stop_app(app)


@pytest.fixture
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def _service_token(app: Flask, user_id: str, roles: frozenset[str]) -> str:
    ensure_user(app, user_id, roles)
    with app.app_context():
        return issue_service_token(SignedInUser(user_id, "Fuzz", "fuzz@example.com", roles))


# ----- values -----------------------------------------------------------------------

texts = st.text(max_size=40) | st.sampled_from(["", " ", "'", "%27", "<b>", "../x", "\x00"])
ids = st.sampled_from(KNOWN_IDS) | st.uuids().map(str) | texts
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts | ids,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
deep = st.integers(min_value=50, max_value=5000).map(lambda n: "[" * n + "]" * n)
bodies = (
    json_values.map(json.dumps)
    | deep
    | st.binary(max_size=64).map(lambda b: b.decode("latin-1"))
    | st.sampled_from(["", "{", '{"word": "x"}', '{"user_id": "' + SAM_USER_ID + '"}'])
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "multipart/mixed;boundary=batch_x", ""]
)
queries = st.dictionaries(
    st.sampled_from(["$filter", "$select", "$top", "$expand", "$orderby", "token", "x"]),
    texts,
    max_size=3,
)


def _routes(app: Flask) -> list[tuple[str, str]]:
    """(method, rule) for every route of the service except the websocket ones."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/ws/"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    found += [(m, p) for p in DATAVERSE_PATHS for m in ("GET", "POST", "PATCH", "DELETE")]
    return found


def _fill(rule: str, value: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?[a-z_]+>|\{id\}", lambda _: quote(value, safe=""), rule)


def test_no_http_request_gets_a_5xx(app: Flask, errors: ErrorLog) -> None:
    routes = _routes(app)
    assert len(routes) > 40
    client = app.test_client()
    store = app.extensions["crmchat.standin"].store
    auth = {
        "admin": "Bearer "
        + _service_token(app, ADMIN_USER_ID, frozenset({"System Administrator"})),
        "agent": f"Bearer {_service_token(app, SAM_USER_ID, frozenset({'CRM Chat Agent'}))}",
        "dataverse": f"Bearer {issue_token(store.signing_secret, user_id=ADMIN_USER_ID)}",
        "forged": "Bearer abc.def",
    }

    @fuzz(HTTP_EXAMPLES)
    @given(
        route=st.sampled_from(routes),
        value=ids,
        query=queries,
        body=bodies,
        content_type=content_types,
        who=st.sampled_from([None, *auth]),
        host=st.sampled_from(["localhost", "127.0.0.1:8600", "evil.example", "[::1]"]),
    )
    def request(
        route: tuple[str, str],
        value: str,
        query: dict[str, str],
        body: str,
        content_type: str,
        who: str | None,
        host: str,
    ) -> None:
        method, rule = route
        headers = {"Host": host, "Content-Type": content_type}
        if who is not None:
            headers["Authorization"] = auth[who]
        path = _fill(rule, value)
        answer = client.open(path, method=method, query_string=query, data=body, headers=headers)
        assert answer.status_code < 500, (method, path, answer.get_data()[:300])
        assert not errors.records, errors.records[0].getMessage()

    request()


# ----- the sockets ------------------------------------------------------------------


class FakeSocket:
    """What flask-sock hands a route: frames to receive, then the client goes away."""

    def __init__(self, incoming: list[str]) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []

    def receive(self, timeout: float | None = None) -> str | None:
        if not self.incoming:
            raise ConnectionClosed()
        return self.incoming.pop(0)

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def close(self, **kwargs: Any) -> None:
        self.incoming.clear()


def _frame_types(union: Any) -> list[type[Any]]:
    members = typing.get_args(typing.get_args(union)[0])
    return [m for m in members if hasattr(m, "model_fields")]


def _field_values(name: str) -> st.SearchStrategy[Any]:
    """Mostly plausible values for a field (so frames get past parsing), some garbage."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "widget_id": st.sampled_from([SALES_WIDGET_ID, SALES_TOPIC_ID]),
        "visitor_id": st.sampled_from(["fuzz-visitor-1", "fuzz-visitor-2"]),
        "conversation_id": st.uuids().map(str),
        "agent_id": st.sampled_from([SAM_AGENT_ID]) | st.uuids().map(str),
        "topic_id": st.sampled_from([SALES_TOPIC_ID, None]),
        "client_id": st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
        "text": st.text(min_size=1, max_size=50),
        "message": st.text(min_size=1, max_size=50),
        "status": st.sampled_from(["available", "busy", "away", "offline", "x"]),
        "rating": st.integers(min_value=-1, max_value=6),
        "on": st.booleans(),
        "since_seq": st.integers(min_value=-1, max_value=100),
        "fields": st.dictionaries(
            st.sampled_from(["firstname", "lastname", "email", "x"]), st.text(max_size=30)
        ),
        "page": st.fixed_dictionaries(
            {"url": st.sampled_from(["https://shop.example/", "javascript:x"]), "title": texts}
        ),
        "label_ids": st.lists(st.uuids().map(str), max_size=3),
    }
    return plausible.get(name, json_values) | json_values


@st.composite
def frame_text(draw: st.DrawFn, models: list[type[Any]]) -> str:
    model = draw(st.sampled_from(models))
    names = [n for n in model.model_fields if n != "type"]
    chosen = draw(st.lists(st.sampled_from(names), unique=True) if names else st.just([]))
    frame: dict[str, Any] = {"type": model.model_fields["type"].default or draw(texts)}
    if model.model_fields["type"].annotation is not None:
        literal = typing.get_args(model.model_fields["type"].annotation)
        frame["type"] = literal[0] if literal else frame["type"]
    for name in chosen:
        frame[name] = draw(_field_values(name))
    if draw(st.integers(0, 9)) == 0:
        frame[draw(texts)] = draw(json_values)  # an unknown field
    return json.dumps(frame)


def _hello(resume: str | None = None) -> str:
    hello: dict[str, Any] = {
        "type": "hello",
        "widget_id": SALES_WIDGET_ID,
        "visitor_id": "fuzz-visitor-1",
        "page": {"url": "https://shop.example/", "title": "Shop"},
    }
    return json.dumps(hello)


def _run(app: Flask, route: Callable[[Any], None], path: str, incoming: list[str]) -> FakeSocket:
    ws = FakeSocket(incoming)
    with app.test_request_context(path, environ_base={"REMOTE_ADDR": "203.0.113.9"}):
        try:
            route(ws)
        except ConnectionClosed:
            pass
    return ws


def _assert_no_internal_error(ws: FakeSocket, errors: ErrorLog) -> None:
    failed = [f for f in ws.sent if f.get("type") == "error" and f["code"] == "internal_error"]
    assert not failed, failed
    assert not errors.records, errors.records[0].getMessage()


garbage_frames = st.one_of(
    json_values.map(json.dumps), deep, st.text(max_size=30), st.just("{" * 20000)
)


def test_no_visitor_frame_fails_on_our_side(app: Flask, errors: ErrorLog) -> None:
    models = _frame_types(frames.VisitorFrame)
    assert {m.model_fields["type"].annotation for m in models}  # every visitor frame type

    @fuzz(FRAME_EXAMPLES)
    @given(
        hello=st.sampled_from([_hello(), None]),
        rest=st.lists(frame_text(models) | garbage_frames, min_size=1, max_size=4),
    )
    def session(hello: str | None, rest: list[str]) -> None:
        incoming = ([hello] if hello else []) + rest
        _assert_no_internal_error(_run(app, visitor_socket, "/ws/visitor", incoming), errors)

    session()


def test_no_agent_frame_fails_on_our_side(app: Flask, errors: ErrorLog) -> None:
    models = _frame_types(frames.AgentFrame)
    token = _service_token(app, SAM_USER_ID, frozenset({"CRM Chat Agent"}))

    @fuzz(FRAME_EXAMPLES)
    @given(rest=st.lists(frame_text(models) | garbage_frames, min_size=1, max_size=5))
    def session(rest: list[str]) -> None:
        ws = _run(app, agent_socket, f"/ws/agent?token={token}", rest)
        _assert_no_internal_error(ws, errors)

    session()
