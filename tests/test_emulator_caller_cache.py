"""Remembered callers in the embedded Dataverse: a privilege taken away takes effect on the
very next request, whichever way it was taken (the Web API, raw SQL from another process),
and whether it was held directly, through a team or through a field security profile."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_emulator_app import AGENT_ROLE, Api

from connector.dataverse_local import DataverseApp, add_user, issue_token
from connector.solution.model import Schema

SECRET = "s3cret-for-site-tokens"


@pytest.fixture
def api(dataverse_url: str, admin_token: str) -> Api:
    return Api(dataverse_url, admin_token)


def _user(app: DataverseApp, url: str, name: str, roles: list[str]) -> tuple[str, Api]:
    user_id = add_user(app.store, domain_name=f"{name}@crmchat.local", role_ids=roles)
    return user_id, Api(url, issue_token(app.store.signing_secret, user_id=user_id))


def _team(api: Api) -> str:
    units = api.get("businessunits?$select=businessunitid").json()["value"]
    unit = units[0]["businessunitid"]
    return api.create(
        "teams", {"name": "Team", "businessunitid@odata.bind": f"/businessunits({unit})"}
    )


def test_a_removed_role_is_refused_on_the_next_request(
    dataverse_app: DataverseApp, dataverse_url: str, api: Api
) -> None:
    user_id, agent = _user(dataverse_app, dataverse_url, "ria", [AGENT_ROLE])
    assert agent.get("crmchat_topics").status_code == 200
    assert agent.get("crmchat_topics").status_code == 200  # now remembered
    removed = api.delete(f"systemusers({user_id})/systemuserroles_association({AGENT_ROLE})/$ref")
    assert removed.status_code == 204, removed.text
    assert agent.get("crmchat_topics").status_code == 403


def test_leaving_a_team_drops_its_roles_on_the_next_request(
    dataverse_app: DataverseApp, dataverse_url: str, api: Api
) -> None:
    user_id, member = _user(dataverse_app, dataverse_url, "tom", [])
    team = _team(api)
    for nav, target in (
        ("teammembership_association", f"systemusers({user_id})"),
        ("teamroles_association", f"roles({AGENT_ROLE})"),
    ):
        linked = api.post(f"teams({team})/{nav}/$ref", {"@odata.id": f"{api.base}/{target}"})
        assert linked.status_code == 204, linked.text
    assert member.get("crmchat_topics").status_code == 200
    left = api.delete(f"teams({team})/teammembership_association({user_id})/$ref")
    assert left.status_code == 204, left.text
    assert member.get("crmchat_topics").status_code == 403


def test_a_removed_field_security_profile_hides_the_secret_on_the_next_request(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, api: Api
) -> None:
    admin_role = schema.role_named("CRM Chat Administrator")
    profile = next(p for p in schema.field_security_profiles if p.name == "CRM Chat Secrets")
    assert admin_role is not None
    user_id, admin = _user(dataverse_app, dataverse_url, "pia", [admin_role.id])
    widget = api.create("crmchat_widgets", {"crmchat_name": "Shop", "crmchat_secret": SECRET})
    granted = api.post(
        f"systemusers({user_id})/systemuserprofiles_association/$ref",
        {"@odata.id": f"{api.base}/fieldsecurityprofiles({profile.id})"},
    )
    assert granted.status_code == 204, granted.text
    assert admin.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] == SECRET
    removed = api.delete(
        f"systemusers({user_id})/systemuserprofiles_association({profile.id})/$ref"
    )
    assert removed.status_code == 204, removed.text
    assert admin.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] is None


def test_a_change_written_by_another_process_takes_effect_on_the_next_request(
    dataverse_app: DataverseApp, dataverse_url: str, tmp_path: Path
) -> None:
    user_id, agent = _user(dataverse_app, dataverse_url, "cli", [AGENT_ROLE])
    assert agent.get("crmchat_topics").status_code == 200
    # What `crmchat dataverse` in another process does: its own connection to the file.
    other = sqlite3.connect(tmp_path / "dataverse.db")
    with other:
        other.execute("UPDATE systemuser SET isdisabled = 1 WHERE systemuserid = ?", (user_id,))
    other.close()
    refused = agent.get("crmchat_topics")
    assert refused.status_code == 401
    assert "not a member of the organization" in refused.json()["error"]["message"]
