"""/livez and /readyz: what each checks, the cached Dataverse probe, a read-only or full data
folder (real tmpfs mounts), and start-up on a read-only data folder."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from chat_fakes import FakeDirectory, FakeOutbox
from flask import Flask
from redis_fixture import redis_server  # noqa: F401 - a fixture
from service_process import ServiceProcess

from connector.app import create_app, stop_app
from connector.dataverse import DataverseClient, StaticTokenProvider
from connector.redis_server import RedisServer
from connector.services import services_of

# Nothing listens on port 1: every request fails to connect.
DEAD_DATAVERSE = "http://127.0.0.1:1/api/data/v9.2/"


def _dead_client() -> DataverseClient:
    return DataverseClient(
        DEAD_DATAVERSE, StaticTokenProvider("t"), timeout_secs=1, sleep=lambda _s: None
    )


def _app(data_dir: Path, **overrides: object) -> Flask:
    return create_app(
        {"data_dir": data_dir, "secret_key": "h" * 40, "demo": False, **overrides},
        directory=FakeDirectory(),
        outbox=FakeOutbox(),
        start=False,
    )


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs at tmp_path/mnt (needs root: skipped otherwise)."""
    where = tmp_path / "mnt"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_livez_answers_without_asking_dataverse(tmp_path: Path) -> None:
    app = _app(tmp_path / "data")
    try:
        services_of(app).dataverse = _dead_client()
        client = app.test_client()
        assert client.get("/livez").status_code == 200
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert set(answer.get_json()["problems"]) == {"dataverse"}
    finally:
        stop_app(app)


def test_readyz_asks_dataverse_at_most_every_n_seconds(tmp_path: Path) -> None:
    app = _app(tmp_path / "data", readyz_dataverse_secs=3600)
    try:
        client = app.test_client()
        assert client.get("/readyz").get_json() == {"status": "ok"}
        services_of(app).dataverse = _dead_client()  # Dataverse goes away
        assert client.get("/readyz").status_code == 200  # the cached answer
    finally:
        stop_app(app)
    uncached = _app(tmp_path / "data2", readyz_dataverse_secs=0)
    try:
        client = uncached.test_client()
        assert client.get("/readyz").status_code == 200
        services_of(uncached).dataverse = _dead_client()
        assert client.get("/readyz").status_code == 503
    finally:
        stop_app(uncached)


def test_a_read_only_data_folder_fails_readyz_with_one_log_line(
    mount: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(mount / "data")
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        # The folder turns read-only under the running service (files it already holds
        # open stay writable, as when an admin remounts it): new writes there fail.
        data = str(mount / "data")
        subprocess.run(["mount", "--bind", data, data], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", data], check=True)
        with caplog.at_level(logging.INFO, logger="connector.web.health"):
            for _ in range(3):
                answer = client.get("/readyz")
                assert answer.status_code == 503
        problems = answer.get_json()["problems"]
        assert "Read-only file system" in problems["disk"]
        lines = [r.getMessage() for r in caplog.records if r.name == "connector.web.health"]
        assert len(lines) == 1 and lines[0].startswith("not ready: the data folder")
        subprocess.run(["umount", data], check=True)
        with caplog.at_level(logging.INFO, logger="connector.web.health"):
            assert client.get("/readyz").status_code == 200
        assert "ready again" in caplog.text
    finally:
        subprocess.run(["umount", str(mount / "data")], check=False, capture_output=True)
        stop_app(app)


def test_a_full_disk_fails_readyz(mount: Path) -> None:
    app = _app(mount / "data")
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        with (mount / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass  # the disk is full
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "No space left on device" in answer.get_json()["problems"]["disk"]
        (mount / "filler").unlink()
        assert client.get("/readyz").status_code == 200
    finally:
        stop_app(app)


def test_start_up_on_a_read_only_data_folder_is_one_line_not_a_traceback(
    mount: Path, tmp_path: Path
) -> None:
    (mount / "data").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    process = ServiceProcess(tmp_path, env={"CRMCHAT_DATA_DIR": str(mount / "data")})
    done = subprocess.run(
        process.command(), env=process.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"crmchat: the data folder {mount / 'data'} cannot be written: Read-only file system"
    ]


def test_readyz_fails_with_one_log_line_while_redis_is_away(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811 - the fixture imported above
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app(tmp_path / "data", redis_url=redis_server.url)
    try:
        client = app.test_client()
        assert client.get("/readyz").get_json() == {"status": "ok"}
        redis_server.kill()  # SIGKILL: Redis is gone under the running service
        with caplog.at_level(logging.INFO, logger="connector.web.health"):
            for _ in range(3):
                answer = client.get("/readyz")
                assert answer.status_code == 503
        problems = answer.get_json()["problems"]
        assert set(problems) == {"redis"}
        where = f"127.0.0.1:{redis_server.port}"
        assert problems["redis"].startswith(f"Redis at {where} is unreachable")
        lines = [r.getMessage() for r in caplog.records if r.name == "connector.web.health"]
        assert len(lines) == 1 and lines[0].startswith("not ready: Redis at 127.0.0.1:")
        assert not any(r.exc_info for r in caplog.records if r.name == "connector.web.health")
        redis_server.start()  # back on the same port
        with caplog.at_level(logging.INFO, logger="connector.web.health"):
            assert client.get("/readyz").get_json() == {"status": "ok"}
        assert "ready again" in caplog.text
    finally:
        stop_app(app)


def test_readyz_fails_when_redis_refuses_writes(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    app = _app(tmp_path / "data", redis_url=redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        # As a replica does after a failover: it answers PING but refuses writes.
        admin.replicaof("127.0.0.1", "1")
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert (
            "refuses writes (You can't write against a read only replica"
            in (answer.get_json()["problems"]["redis"])
        )
        admin.replicaof("NO", "ONE")
        assert client.get("/readyz").status_code == 200
    finally:
        admin.close()
        stop_app(app)
