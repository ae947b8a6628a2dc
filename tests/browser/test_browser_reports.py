"""The Reports page in the app stand-in: plots and CSV of seeded chats, read through $apply."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from connector.crm import tables
from connector.demo import (
    BEA_AGENT_ID,
    SALES_TOPIC_ID,
    SAM_AGENT_ID,
    SUPPORT_TOPIC_ID,
    admin_client,
)
from connector.services import services_of


def _seed_chat(
    client: Any,
    *,
    day: datetime,
    topic: str,
    agent: str,
    wait: int,
    duration: int,
    rating: int,
    closed: bool = True,
) -> None:
    chat_id = client.create(
        tables.CHATS,
        {
            "subject": "Seeded chat",
            "actualstart": day.strftime("%Y-%m-%dT10:00:00Z"),
            "crmchat_chatday": day.strftime("%Y-%m-%d"),
            tables.BIND_CHAT_TOPIC: tables.bind(tables.TOPICS, topic),
            tables.BIND_CHAT_AGENT: tables.bind(tables.AGENTS, agent),
            "crmchat_waitseconds": wait,
            "crmchat_durationseconds": duration,
            "crmchat_rating": rating,
        },
        record_id=str(uuid.uuid4()),
    )
    if closed:
        client.update(tables.CHATS, chat_id, {"statecode": 1, "statuscode": 2})


def test_the_reports_page_plots_seeded_chats_and_exports_them_as_csv(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None], tmp_path: Path
) -> None:
    client = admin_client(services_of(service.app).standin)
    today = datetime.now(UTC)
    yesterday, before = today - timedelta(days=1), today - timedelta(days=2)
    seed = dict(topic=SALES_TOPIC_ID, agent=SAM_AGENT_ID)
    _seed_chat(client, day=yesterday, wait=30, duration=300, rating=5, **seed)
    _seed_chat(client, day=yesterday, wait=10, duration=100, rating=3, **seed)
    _seed_chat(
        client,
        day=before,
        topic=SUPPORT_TOPIC_ID,
        agent=BEA_AGENT_ID,
        wait=60,
        duration=600,
        rating=4,
    )
    # Still open: not a finished chat, so no report counts it.
    _seed_chat(client, day=yesterday, wait=1, duration=1, rating=1, closed=False, **seed)
    sam = client.retrieve(tables.AGENTS, SAM_AGENT_ID, select=["crmchat_name"])["crmchat_name"]

    page = new_page()
    sign_in(page, "CRM Chat Admin")
    page.get_by_role("navigation", name="App navigation").get_by_role(
        "link", name="Reports", exact=True
    ).click()
    reports = page.frame_locator('iframe[data-subarea="sub_reports"]')
    expect(reports.locator("#status")).to_contain_text("3 finished chats from")

    per_day = reports.locator('svg[data-plot="per-day"]')
    expect(per_day.locator(f'rect[data-label="{yesterday:%Y-%m-%d}"]')).to_have_attribute(
        "data-value", "2"
    )
    expect(per_day.locator(f'rect[data-label="{before:%Y-%m-%d}"]')).to_have_attribute(
        "data-value", "1"
    )
    topic = reports.locator("#plots-topic")
    expect(topic.locator('svg[data-plot="chats"] rect[data-label="Sales"]')).to_have_attribute(
        "data-value", "2"
    )
    expect(topic.locator('svg[data-plot="rating"] rect[data-label="Sales"]')).to_have_attribute(
        "data-value", "4"
    )
    expect(topic.locator('svg[data-plot="chats"] rect[data-label="Support"]')).to_have_attribute(
        "data-value", "1"
    )
    agent = reports.locator("#plots-agent")
    expect(agent.locator(f'svg[data-plot="wait"] rect[data-label="{sam}"]')).to_have_attribute(
        "data-value", "20"
    )
    expect(agent.locator('svg[data-plot="duration"]')).to_contain_text("200 s")

    # A narrower range leaves out the older chat.
    reports.locator("#from").fill(f"{yesterday:%Y-%m-%d}")
    reports.get_by_role("button", name="Show").click()
    expect(reports.locator("#status")).to_contain_text("2 finished chats from")
    expect(topic.locator('svg[data-plot="chats"] rect[data-label="Support"]')).to_have_count(0)

    with page.expect_download() as download_info:
        reports.get_by_role("button", name="Export CSV").click()
    saved = tmp_path / "report.csv"
    download_info.value.save_as(saved)
    lines = saved.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "section,name,chats,avg_wait_seconds,avg_duration_seconds,avg_rating"
    assert f"day,{yesterday:%Y-%m-%d},2,,," in lines
    assert "topic,Sales,2,20,200,4" in lines
    assert f"agent,{sam},2,20,200,4" in lines
