"""The widget designer with the keyboard alone, in real Chromium: an admin changes a text, a
font, a pre-chat field, a colour, a switch and a translation, looks at another preview
screen and saves (with the Save button, then with Enter in a text box), with Tab,
Shift+Tab, Enter, Space and the arrow keys only; every control they pass shows where the
focus is, the focus is never lost, and the saved design is what they chose."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_designer import _open_designer

from connector.demo import SALES_WIDGET_ID, admin_client
from connector.services import services_of

DESIGNER = "/WebResources/crmchat_/designer/index.html"
# The most key presses from one control to the next one the admin wants: the designer has
# some two hundred controls (the translation table alone has one a widget text).
MAX_PRESSES = 400

# Where the focus is in the designer's frame: "<group> › <control's name>" (the group is the
# nearest fieldset's legend, or the preview's tab list), whether the focus is visible (an
# outline or a box shadow drawn), and null when the focus is elsewhere. A focus inside the
# preview's frame is the widget's own (test_browser_a11y.py checks it).
FOCUS = """() => {
  const at = document.activeElement;
  if (!document.hasFocus() || !at || at === document.body || at.tagName === "IFRAME") return null;
  const name = (at.labels && at.labels.length ? at.labels[0].textContent
    : at.getAttribute("aria-label") || at.textContent || "").trim();
  const set = at.closest("fieldset");
  const group = set ? set.querySelector("legend").textContent
    : at.closest("[role=tablist]") ? "Preview screen" : "";
  const style = getComputedStyle(at);
  const visible = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0)
    || style.boxShadow !== "none";
  return { where: group ? group + " › " + name : name, visible };
}"""


class Keyboard:
    """Presses keys on the page and follows the focus in the designer's frame."""

    def __init__(self, page: Any, frame: Any) -> None:
        self.page, self.frame = page, frame
        self.unseen: set[str] = set()  # controls whose focus was not visible

    def focus(self) -> str | None:
        found: dict[str, Any] | None = self.frame.evaluate(FOCUS)
        if found is None:
            return None
        if not found["visible"]:
            self.unseen.add(found["where"])
        where: str = found["where"]
        return where

    def to(self, where: str, *, key: str = "Tab") -> None:
        for _ in range(MAX_PRESSES):
            if self.focus() == where:
                return
            self.page.keyboard.press(key)
        raise AssertionError(f"{key} never reached {where}; focus is on {self.focus()}")


def test_an_admin_designs_a_widget_with_the_keyboard_alone(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "CRM Chat Admin")
    designer = _open_designer(page)  # the app stand-in's own navigation is not under test
    frame = page.frame(url=lambda url: DESIGNER in url)
    assert frame is not None
    preview = designer.frame_locator('[data-testid="designer-preview"]')
    expect(preview.get_by_test_id("crmchat-title")).to_have_text("Questions before you buy?")
    keys = Keyboard(page, frame)

    # A text: Tab selects the box's text, typing replaces it; the preview follows.
    keys.to("Chat display › Title")
    page.keyboard.type("Talk to our sales team")
    expect(preview.get_by_test_id("crmchat-title")).to_have_text("Talk to our sales team")
    # A list: the arrow keys pick the next font.
    keys.to("Chat display › Font")
    page.keyboard.press("ArrowDown")
    # A pre-chat field removed: the focus goes to the next field's Remove, not to the page.
    keys.to("Input fields (pre-chat form) › Remove field 2")
    page.keyboard.press("Enter")
    expect(designer.get_by_label("Label of field 2")).to_have_value("Email")
    assert keys.focus() == "Input fields (pre-chat form) › Remove field 2"
    # A colour, typed as #hex (the colour picker next to it is a mouse's shortcut).
    keys.to("Colours › Header and buttons")
    page.keyboard.type("#b00b1e")
    expect(preview.get_by_test_id("crmchat-start")).to_have_css(
        "background-color", "rgb(176, 11, 30)"
    )
    # A switch: Space.
    keys.to("Buttons visitors see and may use › Emoji button")
    page.keyboard.press("Space")

    # A translation: Enter in the language box adds the language (it does not save).
    keys.to("Languages › Add a translation")
    page.keyboard.type("fr")
    page.keyboard.press("Enter")
    expect(designer.locator("#translation-title")).to_have_text("Texts in fr (empty: as designed)")
    expect(designer.locator("#result")).to_have_text("")
    keys.to("Languages › Talk to our sales team")
    page.keyboard.type("Parlez à notre équipe")
    expect(preview.get_by_test_id("crmchat-title")).to_have_text("Parlez à notre équipe")

    # The preview's screens are one tab stop; the arrow keys move among them.
    keys.to("Preview screen › Pre-chat")
    page.keyboard.press("ArrowRight")
    assert keys.focus() == "Preview screen › Chat"
    expect(designer.get_by_role("tab", name="Chat", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(preview.get_by_test_id("crmchat-message").first).to_be_visible()
    expect(preview.get_by_test_id("crmchat-prechat")).to_be_hidden()

    # Back up to Save; Enter saves and the focus stays there.
    keys.to("Save", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(designer.locator("#result")).to_have_text(
        "Saved. Sites that carry the script show the new design on their next page load."
    )
    assert keys.focus() == "Save"
    # Enter in a text box saves too; the form is drawn again and the box keeps the focus.
    keys.to("Widget › Name (internal only)")
    page.keyboard.type("Sales chat EU")
    page.keyboard.press("Enter")
    expect(designer.locator("#result")).to_contain_text("Saved.")
    expect(designer.get_by_label("Name (internal only)")).to_have_value("Sales chat EU")
    assert keys.focus() == "Widget › Name (internal only)"
    assert keys.unseen == set(), f"no visible focus on {sorted(keys.unseen)}"

    crm = admin_client(services_of(service.app).standin)
    row = crm.retrieve(
        "crmchat_widgets", SALES_WIDGET_ID, select=["crmchat_name", "crmchat_design"]
    )
    assert row["crmchat_name"] == "Sales chat EU"
    design = json.loads(row["crmchat_design"])
    assert design["title"] == "Talk to our sales team"
    assert design["font"] == "Arial"  # the one after Segoe UI
    assert design["colors"]["primary"] == "#b00b1e"
    assert design["emoji"] is False
    assert [field["name"] for field in design["fields"]] == ["firstname", "email"]
    assert design["translations"]["fr"]["title"] == "Parlez à notre équipe"
