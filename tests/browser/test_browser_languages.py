"""Languages in real Chromium: the visitor's browser language (or, failing that, the page's
`lang`) picks the design's translation, and Arabic and Hebrew are laid out right to left.

Each visitor is a browser context with its own locale, which is what Chromium reports in
`navigator.languages`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import TIMEOUT_MS
from playwright.sync_api import expect
from test_browser_designer import _open_designer
from test_browser_issue4 import set_design

from connector.demo import SALES_WIDGET_ID, admin_client
from connector.services import services_of

ARABIC = {
    "open": "افتح الدردشة",
    "title": "تحدث معنا",
    "start_button": "ابدأ الدردشة",
    "field.firstname": "الاسم الأول",
    "placeholder": "اكتب رسالة…",
    "waiting": "في انتظار موظف…",
}
HEBREW = {
    "open": "פתח צ'אט",
    "title": "דברו איתנו",
    "start_button": "התחל צ'אט",
    "field.firstname": "שם פרטי",
    "field.email": 'דוא"ל',
    "placeholder": "הקלד הודעה…",
    "waiting": "ממתין לנציג…",
}
GERMAN = {"title": "Chatten Sie mit uns", "start_button": "Chat starten"}


@pytest.fixture
def visitor_in(browser: Any) -> Iterator[Callable[[str], Any]]:
    """`visitor_in("he-IL")`: a page in a fresh context whose browser speaks that locale."""
    contexts: list[Any] = []

    def open_page(locale: str) -> Any:
        context = browser.new_context(locale=locale)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def panel_direction(page: Any) -> str:
    panel = page.get_by_test_id("crmchat-panel")
    direction: str = panel.evaluate("(p) => getComputedStyle(p).direction")
    return direction


def test_a_hebrew_browser_gets_the_hebrew_texts_right_to_left_through_a_whole_chat(
    service: Any, visitor_in: Callable[[str], Any], agent_console: Callable[..., Any]
) -> None:
    set_design(service, SALES_WIDGET_ID, translations={"he": HEBREW, "ar": ARABIC})
    sam = agent_console("Sam Sales")
    visitor = visitor_in("he-IL")
    assert visitor.evaluate("() => navigator.languages[0]") == "he-IL"
    visitor.goto(f"{service.url}/demo/")

    launcher = visitor.get_by_test_id("crmchat-launcher")
    expect(launcher).to_have_attribute("aria-label", HEBREW["open"])
    launcher.click()
    panel = visitor.get_by_test_id("crmchat-panel")
    expect(panel).to_be_visible()
    expect(visitor.get_by_test_id("crmchat-root").locator(".w")).to_have_attribute("dir", "rtl")
    expect(visitor.get_by_test_id("crmchat-root").locator(".w")).to_have_attribute("lang", "he")
    assert panel_direction(visitor) == "rtl"
    expect(visitor.get_by_test_id("crmchat-title")).to_have_text(HEBREW["title"])
    expect(visitor.get_by_test_id("crmchat-start")).to_have_text(HEBREW["start_button"])
    # Labels name their inputs in Hebrew; an untranslated label stays as designed.
    visitor.get_by_label(HEBREW["field.firstname"]).fill("דנה")
    visitor.get_by_label(HEBREW["field.email"]).fill("dana@example.com")
    expect(visitor.get_by_label("Last name")).to_be_visible()
    visitor.get_by_test_id("crmchat-start").click()
    expect(visitor.get_by_test_id("crmchat-status")).to_have_text(HEBREW["waiting"])

    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    composer = visitor.get_by_test_id("crmchat-input")
    expect(composer).to_have_attribute("placeholder", HEBREW["placeholder"])
    composer.fill("שלום")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("שלום")
    sam.get_by_test_id("message-input").fill("Shalom!")
    sam.get_by_test_id("send-button").click()
    messages = visitor.get_by_test_id("crmchat-messages").get_by_test_id("crmchat-message")
    expect(messages.last).to_contain_text("Shalom!")

    # Right to left: the visitor's own bubble sits on the left, the agent's on the right.
    box = panel.bounding_box()
    mine = messages.filter(has_text="שלום").locator(".bubble").bounding_box()
    theirs = messages.last.locator(".bubble").bounding_box()
    assert mine["x"] - box["x"] < 30, (mine, box)
    assert box["x"] + box["width"] - (theirs["x"] + theirs["width"]) < 30, (theirs, box)


def test_a_page_in_arabic_shows_the_arabic_texts_right_to_left_to_a_browser_without_them(
    service: Any, visitor_in: Callable[[str], Any], agent_console: Callable[..., Any]
) -> None:
    set_design(service, SALES_WIDGET_ID, translations={"ar": ARABIC})
    agent_console("Sam Sales")
    visitor = visitor_in("fr-FR")  # no French translation: the page's lang decides

    def arabic_page(route: Any) -> None:
        page = route.fetch()
        html = page.text().replace('<html lang="en">', '<html lang="ar" dir="rtl">')
        route.fulfill(response=page, body=html)

    visitor.route(f"{service.url}/demo/", arabic_page)
    visitor.goto(f"{service.url}/demo/")
    launcher = visitor.get_by_test_id("crmchat-launcher")
    expect(launcher).to_have_attribute("aria-label", ARABIC["open"])
    launcher.click()
    expect(visitor.get_by_test_id("crmchat-title")).to_have_text(ARABIC["title"])
    expect(visitor.get_by_test_id("crmchat-start")).to_have_text(ARABIC["start_button"])
    expect(visitor.get_by_label(ARABIC["field.firstname"])).to_be_visible()
    assert panel_direction(visitor) == "rtl"
    # A label's words start at the right edge of its field, as Arabic reads.
    words = visitor.get_by_text(ARABIC["field.firstname"]).evaluate(
        """(label) => { const range = document.createRange(); range.selectNodeContents(label);
          const r = range.getBoundingClientRect(); return { x: r.x, width: r.width }; }"""
    )
    field = visitor.get_by_label(ARABIC["field.firstname"]).bounding_box()
    assert abs((words["x"] + words["width"]) - (field["x"] + field["width"])) < 2, (words, field)
    assert words["x"] > field["x"] + field["width"] / 2


def test_a_browser_language_without_a_translation_gets_the_design_as_written(
    service: Any, visitor_in: Callable[[str], Any], agent_console: Callable[..., Any]
) -> None:
    set_design(service, SALES_WIDGET_ID, translations={"de": GERMAN, "ar": ARABIC})
    agent_console("Sam Sales")
    german = visitor_in("de-AT")  # "de-at" is not designed: its language "de" is
    german.goto(f"{service.url}/demo/")
    german.get_by_test_id("crmchat-launcher").click()
    expect(german.get_by_test_id("crmchat-title")).to_have_text(GERMAN["title"])
    expect(german.get_by_test_id("crmchat-start")).to_have_text(GERMAN["start_button"])
    # What the German table lacks keeps the design's text; the layout stays left to right.
    launcher = german.get_by_test_id("crmchat-launcher")
    expect(launcher).to_have_attribute("aria-label", "Minimize chat")
    assert panel_direction(german) == "ltr"

    japanese = visitor_in("ja-JP")
    japanese.goto(f"{service.url}/demo/")
    japanese.get_by_test_id("crmchat-launcher").click()
    expect(japanese.get_by_test_id("crmchat-title")).to_have_text("Questions before you buy?")
    assert panel_direction(japanese) == "ltr"


def test_the_designer_translates_the_widget_and_its_preview_shows_the_translation(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    languages = designer.get_by_role("group", name="Languages")
    expect(languages.get_by_label("Language of the texts above (e.g. en)")).to_have_value("en")
    languages.get_by_label("Add a translation").fill("x<y")
    languages.get_by_role("button", name="Add language").click()
    expect(languages.get_by_role("alert")).to_contain_text("A language tag is like")
    languages.get_by_label("Add a translation").fill("AR")
    languages.get_by_role("button", name="Add language").click()
    expect(languages.get_by_label("Translation shown")).to_have_value("ar")
    # One box per text: the design's own (by their current wording), the fields' labels and
    # the widget's built-in texts (as the preview's widget.js has them).
    languages.get_by_label("Questions before you buy?", exact=True).fill(ARABIC["title"])
    languages.get_by_label("First name", exact=True).fill(ARABIC["field.firstname"])
    languages.get_by_label("Type a message…", exact=True).fill(ARABIC["placeholder"])
    # The queue line's texts, and a text of the part loaded later (extras.js) too.
    queue_wait = "You are number {position} in the queue, about {minutes} min."
    languages.get_by_label(queue_wait, exact=True).fill("أنت رقم {position}، حوالي {minutes} د.")
    languages.get_by_label("The file is larger than {kb} KB.", exact=True).fill(
        "الملف أكبر من {kb} ك.ب."
    )

    preview = designer.frame_locator("#preview")
    expect(preview.get_by_test_id("crmchat-title")).to_have_text(ARABIC["title"])
    expect(preview.get_by_label(ARABIC["field.firstname"])).to_be_visible()
    direction = preview.get_by_test_id("crmchat-panel").evaluate(
        "(p) => getComputedStyle(p).direction"
    )
    assert direction == "rtl"

    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    client = admin_client(services_of(service.app).standin)
    row = client.retrieve("crmchat_widgets", SALES_WIDGET_ID, select=["crmchat_design"])
    saved = json.loads(row["crmchat_design"])
    assert saved["language"] == "en"
    assert saved["translations"] == {
        "ar": {
            "title": ARABIC["title"],
            "field.firstname": ARABIC["field.firstname"],
            "placeholder": ARABIC["placeholder"],
            "queueWait": "أنت رقم {position}، حوالي {minutes} د.",
            "fileSize": "الملف أكبر من {kb} ك.ب.",
        }
    }
