"""Issue 12: the widget on a host page with a strict Content-Security-Policy.

The site's policy allows only scripts and styles carrying its nonce (no 'unsafe-inline',
no 'strict-dynamic'), the service's address for fetches and the socket. The loader takes
the nonce from its tag and puts it on what it and the widget add (widget.js, extras.js and
the widget's styles); webresources/widget/README.md ("Strict Content-Security-Policy")
lists the policy a site needs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID
from tests.site_server import serve

# Records every violation the browser reports, before any of the page's scripts run.
WATCH_VIOLATIONS = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def strict_page(service_url: str, nonce: str, *, with_nonce: bool) -> bytes:
    tag_nonce = f' nonce="{nonce}"' if with_nonce else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A strict shop</title></head>
<body><h1>A strict shop</h1>
<script src="{service_url}/widget/loader.js" data-widget-id="{SALES_WIDGET_ID}"
  data-color-override="#008577"{tag_nonce} async></script>
</body></html>""".encode()


def policy(service_url: str, nonce: str) -> str:
    socket_url = service_url.replace("http://", "ws://")
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        f"connect-src {service_url} {socket_url}; img-src {service_url} data:"
    )


@pytest.fixture
def strict_site(service: Any) -> Iterator[Callable[[bool], str]]:
    """`strict_site(with_nonce)`: the address of a page served with a strict policy and a
    fresh nonce each time, whose loader tag carries that nonce or not."""
    pages: dict[str, bytes] = {}

    def answer(path: str) -> tuple[int, bytes]:
        return (200, pages[path]) if path in pages else (404, b"")

    # The policy is a header of every answer; one nonce for this site's pages.
    nonce = secrets.token_urlsafe(16)
    with serve(answer, headers={"Content-Security-Policy": policy(service.url, nonce)}) as port:

        def make(with_nonce: bool) -> str:
            path = "/with-nonce" if with_nonce else "/without-nonce"
            pages[path] = strict_page(service.url, nonce, with_nonce=with_nonce)
            return f"http://127.0.0.1:{port}{path}"

        yield make


def test_the_widget_works_on_a_page_with_a_nonce_only_policy(
    strict_site: Callable[[bool], str],
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.add_init_script(WATCH_VIOLATIONS)
    visitor.goto(strict_site(True))
    launcher = visitor.get_by_test_id("crmchat-launcher")
    expect(launcher).to_be_visible()
    # The widget's styles applied: the launcher floats in the corner in the page's colour.
    assert launcher.evaluate("b => getComputedStyle(b).position") == "fixed"
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(0, 133, 119)"
    launcher.click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Cleo")
    visitor.get_by_test_id("crmchat-field-email").fill("cleo@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("Hello from a strict page")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Hello from a strict page")
    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    # extras.js, loaded only now, ran under the policy too.
    expect(visitor.get_by_test_id("crmchat-transcript-download")).to_be_visible()
    assert visitor.evaluate("window.__violations") == []


def test_without_the_nonce_on_its_tag_the_policy_blocks_the_widget(
    strict_site: Callable[[bool], str], new_page: Callable[[], Any]
) -> None:
    # The proof the policy above is strict: the loader itself does not run.
    visitor = new_page()
    visitor.add_init_script(WATCH_VIOLATIONS)
    visitor.goto(strict_site(False))
    visitor.wait_for_function("() => window.__violations.length > 0")
    expect(visitor.get_by_test_id("crmchat-root")).not_to_be_attached()
