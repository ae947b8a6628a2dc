"""Alternate keys in the embedded Dataverse: enforced on every write, case-insensitively,
as the real platform enforces them under its default (case-insensitive) collation."""

from __future__ import annotations

from typing import Any

import requests

from connector.dataverse_local import ADMIN_USER_ID

HEADERS = {"Accept": "application/json", "OData-Version": "4.0"}


def _session(token: str) -> requests.Session:
    session = requests.Session()
    session.headers.update(HEADERS)
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _post(session: requests.Session, url: str, body: dict[str, Any]) -> requests.Response:
    return session.post(url, json=body, timeout=10)


def test_a_snippet_name_differing_only_in_case_is_refused(
    dataverse_url: str, admin_token: str
) -> None:
    api = _session(admin_token)
    first = _post(api, f"{dataverse_url}/crmchat_snippets", {"crmchat_name": "qa_unique"})
    assert first.status_code == 204, first.text
    second = _post(api, f"{dataverse_url}/crmchat_snippets", {"crmchat_name": "QA_Unique"})
    assert second.status_code == 412
    error = second.json()["error"]
    assert error["code"] == "0x80060892"
    assert "crmchat_snippet_name" in error["message"]
    names = api.get(f"{dataverse_url}/crmchat_snippets?$select=crmchat_name", timeout=10).json()
    assert [row["crmchat_name"] for row in names["value"]] == ["qa_unique"]


def test_renaming_a_snippet_onto_another_ones_name_is_refused(
    dataverse_url: str, admin_token: str
) -> None:
    api = _session(admin_token)
    _post(api, f"{dataverse_url}/crmchat_snippets", {"crmchat_name": "hello"})
    other = _post(api, f"{dataverse_url}/crmchat_snippets", {"crmchat_name": "bye"})
    location = other.headers["OData-EntityId"]
    renamed = api.patch(location, json={"crmchat_name": "HELLO"}, timeout=10)
    assert renamed.status_code == 412
    assert renamed.json()["error"]["code"] == "0x80060892"
    assert api.get(location, timeout=10).json()["crmchat_name"] == "bye"


def test_a_second_agent_profile_for_the_same_user_is_refused(
    dataverse_url: str, admin_token: str
) -> None:
    api = _session(admin_token)
    body = {
        "crmchat_name": "Ann",
        "crmchat_SystemUserId@odata.bind": f"/systemusers({ADMIN_USER_ID})",
    }
    assert _post(api, f"{dataverse_url}/crmchat_agents", body).status_code == 204
    again = _post(api, f"{dataverse_url}/crmchat_agents", {**body, "crmchat_name": "Ann 2"})
    assert again.status_code == 412
    assert again.json()["error"]["code"] == "0x80060892"
