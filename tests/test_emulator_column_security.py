"""Column security in the embedded Dataverse: secured columns read as null without a field
security profile, and writes to them are refused with the real error codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_emulator_app import Api, error_of

from connector.dataverse_local import DataverseApp, add_user, issue_token
from connector.dataverse_local.column_security import CREATE_MISSING_CODE, UPDATE_MISSING_CODE
from connector.dataverse_local.users import assign_field_security_profile
from connector.solution.model import Schema
from connector.solution.reader import SchemaError, load_schema

SECRET = "s3cret-for-site-tokens"
WORD_HASH = "scrypt$16384$8$1$c2FsdA$aGFzaA"


def _profile_id(schema: Schema) -> str:
    profile = next(p for p in schema.field_security_profiles if p.name == "CRM Chat Secrets")
    return profile.id


def _user(app: DataverseApp, url: str, schema: Schema, role: str, name: str) -> tuple[str, Api]:
    found = schema.role_named(role)
    assert found is not None
    user_id = add_user(
        app.store, domain_name=f"{name}@crmchat.local", first_name=name, role_ids=[found.id]
    )
    return user_id, Api(url, issue_token(app.store.signing_secret, user_id=user_id))


@pytest.fixture
def widget(api: Api) -> str:
    return api.create("crmchat_widgets", {"crmchat_name": "Shop", "crmchat_secret": SECRET})


@pytest.fixture
def api(dataverse_url: str, admin_token: str) -> Api:
    return Api(dataverse_url, admin_token)


def test_an_agent_reads_the_widget_secret_as_null_everywhere(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, api: Api, widget: str
) -> None:
    agent_id, agent = _user(dataverse_app, dataverse_url, schema, "CRM Chat Agent", "ada")
    one = agent.get(f"crmchat_widgets({widget})?$select=crmchat_name,crmchat_secret")
    assert one.status_code == 200
    assert one.json()["crmchat_name"] == "Shop" and one.json()["crmchat_secret"] is None
    listed = agent.get("crmchat_widgets").json()["value"]
    assert [w["crmchat_secret"] for w in listed] == [None]
    assert agent.get(f"crmchat_widgets({widget})/crmchat_secret").status_code == 204
    # Agents cannot create chats (only the service writes them): one the agent owns.
    own = api.create(
        "crmchat_chats",
        {
            "subject": "c",
            "ownerid@odata.bind": f"/systemusers({agent_id})",
            "crmchat_WidgetId@odata.bind": f"/crmchat_widgets({widget})",
        },
    )
    expanded = agent.get(f"crmchat_chats({own})?$expand=crmchat_WidgetId")
    assert expanded.status_code == 200, expanded.text
    assert expanded.json()["crmchat_WidgetId"]["crmchat_secret"] is None
    # The System Administrator still reads it: the stored value is untouched.
    assert api.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] == SECRET


def test_a_crm_chat_admin_needs_the_profile_to_read_and_write_secrets(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, api: Api, widget: str
) -> None:
    user_id, admin = _user(dataverse_app, dataverse_url, schema, "CRM Chat Administrator", "cat")
    assert admin.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] is None

    refused = admin.patch(f"crmchat_widgets({widget})", {"crmchat_secret": "mine"})
    assert refused.status_code == 403
    assert error_of(refused)[0] == UPDATE_MISSING_CODE
    created = admin.post("crmchat_widgets", {"crmchat_name": "X", "crmchat_secret": "mine"})
    assert created.status_code == 403
    assert error_of(created)[0] == CREATE_MISSING_CODE
    # Nothing was written by the refused calls; other columns stay writable.
    assert [w["crmchat_name"] for w in api.get("crmchat_widgets").json()["value"]] == ["Shop"]
    assert api.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] == SECRET
    renamed = admin.patch(f"crmchat_widgets({widget})", {"crmchat_name": "Shop 2"})
    assert renamed.status_code == 204

    assign_field_security_profile(dataverse_app.store, user_id, _profile_id(schema))
    assert admin.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] == SECRET
    assert admin.patch(f"crmchat_widgets({widget})", {"crmchat_secret": "new"}).status_code == 204
    assert api.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] == "new"


def test_a_non_admin_cannot_read_the_secret_word_hash(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, api: Api
) -> None:
    settings = api.create(
        "crmchat_settingses", {"crmchat_name": "Organisation", "crmchat_secretwordhash": WORD_HASH}
    )
    path = f"crmchat_settingses({settings})"
    for role, name in (("CRM Chat Agent", "ada"), ("CRM Chat App User", "uma")):
        _, user = _user(dataverse_app, dataverse_url, schema, role, name)
        body = user.get(path).json()
        assert body["crmchat_secretwordhash"] is None, role
        assert body["crmchat_name"] == "Organisation"
    assert api.get(path).json()["crmchat_secretwordhash"] == WORD_HASH


def test_a_team_member_holds_the_teams_profile(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, api: Api, widget: str
) -> None:
    user_id, admin = _user(dataverse_app, dataverse_url, schema, "CRM Chat Administrator", "tia")
    units = api.get("businessunits?$select=businessunitid").json()["value"]
    team = api.create(
        "teams",
        {
            "name": "Secret keepers",
            "businessunitid@odata.bind": f"/businessunits({units[0]['businessunitid']})",
        },
    )
    member = api.post(
        f"teams({team})/teammembership_association/$ref",
        {"@odata.id": f"{dataverse_url}/systemusers({user_id})"},
    )
    assert member.status_code == 204, member.text
    granted = api.post(
        f"teams({team})/teamprofiles_association/$ref",
        {"@odata.id": f"{dataverse_url}/fieldsecurityprofiles({_profile_id(schema)})"},
    )
    assert granted.status_code == 204, granted.text
    assert admin.get(f"crmchat_widgets({widget})").json()["crmchat_secret"] == SECRET


def test_an_import_refuses_a_profile_on_a_column_that_is_not_secured(tmp_path: Path) -> None:
    from connector.solution.paths import CUSTOMIZATIONS_XML

    text = CUSTOMIZATIONS_XML.read_text(encoding="utf-8")
    broken = text.replace(
        "<AttributeName>crmchat_secret</AttributeName>",
        "<AttributeName>crmchat_name</AttributeName>",
    )
    path = tmp_path / "customizations.xml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(SchemaError, match="is not secured"):
        load_schema(path)
