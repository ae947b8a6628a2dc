"""The embedded Dataverse end to end over HTTP: the Web API wire format, errors, identity,
privileges, service protection, durability and concurrency."""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client
from werkzeug.wrappers import Response

from connector.dataverse_local import (
    ADMIN_USER_ID,
    DataverseApp,
    add_user,
    create_dataverse_app,
    find_user,
    issue_token,
    open_store,
    start_in_thread,
)
from connector.dataverse_local import app as app_module
from connector.dataverse_local.throttle import ServiceProtection
from connector.solution.model import Column, ColumnType, Schema, Table

GUID = re.compile(r"\(([0-9a-f-]{36})\)$")
AGENT_ROLE = "1b4cab3e-ee0e-4444-bff6-f4bc4674394e"  # "CRM Chat Agent" in the solution


class Api:
    """A tiny HTTP helper bound to one Web API root and one bearer token."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.headers["OData-Version"] = "4.0"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base}/{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url(path), timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create(self, entity_set: str, body: dict[str, Any]) -> str:
        reply = self.post(entity_set, body)
        assert reply.status_code == 204, reply.text
        match = GUID.search(reply.headers["OData-EntityId"])
        assert match is not None
        return match.group(1)


def error_of(reply: requests.Response) -> tuple[str, str]:
    body = reply.json()
    return body["error"]["code"], body["error"]["message"]


@pytest.fixture
def api(dataverse_url: str, admin_token: str) -> Api:
    return Api(dataverse_url, admin_token)


@pytest.fixture
def agent(dataverse_app: DataverseApp, dataverse_url: str) -> tuple[str, Api]:
    """A user holding only the solution's "CRM Chat Agent" role (Basic depth on chats)."""
    user_id = add_user(
        dataverse_app.store,
        domain_name="agent@crmchat.local",
        first_name="Ada",
        last_name="Agent",
        role_ids=[AGENT_ROLE],
    )
    token = issue_token(dataverse_app.store.signing_secret, user_id=user_id)
    return user_id, Api(dataverse_url, token)


# -- create / retrieve -------------------------------------------------------------------


def test_create_answers_204_with_the_entity_id_and_the_record_reads_back(
    api: Api, dataverse_url: str
) -> None:
    reply = api.post(
        "contacts", {"firstname": "Ann", "lastname": "Lee", "emailaddress1": "a@x.com"}
    )
    assert reply.status_code == 204
    assert reply.headers["OData-Version"] == "4.0"
    assert reply.headers["OData-EntityId"].startswith(f"{dataverse_url}/contacts(")
    contact_id = GUID.search(reply.headers["OData-EntityId"]).group(1)  # type: ignore[union-attr]

    got = api.get(f"contacts({contact_id})?$select=firstname,lastname,fullname")
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "application/json; odata.metadata=minimal"
    body = got.json()
    assert body["@odata.context"] == (
        f"{dataverse_url}/$metadata#contacts(firstname,lastname,fullname)/$entity"
    )
    assert body["contactid"] == contact_id
    assert body["fullname"] == "Ann Lee"
    assert re.fullmatch(r'W/"\d+"', body["@odata.etag"])
    assert "emailaddress1" not in body


def test_create_sets_server_columns_from_the_caller(api: Api) -> None:
    contact_id = api.create("contacts", {"lastname": "Server"})
    body = api.get(f"contacts({contact_id})").json()
    assert body["_createdby_value"] == ADMIN_USER_ID
    assert body["_modifiedby_value"] == ADMIN_USER_ID
    assert body["_ownerid_value"] == ADMIN_USER_ID
    assert body["_owningbusinessunit_value"]
    assert body["statecode"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["createdon"])


def test_create_with_return_representation_answers_201_with_the_selected_body(api: Api) -> None:
    reply = api.post(
        "accounts?$select=name",
        {"name": "Fabrikam"},
        headers={"Prefer": "return=representation"},
    )
    assert reply.status_code == 201
    assert reply.headers["Preference-Applied"] == "return=representation"
    body = reply.json()
    assert body["name"] == "Fabrikam"
    assert "telephone1" not in body
    assert "@odata.etag" in body and "accountid" in body


def test_a_missing_record_is_a_dataverse_404(api: Api) -> None:
    missing = str(uuid.uuid4())
    reply = api.get(f"contacts({missing})")
    assert reply.status_code == 404
    assert error_of(reply) == ("0x80040217", f"contact With Id = {missing} Does Not Exist")


def test_a_client_chosen_id_is_kept(api: Api) -> None:
    chosen = str(uuid.uuid4())
    assert api.create("accounts", {"accountid": chosen, "name": "Chosen"}) == chosen


# -- update, upsert, delete, concurrency --------------------------------------------------


def test_patch_with_if_match_star_updates_and_404s_when_missing(api: Api) -> None:
    account_id = api.create("accounts", {"name": "Before"})
    reply = api.patch(f"accounts({account_id})", {"name": "After"}, headers={"If-Match": "*"})
    assert reply.status_code == 204
    assert api.get(f"accounts({account_id})").json()["name"] == "After"
    missing = str(uuid.uuid4())
    reply = api.patch(f"accounts({missing})", {"name": "X"}, headers={"If-Match": "*"})
    assert reply.status_code == 404
    assert api.get(f"accounts({missing})").status_code == 404


def test_patch_without_if_match_is_an_upsert(api: Api) -> None:
    chosen = str(uuid.uuid4())
    first = api.patch(f"accounts({chosen})", {"name": "Created by upsert"})
    assert first.status_code == 204
    second = api.patch(f"accounts({chosen})", {"name": "Updated by upsert"})
    assert second.status_code == 204
    assert api.get(f"accounts({chosen})").json()["name"] == "Updated by upsert"


def test_if_none_match_star_only_creates(api: Api) -> None:
    chosen = str(uuid.uuid4())
    headers = {"If-None-Match": "*"}
    assert api.patch(f"accounts({chosen})", {"name": "One"}, headers=headers).status_code == 204
    again = api.patch(f"accounts({chosen})", {"name": "Two"}, headers=headers)
    assert again.status_code == 412
    assert error_of(again) == ("0x80040237", "A record with matching key values already exists.")
    assert api.get(f"accounts({chosen})").json()["name"] == "One"


def test_a_stale_etag_is_refused_with_412(api: Api) -> None:
    account_id = api.create("accounts", {"name": "V1"})
    etag = api.get(f"accounts({account_id})").json()["@odata.etag"]
    ok = api.patch(f"accounts({account_id})", {"name": "V2"}, headers={"If-Match": etag})
    assert ok.status_code == 204
    stale = api.patch(f"accounts({account_id})", {"name": "V3"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert error_of(stale)[0] == "0x80060882"
    assert api.get(f"accounts({account_id})").json()["name"] == "V2"


def test_patch_with_return_representation_answers_200(api: Api) -> None:
    account_id = api.create("accounts", {"name": "Rep"})
    reply = api.patch(
        f"accounts({account_id})?$select=name",
        {"name": "Rep 2"},
        headers={"If-Match": "*", "Prefer": "return=representation"},
    )
    assert reply.status_code == 200
    assert reply.json()["name"] == "Rep 2"


def test_delete_answers_204_then_404(api: Api) -> None:
    account_id = api.create("accounts", {"name": "Doomed"})
    assert api.delete(f"accounts({account_id})", headers={"If-Match": "*"}).status_code == 204
    assert api.get(f"accounts({account_id})").status_code == 404
    assert api.delete(f"accounts({account_id})").status_code == 404


def test_conditional_get_answers_304_unless_expanding_or_annotating(api: Api) -> None:
    account_id = api.create("accounts", {"name": "Cached"})
    etag = api.get(f"accounts({account_id})").json()["@odata.etag"]
    assert api.get(f"accounts({account_id})", headers={"If-None-Match": etag}).status_code == 304
    annotated = api.get(
        f"accounts({account_id})",
        headers={"If-None-Match": etag, "Prefer": 'odata.include-annotations="*"'},
    )
    assert annotated.status_code == 200
    api.patch(f"accounts({account_id})", {"name": "Changed"}, headers={"If-Match": "*"})
    assert api.get(f"accounts({account_id})", headers={"If-None-Match": etag}).status_code == 200


def test_single_property_put_get_and_delete(api: Api) -> None:
    contact_id = api.create("contacts", {"lastname": "Old", "description": "text"})
    put = api.request("PUT", f"contacts({contact_id})/lastname", json={"value": "New"})
    assert put.status_code == 204
    got = api.get(f"contacts({contact_id})/lastname")
    assert got.json()["value"] == "New"
    assert api.get(f"contacts({contact_id})/lastname/$value").text == "New"
    assert api.delete(f"contacts({contact_id})/description").status_code == 204
    assert api.get(f"contacts({contact_id})").json()["description"] is None


# -- queries ------------------------------------------------------------------------------


def test_filter_with_a_doubled_quote_orderby_top_and_count(api: Api) -> None:
    for name in ("Contoso O'Neil", "Alpha", "beta", "Gamma"):
        api.create("accounts", {"name": name})
    reply = api.get("accounts?$select=name&$filter=name eq 'contoso o''neil'")
    assert [r["name"] for r in reply.json()["value"]] == ["Contoso O'Neil"]
    ordered = api.get("accounts?$select=name&$orderby=name desc&$top=2&$count=true").json()
    assert [r["name"] for r in ordered["value"]] == ["Gamma", "Contoso O'Neil"]
    assert ordered["@odata.count"] == 4
    assert "@odata.nextLink" not in ordered
    count = api.get("accounts/$count")
    assert count.status_code == 200
    assert count.headers["Content-Type"].startswith("text/plain")
    assert count.text == "4"
    assert api.get("accounts/$count?$filter=startswith(name,'g')").text == "1"


def test_plus_in_the_query_string_is_a_space(api: Api) -> None:
    api.create("accounts", {"name": "Plus Sign"})
    reply = api.get("accounts?$select=name&$filter=name+eq+'Plus+Sign'")
    assert [r["name"] for r in reply.json()["value"]] == ["Plus Sign"]


def test_paging_follows_next_links_without_losing_or_repeating_rows(api: Api) -> None:
    names = [f"Page {i:02d}" for i in range(7)]
    for name in names:
        api.create("accounts", {"name": name})
    seen: list[str] = []
    url = "accounts?$select=name&$orderby=name&$top=1"
    first = api.get(url, headers={"Prefer": "odata.maxpagesize=3"})
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=3"
    page = first.json()
    seen += [r["name"] for r in page["value"]]
    assert len(page["value"]) == 3  # $top is ignored when a page size is given
    # A record inserted before the cursor must not shift the next page.
    api.create("accounts", {"name": "Page 00a"})
    while "@odata.nextLink" in page:
        link = page["@odata.nextLink"]
        assert link.startswith(api.base) and "%24skiptoken" not in link.split("?")[0]
        assert "$select=name" in link
        page = api.get(link, headers={"Prefer": "odata.maxpagesize=3"}).json()
        seen += [r["name"] for r in page["value"]]
    assert seen == names


def test_expand_single_and_collection_navigation(api: Api) -> None:
    account_id = api.create("accounts", {"name": "Parent"})
    for first in ("Zed", "Amy", "Bob"):
        api.create(
            "contacts",
            {
                "firstname": first,
                "lastname": "Kid",
                "parentcustomerid_account@odata.bind": f"/accounts({account_id})",
            },
        )
    contact = api.get(
        "contacts?$select=firstname&$filter=firstname eq 'Amy'"
        "&$expand=parentcustomerid_account($select=name)"
    ).json()["value"][0]
    assert contact["parentcustomerid_account"]["name"] == "Parent"
    account = api.get(
        f"accounts({account_id})?$select=name&$expand=contact_customer_accounts("
        "$select=firstname;$filter=firstname ne 'Zed';$orderby=firstname desc;$top=5)"
    ).json()
    assert [c["firstname"] for c in account["contact_customer_accounts"]] == ["Bob", "Amy"]


def test_annotations_give_formatted_values_and_lookup_names(api: Api) -> None:
    account_id = api.create("accounts", {"name": "Annotated"})
    case_id = api.create(
        "incidents",
        {
            "title": "Broken",
            "caseorigincode": 3,
            "customerid_account@odata.bind": f"accounts({account_id})",
        },
    )
    plain = api.get(f"incidents({case_id})").json()
    assert "caseorigincode@OData.Community.Display.V1.FormattedValue" not in plain
    body = api.get(
        f"incidents({case_id})", headers={"Prefer": 'odata.include-annotations="*"'}
    ).json()
    assert body["caseorigincode@OData.Community.Display.V1.FormattedValue"] == "Web"
    assert body["_customerid_value"] == account_id
    assert body["_customerid_value@OData.Community.Display.V1.FormattedValue"] == "Annotated"
    assert body["_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert (
        body["_customerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"]
        == "customerid_account"
    )


# -- binds and references -----------------------------------------------------------------


def test_bind_accepts_relative_absolute_and_null(api: Api, dataverse_url: str) -> None:
    first = api.create("accounts", {"name": "First"})
    second = api.create("accounts", {"name": "Second"})
    contact_id = api.create(
        "contacts",
        {"lastname": "Bound", "parentcustomerid_account@odata.bind": f"/accounts({first})"},
    )
    api.patch(
        f"contacts({contact_id})",
        {"parentcustomerid_account@odata.bind": f"{dataverse_url}/accounts({second})"},
        headers={"If-Match": "*"},
    )
    assert api.get(f"contacts({contact_id})").json()["_parentcustomerid_value"] == second
    api.patch(
        f"contacts({contact_id})",
        {"parentcustomerid_account@odata.bind": None},
        headers={"If-Match": "*"},
    )
    assert api.get(f"contacts({contact_id})").json()["_parentcustomerid_value"] is None
    missing = api.post(
        "contacts",
        {"lastname": "X", "parentcustomerid_account@odata.bind": f"/accounts({uuid.uuid4()})"},
    )
    assert missing.status_code == 404


def test_n_to_n_associate_and_disassociate_with_ref(api: Api, dataverse_url: str) -> None:
    agent_id = api.create(
        "crmchat_agents",
        {
            "crmchat_name": "Agent A",
            "crmchat_SystemUserId@odata.bind": f"/systemusers({ADMIN_USER_ID})",
        },
    )
    topics = [api.create("crmchat_topics", {"crmchat_name": n}) for n in ("Sales", "Support")]
    for topic in topics:
        reply = api.post(
            f"crmchat_agents({agent_id})/crmchat_agent_topic/$ref",
            {"@odata.id": f"{dataverse_url}/crmchat_topics({topic})"},
        )
        assert reply.status_code == 204

    def linked() -> list[str]:
        body = api.get(
            f"crmchat_agents({agent_id})?$expand=crmchat_agent_topic($select=crmchat_name)"
        ).json()
        return sorted(t["crmchat_name"] for t in body["crmchat_agent_topic"])

    assert linked() == ["Sales", "Support"]
    assert api.delete(f"crmchat_agents({agent_id})/crmchat_agent_topic({topics[0]})/$ref").ok
    assert linked() == ["Support"]
    target = quote(f"{dataverse_url}/crmchat_topics({topics[1]})", safe="")
    assert api.delete(f"crmchat_agents({agent_id})/crmchat_agent_topic/$ref?$id={target}").ok
    assert linked() == []


def test_single_valued_ref_put_and_delete(api: Api, dataverse_url: str) -> None:
    account_id = api.create("accounts", {"name": "Ref target"})
    contact_id = api.create("contacts", {"lastname": "Ref"})
    put = api.request(
        "PUT",
        f"contacts({contact_id})/parentcustomerid_account/$ref",
        json={"@odata.id": f"{dataverse_url}/accounts({account_id})"},
    )
    assert put.status_code == 204
    assert api.get(f"contacts({contact_id})").json()["_parentcustomerid_value"] == account_id
    assert api.delete(f"contacts({contact_id})/parentcustomerid_account/$ref").status_code == 204
    assert api.get(f"contacts({contact_id})").json()["_parentcustomerid_value"] is None


def test_collection_bind_on_create_links_n_to_n(api: Api) -> None:
    topic = api.create("crmchat_topics", {"crmchat_name": "Billing"})
    widget = api.create(
        "crmchat_widgets",
        {"crmchat_name": "Site", "crmchat_widget_topic@odata.bind": [f"/crmchat_topics({topic})"]},
    )
    body = api.get(f"crmchat_widgets({widget})?$expand=crmchat_widget_topic").json()
    assert [t["crmchat_topicid"] for t in body["crmchat_widget_topic"]] == [topic]


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"lastname": "X", "nosuch": 1}, "0x80060888", "The property 'nosuch' does not exist"),
        ({"lastname": "X" * 51}, "0x80044331", "exceeded the maximum allowed length of '50'"),
        ({"lastname": 12}, "0x80048d19", "Cannot convert the literal"),
        ({"lastname": "X", "statecode": "open"}, "0x80048d19", "Edm.Int32"),
        ({"lastname": "X", "statuscode": 99}, "0x8004431a", "outside the valid range"),
        ({"lastname": "X", "contactid": "not-a-guid"}, "0x80048d19", "contactid"),
        ({"lastname": "X", "_parentcustomerid_value": str(uuid.uuid4())}, "0x80060888", ""),
    ],
)
def test_bad_payloads_are_refused_with_dataverse_errors(
    api: Api, body: dict[str, Any], code: str, fragment: str
) -> None:
    reply = api.post("contacts", body)
    assert reply.status_code == 400
    got_code, message = error_of(reply)
    assert got_code == code
    assert fragment in message
    assert api.get("contacts/$count").text == "0"


def test_only_system_required_columns_are_enforced(api: Api) -> None:
    # Like the real Web API: SystemRequired is enforced, ApplicationRequired is not.
    no_customer = api.post("incidents", {"title": "Orphan"})
    assert no_customer.status_code == 400
    assert error_of(no_customer)[0] == "0x80040203"
    assert "'customerid'" in error_of(no_customer)[1]
    assert api.post("contacts", {"firstname": "No last name"}).status_code == 204


def test_datetimes_are_normalised_to_utc(api: Api) -> None:
    chat = api.create(
        "crmchat_chats", {"subject": "Chat", "actualstart": "2025-01-01T12:00:00+02:00"}
    )
    assert api.get(f"crmchat_chats({chat})").json()["actualstart"] == "2025-01-01T10:00:00Z"


def test_malformed_json_and_unknown_sets_and_methods(api: Api) -> None:
    broken = api.request(
        "POST", "accounts", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and "error" in broken.json()
    unknown = api.get("nosuchthings")
    assert unknown.status_code == 404
    assert error_of(unknown) == ("0x80060888", "Resource not found for the segment 'nosuchthings'.")
    assert api.request("PUT", "accounts").status_code == 405
    bad_filter = api.get("accounts?$filter=name eq 'unterminated")
    assert bad_filter.status_code == 400
    bad_key = api.get("accounts(not-a-guid)")
    assert bad_key.status_code == 400


def test_garbage_never_gets_a_500(api: Api) -> None:
    attempts: list[tuple[str, str, bytes | None]] = [
        ("GET", "accounts?$filter=((((", None),
        ("GET", "accounts?$select=,,,", None),
        ("GET", "accounts?$orderby=name sideways", None),
        ("GET", "accounts?$top=-1", None),
        ("GET", "accounts?$skiptoken=%%%garbage", None),
        ("GET", "accounts?$expand=nosuch($select=x)", None),
        ("GET", "accounts(')/x/y/z", None),
        ("GET", "accounts()", None),
        ("GET", "EntityDefinitions(LogicalName='nosuch')", None),
        ("GET", "EntityDefinitions?$filter=weird(thing)", None),
        ("POST", "accounts", b"[1,2,3]"),
        ("POST", "accounts", b"\xff\xfe\x00"),
        ("POST", "accounts", b'{"name": {"nested": true}}'),
        ("POST", "accounts", b'{"name": "\\ud800"}'),
        ("POST", "crmchat_chats", b'{"subject": "s", "crmchat_rating": 1e400}'),
        ("POST", "$batch", b"--nope\r\n\r\n"),
        ("PATCH", "accounts(00000000-0000-0000-0000-000000000000)", b"null"),
        ("DELETE", "accounts/$count", None),
        ("POST", "accounts(00000000-0000-0000-0000-000000000000)/nosuch/$ref", b"{}"),
        ("PUT", "contacts(00000000-0000-0000-0000-000000000000)/lastname", b'{"v": 1}'),
        ("GET", "WhoAmI()/extra", None),
        ("OPTIONS", "accounts", None),
    ]
    for method, path, body in attempts:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        reply = api.request(method, path, data=body, headers=headers)
        assert reply.status_code < 500, (method, path, reply.text)
        assert "Traceback" not in reply.text


def test_oversized_bodies_get_413(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "MAX_BODY_BYTES", 1024)
    reply = api.post("accounts", {"name": "x", "description": "y" * 2000})
    assert reply.status_code == 413
    assert "error" in reply.json()


# -- batch --------------------------------------------------------------------------------


def _batch_body(parts: list[str], *, changeset: bool) -> tuple[str, bytes]:
    lines: list[str] = []
    inner: list[str] = []
    for number, part in enumerate(parts, start=1):
        inner += [
            "--changeset_x",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {number}",
            "",
            part,
        ]
    if changeset:
        lines += ["--batch_x", "Content-Type: multipart/mixed; boundary=changeset_x", ""]
        lines += inner + ["--changeset_x--", ""]
    lines += ["--batch_x--", ""]
    return "multipart/mixed; boundary=batch_x", "\r\n".join(lines).encode()


def test_batch_changeset_creates_and_references_the_new_record(api: Api) -> None:
    content_type, body = _batch_body(
        [
            'POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{"name": "Batch A"}',
            "PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\nIf-Match: *\r\n\r\n"
            '{"name": "Batch B"}',
            "POST contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
            '{"lastname": "Kid", "parentcustomerid_account@odata.bind": "$1"}',
        ],
        changeset=True,
    )
    reply = api.request("POST", "$batch", data=body, headers={"Content-Type": content_type})
    assert reply.status_code == 200
    assert "--batchresponse_" in reply.text
    names = [r["name"] for r in api.get("accounts?$select=name").json()["value"]]
    assert names == ["Batch B"]
    kid = api.get("contacts?$select=_parentcustomerid_value").json()["value"][0]
    assert kid["_parentcustomerid_value"] is not None


def test_a_failing_changeset_rolls_everything_back(api: Api) -> None:
    content_type, body = _batch_body(
        [
            'POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{"name": "Never"}',
            "POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
            '{"name": "Bad", "nosuch": 1}',
        ],
        changeset=True,
    )
    reply = api.request("POST", "$batch", data=body, headers={"Content-Type": content_type})
    assert reply.status_code == 400
    assert "0x80060888" in reply.text
    assert api.get("accounts/$count").text == "0"


# -- identity, metadata -------------------------------------------------------------------


def test_who_am_i_with_and_without_parentheses(api: Api) -> None:
    for path in ("WhoAmI", "WhoAmI()"):
        body = api.get(path).json()
        assert body["UserId"] == ADMIN_USER_ID
        assert body["BusinessUnitId"] and body["OrganizationId"]
        assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")


def test_entity_definitions_answer_what_clients_ask(api: Api) -> None:
    one = api.get(
        "EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute"
        "&$filter=LogicalName eq 'account'"
    ).json()["value"]
    assert [(d["LogicalName"], d["EntitySetName"], d["PrimaryIdAttribute"]) for d in one] == [
        ("account", "accounts", "accountid")
    ]
    every = api.get("EntityDefinitions?$select=EntitySetName,LogicalName").json()["value"]
    assert {"crmchat_chats", "contacts", "systemusers"} <= {d["EntitySetName"] for d in every}
    entity = api.get("EntityDefinitions(LogicalName='crmchat_chat')").json()
    assert entity["PrimaryIdAttribute"] == "activityid"
    picklists = api.get(
        "EntityDefinitions(LogicalName='incident')/Attributes/"
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName"
        "&$expand=OptionSet($select=Options)"
    ).json()["value"]
    origin = next(p for p in picklists if p["LogicalName"] == "caseorigincode")
    labels = {
        o["Value"]: o["Label"]["LocalizedLabels"][0]["Label"]
        for o in origin["OptionSet"]["Options"]
    }
    assert labels[3] == "Web"


def test_requests_without_a_valid_token_get_401(dataverse_url: str) -> None:
    anonymous = Api(dataverse_url, None).get("accounts")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error" in anonymous.json()
    forged = Api(dataverse_url, "abc.def.ghi").get("accounts")
    assert forged.status_code == 401


def test_find_user_matches_domain_name_local_part_and_full_name(
    dataverse_app: DataverseApp,
) -> None:
    store = dataverse_app.store
    assert find_user(store, "admin@crmchat.local") == ADMIN_USER_ID
    assert find_user(store, "ADMIN") == ADMIN_USER_ID
    assert find_user(store, "crm chat admin") == ADMIN_USER_ID
    assert find_user(store, "nobody") is None


# -- privileges ---------------------------------------------------------------------------


def test_a_user_without_roles_gets_403(dataverse_app: DataverseApp, dataverse_url: str) -> None:
    user_id = add_user(dataverse_app.store, domain_name="norole@crmchat.local")
    api = Api(dataverse_url, issue_token(dataverse_app.store.signing_secret, user_id=user_id))
    reply = api.get("accounts")
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "0x80042f09"
    assert api.get("WhoAmI").status_code == 200


def test_basic_depth_limits_an_agent_to_own_chats(api: Api, agent: tuple[str, Api]) -> None:
    agent_id, agent_api = agent
    others = api.create("crmchat_chats", {"subject": "Admin's chat"})
    # The service writes chats and assigns them to the agent; agents cannot create one.
    mine = api.create(
        "crmchat_chats",
        {"subject": "Agent's chat", "ownerid@odata.bind": f"/systemusers({agent_id})"},
    )
    refused = agent_api.post("crmchat_chats", {"subject": "Agent's own"})
    assert refused.status_code == 403
    assert "is missing prvCreateActivity privilege" in refused.json()["error"]["message"]
    listed = agent_api.get("crmchat_chats?$select=subject").json()["value"]
    assert [c["subject"] for c in listed] == ["Agent's chat"]
    assert agent_api.get(f"crmchat_chats({mine})").json()["_ownerid_value"] == agent_id
    denied = agent_api.get(f"crmchat_chats({others})")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "0x80040220"
    write = agent_api.patch(f"crmchat_chats({others})", {"subject": "x"}, headers={"If-Match": "*"})
    assert write.status_code == 403
    assert api.get(f"crmchat_chats({others})").json()["subject"] == "Admin's chat"


def test_missing_privileges_are_403(api: Api, agent: tuple[str, Api]) -> None:
    _, agent_api = agent
    account_id = api.create("accounts", {"name": "Readable"})
    assert agent_api.get(f"accounts({account_id})").status_code == 200
    assert agent_api.delete(f"accounts({account_id})").status_code == 403
    created = agent_api.post("accounts", {"name": "Not allowed"})
    assert created.status_code == 403
    assert "is missing prvCreateAccount privilege" in created.json()["error"]["message"]
    assert api.get("accounts/$count").text == "1"


def test_impersonation_needs_the_privilege(api: Api, agent: tuple[str, Api]) -> None:
    agent_id, agent_api = agent
    as_agent = api.get("WhoAmI", headers={"MSCRMCallerID": agent_id}).json()
    assert as_agent["UserId"] == agent_id
    refused = agent_api.get("WhoAmI", headers={"MSCRMCallerID": ADMIN_USER_ID})
    assert refused.status_code == 403


# -- service protection -------------------------------------------------------------------


def test_service_protection_answers_429_with_retry_after(tmp_path: Path, schema: Schema) -> None:
    limits = ServiceProtection(max_requests=3, window_secs=60)
    app = create_dataverse_app(tmp_path / "limited.db", schema=schema, limits=limits)
    url, stop = start_in_thread(db_path=tmp_path / "limited.db", app=app)
    try:
        api = Api(url, issue_token(app.store.signing_secret, user_id=ADMIN_USER_ID))
        statuses = [api.get("WhoAmI").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        reply = api.get("accounts")
        assert reply.status_code == 429
        assert int(reply.headers["Retry-After"]) >= 1
        assert reply.json()["error"]["code"] == "0x80072322"
    finally:
        stop()
        app.store.close()


# -- storage ------------------------------------------------------------------------------


def test_data_and_tokens_survive_a_restart(tmp_path: Path, schema: Schema) -> None:
    db = tmp_path / "durable.db"
    first = create_dataverse_app(db, schema=schema)
    token = issue_token(first.store.signing_secret, user_id=ADMIN_USER_ID)
    url, stop = start_in_thread(db_path=db, app=first)
    account_id = Api(url, token).create("accounts", {"name": "Durable"})
    stop()
    first.store.close()

    second = create_dataverse_app(db, schema=schema)
    url, stop = start_in_thread(db_path=db, app=second)
    try:
        reply = Api(url, token).get(f"accounts({account_id})")
        assert reply.status_code == 200
        assert reply.json()["name"] == "Durable"
    finally:
        stop()
        second.store.close()


def test_a_newer_schema_adds_columns_and_keeps_rows(tmp_path: Path) -> None:
    def schema_with(*extra: Column) -> Schema:
        columns = {
            "thingid": Column("thingid", ColumnType.UNIQUEIDENTIFIER),
            "name": Column("name", ColumnType.STRING, max_length=50),
        }
        columns.update({c.logical_name: c for c in extra})
        table = Table("thing", "Thing", "things", "thingid", "name", columns)
        return Schema(tables={"thing": table})

    db = tmp_path / "upgrade.db"
    old = open_store(db, schema_with())
    old.insert(old.schema.tables["thing"], {"thingid": "a" * 8 + "-0000-0000-0000-" + "0" * 12})
    old.close()
    new = open_store(db, schema_with(Column("size", ColumnType.INTEGER)))
    rows = new.query('SELECT thingid, size FROM "thing"')
    assert len(rows) == 1 and rows[0]["size"] is None
    new.close()


def test_concurrent_creates_lose_nothing(api: Api, admin_token: str) -> None:
    errors: list[str] = []

    def worker(n: int) -> None:
        local = Api(api.base, admin_token)
        for i in range(10):
            reply = local.post("accounts", {"name": f"T{n}-{i}"})
            if reply.status_code != 204:
                errors.append(reply.text)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = api.get("accounts?$select=name").json()["value"]
    assert len(rows) == 40
    assert len({r["@odata.etag"] for r in rows}) == 40


# -- mounting -----------------------------------------------------------------------------


def test_mounted_under_a_prefix_it_builds_urls_from_the_mount(
    dataverse_app: DataverseApp, admin_token: str
) -> None:
    outer = DispatcherMiddleware(Response("chat service"), {"/api/data/v9.2": dataverse_app})
    client = Client(outer)
    headers = {"Authorization": f"Bearer {admin_token}"}
    reply = client.post(
        "/api/data/v9.2/accounts",
        json={"name": "Mounted"},
        headers=headers,
        base_url="https://chat.example.com",
    )
    assert reply.status_code == 204
    assert reply.headers["OData-EntityId"].startswith(
        "https://chat.example.com/api/data/v9.2/accounts("
    )
    listed = client.get("/api/data/v9.2/accounts", headers=headers)
    assert json.loads(listed.get_data())["value"][0]["name"] == "Mounted"


def test_a_users_roles_can_be_read_through_the_navigation_property(
    api: Api, agent: tuple[str, Api]
) -> None:
    agent_id, _ = agent
    reply = api.get(f"systemusers({agent_id})/systemuserroles_association?$select=name,roleid")
    assert reply.status_code == 200
    assert [(r["name"], r["roleid"]) for r in reply.json()["value"]] == [
        ("CRM Chat Agent", AGENT_ROLE)
    ]
    admin = api.get(f"systemusers({ADMIN_USER_ID})/systemuserroles_association?$select=name")
    assert [r["name"] for r in admin.json()["value"]] == ["System Administrator"]


def test_deep_insert_creates_nested_records(api: Api) -> None:
    reply = api.post(
        "accounts",
        {
            "name": "Deep parent",
            "contact_customer_accounts": [
                {"lastname": "Child one"},
                {"lastname": "Child two"},
            ],
        },
    )
    assert reply.status_code == 204
    account_id = GUID.search(reply.headers["OData-EntityId"]).group(1)  # type: ignore[union-attr]
    kids = api.get(
        f"contacts?$select=lastname&$filter=_parentcustomerid_value eq {account_id}"
        "&$orderby=lastname"
    ).json()["value"]
    assert [k["lastname"] for k in kids] == ["Child one", "Child two"]
    case = api.create(
        "incidents", {"title": "Inline customer", "customerid_contact": {"lastname": "Inline"}}
    )
    body = api.get(f"incidents({case})?$expand=customerid_contact($select=lastname)").json()
    assert body["customerid_contact"]["lastname"] == "Inline"
    failing = api.post("accounts", {"name": "Half", "contact_customer_accounts": [{"x": 1}]})
    assert failing.status_code == 400
    assert api.get("accounts/$count?$filter=name eq 'Half'").text == "0"


def test_delete_with_a_stale_etag_is_refused(api: Api) -> None:
    account_id = api.create("accounts", {"name": "Versioned"})
    etag = api.get(f"accounts({account_id})").json()["@odata.etag"]
    api.patch(f"accounts({account_id})", {"name": "Versioned 2"}, headers={"If-Match": "*"})
    assert api.delete(f"accounts({account_id})", headers={"If-Match": etag}).status_code == 412
    assert api.get(f"accounts({account_id})").status_code == 200


def test_roles_held_through_a_team_count(
    api: Api, dataverse_app: DataverseApp, dataverse_url: str
) -> None:
    user_id = add_user(dataverse_app.store, domain_name="member@crmchat.local")
    user_api = Api(dataverse_url, issue_token(dataverse_app.store.signing_secret, user_id=user_id))
    assert user_api.get("crmchat_topics").status_code == 403
    team_id = api.create(
        "teams",
        {"name": "Agents", "businessunitid@odata.bind": f"/businessunits({business_unit(api)})"},
    )
    for nav, target in (
        ("teammembership_association", f"systemusers({user_id})"),
        ("teamroles_association", f"roles({AGENT_ROLE})"),
    ):
        linked = api.post(f"teams({team_id})/{nav}/$ref", {"@odata.id": f"{api.base}/{target}"})
        assert linked.status_code == 204, linked.text
    assert user_api.get("crmchat_topics").status_code == 200


def business_unit(api: Api) -> str:
    return str(api.get("WhoAmI").json()["BusinessUnitId"])


def test_an_array_or_object_as_an_alternate_key_is_a_400_not_a_500(api: Api) -> None:
    for key in ("name=[1]", 'name={"a":1}'):
        for reply in (api.get(f"accounts({key})"), api.patch(f"accounts({key})", {"name": "x"})):
            assert reply.status_code == 400, reply.text
            assert error_of(reply)[0] == "0x80060888"


def test_an_upsert_by_alternate_key_validates_the_key_values(api: Api) -> None:
    too_long = "y" * 161  # account.name holds at most 160 characters
    reply = api.patch(f"accounts(name='{too_long}')", {"telephone1": "555"})
    assert reply.status_code == 400
    assert error_of(reply)[0] == "0x80044331"
    assert api.get("accounts/$count", params={"$filter": "telephone1 eq '555'"}).text == "0"
    created = api.patch("accounts(name='Short enough')", {"telephone1": "556"})
    assert created.status_code == 204
    assert api.get("accounts(name='Short enough')").json()["telephone1"] == "556"


# -- activitypointer ----------------------------------------------------------------------


def test_activitypointers_list_every_chat_with_its_type_and_regarding(
    api: Api, agent: tuple[str, Api]
) -> None:
    agent_id, agent_api = agent
    contact = api.create("contacts", {"lastname": "Smith"})
    chat = api.create(
        "crmchat_chats",
        {
            "subject": "Chat with Ann",
            "regardingobjectid_contact_crmchat_chat@odata.bind": f"/contacts({contact})",
            "ownerid@odata.bind": f"/systemusers({agent_id})",
        },
    )
    api.create("crmchat_chats", {"subject": "Somebody else's chat"})
    # A contact's timeline asks for every activity regarding it, whatever its type.
    query = "activitypointers?$select=subject,activitytypecode"
    query += f"&$filter=_regardingobjectid_value eq {contact}"
    found = api.get(query).json()["value"]
    assert [(a["activityid"], a["subject"], a["activitytypecode"]) for a in found] == [
        (chat, "Chat with Ann", "crmchat_chat")
    ]
    # Read on activitypointer is prvReadActivity: the agent (Basic) sees only their chat.
    mine = agent_api.get("activitypointers?$select=subject").json()["value"]
    assert [a["subject"] for a in mine] == ["Chat with Ann"]


def test_activitypointers_are_read_only(api: Api) -> None:
    chat = api.create("crmchat_chats", {"subject": "Kept"})
    assert api.post("activitypointers", {"subject": "Made up"}).status_code == 405
    changed = api.patch(f"activitypointers({chat})", {"subject": "x"}, headers={"If-Match": "*"})
    assert changed.status_code == 405
    assert api.delete(f"activitypointers({chat})").status_code == 405
    assert api.get(f"crmchat_chats({chat})").json()["subject"] == "Kept"


def test_deleting_a_contact_clears_the_regarding_of_its_chats_and_their_pointers(
    api: Api,
) -> None:
    contact = api.create("contacts", {"lastname": "Gone"})
    chat = api.create(
        "crmchat_chats",
        {
            "subject": "Chat",
            "regardingobjectid_contact_crmchat_chat@odata.bind": f"/contacts({contact})",
        },
    )
    assert api.delete(f"contacts({contact})").status_code == 204
    pointer = api.get(f"activitypointers({chat})?$select=_regardingobjectid_value").json()
    assert pointer["_regardingobjectid_value"] is None


def test_a_deep_insert_into_activitypointers_is_refused_and_writes_nothing(api: Api) -> None:
    refused = api.post(
        "contacts", {"lastname": "Deep", "contact_activitypointer": [{"subject": "Sneaky"}]}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "0x80048d19"
    assert api.get("contacts?$filter=lastname eq 'Deep'").json()["value"] == []
