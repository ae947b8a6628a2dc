"""Issue 12: the widget on a host page with a strict Content-Security-Policy.

The customer's site answers every page with `script-src 'nonce-…'; style-src 'nonce-…'`
and nothing else: no inline script or style, no other script. The widget works when the
site passes the nonce, on the loader's tag (`nonce`, which the browser hides from
scripts) or as `data-nonce`; every violation the browser reports is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID
from tests.site_server import serve

NONCE = "c3RyaWN0LWNzcC10ZXN0"
# Recorded before any page script runs (the test's own instrumentation, not the page's).
WATCH_VIOLATIONS = """window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});"""


def page_with(service_url: str, tag_attributes: str) -> bytes:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Strict shop</title>'
        "</head><body><h1>Strict shop</h1>"
        f'<script src="{service_url}/widget/loader.js" data-widget-id="{SALES_WIDGET_ID}" '
        f"{tag_attributes}></script></body></html>"
    ).encode()


@pytest.fixture
def strict_site(service: Any) -> Iterator[str]:
    """/nonce.html (the tag's nonce), /data-nonce.html (the loader allowed by its host,
    the nonce as data-nonce), /no-nonce.html (the same without it)."""
    pages = {
        "/nonce.html": page_with(service.url, f'nonce="{NONCE}"'),
        "/data-nonce.html": page_with(service.url, f'data-nonce="{NONCE}"'),
        "/no-nonce.html": page_with(service.url, ""),
    }
    policy = f"script-src 'nonce-{NONCE}' {service.url}/widget/; style-src 'nonce-{NONCE}'"

    def answer(path: str) -> tuple[int, bytes]:
        return (200, pages[path]) if path in pages else (404, b"Not found")

    with serve(answer, {"Content-Security-Policy": policy}) as port:
        yield f"http://127.0.0.1:{port}"


def violations(page: Any) -> list[str]:
    found: list[str] = page.evaluate("window.__violations")
    return found


@pytest.mark.parametrize("name", ["nonce", "data-nonce"])
def test_the_widget_works_under_a_strict_policy_with_the_sites_nonce(
    name: str,
    strict_site: str,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.add_init_script(WATCH_VIOLATIONS)
    visitor.goto(f"{strict_site}/{name}.html")
    launcher = visitor.get_by_test_id("crmchat-launcher")
    # Styled: the widget's style sheet was allowed.
    expect(launcher).to_have_css("position", "fixed")
    expect(launcher).to_have_css("background-color", "rgb(15, 108, 189)")
    launcher.click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Cai")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Strict")
    visitor.get_by_test_id("crmchat-field-email").fill("cai@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    visitor.get_by_test_id("crmchat-input").fill("Hello under CSP")
    visitor.get_by_test_id("crmchat-input").press("Enter")
    expect(sam.get_by_test_id("message").filter(has_text="Hello under CSP")).to_be_visible()
    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()
    # The end screen and its transcript buttons come from extras.js, loaded on demand.
    expect(visitor.get_by_test_id("crmchat-star-5")).to_be_visible()
    expect(visitor.get_by_test_id("crmchat-transcript-download")).to_be_visible()
    assert violations(visitor) == []


def test_without_the_nonce_the_policy_blocks_the_widgets_style(
    strict_site: str, new_page: Any
) -> None:
    # The control: the same page without the nonce shows the policy is enforced.
    visitor = new_page()
    visitor.add_init_script(WATCH_VIOLATIONS)
    visitor.goto(f"{strict_site}/no-nonce.html")
    expect(visitor.get_by_test_id("crmchat-root")).to_have_count(1)
    visitor.wait_for_function("window.__violations.length > 0")
    assert any(v.startswith("style-src") for v in violations(visitor))
    expect(visitor.get_by_test_id("crmchat-launcher")).not_to_have_css("position", "fixed")
