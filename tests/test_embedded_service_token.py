"""The service's token for its embedded Dataverse is issued once and used until it nears
its end, as MSAL's cache hands out a real one (connector/crm/connection.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import connector.dataverse_local as dataverse_local
from connector.crm import connection as connection_module
from connector.settings import Settings


def test_the_service_token_is_reused_until_it_nears_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRMCHAT_DEMO", "0")
    issued: list[str] = []
    issue = dataverse_local.issue_token

    def counting(*args: object, **kwargs: object) -> str:
        token = issue(*args, **kwargs)  # type: ignore[arg-type]
        issued.append(token)
        return token

    monkeypatch.setattr(dataverse_local, "issue_token", counting)
    # The one clock of the process (the embedded Dataverse checks expiry against it too).
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    client = connection_module.connect(Settings()).client
    assert client.who_am_i().user_id == connection_module.SERVICE_USER_ID
    client.who_am_i()
    assert len(issued) == 1
    # Still more than the renewal margin left: the same token.
    clock[0] += connection_module.SERVICE_TOKEN_LIFETIME_SECS - 400
    client.who_am_i()
    assert len(issued) == 1
    # Inside the margin: a new one.
    clock[0] += 200
    client.who_am_i()
    assert len(issued) == 2
    # A 401 makes the client invalidate it; the next request gets a new one.
    client._tokens.invalidate()
    client.who_am_i()
    assert len(issued) == 3
