"""A channel person's name is their profile's, on the chat and on the contact an agent
creates from it: Messenger's and Instagram's User Profile APIs (their webhooks carry no
name), WhatsApp's `contacts[].profile.name` (and its number), Viber's `sender.name`;
never the "Visitor" a nameless web chat gets."""

from __future__ import annotations

import time

import pytest
import requests
from channel_service import Running, running

from connector.channels.model import ChannelAccount, ChannelType
from connector.channels.shared import channels_of
from connector.chat.actions import agents
from connector.chat.hub import Subscriber
from connector.chat.sessions import AgentSession
from connector.crm.handshake import SignedInUser
from connector.demo import SAM_AGENT_ID, SAM_USER_ID, admin_client
from connector.services import services_of
from connector.web.auth import issue_service_token

__all__ = ["running"]  # the fixture, from channel_service

PERSON = {
    ChannelType.MESSENGER: "psid-5150",
    ChannelType.INSTAGRAM: "igsid-5150",
    ChannelType.WHATSAPP: "4670005150",
    ChannelType.VIBER: "vb-5150",
}


def _account(running: Running, channel: ChannelType) -> ChannelAccount:
    (account,) = [a for a in channels_of(running.app).accounts.all() if a.channel is channel]
    return account


@pytest.mark.parametrize("channel", list(ChannelType))
def test_the_contact_created_from_a_channel_chat_has_the_persons_profile_name(
    running: Running, channel: ChannelType
) -> None:
    account = _account(running, channel)
    person = PERSON[channel]
    sent = requests.post(
        running.url + "/simulator/api/person-message",
        json={
            "account": account.key,
            "person_id": person,
            "person_name": "Nora Quinn Baker",
            "text": "hello",
        },
        timeout=10,
    )
    assert sent.json()["webhook_status"] == 200
    engine = services_of(running.app).engine
    deadline = time.monotonic() + 10
    while not (chats := [c for c in engine.conversations.values() if c.channel]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (chat,) = chats
    assert chat.visitor_name == "Nora Quinn Baker"
    session = AgentSession(Subscriber(lambda text: None), SAM_AGENT_ID)
    agents.do_agent_connect(engine, session)
    agents.do_agent_accept(engine, session, conversation_id=chat.conversation_id)
    with running.app.app_context():
        user = SignedInUser(SAM_USER_ID, "Sam", "sam@crmchat.local", frozenset({"CRM Chat Agent"}))
        token = issue_service_token(user)
    created = requests.post(
        f"{running.url}/api/agent/chats/{chat.conversation_id}/crm",
        json={"kind": "contact"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert created.status_code == 200, created.text
    contact_id = created.json()["regarding"]["id"]
    row = admin_client(services_of(running.app).standin).retrieve(
        "contacts", contact_id, select=["firstname", "lastname", "fullname", "telephone1"]
    )
    assert (row["firstname"], row["lastname"]) == ("Nora Quinn", "Baker")
    # WhatsApp's id is the person's number (country code and digits).
    assert row["telephone1"] == ("+4670005150" if channel is ChannelType.WHATSAPP else None)


def test_without_profile_access_the_chat_opens_with_the_channels_name(running: Running) -> None:
    """Meta refusing the profile read (here: a person the platform does not know) leaves
    the chat as it was: it opens, named after the channel."""
    messenger = _account(running, ChannelType.MESSENGER)
    meta = channels_of(running.app).clients.meta
    assert meta.person_name(messenger, "psid-nobody") is None
    stranger = messenger.model_copy(update={"access_token": None})
    assert meta.person_name(stranger, "psid-nobody") is None
