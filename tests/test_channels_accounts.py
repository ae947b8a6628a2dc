"""Channel accounts come from Dataverse (crmchat_channelaccount), secrets included, and
a channel message becomes a chat in the engine: offered by the account's topic, stored
once however often the platform redelivers it, and refused replies never sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from connector.app import create_app, stop_app
from connector.channels.accounts import DataverseAccounts
from connector.channels.model import ChannelType, EventKind, InboundEvent
from connector.channels.shared import channels_of
from connector.channels.webhooks import webhook_path
from connector.channels.wire import meta_message_body, signed_request, viber_event_body
from connector.chat.actions.channels import ChatOutsideWindow, check_channel_reply
from connector.crm.handshake import SignedInUser
from connector.dataverse_local import ADMIN_USER_ID
from connector.demo import (
    DEMO_CHANNEL_ACCOUNTS,
    DEMO_VIBER_WELCOME,
    SALES_TOPIC_ID,
    SAM_USER_ID,
    VIBER_CHANNEL_TYPE,
    admin_client,
)
from connector.services import services_of
from connector.web.auth import issue_service_token


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    yield app
    stop_app(app)


def test_the_demo_accounts_are_read_from_dataverse_with_their_secrets(app: Flask) -> None:
    accounts = channels_of(app).accounts
    found = sorted(accounts.all(), key=lambda a: a.key)
    assert [a.key for a in found] == [row[0] for row in DEMO_CHANNEL_ACCOUNTS]
    assert [a.channel for a in found] == list(ChannelType)
    assert {a.topic_id for a in found} == {SALES_TOPIC_ID}
    messenger, viber = found[0], found[3]
    # Secured columns, read by the service's application user (CRM Chat Secrets).
    assert messenger.app_secret is not None and len(messenger.app_secret.get_secret_value()) > 20
    assert viber.auth_token is not None and viber.app_secret is None
    assert accounts.get(messenger.key.upper()) == messenger


def test_an_admin_turning_an_account_off_takes_its_webhook_away(app: Flask) -> None:
    key = DEMO_CHANNEL_ACCOUNTS[0][0]
    admin = admin_client(services_of(app).standin)
    accounts = DataverseAccounts(services_of(app).dataverse, refresh_secs=0)
    assert accounts.get(key) is not None
    admin.update("crmchat_channelaccounts", key, {"crmchat_enabled": False})
    gone = accounts.get(key)
    assert gone is not None and gone.enabled is False
    channels_of(app).accounts = accounts
    body = meta_message_body(
        gone, person_id="P1", person_name="", message_id="m1", at=datetime.now(UTC), text="hi"
    )
    raw, headers = signed_request(gone, body)
    answer = app.test_client().post(webhook_path(gone), data=raw, headers=headers)
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "unknown_account"


def test_a_made_up_key_does_not_read_dataverse_on_every_call(app: Flask) -> None:
    reads = []
    real = services_of(app).dataverse

    class Counting:
        def list(self, *args: object, **kwargs: object) -> object:
            reads.append(1)
            return real.list(*args, **kwargs)

    accounts = DataverseAccounts(Counting())
    for _ in range(20):
        assert accounts.get("00000000-0000-0000-0000-000000000000") is None
    assert len(reads) == 1


def _event(key: str, message_id: str, at: datetime, text: str = "hello") -> InboundEvent:
    return InboundEvent(
        channel=ChannelType.MESSENGER,
        account_key=key,
        kind=EventKind.MESSAGE,
        person_id="P7",
        message_id=message_id,
        text=text,
        at=at,
    )


def test_a_channel_message_opens_one_chat_and_a_redelivery_is_stored_once(app: Flask) -> None:
    channels = channels_of(app)
    engine = services_of(app).engine
    (account,) = [a for a in channels.accounts.all() if a.channel is ChannelType.MESSENGER]
    now = datetime.now(UTC)
    channels.bridge.do_channel_event(account, _event(account.key, "m_1", now))
    channels.bridge.do_channel_event(account, _event(account.key, "m_1", now))  # again
    channels.bridge.do_channel_event(account, _event(account.key, "m_2", now, "still there?"))
    (chat,) = [c for c in engine.conversations.values() if c.channel]
    assert chat.topic_id == SALES_TOPIC_ID
    assert chat.channel is not None and chat.channel["person"] == "P7"
    texts = [m.text for m in engine.state.messages(chat.conversation_id)]
    assert texts == ["hello", "still there?"]

    # 25 hours later a free-form Messenger reply needs the human-agent tag: allowed for an
    # agent; after 7 days nothing is.
    check_channel_reply(engine, chat)
    chat.last_visitor_message_at = now - timedelta(days=8)
    with pytest.raises(ChatOutsideWindow):
        check_channel_reply(engine, chat)


def test_the_setup_api_is_for_administrators_and_tests_the_connection(app: Flask) -> None:
    client = app.test_client()
    signer = services_of(app).tokens

    def bearer(user_id: str, roles: frozenset[str]) -> dict[str, str]:
        user = SignedInUser(user_id, "Someone", "someone@crmchat.local", roles)
        return {"Authorization": f"Bearer {issue_service_token(user, signer=signer)}"}

    # Roles are Dataverse's (re-checked), not the token's: Sam is an agent.
    agent = bearer(SAM_USER_ID, frozenset({"CRM Chat Agent"}))
    assert client.get("/api/admin/channels", headers=agent).status_code == 403
    admin = bearer(ADMIN_USER_ID, frozenset({"System Administrator"}))
    listed = client.get("/api/admin/channels", headers=admin).get_json()["accounts"]
    assert {a["channel"] for a in listed} == {c.value for c in ChannelType}
    assert all(a["webhook_url"].endswith(f"/channels/{a['id']}/webhook") for a in listed)
    assert not any("token" in key or "secret" in key for a in listed for key in a)

    unknown = client.post("/api/admin/channels/nope/test", headers=admin)
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "unknown_account"


def test_viber_answers_conversation_started_with_the_accounts_welcome_message(
    app: Flask,
) -> None:
    """The welcome is the callback's answer in send_message's shape (no receiver); an
    admin who empties the column turns it off, and other callbacks never carry it."""
    key = next(row[0] for row in DEMO_CHANNEL_ACCOUNTS if row[1] == VIBER_CHANNEL_TYPE)
    accounts = DataverseAccounts(services_of(app).dataverse, refresh_secs=0)
    channels_of(app).accounts = accounts
    viber = accounts.get(key)
    assert viber is not None and viber.channel is ChannelType.VIBER
    client = app.test_client()

    def callback(event: str, token: int) -> dict[str, object]:
        account = accounts.get(key)
        assert account is not None
        body = viber_event_body(
            event, person_id="V7==", person_name="Vera", message_token=token, at=datetime.now(UTC)
        )
        raw, headers = signed_request(account, body)
        answer = client.post(webhook_path(account), data=raw, headers=headers)
        assert answer.status_code == 200
        found: dict[str, object] = answer.get_json()
        return found

    assert callback("conversation_started", 11) == {
        "sender": {"name": viber.platform_id},
        "type": "text",
        "text": DEMO_VIBER_WELCOME,
    }
    assert callback("subscribed", 12) == {"accepted": 1, "events": 1}
    admin = admin_client(services_of(app).standin)
    admin.update("crmchat_channelaccounts", key, {"crmchat_welcomemessage": None})
    assert callback("conversation_started", 13) == {"accepted": 1, "events": 1}
