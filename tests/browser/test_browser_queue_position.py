"""Issue 12: the visitor's place in the queue (`chat.queued`, docs/protocol.md), live.

Everything is the real service: one agent, two visitors. The second visitor's page is
written as for Dynamics 365 Omnichannel (fixtures/omnichannel/thread.html, only its script
tag swapped): it shows the text of the system messages tagged `queueposition`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.test_browser_issue4 import set_design
from tests.browser.test_browser_omnichannel_pages import fill_prechat, site  # noqa: F401

# The test's own log (the pages keep theirs in window.lcwLog).
LOG_EVENTS = """window.__lcw = [];
["lcw:startChat", "lcw:chatQueued", "lcw:onMessageReceived"].forEach(function (name) {
  window.addEventListener(name, function (e) {
    window.__lcw.push({ name: name, detail: e.detail });
  });
});"""
GERMAN = {
    "queue": "Sie sind Nummer {position} in der Warteschlange.",
    "queueWait": "Sie sind Nummer {position} in der Warteschlange, etwa {minutes} Min.",
}


@pytest.fixture
def visitor_in(browser: Any) -> Iterator[Callable[[str], Any]]:
    """`visitor_in(locale)`: a new person whose browser speaks `locale`."""
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


def logged(page: Any, name: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in page.evaluate("window.__lcw") if e["name"] == name]


def conversation_id(page: Any) -> str:
    page.wait_for_function("window.__lcw.some(e => e.name === 'lcw:startChat')")
    return str(logged(page, "lcw:startChat")[0]["conversation_id"])


def queue_lines(page: Any) -> list[dict[str, Any]]:
    """The system messages tagged queueposition the page was given."""
    received = logged(page, "lcw:onMessageReceived")
    return [m for m in received if "queueposition" in m["channelData"]["tags"]]


def availability(page: Any) -> dict[str, Any]:
    answer: dict[str, Any] = page.evaluate(
        "Microsoft.Omnichannel.LiveChatWidget.SDK.getAgentAvailability()"
    )
    return answer


def test_the_queue_line_follows_the_place_and_goes_when_accepted_or_ended(
    service: Any,
    site: str,  # noqa: F811
    visitor_in: Callable[[str], Any],
    agent_console: Callable[..., Any],
) -> None:
    set_design(service, SALES_WIDGET_ID, translations={"de": GERMAN})
    sam = agent_console("Sam Sales")

    ann = visitor_in("en-US")
    ann.goto(f"{service.url}/demo/")
    ann.get_by_test_id("crmchat-launcher").click()
    fill_prechat(ann, "Ann", "First", "ann@example.com")
    ann_queue = ann.get_by_test_id("crmchat-queue")
    # The demo's topic has handling times already, so the line has an estimate.
    expect(ann_queue).to_have_text(re.compile(r"^You are number 1 in the queue, about \d+ min\.$"))
    expect(ann_queue).to_have_attribute("role", "status")  # announced by screen readers
    ann_chat = conversation_id(ann)

    # The second visitor, on an Omnichannel page, in German: number 2.
    bea = visitor_in("de-DE")
    bea.goto(f"{site}/thread.html")
    bea.get_by_test_id("crmchat-launcher").click()
    fill_prechat(bea, "Bea", "Second", "bea@example.com")
    bea_queue = bea.get_by_test_id("crmchat-queue")
    second = re.compile(r"^Sie sind Nummer 2 in der Warteschlange, etwa (\d+) Min\.$")
    expect(bea_queue).to_have_text(second)
    # The page's own listener keyed on the queueposition tag shows the same line.
    expect(bea.locator("#queue")).to_have_text(second)
    minutes = int(second.fullmatch(bea_queue.inner_text()).group(1))  # type: ignore[union-attr]
    tagged = queue_lines(bea)
    assert tagged[0]["messageType"] == "system"
    assert tagged[0]["channelData"]["tags"] == ["system", "queueposition", "averagewaittime"]
    assert tagged[0]["content"] == bea_queue.inner_text() and tagged[0]["timestamp"]
    # getAgentAvailability answers Omnichannel's fields: the place, the wait in minutes.
    assert availability(bea)["positionInQueue"] == 2
    assert availability(bea)["averageWaitTime"] == minutes

    # Sam takes Ann's chat: her line goes, Bea moves up; no second lcw:chatQueued.
    sam.locator(f'[data-testid="incoming-chat"][data-conversation-id="{ann_chat}"]').get_by_test_id(
        "accept-button"
    ).click()
    expect(ann.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")
    expect(ann_queue).to_be_hidden()
    assert availability(ann)["positionInQueue"] is None
    first = re.compile(r"^Sie sind Nummer 1 in der Warteschlange, etwa \d+ Min\.$")
    expect(bea_queue).to_have_text(first)
    expect(bea.locator("#queue")).to_have_text(first)
    assert availability(bea)["positionInQueue"] == 1
    # lcw:chatQueued: once per queueing, not again for each new place.
    assert len(logged(bea, "lcw:chatQueued")) == 1
    assert len(logged(ann, "lcw:chatQueued")) == 1
    assert len(queue_lines(bea)) >= 2

    # A reload keeps the line, and a second tab of the site shows it too.
    bea.reload()
    expect(bea_queue).to_have_text(first)
    other_tab = bea.context.new_page()
    other_tab.goto(f"{site}/thread.html")
    other_tab.get_by_test_id("crmchat-launcher").click()
    expect(other_tab.get_by_test_id("crmchat-queue")).to_have_text(first)
    other_tab.close()

    # Bea ending her waiting chat removes it.
    bea.get_by_test_id("crmchat-end-chat").click()
    bea.get_by_test_id("crmchat-confirm-yes").click()
    expect(bea.get_by_test_id("crmchat-end")).to_be_visible()
    expect(bea_queue).to_be_hidden()
    assert availability(bea)["positionInQueue"] is None
