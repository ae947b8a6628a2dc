"""`DataverseClient` against Dataverse's wire format (reference/dataverse.md), via `responses`.

Each test asserts what the client sent (method, URL, headers, body) and what the caller
gets back, including the failure paths: throttling, outages, expired tokens, lost replies.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import urllib3.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connector.dataverse import (
    AuthError,
    BadRequest,
    CallableTokenProvider,
    ConnectionFailed,
    DataverseClient,
    MsalTokenProvider,
    NotFound,
    PreconditionFailed,
    StaticTokenProvider,
    TooManyRequests,
    Unauthorized,
    UpsertMode,
)
from connector.dataverse.batch import Ref
from connector.dataverse.multipart import (
    boundary_of,
    header,
    parse_http_request,
    split_multipart,
)
from connector.dataverse.odata import eq

ORG = "https://org.crm.dynamics.com"
BASE = f"{ORG}/api/data/v9.2/"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-token"
CONTACT_ID = "6d0a1a52-2c3f-4f5e-9a3b-0c1d2e3f4a5b"
ACCOUNT_ID = "70bf4d48-34cb-ed11-b596-0022481d68cd"
ROLE_ID = "2f0c7a3e-8a6b-4f0e-9c1d-3e4f5a6b7c8d"
USER_OBJECT_ID = "9b1c2d3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e"

NOT_FOUND_BODY = {
    "error": {"code": "0x80040217", "message": f"contact With Id = {CONTACT_ID} Does Not Exist"}
}
VERSION_MISMATCH_BODY = {
    "error": {
        "code": "0x80060882",
        "message": "The version of the existing record doesn't match the RowVersion property "
        "provided.",
    }
}
ALREADY_EXISTS_BODY = {
    "error": {"code": "0x80040237", "message": "A record with matching key values already exists."}
}
THROTTLED_BODY = {
    "error": {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    }
}
ODATA_HEADERS = {"OData-Version": "4.0"}


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> DataverseClient:
    # No trailing slash on purpose: the client normalises it.
    return DataverseClient(BASE.rstrip("/"), StaticTokenProvider(TOKEN), sleep=sleeps.append)


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


def sent_query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def entity_id_header(entity_set: str, record_id: str) -> dict[str, str]:
    return {**ODATA_HEADERS, "OData-EntityId": f"{BASE}{entity_set}({record_id})"}


def add_contact_created(mock: responses.RequestsMock, method: str = responses.POST) -> None:
    """Dataverse's reply to a create: 204 naming the new contact in OData-EntityId."""
    url = f"{BASE}contacts" if method == responses.POST else f"{BASE}contacts({CONTACT_ID})"
    mock.add(method, url, status=204, headers=entity_id_header("contacts", CONTACT_ID))


def add_throttled(
    mock: responses.RequestsMock, method: str, url: str, *, retry_after_secs: int
) -> None:
    """A 429 for the request-count limit, asking to wait `retry_after_secs`."""
    mock.add(
        method,
        url,
        status=429,
        json=THROTTLED_BODY,
        headers={"Retry-After": str(retry_after_secs)},
    )


# ----- create ----------------------------------------------------------------------------


def test_create_posts_json_and_returns_the_id_from_odata_entityid(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    add_contact_created(mock)
    data = {
        "firstname": "Ann",
        "emailaddress1": "ann@x.com",
        "parentcustomerid_account@odata.bind": f"/accounts({ACCOUNT_ID})",
    }

    assert client.create("contacts", data) == CONTACT_ID

    request: Any = mock.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{BASE}contacts"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["OData-MaxVersion"] == "4.0"
    assert request.headers["OData-Version"] == "4.0"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "If-None-Match" not in request.headers
    assert "CallerObjectId" not in request.headers
    assert json.loads(request.body) == data
    assert request.req_kwargs["timeout"] == 30


def test_create_with_return_record_asks_for_the_representation(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    record = {
        "@odata.context": f"{BASE}$metadata#contacts/$entity",
        "@odata.etag": 'W/"470867"',
        "contactid": CONTACT_ID,
        "firstname": "Ann",
    }
    mock.add(
        responses.POST,
        f"{BASE}contacts",
        status=201,
        json=record,
        headers={**ODATA_HEADERS, "Preference-Applied": "return=representation"},
    )

    assert client.create("contacts", {"firstname": "Ann"}, return_record=True) == record
    assert mock.calls[0].request.headers["Prefer"] == "return=representation"


def test_create_post_is_not_repeated_after_a_lost_reply(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    # The POST may have created the record; sending it again could create a second one.
    mock.add(responses.POST, f"{BASE}contacts", body=requests.ConnectionError("Read timed out."))

    with pytest.raises(ConnectionFailed) as raised:
        client.create("contacts", {"firstname": "Ann"})

    assert len(mock.calls) == 1
    assert sleeps == []
    assert raised.value.maybe_delivered is True


def test_create_post_is_retried_when_the_connection_was_never_made(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    refused = requests.ConnectionError(
        urllib3.exceptions.MaxRetryError(
            None,  # type: ignore[arg-type]
            f"{BASE}contacts",
            urllib3.exceptions.NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
        )
    )
    mock.add(responses.POST, f"{BASE}contacts", body=refused)
    add_contact_created(mock)

    assert client.create("contacts", {"firstname": "Ann"}) == CONTACT_ID
    assert sleeps == [1.0]


def test_create_with_record_id_is_a_create_only_upsert(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    add_contact_created(mock, responses.PATCH)

    assert (
        client.create("contacts", {"firstname": "Ann"}, record_id=CONTACT_ID.upper()) == CONTACT_ID
    )

    request: Any = mock.calls[0].request
    assert request.method == "PATCH"
    assert request.headers["If-None-Match"] == "*"
    assert "If-Match" not in request.headers
    assert json.loads(request.body) == {"firstname": "Ann"}


def test_create_with_record_id_retried_after_a_dropped_reply_does_not_double(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    store: dict[str, Any] = {}

    def dataverse(request: requests.PreparedRequest) -> Any:
        if request.headers.get("If-None-Match") == "*" and CONTACT_ID in store:
            return (412, ODATA_HEADERS, json.dumps(ALREADY_EXISTS_BODY))
        store[CONTACT_ID] = json.loads(request.body or b"{}")
        if len(store) == 1 and len(mock.calls) == 0:
            # Dataverse created the record, then the reply was lost on the way back.
            return requests.ConnectionError("Connection aborted.")
        return (204, entity_id_header("contacts", CONTACT_ID), "")

    mock.add_callback(responses.PATCH, f"{BASE}contacts({CONTACT_ID})", callback=dataverse)

    assert client.create("contacts", {"firstname": "Ann"}, record_id=CONTACT_ID) == CONTACT_ID

    assert list(store) == [CONTACT_ID]
    assert [call.request.headers["If-None-Match"] for call in mock.calls] == ["*", "*"]
    assert sleeps == [1.0]


def test_create_with_a_record_id_already_taken_raises(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(responses.PATCH, f"{BASE}contacts({CONTACT_ID})", status=412, json=ALREADY_EXISTS_BODY)

    with pytest.raises(PreconditionFailed) as raised:
        client.create("contacts", {"firstname": "Ann"}, record_id=CONTACT_ID)

    assert raised.value.code == "0x80040237"


# ----- retrieve and list -------------------------------------------------------------------


def test_retrieve_sends_select_and_expand(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    record = {"contactid": CONTACT_ID, "firstname": "Ann", "parentcustomerid_account": None}
    mock.add(responses.GET, f"{BASE}contacts({CONTACT_ID})", json=record)

    got = client.retrieve(
        "contacts",
        CONTACT_ID,
        select=["firstname", "lastname"],
        expand="parentcustomerid_account($select=name)",
    )

    assert got == record
    request: Any = mock.calls[0].request
    assert request.method == "GET"
    assert request.url == (
        f"{BASE}contacts({CONTACT_ID})?$select=firstname,lastname"
        "&$expand=parentcustomerid_account($select=name)"
    )
    assert request.headers["If-None-Match"] == "null"
    assert request.body is None


def test_retrieve_missing_record_raises_not_found_with_the_server_message(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(responses.GET, f"{BASE}contacts({CONTACT_ID})", status=404, json=NOT_FOUND_BODY)

    with pytest.raises(NotFound) as raised:
        client.retrieve("contacts", CONTACT_ID)

    error = raised.value
    assert (error.status, error.code) == (404, "0x80040217")
    assert error.message == f"contact With Id = {CONTACT_ID} Does Not Exist"
    assert error.url == f"{BASE}contacts({CONTACT_ID})"
    assert TOKEN not in str(error)


def test_ids_are_checked_before_anything_is_sent(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    with pytest.raises(ValueError):
        client.retrieve("contacts", "1) or (1")
    with pytest.raises(ValueError):
        client.delete("contacts", f"{CONTACT_ID})/contactid")
    with pytest.raises(ValueError):
        client.update("contacts?$x=", CONTACT_ID, {})
    with pytest.raises(ValueError):
        client.retrieve("contacts", CONTACT_ID, select=["fullname&$expand=owninguser"])
    assert len(mock.calls) == 0


NEXT_2 = (
    f"{BASE}contacts?$select=fullname&$skiptoken=%3Ccookie%20pagenumber=%222%22%20"
    "pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%253c%252fcookie%253e%22%20"
    "istracking=%22False%22%20/%3E"
)
NEXT_3 = NEXT_2.replace("pagenumber=%222%22", "pagenumber=%223%22")


def test_list_follows_two_next_links_lazily(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    pages = {
        None: {
            "@odata.count": 5,
            "value": [{"fullname": "A"}, {"fullname": "B"}],
            "@odata.nextLink": NEXT_2,
        },
        NEXT_2: {"value": [{"fullname": "C"}, {"fullname": "D"}], "@odata.nextLink": NEXT_3},
        NEXT_3: {"value": [{"fullname": "E"}]},
    }

    def dataverse(request: requests.PreparedRequest) -> Any:
        page = pages[request.url if "$skiptoken" in (request.url or "") else None]
        headers = {**ODATA_HEADERS, "Preference-Applied": "odata.maxpagesize=2"}
        return (200, headers, json.dumps(page))

    mock.add_callback(responses.GET, f"{BASE}contacts", callback=dataverse)

    listing = client.list("contacts", select=["fullname"], page_size=2, count=True)
    assert len(mock.calls) == 0  # nothing is fetched before iteration
    first = next(listing)
    assert first == {"fullname": "A"}
    assert len(mock.calls) == 1
    assert listing.count == 5

    assert [row["fullname"] for row in listing] == ["B", "C", "D", "E"]
    assert [call.request.url for call in mock.calls] == [
        f"{BASE}contacts?$select=fullname&$count=true",
        NEXT_2,
        NEXT_3,
    ]
    for call in mock.calls:
        assert call.request.headers["Prefer"] == "odata.maxpagesize=2"
        assert call.request.headers["If-None-Match"] == "null"


def test_list_sends_every_query_option_encoded(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(responses.GET, f"{BASE}contacts", json={"value": []})

    rows = client.list(
        "contacts",
        select=["fullname", "emailaddress1"],
        filter=eq("emailaddress1", "a+b@x.com"),
        orderby=["lastname asc", "createdon desc"],
        top=5,
        expand="parentcustomerid_account($select=name)",
        annotations=True,
        page_size=50,
    )
    assert list(rows) == []

    request: Any = mock.calls[0].request
    assert "%2B" in request.url  # a raw '+' would arrive as a space
    assert " " not in request.url
    assert sent_query(mock.calls[0]) == {
        "$select": ["fullname,emailaddress1"],
        "$filter": ["emailaddress1 eq 'a+b@x.com'"],
        "$orderby": ["lastname asc,createdon desc"],
        "$top": ["5"],
        "$expand": ["parentcustomerid_account($select=name)"],
    }
    assert request.headers["Prefer"] == 'odata.include-annotations="*",odata.maxpagesize=50'


@pytest.mark.parametrize("hostile", ["O'Neil", "x' or 1 eq 1 or 'a"])
def test_filter_values_arrive_as_one_quoted_literal(
    mock: responses.RequestsMock, client: DataverseClient, hostile: str
) -> None:
    mock.add(responses.GET, f"{BASE}contacts", json={"value": []})

    list(client.list("contacts", filter=eq("lastname", hostile)))

    sent_filter = sent_query(mock.calls[0])["$filter"]
    assert sent_filter == ["lastname eq '" + hostile.replace("'", "''") + "'"]


def test_list_related_queries_a_navigation_property(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    url = f"{BASE}systemusers({USER_OBJECT_ID})/systemuserroles_association"
    mock.add(responses.GET, url, json={"value": [{"roleid": ROLE_ID, "name": "Chat Agent"}]})

    roles = client.list_related(
        "systemusers", USER_OBJECT_ID, "systemuserroles_association", select=["name", "roleid"]
    )

    assert [role["name"] for role in roles] == ["Chat Agent"]
    assert mock.calls[0].request.url == f"{url}?$select=name,roleid"


def test_next_link_to_another_host_is_refused(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(
        responses.GET,
        f"{BASE}contacts",
        json={"value": [{"fullname": "A"}], "@odata.nextLink": "https://evil.example/steal"},
    )

    with pytest.raises(Exception, match="outside the environment"):
        list(client.list("contacts"))
    assert len(mock.calls) == 1


# ----- update, upsert, delete ----------------------------------------------------------------


def test_update_without_etag_sends_if_match_star(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(responses.PATCH, f"{BASE}contacts({CONTACT_ID})", status=204)

    client.update("contacts", CONTACT_ID, {"telephone1": "555-0100"})

    request: Any = mock.calls[0].request
    assert request.headers["If-Match"] == "*"
    assert "If-None-Match" not in request.headers
    assert json.loads(request.body) == {"telephone1": "555-0100"}


def test_update_with_a_stale_etag_raises_precondition_failed(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(
        responses.PATCH, f"{BASE}contacts({CONTACT_ID})", status=412, json=VERSION_MISMATCH_BODY
    )

    with pytest.raises(PreconditionFailed) as raised:
        client.update("contacts", CONTACT_ID, {"telephone1": "1"}, etag='W/"470867"')

    assert mock.calls[0].request.headers["If-Match"] == 'W/"470867"'
    assert raised.value.code == "0x80060882"
    assert len(mock.calls) == 1  # a conflict is not retried


@pytest.mark.parametrize(
    ("mode", "if_match", "if_none_match"),
    [
        (UpsertMode.ANY, None, None),
        (UpsertMode.CREATE_ONLY, None, "*"),
        (UpsertMode.UPDATE_ONLY, "*", None),
    ],
)
def test_upsert_modes_send_their_conditions(
    mock: responses.RequestsMock,
    client: DataverseClient,
    mode: UpsertMode,
    if_match: str | None,
    if_none_match: str | None,
) -> None:
    mock.add(responses.PATCH, f"{BASE}contacts({CONTACT_ID})", status=204)

    client.upsert("contacts", CONTACT_ID, {"lastname": "O'Neil"}, mode=mode)

    request: Any = mock.calls[0].request
    assert request.headers.get("If-Match") == if_match
    assert request.headers.get("If-None-Match") == if_none_match
    assert json.loads(request.body) == {"lastname": "O'Neil"}


def test_delete_sends_delete_with_if_match(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(responses.DELETE, f"{BASE}contacts({CONTACT_ID})", status=204)

    client.delete("contacts", CONTACT_ID)

    request: Any = mock.calls[0].request
    assert (request.method, request.headers["If-Match"], request.body) == ("DELETE", "*", None)


def test_associate_posts_an_absolute_odata_id_to_ref(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    url = f"{BASE}systemusers({USER_OBJECT_ID})/systemuserroles_association/$ref"
    mock.add(responses.POST, url, status=204)

    client.associate("systemusers", USER_OBJECT_ID, "systemuserroles_association", "roles", ROLE_ID)

    assert sent_json(mock.calls[0]) == {"@odata.id": f"{BASE}roles({ROLE_ID})"}


def test_disassociate_deletes_the_ref(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    url = f"{BASE}systemusers({USER_OBJECT_ID})/systemuserroles_association({ROLE_ID})/$ref"
    mock.add(responses.DELETE, url, status=204)

    client.disassociate("systemusers", USER_OBJECT_ID, "systemuserroles_association", ROLE_ID)

    assert mock.calls[0].request.method == "DELETE"


def test_who_am_i(mock: responses.RequestsMock, client: DataverseClient) -> None:
    mock.add(
        responses.GET,
        f"{BASE}WhoAmI",
        json={
            "@odata.context": f"{BASE}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": "11111111-1111-1111-1111-111111111111",
            "UserId": "22222222-2222-2222-2222-222222222222",
            "OrganizationId": "33333333-3333-3333-3333-333333333333",
        },
    )

    me = client.who_am_i()

    assert me.user_id == "22222222-2222-2222-2222-222222222222"
    assert me.business_unit_id == "11111111-1111-1111-1111-111111111111"
    assert me.organization_id == "33333333-3333-3333-3333-333333333333"


def test_impersonation_sends_caller_object_id_only_on_the_derived_client(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(responses.DELETE, f"{BASE}contacts({CONTACT_ID})", status=204)

    agent = client.as_caller(USER_OBJECT_ID.upper())
    agent.delete("contacts", CONTACT_ID)
    client.delete("contacts", CONTACT_ID)

    assert mock.calls[0].request.headers["CallerObjectId"] == USER_OBJECT_ID
    assert mock.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "CallerObjectId" not in mock.calls[1].request.headers


# ----- retries ---------------------------------------------------------------------------------


def test_429_waits_retry_after_then_succeeds(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    url = f"{BASE}contacts({CONTACT_ID})"
    add_throttled(mock, responses.GET, url, retry_after_secs=7)
    mock.add(responses.GET, url, json={"contactid": CONTACT_ID})

    assert client.retrieve("contacts", CONTACT_ID) == {"contactid": CONTACT_ID}
    assert sleeps == [7.0]
    assert len(mock.calls) == 2


def test_429_on_a_create_is_retried_because_nothing_was_done(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    add_throttled(mock, responses.POST, f"{BASE}contacts", retry_after_secs=3)
    add_contact_created(mock)

    assert client.create("contacts", {"firstname": "Ann"}) == CONTACT_ID
    assert sleeps == [3.0]


def test_503_then_success_backs_off(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    url = f"{BASE}contacts({CONTACT_ID})"
    mock.add(responses.PATCH, url, status=503, body="Service Unavailable")
    mock.add(responses.PATCH, url, status=204)

    client.update("contacts", CONTACT_ID, {"firstname": "Ann"})

    assert sleeps == [1.0]
    assert len(mock.calls) == 2


def test_503_with_retry_after_waits_that_long(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    url = f"{BASE}contacts({CONTACT_ID})"
    mock.add(responses.GET, url, status=503, body="busy", headers={"Retry-After": "5"})
    mock.add(responses.GET, url, json={"contactid": CONTACT_ID})

    assert client.retrieve("contacts", CONTACT_ID) == {"contactid": CONTACT_ID}
    assert sleeps == [5.0]


def test_connection_error_then_success(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    url = f"{BASE}contacts({CONTACT_ID})"
    mock.add(responses.GET, url, body=requests.ConnectionError("Connection aborted."))
    mock.add(responses.GET, url, body=requests.ReadTimeout("Read timed out."))
    mock.add(responses.GET, url, json={"contactid": CONTACT_ID})

    assert client.retrieve("contacts", CONTACT_ID) == {"contactid": CONTACT_ID}
    assert sleeps == [1.0, 2.0]


def test_network_failures_back_off_exponentially_within_the_budget(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    mock.add(
        responses.GET, f"{BASE}contacts({CONTACT_ID})", body=requests.ConnectionError("refused")
    )

    with pytest.raises(ConnectionFailed):
        client.retrieve("contacts", CONTACT_ID)

    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]  # the next wait (32 s) would pass 60 s
    assert len(mock.calls) == 6


def test_retry_budget_exhausted_raises_too_many_requests(
    mock: responses.RequestsMock, client: DataverseClient, sleeps: list[float]
) -> None:
    add_throttled(mock, responses.GET, f"{BASE}contacts({CONTACT_ID})", retry_after_secs=40)

    with pytest.raises(TooManyRequests) as raised:
        client.retrieve("contacts", CONTACT_ID)

    assert sleeps == [40.0]
    assert len(mock.calls) == 2
    assert raised.value.retry_after == 40
    assert raised.value.code == "0x80072322"


def test_401_refreshes_the_token_once_and_retries(mock: responses.RequestsMock) -> None:
    tokens = iter(["expired-token", "fresh-token"])
    current = [next(tokens)]
    invalidations: list[str] = []

    def invalidate() -> None:
        invalidations.append(current[0])
        current[0] = next(tokens)

    provider = CallableTokenProvider(lambda: current[0], on_invalidate=invalidate)
    client = DataverseClient(BASE, provider, sleep=lambda secs: None)
    url = f"{BASE}contacts({CONTACT_ID})"
    mock.add(responses.GET, url, status=401, body="")
    mock.add(responses.GET, url, json={"contactid": CONTACT_ID})

    assert client.retrieve("contacts", CONTACT_ID) == {"contactid": CONTACT_ID}
    assert invalidations == ["expired-token"]
    assert [call.request.headers["Authorization"] for call in mock.calls] == [
        "Bearer expired-token",
        "Bearer fresh-token",
    ]


def test_a_second_401_is_raised_not_retried(mock: responses.RequestsMock) -> None:
    invalidations: list[int] = []
    provider = CallableTokenProvider(lambda: TOKEN, on_invalidate=lambda: invalidations.append(1))
    client = DataverseClient(BASE, provider, sleep=lambda secs: None)
    mock.add(responses.GET, f"{BASE}contacts({CONTACT_ID})", status=401, body="")

    with pytest.raises(Unauthorized) as raised:
        client.retrieve("contacts", CONTACT_ID)

    assert len(mock.calls) == 2
    assert invalidations == [1]
    assert TOKEN not in str(raised.value)


def flaky_identity_provider() -> CallableTokenProvider:
    """Tokens from an identity provider that is unreachable for the first request only."""
    failures = [ConnectionFailed("identity provider unreachable: ConnectTimeout", LOGIN)]

    def get_token() -> str:
        if failures:
            raise failures.pop()
        return TOKEN

    return CallableTokenProvider(get_token)


def test_create_post_is_retried_when_no_token_could_be_fetched(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    # Without a token nothing was sent to Dataverse, so the POST cannot have created anything.
    client = DataverseClient(BASE, flaky_identity_provider(), sleep=sleeps.append)
    add_contact_created(mock)

    assert client.create("contacts", {"firstname": "Ann"}) == CONTACT_ID
    assert sleeps == [1.0]
    assert len(mock.calls) == 1


def test_create_with_a_taken_record_id_raises_even_after_a_token_failure(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    # The 412 cannot be the echo of our own earlier attempt: that attempt never left.
    client = DataverseClient(BASE, flaky_identity_provider(), sleep=sleeps.append)
    mock.add(responses.PATCH, f"{BASE}contacts({CONTACT_ID})", status=412, json=ALREADY_EXISTS_BODY)

    with pytest.raises(PreconditionFailed):
        client.create("contacts", {"firstname": "Ann"}, record_id=CONTACT_ID)

    assert sleeps == [1.0]
    assert len(mock.calls) == 1


def test_network_error_text_never_reaches_the_exception(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    mock.add(
        responses.POST,
        f"{BASE}contacts",
        body=requests.ConnectionError(f"reset while sending Authorization: Bearer {TOKEN}"),
    )

    with pytest.raises(ConnectionFailed) as raised:
        client.create("contacts", {"firstname": "Ann"})

    assert TOKEN not in str(raised.value)
    assert raised.value.__cause__ is None


# ----- batch -----------------------------------------------------------------------------------

BATCH_REPLY_BOUNDARY = "batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f"
CHANGESET_REPLY_BOUNDARY = "changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abb"
NEW_ACCOUNT = "a59c24d0-0ac3-ec11-983e-002248e1e2f8"
NEW_CONTACT = "b69c24d0-0ac3-ec11-983e-002248e1e2f8"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def no_content_part(content_id: int, entity_set: str, record_id: str) -> str:
    return (
        f"--{CHANGESET_REPLY_BOUNDARY}\n"
        "Content-Type: application/http\n"
        "Content-Transfer-Encoding: binary\n"
        f"Content-ID: {content_id}\n"
        "\n"
        "HTTP/1.1 204 No Content\n"
        "OData-Version: 4.0\n"
        f"Location: {BASE}{entity_set}({record_id})\n"
        f"OData-EntityId: {BASE}{entity_set}({record_id})\n"
        "\n"
        "\n"
    )


SUCCESS_REPLY = crlf(
    f"--{BATCH_REPLY_BOUNDARY}\n"
    f"Content-Type: multipart/mixed; boundary={CHANGESET_REPLY_BOUNDARY}\n"
    "\n"
    + no_content_part(1, "accounts", NEW_ACCOUNT)
    + no_content_part(2, "contacts", NEW_CONTACT)
    + no_content_part(3, "accounts", NEW_ACCOUNT)
    + f"--{CHANGESET_REPLY_BOUNDARY}--\n"
    f"--{BATCH_REPLY_BOUNDARY}\n"
    "Content-Type: application/http\n"
    "Content-Transfer-Encoding: binary\n"
    "\n"
    "HTTP/1.1 200 OK\n"
    "Content-Type: application/json; odata.metadata=minimal\n"
    "OData-Version: 4.0\n"
    "\n"
    f'{{"@odata.etag":"W/\\"12\\"","contactid":"{CONTACT_ID}","fullname":"Ann O\'Neil"}}\n'
    f"--{BATCH_REPLY_BOUNDARY}--\n"
)

VALIDATION_ERROR = (
    '{"error":{"code":"0x80044331","message":"A validation error occurred.  The value of '
    "'subject' on record of type 'task' is outside the valid range.\"}}"
)
FAILED_PART = (
    f"--{BATCH_REPLY_BOUNDARY}\n"
    "Content-Type: application/http\n"
    "Content-Transfer-Encoding: binary\n"
    "\n"
    "HTTP/1.1 400 Bad Request\n"
    "Content-Type: application/json; odata.metadata=minimal\n"
    "OData-Version: 4.0\n"
    "\n"
    f"{VALIDATION_ERROR}\n"
)
FAILED_REPLY = crlf(FAILED_PART + f"--{BATCH_REPLY_BOUNDARY}--\n")


BATCH_REPLY_TYPE = f"multipart/mixed; boundary={BATCH_REPLY_BOUNDARY}"


def add_batch_reply(mock: responses.RequestsMock, body: bytes, *, status: int = 200) -> None:
    mock.add(
        responses.POST,
        f"{BASE}$batch",
        status=status,
        body=body,
        headers=ODATA_HEADERS,
        content_type=BATCH_REPLY_TYPE,
    )


def build_account_and_contact(client: DataverseClient) -> Any:
    batch = client.batch()
    with batch.changeset():
        account = batch.create("accounts", {"name": "Contoso"})
        batch.create(
            "contacts", {"lastname": "O'Neil", "parentcustomerid_account@odata.bind": account}
        )
        batch.update("accounts", account, {"telephone1": "555"})
    batch.retrieve("contacts", CONTACT_ID, select=["fullname"])
    return batch


def test_batch_request_bytes_hold_a_changeset_with_content_ids_and_references(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    add_batch_reply(mock, SUCCESS_REPLY)

    build_account_and_contact(client).execute()

    request: Any = mock.calls[0].request
    boundary = boundary_of(request.headers["Content-Type"])
    assert boundary is not None and boundary.startswith("batch_")
    assert "Prefer" not in request.headers
    outer = split_multipart(request.body, boundary)
    assert len(outer) == 2

    changeset_boundary = boundary_of(header(outer[0], "Content-Type") or "")
    assert changeset_boundary is not None and changeset_boundary.startswith("changeset_")
    inner = split_multipart(outer[0].body, changeset_boundary)
    assert [header(part, "Content-ID") for part in inner] == ["1", "2", "3"]
    for part in [*inner, outer[1]]:
        assert header(part, "Content-Type") == "application/http"
        assert header(part, "Content-Transfer-Encoding") == "binary"

    create_account, create_contact, update_account = (parse_http_request(p.body) for p in inner)
    assert (create_account.method, create_account.url) == ("POST", f"{BASE}accounts")
    assert header(create_account, "Content-Type") == "application/json; type=entry"
    assert json.loads(create_account.body) == {"name": "Contoso"}
    assert json.loads(create_contact.body) == {
        "lastname": "O'Neil",
        "parentcustomerid_account@odata.bind": "$1",
    }
    assert inner[2].body.startswith(b"PATCH $1 HTTP/1.1\r\n")
    assert header(update_account, "If-Match") == "*"

    lookup = parse_http_request(outer[1].body)
    assert (lookup.method, lookup.url) == ("GET", f"{BASE}contacts({CONTACT_ID})?$select=fullname")


def test_batch_reply_is_parsed_into_one_result_per_operation(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    add_batch_reply(mock, SUCCESS_REPLY)

    results = build_account_and_contact(client).execute()

    assert [r.status for r in results] == [204, 204, 204, 200]
    assert [r.content_id for r in results] == ["1", "2", "3", None]
    assert [r.entity_id for r in results[:3]] == [NEW_ACCOUNT, NEW_CONTACT, NEW_ACCOUNT]
    assert all(r.ok and r.error is None for r in results)
    assert results[3].json() == {
        "@odata.etag": 'W/"12"',
        "contactid": CONTACT_ID,
        "fullname": "Ann O'Neil",
    }


def test_batch_with_a_failed_changeset_raises_its_error(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    add_batch_reply(mock, FAILED_REPLY, status=400)

    with pytest.raises(BadRequest) as raised:
        build_account_and_contact(client).execute()

    assert raised.value.code == "0x80044331"
    assert "outside the valid range" in raised.value.message
    assert len(mock.calls) == 1


def test_batch_continue_on_error_returns_failures_as_results(
    mock: responses.RequestsMock, client: DataverseClient
) -> None:
    reply = crlf(
        FAILED_PART + f"--{BATCH_REPLY_BOUNDARY}\n"
        "Content-Type: application/http\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
        "HTTP/1.1 200 OK\n"
        "Content-Type: application/json; odata.metadata=minimal\n"
        "\n"
        f'{{"contactid":"{CONTACT_ID}","fullname":"Ann"}}\n'
        f"--{BATCH_REPLY_BOUNDARY}--\n"
    )
    add_batch_reply(mock, reply)

    results = build_account_and_contact(client).execute(continue_on_error=True)

    assert mock.calls[0].request.headers["Prefer"] == "odata.continue-on-error"
    assert [r.status for r in results] == [400, 200]
    assert isinstance(results[0].error, BadRequest)
    assert results[0].error.code == "0x80044331"
    assert results[1].error is None
    assert results[1].json() == {"contactid": CONTACT_ID, "fullname": "Ann"}


def test_batch_refuses_references_outside_their_changeset(client: DataverseClient) -> None:
    batch = client.batch()
    with batch.changeset():
        account = batch.create("accounts", {"name": "Contoso"})
    with pytest.raises(ValueError, match="changeset"):
        batch.update("accounts", account, {"name": "X"})
    with batch.changeset():
        with pytest.raises(ValueError, match="changeset"):
            batch.create("contacts", {"parentcustomerid_account@odata.bind": account})
        with pytest.raises(ValueError, match="GET"):
            batch.retrieve("contacts", CONTACT_ID)
        with pytest.raises(ValueError):
            batch.delete("contacts", Ref("$9"))
    assert len(batch) == 1


def test_empty_batch_sends_nothing(mock: responses.RequestsMock, client: DataverseClient) -> None:
    assert client.batch().execute() == []
    assert len(mock.calls) == 0


# ----- tokens ----------------------------------------------------------------------------------

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LOGIN = f"https://login.microsoftonline.com/{TENANT}"
CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
CLIENT_SECRET = "very-secret-value"
TOKEN_ENDPOINT = f"{LOGIN}/oauth2/v2.0/token"


@pytest.fixture
def login() -> Iterator[responses.RequestsMock]:
    # MSAL keeps instance discovery results per process, so whether it asks again depends
    # on which test ran first: these tests count token calls instead of requiring all mocks.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def add_token_endpoint(
    mock: responses.RequestsMock, reply: dict[str, Any], *, status: int = 200
) -> None:
    """Entra ID for our tenant, answering token requests with `reply`."""
    # MSAL asks which host names share a token cache (instance discovery), then reads the
    # tenant's OpenID configuration for the token endpoint.
    mock.add(
        responses.GET,
        "https://login.microsoftonline.com/common/discovery/instance",
        json={
            "tenant_discovery_endpoint": f"{LOGIN}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [
                {
                    "preferred_network": "login.microsoftonline.com",
                    "preferred_cache": "login.windows.net",
                    "aliases": [
                        "login.microsoftonline.com",
                        "login.windows.net",
                        "sts.windows.net",
                    ],
                }
            ],
        },
    )
    mock.add(
        responses.GET,
        f"{LOGIN}/v2.0/.well-known/openid-configuration",
        json={
            "token_endpoint": f"{LOGIN}/oauth2/v2.0/token",
            "authorization_endpoint": f"{LOGIN}/oauth2/v2.0/authorize",
            "issuer": f"{LOGIN}/v2.0",
        },
    )
    mock.add(responses.POST, TOKEN_ENDPOINT, status=status, json=reply)


def app_token(access_token: str) -> dict[str, Any]:
    return {"token_type": "Bearer", "expires_in": 3599, "access_token": access_token}


def token_requests(login: responses.RequestsMock) -> list[Any]:
    return [call.request for call in login.calls if call.request.url == TOKEN_ENDPOINT]


def test_msal_provider_asks_the_tenant_for_the_environment_scope_and_caches(
    login: responses.RequestsMock,
) -> None:
    add_token_endpoint(login, app_token("app-token-1"))
    provider = MsalTokenProvider(
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        environment_url=f"{ORG}/",
        client_secret=CLIENT_SECRET,
    )

    assert provider.get_token() == "app-token-1"
    calls_after_first = len(login.calls)
    assert provider.get_token() == "app-token-1"
    assert len(login.calls) == calls_after_first  # served from MSAL's cache

    assert len(token_requests(login)) == 1
    form = parse_qs(str(token_requests(login)[0].body))
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == [CLIENT_ID]
    assert form["scope"] == [f"{ORG}/.default"]
    assert provider.authority == LOGIN

    provider.invalidate()
    assert provider.get_token() == "app-token-1"
    assert len(token_requests(login)) == 2


def test_msal_provider_raises_auth_error_without_leaking_the_secret(
    login: responses.RequestsMock,
) -> None:
    add_token_endpoint(
        login,
        {
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
        },
        status=401,
    )
    provider = MsalTokenProvider(
        tenant_id=TENANT, client_id=CLIENT_ID, environment_url=ORG, client_secret=CLIENT_SECRET
    )

    with pytest.raises(AuthError) as raised:
        provider.get_token()

    assert raised.value.error == "invalid_client"
    assert "AADSTS7000215" in raised.value.description
    assert CLIENT_SECRET not in str(raised.value)
    assert CLIENT_SECRET not in repr(provider)


def test_msal_provider_signs_an_assertion_with_a_certificate(
    login: responses.RequestsMock, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmchat")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "crmchat.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    add_token_endpoint(login, app_token("cert-token"))
    provider = MsalTokenProvider(
        tenant_id=TENANT, client_id=CLIENT_ID, environment_url=ORG, certificate_path=str(pem)
    )

    assert provider.get_token() == "cert-token"

    form = parse_qs(str(token_requests(login)[0].body))
    assert form["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]
    assert form["client_assertion"][0].count(".") == 2  # a signed JWT
    assert "client_secret" not in form


def test_msal_provider_needs_exactly_one_credential() -> None:
    with pytest.raises(ValueError):
        MsalTokenProvider(tenant_id=TENANT, client_id=CLIENT_ID, environment_url=ORG)
    with pytest.raises(ValueError):
        MsalTokenProvider(
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            environment_url=ORG,
            client_secret=CLIENT_SECRET,
            certificate_path="/tmp/cert.pem",
        )


def test_package_exports_are_complete_and_sorted() -> None:
    import connector.dataverse as package

    assert package.__all__ == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None
    for module_name in ("auth", "batch", "client", "errors", "odata", "query", "retry"):
        module = importlib.import_module(f"connector.dataverse.{module_name}")
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        }
        assert public <= set(module.__all__), module_name
