"""An agent's file to a channel person: uploaded in the console as for a web chat, sent
through each platform's send API by a signed link to it (Messenger/Instagram
`attachment`, WhatsApp `image`/`document`, Viber `picture`/`file`), fetched and shown by
the simulator. Files the platform does not take are refused before they are stored; what
the platform refuses anyway comes back with its real error."""

from __future__ import annotations

import time
from typing import Any
from unittest.mock import patch

import pytest
import requests
from channel_service import Running, running
from flask import Flask
from itsdangerous import TimestampSigner

from connector.channels import simulator
from connector.channels.errors import InvalidRequest
from connector.channels.files import FileLinks, OutboundFile
from connector.channels.model import ChannelAccount, ChannelType
from connector.channels.shared import channels_of
from connector.chat.actions import agents
from connector.chat.actions.conversations import chat_of
from connector.chat.hub import Subscriber
from connector.chat.sessions import AgentSession
from connector.crm.handshake import SignedInUser
from connector.demo import SAM_AGENT_ID, SAM_USER_ID
from connector.services import services_of
from connector.web.auth import issue_service_token

__all__ = ["running"]  # the fixture, from channel_service

WAIT_SECS = 15.0


def _account(app: Flask, channel: ChannelType) -> ChannelAccount:
    (account,) = [a for a in channels_of(app).accounts.all() if a.channel is channel]
    return account


def _sam(app: Flask) -> dict[str, str]:
    with app.app_context():
        user = SignedInUser(SAM_USER_ID, "Sam", "sam@crmchat.local", frozenset({"CRM Chat Agent"}))
        return {"Authorization": f"Bearer {issue_service_token(user)}"}


def _accepted_chat(running: Running, account: ChannelAccount, person: str) -> str:
    """The person writes on the simulator; Sam accepts the chat it opens."""
    sent = requests.post(
        running.url + "/simulator/api/person-message",
        json={"account": account.key, "person_id": person, "person_name": "Pat", "text": "hi"},
        timeout=10,
    )
    assert sent.json()["webhook_status"] == 200
    engine = services_of(running.app).engine
    deadline = time.monotonic() + WAIT_SECS
    mine = f"channel:{account.key}:{person}"
    while not (chats := [c for c in engine.conversations.values() if c.visitor_id == mine]):
        assert time.monotonic() < deadline, "the person's message never opened a chat"
        time.sleep(0.05)
    session = AgentSession(Subscriber(lambda text: None), SAM_AGENT_ID)
    agents.do_agent_connect(engine, session)
    agents.do_agent_accept(engine, session, conversation_id=chats[0].conversation_id)
    return chats[0].conversation_id


def _upload(running: Running, chat_id: str, name: str, data: bytes) -> requests.Response:
    return requests.post(
        f"{running.url}/api/agent/chats/{chat_id}/files",
        headers=_sam(running.app),
        data={"client_id": f"up-{name.replace('.', '-')}"},
        files={"file": (name, data)},
        timeout=10,
    )


def _business_lines(running: Running, account: ChannelAccount, person: str, count: int) -> Any:
    deadline = time.monotonic() + WAIT_SECS
    while True:
        answer = requests.get(
            running.url + "/simulator/api/conversation",
            params={"account": account.key, "person": person},
            timeout=10,
        )
        lines = [x for x in answer.json()["lines"] if x["sender"] == "business"]
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"the platform got {lines!r}"
        time.sleep(0.1)


# How each platform names a picture and a document in its send API.
KINDS = {
    ChannelType.MESSENGER: ("image", "file"),
    ChannelType.INSTAGRAM: ("image", "file"),
    ChannelType.WHATSAPP: ("image", "document"),
    ChannelType.VIBER: ("picture", "file"),
}


@pytest.mark.parametrize("channel", list(ChannelType))
def test_a_picture_and_a_document_reach_the_person(running: Running, channel: ChannelType) -> None:
    account = _account(running.app, channel)
    person = "4670011"
    chat_id = _accepted_chat(running, account, person)
    assert _upload(running, chat_id, "photo.png", simulator.SAMPLE_PNG).status_code == 200
    assert _upload(running, chat_id, "invoice.pdf", simulator.SAMPLE_PDF).status_code == 200

    # The send pool may hand two files typed quickly to the platform in either order.
    lines = {line["text"]: line for line in _business_lines(running, account, person, 2)}
    image_kind, file_kind = KINDS[channel]
    assert sorted(lines) == sorted([f"[{image_kind}] photo.png", f"[{file_kind}] invoice.pdf"])
    picture = lines[f"[{image_kind}] photo.png"]
    document = lines[f"[{file_kind}] invoice.pdf"]
    assert picture["status"] == document["status"] == "sent"
    # What the platform fetched is the file the agent sent, from the signed link.
    assert requests.get(picture["media_url"], timeout=10).content == simulator.SAMPLE_PNG
    assert requests.get(document["media_url"], timeout=10).content == simulator.SAMPLE_PDF
    assert "/channels/files/" in picture["media_url"]
    # The console shows the platform took them (the receipts of any agent message).
    engine = services_of(running.app).engine
    deadline = time.monotonic() + WAIT_SECS
    while True:
        chat = engine.conversations[chat_id]
        receipts = (chat.channel or {}).get("receipts") or {}
        files = [m.seq for m in engine.state.messages(chat_id) if m.attachment]
        if all(receipts.get(str(seq)) in ("sent", "delivered", "read") for seq in files):
            break
        assert time.monotonic() < deadline, f"no receipts for {files}: {receipts}"
        time.sleep(0.1)


def test_files_a_platform_does_not_take_are_refused_before_they_are_stored(
    running: Running,
) -> None:
    whatsapp = _account(running.app, ChannelType.WHATSAPP)
    chat_id = _accepted_chat(running, whatsapp, "4670012")
    # WhatsApp takes no GIF as an image and no zip as a document.
    for name in ("cat.gif", "logs.zip"):
        refused = _upload(running, chat_id, name, b"GIF89a" if name.endswith("gif") else b"PK")
        assert refused.status_code == 400
        assert refused.json()["error"]["message"].startswith("Only these files can be sent: ")
    engine = services_of(running.app).engine
    assert not [m for m in engine.state.messages(chat_id) if m.attachment]
    # The console offers the platform's own list.
    with engine.reading():
        limits = chat_of(engine, engine.conversations[chat_id])["attachments"]
    assert limits == {
        "enabled": True,
        "max_kb": 5120,
        "types": ["jpg", "jpeg", "png", "pdf", "txt", "docx", "xlsx", "pptx"],
    }


def test_what_the_platform_refuses_comes_back_with_its_error(running: Running) -> None:
    """The service never sends these (its rules match the platforms'); the simulator's
    refusals are the platforms' own bodies, read by the send clients."""
    channels = channels_of(running.app)
    clients = channels.clients
    media = running.url + "/simulator/media/"
    pdf_as_picture = OutboundFile("picture", media + "sample.pdf", "sample.pdf", 400)
    gone = OutboundFile("file", media + "gone.pdf", "gone.pdf", 400)
    messenger = _account(running.app, ChannelType.MESSENGER)
    _accepted_chat(running, messenger, "psid-13")
    with pytest.raises(InvalidRequest) as refused:
        clients.meta.send_file(messenger, "psid-13", pdf_as_picture)
    assert (refused.value.code, refused.value.message) == (
        "100/2018047",
        "(#100) Upload attachment failure.",
    )
    with pytest.raises(InvalidRequest) as refused:
        clients.meta.send_file(messenger, "psid-13", gone)
    assert refused.value.code == "100/2018008"

    # WhatsApp takes the call and reports the media it could not use as a failed status
    # (131053 Media upload error), as it does for the closed window.
    whatsapp = _account(running.app, ChannelType.WHATSAPP)
    _accepted_chat(running, whatsapp, "4670013")
    assert clients.meta.send_file(whatsapp, "4670013", pdf_as_picture).message_id
    (line,) = _business_lines(running, whatsapp, "4670013", 1)
    assert line["status"] == "failed (131053)" and line["media_url"] is None

    viber = _account(running.app, ChannelType.VIBER)
    requests.post(
        running.url + "/simulator/api/person-message",
        json={"account": viber.key, "person_id": "vb-13", "text": "hi"},
        timeout=10,
    )
    with pytest.raises(InvalidRequest) as refused:
        clients.viber.send_file(viber, "vb-13", pdf_as_picture)
    assert refused.value.code == "3" and "badData" in refused.value.message
    program = OutboundFile("file", media + "sample.pdf", "setup.exe", 400)
    with pytest.raises(InvalidRequest):
        clients.viber.send_file(viber, "vb-13", program)


def test_the_file_link_is_the_only_credential_and_it_expires(running: Running) -> None:
    channels = channels_of(running.app)
    messenger = _account(running.app, ChannelType.MESSENGER)
    chat_id = _accepted_chat(running, messenger, "psid-14")
    assert _upload(running, chat_id, "photo.png", simulator.SAMPLE_PNG).status_code == 200
    (line,) = _business_lines(running, messenger, "psid-14", 1)
    link = line["media_url"]
    fetched = requests.get(link, timeout=10)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/png"
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"
    token = link.split("/channels/files/")[1].split("/")[0]
    # A forged token, or one signed with another secret, names nothing.
    other = FileLinks(b"another secret", running.url).link(chat_id, "x", "photo.png")
    for bad in (link.replace(token, token[:-2] + "xx"), other):
        assert requests.get(bad, timeout=10).status_code == 404
    assert channels.bridge.file_links.read(token)[0] == chat_id
    # A link signed an hour ago no longer works.
    attachment_id = channels.bridge.file_links.read(token)[1]
    an_hour_ago = int(time.time()) - 3601
    with patch.object(TimestampSigner, "get_timestamp", lambda self: an_hour_ago):
        old = channels.bridge.file_links.link(chat_id, attachment_id, "photo.png")
    assert requests.get(old, timeout=10).status_code == 404
