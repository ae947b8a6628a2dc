"""A finished chat as one completed activity: the payload (pure) and the write (embedded)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from chat_fakes import SERVICE_SECRET, activity_of, prime_writer, write_chat

from connector.crm import tables
from connector.crm.chat_activity import (
    MAX_TRANSCRIPT_CHARS,
    FinishedChat,
    chat_activity_handler,
    chat_activity_id,
    chat_activity_payload,
    chat_notes,
    format_transcript,
    utf16_len,
    write_notes,
)
from connector.crm.regarding import Regarding, create_case, create_contact, create_lead
from connector.dataverse import DataverseClient, StaticTokenProvider
from connector.dataverse.transport import WsgiAdapter
from connector.dataverse_local import ADMIN_USER_ID, DataverseApp, add_user, issue_token
from connector.solution.model import AccessLevel, Role, Schema
from connector.solution.reader import load_schema

ORIGIN = "http://dataverse.invalid"
START = datetime(2026, 3, 2, 10, 1, 30, tzinfo=UTC)


def message(seconds: int, kind: str, name: str, text: str) -> dict[str, Any]:
    return {
        "seq": seconds,
        "client_id": f"c{seconds}",
        "sender": {"kind": kind, "name": name},
        "text": text,
        "sent_at": (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
    }


def finished_chat(**changes: Any) -> FinishedChat:
    values: dict[str, Any] = {
        "conversation_id": str(uuid.uuid4()),
        "widget_id": None,
        "topic_names": ["Sales", "Support"],
        "visitor_name": "Ann Lee",
        "visitor_fields": {"firstname": "Ann", "lastname": "Lee", "email": "ann@shop.example"},
        "visitor_id": "v-123",
        "page": "https://shop.example/p/1",
        "ip": "203.0.113.9",
        "started_at": START,
        "accepted_at": START + timedelta(seconds=20),
        "ended_at": START + timedelta(minutes=4, seconds=5),
        "owner_user_id": None,
        "participants": [
            {"kind": "visitor", "id": "v-123", "name": "Ann Lee"},
            {"kind": "agent", "id": "a-1", "name": "Bob Ray"},
        ],
        "rating": 5,
        "transcript": [
            message(41, "visitor", "Ann Lee", "hello"),
            message(50, "agent", "Bob Ray", "Hi Ann!\nHow can I help?"),
        ],
        "regarding": None,
        "context": {"source": "internal", "email": "ann@shop.example"},
    }
    values.update(changes)
    return FinishedChat(**values)


# ----- the payload (pure) ---------------------------------------------------------------


def test_the_payload_carries_every_column() -> None:
    widget_id, owner_id = str(uuid.uuid4()), str(uuid.uuid4())
    contact = Regarding(table="contact", id=str(uuid.uuid4()), name="Ann Lee")
    chat = finished_chat(widget_id=widget_id, owner_user_id=owner_id, regarding=contact)
    payload = chat_activity_payload(chat)
    assert payload["subject"] == "Sales, Support"
    assert payload["actualstart"] == "2026-03-02T10:01:30Z"
    assert payload["actualend"] == "2026-03-02T10:05:35Z"
    assert payload["actualdurationminutes"] == 5  # 4 min 5 s, rounded up
    assert payload["crmchat_WidgetId@odata.bind"] == f"/crmchat_widgets({widget_id})"
    assert payload["ownerid@odata.bind"] == f"/systemusers({owner_id})"
    assert payload["regardingobjectid_contact_crmchat_chat@odata.bind"] == (
        f"/contacts({contact.id})"
    )
    assert payload["crmchat_rating"] == 5
    assert payload["crmchat_visitorid"] == "v-123"
    info = json.loads(payload["crmchat_visitorinfo"])
    assert info["fields"]["email"] == "ann@shop.example" and info["ip"] == "203.0.113.9"
    assert info["page"] == "https://shop.example/p/1" and info["name"] == "Ann Lee"
    assert json.loads(payload["crmchat_participants"])[1]["name"] == "Bob Ray"
    assert json.loads(payload["crmchat_context"]) == {
        "source": "internal",
        "email": "ann@shop.example",
    }
    assert payload["crmchat_transcript"] == (
        "[10:02:11] Ann Lee: hello\n[10:02:20] Bob Ray: Hi Ann!\n    How can I help?"
    )
    assert "statecode" not in payload  # closed by the second request
    assert chat_activity_payload(chat) == payload  # pure


def test_the_payload_carries_the_report_figures() -> None:
    topic_id, agent_id = str(uuid.uuid4()), str(uuid.uuid4())
    payload = chat_activity_payload(finished_chat(topic_id=topic_id, agent_id=agent_id))
    assert payload["crmchat_waitseconds"] == 20
    assert payload["crmchat_durationseconds"] == 245
    assert payload["crmchat_chatday"] == "2026-03-02"
    assert payload["crmchat_TopicId@odata.bind"] == f"/crmchat_topics({topic_id})"
    assert payload["crmchat_AgentId@odata.bind"] == f"/crmchat_agents({agent_id})"
    unanswered = chat_activity_payload(finished_chat(accepted_at=None))
    assert "crmchat_waitseconds" not in unanswered  # nobody answered: no wait to count


def test_optional_links_and_rating_are_left_out_when_absent() -> None:
    payload = chat_activity_payload(finished_chat(rating=None, topic_names=[]))
    assert "crmchat_rating" not in payload
    assert not [key for key in payload if key.endswith("@odata.bind")]
    assert payload["subject"] == "Chat with Ann Lee"


def test_each_regarding_table_uses_its_own_property() -> None:
    for table, entity_set in [("lead", "leads"), ("incident", "incidents")]:
        regarding = Regarding(table=table, id=str(uuid.uuid4()), name="x")  # type: ignore[arg-type]
        payload = chat_activity_payload(finished_chat(regarding=regarding))
        key = f"regardingobjectid_{table}_crmchat_chat@odata.bind"
        assert payload[key] == f"/{entity_set}({regarding.id})"


def test_the_transcript_shows_the_date_when_a_chat_crosses_midnight() -> None:
    late = datetime(2026, 3, 2, 23, 59, 58, tzinfo=UTC)
    lines = format_transcript(
        [
            {
                "sender": {"kind": "visitor", "name": "Ann"},
                "text": "still there?",
                "sent_at": late.isoformat(),
            },
            {
                "sender": {"kind": "agent", "name": ""},
                "text": "yes",
                "sent_at": (late + timedelta(seconds=5)).isoformat(),
            },
        ],
        started_at=late,
    ).splitlines()
    assert lines == ["[23:59:58] Ann: still there?", "[2026-03-03 00:00:03] Agent: yes"]


def test_times_are_shown_in_utc_and_control_characters_dropped() -> None:
    oslo = timezone(timedelta(hours=1))
    text = format_transcript(
        [
            {
                "sender": {"kind": "system"},
                "text": "a\x00b\x1b[31m",
                "sent_at": datetime(2026, 3, 2, 11, 0, 0, tzinfo=oslo),
            }
        ],
        started_at=START,
    )
    assert text == "[10:00:00] System: ab[31m"


def test_a_long_transcript_is_cut_at_a_message_and_says_so() -> None:
    messages = [message(i, "visitor", "Ann", "x" * 90) for i in range(50)]
    text = format_transcript(messages, started_at=START, limit=1000)
    lines = text.splitlines()
    assert utf16_len(text) <= 1000
    shown = len(lines) - 1
    assert 0 < shown < 50
    assert all(line.endswith("x" * 90) for line in lines[:-1])
    assert lines[-1].startswith(f"[transcript truncated: {50 - shown} of 50 messages not shown")


def test_the_limit_counts_utf16_units_like_dataverse() -> None:
    # Each emoji is one Python character but two UTF-16 units.
    messages = [message(i, "visitor", "Ann", "😀" * 100) for i in range(20)]
    text = format_transcript(messages, started_at=START, limit=1000)
    assert len(text) < utf16_len(text) <= 1000
    assert "truncated" in text


def test_a_single_message_longer_than_the_limit_keeps_its_start() -> None:
    text = format_transcript([message(1, "agent", "Bob", "z" * 2000)], started_at=START, limit=1000)
    first, marker = text.splitlines()
    assert first.startswith("[10:01:31] Bob: zzz") and utf16_len(text) <= 1000
    assert marker.startswith("[transcript truncated: 0 of 1 messages")


def test_the_real_transcript_column_limit_holds() -> None:
    messages = [message(i % 3600, "agent", "Bob", "y" * 4000) for i in range(300)]
    payload = chat_activity_payload(finished_chat(transcript=messages))
    assert utf16_len(payload["crmchat_transcript"]) <= MAX_TRANSCRIPT_CHARS
    assert "transcript truncated" in payload["crmchat_transcript"]


def test_oversized_json_columns_stay_within_their_limit() -> None:
    context = {f"key{i}": "v" * 5000 for i in range(100)}
    payload = chat_activity_payload(finished_chat(context=context))
    assert utf16_len(payload["crmchat_context"]) <= 100_000
    assert set(json.loads(payload["crmchat_context"])) == set(context)


def test_the_outbox_form_reads_back_the_same() -> None:
    contact = Regarding(table="contact", id=str(uuid.uuid4()), name="Ann")
    chat = finished_chat(regarding=contact, owner_user_id=str(uuid.uuid4()))
    data = json.loads(json.dumps(chat.to_dict()))
    assert FinishedChat.from_dict(data) == chat


def test_naive_times_and_bad_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        finished_chat(started_at=datetime(2026, 3, 2, 10, 0))  # noqa: DTZ001
    with pytest.raises(ValueError):
        finished_chat(conversation_id="not-a-guid")


# ----- the write (embedded Dataverse) ---------------------------------------------------


class Recorder:
    """WSGI middleware: records each request as "METHOD /path"."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"].removeprefix("/api/data/v9.2/")
        self.requests.append(f"{environ['REQUEST_METHOD']} {path.split('(')[0]}")
        return self.app(environ, start_response)


def _client(app: Any, token: str) -> DataverseClient:
    session = requests.Session()
    session.mount(ORIGIN, WsgiAdapter(app))
    return DataverseClient(f"{ORIGIN}/api/data/v9.2/", StaticTokenProvider(token), session=session)


@pytest.fixture
def recorder(dataverse_app: DataverseApp) -> Recorder:
    return Recorder(dataverse_app)


@pytest.fixture
def admin(dataverse_app: DataverseApp, admin_token: str) -> Iterator[DataverseClient]:
    with _client(dataverse_app, admin_token) as client:
        yield client


@pytest.fixture
def service(
    dataverse_app: DataverseApp, recorder: Recorder, schema: Schema
) -> Iterator[DataverseClient]:
    """The service's client, as a user holding the role the service is given."""
    role = schema.role_named("CRM Chat Administrator")
    assert role is not None
    user_id = add_user(
        dataverse_app.store,
        domain_name="svc@crmchat.local",
        first_name="CRM Chat",
        last_name="Service",
        role_ids=[role.id],
    )
    token = issue_token(dataverse_app.store.signing_secret, user_id=user_id)
    with _client(recorder, token) as client:
        prime_writer(client)
        recorder.requests.clear()
        yield client


def _chats(admin: DataverseClient) -> list[dict[str, Any]]:
    return list(admin.list(tables.CHATS, select=["activityid", "statecode", "statuscode"]))


def test_a_finished_chat_is_one_completed_activity_in_two_requests(
    service: DataverseClient, admin: DataverseClient, recorder: Recorder
) -> None:
    widget_id = admin.create(tables.WIDGETS, {"crmchat_name": "Shop"})
    chat = finished_chat(widget_id=widget_id, owner_user_id=ADMIN_USER_ID)
    write_chat(service, chat)
    assert recorder.requests == ["PATCH crmchat_chats", "PATCH crmchat_chats"]
    row = admin.retrieve(tables.CHATS, activity_of(chat))
    assert (row["statecode"], row["statuscode"]) == (1, 2)
    assert row["_ownerid_value"] == ADMIN_USER_ID  # the accepting agent owns it
    assert row["_crmchat_widgetid_value"] == widget_id
    assert row["subject"] == "Sales, Support"
    assert row["actualstart"] == "2026-03-02T10:01:30Z"
    assert row["actualdurationminutes"] == 5
    assert row["crmchat_rating"] == 5
    assert row["crmchat_transcript"].startswith("[10:02:11] Ann Lee: hello")
    assert json.loads(row["crmchat_visitorinfo"])["fields"]["firstname"] == "Ann"


def test_the_report_figures_reach_dataverse_through_the_service_role(
    service: DataverseClient, admin: DataverseClient
) -> None:
    topic_id = admin.create(tables.TOPICS, {"crmchat_name": "Sales"})
    agent_id = admin.create(tables.AGENTS, {"crmchat_name": "Bob Ray"})
    chat = finished_chat(topic_id=topic_id, agent_id=agent_id)
    write_chat(service, FinishedChat.from_dict(chat.to_dict()))  # via the outbox form
    row = admin.retrieve(tables.CHATS, activity_of(chat))
    assert row["_crmchat_topicid_value"] == topic_id
    assert row["_crmchat_agentid_value"] == agent_id
    assert (row["crmchat_waitseconds"], row["crmchat_durationseconds"]) == (20, 245)
    assert row["crmchat_chatday"] == "2026-03-02"


def test_writing_the_same_chat_again_changes_nothing(
    service: DataverseClient, admin: DataverseClient, recorder: Recorder
) -> None:
    chat = finished_chat()
    write_chat(service, chat)
    recorder.requests.clear()
    write_chat(service, chat)
    # 412 on the create, then one read shows it is closed already.
    assert recorder.requests == ["PATCH crmchat_chats", "GET crmchat_chats"]
    assert [r["activityid"] for r in _chats(admin)] == [activity_of(chat)]


def test_a_write_interrupted_before_the_close_converges(
    service: DataverseClient, admin: DataverseClient, recorder: Recorder
) -> None:
    chat = finished_chat()
    # The first attempt created the activity and the process died before closing it.
    service.create(tables.CHATS, chat_activity_payload(chat), record_id=activity_of(chat))
    assert _chats(admin)[0]["statecode"] == 0
    recorder.requests.clear()
    chat_activity_handler(service, secret=SERVICE_SECRET)(chat.to_dict())
    # The handler learns the service's own user once (WhoAmI) to recognise its records.
    assert recorder.requests == [
        "GET WhoAmI",
        "PATCH crmchat_chats",
        "GET crmchat_chats",
        "PATCH crmchat_chats",
    ]
    chats = _chats(admin)
    assert len(chats) == 1 and (chats[0]["statecode"], chats[0]["statuscode"]) == (1, 2)


def test_a_chat_linked_to_a_contact_as_an_administrator(admin: DataverseClient) -> None:
    contact = create_contact(admin, {"firstname": "Ann", "lastname": "Lee"})
    chat = finished_chat(regarding=contact)
    write_chat(admin, chat)
    row = admin.retrieve(tables.CHATS, activity_of(chat))
    assert row["_regardingobjectid_value"] == contact.id


def test_the_service_links_chats_to_records_it_creates(
    service: DataverseClient, admin: DataverseClient
) -> None:
    fields = {"firstname": "Ann", "lastname": "Lee", "email": "ann@shop.example"}
    contact = create_contact(service, fields)
    records = [
        contact,
        create_lead(service, fields, subject="Sales"),
        create_case(service, contact, title="Shipping", description=""),
    ]
    for record in records:
        chat = finished_chat(regarding=record)
        write_chat(service, chat)
        row = admin.retrieve(tables.CHATS, activity_of(chat))
        assert row["_regardingobjectid_value"] == record.id and row["statecode"] == 1


def test_the_activity_id_cannot_be_known_from_the_conversation_id() -> None:
    chat = finished_chat()
    activity_id = chat_activity_id(chat.conversation_id, SERVICE_SECRET)
    assert activity_id != chat.conversation_id
    assert activity_id == chat_activity_id(chat.conversation_id.upper(), SERVICE_SECRET)
    assert activity_id != chat_activity_id(chat.conversation_id, b"another service")
    assert uuid.UUID(activity_id).version == 4


# A role of another app that lets its holders create activities (as Basic User and
# Salesperson do in a real org).
ACTIVITY_CREATOR = Role(
    id="5d0e7b8a-3c1f-4f5e-9a7b-2c4d6e8f0a1b",
    name="Another app's role",
    privileges={"prvCreateActivity": AccessLevel.BASIC, "prvReadActivity": AccessLevel.BASIC},
    from_solution=False,
)


@pytest.fixture(scope="module")
def schema() -> Schema:
    """The solution's schema plus `ACTIVITY_CREATOR`."""
    base = load_schema()
    return replace(base, roles=(*base.roles, ACTIVITY_CREATOR))


def test_a_record_an_agent_pre_created_is_never_taken_as_the_services(
    service: DataverseClient,
    admin: DataverseClient,
    dataverse_app: DataverseApp,
    schema: Schema,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = finished_chat()
    role = schema.role_named("CRM Chat Agent")
    assert role is not None
    # Our agent role grants no Create on activities, but in a real org an agent's other
    # roles usually do (the Activity privileges are shared by every activity table).
    mallory = add_user(
        dataverse_app.store,
        domain_name="mallory@x.test",
        role_ids=[role.id, ACTIVITY_CREATOR.id],
    )
    forged = finished_chat(conversation_id=chat.conversation_id, rating=5)
    forged_payload = chat_activity_payload(forged) | {
        "subject": "Great service",
        "crmchat_transcript": "[10:00:00] Visitor: you are the best agent",
    }
    token = issue_token(dataverse_app.store.signing_secret, user_id=mallory)
    with _client(dataverse_app, token) as agent:
        # Even knowing the id (it leaked, or the old id scheme), the forgery is not kept.
        agent.create(tables.CHATS, forged_payload, record_id=activity_of(chat))

    with caplog.at_level(logging.WARNING):
        written = write_chat(service, chat)
    assert written != activity_of(chat)
    assert "not the service" in caplog.text
    real = admin.retrieve(tables.CHATS, written)
    assert real["crmchat_transcript"].startswith("[10:02:11] Ann Lee: hello")
    assert (real["statecode"], real["statuscode"]) == (1, 2)
    left = admin.retrieve(tables.CHATS, activity_of(chat))
    assert left["_createdby_value"] == mallory and left["statecode"] == 0  # not closed as ours


# ----- activity parties -------------------------------------------------------------------


def _parties(admin: DataverseClient, activity_id: str) -> list[tuple[int, str, str]]:
    rows = admin.list(
        "activityparties",
        select=["participationtypemask", "_partyid_value"],
        filter=f"_activityid_value eq {activity_id}",
        annotations=True,
    )
    return sorted(
        (
            row["participationtypemask"],
            row["_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
            row["_partyid_value"],
        )
        for row in rows
    )


def test_the_payload_names_the_customer_as_from_and_the_agents_as_to() -> None:
    lead = Regarding(table="lead", id=str(uuid.uuid4()), name="Ann Lee")
    owner, other = str(uuid.uuid4()), str(uuid.uuid4())
    chat = finished_chat(regarding=lead, owner_user_id=owner)
    payload = chat_activity_payload(chat, agent_user_ids=[other, owner])
    assert payload["crmchat_chat_activity_parties"] == [
        {"partyid_lead@odata.bind": f"/leads({lead.id})", "participationtypemask": 1},
        {"partyid_systemuser@odata.bind": f"/systemusers({owner})", "participationtypemask": 2},
        {"partyid_systemuser@odata.bind": f"/systemusers({other})", "participationtypemask": 2},
    ]


def test_a_chat_gets_its_parties_in_the_same_two_requests(
    service: DataverseClient, admin: DataverseClient, recorder: Recorder
) -> None:
    contact = create_contact(admin, {"firstname": "Ann", "lastname": "Lee"})
    case = create_case(admin, contact, title="Shipping", description="")
    # Regarding the case, yet the contact is its customer: From.
    chat = finished_chat(
        regarding=case,
        contact={"id": contact.id, "name": "Ann Lee"},
        owner_user_id=ADMIN_USER_ID,
    )
    prime_writer(service)
    recorder.requests.clear()
    write_chat(service, chat)
    assert recorder.requests == ["PATCH crmchat_chats", "PATCH crmchat_chats"]
    assert _parties(admin, activity_of(chat)) == [
        (1, "contact", contact.id),
        (2, "systemuser", ADMIN_USER_ID),
    ]


def test_the_outbox_handler_makes_every_agent_who_took_part_a_party(
    service: DataverseClient, admin: DataverseClient, dataverse_app: DataverseApp
) -> None:
    other_user = add_user(
        dataverse_app.store, domain_name="bob@crmchat.local", first_name="Bob", last_name="Ray"
    )
    users = {"a-1": other_user}
    chat = finished_chat(owner_user_id=ADMIN_USER_ID)
    chat_activity_handler(service, secret=SERVICE_SECRET, user_of_agent=users.get)(chat.to_dict())
    assert _parties(admin, activity_of(chat)) == sorted(
        [(2, "systemuser", ADMIN_USER_ID), (2, "systemuser", other_user)]
    )


def test_activity_parties_are_written_only_through_their_activity(
    admin: DataverseClient, dataverse_app: DataverseApp, admin_token: str
) -> None:
    session = requests.Session()
    session.mount(ORIGIN, WsgiAdapter(dataverse_app))
    answer = session.post(
        f"{ORIGIN}/api/data/v9.2/activityparties",
        json={"participationtypemask": 1},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert answer.status_code == 405
    assert "error" in answer.json()


# ----- readable visitor and participants ---------------------------------------------------


def test_the_form_gets_the_visitor_and_participants_as_text_not_json() -> None:
    chat = finished_chat(contact={"id": str(uuid.uuid4()), "name": "Ann Lee"})
    payload = chat_activity_payload(chat)
    assert payload["crmchat_participantnames"] == "Ann Lee (visitor)\nBob Ray (agent)"
    assert payload["crmchat_visitordetails"] == (
        "Ann Lee\n"
        "firstname: Ann\n"
        "lastname: Lee\n"
        "email: ann@shop.example\n"
        "Page: https://shop.example/p/1\n"
        "IP address: 203.0.113.9\n"
        "Recognised as: Ann Lee"
    )


def test_readable_columns_drop_control_characters_and_fit_their_column() -> None:
    chat = finished_chat(
        visitor_name="Ann\x1b[31m Lee", visitor_fields={"note": "x" * 10_000}, page=""
    )
    details = chat_activity_payload(chat)["crmchat_visitordetails"]
    assert details.startswith("Ann[31m Lee\nnote: xxx")
    assert utf16_len(details) <= 4000


def test_each_consult_becomes_one_note_on_the_activity_written_before_the_close(
    service: DataverseClient, admin: DataverseClient, recorder: Recorder
) -> None:
    consult = {
        "subject": "Consult (internal): Ann and Bob",
        "transcript": [
            message(40, "agent", "Ann", "Is the Pro plan on offer?"),
            message(50, "agent", "Bob", "Until Friday."),
        ],
    }
    chat = finished_chat(consults=[consult])
    write_chat(service, FinishedChat.from_dict(chat.to_dict()))  # via the outbox form
    # Through the service's role: the activity, its note, then the close.
    assert recorder.requests == ["PATCH crmchat_chats", "PATCH annotations", "PATCH crmchat_chats"]
    notes = list(
        admin.list(
            tables.NOTES,
            select=["subject", "notetext", "_objectid_value"],
            filter=f"_objectid_value eq {activity_of(chat)}",
        )
    )
    assert [n["subject"] for n in notes] == ["Consult (internal): Ann and Bob"]
    assert "Ann: Is the Pro plan on offer?" in notes[0]["notetext"]
    assert "Bob: Until Friday." in notes[0]["notetext"]
    # The activity itself does not carry the consult.
    row = admin.retrieve(tables.CHATS, activity_of(chat))
    assert "Pro plan" not in row["crmchat_transcript"]


def test_a_write_interrupted_after_a_note_writes_no_note_twice(
    service: DataverseClient, admin: DataverseClient
) -> None:
    consult = {"subject": "Consult (internal): Ann and Bob", "transcript": []}
    chat = finished_chat(consults=[consult])
    # The first attempt got as far as the note and died before the close.
    activity_id = activity_of(chat)
    service.create(tables.CHATS, chat_activity_payload(chat), record_id=activity_id)
    write_notes(service, activity_id, chat_notes(chat), secret=SERVICE_SECRET)
    write_chat(service, chat)
    notes = list(admin.list(tables.NOTES, filter=f"_objectid_value eq {activity_id}"))
    assert len(notes) == 1
    assert _chats(admin)[0]["statecode"] == 1


def test_a_chat_marked_important_is_a_high_priority_activity(
    service: DataverseClient, admin: DataverseClient
) -> None:
    marked, plain = finished_chat(important=True), finished_chat()
    write_chat(service, FinishedChat.from_dict(marked.to_dict()))  # via the outbox form
    write_chat(service, plain)
    assert admin.retrieve(tables.CHATS, activity_of(marked))["prioritycode"] == 2
    assert admin.retrieve(tables.CHATS, activity_of(plain))["prioritycode"] == 1


def test_an_agent_reads_the_contacts_earlier_chats_as_the_console_asks(
    service: DataverseClient, admin: DataverseClient, dataverse_app: DataverseApp, schema: Schema
) -> None:
    """The console's "Earlier chats from CRM" query (webresources/console/console.js,
    loadCrmChats), as an agent: the chats the service wrote with the contact (linked, or
    only as the customer party of a chat regarding a case), newest first, paged by start;
    not another contact's, not a chat the agent may not read."""
    role = schema.role_named("CRM Chat Agent")
    assert role is not None
    agent_id = add_user(dataverse_app.store, domain_name="ann@x.test", role_ids=[role.id])
    contact = {"id": admin.create("contacts", {"lastname": "Lee"}), "name": "Ann Lee"}
    someone = {"id": admin.create("contacts", {"lastname": "Someone"}), "name": "Someone"}
    lead = Regarding(table="lead", id=admin.create("leads", {"lastname": "Lee"}), name="Lee")
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def chat(day: int, owner: str, **changes: Any) -> None:
        at = start + timedelta(days=day)
        write_chat(
            service,
            finished_chat(
                started_at=at, ended_at=at + timedelta(minutes=4), owner_user_id=owner, **changes
            ),
        )

    chat(0, agent_id, contact=contact)
    chat(1, agent_id, contact=contact, regarding=lead)  # Ann only as the customer party
    chat(2, agent_id, contact=someone)
    chat(3, ADMIN_USER_ID, contact=contact)  # not the agent's: the role reads its own only
    token = issue_token(dataverse_app.store.signing_secret, user_id=agent_id)
    around = (
        f"(_regardingobjectid_value eq {contact['id']}"
        f" or crmchat_chat_activity_parties/any(p:p/_partyid_value eq {contact['id']}))"
    )
    with _client(dataverse_app, token) as agent:
        first = list(
            agent.list(
                tables.CHATS,
                select=["actualstart", "crmchat_transcript"],
                filter=around,
                orderby="actualstart desc",
                top=1,
            )
        )
        assert [row["actualstart"] for row in first] == ["2026-03-03T10:00:00Z"]
        assert "Ann Lee: hello" in first[0]["crmchat_transcript"]  # readable, not JSON
        rest = list(
            agent.list(
                tables.CHATS,
                select=["actualstart"],
                filter=f"{around} and actualstart lt {first[0]['actualstart']}",
                orderby="actualstart desc",
                top=2,
            )
        )
        assert [row["actualstart"] for row in rest] == ["2026-03-02T10:00:00Z"]
