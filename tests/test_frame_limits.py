"""Issue 12: chat starts and tickets per address and per widget, across processes.

`chat.start` and `ticket.create` are frames on the visitor socket, each making CRM
records; connector/web/public_limits.py counts them in the same storage as the HTTP
limits (memory in one process, Redis for several) and the socket answers past the limit
with an `error` frame `rate_limited` and `retry_after_ms`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from chat_fakes import ANN_USER, FIELDS, HELP, SHOP, FakeDirectory, FakeOutbox
from service_process import PROCESS_WAIT_SECS, ServiceProcess
from test_scale_out_service import agent_on, visitor_on
from test_shared_dataverse import _token, shared_dataverse  # noqa: F401 - a fixture
from test_sockets import WAIT_SECS, Server, Ws

from connector.app import create_app, stop_app
from connector.crm.connection import SERVICE_USER_DOMAIN
from connector.demo import SALES_WIDGET_ID
from connector.redis_server import RedisServer
from connector.web.public_limits import frame_limited

HOUR_MS = 3_600_000


@pytest.fixture
def limited_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The service allowing 2 chat starts an hour per address, 3 per widget."""
    monkeypatch.setenv("CRMCHAT_CHAT_START_LIMIT_PER_ADDRESS", "2/hour")
    monkeypatch.setenv("CRMCHAT_CHAT_START_LIMIT_PER_WIDGET", "3/hour")
    running = Server(tmp_path, FakeOutbox())
    running.agent(ANN_USER)  # an agent online: starts are not refused as unavailable
    yield running
    running.stop()


def start(server: Server, visitor_id: str, widget: str = SHOP) -> tuple[Ws, dict[str, Any]]:
    """A new visitor's socket and the answer to its chat.start."""
    ws = server.visitor(visitor_id, widget_id=widget)
    ws.send({"type": "chat.start", "client_id": "start-1", "fields": FIELDS})
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        for frame in ws.drain(0.1):
            if frame["type"] == "chat.started" or frame.get("ref") == "start-1":
                return ws, frame
    raise AssertionError("no answer to chat.start")


def test_chat_starts_past_the_limit_per_address_are_refused_with_retry_after(
    limited_server: Server,
) -> None:
    answers = [start(limited_server, f"visitor-000{n}")[1] for n in range(3)]
    assert [a["type"] for a in answers] == ["chat.started", "chat.started", "error"]
    refused = answers[2]
    assert refused["code"] == "rate_limited"
    # An hour's window: the widget gives up and says so instead of waiting unseen.
    assert 10_000 < refused["retry_after_ms"] <= HOUR_MS
    # The refused start made no chat: a message on that socket finds none.
    ws, _ = start(limited_server, "visitor-0009")
    ws.send({"type": "message.send", "client_id": "m-1", "text": "hello?"})
    assert ws.expect("error", ref="m-1")["code"] == "not_found"


def test_the_widget_limit_counts_every_address_and_leaves_other_widgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMCHAT_CHAT_START_LIMIT_PER_WIDGET", "2/hour")
    app = create_app(
        {"data_dir": tmp_path, "secret_key": "s" * 40},
        directory=FakeDirectory(),
        outbox=FakeOutbox(),
        start=False,
    )
    try:
        hits = [frame_limited(app, "chat.start", SHOP, f"10.0.0.{n}") for n in range(3)]
        assert hits[:2] == [None, None] and hits[2] is not None
        assert frame_limited(app, "chat.start", HELP, "10.0.0.9") is None
        # Tickets count on their own.
        assert frame_limited(app, "ticket.create", SHOP, "10.0.0.9") is None
    finally:
        stop_app(app)


def test_two_processes_on_one_redis_share_the_chat_start_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setenv("CRMCHAT_TICKET_LIMIT_PER_ADDRESS", "3/hour")
    apps = [
        create_app(
            {
                "data_dir": tmp_path / f"app{n}",
                "secret_key": "s" * 40,
                "redis_url": redis_server.url,
            },
            directory=FakeDirectory(),
            outbox=FakeOutbox(),
            start=False,
        )
        for n in range(2)
    ]
    try:
        first, second = apps
        answers = [
            frame_limited(app, "ticket.create", SHOP, "10.0.0.1") for app in (first, second, first)
        ]
        assert answers == [None, None, None]
        assert frame_limited(second, "ticket.create", SHOP, "10.0.0.1") is not None
        assert frame_limited(first, "ticket.create", SHOP, "10.0.0.1") is not None
        assert frame_limited(first, "ticket.create", SHOP, "10.0.0.2") is None
    finally:
        for app in apps:
            stop_app(app)


def test_two_service_processes_on_one_redis_share_the_config_and_chat_start_limits(
    shared_dataverse: tuple[str, Path, Path],  # noqa: F811 - the fixture imported above
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Two `crmchat serve` processes, as two machines behind a load balancer: the hits on
    one count on the other, so a visitor cannot double their allowance by being balanced."""
    url, cert, db = shared_dataverse
    token = _token(db, "--user", SERVICE_USER_DOMAIN, "--days", "30")
    assert token.returncode == 0, token.stderr
    env = {
        "CRMCHAT_DATAVERSE_URL": url,
        "CRMCHAT_DATAVERSE_TOKEN": token.stdout.strip(),
        "CRMCHAT_DATAVERSE_CA_BUNDLE": str(cert),
        "CRMCHAT_REDIS_URL": redis_server.url,
        "CRMCHAT_CONFIG_LIMIT_PER_ADDRESS": "3/minute",
        "CRMCHAT_CHAT_START_LIMIT_PER_ADDRESS": "2/hour",
    }
    first = ServiceProcess(tmp_path / "a", env=env)
    second = ServiceProcess(tmp_path / "b", env=env)
    try:
        for process in (first, second):
            process.folder.mkdir()
            process.start()
        config = f"/api/widgets/{SALES_WIDGET_ID}/config"
        answers = [
            requests.get(p.url + config, timeout=PROCESS_WAIT_SECS)
            for p in (first, second, first, second)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[3].json()["error"]["code"] == "rate_limited"
        assert 1 <= int(answers[3].headers["Retry-After"]) <= 61  # a minute, rounded up

        agent = agent_on(second)  # someone online, so starts are not refused as unavailable
        try:
            starts = []
            for n, process in enumerate((first, second, first)):
                visitor, _ = visitor_on(process, f"visitor-balanced-{n:02d}")
                visitor.send({"type": "chat.start", "client_id": "start-1", "fields": FIELDS})
                deadline = time.monotonic() + PROCESS_WAIT_SECS
                answer: dict[str, Any] | None = None
                while answer is None:
                    assert time.monotonic() < deadline, "no answer to chat.start"
                    for frame in visitor.drain(0.2):
                        if frame["type"] == "chat.started" or frame.get("ref") == "start-1":
                            answer = frame
                            break
                starts.append(answer)
                visitor.close()
            assert [s["type"] for s in starts] == ["chat.started", "chat.started", "error"]
            assert starts[2]["code"] == "rate_limited"
            assert 10_000 < starts[2]["retry_after_ms"] <= HOUR_MS
        finally:
            agent.close()
    finally:
        first.stop()
        second.stop()
