"""Several service processes on one embedded Dataverse: `crmchat dataverse serve` alone
over HTTPS, each `crmchat serve` reaching it with CRMCHAT_DATAVERSE_TOKEN (two machines
simulated on one)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from service_process import ServiceProcess, chat_through, free_port

from connector.crm.connection import SERVICE_USER_DOMAIN
from connector.dataverse_local.tls import ensure_self_signed_cert
from connector.demo import SALES_WIDGET_ID


@pytest.fixture
def shared_dataverse(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(https URL, CA file, db file) of the embedded Dataverse served alone, demo seeded."""
    cert, key = ensure_self_signed_cert(tmp_path / "tls")
    db = tmp_path / "shared" / "dataverse.sqlite"
    db.parent.mkdir()
    port = free_port()
    cli = [sys.executable, "-m", "connector.cli", "dataverse"]
    # Its request lines (werkzeug's, on stderr) let a test count what reached Dataverse.
    with (db.parent / "requests.log").open("wb") as requests_log:
        server = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--db", str(db), "--demo"]
            + ["--tls-cert", str(cert), "--tls-key", str(key)],
            stdout=subprocess.DEVNULL,
            stderr=requests_log,
        )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "crmchat dataverse serve exited"
            try:
                requests.get(url + "/api/data/v9.2/", verify=str(cert), timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "the embedded Dataverse did not start"
                time.sleep(0.2)
        yield url, cert, db
    finally:
        server.terminate()
        server.wait(timeout=10)


def _token(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", "dataverse", "token", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_two_service_processes_share_one_dataverse_over_https(
    shared_dataverse: tuple[str, Path, Path], tmp_path: Path
) -> None:
    url, cert, db = shared_dataverse
    token = _token(db, "--user", SERVICE_USER_DOMAIN, "--days", "30")
    assert token.returncode == 0, token.stderr
    env = {
        "CRMCHAT_DATAVERSE_URL": url,
        "CRMCHAT_DATAVERSE_TOKEN": token.stdout.strip(),
        "CRMCHAT_DATAVERSE_CA_BUNDLE": str(cert),
    }
    first = ServiceProcess(tmp_path / "one", env=env)
    second = ServiceProcess(tmp_path / "two", env=env)
    for process in (first, second):
        process.folder.mkdir()
        process.start()
    try:
        for process in (first, second):
            ready = requests.get(process.url + "/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            # Both read the shared configuration: the demo Sales widget exists for both.
            config = requests.get(f"{process.url}/api/widgets/{SALES_WIDGET_ID}/config", timeout=5)
            assert config.status_code == 200
        # And a chat runs on either, its CRM reads going to the shared Dataverse.
        chat = chat_through(second.url)
        assert chat["agent_saw"] == "Hello through"
        chat["agent"].close()
        chat["visitor"].close()
    finally:
        first.stop()
        second.stop()
    assert token.stdout.strip() not in first.log_text() + second.log_text()


def test_a_token_with_a_bad_lifetime_is_refused_in_one_line(
    shared_dataverse: tuple[str, Path, Path],
) -> None:
    done = _token(shared_dataverse[2], "--days", "0")
    assert done.returncode == 2 and done.stderr.strip() == "crmchat: --days must be positive"
