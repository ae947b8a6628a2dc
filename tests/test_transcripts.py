"""A visitor downloads their chat's transcript or has it mailed, through a real SMTP server
(Debian's aiosmtpd, tests/smtp_fixture.py); nobody else's chat, no header injection."""

from __future__ import annotations

from typing import Any

import pytest
import test_public_limits
from chat_fakes import BOB, FIELDS, HELP, SHOP, Inbox
from flask import Flask
from smtp_fixture import SmtpServer
from test_public_limits import MakeApp as AppFactory

from connector.chat.actions import agents, visitors
from connector.chat.hub import Subscriber
from connector.chat.sessions import AgentSession, VisitorSession
from connector.redis_server import free_port
from connector.web.sockets import engine_of

VISITOR = "visitor-transcript1"
# Apps on fresh data folders with settings of the test's choice, stopped afterwards.
make_app = test_public_limits.make_app


def mail_settings(server: SmtpServer, **more: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_tls": "none",
        "smtp_from": "chat@shop.example",
        **more,
    }


def chat(app: Flask, *, visitor_id: str = VISITOR, widget_id: str = SHOP) -> str:
    """A chat Bob answered; the visitor's resume token."""
    engine = engine_of(app)
    bob = AgentSession(Subscriber(lambda text: None), BOB)
    agents.do_agent_connect(engine, bob)
    inbox = Inbox()
    visitor = VisitorSession(inbox.subscriber, ip="198.51.100.7")
    visitors.do_visitor_hello(engine, visitor, widget_id=widget_id, visitor_id=visitor_id, page={})
    visitors.do_visitor_start(engine, visitor, client_id="s", fields=FIELDS)
    started = inbox.last("chat.started")
    agents.do_agent_accept(engine, bob, conversation_id=started["conversation_id"])
    visitors.do_visitor_send(engine, visitor, client_id="v1", text="Where is order <b>42</b>?")
    agents.do_agent_send(
        engine, bob, conversation_id=started["conversation_id"], client_id="a1", text="On its way"
    )
    return str(started["token"])


def test_the_visitor_downloads_their_transcript_as_plain_text(make_app: AppFactory) -> None:
    app = make_app()
    token = chat(app)
    response = app.test_client().post(
        f"/api/widgets/{SHOP}/transcript", json={"visitor_id": VISITOR, "token": token}
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    lines = response.get_data(as_text=True).splitlines()
    assert any(line.endswith("Vera Visitor: Where is order <b>42</b>?") for line in lines)
    assert any(line.endswith("Bob: On its way") for line in lines)


def test_nobody_else_reads_the_chat(make_app: AppFactory) -> None:
    app = make_app()
    token = chat(app)
    client = app.test_client()
    url = f"/api/widgets/{SHOP}/transcript"
    # The visitor id is readable by page scripts and agents: on its own it proves nothing.
    for body in (
        {"visitor_id": VISITOR, "token": token[:-2] + "xx"},
        {"visitor_id": "visitor-someone-else", "token": token},
        {"visitor_id": VISITOR, "token": "forged"},
    ):
        response = client.post(url, json=body)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    # The token names the chat of one widget only.
    response = client.post(
        f"/api/widgets/{HELP}/transcript", json={"visitor_id": VISITOR, "token": token}
    )
    assert response.status_code == 404
    response = client.post(url, json={"visitor_id": VISITOR})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"


def test_the_transcript_is_mailed_through_a_real_smtp_server(
    make_app: AppFactory, smtp_server: SmtpServer
) -> None:
    app = make_app(**mail_settings(smtp_server))
    client = app.test_client()
    assert client.get(f"/api/widgets/{SHOP}/config").get_json()["transcript"] == {"mail": True}
    token = chat(app)
    response = client.post(
        f"/api/widgets/{SHOP}/transcript/mail",
        json={"visitor_id": VISITOR, "token": token, "email": "vera@example.com"},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"sent": True}
    [mail] = smtp_server.messages()
    assert mail["To"] == "vera@example.com"
    assert mail["From"] == "chat@shop.example"
    assert mail["Subject"] == "Your chat transcript (Shop)"
    body = mail.get_payload(decode=True).decode()
    assert "Vera Visitor: Where is order <b>42</b>?" in body
    assert "Bob: On its way" in body


def test_mail_goes_over_starttls_when_set(
    make_app: AppFactory, smtp_tls_server: SmtpServer
) -> None:
    settings = mail_settings(smtp_tls_server, smtp_tls="starttls")
    untrusted = make_app(**settings)
    body = {"visitor_id": VISITOR, "token": chat(untrusted), "email": "vera@example.com"}
    # A server whose certificate is not trusted gets nothing.
    response = untrusted.test_client().post(f"/api/widgets/{SHOP}/transcript/mail", json=body)
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "mail_failed"
    assert smtp_tls_server.messages() == []

    trusted = make_app(**settings, smtp_ca_bundle=str(smtp_tls_server.ca_file))
    body["token"] = chat(trusted)
    response = trusted.test_client().post(f"/api/widgets/{SHOP}/transcript/mail", json=body)
    assert response.status_code == 200, response.get_json()
    assert len(smtp_tls_server.messages()) == 1


@pytest.mark.parametrize(
    "email",
    [
        "vera@example.com\r\nBcc: everyone@example.com",
        "vera@example.com, everyone@example.com",
        "Vera <vera@example.com>",
        "vera@example.com\nSubject: spam",
        "not-an-address",
        "x" * 250 + "@example.com",
    ],
)
def test_a_bad_address_sends_nothing(
    make_app: AppFactory, smtp_server: SmtpServer, email: str
) -> None:
    app = make_app(**mail_settings(smtp_server))
    token = chat(app)
    response = app.test_client().post(
        f"/api/widgets/{SHOP}/transcript/mail",
        json={"visitor_id": VISITOR, "token": token, "email": email},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert smtp_server.messages() == []


def test_mail_is_limited_per_chat(make_app: AppFactory, smtp_server: SmtpServer) -> None:
    app = make_app(**mail_settings(smtp_server), transcript_mail_limit_per_chat="2/hour")
    client = app.test_client()
    token = chat(app)
    body = {"visitor_id": VISITOR, "token": token, "email": "vera@example.com"}
    url = f"/api/widgets/{SHOP}/transcript/mail"
    assert [client.post(url, json=body).status_code for _ in range(2)] == [200, 200]
    refused = client.post(url, json=body)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert len(smtp_server.messages()) == 2


def test_without_a_mail_transport_only_the_download_is_offered(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    assert client.get(f"/api/widgets/{SHOP}/config").get_json()["transcript"] == {"mail": False}
    token = chat(app)
    response = client.post(
        f"/api/widgets/{SHOP}/transcript/mail",
        json={"visitor_id": VISITOR, "token": token, "email": "vera@example.com"},
    )
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "mail_not_configured"


def test_an_unreachable_mail_server_is_a_clear_502(make_app: AppFactory) -> None:
    # A port nobody listens on.
    app = make_app(
        smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none", smtp_from="c@shop.example"
    )
    token = chat(app)
    response = app.test_client().post(
        f"/api/widgets/{SHOP}/transcript/mail",
        json={"visitor_id": VISITOR, "token": token, "email": "vera@example.com"},
    )
    assert response.status_code == 502
    assert "Traceback" not in response.get_data(as_text=True)
