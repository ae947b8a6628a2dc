"""The configuration cache against the embedded Dataverse: contents, request counts, failures."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from connector.crm import tables
from connector.crm.design import WidgetDesign
from connector.crm.directory import (
    DEFAULT_ANSWER_SECS,
    DEFAULT_CAPACITY,
    DEFAULT_TOPIC_COLOR,
    DEFAULT_WRAPUP_SECS,
    LISTING_EVERY,
    Directory,
)
from connector.dataverse import (
    DataverseClient,
    DataverseError,
    ServiceUnavailable,
    StaticTokenProvider,
)
from connector.dataverse import Forbidden as DataverseForbidden
from connector.dataverse.transport import WsgiAdapter
from connector.dataverse_local import (
    ADMIN_USER_ID,
    DataverseApp,
    add_user,
    assign_field_security_profile,
    issue_token,
)
from connector.solution.model import Schema

ORIGIN = "http://dataverse.invalid"


class Recorder:
    """WSGI middleware: records every request; answers 503 while `failing`."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.requests: list[str] = []
        self.answers: list[tuple[str, str, bytes]] = []  # (path, query, body) answered
        self.failing = False
        self.gate = threading.Event()  # cleared: requests hang until it is set again
        self.gate.set()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            self.requests.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        self.gate.wait(timeout=30)
        if self.failing:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error":{"code":"","message":"down for maintenance"}}']
        body = b"".join(self.app(environ, start_response))
        with self._lock:
            self.answers.append((environ["PATH_INFO"], environ["QUERY_STRING"], body))
        return [body]


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Org:
    client: DataverseClient  # counted, as the service
    admin: DataverseClient  # not counted, for seeding
    recorder: Recorder
    ids: dict[str, str] = field(default_factory=dict)


def _client(app: Any, token: str) -> DataverseClient:
    session = requests.Session()
    session.mount(ORIGIN, WsgiAdapter(app))
    return DataverseClient(
        f"{ORIGIN}/api/data/v9.2/",
        StaticTokenProvider(token),
        session=session,
        max_retry_wait_secs=0,
        sleep=lambda _secs: None,
    )


@pytest.fixture
def org(dataverse_app: DataverseApp, schema: Schema) -> Iterator[Org]:
    recorder = Recorder(dataverse_app)
    admin = _client(
        dataverse_app, issue_token(dataverse_app.store.signing_secret, user_id=ADMIN_USER_ID)
    )
    role = schema.role_named("CRM Chat Administrator")
    assert role is not None
    service_user = add_user(
        dataverse_app.store,
        domain_name="svc@crmchat.local",
        first_name="CRM Chat",
        last_name="Service",
        role_ids=[role.id],
    )
    # The application user holds the solution's column security profile, as the README
    # tells an admin to set it up: the widget secret is a secured column.
    for profile in schema.field_security_profiles:
        assign_field_security_profile(dataverse_app.store, service_user, profile.id)
    bob_user = add_user(
        dataverse_app.store,
        domain_name="bob@crmchat.local",
        first_name="Bob",
        last_name="Ray",
        role_ids=[],
    )
    service = _client(
        recorder, issue_token(dataverse_app.store.signing_secret, user_id=service_user)
    )
    ids: dict[str, str] = {"bob_user": bob_user}
    ids["sales"] = admin.create(
        tables.TOPICS, {"crmchat_name": "Sales", "crmchat_color": "#ff0000"}
    )
    ids["support"] = admin.create(tables.TOPICS, {"crmchat_name": "Support"})
    ids["old"] = admin.create(
        tables.TOPICS, {"crmchat_name": "Old", "statecode": 1, "statuscode": 2}
    )
    ids["ann"] = admin.create(
        tables.AGENTS,
        {
            "crmchat_name": "Ann Lee",
            "crmchat_email": "ann@crmchat.local",
            "crmchat_image": "data:image/png;base64,AAAA",
            "crmchat_SystemUserId@odata.bind": tables.bind(tables.SYSTEMUSERS, ADMIN_USER_ID),
            "crmchat_agent_topic@odata.bind": [
                tables.bind(tables.TOPICS, ids["sales"]),
                tables.bind(tables.TOPICS, ids["old"]),
            ],
        },
    )
    ids["bob"] = admin.create(
        tables.AGENTS,
        {
            "crmchat_name": "Bob Ray",
            "crmchat_SystemUserId@odata.bind": tables.bind(tables.SYSTEMUSERS, bob_user),
            "crmchat_agent_topic@odata.bind": [tables.bind(tables.TOPICS, ids["support"])],
        },
    )
    admin.create(
        tables.AGENTS,
        {
            "crmchat_name": "Gone",
            # One profile per user (alternate key): an inactive profile has a user of its own.
            "crmchat_SystemUserId@odata.bind": tables.bind(tables.SYSTEMUSERS, service_user),
            "statecode": 1,
            "statuscode": 2,
        },
    )
    ids["shop"] = admin.create(
        tables.WIDGETS,
        {
            "crmchat_name": "Shop",
            "crmchat_secret": "shop-site-secret",
            "crmchat_design": json.dumps({"title": "Ask us", "colors": {"primary": "#112233"}}),
            "crmchat_widget_topic@odata.bind": [tables.bind(tables.TOPICS, ids["sales"])],
        },
    )
    ids["broken"] = admin.create(
        tables.WIDGETS,
        {
            "crmchat_name": "Broken",
            "crmchat_design": '{"colors": {"primary": "javascript:"}}',
            "crmchat_widget_topic@odata.bind": [tables.bind(tables.TOPICS, ids["support"])],
        },
    )
    ids["off"] = admin.create(tables.WIDGETS, {"crmchat_name": "Off", "crmchat_enabled": False})
    admin.create(tables.SNIPPETS, {"crmchat_name": "Hello", "crmchat_text": "Hi, how can I help?"})
    admin.create(
        tables.SNIPPETS,
        {"crmchat_name": "Retired", "crmchat_text": "x", "statecode": 1, "statuscode": 2},
    )
    yield Org(client=service, admin=admin, recorder=recorder, ids=ids)
    service.close()
    admin.close()


def test_agents_carry_their_active_topics(org: Org) -> None:
    directory = Directory(org.client)
    ids = org.ids
    names = [agent.name for agent in directory.agents()]
    assert names == ["Ann Lee", "Bob Ray"]  # the inactive agent is left out
    ann = directory.agent(ids["ann"])
    assert ann is not None
    assert ann.topic_ids == {ids["sales"]}  # the inactive topic is left out
    assert ann.user_id == ADMIN_USER_ID and ann.email == "ann@crmchat.local"
    assert ann.image == "data:image/png;base64,AAAA"
    assert directory.agent_for_user(ids["bob_user"].upper()) == directory.agent(ids["bob"])
    assert set(directory.topics()) == {ids["sales"], ids["support"]}
    assert directory.topics()[ids["sales"]].color == "#ff0000"


def test_widgets_carry_topics_and_parsed_designs(
    org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Directory(org.client)
    with caplog.at_level(logging.ERROR, logger="connector.crm.directory"):
        shop = directory.widget(org.ids["shop"])
        broken = directory.widget(org.ids["broken"])
    assert shop is not None and broken is not None
    assert shop.enabled and shop.topic_ids == {org.ids["sales"]}
    assert shop.design.title == "Ask us" and shop.design.colors.primary == "#112233"
    # A broken design falls back to the defaults and is logged; its widget still works.
    assert broken.design == WidgetDesign() and broken.topic_ids == {org.ids["support"]}
    assert org.ids["broken"] in caplog.text
    off = directory.widget(org.ids["off"])
    assert off is not None and not off.enabled


def test_the_service_reads_the_secured_widget_secret_to_verify_identity_tokens(
    org: Org, dataverse_app: DataverseApp, schema: Schema
) -> None:
    shop = Directory(org.client).widget(org.ids["shop"])
    assert shop is not None and shop.secret == "shop-site-secret"
    # An agent-token directory (a user without the profile) sees no secret, so it could
    # never verify — nor forge — a site token.
    role = schema.role_named("CRM Chat Agent")
    assert role is not None
    agent = add_user(dataverse_app.store, domain_name="ag@crmchat.local", role_ids=[role.id])
    as_agent = _client(
        dataverse_app, issue_token(dataverse_app.store.signing_secret, user_id=agent)
    )
    seen = Directory(as_agent).widget(org.ids["shop"])
    assert seen is not None and seen.secret is None


def test_snippets_by_lower_case_name(org: Org) -> None:
    snippets = Directory(org.client).snippets()
    assert list(snippets) == ["hello"]
    assert snippets["hello"].name == "Hello" and snippets["hello"].text == "Hi, how can I help?"


def test_one_refresh_is_six_requests_then_cached_until_the_ttl(org: Org) -> None:
    clock = Clock()
    directory = Directory(org.client, ttl_secs=30, clock=clock)
    directory.agents()
    # topics, agents, widgets, snippets, labels, the settings record
    assert len(org.recorder.requests) == 6
    assert all(r.startswith("GET ") for r in org.recorder.requests)
    for _ in range(50):
        directory.widget(org.ids["shop"])
        directory.agent_for_user(ADMIN_USER_ID)
        directory.snippets()
    clock.now += 29
    directory.labels()
    directory.chat_enabled()
    assert len(org.recorder.requests) == 6
    clock.now += 2
    directory.topics()  # stale: served at once, the refresh is the background thread's job
    assert len(org.recorder.requests) == 6
    assert directory.refresh()
    assert len(org.recorder.requests) == 12


def test_changes_show_after_the_ttl_or_invalidate(org: Org) -> None:
    clock = Clock()
    directory = Directory(org.client, ttl_secs=30, clock=clock)
    assert directory.snippets().keys() == {"hello"}
    org.admin.create(tables.SNIPPETS, {"crmchat_name": "Bye", "crmchat_text": "Goodbye!"})
    assert directory.snippets().keys() == {"hello"}
    directory.invalidate()
    assert directory.snippets().keys() == {"hello", "bye"}


def test_a_failed_refresh_keeps_serving_the_last_copy(
    org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    directory = Directory(org.client, ttl_secs=30, clock=clock)
    before = directory.agents()
    org.recorder.failing = True
    clock.now += 60
    with caplog.at_level(logging.WARNING, logger="connector.crm.directory"):
        assert not directory.refresh()
    assert directory.agents() == before
    assert "serving the last copy" in caplog.text
    org.recorder.failing = False
    org.admin.create(tables.SNIPPETS, {"crmchat_name": "New", "crmchat_text": "x"})
    assert directory.refresh()
    assert "new" in directory.snippets()


def test_readers_never_wait_on_a_slow_dataverse_while_the_background_refreshes(
    org: Org,
) -> None:
    """A Dataverse that hangs (a timeout in the making) must not stall chat reads."""
    clock = Clock()
    directory = Directory(org.client, ttl_secs=30, clock=clock)
    directory.start()
    try:
        assert len(org.recorder.requests) == 6  # the first snapshot, read by start()
        org.admin.create(tables.SNIPPETS, {"crmchat_name": "Later", "crmchat_text": "x"})
        org.recorder.gate.clear()  # Dataverse stops answering
        clock.now += 31
        answers: list[set[str]] = []
        reader = threading.Thread(target=lambda: answers.append(set(directory.snippets())))
        reader.start()
        reader.join(timeout=2)
        assert answers == [{"hello"}], "a reader waited on the refresh"
        assert directory.age_secs() == 31
        org.recorder.gate.set()  # Dataverse answers again: the refresher swaps the snapshot
        deadline = time.monotonic() + 10
        while "later" not in directory.snippets() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "later" in directory.snippets()
        assert directory.age_secs() == 0
    finally:
        org.recorder.gate.set()
        directory.stop()


def test_with_nothing_cached_a_failure_reaches_the_caller(org: Org) -> None:
    org.recorder.failing = True
    with pytest.raises(ServiceUnavailable):
        Directory(org.client).agents()


def test_concurrent_readers_share_one_refresh(org: Org) -> None:
    directory = Directory(org.client)
    start = threading.Barrier(8)
    results: list[int] = []

    def read() -> None:
        start.wait()
        results.append(len(directory.agents()))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [2] * 8
    assert len(org.recorder.requests) == 6


@pytest.mark.parametrize(
    "bad_id", ["", "x') or (1 eq 1", "../crmchat_agents", "00000000-0000-0000-0000-00000000000g"]
)
def test_malformed_ids_find_nothing(org: Org, bad_id: str) -> None:
    directory = Directory(org.client)
    directory.agents()
    sent = len(org.recorder.requests)
    assert directory.agent(bad_id) is None
    assert directory.agent_for_user(bad_id) is None
    assert directory.widget(bad_id) is None
    assert len(org.recorder.requests) == sent


def test_a_bad_topic_colour_written_through_the_web_api_is_ignored_and_reported(
    org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    admin = org.admin
    # Dataverse itself has no rule for the column's content (no plugin is registered), so
    # the write succeeds; the service must not pass the value on to pages.
    admin.update(tables.TOPICS, org.ids["sales"], {"crmchat_color": "#zzzzzz"})
    admin.update(tables.TOPICS, org.ids["support"], {"crmchat_color": "#ABC"})
    with caplog.at_level(logging.WARNING, logger="connector.crm.directory"):
        topics = Directory(org.client).topics()
    assert topics[org.ids["sales"]].color == DEFAULT_TOPIC_COLOR
    assert topics[org.ids["support"]].color == "#abc"
    assert org.ids["sales"] in caplog.text and "#zzzzzz" in caplog.text


def test_an_agent_cannot_take_over_an_organisation_snippet(
    org: Org, dataverse_app: DataverseApp, schema: Schema
) -> None:
    role = schema.role_named("CRM Chat Agent")
    assert role is not None
    mallory = add_user(dataverse_app.store, domain_name="mallory@x.test", role_ids=[role.id])
    agent = _client(dataverse_app, issue_token(dataverse_app.store.signing_secret, user_id=mallory))
    (hello,) = org.admin.list(
        tables.SNIPPETS, select=["crmchat_snippetid"], filter="crmchat_name eq 'Hello'"
    )
    with pytest.raises(DataverseForbidden):  # Basic write: only the owner's own snippets
        agent.update(tables.SNIPPETS, hello["crmchat_snippetid"], {"crmchat_text": "forged"})
    time.sleep(1.1)  # createdon counts whole seconds: the duplicate is clearly the later one
    try:
        agent.create(tables.SNIPPETS, {"crmchat_name": "HELLO", "crmchat_text": "forged"})
    except DataverseError:
        pass  # the alternate key refused the duplicate name, as real Dataverse does
    snippets = Directory(org.client).snippets()
    assert snippets["hello"].text == "Hi, how can I help?"
    agent.close()


# -- the refresh reads only what changed -------------------------------------------------


def _rows_answered(org: Org, since: int) -> dict[str, int]:
    """Rows in each list answer after the first `since` answers, by entity set."""
    counts: dict[str, int] = {}
    for path, _query, body in org.recorder.answers[since:]:
        payload = json.loads(body)
        if "value" in payload:
            name = path.rsplit("/", 1)[-1]
            counts[name] = counts.get(name, 0) + len(payload["value"])
    return counts


def test_a_refresh_with_nothing_changed_sends_only_the_small_queries(org: Org) -> None:
    directory = Directory(org.client)
    directory.agents()
    full = sum(len(body) for _, _, body in org.recorder.answers)
    sent = len(org.recorder.requests)
    assert directory.refresh()
    # one query per table for rows modified since the newest one held, and the switches
    assert len(org.recorder.requests) - sent == 6
    queries = [query for _, query, _ in org.recorder.answers[sent:]]
    assert sum("modifiedon" in query for query in queries) == 5
    counts = _rows_answered(org, sent)
    assert counts == dict.fromkeys(counts, 0) and len(counts) == 5
    quiet = sum(len(body) for _, _, body in org.recorder.answers[sent:])
    assert quiet * 4 < full  # the images, designs and texts are not read again


def test_an_edited_widget_agent_and_topic_show_on_the_next_refresh(org: Org) -> None:
    directory = Directory(org.client)
    assert directory.agents()[0].name == "Ann Lee"
    sent = len(org.recorder.answers)
    time.sleep(1.1)  # modifiedon counts whole seconds: the edits are in a later one
    ids = org.ids
    org.admin.update(tables.WIDGETS, ids["shop"], {"crmchat_design": json.dumps({"title": "Hi"})})
    org.admin.update(tables.AGENTS, ids["ann"], {"crmchat_name": "Ann Lee-Smith"})
    org.admin.update(tables.TOPICS, ids["support"], {"crmchat_name": "Help"})
    org.admin.update(tables.AGENTS, ids["bob"], {"statecode": 1, "statuscode": 2})
    assert directory.refresh()
    shop = directory.widget(ids["shop"])
    assert shop is not None and shop.design.title == "Hi"
    assert shop.topic_ids == {ids["sales"]}  # its links came with it
    assert [agent.name for agent in directory.agents()] == ["Ann Lee-Smith"]  # Bob left
    assert directory.topics()[ids["support"]].name == "Help"
    # only the changed rows were read
    assert _rows_answered(org, sent) == {
        "crmchat_topics": 1,
        "crmchat_agents": 2,
        "crmchat_widgets": 1,
        "crmchat_snippets": 0,
        "crmchat_labels": 0,
    }
    org.admin.update(tables.WIDGETS, ids["shop"], {"crmchat_design": json.dumps({"title": "Yo"})})
    # A second edit of a row within the same second as the one held can only be told
    # apart by its versionnumber: the listing refresh finds it.
    for _ in range(LISTING_EVERY):
        assert directory.refresh()
    shop = directory.widget(ids["shop"])
    assert shop is not None and shop.design.title == "Yo"


def test_a_deleted_record_and_a_removed_link_disappear_by_the_listing_refresh(
    org: Org,
) -> None:
    directory = Directory(org.client)
    ids = org.ids
    assert directory.widget(ids["broken"]) is not None
    org.admin.delete(tables.WIDGETS, ids["broken"])
    org.admin.disassociate(tables.AGENTS, ids["ann"], tables.AGENT_TOPICS, ids["sales"])
    sent = len(org.recorder.requests)
    for _ in range(LISTING_EVERY):
        assert directory.refresh()
    assert directory.widget(ids["broken"]) is None
    ann = directory.agent(ids["ann"])
    assert ann is not None and ann.topic_ids == frozenset()
    # LISTING_EVERY refreshes by changes, one of them also listing each table's ids
    assert len(org.recorder.requests) - sent == 6 * LISTING_EVERY + 5
    assert directory.widget(ids["shop"]) is not None


def test_the_agents_capacity_and_the_topics_answer_time_limit_come_from_their_columns(
    org: Org,
) -> None:
    ids = org.ids
    org.admin.update(tables.AGENTS, ids["ann"], {"crmchat_capacity": 1})
    org.admin.update(tables.TOPICS, ids["sales"], {"crmchat_answersecs": 45})
    # Dataverse refuses a value outside the column's range, as the real one does.
    with pytest.raises(DataverseError):
        org.admin.update(tables.AGENTS, ids["bob"], {"crmchat_capacity": 0})
    with pytest.raises(DataverseError):
        org.admin.update(tables.TOPICS, ids["support"], {"crmchat_answersecs": 601})
    directory = Directory(org.client)
    ann, bob = directory.agent(ids["ann"]), directory.agent(ids["bob"])
    assert ann is not None and ann.capacity == 1
    assert bob is not None and bob.capacity == DEFAULT_CAPACITY  # left empty
    topics = directory.topics()
    assert topics[ids["sales"]].answer_secs == 45
    assert topics[ids["support"]].answer_secs == DEFAULT_ANSWER_SECS


def test_the_topics_wrapup_time_limit_comes_from_its_column(org: Org) -> None:
    ids = org.ids
    org.admin.update(tables.TOPICS, ids["sales"], {"crmchat_wrapupsecs": 90})
    with pytest.raises(DataverseError):  # the column's range is 30-3,600
        org.admin.update(tables.TOPICS, ids["support"], {"crmchat_wrapupsecs": 29})
    topics = Directory(org.client).topics()
    assert topics[ids["sales"]].wrapup_secs == 90
    assert topics[ids["support"]].wrapup_secs == DEFAULT_WRAPUP_SECS


def test_the_topics_chats_per_agent_and_wrapup_blocking_come_from_their_columns(
    org: Org,
) -> None:
    ids = org.ids
    org.admin.update(
        tables.TOPICS, ids["sales"], {"crmchat_maxperagent": 2, "crmchat_blockwrapup": False}
    )
    with pytest.raises(DataverseError):  # the column's range is 1-20
        org.admin.update(tables.TOPICS, ids["support"], {"crmchat_maxperagent": 0})
    topics = Directory(org.client).topics()
    assert topics[ids["sales"]].max_per_agent == 2
    assert topics[ids["sales"]].block_wrapup is False
    # Left empty: no limit of the topic's own, and wrap-up blocks (Omnichannel's default).
    assert topics[ids["support"]].max_per_agent is None
    assert topics[ids["support"]].block_wrapup is True
