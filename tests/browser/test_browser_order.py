"""Messages typed as fast as a browser can send them arrive once each and in the order
typed, on both sides, past the service's rate limit; the sender is told it slowed.

The service refuses frames beyond its rate limit. The widget and the console queue what
the person typed and send it one message at a time. The test tightens the limit (5 a
second, bursts of 5) so that it is met for sure even on a busy machine.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.chat.frames import TokenBucket
from connector.services import services_of
from connector.web import sockets

COUNT = 50  # the issue: "50 quick messages do not all arrive"
# Typed in one go: the form is submitted COUNT times in the same task.
TYPE_FAST = """(input, [prefix, count]) => {
  for (let i = 1; i <= count; i++) { input.value = prefix + i; input.form.requestSubmit(); }
}"""


def exactly(text: str) -> re.Pattern[str]:
    """A has_text pattern matching `text` as the whole text, not a part of it."""
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def texts(items: Any) -> list[str]:
    return [text.strip() for text in items.all_inner_texts()]


def test_fast_messages_keep_their_order_on_both_sides(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sockets, "TokenBucket", functools.partial(TokenBucket, rate=5, burst=5))
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Fay")
    visitor.get_by_test_id("crmchat-field-email").fill("fay@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")

    visitor_said = [f"v{i}" for i in range(1, COUNT + 1)]
    visitor.get_by_test_id("crmchat-input").evaluate(TYPE_FAST, ["v", COUNT])
    # The visitor is told their messages are being slowed down...
    expect(visitor.get_by_test_id("crmchat-slowed")).to_be_visible()
    agent_texts = sam.get_by_test_id("messages").get_by_test_id("message-text")
    expect(agent_texts.filter(has_text=exactly(f"v{COUNT}"))).to_have_count(1, timeout=60_000)
    # ...and every message arrives once, in the order typed.
    assert [t for t in texts(agent_texts) if t.startswith("v")] == visitor_said
    expect(visitor.get_by_test_id("crmchat-slowed")).to_be_hidden()

    agent_said = [f"a{i}" for i in range(1, COUNT + 1)]
    sam.locator("#input").evaluate(TYPE_FAST, ["a", COUNT])
    expect(sam.get_by_test_id("slowed")).to_be_visible()
    bubbles = visitor.get_by_test_id("crmchat-messages").get_by_test_id("crmchat-message")
    # The bubble alone: a whole message also holds its time, and has_text ignores the line
    # break, so "a3" sent at "01:22" would read as "a301:22".
    last = bubbles.locator(".bubble").filter(has_text=exactly(f"a{COUNT}"))
    expect(last).to_have_count(1, timeout=60_000)
    seen = texts(bubbles.locator(".bubble"))
    assert [t for t in seen if t.startswith("a")] == agent_said

    # The stored chat (what CRM gets) has them in that order too.
    engine = services_of(service.app).engine
    (conversation_id,) = [c.conversation_id for c in engine.state.unfinished_conversations()]
    stored = [m.text for m in engine.state.messages(conversation_id)]
    assert [t for t in stored if t[0] in "va" and t[1:].isdigit()] == visitor_said + agent_said
