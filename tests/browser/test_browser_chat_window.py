"""Issue 12: the chat in a window of its own, as Omnichannel opens it.

`startChat({inNewWindow: true})` (live chat SDK reference) and the script tag's
`data-open-in-window="true"` open the chat at the service's page /widget/window/<widget
id>; the site's page hands it its visitor and context, and the chat carries on in the
site's page once the window is closed. The pages (fixtures/omnichannel/window.html and
popout.html) are written as for Omnichannel, only their script tag swapped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID
from tests.browser.test_browser_omnichannel_pages import fill_prechat, site  # noqa: F401

WINDOW_PATH = f"/widget/window/{SALES_WIDGET_ID}"


def test_start_chat_in_a_new_window_carries_the_visitor_and_comes_back_to_the_page(
    service: Any,
    site: str,  # noqa: F811
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    page = new_page()
    page.goto(f"{site}/window.html")
    expect(page.get_by_test_id("crmchat-launcher")).to_be_visible()
    with page.expect_popup() as opened:
        page.locator("#chat-window").click()  # its onclick: startChat({inNewWindow: true})
    window = opened.value
    assert window.url == f"{service.url}{WINDOW_PATH}"
    # The page's own panel stays closed; the window is all chat.
    expect(page.get_by_test_id("crmchat-panel")).to_be_hidden()
    panel = window.get_by_test_id("crmchat-panel")
    expect(panel).to_be_visible()
    expect(window.get_by_test_id("crmchat-launcher")).to_be_hidden()
    expect(window.get_by_test_id("crmchat-minimize")).to_be_hidden()
    size = window.viewport_size or window.evaluate("({width: innerWidth, height: innerHeight})")
    panel.evaluate("p => Promise.all(p.getAnimations().map(a => a.finished))")
    box = panel.bounding_box()
    assert box is not None and (box["width"], box["height"]) == (size["width"], size["height"])

    fill_prechat(window, "Wyn", "Window", "wyn@example.com")
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    # The page's context provider gave the window its context.
    details = sam.get_by_test_id("additional-details")
    expect(details.get_by_test_id("context-item").filter(has_text="Order")).to_contain_text(
        "SO-1234"
    )
    window.get_by_test_id("crmchat-input").fill("Written in the window")
    window.get_by_test_id("crmchat-input").press("Enter")
    expect(sam.get_by_test_id("message").filter(has_text="Written in the window")).to_be_visible()

    # The window closes; the site's page has the chat (the same visitor) and carries on.
    window.close()
    page.get_by_test_id("crmchat-launcher").click()
    messages = page.get_by_test_id("crmchat-message")
    expect(messages.filter(has_text="Written in the window")).to_have_count(1)
    page.get_by_test_id("crmchat-input").fill("Back on the page")
    page.get_by_test_id("crmchat-input").press("Enter")
    expect(sam.get_by_test_id("message").filter(has_text="Back on the page")).to_be_visible()


def test_the_window_page_has_a_strict_policy_and_refuses_other_ids(service: Any) -> None:
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"{service.url}{WINDOW_PATH}") as answer:
        policy = answer.headers["Content-Security-Policy"]
        body = answer.read().decode()
    nonce = re.search(r"script-src 'nonce-([\w-]+)'", policy)
    assert nonce and f"style-src 'nonce-{nonce.group(1)}'" in policy
    assert "unsafe-inline" not in policy and "default-src 'none'" in policy
    assert f'nonce="{nonce.group(1)}"' in body and 'data-window="true"' in body
    try:
        urllib.request.urlopen(f"{service.url}/widget/window/%3Cscript%3E")
        raise AssertionError("a window for no widget was answered")
    except urllib.error.HTTPError as refused:
        assert refused.code == 404
        assert b"<script>" not in refused.read()


def test_data_open_in_window_opens_the_chat_button_in_a_window(
    service: Any,
    site: str,  # noqa: F811
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    agent_console("Sam Sales")
    page = new_page()
    page.goto(f"{site}/popout.html")
    with page.expect_popup() as opened:
        page.get_by_test_id("crmchat-launcher").click()
    window = opened.value
    assert window.url == f"{service.url}{WINDOW_PATH}"
    expect(window.get_by_test_id("crmchat-prechat")).to_be_visible()
    expect(page.get_by_test_id("crmchat-panel")).to_be_hidden()
