"""Issue 12, retention per widget set in the designer: an admin sets the Sales widget's
retention in its Privacy group and saves; the retention job (connector/crm/retention.py, on
a fake clock as in tests/test_retention.py) then deletes the Sales chats (and their notes)
that ended longer ago, and keeps the newer ones and the other widget's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from test_browser_designer import _open_designer

from connector.crm import tables
from connector.crm.retention import RetentionJob
from connector.demo import SALES_WIDGET_ID, SUPPORT_WIDGET_ID, admin_client
from connector.services import services_of

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RETENTION = "Delete chats and their notes this many days after they end (0: keep them)"


def _chat(crm: Any, widget_id: str, *, ended_days_ago: int) -> str:
    """A finished web chat of the widget, with a note (a visitor's file) on it."""
    chat_id = str(uuid.uuid4())
    ended = NOW - timedelta(days=ended_days_ago)
    crm.create(
        tables.CHATS,
        {
            "subject": "Chat",
            "actualend": ended.isoformat().replace("+00:00", "Z"),
            tables.BIND_CHAT_WIDGET: tables.bind(tables.WIDGETS, widget_id),
        },
        record_id=chat_id,
    )
    crm.create(
        "annotations",
        {"subject": "photo.jpg", "objectid_crmchat_chat@odata.bind": f"/{tables.CHATS}({chat_id})"},
    )
    return chat_id


def _chats(crm: Any) -> set[str]:
    return {str(r["activityid"]) for r in crm.list(tables.CHATS, select=["activityid"])}


def _noted(crm: Any) -> set[str]:
    return {str(r["_objectid_value"]) for r in crm.list("annotations", select=["_objectid_value"])}


def test_a_retention_set_in_the_designer_deletes_the_older_chats_of_that_widget(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    crm = admin_client(services_of(service.app).standin)
    old = _chat(crm, SALES_WIDGET_ID, ended_days_ago=31)
    newer = _chat(crm, SALES_WIDGET_ID, ended_days_ago=20)
    other_widget = _chat(crm, SUPPORT_WIDGET_ID, ended_days_ago=900)  # keeps its chats
    clock = {"now": NOW}
    job = RetentionJob(crm, clock=lambda: clock["now"])
    # Before the admin sets one, the Sales widget keeps every chat.
    result = job.run_once()
    assert result is not None and (result.chats, result.notes) == (0, 0)

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    privacy = designer.get_by_role("group", name="Privacy", exact=True)
    expect(privacy.get_by_label(RETENTION)).to_have_value("0")
    privacy.get_by_label(RETENTION).fill("30")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    # Opened again, the designer shows the saved retention.
    admin.reload()
    designer = _open_designer(admin)
    privacy = designer.get_by_role("group", name="Privacy", exact=True)
    expect(privacy.get_by_label(RETENTION)).to_have_value("30")

    result = job.run_once()
    assert result is not None and (result.chats, result.notes) == (1, 1)
    assert _chats(crm) >= {newer, other_widget} and old not in _chats(crm)
    assert old not in _noted(crm) and newer in _noted(crm)
    again = job.run_once()  # idempotent: nothing more to delete at the same moment
    assert again is not None and (again.chats, again.notes) == (0, 0)

    # Eleven days on, the newer chat has passed its 30 days too; the other widget's stays.
    clock["now"] = NOW + timedelta(days=11)
    result = job.run_once()
    assert result is not None and (result.chats, result.notes) == (1, 1)
    assert newer not in _chats(crm) and other_widget in _chats(crm)
