"""Readers do not wait behind the writer, nor behind each other (docs/embedded-dataverse.md).

The store writes through one connection and reads through a pool of others (WAL), so a
request reading a record answers while another request is inside a write transaction,
or while a slow query runs, and sees only committed data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.dataverse import CallableTokenProvider, DataverseClient
from connector.dataverse.transport import WsgiSession
from connector.dataverse_local import ADMIN_USER_ID, create_dataverse_app, issue_token
from connector.dataverse_local.app import DataverseApp
from connector.dataverse_local.store import new_guid, utc_now

ORIGIN = "http://embedded-dataverse.invalid"
WAIT_SECS = 10.0
# A query that keeps SQLite busy for seconds (counting to 30 million).
SLOW_QUERY = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 30000000) "
    "SELECT count(*) FROM n"
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[DataverseApp]:
    dataverse = create_dataverse_app(tmp_path / "dv.sqlite")
    yield dataverse
    dataverse.store.close()


def _client(app: DataverseApp) -> DataverseClient:
    token = issue_token(app.store.signing_secret, user_id=ADMIN_USER_ID)
    return DataverseClient(
        f"{ORIGIN}/api/data/v9.2/",
        CallableTokenProvider(lambda: token),
        session=WsgiSession(app),
    )


def _in_thread(work: object) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)  # type: ignore[operator]
    thread.start()
    return thread, result


def test_a_read_answers_while_a_write_transaction_is_open(app: DataverseApp) -> None:
    client = _client(app)
    ann = client.create("contacts", {"firstname": "Ann", "lastname": "Reader"})
    inside = threading.Event()
    release = threading.Event()
    pending = new_guid()
    contact = app.store.schema.tables["contact"]

    def write() -> None:
        with app.store.transaction():
            app.store.insert(
                contact,
                {"contactid": pending, "lastname": "Pending", "createdon": utc_now()},
            )
            inside.set()
            release.wait(WAIT_SECS)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert inside.wait(WAIT_SECS)
    try:
        reader, found = _in_thread(lambda: client.retrieve("contacts", ann)["lastname"])
        listing, names = _in_thread(
            lambda: [row["lastname"] for row in client.list("contacts", select=["lastname"])]
        )
        reader.join(WAIT_SECS)
        listing.join(WAIT_SECS)
        # Both answered while the write was still open, and neither saw it.
        assert writer.is_alive()
        assert found == ["Reader"]
        assert names == [["Reader"]]
    finally:
        release.set()
        writer.join(WAIT_SECS)
    assert client.retrieve("contacts", pending)["lastname"] == "Pending"


def test_a_slow_query_does_not_hold_up_other_requests(app: DataverseApp) -> None:
    client = _client(app)
    ann = client.create("contacts", {"firstname": "Ann", "lastname": "Quick"})
    slow, counted = _in_thread(lambda: app.store.query(SLOW_QUERY)[0][0])
    quick, found = _in_thread(lambda: client.retrieve("contacts", ann)["lastname"])
    quick.join(WAIT_SECS)
    assert found == ["Quick"]
    assert slow.is_alive(), "the slow query ended first: it did not prove anything"
    slow.join(60)
    assert counted == [30000000]
