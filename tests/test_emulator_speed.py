"""What the embedded Dataverse's speed work must not change, and the work it must not do.

A `$batch` changeset stays all or nothing although the single statements inside it no
longer open savepoints of their own; a filter kept by its shape still answers with the
literals of each call, however they are quoted or escaped. The statement and parse counts
are what `bench/dataverse_vs_sqlite.py` times (`docs/performance.md`).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_emulator_indexes import trace_store_statements

from connector.crm.connection import EMBEDDED_ORIGIN
from connector.dataverse import CallableTokenProvider, DataverseClient, DataverseError
from connector.dataverse.odata import and_, eq
from connector.dataverse.transport import WsgiSession
from connector.dataverse_local import ADMIN_USER_ID, create_dataverse_app, issue_token, open_store
from connector.dataverse_local import filters as filters_module
from connector.solution.model import Schema


@pytest.fixture
def traced(
    tmp_path: Path, schema: Schema, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DataverseClient, list[str], Path]]:
    """A client over the in-process transport, and every SQL statement the store runs."""
    statements = trace_store_statements(monkeypatch)
    db = tmp_path / "speed.sqlite"
    store = open_store(db, schema)
    app = create_dataverse_app(store)
    token = issue_token(store.signing_secret, user_id=ADMIN_USER_ID, lifetime_secs=3600)
    client = DataverseClient(
        f"{EMBEDDED_ORIGIN}/api/data/v9.2/",
        CallableTokenProvider(lambda: token),
        session=WsgiSession(app),
    )
    try:
        yield client, statements, db
    finally:
        client.close()
        store.close()


def _contacts(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        (count,) = connection.execute("SELECT COUNT(*) FROM contact").fetchone()
    return int(count)


def test_a_failing_50th_create_in_a_changeset_leaves_none(
    traced: tuple[DataverseClient, list[str], Path],
) -> None:
    client, _, db = traced
    before = _contacts(db)
    work = client.batch()
    with work.changeset():
        for n in range(100):
            # The 50th names a column contacts do not have: Dataverse refuses the create.
            body = {"firstname": f"Di{n}", "lastname": "Batch"}
            if n == 49:
                body = {"nosuchcolumn": "x"}
            work.create("contacts", body)
    with pytest.raises(DataverseError) as failed:
        work.execute()
    assert failed.value.status == 400
    assert _contacts(db) == before
    # And a whole changeset that succeeds keeps every row.
    work = client.batch()
    with work.changeset():
        for n in range(100):
            work.create("contacts", {"firstname": f"Ed{n}", "lastname": "Batch"})
    work.execute()
    assert _contacts(db) == before + 100


def test_a_create_in_a_changeset_opens_one_savepoint(
    traced: tuple[DataverseClient, list[str], Path],
) -> None:
    client, statements, _ = traced
    work = client.batch()
    with work.changeset():
        for n in range(10):
            work.create("contacts", {"firstname": f"Fi{n}", "lastname": "Batch"})
    statements.clear()
    work.execute()
    savepoints = [s for s in statements if s.startswith("SAVEPOINT")]
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE"))]
    # Each create is one savepoint (the request, undone alone if it fails) around its two
    # writes (the version counter, the row); the changeset is the transaction itself.
    assert len(savepoints) == 10, statements
    assert len(writes) == 20, statements
    assert statements.count("BEGIN IMMEDIATE") == 1


def test_a_lone_create_is_one_transaction_without_savepoints(
    traced: tuple[DataverseClient, list[str], Path],
) -> None:
    client, statements, _ = traced
    statements.clear()
    client.create("contacts", {"firstname": "Gil", "lastname": "Lone"})
    assert not [s for s in statements if s.startswith(("SAVEPOINT", "RELEASE"))], statements
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1


def test_a_filter_of_the_same_shape_is_parsed_once_and_answers_each_literal(
    traced: tuple[DataverseClient, list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, _ = traced
    names = ["Ann", "O'Brien", "50% off", "under_score", "back\\slash", "''"]
    for name in names:
        client.create(
            "contacts",
            {"firstname": name, "lastname": "Shape", "emailaddress1": f"{name}@example.com"},
        )
    # Other tests may have compiled these shapes already (the schema is shared).
    monkeypatch.setattr(filters_module, "_cache", OrderedDict())
    parses: list[str] = []
    parse = filters_module._Parser.parse

    def counting(self: filters_module._Parser) -> object:
        parses.append(self.text)
        return parse(self)

    monkeypatch.setattr(filters_module._Parser, "parse", counting)
    for name in names:
        found = client.list(
            "contacts",
            select=["firstname"],
            filter=and_(eq("statecode", 0), eq("emailaddress1", f"{name}@example.com")),
            top=2,
        )
        assert [row["firstname"] for row in found] == [name]
        # contains() escapes % and _ in the literal of each call, not of the first one.
        found = client.list(
            "contacts", select=["firstname"], filter=f"contains(firstname, {_quoted(name)})"
        )
        assert [row["firstname"] for row in found] == [name]
        found = client.list(
            "contacts", select=["firstname"], filter=f"firstname eq toupper({_quoted(name)})"
        )
        assert [row["firstname"] for row in found] == [name]
    # One parse per shape, whatever the literals.
    assert len(parses) == 3, parses


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def test_a_selected_page_reads_only_its_columns_and_still_pages_by_unselected_ones(
    traced: tuple[DataverseClient, list[str], Path],
) -> None:
    client, statements, _ = traced
    for n in range(5):
        client.create("contacts", {"firstname": f"Page{n}", "lastname": f"L{4 - n}"})
    statements.clear()
    found = client.list(
        "contacts",
        select=["firstname", "_ownerid_value"],
        filter="startswith(firstname, 'Page')",
        orderby="lastname desc",
        page_size=2,
    )
    rows = list(found)
    # Sorted by a column the answer does not carry, across three pages (two next links).
    assert [row["firstname"] for row in rows] == [f"Page{n}" for n in range(5)]
    assert all(row["_ownerid_value"] == ADMIN_USER_ID for row in rows)
    assert all(row["@odata.etag"].startswith('W/"') and row["contactid"] for row in rows)
    assert "lastname" not in rows[0]
    pages = [s for s in statements if 'FROM "contact" AS t' in s and "LIMIT" in s]
    assert len(pages) == 3
    assert all(not s.startswith("SELECT t.*") for s in pages), pages
