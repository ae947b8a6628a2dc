"""The CLI works while the service runs: two processes' writes wait for each other."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from connector.dataverse_local import open_store
from connector.solution.model import Schema


def test_a_write_after_a_read_waits_for_the_other_writer(tmp_path: Path, schema: Schema) -> None:
    service = open_store(tmp_path / "dv.sqlite", schema)
    cli = open_store(tmp_path / "dv.sqlite", schema)  # another connection, as a process has
    read_done = threading.Event()
    failures: list[BaseException] = []

    def cli_command() -> None:
        try:
            with cli.transaction() as db:
                db.execute("SELECT value FROM _meta WHERE key = 'organization_id'").fetchone()
                read_done.set()
                time.sleep(0.3)  # meanwhile the service writes
                db.execute("INSERT INTO _meta (key, value) VALUES ('cli', 'region set')")
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)
            read_done.set()

    thread = threading.Thread(target=cli_command)
    thread.start()
    read_done.wait(5)
    with service.transaction() as db:
        db.execute("INSERT INTO _meta (key, value) VALUES ('service', 'a chat')")
    thread.join(10)
    assert failures == []  # not "database is locked"
    rows = dict(service.connection.execute("SELECT key, value FROM _meta").fetchall())
    assert rows["cli"] == "region set" and rows["service"] == "a chat"
    service.close()
    cli.close()
