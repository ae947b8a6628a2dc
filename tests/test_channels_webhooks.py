"""The channels' webhooks: Meta's handshake, signatures, the four platforms' payloads,
size limits, redeliveries processed once, refusals logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from chat_fakes import FakeDirectory, FakeOutbox
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app, stop_app
from connector.channels import AttachmentKind, ChannelAccount, EventKind, InboundEvent
from connector.channels.accounts import demo_accounts
from connector.channels.intake import ChannelIntake, RecentEvents
from connector.channels.model import ChannelType
from connector.channels.shared import channels_of
from connector.channels.signatures import sign_meta, sign_viber
from connector.channels.webhooks import VIBER_MAX_BODY_BYTES, webhook_path
from connector.channels.wire import (
    meta_message_body,
    meta_status_body,
    signed_request,
    viber_event_body,
    viber_message_body,
)
from connector.chat.redis_state import RedisLiveState
from connector.redis_server import RedisServer

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {"data_dir": tmp_path, "secret_key": "s" * 40, "demo": False},
        directory=FakeDirectory(),
        outbox=FakeOutbox(),
        start=False,
    )
    # The webhooks alone: fixed accounts, and the events kept instead of handed to the
    # engine (tests/test_channels_bridge.py covers the engine's side).
    channels = channels_of(app)
    channels.accounts = demo_accounts()
    channels.intake.sink = RecentEvents()
    yield app
    stop_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def account(app: Flask, channel: str) -> ChannelAccount:
    found = channels_of(app).accounts.get(f"demo-{channel}")
    assert found is not None
    return found


def received(app: Flask) -> list[InboundEvent]:
    intake = channels_of(app).intake
    intake.drain()
    assert isinstance(intake.sink, RecentEvents)
    return intake.sink.events()


def post(client: FlaskClient, acct: ChannelAccount, body: dict[str, object]) -> object:
    raw, headers = signed_request(acct, body)
    return client.post(webhook_path(acct), data=raw, headers=headers)


# ----- Meta's verification handshake ----------------------------------------------------


def test_meta_handshake_echoes_the_challenge_only_for_the_right_verify_token(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    acct = account(app, "messenger")
    assert acct.verify_token is not None
    token = acct.verify_token.get_secret_value()
    path = webhook_path(acct)
    ok = client.get(
        path,
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": token,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200
    assert ok.get_data(as_text=True) == "1158201444"
    assert ok.mimetype == "text/plain"

    with caplog.at_level(logging.WARNING, logger="connector.channels.webhooks"):
        wrong = client.get(
            path,
            query_string={
                "hub.mode": "subscribe",
                "hub.verify_token": token + "x",
                "hub.challenge": "1158201444",
            },
        )
    assert wrong.status_code == 403
    assert wrong.get_json()["error"]["code"] == "bad_verify_token"
    assert "1158201444" not in wrong.get_data(as_text=True)
    assert any("bad_verify_token" in r.getMessage() for r in caplog.records)

    # A challenge that is not Meta's number is never reflected into the page.
    script = client.get(
        path,
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": token,
            "hub.challenge": "<script>alert(1)</script>",
        },
    )
    assert script.status_code == 400


def test_unknown_account_is_404(client: FlaskClient) -> None:
    answer = client.post(
        "/channels/nobody/webhook", data=b"{}", headers={"X-Hub-Signature-256": "sha256=00"}
    )
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "unknown_account"


# ----- signatures -----------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["messenger", "instagram", "whatsapp", "viber"])
def test_signatures_good_bad_missing_and_replayed(
    app: Flask, client: FlaskClient, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    acct = account(app, channel)
    if acct.channel is ChannelType.VIBER:
        body = viber_message_body(
            person_id="u1==", person_name="Pat", message_token=1, at=AT, text="hello"
        )
    else:
        body = meta_message_body(
            acct, person_id="4455", person_name="Pat", message_id="mid.1", at=AT, text="hello"
        )
    raw, headers = signed_request(acct, body)
    header = next(h for h in headers if h != "Content-Type")

    good = client.post(webhook_path(acct), data=raw, headers=headers)
    assert good.status_code == 200, good.get_json()
    assert good.get_json() == {"accepted": 1, "events": 1}

    replayed = client.post(webhook_path(acct), data=raw, headers=headers)
    assert replayed.status_code == 200  # a 200, or the platform would retry for hours
    assert replayed.get_json() == {"accepted": 0, "events": 1}

    with caplog.at_level(logging.WARNING, logger="connector.channels.webhooks"):
        # The same body, signed with another secret.
        forged = (
            sign_meta("not-the-secret", raw)
            if acct.channel.is_meta
            else sign_viber("not-the-token", raw)
        )
        bad = client.post(webhook_path(acct), data=raw, headers={**headers, header: forged})
        # A signed body with one byte changed (e.g. re-serialised JSON).
        tampered = client.post(
            webhook_path(acct), data=raw.replace(b"hello", b"hellO"), headers=headers
        )
        missing = client.post(
            webhook_path(acct), data=raw, headers={"Content-Type": "application/json"}
        )
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "bad_signature"
    assert tampered.status_code == 401
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "missing_signature"
    refusals = [r.getMessage() for r in caplog.records]
    assert refusals.count("channel webhook refused: bad_signature") == 2
    assert refusals.count("channel webhook refused: missing_signature") == 1

    events = received(app)
    assert [e.text for e in events] == ["hello"]  # once, and nothing from the refused calls


def test_meta_signature_is_over_the_raw_escaped_unicode_bytes(
    app: Flask, client: FlaskClient
) -> None:
    acct = account(app, "messenger")
    body = meta_message_body(
        acct, person_id="4455", person_name="Zoë", message_id="mid.ü", at=AT, text="Grüße 👋"
    )
    raw, headers = signed_request(acct, body)
    assert b"\\u00fc" in raw  # Meta escapes non-ASCII and signs those bytes
    assert client.post(webhook_path(acct), data=raw, headers=headers).status_code == 200
    assert received(app)[0].text == "Grüße 👋"
    # The same JSON as UTF-8 is a different body: its signature would not match.
    utf8 = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert client.post(webhook_path(acct), data=utf8, headers=headers).status_code == 401


def test_bodies_are_size_limited(app: Flask, client: FlaskClient) -> None:
    acct = account(app, "viber")
    body = viber_message_body(
        person_id="u1==",
        person_name="Pat",
        message_token=2,
        at=AT,
        text="x" * (VIBER_MAX_BODY_BYTES + 1),
    )
    raw, headers = signed_request(acct, body)
    answer = client.post(webhook_path(acct), data=raw, headers=headers)
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "body_too_large"
    assert received(app) == []


def test_signed_garbage_is_a_400_not_a_500(app: Flask, client: FlaskClient) -> None:
    acct = account(app, "whatsapp")
    for body in (
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": [{"changes": "nope"}]},
    ):
        raw, headers = signed_request(acct, body)
        answer = client.post(webhook_path(acct), data=raw, headers=headers)
        assert answer.status_code == 400
        assert answer.get_json()["error"]["code"] == "invalid_input"
    assert acct.app_secret is not None
    raw = b"{not json"
    answer = client.post(
        webhook_path(acct),
        data=raw,
        headers={"X-Hub-Signature-256": sign_meta(acct.app_secret.get_secret_value(), raw)},
    )
    assert answer.status_code == 400


# ----- the four platforms' payloads -----------------------------------------------------


def test_messenger_text_image_sticker_delivery_and_read(app: Flask, client: FlaskClient) -> None:
    acct = account(app, "messenger")
    for body in (
        meta_message_body(
            acct, person_id="P1", person_name="", message_id="m_1", at=AT, text="Hi there"
        ),
        meta_message_body(
            acct,
            person_id="P1",
            person_name="",
            message_id="m_2",
            at=AT,
            image_url="https://cdn.example/cat.jpg",
        ),
        meta_message_body(
            acct,
            person_id="P1",
            person_name="",
            message_id="m_3",
            at=AT,
            sticker_id="369239263222822",
        ),
        meta_status_body(acct, person_id="P1", message_id="m_out1", status="delivered", at=AT),
        meta_status_body(acct, person_id="P1", message_id="m_out1", status="read", at=AT),
        # Our own send echoed back: not an inbound message.
        {
            "object": "page",
            "entry": [
                {
                    "id": acct.platform_id,
                    "time": 1,
                    "messaging": [
                        {
                            "sender": {"id": acct.platform_id},
                            "recipient": {"id": "P1"},
                            "timestamp": 1,
                            "message": {"mid": "m_echo", "is_echo": True, "text": "ours"},
                        }
                    ],
                }
            ],
        },
    ):
        assert post(client, acct, body).status_code == 200
    text, image, sticker, delivered, read = received(app)
    assert (text.kind, text.person_id, text.text, text.message_id) == (
        EventKind.MESSAGE,
        "P1",
        "Hi there",
        "m_1",
    )
    assert text.at == AT
    assert image.attachments[0].kind is AttachmentKind.IMAGE
    assert image.attachments[0].url == "https://cdn.example/cat.jpg"
    assert sticker.attachments[0].kind is AttachmentKind.STICKER
    assert sticker.attachments[0].sticker_id == "369239263222822"
    assert (delivered.kind, delivered.message_id) == (EventKind.DELIVERED, "m_out1")
    assert read.kind is EventKind.READ and read.watermark == AT


def test_instagram_message_and_read_by_mid(app: Flask, client: FlaskClient) -> None:
    acct = account(app, "instagram")
    post(
        client,
        acct,
        meta_message_body(
            acct, person_id="IG7", person_name="", message_id="aWdf", at=AT, text="from insta"
        ),
    )
    post(
        client,
        acct,
        meta_status_body(acct, person_id="IG7", message_id="aWdout", status="read", at=AT),
    )
    message, read = received(app)
    assert message.channel is ChannelType.INSTAGRAM and message.text == "from insta"
    assert (read.kind, read.message_id) == (EventKind.READ, "aWdout")


def test_whatsapp_text_document_statuses_and_names(app: Flask, client: FlaskClient) -> None:
    acct = account(app, "whatsapp")
    post(
        client,
        acct,
        meta_message_body(
            acct,
            person_id="16315551181",
            person_name="Kerry",
            message_id="wamid.A",
            at=AT,
            text="Hello",
        ),
    )
    document = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550100",
                                "phone_number_id": acct.platform_id,
                            },
                            "contacts": [{"profile": {"name": "Kerry"}, "wa_id": "16315551181"}],
                            "messages": [
                                {
                                    "from": "16315551181",
                                    "id": "wamid.B",
                                    "timestamp": "1764581400",
                                    "type": "document",
                                    "document": {
                                        "id": "2153",
                                        "filename": "invoice.pdf",
                                        "mime_type": "application/pdf",
                                        "caption": "my invoice",
                                    },
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    post(client, acct, document)
    post(
        client,
        acct,
        meta_status_body(
            acct, person_id="16315551181", message_id="wamid.OUT", status="delivered", at=AT
        ),
    )
    post(
        client,
        acct,
        meta_status_body(
            acct,
            person_id="16315551181",
            message_id="wamid.OUT",
            status="failed",
            at=AT,
            error=(131047, "Re-engagement message"),
        ),
    )
    # Another number of the same business: not this account's.
    other = meta_message_body(
        acct, person_id="1", person_name="", message_id="wamid.C", at=AT, text="elsewhere"
    )
    other["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"  # type: ignore[index]
    post(client, acct, other)
    text, doc, delivered, failed = received(app)
    assert (text.person_id, text.person_name, text.text) == ("16315551181", "Kerry", "Hello")
    assert doc.text == "my invoice"
    assert doc.attachments[0].kind is AttachmentKind.FILE
    assert (doc.attachments[0].media_id, doc.attachments[0].name) == ("2153", "invoice.pdf")
    assert delivered.kind is EventKind.DELIVERED
    assert failed.kind is EventKind.FAILED and failed.error == "131047: Re-engagement message"


def test_viber_callbacks(app: Flask, client: FlaskClient) -> None:
    acct = account(app, "viber")
    for body in (
        viber_event_body("webhook", person_id="", person_name="", message_token=1, at=AT),
        viber_event_body(
            "conversation_started", person_id="V1==", person_name="Vera", message_token=2, at=AT
        ),
        viber_event_body(
            "subscribed", person_id="V1==", person_name="Vera", message_token=3, at=AT
        ),
        viber_message_body(
            person_id="V1==", person_name="Vera", message_token=4, at=AT, text="privet"
        ),
        viber_message_body(
            person_id="V1==",
            person_name="Vera",
            message_token=5,
            at=AT,
            image_url="https://cdn.example/p.jpg",
        ),
        viber_message_body(
            person_id="V1==", person_name="Vera", message_token=6, at=AT, sticker_id="46105"
        ),
        viber_event_body("delivered", person_id="V1==", person_name="", message_token=90, at=AT),
        viber_event_body("seen", person_id="V1==", person_name="", message_token=90, at=AT),
        viber_event_body("unsubscribed", person_id="V1==", person_name="", message_token=7, at=AT),
    ):
        answer = post(client, acct, body)
        assert answer.status_code == 200  # type: ignore[attr-defined]
    kinds = [(e.kind, e.message_id) for e in received(app)]
    assert kinds == [
        (EventKind.CONVERSATION_STARTED, "2"),
        (EventKind.SUBSCRIBED, "3"),
        (EventKind.MESSAGE, "4"),
        (EventKind.MESSAGE, "5"),
        (EventKind.MESSAGE, "6"),
        (EventKind.DELIVERED, "90"),
        (EventKind.READ, "90"),
        (EventKind.UNSUBSCRIBED, "7"),
    ]
    events = received(app)
    assert events[0].person_name == "Vera"
    assert events[2].text == "privet"
    assert events[3].attachments[0].kind is AttachmentKind.IMAGE
    assert events[4].attachments[0].sticker_id == "46105"


def test_the_endpoint_queues_and_the_worker_hands_over(app: Flask, client: FlaskClient) -> None:
    intake = channels_of(app).intake
    sink = intake.sink
    assert isinstance(sink, RecentEvents)
    acct = account(app, "messenger")
    post(
        client,
        acct,
        meta_message_body(
            acct, person_id="P9", person_name="", message_id="m_9", at=AT, text="queued"
        ),
    )
    assert sink.events() == []  # answered before the work was done
    intake.start()
    try:
        assert [e.text for e in sink.wait_for(1)] == ["queued"]
    finally:
        intake.stop()


def test_while_the_shared_redelivery_memory_is_away_the_platform_is_told_to_retry(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """With several processes the memory is in Redis: unreachable, the webhook answers 503
    (the platform retries) rather than take an event another process may take too."""
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        state = RedisLiveState(redis.Redis.from_url(server.url, decode_responses=True))
        channels_of(app).intake = ChannelIntake(RecentEvents(), claims=state)
        acct = account(app, "messenger")
        body = meta_message_body(
            acct, person_id="p1", person_name="Pat", message_id="m.1", at=AT, text="Hi"
        )
        server.stop()
        answer = post(client, acct, body)
        assert answer.status_code == 503 and answer.json["error"]["code"] == "busy"
        server.start()
        answers = [post(client, acct, body), post(client, acct, body)]
        assert [a.json["accepted"] for a in answers] == [1, 0]
    finally:
        server.stop()
