"""Issue 12: the visitor's place in the queue (`chat.queued`, docs/protocol.md), live.

The routing engineer's server side of `chat.queued` is not on main yet, so the frame is
faked at the socket: the page's real socket to the real service goes through Playwright's
WebSocket route, which forwards everything both ways and lets the test add the service's
`chat.queued` frames, exactly as docs/protocol.md shapes them. Everything else (the chat,
the agent accepting) is the real service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.test_browser_issue4 import set_design

LOG_EVENTS = """window.lcwLog = [];
["lcw:chatQueued", "lcw:onMessageReceived"].forEach(function (name) {
  window.addEventListener(name, function (e) {
    window.lcwLog.push({ name: name, detail: e.detail });
  });
});"""


class Socket:
    """The page's visitor socket, forwarded to the service; `queued()` adds a frame."""

    def __init__(self, page: Any) -> None:
        self.routes: list[Any] = []
        page.route_web_socket(re.compile(r"/ws/visitor"), self._route)

    def _route(self, ws: Any) -> None:
        ws.connect_to_server()  # forwards both ways
        self.routes.append(ws)

    def queued(self, conversation_id: str, position: int, wait_secs: int | None) -> None:
        frame = {
            "type": "chat.queued",
            "conversation_id": conversation_id,
            "position": position,
            "estimated_wait_secs": wait_secs,
        }
        self.routes[-1].send(json.dumps(frame))


@pytest.fixture
def visitor_in(browser: Any) -> Iterator[Callable[[str], Any]]:
    contexts: list[Any] = []

    def open_page(locale: str) -> Any:
        context = browser.new_context(locale=locale)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.add_init_script(LOG_EVENTS)
        return page

    yield open_page
    for context in contexts:
        context.close()


def start_waiting_chat(service: Any, visitor: Any, socket: Socket) -> str:
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Quinn")
    visitor.get_by_test_id("crmchat-field-email").fill("quinn@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    visitor.wait_for_function("window.lcwLog.some(e => e.name === 'lcw:chatQueued')")
    assert socket.routes
    return str(visitor.evaluate("window.lcwLog[0].detail.conversation_id"))


def availability(visitor: Any) -> dict[str, Any]:
    answer: dict[str, Any] = visitor.evaluate(
        "Microsoft.Omnichannel.LiveChatWidget.SDK.getAgentAvailability()"
    )
    return answer


def test_the_visitor_sees_their_place_in_the_queue_change_until_an_agent_accepts(
    service: Any, visitor_in: Callable[[str], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = visitor_in("en-US")
    socket = Socket(visitor)
    cid = start_waiting_chat(service, visitor, socket)
    queue = visitor.get_by_test_id("crmchat-queue")
    expect(queue).to_be_hidden()  # nothing said about a queue yet

    socket.queued(cid, 2, 150)
    expect(queue).to_have_text("You are number 2 in the queue, about 3 minutes.")
    expect(queue).to_have_attribute("role", "status")  # announced by screen readers
    assert availability(visitor)["positionInQueue"] == 2
    assert availability(visitor)["averageWaitTime"] == 3  # minutes, as Omnichannel's
    queued = [
        e["detail"] for e in visitor.evaluate("window.lcwLog") if e["name"] == "lcw:chatQueued"
    ]
    assert queued[-1]["positionInQueue"] == 2 and queued[-1]["conversation_id"] == cid
    tagged = [
        e["detail"]
        for e in visitor.evaluate("window.lcwLog")
        if "queueposition" in e["detail"].get("channelData", {}).get("tags", [])
    ]
    assert [(t["messageType"], t["content"]) for t in tagged] == [
        ("system", "You are number 2 in the queue, about 3 minutes.")
    ]

    # The place moves up; the wait is not known.
    socket.queued(cid, 1, None)
    expect(queue).to_have_text("You are number 1 in the queue.")
    assert availability(visitor)["averageWaitTime"] is None
    # A frame for another chat, or out of shape, changes nothing.
    socket.queued("00000000-0000-0000-0000-000000000000", 7, 60)
    socket.queued(cid, 0, 60)
    visitor.wait_for_timeout(300)
    expect(queue).to_have_text("You are number 1 in the queue.")

    # A reload keeps it; an agent accepting ends the queue.
    visitor.reload()
    expect(queue).to_have_text("You are number 1 in the queue.")
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")
    expect(queue).to_be_hidden()
    assert availability(visitor)["positionInQueue"] is None


def test_the_queue_line_is_translated(
    service: Any, visitor_in: Callable[[str], Any], agent_console: Callable[..., Any]
) -> None:
    german = {
        "queueWait": "Sie sind Nummer {position} in der Warteschlange, etwa {wait}.",
        "minute": "1 Minute",
        "minutes": "{n} Minuten",
    }
    set_design(service, SALES_WIDGET_ID, translations={"de": german})
    agent_console("Sam Sales")
    visitor = visitor_in("de-DE")
    socket = Socket(visitor)
    cid = start_waiting_chat(service, visitor, socket)
    queue = visitor.get_by_test_id("crmchat-queue")
    socket.queued(cid, 3, 40)
    expect(queue).to_have_text("Sie sind Nummer 3 in der Warteschlange, etwa 1 Minute.")
    socket.queued(cid, 2, 600)
    expect(queue).to_have_text("Sie sind Nummer 2 in der Warteschlange, etwa 10 Minuten.")
