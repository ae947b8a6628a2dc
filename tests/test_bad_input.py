"""Bad input gets a clear 4xx JSON error with a stable code, never a 500."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app, stop_app
from connector.chat.frames import FrameError, parse_visitor_frame
from connector.dataverse import DataverseError
from connector.dataverse_local import ADMIN_USER_ID
from connector.demo import SALES_WIDGET_ID

Handshake = Callable[[FlaskClient, Flask, str], dict[str, str]]
DEEP = "[" * 100_000 + "]" * 100_000
UNKNOWN = "5f1c2a4e-0000-4000-8000-00000000abcd"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {"data_dir": tmp_path, "secret_key": "k" * 40, "demo": True, "log_level": "WARNING"},
        start=False,
    )
    yield app
    stop_app(app)


@pytest.fixture
def admin(app: Flask, handshake_headers: Handshake) -> dict[str, str]:
    return handshake_headers(app.test_client(), app, ADMIN_USER_ID)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/api/auth/handshake"),
        ("PUT", "/api/admin/settings/region"),
        ("PUT", "/api/admin/secret-word"),
        ("POST", "/api/support/secret-word/check"),
        ("PUT", f"/api/admin/widgets/{SALES_WIDGET_ID}"),
        ("POST", "/app/api/session"),
        ("POST", "/api/data/v9.2/contacts"),
        ("POST", "/api/data/v9.2/crmchat_snippets"),
    ],
)
def test_deeply_nested_json_is_a_400(
    app: Flask,
    admin: dict[str, str],
    method: str,
    url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = dict(admin)
    if url.startswith("/api/data/"):
        headers = {"Authorization": f"Bearer {_dataverse_token(app)}"}
    with caplog.at_level(logging.ERROR):
        answer = app.test_client().open(
            url, method=method, data=DEEP, headers={**headers, "Content-Type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _dataverse_token(app: Flask) -> str:
    from connector.dataverse_local import issue_token

    store = app.extensions["crmchat.standin"].store
    return issue_token(store.signing_secret, user_id=ADMIN_USER_ID)


def test_a_deeply_nested_frame_is_refused_as_invalid_input() -> None:
    with pytest.raises(FrameError) as refused:
        parse_visitor_frame('{"type":"page","page":' + "[" * 2000 + "]" * 2000 + "}")
    assert refused.value.code == "invalid_input"
    with pytest.raises(FrameError):
        parse_visitor_frame(DEEP)


@pytest.mark.parametrize(
    "url",
    [
        f"/api/admin/topics/{UNKNOWN}/related",
        f"/api/admin/agents/{UNKNOWN}/related",
        f"/api/admin/widgets/{UNKNOWN}",
        "/api/admin/topics/not-a-guid/related",
    ],
)
def test_unknown_ids_on_admin_endpoints_are_404(
    app: Flask, admin: dict[str, str], url: str
) -> None:
    answer = app.test_client().get(url, headers=admin)
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("headers", [{"X-Big": "a" * 70_000}, {f"X-H{i}": "v" for i in range(120)}])
def test_oversized_headers_get_the_json_error_shape(
    dataverse_url: str, headers: dict[str, str]
) -> None:
    # The embedded Dataverse on a real port: http.server itself refuses these headers.
    parts = urlsplit(dataverse_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.request("GET", parts.path + "/WhoAmI", headers=headers)
    answer = connection.getresponse()
    assert answer.status == 431
    assert answer.getheader("Content-Type") == "application/json"
    error = json.loads(answer.read())["error"]
    assert error["code"] == "request_header_fields_too_large"
    connection.close()


def test_an_unexpected_dataverse_error_is_one_mapped_502(
    app: Flask, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.extensions["crmchat.dataverse"]

    def refuse(*args: object, **kwargs: object) -> None:
        raise DataverseError(409, "0x80040237", "A record with matching key values exists.", "u")

    monkeypatch.setattr(client, "list_related", refuse)
    answer = app.test_client().get(f"/api/admin/topics/{UNKNOWN}/related", headers=admin)
    assert answer.status_code == 502
    error = answer.get_json()["error"]
    assert error["code"] == "crm_error"
    assert "matching key values" in error["message"]
    assert error["crm_code"] == "0x80040237"
