"""A contact's data on request through the service API, as the signed-in CRM user: the
export holds the contact's chats (regarding the contact or its case) with transcripts and
notes; delete removes them and is idempotent; users whose CRM privileges fall short are
refused by Dataverse itself (the service impersonates them)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from test_settings_api import SignIn, app, client, sign_in, users  # noqa: F401

from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    SenderKind,
    VisitorPresence,
)
from connector.crm import tables
from connector.demo import admin_client
from connector.services import services_of

TRANSCRIPT = "[10:00:00] Ann: where is my order 1042?"
SHOP_WIDGET = "10000000-0000-0000-0000-000000000001"


def _admin(app: Flask) -> Any:  # noqa: F811
    return admin_client(services_of(app).standin)


def _chat(
    crm: Any, regarding_table: str, regarding_id: str, *, note: bool, visitor_id: str = ""
) -> str:
    chat_id = str(uuid.uuid4())
    name, value = tables.bind_regarding(regarding_table, regarding_id)
    fields = {"subject": "Chat", "crmchat_transcript": TRANSCRIPT, name: value}
    if visitor_id:
        fields["crmchat_visitorid"] = visitor_id
    crm.create(tables.CHATS, fields, record_id=chat_id)
    if note:
        crm.create(
            "annotations",
            {
                "subject": "invoice.pdf",
                "notetext": "the visitor's file",
                "objectid_crmchat_chat@odata.bind": f"/{tables.CHATS}({chat_id})",
            },
        )
    return chat_id


def _ann_with_chats(app: Flask) -> tuple[str, set[str], str]:  # noqa: F811
    """Ann (a contact) with a chat about her, one about her case, and someone else's."""
    crm = _admin(app)
    ann = str(uuid.uuid4())
    crm.create("contacts", {"firstname": "Ann", "lastname": "Lee"}, record_id=ann)
    other = str(uuid.uuid4())
    crm.create("contacts", {"firstname": "Bob", "lastname": "Roe"}, record_id=other)
    case = str(uuid.uuid4())
    crm.create(
        "incidents",
        {"title": "Order 1042", "customerid_contact@odata.bind": f"/contacts({ann})"},
        record_id=case,
    )
    chats = {_chat(crm, "contact", ann, note=True), _chat(crm, "incident", case, note=False)}
    crm.create(
        "crmchat_platformlinks",
        {
            "crmchat_name": "Ann on WhatsApp",
            "crmchat_platformuserid": "15551234567",
            "crmchat_ContactId@odata.bind": f"/contacts({ann})",
        },
    )
    others = _chat(crm, "contact", other, note=True)
    return ann, chats, others


def test_the_export_holds_the_contacts_chats_transcripts_and_notes(
    app: Flask,  # noqa: F811
    client: FlaskClient,  # noqa: F811
    sign_in: SignIn,  # noqa: F811
) -> None:
    ann, chats, others = _ann_with_chats(app)
    answer = client.get(f"/api/privacy/contacts/{ann}/export", headers=sign_in("crmadmin"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert "attachment" in answer.headers["Content-Disposition"]
    document = json.loads(answer.get_data(as_text=True))
    assert document["contact"]["fullname"] == "Ann Lee"
    assert {c["activityid"] for c in document["chats"]} == chats
    assert others not in {c["activityid"] for c in document["chats"]}
    assert all(c["crmchat_transcript"] == TRANSCRIPT for c in document["chats"])
    notes = [n for c in document["chats"] for n in c["notes"]]
    assert [n["subject"] for n in notes] == ["invoice.pdf"]
    assert [link["crmchat_platformuserid"] for link in document["platform_links"]] == [
        "15551234567"
    ]


def test_delete_removes_the_chats_and_notes_and_is_idempotent(
    app: Flask,  # noqa: F811
    client: FlaskClient,  # noqa: F811
    sign_in: SignIn,  # noqa: F811
) -> None:
    ann, chats, others = _ann_with_chats(app)
    headers = sign_in("crmadmin")
    url = f"/api/privacy/contacts/{ann}/delete"
    first = client.post(url, json={}, headers=headers)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {
        "chats": 2,
        "notes": 1,
        "links": 1,
        "contact": False,
        "live_chats": 0,
    }
    crm = _admin(app)
    left = {str(r["activityid"]) for r in crm.list(tables.CHATS, select=["activityid"])}
    assert left == {others}  # only the other contact's chat stays
    assert len(list(crm.list("annotations", select=["annotationid"]))) == 1
    assert list(crm.list("crmchat_platformlinks", select=["crmchat_name"])) == []
    assert crm.retrieve("contacts", ann, select=["fullname"])["fullname"] == "Ann Lee"

    again = client.post(url, json={}, headers=headers)
    assert again.get_json() == {
        "chats": 0,
        "notes": 0,
        "links": 0,
        "contact": False,
        "live_chats": 0,
    }

    # The contact record itself only when asked, and only by who may delete contacts:
    # CRM Chat Administrator may not (no prvDeleteContact), a System Administrator may.
    asked = {"delete_contact": True}
    assert client.post(url, json=asked, headers=headers).status_code == 403
    gone = client.post(url, json=asked, headers=sign_in("admin"))
    assert gone.get_json() == {
        "chats": 0,
        "notes": 0,
        "links": 0,
        "contact": True,
        "live_chats": 0,
    }
    assert client.post(url, json={}, headers=headers).status_code == 404


def test_users_without_the_crm_privileges_are_refused(
    app: Flask,  # noqa: F811
    client: FlaskClient,  # noqa: F811
    sign_in: SignIn,  # noqa: F811
    users: dict[str, str],  # noqa: F811
) -> None:
    ann, chats, _ = _ann_with_chats(app)
    # An app user may not read contacts or activities: Dataverse refuses, the service says so.
    refused = client.get(f"/api/privacy/contacts/{ann}/export", headers=sign_in("appuser"))
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    # An agent reads only their own chats (Basic) and may not delete activities or notes.
    crm = _admin(app)
    own = _chat(crm, "contact", ann, note=False)
    crm.update(
        tables.CHATS, own, {tables.BIND_OWNER: tables.bind(tables.SYSTEMUSERS, users["agent"])}
    )
    agent = sign_in("agent")
    seen = client.get(f"/api/privacy/contacts/{ann}/export", headers=agent).get_json()
    assert [c["activityid"] for c in seen["chats"]] == [own]
    denied = client.post(f"/api/privacy/contacts/{ann}/delete", json={}, headers=agent)
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "forbidden"
    left = {str(r["activityid"]) for r in crm.list(tables.CHATS, select=["activityid"])}
    assert chats | {own} <= left
    # Nobody signed in, a bad id, a bad body: clear 4xx answers.
    assert client.get(f"/api/privacy/contacts/{ann}/export").status_code == 401
    assert client.get("/api/privacy/contacts/x'or'1/export", headers=agent).status_code == 404
    bad = client.post(
        f"/api/privacy/contacts/{ann}/delete", json={"delete_contact": "yes"}, headers=agent
    )
    assert bad.status_code == 400


def _finished_live_chat(app: Flask, conversation_id: str, visitor_id: str) -> None:  # noqa: F811
    """An ended chat in the service's live-chat store whose activity is queued."""
    live = services_of(app).engine.state
    now = datetime.now(UTC)
    chat = Conversation(
        conversation_id,
        ConversationKind.VISITOR,
        ConversationState.ENDED,
        now - timedelta(minutes=20),
        widget_id=SHOP_WIDGET,
        visitor_id=visitor_id,
        ended_at=now - timedelta(minutes=5),
        finished=True,
    )
    live.save_conversation(chat)
    live.add_message(
        chat,
        Message(conversation_id, 1, "m1", SenderKind.VISITOR, visitor_id, "Ann", TRANSCRIPT, now),
    )


def test_delete_also_removes_the_contacts_ended_chats_from_the_live_store(
    app: Flask,  # noqa: F811
    client: FlaskClient,  # noqa: F811
    sign_in: SignIn,  # noqa: F811
    users: dict[str, str],  # noqa: F811
) -> None:
    crm = _admin(app)
    ann = str(uuid.uuid4())
    crm.create("contacts", {"firstname": "Ann", "lastname": "Lee"}, record_id=ann)
    chat = _chat(crm, "contact", ann, note=False, visitor_id="visitor-ann-0001")
    # The agent's own chat: he reads it (Basic) but may not delete it.
    crm.update(
        tables.CHATS, chat, {tables.BIND_OWNER: tables.bind(tables.SYSTEMUSERS, users["agent"])}
    )
    _finished_live_chat(app, "c0000000-0000-0000-0000-0000000000a1", "visitor-ann-0001")
    _finished_live_chat(app, "c0000000-0000-0000-0000-0000000000b1", "visitor-bob-0001")
    live = services_of(app).engine.state
    for visitor_id in ("visitor-ann-0001", "visitor-bob-0001"):
        seen = datetime.now(UTC)
        live.save_visitor(VisitorPresence(visitor_id, SHOP_WIDGET, seen, seen, name="Ann"))
    url = f"/api/privacy/contacts/{ann}/delete"

    # An agent may not delete the chat in CRM: the live copy stays too.
    assert client.post(url, json={}, headers=sign_in("agent")).status_code == 403
    assert live.conversation("c0000000-0000-0000-0000-0000000000a1") is not None
    assert live.visitor("visitor-ann-0001") is not None

    answer = client.post(url, json={}, headers=sign_in("crmadmin"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["live_chats"] == 1
    assert live.conversation("c0000000-0000-0000-0000-0000000000a1") is None
    assert live.messages("c0000000-0000-0000-0000-0000000000a1") == []
    assert live.history("visitor-ann-0001") == []
    assert live.visitor("visitor-ann-0001") is None  # the presence record (pages seen) too
    # Another visitor's chat and record are not the contact's.
    assert live.conversation("c0000000-0000-0000-0000-0000000000b1") is not None
    assert live.visitor("visitor-bob-0001") is not None
