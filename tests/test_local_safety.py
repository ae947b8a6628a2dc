"""The local parts: private files, the stand-in's Host and Origin checks, handed-out URLs."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from connector.app import create_app, stop_app
from connector.demo import BEA_USER_ID, SALES_WIDGET_ID


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = create_app({"data_dir": tmp_path / "data", "log_level": "WARNING"}, start=False)
    yield app
    stop_app(app)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_and_its_files_are_readable_by_the_owner_only(
    app: Flask, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert _mode(data) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    # The embedded Dataverse's database (it holds the token-signing secret) among them.
    assert data / "dataverse.sqlite" in files
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}


def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataverse.sqlite").touch(mode=0o644)
    (data / "dataverse.sqlite").chmod(0o644)
    app = create_app({"data_dir": data, "log_level": "WARNING"}, start=False)
    stop_app(app)
    assert _mode(data / "dataverse.sqlite") == 0o600


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8600", "127.0.0.1.nip.io"])
def test_the_stand_in_refuses_a_foreign_host(app: Flask, host: str) -> None:
    client = app.test_client()
    users = client.get("/app/api/users", headers={"Host": host})
    assert users.status_code == 403
    assert users.get_json()["error"]["code"] == "bad_host"
    session = client.post("/app/api/session", json={"user_id": BEA_USER_ID}, headers={"Host": host})
    assert session.status_code == 403


@pytest.mark.parametrize("host", ["localhost:8600", "127.0.0.1:8600", "[::1]:8600"])
def test_the_stand_in_answers_on_loopback_names(app: Flask, host: str) -> None:
    assert app.test_client().get("/app/api/users", headers={"Host": host}).status_code == 200


def test_a_cross_site_page_cannot_mint_a_session(app: Flask) -> None:
    client = app.test_client()
    simple = client.post(
        "/app/api/session",
        data=f'{{"user_id": "{BEA_USER_ID}"}}',
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
    )
    assert simple.status_code == 403
    assert simple.get_json()["error"]["code"] == "cross_site"
    assert "token" not in simple.get_json()
    foreign = client.post(
        "/app/api/session",
        json={"user_id": BEA_USER_ID},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    own = client.post(
        "/app/api/session", json={"user_id": BEA_USER_ID}, headers={"Origin": "http://localhost"}
    )
    assert own.status_code == 200 and own.get_json()["token"]


def test_a_forged_host_never_reaches_a_handed_out_address(app: Flask) -> None:
    client = app.test_client()
    config = client.get(f"/api/widgets/{SALES_WIDGET_ID}/config", headers={"Host": "evil.example"})
    assert config.status_code == 200
    assert config.get_json()["socket_url"] == "ws://127.0.0.1:8600/ws/visitor"
    assert "evil" not in config.get_data(as_text=True)
    local = client.get(f"/api/widgets/{SALES_WIDGET_ID}/config", headers={"Host": "localhost:8600"})
    assert local.get_json()["socket_url"] == "ws://localhost:8600/ws/visitor"


def test_a_configured_public_url_gives_the_addresses(tmp_path: Path) -> None:
    app = create_app(
        {"data_dir": tmp_path, "log_level": "WARNING", "public_url": "https://chat.example.com/"},
        start=False,
    )
    try:
        client = app.test_client()
        config = client.get(f"/api/widgets/{SALES_WIDGET_ID}/config", headers={"Host": "x.test"})
        assert config.get_json()["socket_url"] == "wss://chat.example.com/ws/visitor"
        page = client.get("/demo/", headers={"Host": "localhost"}).get_data(as_text=True)
        assert 'src="https://chat.example.com/widget/loader.js"' in page
    finally:
        stop_app(app)


def test_a_public_url_with_a_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CRMCHAT_PUBLIC_URL"):
        create_app({"data_dir": tmp_path, "public_url": "javascript:alert(1)"}, start=False)
