"""Issue 12: the widget on a phone (a 390 × 844 viewport with touch).

On a phone the on-screen keyboard shrinks the visual viewport, not the layout viewport
that `position: fixed` panels are laid out in, so a full-screen panel's composer ends up
under the keyboard. Headless Chromium has no on-screen keyboard: the page's
`visualViewport` is replaced by one whose height the test shrinks by the keyboard's, and
which fires `resize` as Chrome's does when the keyboard opens or closes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import TIMEOUT_MS

PHONE = {"width": 390, "height": 844}
KEYBOARD_PX = 336  # an iPhone 12's keyboard with its suggestion bar, in CSS pixels

FAKE_KEYBOARD = """(() => {
  const real = window.visualViewport;
  const fake = new EventTarget();
  let keyboard = 0;
  for (const [name, get] of Object.entries({
    height: () => real.height - keyboard, width: () => real.width,
    offsetTop: () => 0, offsetLeft: () => 0, pageTop: () => real.pageTop,
    pageLeft: () => real.pageLeft, scale: () => real.scale,
  })) Object.defineProperty(fake, name, { get });
  Object.defineProperty(window, "visualViewport", { value: fake, configurable: true });
  window.__keyboard = (px) => { keyboard = px; fake.dispatchEvent(new Event("resize")); };
})();"""


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A page in a phone's browser context (its own person)."""
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=3
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.add_init_script(FAKE_KEYBOARD)
    yield page
    context.close()


def bottom(locator: Any) -> float:
    box = locator.bounding_box()
    assert box is not None
    return float(box["y"] + box["height"])


def test_the_on_screen_keyboard_does_not_hide_the_composer(
    service: Any, phone: Any, agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    phone.goto(f"{service.url}/demo/")
    phone.get_by_test_id("crmchat-launcher").tap()
    panel = phone.get_by_test_id("crmchat-panel")
    # Full screen on a phone (once it has slid in).
    panel.evaluate("p => Promise.all(p.getAnimations().map(a => a.finished))")
    box = panel.bounding_box()
    assert box is not None
    assert [round(box[k]) for k in ("x", "y", "width", "height")] == [0, 0, 390, 844]
    phone.get_by_test_id("crmchat-field-firstname").tap()
    phone.get_by_test_id("crmchat-field-firstname").fill("Pia")
    phone.get_by_test_id("crmchat-field-email").fill("pia@example.com")
    phone.get_by_test_id("crmchat-start").tap()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(phone.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")

    composer = phone.get_by_test_id("crmchat-input")
    send = phone.get_by_test_id("crmchat-send")
    composer.tap()
    phone.evaluate(f"window.__keyboard({KEYBOARD_PX})")
    above_keyboard = PHONE["height"] - KEYBOARD_PX
    # The panel shrinks to what the keyboard leaves: composer and send button above it,
    # the last message still in sight.
    phone.wait_for_function(
        f"() => document.querySelector('crmchat-widget').shadowRoot"
        f".querySelector('.panel').getBoundingClientRect().bottom <= {above_keyboard}"
    )
    assert bottom(composer) <= above_keyboard
    assert bottom(send) <= above_keyboard
    assert bottom(phone.get_by_test_id("crmchat-message").last) <= above_keyboard
    composer.fill("Typed above the keyboard")
    send.tap()
    expect(sam.get_by_test_id("messages")).to_contain_text("Typed above the keyboard")

    # The keyboard closes: full screen again.
    phone.evaluate("window.__keyboard(0)")
    phone.wait_for_function(
        f"() => document.querySelector('crmchat-widget').shadowRoot"
        f".querySelector('.panel').getBoundingClientRect().bottom === {PHONE['height']}"
    )
    assert bottom(composer) > above_keyboard
