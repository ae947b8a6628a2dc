"""No query the product sends scans a big table (docs/embedded-dataverse.md, "Indexes").

The service runs as itself (its application user, through the in-process transport) on
an embedded Dataverse holding 100,000 contacts, cases and leads; every SQL statement the
embedded Dataverse runs meanwhile is recorded and asked for its `EXPLAIN QUERY PLAN`. A
`SCAN` of one of the big tables means a query that reads every row.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chat_fakes import FakeDirectory, FakeOutbox, write_chat

from connector.app import create_app, stop_app
from connector.crm.chat_activity import FinishedChat
from connector.crm.identification import identify
from connector.crm.regarding import create_lead
from connector.crm.tickets import create_ticket
from connector.dataverse import DataverseClient
from connector.dataverse_local import store as store_module
from connector.dataverse_local.store import utc_now
from connector.services import services_of

ROWS = 100_000
BIG_TABLES = ("contact", "incident", "lead", "crmchat_chat", "activitypointer")
_ALIAS = re.compile(r'"(\w+)"\s+AS\s+(\w+)', re.IGNORECASE)


def trace_store_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement run on the connections stores open from now on, in order."""
    statements: list[str] = []
    connect = store_module._connect

    def tracing(db_path: Path) -> sqlite3.Connection:
        connection = connect(db_path)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(store_module, "_connect", tracing)
    return statements


@pytest.fixture
def recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DataverseClient, list[str], Path]]:
    statements = trace_store_statements(monkeypatch)
    app = create_app(
        {"data_dir": tmp_path, "secret_key": "s" * 40, "demo": False},
        directory=FakeDirectory(),
        outbox=FakeOutbox(),
        start=False,
    )
    db = services_of(app).settings.embedded_db
    _fill(db)
    statements.clear()
    try:
        yield services_of(app).dataverse, statements, db
    finally:
        stop_app(app)


def _fill(db: Path) -> None:
    """ROWS contacts (each with a case) and leads, written straight into SQLite."""
    connection = sqlite3.connect(db)
    now = utc_now()
    owner = "4f6b1c1e-8d0e-4d6b-9a3c-2c7c1a00c4a7"
    unit = str(connection.execute("SELECT businessunitid FROM businessunit").fetchone()[0])
    contacts = [str(uuid.uuid4()) for _ in range(ROWS)]
    connection.executemany(
        "INSERT INTO contact (contactid, firstname, lastname, fullname, emailaddress1, "
        "mobilephone, statecode, statuscode, createdon, ownerid, ownerid__table, owninguser, "
        "owninguser__table, owningbusinessunit, owningbusinessunit__table) "
        "VALUES (?, 'Ann', ?, ?, ?, ?, 0, 1, ?, ?, 'systemuser', ?, 'systemuser', ?, "
        "'businessunit')",
        (
            (cid, f"Lee{i}", f"Ann Lee{i}", f"ann{i}@x.test", f"555-{i}", now, owner, owner, unit)
            for i, cid in enumerate(contacts)
        ),
    )
    connection.executemany(
        "INSERT INTO incident (incidentid, title, customerid, customerid__table, statecode, "
        "statuscode, createdon, ownerid, ownerid__table, owninguser, owninguser__table, "
        "owningbusinessunit, owningbusinessunit__table) "
        "VALUES (?, ?, ?, 'contact', 0, 1, ?, ?, 'systemuser', ?, 'systemuser', ?, "
        "'businessunit')",
        (
            (str(uuid.uuid4()), f"Case {i}", cid, now, owner, owner, unit)
            for i, cid in enumerate(contacts)
        ),
    )
    connection.executemany(
        "INSERT INTO lead (leadid, subject, lastname, emailaddress1, statecode, statuscode, "
        "createdon, ownerid, ownerid__table, owninguser, owninguser__table, "
        "owningbusinessunit, owningbusinessunit__table) "
        "VALUES (?, 'Chat', ?, ?, 0, 1, ?, ?, 'systemuser', ?, 'systemuser', ?, 'businessunit')",
        (
            (str(uuid.uuid4()), f"L{i}", f"l{i}@x.test", now, owner, owner, unit)
            for i in range(ROWS)
        ),
    )
    connection.commit()
    connection.close()


def _scans(db: Path, statements: list[str]) -> list[tuple[str, str]]:
    """(statement, plan line) for every read of a whole big table."""
    connection = sqlite3.connect(db)
    found: list[tuple[str, str]] = []
    for sql in dict.fromkeys(statements):
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            continue
        # The plan names a table by its alias when it has one (`FROM "contact" AS t`).
        names = set(BIG_TABLES) | {
            alias for table, alias in _ALIAS.findall(sql) if table in BIG_TABLES
        }
        for row in connection.execute("EXPLAIN QUERY PLAN " + sql):
            detail = str(row[3])
            if detail.startswith("SCAN ") and detail.split()[1] in names:
                found.append((sql, detail))
    connection.close()
    return found


def test_the_products_queries_use_indexes_at_100000_rows(
    recorded: tuple[DataverseClient, list[str], Path],
) -> None:
    client, statements, db = recorded
    # Record identification by each column it searches, found and not found.
    assert identify(client, ("emailaddress1", "ann77@x.test")).case is not None
    assert identify(client, ("fullname", "Ann Lee78")).contact is not None
    assert identify(client, ("mobilephone", "555-79")).contact is not None
    assert identify(client, ("emailaddress1", "nobody@x.test")).contact is None
    # A ticket (contact + case), a lead from a chat, and the chat activity itself.
    ticket = create_ticket(
        client,
        {"name": "Bo Ticket", "email": "bo@x.test"},
        message="Help",
        topic="Sales",
        contact=None,
        contact_id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
    )
    create_lead(client, {"name": "Cy Lead", "email": "cy@x.test"}, subject="Sales")
    now = datetime.now(UTC)
    write_chat(
        client,
        FinishedChat(
            conversation_id=str(uuid.uuid4()),
            widget_id=None,
            topic_names=["Sales"],
            visitor_name="Bo",
            visitor_fields={},
            visitor_id="visitor-1",
            page="https://shop.example/",
            ip="127.0.0.1",
            started_at=now,
            accepted_at=now,
            ended_at=now,
            owner_user_id=None,
            participants=[],
            rating=None,
            transcript=[],
            regarding=ticket.case,
        ),
    )
    assert statements, "no statement was recorded"
    assert _scans(db, statements) == []
