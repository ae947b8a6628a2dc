"""The channel tables in the embedded Dataverse (as imported from solution/): a channel
account's credentials are secured columns, and a person's platform id links to a contact
once per account (the alternate key makes the link an upsert)."""

from __future__ import annotations

from test_emulator_app import Api
from test_emulator_column_security import _profile_id, _user

from connector.dataverse_local import DataverseApp
from connector.dataverse_local.users import assign_field_security_profile
from connector.solution.model import Schema

MESSENGER = 100000000
CREDENTIALS = (
    "crmchat_accesstoken",
    "crmchat_appsecret",
    "crmchat_verifytoken",
    "crmchat_authtoken",
)


def test_channel_credentials_are_secured_and_read_as_null_without_the_profile(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, admin_token: str
) -> None:
    api = Api(dataverse_url, admin_token)
    topic = api.create("crmchat_topics", {"crmchat_name": "Sales"})
    account = api.create(
        "crmchat_channelaccounts",
        {
            "crmchat_name": "Contoso on Messenger",
            "crmchat_channeltype": MESSENGER,
            "crmchat_platformid": "110000000000001",
            "crmchat_enabled": True,
            "crmchat_TopicId@odata.bind": f"/crmchat_topics({topic})",
            "crmchat_accesstoken": "EAAG-token",
            "crmchat_appsecret": "app-secret",
            "crmchat_verifytoken": "verify-me",
            "crmchat_authtoken": "viber",
        },
    )

    _, agent = _user(dataverse_app, dataverse_url, schema, "CRM Chat Agent", "ada")
    seen = agent.get(f"crmchat_channelaccounts({account})").json()
    assert seen["crmchat_name"] == "Contoso on Messenger"
    assert seen["_crmchat_topicid_value"] == topic
    assert [seen[c] for c in CREDENTIALS] == [None] * 4

    admin_id, admin = _user(dataverse_app, dataverse_url, schema, "CRM Chat Administrator", "cat")
    assert admin.get(f"crmchat_channelaccounts({account})").json()["crmchat_appsecret"] is None
    assign_field_security_profile(dataverse_app.store, admin_id, _profile_id(schema))
    full = admin.get(f"crmchat_channelaccounts({account})").json()
    assert [full[c] for c in CREDENTIALS] == ["EAAG-token", "app-secret", "verify-me", "viber"]


def test_a_platform_user_links_to_a_contact_once_per_account(
    dataverse_app: DataverseApp, dataverse_url: str, schema: Schema, admin_token: str
) -> None:
    api = Api(dataverse_url, admin_token)
    account = api.create(
        "crmchat_channelaccounts",
        {
            "crmchat_name": "Contoso",
            "crmchat_channeltype": MESSENGER,
            "crmchat_platformid": "110000000000001",
        },
    )
    contact = api.create("contacts", {"lastname": "Person", "firstname": "Pat"})
    _, agent = _user(dataverse_app, dataverse_url, schema, "CRM Chat Agent", "ada")
    key = (
        f"crmchat_platformlinks(crmchat_channelaccountid={account},crmchat_platformuserid='PSID-1')"
    )
    body = {
        "crmchat_name": "Pat",
        "crmchat_channeltype": MESSENGER,
        "crmchat_ContactId@odata.bind": f"/contacts({contact})",
        "crmchat_ChannelAccountId@odata.bind": f"/crmchat_channelaccounts({account})",
    }
    first = agent.patch(key, body)
    assert first.status_code == 204, first.text
    again = agent.patch(key, {"crmchat_name": "Pat P."})
    assert again.status_code == 204, again.text
    links = api.get("crmchat_platformlinks").json()["value"]
    assert len(links) == 1
    assert links[0]["_crmchat_contactid_value"] == contact
    assert links[0]["crmchat_name"] == "Pat P."
