"""Issue 12 in a real browser: the widget on customers' sites (allowed domains, rate limits).

A customer's site is another origin than the service: a small server of its own serves a
page with the one script tag a site pastes (webresources/widget/README.md), so the browser
sends that site's Origin to the service. The same page at `localhost` and at `127.0.0.1`
are two sites.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID, SUPPORT_WIDGET_ID
from tests.browser.test_browser_designer import _open_designer
from tests.site_server import serve

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A shop</title></head>
<body><h1>A shop</h1>
<script src="{service}/widget/loader.js" data-widget-id="{widget}" async></script>
</body></html>"""


# Opens each socket, says hello for `widget`, and collects what the service answers until
# it closes the socket.
BYPASS_SCRIPT = """async ({urls, widget}) => {
  const answers = [];
  for (const url of urls) {
    answers.push(await new Promise(resolve => {
      const ws = new WebSocket(url);
      const frames = [];
      ws.onopen = () => ws.send(JSON.stringify(
        {type: "hello", widget_id: widget, visitor_id: "visitor-elsewhere-1"}));
      ws.onmessage = e => frames.push(JSON.parse(e.data));
      ws.onclose = e => resolve({frames, code: e.code});
      setTimeout(() => resolve({frames, code: null}), 10000);
    }));
  }
  return answers;
}"""


@dataclass(frozen=True)
class Site:
    port: int  # the same page at http://localhost:<port>/ and http://127.0.0.1:<port>/

    def open(self, page: Any, host: str) -> None:
        """Open the site's page as `http://<host>:<port>/`, hearing its lcw:error events."""
        page.add_init_script(
            "window.__lcwErrors = [];"
            "addEventListener('lcw:error', e => window.__lcwErrors.push(e.detail.errorCode));"
        )
        page.goto(f"http://{host}:{self.port}/")


@pytest.fixture
def site(service: Any) -> Iterator[Site]:
    """A customer's site: a real server of its own (a page the browser fetched from a
    loopback address may call the loopback service; a made-up public one may not)."""
    body = HOST_PAGE.format(service=service.url, widget=SALES_WIDGET_ID).encode()
    with serve(lambda path: (200, body)) as port:
        yield Site(port)


def test_the_widget_works_on_its_allowed_sites_and_nowhere_else(
    service: Any,
    site: Site,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    domains = designer.get_by_label("Allowed domains, one a line (empty: any site)")
    domains.fill("https://localhost/")  # a host name, not an address
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Not saved")
    domains.fill("localhost\n*.example.com\n")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    sam = agent_console("Sam Sales")

    elsewhere = new_page()
    site.open(elsewhere, "127.0.0.1")
    # The service refused the other site: no widget, and the page's script hears why.
    elsewhere.wait_for_function("() => window.__lcwErrors.length > 0")
    expect(elsewhere.get_by_test_id("crmchat-root")).not_to_be_attached()

    shop = new_page()
    site.open(shop, "localhost")
    shop.get_by_test_id("crmchat-launcher").click()
    shop.get_by_test_id("crmchat-field-firstname").fill("Ivy")
    shop.get_by_test_id("crmchat-field-email").fill("ivy@example.com")
    shop.get_by_test_id("crmchat-start").click()
    # The socket from the allowed site is accepted: the chat reaches Sam.
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(shop.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")
    assert elsewhere.evaluate("() => window.__lcwErrors") == [7]

    # A script of the other site that leaves the widget out of the socket's URL, or names
    # an open widget there, is refused at its hello: the list is not bypassed.
    base = re.sub(r"^http", "ws", service.url) + "/ws/visitor"
    answers = elsewhere.evaluate(
        BYPASS_SCRIPT,
        {"urls": [base, f"{base}?widget={SUPPORT_WIDGET_ID}"], "widget": SALES_WIDGET_ID},
    )
    for answer in answers:
        assert answer["frames"][0]["code"] == "origin_not_allowed", answer
        assert answer["code"] is not None  # and the service closed the socket
        assert "hello.ok" not in [frame["type"] for frame in answer["frames"]]


@pytest.fixture
def tight_service(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """The service with a config limit of 2 a minute per address."""
    monkeypatch.setenv("CRMCHAT_CONFIG_LIMIT_PER_ADDRESS", "2/minute")
    return request.getfixturevalue("service")


def test_page_views_past_the_rate_limit_get_no_widget(
    tight_service: Any, site: Site, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    agent_console("Sam Sales")
    # Two people behind one address (each browser asks once, then keeps the answer 30 s).
    for _ in range(2):
        visitor = new_page()
        site.open(visitor, "localhost")
        expect(visitor.get_by_test_id("crmchat-launcher")).to_be_visible()
    third = new_page()
    with third.expect_response(lambda r: "/config" in r.url) as answer:
        site.open(third, "localhost")
    assert answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) >= 1
    third.wait_for_function("() => window.__lcwErrors.length > 0")
    expect(third.get_by_test_id("crmchat-root")).not_to_be_attached()


def test_every_tab_of_the_site_shows_the_running_chat(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    first = new_page()
    # A tab already open on another page of the site before the chat starts.
    waiting_tab = first.context.new_page()
    waiting_tab.goto(f"{service.url}/demo/pricing")
    expect(waiting_tab.get_by_test_id("crmchat-launcher")).to_be_visible()

    first.goto(f"{service.url}/demo/")
    first.get_by_test_id("crmchat-launcher").click()
    first.get_by_test_id("crmchat-field-firstname").fill("Tia")
    first.get_by_test_id("crmchat-field-email").fill("tia@example.com")
    first.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    sam.get_by_test_id("message-input").fill("Welcome, Tia")
    sam.get_by_test_id("send-button").click()
    expect(first.get_by_test_id("crmchat-messages")).to_contain_text("Welcome, Tia")

    # The tab that was open all along shows the chat, as does one opened now.
    waiting_tab.get_by_test_id("crmchat-launcher").click()
    expect(waiting_tab.get_by_test_id("crmchat-messages")).to_contain_text("Welcome, Tia")
    new_tab = first.context.new_page()
    new_tab.goto(f"{service.url}/demo/pricing")
    new_tab.get_by_test_id("crmchat-launcher").click()
    expect(new_tab.get_by_test_id("crmchat-messages")).to_contain_text("Welcome, Tia")

    # Whatever tab the visitor writes in, it is the one chat: Sam and every tab see it.
    composer = new_tab.get_by_test_id("crmchat-input")
    composer.fill("Writing from another tab")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Writing from another tab")
    for tab in (first, waiting_tab):
        expect(tab.get_by_test_id("crmchat-messages")).to_contain_text("Writing from another tab")
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)

    # Another person (another browser) sees none of it.
    stranger = new_page()
    stranger.goto(f"{service.url}/demo/pricing")
    stranger.get_by_test_id("crmchat-launcher").click()
    expect(stranger.get_by_test_id("crmchat-start")).to_be_visible()
    expect(stranger.get_by_test_id("crmchat-messages")).not_to_contain_text("Welcome, Tia")


# Counts the tones the widget plays (Web Audio's own OscillatorNode.start), and lets the
# test hide the tab: headless Chromium never hides one, so `hide_tab` sets what a switch to
# another tab sets (document.hidden, visibilityState) and fires visibilitychange.
WATCH_ATTENTION = """
window.__tones = 0;
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) {
  window.__tones++;
  return start.apply(this, args);
};
let hidden = false;
Object.defineProperty(Document.prototype, "hidden", { get: () => hidden });
Object.defineProperty(Document.prototype, "visibilityState", {
  get: () => (hidden ? "hidden" : "visible") });
window.__setHidden = (value) => {
  hidden = value;
  document.dispatchEvent(new Event("visibilitychange"));
};
"""


def test_while_minimized_new_messages_count_ring_and_flash_the_title(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.add_init_script(WATCH_ATTENTION)
    visitor.goto(f"{service.url}/demo/")
    title = visitor.title()
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Uma")
    visitor.get_by_test_id("crmchat-field-email").fill("uma@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")

    def sam_says(text: str) -> None:
        sam.get_by_test_id("message-input").fill(text)
        sam.get_by_test_id("send-button").click()

    # Open and looking: no tone, no count.
    sam_says("First answer")
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("First answer")
    assert visitor.evaluate("window.__tones") == 0

    visitor.get_by_test_id("crmchat-launcher").click()  # minimize
    expect(visitor.get_by_test_id("crmchat-panel")).to_be_hidden()
    sam_says("Second answer")
    badge = visitor.get_by_test_id("crmchat-unread")
    expect(badge).to_have_text("1")
    visitor.wait_for_function("() => window.__tones === 1")
    expect(visitor.get_by_test_id("crmchat-launcher")).to_have_attribute(
        "aria-label", re.compile(r"1 new")
    )

    # In another tab: the title flashes until the visitor comes back.
    visitor.evaluate("() => window.__setHidden(true)")
    sam_says("Third answer")
    expect(badge).to_have_text("2")
    visitor.wait_for_function("() => document.title === '(2) New message'")
    visitor.wait_for_function(f"() => document.title === {title!r}")
    assert visitor.evaluate("window.__tones") == 2
    visitor.evaluate("() => window.__setHidden(false)")
    visitor.wait_for_timeout(1500)
    assert visitor.title() == title
    visitor.get_by_test_id("crmchat-launcher").click()
    expect(badge).to_be_hidden()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Third answer")
