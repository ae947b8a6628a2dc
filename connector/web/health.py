"""Health: `/livez` (the process answers), `/readyz` (it can do its job), `/healthz`.

`/readyz` checks, in order of cost: the data folder takes a write (a probe file, fsynced),
the live state takes a write (one row committed), and Dataverse answers `WhoAmI` — asked
at most every `CRMCHAT_READYZ_DATAVERSE_SECS`, the answer cached in between, so a load
balancer probing every second costs Dataverse nothing. Any failure answers 503 with the
reasons; the first failure after a success is logged as one line (and the recovery too),
so a probe every second does not flood the log.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app

from connector.dataverse import DataverseError

__all__ = ["Readiness", "bp", "disk_problem"]

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

READINESS_KEY = "crmchat.readiness"


def disk_problem(data_dir: Path) -> str | None:
    """Why `data_dir` cannot be written, in one line; None when a probe file was written."""
    probe = data_dir / f".write-probe-{uuid.uuid4().hex}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"crmchat write probe\n" * 64)  # a little data: a full disk says so
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        return f"the data folder {data_dir} cannot be written: {error.strerror or error}"
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return None


class Readiness:
    """The checks behind `/readyz`, with the Dataverse answer cached (thread-safe)."""

    def __init__(self, app: Any, *, dataverse_secs: float) -> None:
        self._app = app
        self._dataverse_secs = dataverse_secs
        self._lock = threading.Lock()
        self._dataverse_checked = float("-inf")
        self._dataverse_problem: str | None = None
        self._was_ready = True

    def problems(self) -> dict[str, str]:
        settings = self._app.extensions["crmchat.settings"]
        problems: dict[str, str] = {}
        disk = disk_problem(settings.data_dir)
        if disk is not None:
            problems["disk"] = disk
        state = self._app.extensions["crmchat.chat"].state
        check = getattr(state, "check_writable", None)
        if check is not None:
            try:
                check()
            except sqlite3.Error as error:
                problems["live_state"] = f"the live state cannot be written: {error}"
        dataverse = self._dataverse()
        if dataverse is not None:
            problems["dataverse"] = dataverse
        self._log_change(problems)
        return problems

    def _dataverse(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._dataverse_checked < self._dataverse_secs:
                return self._dataverse_problem
            try:
                self._app.extensions["crmchat.dataverse"].who_am_i()
                self._dataverse_problem = None
            except DataverseError as error:
                self._dataverse_problem = f"Dataverse is unreachable ({error.status})"
            self._dataverse_checked = time.monotonic()
            return self._dataverse_problem

    def _log_change(self, problems: dict[str, str]) -> None:
        ready = not problems
        with self._lock:
            was_ready, self._was_ready = self._was_ready, ready
        if was_ready and not ready:
            log.error("not ready: %s", "; ".join(problems.values()))
        elif ready and not was_ready:
            log.info("ready again")


def readiness_of(app: Any) -> Readiness:
    readiness: Readiness | None = app.extensions.get(READINESS_KEY)
    if readiness is None:
        settings = app.extensions["crmchat.settings"]
        readiness = app.extensions.setdefault(
            READINESS_KEY, Readiness(app, dataverse_secs=settings.readyz_dataverse_secs)
        )
    return readiness


@bp.get("/livez")
def livez() -> dict[str, str]:
    """The process answers HTTP; no Dataverse or disk call."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, object], int]:
    problems = readiness_of(current_app).problems()
    if problems:
        return {"status": "not_ready", "problems": problems}, 503
    return {"status": "ok"}, 200


@bp.get("/healthz")
def healthz() -> tuple[dict[str, object], int]:
    settings = current_app.extensions["crmchat.settings"]
    client = current_app.extensions["crmchat.dataverse"]
    try:
        client.who_am_i()
    except DataverseError as error:
        return {"status": "degraded", "dataverse": f"unreachable ({error.status})"}, 503
    mode = "embedded" if settings.embedded else "environment"
    return {"status": "ok", "dataverse": mode}, 200
