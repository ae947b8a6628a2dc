"""CRM Chat's own Dataverse client against the embedded Dataverse over real HTTP.

Nothing is mocked: the client sends its real requests to a threaded server on loopback,
which answers in the Web API's wire format from SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connector.dataverse import (
    BadRequest,
    DataverseClient,
    Forbidden,
    NotFound,
    PreconditionFailed,
    StaticTokenProvider,
    UpsertMode,
    odata,
)
from connector.dataverse_local import (
    ADMIN_USER_ID,
    DataverseApp,
    add_user,
    create_dataverse_app,
    issue_token,
    start_in_thread,
)
from connector.dataverse_local.throttle import ServiceProtection
from connector.solution.model import Schema


@pytest.fixture
def client(dataverse_url: str, admin_token: str) -> Iterator[DataverseClient]:
    with DataverseClient(dataverse_url, StaticTokenProvider(admin_token)) as dv:
        yield dv


def _role(schema: Schema, name: str) -> str:
    role = schema.role_named(name)
    assert role is not None
    return role.id


def test_create_retrieve_update_delete(client: DataverseClient) -> None:
    contact_id = client.create("contacts", {"firstname": "Ann", "lastname": "O'Neil"})
    record = client.retrieve("contacts", contact_id, select=["fullname", "lastname"])
    assert record["fullname"] == "Ann O'Neil" and record["contactid"] == contact_id
    client.update("contacts", contact_id, {"emailaddress1": "ann@contoso.test"})
    assert client.retrieve("contacts", contact_id)["emailaddress1"] == "ann@contoso.test"
    client.delete("contacts", contact_id)
    with pytest.raises(NotFound) as missing:
        client.retrieve("contacts", contact_id)
    assert missing.value.code == "0x80040217"


def test_an_etag_mismatch_is_refused_and_changes_nothing(client: DataverseClient) -> None:
    contact_id = client.create("contacts", {"lastname": "Novak"})
    etag = client.retrieve("contacts", contact_id)["@odata.etag"]
    client.update("contacts", contact_id, {"firstname": "Eva"}, etag=etag)
    with pytest.raises(PreconditionFailed):
        client.update("contacts", contact_id, {"firstname": "Stale"}, etag=etag)
    assert client.retrieve("contacts", contact_id)["firstname"] == "Eva"


def test_upsert_modes_and_retry_safe_create(client: DataverseClient) -> None:
    topic_id = "6d1f4ea2-4b0e-4a57-9b0b-1f6a3c1e0a01"
    client.upsert(
        "crmchat_topics", topic_id, {"crmchat_name": "Sales"}, mode=UpsertMode.CREATE_ONLY
    )
    with pytest.raises(PreconditionFailed):
        client.upsert(
            "crmchat_topics", topic_id, {"crmchat_name": "X"}, mode=UpsertMode.CREATE_ONLY
        )
    client.upsert("crmchat_topics", topic_id, {"crmchat_color": "#00aa00"})
    with pytest.raises(NotFound):
        client.upsert(
            "crmchat_topics",
            "6d1f4ea2-4b0e-4a57-9b0b-1f6a3c1e0a02",
            {"crmchat_name": "Y"},
            mode=UpsertMode.UPDATE_ONLY,
        )
    record = client.retrieve("crmchat_topics", topic_id)
    assert (record["crmchat_name"], record["crmchat_color"]) == ("Sales", "#00aa00")
    assert client.create(
        "crmchat_topics", {"crmchat_name": "Support"}, record_id=topic_id[:-1] + "3"
    )
    names = sorted(
        t["crmchat_name"] for t in client.list("crmchat_topics", select=["crmchat_name"])
    )
    assert names == ["Sales", "Support"]


def test_listing_pages_through_next_links(client: DataverseClient) -> None:
    for i in range(7):
        client.create("contacts", {"firstname": f"P{i}", "lastname": "Pager"})
    listing = client.list(
        "contacts",
        select=["firstname"],
        filter=odata.eq("lastname", "pager"),
        orderby="firstname asc",
        page_size=3,
        count=True,
    )
    names = [c["firstname"] for c in listing]
    assert names == [f"P{i}" for i in range(7)]  # case-insensitive filter, all three pages
    assert listing.count == 7


def test_user_text_in_a_filter_stays_a_literal(client: DataverseClient) -> None:
    client.create("contacts", {"firstname": "Liam", "lastname": "O'Neil"})
    client.create("contacts", {"firstname": "Mia", "lastname": "Smith"})
    found = list(
        client.list("contacts", select=["firstname"], filter=odata.eq("lastname", "O'Neil"))
    )
    assert [c["firstname"] for c in found] == ["Liam"]
    attack = "x' or 1 eq 1 or 'a"
    assert list(client.list("contacts", filter=odata.eq("lastname", attack))) == []
    assert list(client.list("contacts", filter=odata.contains("lastname", "%"))) == []
    with pytest.raises(ValueError):
        client.retrieve("contacts", "1) or (1")


def test_a_broken_filter_is_a_clear_400(client: DataverseClient) -> None:
    with pytest.raises(BadRequest) as bad:
        list(client.list("contacts", filter="lastname eq 'unterminated"))
    assert "unterminated literal" in bad.value.message


def test_batch_changeset_with_a_reference_then_rollback(client: DataverseClient) -> None:
    batch = client.batch()
    with batch.changeset():
        account = batch.create("accounts", {"name": "Contoso"})
        batch.create(
            "contacts", {"lastname": "Batch", "parentcustomerid_account@odata.bind": account}
        )
    results = batch.execute()
    assert [r.status for r in results] == [204, 204]
    contact = next(iter(client.list("contacts", filter=odata.eq("lastname", "Batch"))))
    assert contact["_parentcustomerid_value"] == results[0].entity_id

    failing = client.batch()
    with failing.changeset():
        failing.create("accounts", {"name": "Rolled back"})
        failing.create("contacts", {"lastname": "x" * 1000})  # longer than lastname allows
    with pytest.raises(BadRequest):
        failing.execute()
    assert list(client.list("accounts", filter=odata.eq("name", "Rolled back"))) == []


def test_associate_and_disassociate_agent_topics(client: DataverseClient) -> None:
    agent = client.create("crmchat_agents", {"crmchat_name": "Sam"})
    sales = client.create("crmchat_topics", {"crmchat_name": "Sales"})
    billing = client.create("crmchat_topics", {"crmchat_name": "Billing"})
    for topic in (sales, billing):
        client.associate("crmchat_agents", agent, "crmchat_agent_topic", "crmchat_topics", topic)
    topics = client.list_related(
        "crmchat_agents", agent, "crmchat_agent_topic", select=["crmchat_name"]
    )
    assert sorted(t["crmchat_name"] for t in topics) == ["Billing", "Sales"]
    client.disassociate("crmchat_agents", agent, "crmchat_agent_topic", billing)
    topics = client.list_related(
        "crmchat_agents", agent, "crmchat_agent_topic", select=["crmchat_name"]
    )
    assert [t["crmchat_name"] for t in topics] == ["Sales"]
    # The same link seen from the topic's side, through a lambda filter.
    agents = client.list(
        "crmchat_agents", filter=f"crmchat_agent_topic/any(t: t/crmchat_topicid eq {sales})"
    )
    assert [a["crmchat_agentid"] for a in agents] == [agent]


def test_who_am_i_names_the_token_user(client: DataverseClient) -> None:
    assert client.who_am_i().user_id == ADMIN_USER_ID


def test_roles_decide_what_a_user_may_read(
    dataverse_app: DataverseApp,
    dataverse_url: str,
    schema: Schema,
    token_for: Callable[[str], str],
) -> None:
    app_user = add_user(
        dataverse_app.store,
        domain_name="una@contoso.test",
        role_ids=[_role(schema, "CRM Chat App User")],
    )
    agent = add_user(
        dataverse_app.store,
        domain_name="sam@contoso.test",
        role_ids=[_role(schema, "CRM Chat Agent")],
    )
    with DataverseClient(dataverse_url, StaticTokenProvider(token_for(app_user))) as una:
        with pytest.raises(Forbidden) as refused:
            list(una.list("crmchat_chats"))
        assert "is missing prvReadActivity privilege" in refused.value.message
    with DataverseClient(dataverse_url, StaticTokenProvider(token_for(agent))) as sam:
        assert list(sam.list("crmchat_chats")) == []


def test_throttling_is_waited_out_and_nothing_is_doubled(tmp_path: Path, schema: Schema) -> None:
    clock = [0.0]
    limits = ServiceProtection(max_requests=3, window_secs=60, clock=lambda: clock[0])
    app = create_dataverse_app(tmp_path / "t.db", schema=schema, limits=limits)
    url, stop = start_in_thread(db_path=tmp_path / "t.db", app=app)
    waits: list[float] = []

    def sleep(secs: float) -> None:  # the client's waits move the server's clock
        waits.append(secs)
        clock[0] += secs

    token = issue_token(app.store.signing_secret, user_id=ADMIN_USER_ID)
    try:
        with DataverseClient(url, StaticTokenProvider(token), sleep=sleep) as dv:
            ids = [dv.create("accounts", {"name": f"A{i}"}) for i in range(5)]
            assert len(waits) == 1 and waits[0] >= 1  # the 4th request met a 429
            names = sorted(a["name"] for a in dv.list("accounts", select=["name"]))
    finally:
        stop()
        app.store.close()
    assert names == [f"A{i}" for i in range(5)] and len(set(ids)) == 5
