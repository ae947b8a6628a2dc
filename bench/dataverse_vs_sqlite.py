"""The embedded Dataverse against raw `sqlite3` doing the same work on the same file.

For 1,000 / 10,000 / 100,000 contacts (seeded straight into SQLite), each operation runs
three ways in this one process, so the ratios come from the same run on the same
(shared) CPU:

- floor:     `sqlite3` alone running the embedded Dataverse's own statements for the
             answer (the version counter and the same INSERT, every column it writes, for
             a create; the row by primary key; the same indexed SELECT of the columns the
             answer is made of, with its ORDER BY and LIMIT, for the filter; 100 of those
             inserts in one transaction) plus turning the rows into the JSON a server must
             answer (the filter's floor of earlier rounds, which read every column, is
             printed beside it);
- embedded:  the service's own path: `DataverseClient` over the in-process transport
             (`connector/dataverse/transport.py`), as the product calls it;
- http:      the same client over loopback HTTP to `start_in_thread` (keep-alive session).

Operations: create (POST contacts), retrieve by id, filter on an indexed column
(`emailaddress1 eq '…' and statecode eq 0`, `$top=2`, what record identification sends),
and a `$batch` of 100 creates in one changeset.

Prints one line per figure (µs per operation and the ratio to the floor, by the wall clock
and by this process's CPU time, which other processes on a loaded machine do not inflate)
and, last, one JSON object with all of them.
Usage: python bench/dataverse_vs_sqlite.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from connector.crm.connection import EMBEDDED_ORIGIN
from connector.dataverse import CallableTokenProvider, DataverseClient
from connector.dataverse.odata import and_, eq
from connector.dataverse.transport import WsgiSession
from connector.dataverse_local import (
    ADMIN_USER_ID,
    create_dataverse_app,
    issue_token,
    open_store,
)
from connector.dataverse_local.server import start_in_thread
from connector.dataverse_local.store import utc_now
from connector.dataverse_local.users import ROOT_BUSINESS_UNIT_ID
from connector.solution.reader import load_schema

BATCH_SIZE = 100
ROUNDS = 5  # each figure is the median of this many timed rounds


def _seed(db: Path, rows: int) -> None:
    """`rows` contacts written straight into SQLite, shaped as the embedded one stores them."""
    connection = sqlite3.connect(db)
    now = utc_now()
    connection.executemany(
        "INSERT INTO contact (contactid, firstname, lastname, fullname, emailaddress1, "
        "statecode, statuscode, createdon, modifiedon, ownerid, ownerid__table, "
        "owninguser, owninguser__table, versionnumber) "
        "VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?, ?, 'systemuser', ?, 'systemuser', ?)",
        (
            (
                str(uuid.uuid4()),
                f"Ann{i}",
                "Smith",
                f"Ann{i} Smith",
                f"ann{i}@example.com",
                now,
                now,
                ADMIN_USER_ID,
                ADMIN_USER_ID,
                2000 + i,
            )
            for i in range(rows)
        ),
    )
    connection.commit()
    connection.close()


def _time(work: Callable[[int], object], count: int) -> tuple[float, float]:
    """Medians over ROUNDS of the µs per call of `work(i)` run `count` times: wall clock,
    and this process's CPU time (all its threads, so the HTTP server's too). On a shared
    machine the wall clock also counts the time other processes held the core; the CPU
    time counts only the work itself."""
    walls: list[float] = []
    cpus: list[float] = []
    serial = 0
    for _ in range(ROUNDS):
        started, started_cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            work(serial)
            serial += 1
        walls.append((time.perf_counter() - started) / count * 1e6)
        cpus.append((time.process_time() - started_cpu) / count * 1e6)
    return statistics.median(walls), statistics.median(cpus)


class Floor:
    """Raw sqlite3 on the same file: the statements behind each answer, and the JSON."""

    def __init__(self, db: Path) -> None:
        self.db = sqlite3.connect(db, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        # The embedded store's own durability setting (store.open_store), for the same work.
        self.db.execute("PRAGMA synchronous=NORMAL")

    def _insert(self, i: int) -> str:
        """The statements of one create: the version counter, then the very INSERT the
        embedded Dataverse runs for a contact (every column it writes, in its order)."""
        record_id = str(uuid.uuid4())
        now = utc_now()
        (version,) = self.db.execute(
            "UPDATE _meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version' "
            "RETURNING value"
        ).fetchone()
        self.db.execute(
            "INSERT INTO contact (firstname, lastname, emailaddress1, ownerid, ownerid__table, "
            "statecode, statuscode, createdon, modifiedon, createdby, createdby__table, "
            "modifiedby, modifiedby__table, owningbusinessunit, owningbusinessunit__table, "
            "owninguser, owninguser__table, owningteam, owningteam__table, fullname, "
            "contactid, versionnumber) "
            "VALUES (?, ?, ?, ?, 'systemuser', 0, 1, ?, ?, ?, 'systemuser', ?, 'systemuser', "
            "?, 'businessunit', ?, 'systemuser', NULL, NULL, ?, ?, ?)",
            (
                f"Bob{i}",
                "Floor",
                f"bob{i}@floor.test",
                ADMIN_USER_ID,
                now,
                now,
                ADMIN_USER_ID,
                ADMIN_USER_ID,
                ROOT_BUSINESS_UNIT_ID,
                ADMIN_USER_ID,
                f"Bob{i} Floor",
                record_id,
                version,
            ),
        )
        return record_id

    def create(self, i: int) -> str:
        self.db.execute("BEGIN IMMEDIATE")
        record_id = self._insert(i)
        self.db.execute("COMMIT")
        return record_id

    def retrieve(self, record_id: str) -> str:
        row = self.db.execute("SELECT * FROM contact WHERE contactid = ?", (record_id,)).fetchone()
        return json.dumps(dict(row))

    def filter(self, email: str) -> str:
        # The embedded Dataverse's own statement for this query (keyset order, one row
        # more than $top to know whether there is a next page, the columns the answer is
        # made of: the two selected and the version behind each record's ETag), then
        # the JSON of the page.
        rows = self.db.execute(
            "SELECT t.contactid, t.versionnumber, t.fullname FROM contact AS t "
            "WHERE ((t.statecode = ? AND t.emailaddress1 = ?)) "
            "ORDER BY t.contactid ASC LIMIT 3",
            (0, email),
        ).fetchall()
        value = [
            {"@odata.etag": f'W/"{row[1]}"', "contactid": row[0], "fullname": row[2]}
            for row in rows
        ]
        return json.dumps({"value": value[:2]})

    def filter_every_column(self, email: str) -> str:
        """The floor of the earlier rounds: every column read for an answer of two, as the
        embedded Dataverse did then (kept to compare with their figures)."""
        rows = self.db.execute(
            "SELECT t.* FROM contact AS t WHERE ((t.statecode = ? AND t.emailaddress1 = ?)) "
            "ORDER BY t.contactid ASC LIMIT 3",
            (0, email),
        ).fetchall()
        value = [{"contactid": row["contactid"], "fullname": row["fullname"]} for row in rows]
        return json.dumps({"value": value[:2]})

    def batch(self, i: int) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        for n in range(BATCH_SIZE):
            self._insert(i * BATCH_SIZE + n)
        self.db.execute("COMMIT")


def _client_ops(client: DataverseClient) -> dict[str, Callable[[int], object]]:
    def create(i: int) -> object:
        return client.create(
            "contacts",
            {"firstname": f"Cy{i}", "lastname": "Client", "emailaddress1": f"cy{i}@client.test"},
        )

    def batch(i: int) -> object:
        work = client.batch()
        with work.changeset():
            for n in range(BATCH_SIZE):
                work.create("contacts", {"firstname": f"Di{i}-{n}", "lastname": "Batch"})
        return work.execute()

    return {"create": create, "batch": batch}


def _measure(size: int, count: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.sqlite"
        store = open_store(db, load_schema())
        app = create_dataverse_app(store)
        _seed(db, size)
        token = issue_token(store.signing_secret, user_id=ADMIN_USER_ID, lifetime_secs=3600)
        tokens = CallableTokenProvider(lambda: token)
        embedded = DataverseClient(
            f"{EMBEDDED_ORIGIN}/api/data/v9.2/", tokens, session=WsgiSession(app)
        )
        url, stop = start_in_thread(db_path=db, app=app)
        http = DataverseClient(url, tokens, session=requests.Session())
        floor = Floor(db)
        ids = [str(r[0]) for r in floor.db.execute("SELECT contactid FROM contact LIMIT 500")]
        emails = [f"ann{(i * 7919) % size}@example.com" for i in range(500)]
        try:
            ways: dict[str, dict[str, Callable[[int], object]]] = {
                "floor": {
                    "create": floor.create,
                    "retrieve": lambda i: floor.retrieve(ids[i % len(ids)]),
                    "filter": lambda i: floor.filter(emails[i % len(emails)]),
                    "batch": floor.batch,
                },
            }
            for name, client in (("embedded", embedded), ("http", http)):
                ops = _client_ops(client)

                def retrieve(i: int, client: DataverseClient = client) -> object:
                    return client.retrieve("contacts", ids[i % len(ids)])

                def filtered(i: int, client: DataverseClient = client) -> object:
                    found = client.list(
                        "contacts",
                        select=["contactid", "fullname"],
                        filter=and_(eq("statecode", 0), eq("emailaddress1", emails[i % 500])),
                        top=2,
                    )
                    rows = list(found)
                    assert len(rows) == 1, rows
                    return rows

                ways[name] = {**ops, "retrieve": retrieve, "filter": filtered}
            for op in ("create", "retrieve", "filter", "batch"):
                n = max(2, count // BATCH_SIZE) if op == "batch" else count
                floor_us, floor_cpu = _time(ways["floor"][op], n)
                figures[f"{op}_{size}_floor_us"] = round(floor_us, 1)
                figures[f"{op}_{size}_floor_cpu_us"] = round(floor_cpu, 1)
                line = f"{op:<9} rows={size:<7} floor {floor_us:9.1f} µs (cpu {floor_cpu:9.1f})"
                if op == "filter":
                    _, star_cpu = _time(lambda i: floor.filter_every_column(emails[i % 500]), n)
                    figures[f"filter_{size}_floor_every_column_cpu_us"] = round(star_cpu, 1)
                    line += f" [every column: cpu {star_cpu:7.1f}]"
                for name in ("embedded", "http"):
                    us, cpu = _time(ways[name][op], n)
                    figures[f"{op}_{size}_{name}_us"] = round(us, 1)
                    figures[f"{op}_{size}_{name}_ratio"] = round(us / floor_us, 2)
                    figures[f"{op}_{size}_{name}_cpu_us"] = round(cpu, 1)
                    figures[f"{op}_{size}_{name}_cpu_ratio"] = round(cpu / floor_cpu, 2)
                    line += (
                        f"  {name} {us:9.1f} µs ({us / floor_us:5.1f}x;"
                        f" cpu {cpu:9.1f} µs, {cpu / floor_cpu:5.1f}x)"
                    )
                print(line, flush=True)
        finally:
            stop()
            embedded.close()
            http.close()
            store.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="contacts, comma-separated")
    parser.add_argument("--count", type=int, default=200, help="operations per timed round")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per HTTP request
    figures: dict[str, float] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        figures.update(_measure(size, args.count))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
