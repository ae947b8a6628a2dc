"""Microsoft's official Python SDK (`powerplatform-dataverse-client`) against the embedded
Dataverse over HTTPS: what the SDK returns and what ends up in the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from PowerPlatform.Dataverse.client import DataverseClient

from connector.dataverse_local import (
    ADMIN_USER_ID,
    API_ROOT,
    DataverseApp,
    create_dataverse_app,
    issue_token,
    start_in_thread,
)
from connector.dataverse_local.tls import ensure_self_signed_cert
from connector.solution.model import Schema

TOKEN_EXPIRY = 4102444800  # 2100-01-01, Unix seconds


@dataclass
class LocalCredential:
    """A TokenCredential handing out one token signed by the emulator's secret."""

    token: str

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, TOKEN_EXPIRY)


@dataclass
class Emulator:
    app: DataverseApp
    client: DataverseClient

    def row(self, table: str, record_id: str) -> dict[str, Any] | None:
        return self.app.store.fetch(self.app.schema.tables[table], record_id)

    def count(self, table: str) -> int:
        return int(self.app.store.query(f'SELECT COUNT(*) FROM "{table}"')[0][0])


@pytest.fixture
def emulator(tmp_path: Path, schema: Schema, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    cert, key = ensure_self_signed_cert(tmp_path / "tls")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    app = create_dataverse_app(tmp_path / "sdk.db", schema=schema)
    url, stop = start_in_thread(db_path=tmp_path / "sdk.db", app=app, tls_cert=cert, tls_key=key)
    assert url.startswith("https://localhost:")
    token = issue_token(app.store.signing_secret, user_id=ADMIN_USER_ID)
    client = DataverseClient(url.removesuffix(API_ROOT), LocalCredential(token))
    try:
        yield Emulator(app, client)
    finally:
        client.close()
        stop()
        app.store.close()


def test_sdk_crud_on_a_standard_table(emulator: Emulator) -> None:
    client = emulator.client
    account_id = client.records.create("account", {"name": "Contoso O'Neil"})
    stored = emulator.row("account", account_id)
    assert stored is not None and stored["name"] == "Contoso O'Neil"
    assert stored["createdby"] == ADMIN_USER_ID

    record = client.records.retrieve("account", account_id, select=["name"])
    assert record is not None and record["name"] == "Contoso O'Neil"

    client.records.create("account", {"name": "Somebody Else"})
    found = client.records.list(
        "account", filter="name eq 'Contoso O''Neil'", select=["name"], page_size=1
    )
    assert [r["name"] for r in found] == ["Contoso O'Neil"]
    every = client.records.list("account", select=["name"], page_size=1)
    assert sorted(r["name"] for r in every) == ["Contoso O'Neil", "Somebody Else"]

    client.records.update("account", account_id, {"telephone1": "555-0100"})
    stored = emulator.row("account", account_id)
    assert stored is not None and stored["telephone1"] == "555-0100"

    client.records.delete("account", account_id)
    assert emulator.row("account", account_id) is None
    assert client.records.retrieve("account", account_id) is None


def test_sdk_crud_on_a_crmchat_table_with_a_picklist_label(emulator: Emulator) -> None:
    client = emulator.client
    chat_id = client.records.create(
        "crmchat_chat",
        {"subject": "Chat with Ann", "prioritycode": "High", "actualdurationminutes": 12},
    )
    stored = emulator.row("crmchat_chat", chat_id)
    assert stored is not None
    assert stored["prioritycode"] == 2  # the SDK turned the label into the option value
    assert stored["ownerid"] == ADMIN_USER_ID
    record = client.records.retrieve("crmchat_chat", chat_id, select=["subject", "prioritycode"])
    assert record is not None and record["subject"] == "Chat with Ann"
    client.records.update("crmchat_chat", chat_id, {"statecode": 1, "statuscode": 2})
    stored = emulator.row("crmchat_chat", chat_id)
    assert stored is not None and (stored["statecode"], stored["statuscode"]) == (1, 2)


def test_sdk_upsert_by_alternate_key_creates_then_updates(emulator: Emulator) -> None:
    client = emulator.client
    item = {"alternate_key": {"name": "Upserted"}, "record": {"telephone1": "1"}}
    client.records.upsert("account", [item])
    client.records.upsert(
        "account", [{"alternate_key": {"name": "Upserted"}, "record": {"telephone1": "2"}}]
    )
    rows = emulator.app.store.query('SELECT name, telephone1 FROM "account"')
    assert [(r["name"], r["telephone1"]) for r in rows] == [("Upserted", "2")]


def test_sdk_batch_with_a_changeset(emulator: Emulator) -> None:
    client = emulator.client
    existing = client.records.create("account", {"name": "Existing"})
    batch = client.batch.new()
    with batch.changeset() as changeset:
        ref = changeset.records.create("account", {"name": "In changeset"})
        changeset.records.update("account", ref, {"telephone1": "555-0199"})
        changeset.records.create(
            "contact", {"lastname": "Batch", "parentcustomerid_account@odata.bind": ref}
        )
    batch.records.update("account", existing, {"name": "Existing, renamed"})
    result = batch.execute()
    assert all(200 <= r.status_code < 300 for r in result.responses), result.responses
    rows = emulator.app.store.query('SELECT accountid, name, telephone1 FROM "account"')
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"In changeset", "Existing, renamed"}
    assert by_name["In changeset"]["telephone1"] == "555-0199"
    contact = emulator.app.store.query('SELECT parentcustomerid FROM "contact"')
    assert contact[0]["parentcustomerid"] == by_name["In changeset"]["accountid"]


def test_sdk_batch_changeset_failure_leaves_nothing_behind(emulator: Emulator) -> None:
    client = emulator.client
    batch = client.batch.new()
    with batch.changeset() as changeset:
        changeset.records.create("account", {"name": "Rolled back"})
        changeset.records.create("account", {"name": "x" * 500})  # longer than 160
    result = batch.execute()
    assert any(r.status_code == 400 for r in result.responses)
    assert emulator.count("account") == 0
