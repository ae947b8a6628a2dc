"""A person's pictures, documents and stickers on a channel become files of the chat, as a
web chat's uploads are: the agent reads them through the chat's file API, and the chat
activity gets one note per file with the bytes on it. Each platform's documented shape
goes through the running service and the simulator (WhatsApp's media id fetched from the
Graph media node, the others' URLs); what is not kept stays a line with the reason."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from channel_service import Running, running
from flask import Flask

from connector.channels import simulator
from connector.channels.media import inbound_files
from connector.channels.model import (
    Attachment,
    AttachmentKind,
    ChannelAccount,
    ChannelType,
    EventKind,
    InboundEvent,
)
from connector.channels.shared import channels_of
from connector.chat.actions.finishing import end_chat
from connector.chat.model import Conversation
from connector.demo import admin_client
from connector.services import services_of

__all__ = ["running"]  # the fixture, from channel_service


WAIT_SECS = 15.0


def _account(app: Flask, channel: ChannelType) -> ChannelAccount:
    (account,) = [a for a in channels_of(app).accounts.all() if a.channel is channel]
    return account


def _person_sends(running: Running, account: ChannelAccount, **what: str) -> None:
    answer = requests.post(
        running.url + "/simulator/api/person-message",
        json={"account": account.key, "person_id": "4670009", "person_name": "Pat", **what},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["webhook_status"] == 200


def _chat_with(app: Flask, count: int) -> Conversation:
    """The one channel chat, once it holds `count` messages from the person."""
    engine = services_of(app).engine
    deadline = time.monotonic() + WAIT_SECS
    while True:
        with engine.lock:
            chats = [c for c in engine.conversations.values() if c.channel]
        if chats and len(engine.state.messages(chats[0].conversation_id)) >= count:
            return chats[0]
        assert time.monotonic() < deadline, "the person's messages never reached the chat: " + repr(
            [m.text for c in chats for m in engine.state.messages(c.conversation_id)]
        )
        time.sleep(0.1)


SAMPLE = {
    "png": (simulator.SAMPLE_PNG, "image/png"),
    "pdf": (simulator.SAMPLE_PDF, "application/pdf"),
    "webp": (simulator.SAMPLE_WEBP, "image/webp"),
}
# The files' names: Meta's and Viber's URLs end in the file's name, WhatsApp and Viber
# name a document; a WhatsApp picture or sticker (a media id) is named by its kind.
# Messenger and Instagram send a sticker's picture URL, WhatsApp a media id of a WebP;
# Viber names a sticker by id only (no file).
NAMES = {
    ChannelType.MESSENGER: ["sample.png", "sample.pdf", "sticker.webp"],
    ChannelType.INSTAGRAM: ["sample.png", "sample.pdf", "sticker.webp"],
    ChannelType.WHATSAPP: ["image-1.png", simulator.SAMPLE_FILE_NAME, "sticker-1.webp"],
    ChannelType.VIBER: ["sample.png", simulator.SAMPLE_FILE_NAME],
}


@pytest.mark.parametrize("channel", list(ChannelType))
def test_pictures_documents_and_stickers_become_files_and_notes(
    running: Running, channel: ChannelType
) -> None:
    app = running.app
    account = _account(app, channel)
    media = running.url + "/simulator/media/"
    _person_sends(running, account, image_url=media + "sample.png")
    _person_sends(running, account, file_url=media + "sample.pdf", text="my receipt")
    _person_sends(running, account, sticker_id="369239263222822")
    expected_names = NAMES[channel]
    # The picture, the caption and its document, the sticker (or its line on Viber).
    # Viber's file message has no text (its callback: media, size, file_name).
    chat = _chat_with(app, 3 if channel is ChannelType.VIBER else 4)
    engine = services_of(app).engine
    messages = engine.state.messages(chat.conversation_id)
    files = [m.attachment for m in messages if m.attachment]
    names = [f["name"] for f in files]
    assert names == expected_names
    # The caption stays the person's text, before its file; a Viber sticker is a line.
    texts = [m.text for m in messages if not m.attachment]
    if channel is ChannelType.VIBER:
        assert texts == ["[sticker] 369239263222822"]
    else:
        assert texts == ["my receipt"]
    for item in files:
        assert item is not None
        data = engine.state.attachment_data(chat.conversation_id, item["id"])
        expected, content_type = SAMPLE[item["name"].rsplit(".", 1)[1]]
        assert data == expected and item["type"] == content_type and item["size"] == len(data)

    with engine.changing():
        end_chat(engine, chat, by="agent", name="Sam")
    notes = _notes(app)
    by_name = {n["filename"]: n for n in notes}
    assert sorted(by_name) == sorted(names)
    for name, note in by_name.items():
        assert base64.b64decode(note["documentbody"]) == SAMPLE[name.rsplit(".", 1)[1]][0]
        assert note["mimetype"] == SAMPLE[name.rsplit(".", 1)[1]][1]


def _notes(app: Flask) -> list[dict[str, Any]]:
    client = admin_client(services_of(app).standin)
    deadline = time.monotonic() + WAIT_SECS
    while True:
        chats = list(client.list("crmchat_chats", select=["activityid", "statecode"]))
        if chats and chats[0]["statecode"] == 1:
            return list(
                client.list(
                    "annotations",
                    select=["filename", "mimetype", "documentbody"],
                    filter=f"_objectid_value eq {chats[0]['activityid']}",
                )
            )
        assert time.monotonic() < deadline, "the chat activity was never written and closed"
        time.sleep(0.2)


def test_what_is_not_kept_stays_a_line_that_says_why(running: Running) -> None:
    app = running.app
    messenger = _account(app, ChannelType.MESSENGER)
    meta = channels_of(app).clients.meta
    base = running.url
    event = InboundEvent(
        channel=messenger.channel,
        account_key=messenger.key,
        kind=EventKind.MESSAGE,
        person_id="psid-1",
        message_id="m_1",
        attachments=(
            # Somewhere inside the network over plain http: never fetched.
            Attachment(kind=AttachmentKind.IMAGE, url="http://10.0.0.5/admin.png"),
            # Gone from the platform's CDN.
            Attachment(kind=AttachmentKind.FILE, url=base + "/simulator/media/nothing.exe"),
            Attachment(kind=AttachmentKind.LOCATION, url="https://maps.example/?q=1,2"),
            Attachment(kind=AttachmentKind.IMAGE, url=base + "/simulator/media/sample.png"),
        ),
        at=datetime.now(UTC),
    )
    files, refused = inbound_files(meta, messenger, event)
    assert [(f.index, f.name) for f in files] == [(3, "sample.png")]
    assert refused[0] == "Only https media addresses are fetched."
    assert refused[1] == "The media answered 404."
    assert 2 not in refused  # a location is not a file: a line, nothing to say

    channels_of(app).bridge.do_channel_event(messenger, event)
    chat = _chat_with(app, 2)
    messages = services_of(app).engine.state.messages(chat.conversation_id)
    assert messages[0].text.splitlines() == [
        "[image] http://10.0.0.5/admin.png (not kept: Only https media addresses are fetched.)",
        f"[file] {base}/simulator/media/nothing.exe (not kept: The media answered 404.)",
        "[location] https://maps.example/?q=1,2",
    ]
    assert messages[1].attachment is not None and messages[1].attachment["name"] == "sample.png"
    # Redelivered by the platform (past the intake's memory): stored once.
    channels_of(app).bridge.do_channel_event(messenger, event)
    assert len(services_of(app).engine.state.messages(chat.conversation_id)) == 2
