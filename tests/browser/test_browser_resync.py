"""A `resync` frame (sent to every socket of a process after its event bus lost Redis and
resubscribed, connector/chat/bus.py) makes the widget and the console catch up with what
they missed: messages stored while their events went nowhere appear on both sides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_issue13 import accepted_chat

from connector.chat import events
from connector.chat.actions.conversations import append_message
from connector.chat.model import SenderKind
from connector.services import services_of


def test_the_widget_and_the_console_catch_up_after_a_resync_frame(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = accepted_chat(service, new_page, sam)
    transcript = visitor.get_by_test_id("crmchat-messages")

    # Stored, but their events never reached a socket: what a bus that lost Redis misses.
    engine = services_of(service.app).engine
    with engine.changing():
        (conversation,) = [c for c in engine.conversations.values() if c.is_open]
        for kind, name, text in (
            (SenderKind.AGENT, "Sam", "Missed by the visitor"),
            (SenderKind.VISITOR, "Gus", "Missed by the agent"),
        ):
            append_message(
                engine, conversation, kind=kind, sender_id=name, sender_name=name, text=text
            )
    agent_messages = sam.get_by_test_id("messages")
    visitor.wait_for_timeout(500)
    expect(transcript).not_to_contain_text("Missed by the visitor")
    expect(agent_messages).not_to_contain_text("Missed by the agent")

    engine.hub.publish_to_all(events.event(events.RESYNC))
    engine.hub.flush()
    expect(transcript).to_contain_text("Missed by the visitor", timeout=15_000)
    expect(agent_messages).to_contain_text("Missed by the agent", timeout=15_000)
    # Each once: the catch-up is from the last seq each side had.
    expect(transcript.get_by_text("Missed by the visitor")).to_have_count(1)
    expect(agent_messages.get_by_text("Missed by the agent")).to_have_count(1)
