"""Pages written as for Dynamics 365 Omnichannel, with only their script tag swapped.

The pages (tests/browser/fixtures/omnichannel/) carry Microsoft's tag
(`id="Microsoft_Omnichannel_LCWidget"`, LiveChatBootstrapper.js, `data-app-id`,
`data-org-url`) and code shaped after the live chat SDK reference's samples. A customer's
site (a server of its own, so the browser sends another Origin) serves each with that tag's
`src`, `data-app-id` and `data-org-url` changed to CRM Chat's, and nothing else. For
authenticated chat the site also publishes its public key (`/auth/publickey`, PEM) and
signs RS256 tokens for its signed-in visitor (`/token`), as Microsoft's setup describes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID
from tests.browser.test_browser_designer import _open_designer
from tests.site_server import serve

PAGES = Path(__file__).parent / "fixtures" / "omnichannel"
SITE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = SITE_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def signed_in_token() -> bytes:
    """The site's server side: an RS256 token for its signed-in visitor (Microsoft's claims)."""
    now = int(time.time())
    claims = {
        "sub": "ann-0001",
        "email": "ann@example.com",
        "name": "Ann Smith",
        "lwicontexts": json.dumps({"msdyn_cartvalue": "10000", "msdyn_isvip": "false"}),
        "iat": now,
        "iss": "contoso.test",
        "exp": now + 600,
        "nbf": now,
    }
    return jwt.encode(claims, SITE_KEY, algorithm="RS256").encode()


def swap_script_tag(html: str, service: str, widget_id: str) -> str:
    """The page with only its Omnichannel tag pointed at CRM Chat (what a site owner edits)."""
    tag = re.search(r'<script id="Microsoft_Omnichannel_LCWidget".*?</script>', html, re.S)
    assert tag, "the page has no Omnichannel script tag"
    new = tag.group(0)
    new = re.sub(r'src="[^"]*"', f'src="{service}/widget/loader.js"', new)
    new = re.sub(r'data-app-id="[^"]*"', f'data-app-id="{widget_id}"', new)
    new = re.sub(r'data-org-url="[^"]*"', f'data-org-url="{service}"', new)
    return html[: tag.start()] + new + html[tag.end() :]


@pytest.fixture
def site(service: Any) -> Iterator[str]:
    """A customer's site serving the three pages at /<name>.html; yields its base URL."""

    def answer(path: str) -> tuple[int, bytes]:
        if path == "/auth/publickey":
            return 200, PUBLIC_PEM
        if path == "/token":
            return 200, signed_in_token()
        file = PAGES / path.lstrip("/").split("?")[0]
        if file.parent != PAGES or not file.is_file():
            return 404, b"Not found"
        return 200, swap_script_tag(file.read_text(), service.url, SALES_WIDGET_ID).encode()

    with serve(answer) as port:
        yield f"http://127.0.0.1:{port}"


def events(page: Any, name: str) -> list[dict[str, Any]]:
    """The `detail` of every `name` event the page's own listeners logged."""
    logged: list[dict[str, Any]] = page.evaluate("window.lcwLog")
    return [e["detail"] for e in logged if e["name"] == name]


def fill_prechat(visitor: Any, first: str, last: str, email: str) -> None:
    visitor.get_by_test_id("crmchat-field-firstname").fill(first)
    visitor.get_by_test_id("crmchat-field-lastname").fill(last)
    visitor.get_by_test_id("crmchat-field-email").fill(email)
    visitor.get_by_test_id("crmchat-start").click()


def test_swapping_the_tag_changes_only_the_tag() -> None:
    original = (PAGES / "thread.html").read_text()
    swapped = swap_script_tag(original, "http://chat.test", SALES_WIDGET_ID)
    tag = re.compile(r'<script id="Microsoft_Omnichannel_LCWidget".*?</script>', re.S)
    assert tag.sub("", swapped) == tag.sub("", original)
    assert (
        "LiveChatBootstrapper.js" not in swapped and "http://chat.test/widget/loader.js" in swapped
    )


def test_a_proactive_chat_page_invites_queues_and_tags_the_agent_accepting(
    site: str, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{site}/proactive.html")

    # The page's startProactiveChat, half a second after lcw:ready, shows its message.
    invite = visitor.get_by_test_id("crmchat-proactive")
    expect(invite).to_contain_text("Hi! Looking for a new bike?")
    invite.get_by_text("Hi! Looking for a new bike?").click()
    fill_prechat(visitor, "Pia", "Proactive", "pia@example.com")

    visitor.wait_for_function("window.lcwLog.some(e => e.name === 'lcw:chatQueued')")
    queued = events(visitor, "lcw:chatQueued")
    assert len(queued) == 1 and queued[0]["conversation_id"]

    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    sam.get_by_test_id("message-input").fill("Hello Pia, which size?")
    sam.get_by_test_id("send-button").click()
    visitor.wait_for_function(
        "window.lcwLog.filter(e => e.name === 'lcw:onMessageReceived' &&"
        " e.detail.messageType === 'user').length >= 1"
    )
    received = events(visitor, "lcw:onMessageReceived")
    # Omnichannel's shape: the place in the queue first (a system message tagged
    # queueposition), the join line a system message tagged agentaccepted, the agent's text
    # a user message tagged public.
    place, joined, said = received[0], received[1], received[2]
    assert place["messageType"] == "system" and "queueposition" in place["channelData"]["tags"]
    assert joined["messageType"] == "system"
    assert joined["channelData"]["tags"] == ["system", "agentaccepted"]
    assert joined["content"] == "Sam joined the chat."
    assert said["messageType"] == "user"
    assert said["channelData"]["tags"][0] == "public"
    assert said["content"] == "Hello Pia, which size?"
    assert said["timestamp"] and said["conversation_id"] == queued[0]["conversation_id"]


def test_a_page_starts_the_chat_from_its_own_button_when_an_agent_is_available(
    site: str, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{site}/button.html")

    # data-hide-chat-button: no launcher; the page's availability check shows its button.
    expect(visitor.locator("#availability")).to_have_text("An agent is online")
    expect(visitor.get_by_test_id("crmchat-launcher")).to_be_hidden()
    answers = events(visitor, "lcw:getAgentAvailability")
    assert answers and answers[0]["isAgentAvailable"] is True

    visitor.locator("#chat-button").click()  # its onclick calls SDK.startChat()
    fill_prechat(visitor, "Bo", "Button", "bo@example.com")
    visitor.wait_for_function("window.lcwLog.some(e => e.name === 'lcw:chatQueued')")
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()

    visitor.get_by_test_id("crmchat-input").fill("Where is my order?")
    visitor.get_by_test_id("crmchat-input").press("Enter")
    visitor.wait_for_function("window.lcwLog.some(e => e.name === 'lcw:onMessageSent')")
    sent = events(visitor, "lcw:onMessageSent")
    assert len(sent) == 1
    assert sent[0]["messageType"] == "user" and sent[0]["content"] == "Where is my order?"
    assert f"client_activity_id:{sent[0]['client_id']}" in sent[0]["channelData"]["tags"]


def test_a_page_watching_the_thread_closes_the_chat_the_agent_ended(
    site: str, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{site}/thread.html")
    visitor.get_by_test_id("crmchat-launcher").click()
    fill_prechat(visitor, "Tia", "Thread", "tia@example.com")
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    # The page keyed on the agentaccepted tag.
    expect(visitor.locator("#agent")).to_have_text("An agent joined: Sam joined the chat.")

    # A reload finds the chat in the browser's storage: lcw:chatRetrieved, once.
    visitor.reload()
    visitor.wait_for_function("window.lcwLog.some(e => e.name === 'lcw:chatRetrieved')")
    assert len(events(visitor, "lcw:chatRetrieved")) == 1

    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()
    # lcw:threadUpdate → the page's closeChat(): the widget forgets the chat (lcw:onClose)
    # and the launcher opens a new chat's pre-chat form, not the ended chat's rating.
    expect(visitor.locator("#thread")).to_have_text("The agent ended the chat")
    visitor.wait_for_function("window.lcwLog.some(e => e.name === 'lcw:onClose')")
    assert [e["by"] for e in events(visitor, "lcw:threadUpdate")] == ["agent"]
    visitor.get_by_test_id("crmchat-launcher").click()
    expect(visitor.get_by_test_id("crmchat-prechat")).to_be_visible()
    expect(visitor.get_by_test_id("crmchat-rating")).to_be_hidden()


def test_an_authenticated_chat_page_signs_in_with_its_rs256_token(
    site: str,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    # The admin sets the site's public key URL on the widget, as in Omnichannel's
    # authentication settings.
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    key_url = designer.get_by_label("Public key URL (the site's RS256 sign-in tokens; PEM or JWKS)")
    key_url.fill("http://shop.example/auth/publickey")  # not https: refused
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Not saved")
    key_url.fill(f"{site}/auth/publickey")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")

    sam = agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{site}/auth.html")
    visitor.get_by_test_id("crmchat-launcher").click()
    # Verified: the form is filled from the token; the chat starts.
    expect(visitor.get_by_test_id("crmchat-field-email")).to_have_value("ann@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("identity-badge")).to_have_attribute("data-verified", "true")
    # The token's lwicontexts reaches the agent as the chat's context.
    details = sam.get_by_test_id("additional-details")
    expect(
        details.get_by_test_id("context-item").filter(has_text="msdyn_cartvalue")
    ).to_contain_text("10000")
    assert events(visitor, "lcw:error") == []


def test_the_script_tags_data_attributes_restyle_the_widget_and_a_rerendered_page_gets_it_back(
    site: str, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{site}/tags.html")
    launcher = visitor.get_by_test_id("crmchat-launcher")
    # data-color-override wins over the design's colour; data-font-family-override is
    # the widget's font.
    expect(launcher).to_have_css("background-color", "rgb(0, 133, 119)")
    launcher.click()
    panel = visitor.get_by_test_id("crmchat-panel")
    assert panel.evaluate("p => getComputedStyle(p).fontFamily").startswith('Arial, "Segoe UI"')
    # data-custom-close-button-text and data-hide-minimize-button.
    visitor.get_by_test_id("crmchat-field-firstname").fill("Rea")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Render")
    visitor.get_by_test_id("crmchat-field-email").fill("rea@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    expect(visitor.get_by_test_id("crmchat-end-chat")).to_have_text("Leave chat")
    expect(visitor.get_by_test_id("crmchat-minimize")).to_be_hidden()
    visitor.get_by_test_id("crmchat-input").fill("Before the re-render")
    visitor.get_by_test_id("crmchat-input").press("Enter")
    expect(visitor.get_by_test_id("crmchat-message").filter(has_text="Before")).not_to_have_class(
        re.compile("pending")
    )

    # The page re-renders (the widget's element goes) and adds the script tag again:
    # one new widget, lcw:ready again, the running chat and its transcript still there.
    visitor.locator("#rerender").click()
    visitor.wait_for_function("window.lcwLog.filter(e => e.name === 'lcw:ready').length === 2")
    expect(visitor.get_by_test_id("crmchat-root")).to_have_count(1)
    expect(visitor.get_by_test_id("crmchat-launcher")).to_have_css(
        "background-color", "rgb(0, 133, 119)"
    )
    expect(visitor.get_by_test_id("crmchat-panel")).to_be_visible()  # it was open
    expect(visitor.get_by_test_id("crmchat-message").filter(has_text="Before")).to_have_count(1)
    visitor.get_by_test_id("crmchat-input").fill("After the re-render")
    visitor.get_by_test_id("crmchat-input").press("Enter")
    expect(visitor.get_by_test_id("crmchat-message").filter(has_text="After")).not_to_have_class(
        re.compile("pending")
    )
    assert visitor.evaluate("window.CRMChat.gone()") is False


def test_render_mobile_fills_the_window_without_a_header(
    site: str, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    agent_console("Sam Sales")
    visitor = new_page()
    visitor.set_viewport_size({"width": 1024, "height": 700})  # not a phone: the tag decides
    visitor.goto(f"{site}/mobile.html")
    panel = visitor.get_by_test_id("crmchat-panel")
    expect(panel).to_be_visible()  # the app's startChat() opened it
    panel.evaluate("p => Promise.all(p.getAnimations().map(a => a.finished))")
    box = panel.bounding_box()
    assert box is not None and (box["x"], box["y"], box["width"], box["height"]) == (
        0,
        0,
        1024,
        700,
    )
    expect(panel.locator("header")).to_be_hidden()
    expect(visitor.get_by_test_id("crmchat-launcher")).to_be_hidden()
    expect(visitor.get_by_test_id("crmchat-start")).to_have_css(
        "background-color", "rgb(0, 133, 119)"
    )
