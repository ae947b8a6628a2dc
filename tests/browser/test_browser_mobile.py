"""Issue 12: the widget on a phone (390 x 844, touch), with the on-screen keyboard.

A phone's keyboard shrinks only the visual viewport (`window.visualViewport`), which
fixed elements ignore: the panel must follow it or the composer ends up under the
keyboard. Headless Chromium has no on-screen keyboard, so the test does to the visual
viewport what opening one does (a smaller `height`, then its `resize` event) and checks
where the panel and the composer are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import TIMEOUT_MS

PHONE = {"width": 390, "height": 844}
KEYBOARD_PX = 336  # an iPhone 12's keyboard, about
SET_VISUAL_HEIGHT = """h => {
  const vv = window.visualViewport;
  if (h === null) delete vv.height;
  else Object.defineProperty(vv, "height", { configurable: true, get: () => h });
  vv.dispatchEvent(new Event("resize"));
}"""


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def box_of(locator: Any) -> dict[str, float]:
    locator.evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")
    box = locator.bounding_box()
    assert box is not None
    return {k: round(v) for k, v in box.items()}


def test_the_panel_fills_a_phone_and_stays_above_the_keyboard(
    service: Any, phone: Any, agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    phone.goto(f"{service.url}/demo/")
    phone.get_by_test_id("crmchat-launcher").tap()
    panel = phone.get_by_test_id("crmchat-panel")
    expect(panel).to_be_visible()
    assert box_of(panel) == {"x": 0, "y": 0, "width": 390, "height": 844}
    expect(phone.get_by_test_id("crmchat-launcher")).to_be_hidden()  # the header minimizes
    # 16 px inputs: a phone zooms the page into anything smaller.
    expect(phone.get_by_test_id("crmchat-field-firstname")).to_have_css("font-size", "16px")

    phone.get_by_test_id("crmchat-field-firstname").fill("Pip")
    phone.get_by_test_id("crmchat-field-lastname").fill("Phone")
    phone.get_by_test_id("crmchat-field-email").fill("pip@example.com")
    phone.get_by_test_id("crmchat-start").tap()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    composer = phone.get_by_test_id("crmchat-input")
    expect(composer).to_have_css("font-size", "16px")

    # The keyboard opens: the panel shrinks to what is left, the composer right above it.
    composer.tap()
    visible = PHONE["height"] - KEYBOARD_PX
    phone.evaluate(SET_VISUAL_HEIGHT, visible)
    expect(panel).to_have_css("height", f"{visible}px")
    assert box_of(panel)["height"] == visible
    input_box = box_of(composer)
    assert visible - 80 < input_box["y"] + input_box["height"] <= visible
    composer.fill("Typed above the keyboard")
    composer.press("Enter")
    expect(sam.get_by_test_id("message").filter(has_text="Typed above")).to_be_visible()
    # The newest message is in view, above the composer.
    mine = phone.get_by_test_id("crmchat-message").filter(has_text="Typed above")
    assert box_of(mine)["y"] + box_of(mine)["height"] <= input_box["y"]

    # The keyboard closes: the whole screen again.
    phone.evaluate(SET_VISUAL_HEIGHT, None)
    expect(panel).to_have_css("height", f"{PHONE['height']}px")

    # Minimized, the launcher is back and the panel no longer holds the page.
    phone.get_by_test_id("crmchat-minimize").tap()
    expect(panel).to_be_hidden()
    expect(phone.get_by_test_id("crmchat-launcher")).to_be_visible()
