"""Pages opened outside the stand-in's shell: the session cookie, ClientGlobalContext.js.aspx
and the web resources at their tenant address (no browser; in Chromium:
tests/browser/test_browser_global_context.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app, stop_app
from connector.demo import BEA_USER_ID, SAM_USER_ID
from connector.web.standin_context import CLIENT_GLOBAL_CONTEXT_PATH, SESSION_COOKIE

WHO_AM_I = "/api/data/v9.2/WhoAmI"
SETTINGS_PAGE = "/WebResources/crmchat_/settings/index.html"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    yield app
    stop_app(app)


def _signed_in(app: Flask, user_id: str) -> FlaskClient:
    client = app.test_client()
    answer = client.post("/app/api/session", json={"user_id": user_id})
    assert answer.status_code == 200
    return client


def test_signing_in_sets_a_cookie_scripts_cannot_read_nor_other_sites_send(app: Flask) -> None:
    client = app.test_client()
    answer = client.post("/app/api/session", json={"user_id": SAM_USER_ID})
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


def test_the_cookie_signs_in_same_origin_web_api_calls_as_that_user(app: Flask) -> None:
    assert app.test_client().get(WHO_AM_I).status_code == 401
    client = _signed_in(app, BEA_USER_ID)
    who = client.get(WHO_AM_I, headers={"Sec-Fetch-Site": "same-origin"})
    assert who.status_code == 200
    assert who.get_json()["UserId"] == BEA_USER_ID


def test_the_cookie_does_not_sign_in_requests_from_another_site(app: Flask) -> None:
    client = _signed_in(app, BEA_USER_ID)
    assert client.get(WHO_AM_I, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 401
    forged = client.post(
        "/api/data/v9.2/crmchat_handshakes",
        json={"crmchat_name": "x" * 32},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 401


def test_an_explicit_bearer_token_wins_over_the_cookie(app: Flask) -> None:
    client = _signed_in(app, BEA_USER_ID)
    sam = app.test_client().post("/app/api/session", json={"user_id": SAM_USER_ID}).get_json()
    who = client.get(WHO_AM_I, headers={"Authorization": f"Bearer {sam['token']}"})
    assert who.get_json()["UserId"] == SAM_USER_ID


def test_client_global_context_defines_get_global_context_for_the_signed_in_user(
    app: Flask,
) -> None:
    script = _signed_in(app, SAM_USER_ID).get(CLIENT_GLOBAL_CONTEXT_PATH)
    assert script.status_code == 200
    assert script.mimetype == "text/javascript"
    assert script.headers["Cache-Control"] == "no-store"
    text = script.get_data(as_text=True)
    assert "window.GetGlobalContext = function" in text
    assert SAM_USER_ID in text and "Sam Sales" in text and BEA_USER_ID not in text


def test_client_global_context_without_a_session_is_a_json_401(app: Flask) -> None:
    answer = app.test_client().get(CLIENT_GLOBAL_CONTEXT_PATH)
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "not_signed_in"
    client = app.test_client()
    client.set_cookie(SESSION_COOKIE, "not-a-token")
    assert client.get(CLIENT_GLOBAL_CONTEXT_PATH).get_json()["error"]["code"] == "not_signed_in"


def test_signing_out_forgets_the_cookie(app: Flask) -> None:
    client = _signed_in(app, SAM_USER_ID)
    assert client.delete("/app/api/session", json={}).status_code == 204
    assert client.get(CLIENT_GLOBAL_CONTEXT_PATH).status_code == 401
    assert client.get(WHO_AM_I).status_code == 401


@pytest.mark.parametrize("page", ["settings", "reports", "channels", "console"])
def test_sitemap_pages_at_their_tenant_address_find_client_global_context(
    app: Flask, page: str
) -> None:
    address = f"/WebResources/crmchat_/{page}/index.html"
    with app.test_client().get(address) as html:
        assert html.status_code == 200
        text = html.get_data(as_text=True)
    # Microsoft's page sits at the root of the web resources folder: ../../ from crmchat_/x/.
    assert 'src="../../ClientGlobalContext.js.aspx"' in text
    assert urljoin(address, "../../ClientGlobalContext.js.aspx") == CLIENT_GLOBAL_CONTEXT_PATH


def test_the_tenant_address_serves_nothing_outside_the_web_resources(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/WebResources/crmchat_/../../pyproject.toml").status_code == 404
    assert client.get("/WebResources/crmchat_/nothing.html").status_code == 404
