"""The durable outbox: retries, parking, restarts; and finished chats through 429s and 503s.

The fault tests run the real write path (`write_chat_activity`) through the outbox
against the embedded Dataverse: its service protection answers 429 with ``Retry-After``,
and a small WSGI middleware answers 503 for the first requests. Afterwards each chat is
exactly one completed activity, also after the process "restarts" (a new `Outbox` on
the same file).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from chat_fakes import SERVICE_SECRET, activity_of, write_chat

from connector.crm import tables
from connector.crm.chat_activity import (
    CHAT_ACTIVITY_KIND,
    FinishedChat,
    chat_activity_handler,
)
from connector.crm.outbox import MAX_BACKOFF_SECS, Outbox
from connector.dataverse import (
    BadRequest,
    ConnectionFailed,
    DataverseClient,
    Forbidden,
    ServerError,
    ServiceUnavailable,
    StaticTokenProvider,
    TooManyRequests,
)
from connector.dataverse.transport import WsgiAdapter
from connector.dataverse_local import (
    ADMIN_USER_ID,
    DataverseApp,
    add_user,
    create_dataverse_app,
    issue_token,
)
from connector.dataverse_local.throttle import ServiceProtection
from connector.solution.model import Schema

ORIGIN = "http://dataverse.invalid"


@dataclass
class Clock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Handler:
    """Records payloads; raises the queued errors first, one per call."""

    errors: list[BaseException] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, payload: dict[str, Any]) -> None:
        self.calls.append(payload)
        if self.errors:
            raise self.errors.pop(0)


def throttled(retry_after: int | None = None) -> TooManyRequests:
    return TooManyRequests(429, "0x80072322", "slow down", "u", retry_after=retry_after)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def outbox(tmp_path: Path, handler: Handler, clock: Clock) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.sqlite", {"job": handler}, clock=clock) as box:
        yield box


# ----- the queue ------------------------------------------------------------------------


def test_an_item_runs_once_and_is_done(outbox: Outbox, handler: Handler) -> None:
    outbox.enqueue("job", "k1", {"n": 1})
    assert outbox.pending() == 1
    assert outbox.run_due() == 1
    assert handler.calls == [{"n": 1}]
    assert outbox.pending() == 0
    assert outbox.run_due() == 0 and len(handler.calls) == 1


def test_enqueue_is_idempotent_on_the_key_even_after_done(outbox: Outbox, handler: Handler) -> None:
    outbox.enqueue("job", "k1", {"n": 1})
    outbox.enqueue("job", "k1", {"n": 2})
    assert outbox.pending() == 1
    outbox.run_due()
    outbox.enqueue("job", "k1", {"n": 3})
    outbox.run_due()
    assert handler.calls == [{"n": 1}]


def test_enqueue_refuses_unknown_kinds_and_non_json(outbox: Outbox) -> None:
    with pytest.raises(ValueError):
        outbox.enqueue("nope", "k", {})
    with pytest.raises(TypeError):
        outbox.enqueue("job", "k", {"when": object()})
    assert outbox.pending() == 0


def test_retry_after_is_honoured(outbox: Outbox, handler: Handler, clock: Clock) -> None:
    handler.errors = [throttled(retry_after=7)]
    outbox.enqueue("job", "k1", {})
    assert outbox.run_due() == 0
    clock.now += 6
    assert outbox.run_due() == 0 and len(handler.calls) == 1
    clock.now += 1
    assert outbox.run_due() == 1 and len(handler.calls) == 2


def test_without_retry_after_the_backoff_doubles_up_to_a_cap(
    outbox: Outbox, handler: Handler, clock: Clock
) -> None:
    handler.errors = [ServiceUnavailable(503, "", "down", "u", retry_after=None)] * 12
    outbox.enqueue("job", "k1", {})
    outbox.run_due()
    waits: list[int] = []
    for attempt in range(2, 14):
        waited = 0
        while len(handler.calls) < attempt:
            clock.now += 1
            waited += 1
            outbox.run_due()
        waits.append(waited)
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert MAX_BACKOFF_SECS == 300
    assert outbox.pending() == 0


def test_throttling_holds_back_the_rest_of_the_pass(
    outbox: Outbox, handler: Handler, clock: Clock
) -> None:
    handler.errors = [throttled(retry_after=30)]
    for key in ("a", "b", "c"):
        outbox.enqueue("job", key, {"key": key})
    assert outbox.run_due() == 0
    assert len(handler.calls) == 1  # b and c were not sent into the throttle
    clock.now += 30
    assert outbox.run_due() == 3


def test_a_server_error_on_one_item_does_not_hold_back_others(
    outbox: Outbox, handler: Handler
) -> None:
    handler.errors = [ServerError(500, "", "plugin failed", "u")]
    for key in ("a", "b"):
        outbox.enqueue("job", key, {"key": key})
    assert outbox.run_due() == 1
    assert [c["key"] for c in handler.calls] == ["a", "b"]
    assert outbox.pending() == 1


@pytest.mark.parametrize(
    "error",
    [
        BadRequest(400, "0x80044331", "too long", "u"),
        Forbidden(403, "0x80040220", "missing privilege", "u"),
        KeyError("conversation_id"),
    ],
)
def test_permanent_failures_are_parked_not_dropped(
    outbox: Outbox, handler: Handler, clock: Clock, error: Exception
) -> None:
    handler.errors = [error]
    outbox.enqueue("job", "k1", {"n": 1})
    assert outbox.run_due() == 0
    clock.now += 10 * MAX_BACKOFF_SECS
    assert outbox.run_due() == 0 and len(handler.calls) == 1
    assert outbox.pending() == 0
    (parked,) = outbox.parked()
    assert parked["key"] == "k1" and parked["payload"] == {"n": 1}
    assert type(error).__name__ in parked["error"] and parked["attempts"] == 1
    assert outbox.requeue_parked(key="k1") == 1
    assert outbox.run_due() == 1 and outbox.parked() == []


def test_items_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    first = Handler(errors=[throttled(retry_after=60)])
    with Outbox(tmp_path / "o.sqlite", {"job": first}, clock=clock) as box:
        box.enqueue("job", "k1", {"n": 1})
        box.enqueue("job", "k2", {"n": 2})
        box.run_due()
    second = Handler()
    with Outbox(tmp_path / "o.sqlite", {"job": second}, clock=clock) as box:
        assert box.pending() == 2
        assert box.run_due() == 1  # k1 waits for its Retry-After across the restart
        clock.now += 60
        assert box.run_due() == 1
    assert sorted(c["n"] for c in second.calls) == [1, 2]


def test_the_worker_thread_runs_items_as_they_come(tmp_path: Path) -> None:
    done = threading.Event()
    seen: list[dict[str, Any]] = []

    def job(payload: dict[str, Any]) -> None:
        seen.append(payload)
        done.set()

    with Outbox(tmp_path / "o.sqlite", {"job": job}) as box:
        box.start()
        box.enqueue("job", "k1", {"n": 1})
        assert done.wait(5)
        deadline = time.monotonic() + 5
        while box.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert box.pending() == 0
        box.stop()
    assert seen == [{"n": 1}]


# ----- finished chats through faults (embedded Dataverse) -------------------------------


class Unavailable:
    """WSGI middleware: answers 503 to the first `failures` requests; counts all of them."""

    def __init__(self, app: Any, failures: int = 0) -> None:
        self.app = app
        self.failures = failures
        self.count = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.count += 1
        if self.failures > 0:
            self.failures -= 1
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error":{"code":"","message":"The service is unavailable."}}']
        return self.app(environ, start_response)


def _client(app: Any, token: str) -> DataverseClient:
    """A client that does not retry by itself: every 429/503 reaches the outbox."""
    session = requests.Session()
    session.mount(ORIGIN, WsgiAdapter(app))
    return DataverseClient(
        f"{ORIGIN}/api/data/v9.2/",
        StaticTokenProvider(token),
        session=session,
        max_retry_wait_secs=0,
        sleep=lambda _secs: None,
    )


def _service_user(app: DataverseApp, schema: Schema) -> str:
    role = schema.role_named("CRM Chat Administrator")
    assert role is not None
    return add_user(
        app.store,
        domain_name="svc@crmchat.local",
        first_name="CRM Chat",
        last_name="Service",
        role_ids=[role.id],
    )


def _chats(count: int) -> list[FinishedChat]:
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    return [
        FinishedChat(
            conversation_id=str(uuid.uuid4()),
            widget_id=None,
            topic_names=["Sales"],
            visitor_name=f"Visitor {n}",
            visitor_fields={"firstname": f"V{n}"},
            visitor_id=f"v{n}",
            page="https://shop.example/",
            ip="203.0.113.1",
            started_at=start,
            accepted_at=start + timedelta(seconds=5),
            ended_at=start + timedelta(minutes=n + 1),
            owner_user_id=ADMIN_USER_ID,
            participants=[{"kind": "visitor", "id": f"v{n}", "name": f"Visitor {n}"}],
            rating=n % 5 + 1,
            transcript=[
                {
                    "sender": {"kind": "visitor", "name": f"Visitor {n}"},
                    "text": f"message from chat {n}",
                    "sent_at": (start + timedelta(seconds=30)).isoformat(),
                }
            ],
            regarding=None,
        )
        for n in range(count)
    ]


def _stored(admin: DataverseClient) -> dict[str, dict[str, Any]]:
    rows = admin.list(
        tables.CHATS,
        select=["activityid", "statecode", "statuscode", "crmchat_transcript", "crmchat_rating"],
    )
    return {row["activityid"]: row for row in rows}


def _assert_each_chat_once(admin: DataverseClient, chats: list[FinishedChat]) -> None:
    stored = _stored(admin)
    assert set(stored) == {activity_of(chat) for chat in chats}  # none lost, none doubled
    for chat in chats:
        row = stored[activity_of(chat)]
        assert (row["statecode"], row["statuscode"]) == (1, 2)
        assert row["crmchat_rating"] == chat.rating
        assert row["crmchat_transcript"].endswith(
            f"{chat.visitor_name}: {chat.transcript[0]['text']}"
        )


def _drain(box: Outbox, clock: Clock, *, step_secs: float = 1, max_steps: int = 2000) -> int:
    """Run passes while moving the fake clock on, until nothing is pending."""
    steps = 0
    while box.pending():
        box.run_due()
        clock.now += step_secs
        steps += 1
        assert steps < max_steps, "the outbox never drained"
    return steps


def test_a_429_storm_delays_chats_but_writes_each_exactly_once(
    tmp_path: Path, schema: Schema, clock: Clock
) -> None:
    limits = ServiceProtection(max_requests=3, window_secs=20, clock=clock)
    app = create_dataverse_app(tmp_path / "dv.db", schema=schema, limits=limits)
    try:
        user_id = _service_user(app, schema)
        token = issue_token(app.store.signing_secret, user_id=user_id)
        counter = Unavailable(app)
        service = _client(counter, token)
        admin = _client(app, issue_token(app.store.signing_secret, user_id=ADMIN_USER_ID))
        chats = _chats(5)
        with Outbox(
            tmp_path / "outbox.sqlite",
            {
                CHAT_ACTIVITY_KIND: chat_activity_handler(
                    service, secret=SERVICE_SECRET, service_user_id=user_id
                )
            },
            clock=clock,
        ) as box:
            for chat in chats:
                box.enqueue(CHAT_ACTIVITY_KIND, chat.conversation_id, chat.to_dict())
            # 3 requests in 20 s: the first chat's two, the second's create; its close gets 429.
            assert box.run_due() == 1
            assert box.pending() == 4
            states = sorted(row["statecode"] for row in _stored(admin).values())
            assert states == [0, 1]  # the second chat is created but still open
            _drain(box, clock)
            assert box.parked() == []
        _assert_each_chat_once(admin, chats)
        # 5 chats x 2 requests, plus the throttled attempts and the re-create's 412 + read.
        assert counter.count >= 10
    finally:
        app.store.close()


def test_a_503_outage_delays_chats_and_a_restart_doubles_nothing(
    tmp_path: Path, dataverse_app: DataverseApp, schema: Schema, admin_token: str, clock: Clock
) -> None:
    token = issue_token(
        dataverse_app.store.signing_secret, user_id=_service_user(dataverse_app, schema)
    )
    outage = Unavailable(dataverse_app, failures=6)
    service = _client(outage, token)
    admin = _client(dataverse_app, admin_token)
    chats = _chats(4)
    path = tmp_path / "outbox.sqlite"
    handlers = {CHAT_ACTIVITY_KIND: chat_activity_handler(service, secret=SERVICE_SECRET)}
    with Outbox(path, handlers, clock=clock) as box:
        for chat in chats:
            box.enqueue(CHAT_ACTIVITY_KIND, chat.conversation_id, chat.to_dict())
        for _ in range(6):  # the outage lasts six requests: one per pass, then a pause
            assert box.run_due() == 0
            clock.now += MAX_BACKOFF_SECS
        assert _stored(admin) == {}
        assert box.run_due() == 4
    _assert_each_chat_once(admin, chats)
    sent = outage.count
    # The process restarts: the same file, the same chats ended again (e.g. replayed).
    with Outbox(path, handlers, clock=clock) as box:
        assert box.pending() == 0
        for chat in chats:
            box.enqueue(CHAT_ACTIVITY_KIND, chat.conversation_id, chat.to_dict())
        assert box.run_due() == 0
    assert outage.count == sent
    _assert_each_chat_once(admin, chats)


def test_a_crash_between_the_write_and_the_mark_does_not_double_the_activity(
    tmp_path: Path, dataverse_app: DataverseApp, schema: Schema, admin_token: str, clock: Clock
) -> None:
    token = issue_token(
        dataverse_app.store.signing_secret, user_id=_service_user(dataverse_app, schema)
    )
    service = _client(dataverse_app, token)
    admin = _client(dataverse_app, admin_token)
    (chat,) = _chats(1)
    path = tmp_path / "outbox.sqlite"

    class Crash(BaseException):
        """The process dies right after the handler wrote to Dataverse."""

    def write_then_die(payload: dict[str, Any]) -> None:
        write_chat(service, FinishedChat.from_dict(payload))
        raise Crash

    box = Outbox(path, {CHAT_ACTIVITY_KIND: write_then_die}, clock=clock)
    box.enqueue(CHAT_ACTIVITY_KIND, chat.conversation_id, chat.to_dict())
    with pytest.raises(Crash):
        box.run_due()
    box.close()
    with Outbox(
        path,
        {CHAT_ACTIVITY_KIND: chat_activity_handler(service, secret=SERVICE_SECRET)},
        clock=clock,
    ) as box:
        assert box.pending() == 1  # never marked done
        assert box.run_due() == 1
    _assert_each_chat_once(admin, [chat])


def test_network_failures_are_retried_until_dataverse_answers(
    tmp_path: Path, dataverse_app: DataverseApp, admin_token: str, clock: Clock
) -> None:
    admin = _client(dataverse_app, admin_token)
    (chat,) = _chats(1)
    failures = [ConnectionFailed("no reply", "u", maybe_delivered=True)] * 3

    def flaky(payload: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        write_chat(admin, FinishedChat.from_dict(payload))

    handlers: dict[str, Callable[[dict[str, Any]], None]] = {CHAT_ACTIVITY_KIND: flaky}
    with Outbox(tmp_path / "o.sqlite", handlers, clock=clock) as box:
        box.enqueue(CHAT_ACTIVITY_KIND, chat.conversation_id, chat.to_dict())
        _drain(box, clock)
    _assert_each_chat_once(admin, [chat])
