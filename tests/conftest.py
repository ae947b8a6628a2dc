"""Shared fixtures: the embedded Dataverse in-process and on a real port.

- `schema`: the solution's schema (`load_schema()`), loaded once per session.
- `dataverse_app`: a fresh `DataverseApp` (WSGI) over a SQLite file in `tmp_path`,
  seeded with the root business unit, the roles and the administrator.
- `dataverse_url`: that app served by a threaded werkzeug server on 127.0.0.1 (a free
  port); yields the Web API root, e.g. `http://127.0.0.1:50123/api/data/v9.2`.
- `admin_token`: a bearer token for the administrator (`admin@crmchat.local`).
- `token_for`: `token_for(user_id)` -> a bearer token for any system user id.
- `make_handshake`: `make_handshake(client, app, user_id)` -> the `{"handshake_id",
  "nonce"}` of a handshake row the user created in a `create_app` app's Dataverse.
- `handshake_headers`: `handshake_headers(client, app, user_id)` -> bearer headers for
  the service API, from such a handshake redeemed at `/api/auth/handshake`.
- `source`: `(solution_dir, webresources_dir)`, a private copy a test may break.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.dataverse_local import (
    ADMIN_USER_ID,
    DataverseApp,
    create_dataverse_app,
    issue_token,
    open_store,
    start_in_thread,
)
from connector.services import services_of
from connector.solution.model import Schema
from connector.solution.paths import SOLUTION_DIR, WEBRESOURCES_DIR
from connector.solution.reader import load_schema


@pytest.fixture(scope="session")
def schema() -> Schema:
    """The solution's tables, relationships and roles plus the standard tables."""
    return load_schema()


@pytest.fixture
def dataverse_app(tmp_path: Path, schema: Schema) -> Iterator[DataverseApp]:
    """The embedded Dataverse as an in-process WSGI app on a fresh SQLite file."""
    app = create_dataverse_app(tmp_path / "dataverse.db", schema=schema)
    yield app
    app.store.close()


@pytest.fixture
def dataverse_url(dataverse_app: DataverseApp, tmp_path: Path) -> Iterator[str]:
    """`dataverse_app` on a real threaded HTTP server; yields the Web API root URL."""
    url, stop = start_in_thread(db_path=tmp_path / "dataverse.db", app=dataverse_app)
    yield url
    stop()


@pytest.fixture
def token_for(dataverse_app: DataverseApp) -> Callable[[str], str]:
    """A function giving a bearer token the app accepts for a system user id."""

    def issue(user_id: str) -> str:
        return issue_token(dataverse_app.store.signing_secret, user_id=user_id)

    return issue


@pytest.fixture
def admin_token(token_for: Callable[[str], str]) -> str:
    """A bearer token for the seeded administrator (System Administrator role)."""
    return token_for(ADMIN_USER_ID)


Handshake = Callable[[FlaskClient, Flask, str], dict[str, str]]


def _make_handshake(client: FlaskClient, app: Flask, user_id: str) -> dict[str, str]:
    # What the browser does: create the row with the user's own token, exactly as
    # `Xrm.WebApi.createRecord` does inside a model-driven app.
    store = open_store(services_of(app).settings.embedded_db, load_schema())
    try:
        token = issue_token(store.signing_secret, user_id=user_id)
    finally:
        store.close()
    nonce = secrets.token_urlsafe(24)
    created = client.post(
        "/api/data/v9.2/crmchat_handshakes",
        json={"crmchat_name": nonce},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 204, created.get_data(as_text=True)
    handshake_id = created.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    return {"handshake_id": handshake_id, "nonce": nonce}


def _handshake_headers(client: FlaskClient, app: Flask, user_id: str) -> dict[str, str]:
    body = _make_handshake(client, app, user_id)
    answer = client.post("/api/auth/handshake", json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return {"Authorization": f"Bearer {answer.get_json()['token']}"}


@pytest.fixture
def make_handshake() -> Handshake:
    """`make_handshake(client, app, user_id)`: a handshake row created as that user."""
    return _make_handshake


@pytest.fixture
def handshake_headers() -> Handshake:
    """`handshake_headers(client, app, user_id)`: service API headers via a handshake."""
    return _handshake_headers


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of solution/ and webresources/ that a test may break."""
    solution_dir = tmp_path / "solution"
    webresources_dir = tmp_path / "webresources"
    shutil.copytree(SOLUTION_DIR, solution_dir)
    shutil.copytree(WEBRESOURCES_DIR, webresources_dir)
    return solution_dir, webresources_dir


# A real redis-server per test that asks for one (tests/redis_fixture.py).
from redis_fixture import (  # noqa: E402, F401
    live_spec,
    live_state,
    persistent_redis,
    redis_client,
    redis_server,
    redis_url,
)

# A real SMTP server per test that asks for one (tests/smtp_fixture.py).
from smtp_fixture import smtp_server, smtp_tls_server  # noqa: E402, F401
