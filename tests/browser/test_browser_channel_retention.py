"""Issue 12, retention per messaging channel in the stand-in: an admin sets the Viber
account's Keep chats (days) on its form, and the service's retention run deletes that
account's chats (and their notes) that ended longer ago, and keeps the recent ones."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from connector.channels.model import ChannelType
from connector.channels.shared import channels_of
from connector.chat.actions.channels import channel_visitor_id
from connector.crm import tables
from connector.demo import admin_client
from connector.services import services_of


def _chat(crm: Any, account_key: str, *, ended_days_ago: int) -> str:
    chat_id = str(uuid.uuid4())
    ended = datetime.now(UTC) - timedelta(days=ended_days_ago)
    crm.create(
        tables.CHATS,
        {
            "subject": "Viber chat",
            "crmchat_visitorid": channel_visitor_id(account_key, "viber-person"),
            "actualend": ended.isoformat().replace("+00:00", "Z"),
        },
        record_id=chat_id,
    )
    crm.create(
        "annotations",
        {"subject": "photo.jpg", "objectid_crmchat_chat@odata.bind": f"/{tables.CHATS}({chat_id})"},
    )
    return chat_id


def test_an_admin_sets_a_channels_retention_and_older_chats_go(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    (viber,) = [
        a for a in channels_of(service.app).accounts.all() if a.channel is ChannelType.VIBER
    ]
    crm = admin_client(services_of(service.app).standin)
    old = _chat(crm, viber.key, ended_days_ago=31)
    recent = _chat(crm, viber.key, ended_days_ago=5)

    page = new_page()
    sign_in(page, "CRM Chat Admin")
    page.goto(f"{service.url}/app/main#record/crmchat_channelaccount/{viber.key}")
    page.get_by_label("Keep chats (days)").fill("30")
    page.get_by_test_id("save-record").click()
    # The value in the box proves nothing: wait for the stand-in to say the save is done.
    expect(page.locator(".record-form").get_by_role("status")).to_have_text("Saved.")
    row = crm.retrieve("crmchat_channelaccounts", viber.key, select=["crmchat_retentiondays"])
    assert row["crmchat_retentiondays"] == 30

    # The hourly run of this service (connector/crm/retention.py), now.
    result = service.app.extensions["crmchat.retention"].run_once()
    assert result is not None and (result.chats, result.notes) == (1, 1)
    left = {str(r["activityid"]) for r in crm.list(tables.CHATS, select=["activityid"])}
    assert recent in left and old not in left
