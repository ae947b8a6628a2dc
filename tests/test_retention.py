"""Retention: chats (and their notes) older than their widget's retention are deleted from
the embedded Dataverse, with a fake clock; runs are idempotent; the CLI runs one now."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.chat.actions.channels import channel_visitor_id
from connector.cli import main
from connector.crm import tables
from connector.crm.retention import RetentionJob, purge_expired_chats
from connector.dataverse_local import DataverseApp
from connector.demo import VIBER_CHANNEL_TYPE, admin_client

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def widget(client: Any, retention_days: int) -> str:
    widget_id = str(uuid.uuid4())
    design = {"privacy": {"retention_days": retention_days}}
    client.create(
        tables.WIDGETS,
        {"crmchat_name": f"keeps {retention_days}", "crmchat_design": json.dumps(design)},
        record_id=widget_id,
    )
    return widget_id


def chat(
    client: Any, widget_id: str, *, ended_days_ago: float, note: bool = False, now: datetime = NOW
) -> str:
    chat_id = str(uuid.uuid4())
    ended = now - timedelta(days=ended_days_ago)
    client.create(
        tables.CHATS,
        {
            "subject": "Chat",
            "crmchat_transcript": "[10:00:00] Ann: my card is 4242 4242 4242 4242",
            "actualend": ended.isoformat().replace("+00:00", "Z"),
            tables.BIND_CHAT_WIDGET: tables.bind(tables.WIDGETS, widget_id),
        },
        record_id=chat_id,
    )
    if note:
        client.create(
            "annotations",
            {
                "subject": "attachment",
                "notetext": "the visitor's file",
                "objectid_crmchat_chat@odata.bind": f"/{tables.CHATS}({chat_id})",
            },
        )
    return chat_id


def chat_ids(client: Any) -> set[str]:
    return {str(r["activityid"]) for r in client.list(tables.CHATS, select=["activityid"])}


def note_owners(client: Any) -> set[str]:
    rows = client.list("annotations", select=["_objectid_value"])
    return {str(r["_objectid_value"]) for r in rows}


def test_chats_past_their_widgets_retention_go_with_their_notes(
    dataverse_app: DataverseApp,
) -> None:
    client = admin_client(dataverse_app)
    month, forever = widget(client, 30), widget(client, 0)
    old = chat(client, month, ended_days_ago=31, note=True)
    recent = chat(client, month, ended_days_ago=20, note=True)
    ancient_kept = chat(client, forever, ended_days_ago=900)

    result = purge_expired_chats(client, now=NOW)
    assert (result.chats, result.notes) == (1, 1)
    assert chat_ids(client) == {recent, ancient_kept}
    assert note_owners(client) == {recent}

    # Idempotent: the same moment again deletes nothing and fails on nothing.
    again = purge_expired_chats(client, now=NOW)
    assert (again.chats, again.notes) == (0, 0)

    # Eleven days on, the recent chat has passed its 30 days too.
    later = purge_expired_chats(client, now=NOW + timedelta(days=11))
    assert (later.chats, later.notes) == (1, 1)
    assert chat_ids(client) == {ancient_kept}
    assert note_owners(client) == set()
    assert old not in chat_ids(client)


def channel_account(client: Any, retention_days: int | None) -> str:
    account_id = str(uuid.uuid4())
    fields: dict[str, Any] = {
        "crmchat_name": f"keeps {retention_days}",
        "crmchat_channeltype": VIBER_CHANNEL_TYPE,
        "crmchat_platformid": account_id[:8],
    }
    if retention_days is not None:
        fields["crmchat_retentiondays"] = retention_days
    client.create("crmchat_channelaccounts", fields, record_id=account_id)
    return account_id


def channel_chat(client: Any, account_id: str, *, ended_days_ago: float, note: bool = False) -> str:
    """A finished chat of a channel account: no widget, the person's visitor id."""
    chat_id = str(uuid.uuid4())
    client.create(
        tables.CHATS,
        {
            "subject": "Viber chat",
            "crmchat_visitorid": channel_visitor_id(account_id, "person-1"),
            "actualend": (NOW - timedelta(days=ended_days_ago)).isoformat().replace("+00:00", "Z"),
        },
        record_id=chat_id,
    )
    if note:
        client.create(
            "annotations",
            {
                "subject": "photo.jpg",
                "objectid_crmchat_chat@odata.bind": f"/{tables.CHATS}({chat_id})",
            },
        )
    return chat_id


def test_chats_past_their_channel_accounts_retention_go_with_their_notes(
    dataverse_app: DataverseApp,
) -> None:
    client = admin_client(dataverse_app)
    month, unset, forever = (channel_account(client, days) for days in (30, None, 0))
    old = channel_chat(client, month, ended_days_ago=31, note=True)
    recent = channel_chat(client, month, ended_days_ago=20)
    kept = {channel_chat(client, unset, ended_days_ago=900)}
    kept.add(channel_chat(client, forever, ended_days_ago=900))
    # A web chat of a widget without retention is not the account's.
    kept.add(chat(client, widget(client, 0), ended_days_ago=900))

    result = purge_expired_chats(client, now=NOW)
    assert (result.chats, result.notes) == (1, 1)
    assert chat_ids(client) == {recent} | kept
    assert old not in chat_ids(client) and note_owners(client) == set()
    again = purge_expired_chats(client, now=NOW)  # idempotent
    assert (again.chats, again.notes) == (0, 0)
    later = purge_expired_chats(client, now=NOW + timedelta(days=11))
    assert later.chats == 1
    assert chat_ids(client) == kept


def test_the_job_runs_on_its_clock_and_survives_a_dataverse_failure(
    dataverse_app: DataverseApp,
) -> None:
    client = admin_client(dataverse_app)
    month = widget(client, 30)
    chat(client, month, ended_days_ago=45)
    clock = {"now": NOW - timedelta(days=30)}  # the chat ended only 15 days before
    job = RetentionJob(client, clock=lambda: clock["now"])
    result = job.run_once()
    assert result is not None and result.chats == 0
    clock["now"] = NOW
    result = job.run_once()
    assert result is not None and result.chats == 1

    class Down:
        def list(self, *args: Any, **kwargs: Any) -> Any:
            from connector.dataverse.errors import ServiceUnavailable

            raise ServiceUnavailable(503, "", "down", "", retry_after=None)

    assert RetentionJob(Down()).run_once() is None  # logged; the next hour tries again


def test_the_cli_purges_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from connector.crm.connection import connect
    from connector.settings import Settings

    monkeypatch.setenv("CRMCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRMCHAT_DEMO", "0")
    client = connect(Settings()).client
    week = widget(client, 7)
    # The CLI reads the real clock.
    kept = chat(client, week, ended_days_ago=6, now=datetime.now(UTC))
    chat(client, week, ended_days_ago=8, now=datetime.now(UTC))
    assert main(["privacy", "purge"]) == 0
    assert "deleted 1 chats and 0 notes" in capsys.readouterr().out
    assert kept in chat_ids(connect(Settings()).client)
