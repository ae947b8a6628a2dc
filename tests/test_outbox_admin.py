"""Nothing lost quietly: parked chat activities are shown to admins and can be written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_crm_chat_activity import finished_chat

from connector.app import create_app, stop_app
from connector.cli import main
from connector.crm import tables
from connector.crm.chat_activity import CHAT_ACTIVITY_KIND, chat_activity_id
from connector.crm.regarding import create_contact
from connector.dataverse_local import ADMIN_USER_ID
from connector.demo import admin_client

Handshake = Callable[[FlaskClient, Flask, str], dict[str, str]]


def _park_a_chat_whose_contact_was_deleted(app: Flask) -> str:
    admin = admin_client(app.extensions["crmchat.standin"])
    contact = create_contact(admin, {"firstname": "Gone", "lastname": "Away"})
    admin.delete(tables.CONTACTS, contact.id)
    chat = finished_chat(regarding=contact)
    outbox = app.extensions["crmchat.outbox"]
    outbox.enqueue(CHAT_ACTIVITY_KIND, chat.conversation_id, chat.to_dict())
    outbox.run_due()
    assert [item["key"] for item in outbox.parked()] == [chat.conversation_id]
    return chat.conversation_id


def test_parked_writes_are_counted_on_the_settings_api(
    tmp_path: Path, handshake_headers: Handshake
) -> None:
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    try:
        client = app.test_client()
        admin = handshake_headers(client, app, ADMIN_USER_ID)
        assert client.get("/api/admin/settings", headers=admin).get_json()["parked_writes"] == 0
        _park_a_chat_whose_contact_was_deleted(app)
        assert client.get("/api/admin/settings", headers=admin).get_json()["parked_writes"] == 1
    finally:
        stop_app(app)


def test_the_cli_lists_retries_and_writes_a_parked_chat_without_its_regarding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRMCHAT_DATA_DIR", str(tmp_path))
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    try:
        key = _park_a_chat_whose_contact_was_deleted(app)
    finally:
        stop_app(app)

    assert main(["outbox", "list"]) == 0
    listed = capsys.readouterr().out
    assert "0 waiting, 1 parked" in listed and key in listed

    assert main(["outbox", "retry", key]) == 1  # the contact is still gone
    assert "parked again" in capsys.readouterr().err

    assert main(["outbox", "retry", key, "--without-regarding"]) == 0
    assert f"{key} written" in capsys.readouterr().out
    assert main(["outbox", "list"]) == 0
    assert "0 parked" in capsys.readouterr().out

    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    try:
        admin = admin_client(app.extensions["crmchat.standin"])
        secret = (tmp_path / "service.key").read_text().strip().encode()
        row = admin.retrieve(tables.CHATS, chat_activity_id(key, secret))
        assert row["crmchat_transcript"].startswith("[10:02:11] Ann Lee: hello")
        assert row["_regardingobjectid_value"] is None
    finally:
        stop_app(app)


def test_the_cli_drops_a_parked_item_only_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRMCHAT_DATA_DIR", str(tmp_path))
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    try:
        key = _park_a_chat_whose_contact_was_deleted(app)
    finally:
        stop_app(app)
    assert main(["outbox", "drop", "no-such-key"]) == 2
    assert main(["outbox", "drop", key]) == 0
    capsys.readouterr()
    main(["outbox", "list"])
    assert key not in capsys.readouterr().out
