"""Files in a chat and consults, in the engine without sockets (World from
test_chat_engine): the service's own checks, who may read a file, what reaches whom, and
what the finished chat's outbox item carries for the activity's notes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from chat_fakes import ANN, BOB
from test_chat_engine import World

from connector.chat.actions import agents, attachments, consults
from connector.chat.actions.attachments import FileIn
from connector.chat.errors import ChatInvalid, ChatNotFound
from connector.crm.attachments import AttachmentRefused, check_file, check_types
from connector.crm.chat_activity import FinishedChat, chat_notes


@pytest.fixture
def world(tmp_path: Path) -> World:
    # No rating asked: an ended chat goes to the outbox at once.
    return World(tmp_path, rating=False)


def file(name: str, data: bytes, declared: str = "", client_id: str = "f1") -> FileIn:
    return FileIn(name=name, declared_type=declared, data=data, client_id=client_id)


def check(name: str, declared: str, data: bytes) -> tuple[str, str]:
    return check_file(name, declared, data, enabled=True, max_kb=1, types=("png", "txt"))


@pytest.mark.parametrize(
    ("name", "declared", "data", "why"),
    [
        ("big.txt", "text/plain", b"x" * 1025, "larger than 1 KB"),
        ("tool.exe", "application/octet-stream", b"x", "Programs and scripts"),
        ("photo.png", "application/x-msdownload", b"x", "Programs and scripts"),
        ("photo.png", "image/png", b"MZ\x90\x00", "Programs and scripts"),
        ("run.txt", "text/plain", b"#!/bin/sh\nrm -rf /", "Programs and scripts"),
        ("page.png", "text/html", b"<p>", "Programs and scripts"),
        ("sheet.pdf", "application/pdf", b"%PDF", "Only these files"),
        ("noextension", "text/plain", b"x", "needs a name with an extension"),
        ("empty.txt", "text/plain", b"", "empty"),
    ],
)
def test_the_service_refuses_what_the_rules_do_not_take(
    name: str, declared: str, data: bytes, why: str
) -> None:
    with pytest.raises(AttachmentRefused, match=why):
        check(name, declared, data)


def test_a_taken_file_keeps_a_clean_name_and_the_type_its_extension_gives() -> None:
    name, content_type = check('C:\\fakepath\\re"ceipt.PNG', "image/png", b"\x89PNG")
    assert (name, content_type) == ("receipt.PNG", "image/png")


def test_an_admin_cannot_allow_a_blocked_or_unknown_type() -> None:
    assert check_types(("PNG", ".txt", "png")) == ("png", "txt")
    for bad in ("exe", "svg", "js", "weird"):
        with pytest.raises(ValueError):
            check_types((bad,))


def test_a_file_reaches_both_sides_only_the_chats_people_read_it_and_it_goes_to_crm(
    world: World,
) -> None:
    ann, ann_in = world.agent(ANN)
    world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)

    sent = attachments.do_visitor_file(
        world.engine, conversation_id=conversation_id, file=file("a.txt", b"hello")
    )
    attachment = sent["attachment"]
    assert attachment["name"] == "a.txt" and attachment["size"] == 5
    for inbox in (ann_in, v_in):
        frame = inbox.last("message.created")
        assert frame["attachment"] == attachment and frame["text"] == "a.txt"
    # A resent upload (same client_id) is the same message, not a second file.
    again = attachments.do_visitor_file(
        world.engine, conversation_id=conversation_id, file=file("a.txt", b"hello")
    )
    assert again == sent
    assert (
        attachments.access_agent_file(
            world.engine,
            agent_id=ANN,
            conversation_id=conversation_id,
            attachment_id=attachment["id"],
        ).data
        == b"hello"
    )
    with pytest.raises(ChatNotFound):  # Bob is not in the chat
        attachments.access_agent_file(
            world.engine,
            agent_id=BOB,
            conversation_id=conversation_id,
            attachment_id=attachment["id"],
        )
    with pytest.raises(ChatInvalid, match="Programs and scripts"):
        attachments.do_agent_file(
            world.engine,
            agent_id=ANN,
            conversation_id=conversation_id,
            file=file("x.txt", b"MZ", client_id="f2"),
        )

    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id)
    _, payload = world.outbox.items[conversation_id]
    chat = FinishedChat.from_dict(payload)
    notes = chat_notes(chat)
    assert [n["filename"] for n in notes] == ["a.txt"]
    assert base64.b64decode(notes[0]["documentbody"]) == b"hello"


def test_a_consult_never_reaches_the_visitor_and_ends_with_the_chat(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    with pytest.raises(ChatNotFound):  # only an agent in the chat may ask about it
        consults.do_consult_start(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    consults.do_consult_start(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    consult = bob_in.last("chat.accepted")["chat"]
    assert consult["consult_of"]["conversation_id"] == conversation_id
    consult_id = consult["conversation_id"]
    agents.do_agent_send(
        world.engine, bob, conversation_id=consult_id, client_id="c1", text="secret tip"
    )
    assert ann_in.last("message.created")["text"] == "secret tip"
    assert "secret tip" not in str(v_in.frames)
    # Asking Bob again opens the same consult.
    consults.do_consult_start(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    assert ann_in.last("chat.accepted")["chat"]["conversation_id"] == consult_id

    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id)
    assert bob_in.last("chat.ended")["conversation_id"] == consult_id
    _, payload = world.outbox.items[conversation_id]
    assert "secret tip" not in str(payload["transcript"])
    assert "Bob" in payload["consults"][0]["subject"]
    assert "secret tip" in chat_notes(FinishedChat.from_dict(payload))[0]["notetext"]
