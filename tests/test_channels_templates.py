"""WhatsApp templates: synced from the WhatsApp Business Management API (the simulator,
on a port of its own, answers as Meta does) into crmchat_whatsapptemplate, offered to
the agent, and sent as a template message outside the 24-hour window, where free text
is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from connector.app import create_app, stop_app
from connector.channels import simulator
from connector.channels.model import ChannelAccount, ChannelType, EventKind, InboundEvent
from connector.channels.replies import ChannelClients
from connector.channels.shared import channels_of
from connector.channels.templates import TEMPLATES_SET
from connector.chat.actions import agents
from connector.chat.actions.channels import ChatOutsideWindow
from connector.chat.hub import Subscriber
from connector.chat.sessions import AgentSession
from connector.crm.handshake import SignedInUser
from connector.dataverse_local import ADMIN_USER_ID
from connector.demo import SAM_AGENT_ID, SAM_USER_ID, admin_client
from connector.services import services_of
from connector.web import errors
from connector.web.auth import issue_service_token


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    channels = channels_of(app)
    # The platform on a port of its own, knowing the accounts as the service does.
    platform = Flask("platform")
    errors.init_app(platform)
    simulator.init_app(platform, service_url="http://127.0.0.1:9", accounts=channels.accounts)
    server = make_server("127.0.0.1", 0, platform, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    clients = ChannelClients.for_urls(
        meta_graph_url=url + simulator.GRAPH_PATH, viber_api_url=url + simulator.VIBER_PATH
    )
    channels.clients = clients
    channels.bridge.clients = clients
    app.config["platform_url"] = url
    yield app
    server.shutdown()
    stop_app(app)


def _bearer(app: Flask, user_id: str, roles: set[str]) -> dict[str, str]:
    with app.app_context():
        user = SignedInUser(user_id, "Someone", "someone@crmchat.local", frozenset(roles))
        return {"Authorization": f"Bearer {issue_service_token(user)}"}


def _whatsapp(app: Flask) -> ChannelAccount:
    (account,) = [a for a in channels_of(app).accounts.all() if a.channel is ChannelType.WHATSAPP]
    return account


def _received(app: Flask, account: ChannelAccount, person: str) -> list[str]:
    answer = requests.get(
        app.config["platform_url"] + "/simulator/api/conversation",
        params={"account": account.key, "person": person},
        timeout=10,
    )
    return [line["text"] for line in answer.json()["lines"] if line["sender"] == "business"]


def _wait_received(app: Flask, account: ChannelAccount, person: str) -> list[str]:
    deadline = time.monotonic() + 10
    while not (got := _received(app, account, person)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def test_templates_sync_from_meta_and_only_approved_body_only_ones_are_offered(
    app: Flask,
) -> None:
    account = _whatsapp(app)
    admin = _bearer(app, ADMIN_USER_ID, {"System Administrator"})
    client = app.test_client()
    path = f"/api/admin/channels/{account.key}/templates/sync"
    first = client.post(path, headers=admin)
    assert first.status_code == 200, first.text
    assert first.get_json() == {"ok": True, "synced": 5, "removed": 0}
    again = client.post(path, headers=admin)
    assert again.get_json() == {"ok": True, "synced": 5, "removed": 0}
    rows = admin_client(services_of(app).standin).list(TEMPLATES_SET)
    assert sorted((r["crmchat_name"], r["crmchat_status"]) for r in rows) == [
        ("delivery_slot", "APPROVED"),
        ("follow_up", "APPROVED"),
        ("order_update", "APPROVED"),
        ("receipt_photo", "APPROVED"),
        ("spring_sale", "PENDING"),
    ]
    # Only administrators sync, and only a WhatsApp account has templates.
    sam = _bearer(app, SAM_USER_ID, {"CRM Chat Agent"})
    assert client.post(path, headers=sam).status_code == 403
    (messenger,) = [
        a for a in channels_of(app).accounts.all() if a.channel is ChannelType.MESSENGER
    ]
    other = client.post(f"/api/admin/channels/{messenger.key}/templates/sync", headers=admin)
    assert other.status_code == 400


def _chat_25_hours_on(app: Flask, account: ChannelAccount, person: str) -> tuple[str, Any]:
    engine = services_of(app).engine
    event = InboundEvent(
        channel=account.channel,
        account_key=account.key,
        kind=EventKind.MESSAGE,
        person_id=person,
        person_name="Pat",
        message_id="wamid.IN-old",
        text="Where is my order?",
        at=datetime.now(UTC) - timedelta(hours=25),
    )
    channels_of(app).bridge.do_channel_event(account, event)
    (chat,) = [c for c in engine.conversations.values() if c.channel and c.is_open]
    session = AgentSession(Subscriber(lambda text: None), SAM_AGENT_ID)
    agents.do_agent_connect(engine, session)
    agents.do_agent_accept(engine, session, conversation_id=chat.conversation_id)
    return chat.conversation_id, session


def test_outside_the_window_free_text_is_refused_and_a_template_goes_out_once(
    app: Flask,
) -> None:
    account = _whatsapp(app)
    engine = services_of(app).engine
    client = app.test_client()
    admin = _bearer(app, ADMIN_USER_ID, {"System Administrator"})
    assert client.post(f"/api/admin/channels/{account.key}/templates/sync", headers=admin).json
    conversation_id, session = _chat_25_hours_on(app, account, "46700004242")

    with pytest.raises(ChatOutsideWindow, match="send a template"):
        agents.do_agent_send(
            engine, session, conversation_id=conversation_id, client_id="a1", text="Hi!"
        )

    sam = _bearer(app, SAM_USER_ID, {"CRM Chat Agent"})
    base = f"/api/agent/chats/{conversation_id}"
    offered = client.get(f"{base}/templates", headers=sam)
    assert offered.status_code == 200, offered.text
    choices = {t["name"]: t for t in offered.get_json()["templates"]}
    # A pending one is not offered.
    assert sorted(choices) == ["delivery_slot", "follow_up", "order_update", "receipt_photo"]
    order = choices["order_update"]
    assert order["parameters"] == ["1", "2"] and order["footer"] == "Contoso"
    assert choices["follow_up"]["parameters"] == ["first_name"]

    wrong = client.post(
        f"{base}/template",
        json={"template_id": order["id"], "parameters": ["Pat"], "client_id": "t1"},
        headers=sam,
    )
    assert wrong.status_code == 400 and wrong.get_json()["error"]["code"] == "invalid_input"
    unknown = client.post(
        f"{base}/template",
        json={
            "template_id": "00000000-0000-0000-0000-000000000000",
            "parameters": [],
            "client_id": "t1",
        },
        headers=sam,
    )
    assert unknown.status_code == 404
    assert _received(app, account, "46700004242") == []

    sent = client.post(
        f"{base}/template",
        json={"template_id": order["id"], "parameters": ["Pat", "1042"], "client_id": "t1"},
        headers=sam,
    )
    assert sent.status_code == 200, sent.text
    text = "[Template order_update] Hi Pat, your order 1042 has shipped."
    assert sent.get_json() == {"sent": True, "text": text}
    assert _wait_received(app, account, "46700004242") == [
        "[template order_update (en_US)] Pat | 1042"
    ]
    # The agent's double click (the same client id) sends nothing more.
    again = client.post(
        f"{base}/template",
        json={"template_id": order["id"], "parameters": ["Pat", "1042"], "client_id": "t1"},
        headers=sam,
    )
    assert again.get_json()["sent"] is False
    # A named template sends its parameter by name.
    named = client.post(
        f"{base}/template",
        json={"template_id": choices["follow_up"]["id"], "parameters": ["Pat"], "client_id": "t2"},
        headers=sam,
    )
    assert named.status_code == 200, named.text
    deadline = time.monotonic() + 10
    while len(_received(app, account, "46700004242")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # room for a second send, were there one
    assert _received(app, account, "46700004242") == [
        "[template order_update (en_US)] Pat | 1042",
        "[template follow_up (en_US)] Pat",
    ]
    texts = [m.text for m in engine.state.messages(conversation_id)]
    assert texts.count(text) == 1
    receipts = engine.conversations[conversation_id].channel["receipts"]  # type: ignore[index]
    assert set(receipts.values()) == {"sent"}  # the platform took both


def test_header_and_button_parameters_are_asked_for_and_sent_in_metas_shape(
    app: Flask,
) -> None:
    account = _whatsapp(app)
    client = app.test_client()
    admin = _bearer(app, ADMIN_USER_ID, {"System Administrator"})
    assert client.post(f"/api/admin/channels/{account.key}/templates/sync", headers=admin).json
    conversation_id, _ = _chat_25_hours_on(app, account, "46700004343")
    sam = _bearer(app, SAM_USER_ID, {"CRM Chat Agent"})
    base = f"/api/agent/chats/{conversation_id}"
    choices = {t["name"]: t for t in client.get(f"{base}/templates", headers=sam).json["templates"]}
    slot, photo = choices["delivery_slot"], choices["receipt_photo"]
    # The fields in the send's order: the header's variable, the body's, the URL button's.
    assert slot["fields"] == [
        {"slot": "header", "name": "1", "kind": "text"},
        {"slot": "body", "name": "1", "kind": "text"},
        {"slot": "button", "name": "1", "kind": "text", "index": 0},
    ]
    assert photo["fields"] == [{"slot": "header", "name": "image", "kind": "image"}]

    # A media header needs an https link (WhatsApp fetches it).
    for link in ("http://contoso.example/r.png", "javascript:alert(1)"):
        refused = client.post(
            f"{base}/template",
            json={"template_id": photo["id"], "parameters": [link], "client_id": "p0"},
            headers=sam,
        )
        assert refused.status_code == 400
        assert refused.json["error"]["message"] == "The image of the header needs an https link."

    sent = client.post(
        f"{base}/template",
        json={
            "template_id": slot["id"],
            "parameters": ["Pat", "Friday", "1042"],
            "client_id": "s1",
        },
        headers=sam,
    )
    assert sent.status_code == 200, sent.text
    assert (
        sent.json["text"] == "[Template delivery_slot] Your parcel arrives on Friday. (Pat, 1042)"
    )
    picture = client.post(
        f"{base}/template",
        json={
            "template_id": photo["id"],
            "parameters": ["https://contoso.example/receipt-1042.png"],
            "client_id": "p1",
        },
        headers=sam,
    )
    assert picture.status_code == 200, picture.text
    deadline = time.monotonic() + 10
    while len(_received(app, account, "46700004343")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The simulator took both (it refuses a wrong count per component, 132000, and a media
    # header without its link, 132012): the values as Meta received them.
    assert sorted(_received(app, account, "46700004343")) == [
        "[template delivery_slot (en_US)] Pat | Friday | 1042",
        "[template receipt_photo (en_US)] image:https://contoso.example/receipt-1042.png",
    ]


def test_the_template_payload_puts_each_parameter_in_its_component() -> None:
    from connector.channels.model import WhatsAppTemplate

    template = WhatsAppTemplate(
        name="delivery_slot",
        language="en_US",
        parameters=("Friday",),
        header_format="TEXT",
        header_parameters=("Pat",),
        button_parameters=((0, "1042"),),
    )
    assert template.to_payload()["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "Pat"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Friday"}]},
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": "1042"}],
        },
    ]
    photo = WhatsAppTemplate(
        name="receipt_photo",
        language="en_US",
        header_format="IMAGE",
        header_parameters=("https://contoso.example/r.png",),
    )
    assert photo.to_payload()["components"] == [
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://contoso.example/r.png"}}],
        }
    ]


def test_templates_are_synced_periodically_by_one_process(app: Flask) -> None:
    from connector.channels.templates import TemplateSync

    channels = channels_of(app)
    live = services_of(app).live.state
    rows = admin_client(services_of(app).standin)
    assert list(rows.list(TEMPLATES_SET)) == []
    now = [1_000_000.0]
    # Two processes on the same live state (Redis, or here its SQLite twin).
    first, second = (
        TemplateSync(
            services_of(app).dataverse,
            channels.clients.meta,
            channels.accounts,
            claims=live,
            interval_secs=3600,
            clock=lambda: now[0],
        )
        for _ in range(2)
    )
    account = _whatsapp(app)
    assert first.run_once() == {account.key: {"synced": 5, "removed": 0}}
    assert second.run_once() == {}  # this period's sync was the other process's
    assert len(list(rows.list(TEMPLATES_SET))) == 5
    now[0] += 3600  # the next period: whoever comes first syncs again
    assert second.run_once() == {account.key: {"synced": 5, "removed": 0}}
    assert first.run_once() == {}
    # Meta refusing (a revoked token) is logged and tried next period, never raised.
    revoked = account.model_copy(update={"access_token": None})
    broken = TemplateSync(
        services_of(app).dataverse,
        channels.clients.meta,
        _Only(revoked),  # type: ignore[arg-type]
        claims=live,
        interval_secs=3600,
        clock=lambda: now[0] + 7200,
    )
    assert broken.run_once() == {}
    assert len(list(rows.list(TEMPLATES_SET))) == 5


class _Only:
    def __init__(self, account: ChannelAccount) -> None:
        self.account = account

    def all(self) -> list[ChannelAccount]:
        return [self.account]
