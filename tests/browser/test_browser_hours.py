"""Operating hours in real Chromium: set in the designer, a holiday closes the Sales widget
and its page offers the message form (a case) instead; open again, a waiting visitor reads
the expected reply time."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect
from test_browser_designer import _open_designer

from connector.demo import SALES_WIDGET_ID, admin_client
from connector.services import services_of

REPLY = "We usually reply within 5 minutes."


def saved_hours(service: Any) -> dict[str, Any]:
    client = admin_client(services_of(service.app).standin)
    row = client.retrieve("crmchat_widgets", SALES_WIDGET_ID, select=["crmchat_design"])
    hours: dict[str, Any] = json.loads(row["crmchat_design"])["operating_hours"]
    return hours


def fresh_page_load(page: Any, url: str) -> None:
    # The config may be kept 30 s by the browser: drop the cache instead of sleeping.
    page.context.new_cdp_session(page).send("Network.clearBrowserCache")
    page.goto(url)


def test_a_holiday_closes_the_widget_to_a_message_form_and_open_it_shows_the_reply_time(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")  # an agent is Available: only the hours close it
    today = datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    hours = designer.get_by_role("group", name="Operating hours")
    hours.get_by_label("Use operating hours (outside them no chat starts)").check()
    hours.get_by_label("Time zone (IANA, e.g. Europe/Paris)").fill("Europe/Paris")
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        hours.get_by_label(day, exact=True).fill("00:00-12:00, 12:00-24:00")
    holidays = hours.get_by_label("Holidays (closed all day), one date a line")
    holidays.fill(today)
    hours.get_by_label("Outside the hours show").select_option("message")
    hours.get_by_label("Expected reply time, shown while a visitor waits").fill(REPLY)
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    saved = saved_hours(service)
    assert saved["enabled"] is True and saved["time_zone"] == "Europe/Paris"
    assert saved["holidays"] == [today] and saved["offline"] == "message"
    assert saved["weekly"]["sun"] == ["00:00-12:00", "12:00-24:00"]

    # Today is a holiday: the page offers a message, which becomes a case.
    visitor = new_page()
    fresh_page_load(visitor, f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    form = visitor.get_by_test_id("crmchat-ticket-form")
    expect(form).to_be_visible()
    form.get_by_test_id("crmchat-ticket-field-firstname").fill("Hal")
    form.get_by_test_id("crmchat-ticket-field-lastname").fill("Iday")
    form.get_by_test_id("crmchat-ticket-field-email").fill("hal.iday@example.com")
    form.get_by_test_id("crmchat-ticket-message").fill("Are you open tomorrow?")
    form.get_by_test_id("crmchat-ticket-submit").click()
    expect(visitor.get_by_test_id("crmchat-ticket-done")).to_contain_text("CAS-")
    client = admin_client(services_of(service.app).standin)
    cases = list(client.list("incidents", select=["description"]))
    assert any("Are you open tomorrow?" in (c["description"] or "") for c in cases)
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)

    # The holiday removed: open again, and the waiting visitor reads the reply time.
    holidays.fill("")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    other = new_page()
    fresh_page_load(other, f"{service.url}/demo/")
    other.get_by_test_id("crmchat-launcher").click()
    other.get_by_test_id("crmchat-field-firstname").fill("Ann")
    other.get_by_test_id("crmchat-field-email").fill("ann@example.com")
    other.get_by_test_id("crmchat-start").click()
    expect(other.get_by_test_id("crmchat-status")).to_have_text("Waiting for an agent… " + REPLY)
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(1)


def test_on_a_holiday_the_hidden_mode_shows_no_widget_until_open_again(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    agent_console("Sam Sales")  # an agent is Available: only the hours close it
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    hours = designer.get_by_role("group", name="Operating hours")
    hours.get_by_label("Use operating hours (outside them no chat starts)").check()
    hours.get_by_label("Time zone (IANA, e.g. Europe/Paris)").fill("Asia/Tokyo")
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        hours.get_by_label(day, exact=True).fill("00:00-24:00")
    holidays = hours.get_by_label("Holidays (closed all day), one date a line")
    holidays.fill(today)  # today in Tokyo, whatever the machine's own zone
    hours.get_by_label("Outside the hours show").select_option("hidden")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    assert saved_hours(service)["offline"] == "hidden"

    # Closed, and the admin chose "nothing": the widget is on the page but shows no button.
    visitor = new_page()
    fresh_page_load(visitor, f"{service.url}/demo/")
    expect(visitor.get_by_test_id("crmchat-root")).to_be_attached()
    launcher = visitor.get_by_test_id("crmchat-launcher")
    visitor.wait_for_timeout(500)
    expect(launcher).to_be_hidden()
    expect(visitor.get_by_test_id("crmchat-ticket-form")).to_be_hidden()

    # The holiday removed: the page already open shows the button without a reload.
    holidays.fill("")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    expect(launcher).to_be_visible()
    launcher.click()
    expect(visitor.get_by_test_id("crmchat-prechat")).to_be_visible()
