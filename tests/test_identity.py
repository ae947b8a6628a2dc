"""Identity: host-site tokens, CRM users' tokens from the internal launcher, and what the
service does with a verified identity (docs/protocol.md, "Identity")."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import ANN_USER, BOB_USER, SHOP, FakeDirectory, FakeOutbox
from flask import Flask
from flask.testing import FlaskClient
from test_sockets import Server

from connector import jwt_tokens
from connector.app import create_app, stop_app
from connector.chat.tokens import ChatTokens, InvalidIdentity
from connector.crm.design import WidgetDesign
from connector.services import services_of

NOW = 1_900_000_000.0
Handshake = Callable[[FlaskClient, Flask, str], dict[str, str]]  # the conftest fixture
SITE_SECRET = "site-secret-0123456789abcdef"


def tokens() -> ChatTokens:
    return ChatTokens(b"service-secret", clock=lambda: NOW)


def site_token(secret: str = SITE_SECRET, **claims: Any) -> str:
    body: dict[str, Any] = {"email": "ann@shop.example", "name": "Ann Lee", "exp": NOW + 600}
    body.update(claims)
    return jwt_tokens.sign_hs256(secret.encode(), {k: v for k, v in body.items() if v is not None})


def test_a_site_token_signed_with_the_widgets_secret_names_the_visitor() -> None:
    identity = tokens().verify_identity(site_token(), widget_secret=SITE_SECRET)
    assert identity.to_dict() == {
        "verified": True,
        "source": "site",
        "name": "Ann Lee",
        "email": "ann@shop.example",
    }


@pytest.mark.parametrize(
    "token",
    [
        site_token(secret="another-widgets-secret"),  # signed with the wrong secret
        site_token(exp=NOW - 1),  # expired
        site_token(exp=None),  # no exp at all
        site_token(exp=NOW + 25 * 3600),  # lives longer than 24 h
        site_token(iat=NOW + 3600),  # issued in the future
        site_token(email="not an address"),
        site_token(email=None),
        "not.a.token",
        "",
    ],
)
def test_bad_site_tokens_prove_nothing(token: str) -> None:
    with pytest.raises(InvalidIdentity):
        tokens().verify_identity(token, widget_secret=SITE_SECRET)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused_even_without_a_signature() -> None:
    claims = {"email": "ann@shop.example", "exp": NOW + 600}
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with pytest.raises(InvalidIdentity, match="algorithm"):
        tokens().verify_identity(forged, widget_secret=SITE_SECRET)


def test_a_tampered_payload_breaks_the_signature() -> None:
    header, _payload, signature = site_token().split(".")
    tampered = f"{header}.{_b64({'email': 'boss@shop.example', 'exp': NOW + 600})}.{signature}"
    with pytest.raises(InvalidIdentity, match="signature"):
        tokens().verify_identity(tampered, widget_secret=SITE_SECRET)


def test_a_changed_last_signature_character_is_refused_even_when_it_decodes_the_same() -> None:
    # The 43rd character of an HS256 signature carries 2 bits and 4 unused ones: another
    # character with the same 2 bits decodes to the same bytes. Such a token is not the one
    # that was signed, and a page that tampers with it must see it refused every time.
    token = jwt_tokens.sign_hs256(
        SITE_SECRET.encode(), {"email": "ann@shop.example", "exp": NOW + 600}
    )
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twin = alphabet[last ^ 1]  # differs only in an unused bit
    assert base64.urlsafe_b64decode(token.split(".")[2] + "=") == base64.urlsafe_b64decode(
        token.split(".")[2][:-1] + twin + "="
    )
    with pytest.raises(jwt_tokens.TokenFormError, match="base64url"):
        jwt_tokens.verify_hs256(SITE_SECRET.encode(), token[:-1] + twin)


def test_a_widget_without_a_secret_accepts_no_site_token() -> None:
    with pytest.raises(InvalidIdentity):
        tokens().verify_identity(site_token(), widget_secret=None)


def test_the_services_crm_token_names_the_crm_user_and_cannot_be_made_by_a_site() -> None:
    issued = tokens().issue_identity(user_id="u-1", email="una@contoso.test", name="Una User")
    identity = tokens().verify_identity(issued, widget_secret=SITE_SECRET)
    assert (identity.source, identity.email, identity.user_id) == ("crm", "una@contoso.test", "u-1")
    # A site that claims to be the service (iss "crmchat") signs with its own secret: refused.
    fake = site_token(iss="crmchat", source="crm", user_id="u-1")
    with pytest.raises(InvalidIdentity):
        tokens().verify_identity(fake, widget_secret=SITE_SECRET)
    # And the service's token expires.
    later = ChatTokens(b"service-secret", clock=lambda: NOW + 2 * 3600)
    with pytest.raises(InvalidIdentity, match="expired"):
        later.verify_identity(issued, widget_secret=SITE_SECRET)


def test_the_embedded_dataverse_still_uses_the_same_jws() -> None:
    from connector.dataverse_local.security import TokenError, issue_token, verify_token

    token = issue_token(b"k", user_id="u-1")
    assert verify_token(b"k", token).user_id == "u-1"
    assert jwt_tokens.verify_hs256(b"k", token)["sub"] == "u-1"
    with pytest.raises(TokenError):
        verify_token(b"other", token)


# ----- over the visitor socket ---------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, FakeOutbox())
    directory: FakeDirectory = services_of(running.app).directory
    shop = directory.widget(SHOP)
    assert shop is not None
    directory.set_widget(replace(shop, secret=SITE_SECRET))
    yield running
    running.stop()


def live_site_token(**claims: Any) -> str:
    import time

    body: dict[str, Any] = {"email": "ann@shop.example", "name": "Ann Lee"}
    body["exp"] = int(time.time()) + 600
    body.update(claims)
    return jwt_tokens.sign_hs256(SITE_SECRET.encode(), body)


def require_login(server: Server) -> None:
    directory: FakeDirectory = services_of(server.app).directory
    shop = directory.widget(SHOP)
    assert shop is not None
    directory.set_widget(replace(shop, design=WidgetDesign(require_login=True)))


def test_hello_with_a_site_token_is_verified_and_the_agent_sees_the_identity(
    server: Server,
) -> None:
    ann = server.agent(ANN_USER)
    visitor = server.connect("/ws/visitor")
    visitor.send(
        {
            "type": "hello",
            "widget_id": SHOP,
            "visitor_id": "visitor-0001",
            "identity": {"token": live_site_token()},
        }
    )
    ok = visitor.expect("hello.ok")
    assert ok["identity"] == {
        "verified": True,
        "source": "site",
        "name": "Ann Lee",
        "email": "ann@shop.example",
    }
    visitor.send({"type": "chat.start", "client_id": "s1", "fields": {"firstname": "Zed"}})
    visitor.expect("chat.started")
    chat = ann.expect("chat.offered")["chat"]
    assert chat["identity"]["email"] == "ann@shop.example"
    # The display name is the verified name, not what the form said.
    assert chat["visitor"]["name"] == "Ann Lee"


def test_a_bad_token_answers_invalid_identity_and_the_visitor_stays_anonymous(
    server: Server,
) -> None:
    require_login(server)
    server.agent(ANN_USER)
    visitor = server.connect("/ws/visitor")
    expired = live_site_token(exp=1_000)
    visitor.send(
        {
            "type": "hello",
            "widget_id": SHOP,
            "visitor_id": "visitor-0002",
            "identity": {"token": expired},
        }
    )
    assert visitor.expect("hello.ok")["identity"] is None
    assert visitor.expect("error")["code"] == "invalid_identity"
    visitor.send({"type": "chat.start", "client_id": "s1", "fields": {"firstname": "Zed"}})
    assert visitor.expect("error")["code"] == "login_required"


def test_require_login_lets_only_identified_visitors_chat(server: Server) -> None:
    require_login(server)
    server.agent(ANN_USER)
    anonymous = server.visitor("visitor-anon")
    anonymous.send({"type": "chat.start", "client_id": "s1", "fields": {"firstname": "Zed"}})
    assert anonymous.expect("error")["code"] == "login_required"
    known = server.visitor("visitor-known", identity={"token": live_site_token()})
    known.send({"type": "chat.start", "client_id": "s1", "fields": {}})
    assert known.expect("chat.started")["conversation_id"]


def test_a_spoofed_context_email_is_refused(server: Server) -> None:
    server.agent(ANN_USER)
    visitor = server.visitor("visitor-0003", identity={"token": live_site_token()})
    visitor.send(
        {
            "type": "chat.start",
            "client_id": "s1",
            "fields": {"firstname": "Ann", "email": "ann@shop.example"},
            "context": {"Email": "boss@shop.example"},
        }
    )
    assert visitor.expect("error")["code"] == "identity_mismatch"
    # The verified email itself (in any case) is fine.
    visitor.send(
        {
            "type": "chat.start",
            "client_id": "s2",
            "fields": {"firstname": "Ann", "email": "ann@shop.example"},
            "context": {"Email": {"value": "ANN@shop.example", "isDisplayable": True}},
        }
    )
    assert visitor.expect("chat.started")


# ----- POST /api/internal/identity ------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    flask_app = create_app(
        {"data_dir": tmp_path, "secret_key": "test-secret-key"},
        directory=FakeDirectory(),
        outbox=FakeOutbox(),
        start=False,
    )
    yield flask_app
    stop_app(flask_app)


def _user(app: Flask, role: str | None, *, email: str) -> str:
    from connector.dataverse_local import add_user, open_store
    from connector.solution.reader import load_schema

    schema = load_schema()
    roles = {r.name: r.id for r in schema.roles}
    store = open_store(services_of(app).settings.embedded_db, schema)
    try:
        return add_user(
            store,
            domain_name=email,
            first_name="Una",
            last_name="User",
            role_ids=[roles[role]] if role else [],
        )
    finally:
        store.close()


def test_a_crm_app_user_gets_a_token_naming_them_from_the_systemuser_record(
    app: Flask, make_handshake: Handshake
) -> None:
    client = app.test_client()
    user_id = _user(app, "CRM Chat App User", email="una@contoso.test")
    answer = client.post("/api/internal/identity", json=make_handshake(client, app, user_id))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["user"] == {"id": user_id, "name": "Una User", "email": "una@contoso.test"}
    identity = services_of(app).engine.tokens.verify_identity(body["token"], widget_secret=None)
    assert (identity.source, identity.email, identity.name) == (
        "crm",
        "una@contoso.test",
        "Una User",
    )


def test_internal_identity_needs_a_fresh_handshake_of_its_own(
    app: Flask, make_handshake: Handshake
) -> None:
    client = app.test_client()
    made_up = {"handshake_id": "6f1c3a52-6c2a-4d0e-9a0e-3c6a3b1d2e71", "nonce": "n" * 24}
    assert client.post("/api/internal/identity", json=made_up).status_code == 401
    user_id = _user(app, "CRM Chat Agent", email="sam@contoso.test")
    handshake = make_handshake(client, app, user_id)
    assert client.post("/api/internal/identity", json=handshake).status_code == 200
    # A handshake is redeemed once; a page cannot replay it.
    assert client.post("/api/internal/identity", json=handshake).status_code == 401
    wrong = dict(make_handshake(client, app, user_id), nonce="x" * 24)
    assert client.post("/api/internal/identity", json=wrong).status_code == 401


def test_the_agent_sees_the_internal_users_name(tmp_path: Path) -> None:
    running = Server(tmp_path, FakeOutbox())
    try:
        bob = running.agent(BOB_USER)
        token = services_of(running.app).engine.tokens.issue_identity(
            user_id="u-9", email="una@contoso.test", name="Una User"
        )
        visitor = running.visitor("visitor-int1", identity={"token": token})
        visitor.send({"type": "chat.start", "client_id": "s1", "fields": {}})
        visitor.expect("chat.started")
        chat = bob.expect("chat.offered")["chat"]
        assert chat["visitor"]["name"] == "Una User"
        assert chat["identity"]["source"] == "crm"
    finally:
        running.stop()


def test_a_verified_visitor_is_linked_to_their_contact_and_its_open_case(server: Server) -> None:
    from connector.crm import tables

    client = services_of(server.app).dataverse
    ann = client.create(
        tables.CONTACTS,
        {"firstname": "Ann", "lastname": "Lee", "emailaddress1": "ann@shop.example"},
    )
    case = client.create(
        tables.INCIDENTS,
        {
            "title": "Late delivery",
            "customerid_contact@odata.bind": tables.bind(tables.CONTACTS, ann),
        },
    )
    bob = server.agent(BOB_USER)
    visitor = server.visitor("visitor-verified", identity={"token": live_site_token()})
    visitor.send({"type": "chat.start", "client_id": "s1", "fields": {"firstname": "Ann"}})
    visitor.expect("chat.started")
    updated = bob.expect("chat.updated")["chat"]
    assert updated["contact"] == {"id": ann, "name": "Ann Lee", "verified": True}
    assert updated["regarding"] == {"table": "incident", "id": case, "name": "Late delivery"}


def _hello(socket: Any, visitor_id: str, token: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "hello", "widget_id": SHOP, "visitor_id": visitor_id}
    if token is not None:
        frame["identity"] = {"token": token}
    socket.send(frame)
    ok: dict[str, Any] = socket.expect("hello.ok")
    return ok


def test_a_verified_visitor_finds_their_open_chat_on_another_device(server: Server) -> None:
    ann = server.agent(ANN_USER)
    phone = server.connect("/ws/visitor")
    on_phone = _hello(phone, "phone-device-0001", live_site_token())
    phone.send({"type": "chat.start", "client_id": "s1", "fields": {"firstname": "Ann"}})
    conversation_id = phone.expect("chat.started")["conversation_id"]
    ann.expect("chat.offered")
    ann.send({"type": "chat.accept", "conversation_id": conversation_id})
    phone.send({"type": "message.send", "client_id": "p1", "text": "Typed on the phone"})
    phone.expect("message.created", client_id="p1")

    # The laptop has another local visitor id and no resume token, only the same person.
    laptop = server.connect("/ws/visitor")
    on_laptop = _hello(laptop, "laptop-device-001", live_site_token())
    assert on_laptop["visitor_id"] == on_phone["visitor_id"]
    chat = on_laptop["chat"]
    assert chat["conversation_id"] == conversation_id and chat["state"] == "active"
    assert [m["text"] for m in chat["messages"] if m.get("client_id") == "p1"] == [
        "Typed on the phone"
    ]
    laptop.send({"type": "message.send", "client_id": "l1", "text": "Now on the laptop"})
    assert ann.expect("message.created", client_id="l1")["conversation_id"] == conversation_id
    assert phone.expect("message.created", client_id="l1")["text"] == "Now on the laptop"
    # Its own resume token brings the laptop back after a reload.
    again = server.connect("/ws/visitor")
    again.send(
        {
            "type": "hello",
            "widget_id": SHOP,
            "visitor_id": "laptop-device-001",
            "identity": {"token": live_site_token()},
            "resume": {"token": chat["token"]},
        }
    )
    assert again.expect("hello.ok")["chat"]["conversation_id"] == conversation_id

    # Nobody else gets it: not the laptop's id without the identity, nor another person.
    assert _hello(server.connect("/ws/visitor"), "laptop-device-001")["chat"] is None
    other = _hello(
        server.connect("/ws/visitor"), "other-device-01", live_site_token(email="bo@x.example")
    )
    assert other["chat"] is None and other["visitor_id"] != on_phone["visitor_id"]


def test_a_chat_begun_before_signing_in_on_the_site_stays_the_visitors(server: Server) -> None:
    server.agent(ANN_USER)
    tab = server.connect("/ws/visitor")
    assert _hello(tab, "browser-device-01")["identity"] is None
    fields = {"firstname": "Ann", "email": "ann@shop.example"}
    tab.send({"type": "chat.start", "client_id": "s1", "fields": fields})
    started = tab.expect("chat.started")

    # The site signs her in and the page reloads: her token still brings the chat back.
    reloaded = server.connect("/ws/visitor")
    reloaded.send(
        {
            "type": "hello",
            "widget_id": SHOP,
            "visitor_id": "browser-device-01",
            "identity": {"token": live_site_token()},
            "resume": {"token": started["token"]},
        }
    )
    ok = reloaded.expect("hello.ok")
    assert ok["identity"]["verified"] is True and ok["visitor_id"] == "browser-device-01"
    assert ok["chat"]["conversation_id"] == started["conversation_id"]
