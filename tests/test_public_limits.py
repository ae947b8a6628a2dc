"""Abuse limits on the public endpoints: rate limits (429 + Retry-After) and allowed domains."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import HELP, SHOP, FakeDirectory, FakeOutbox
from flask import Flask
from pydantic import ValidationError
from simple_websocket import Client, ConnectionClosed
from werkzeug.serving import make_server

from connector.app import create_app, stop_app
from connector.crm.design import WidgetDesign
from connector.redis_server import RedisServer
from connector.settings import Settings

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[MakeApp]:
    apps: list[Flask] = []

    def make(directory: FakeDirectory | None = None, **settings: Any) -> Flask:
        app = create_app(
            {
                "data_dir": tmp_path / f"app{len(apps)}",
                "secret_key": "s" * 40,
                "public_url": "https://chat.example",
                **settings,
            },
            directory=directory or FakeDirectory(),
            outbox=FakeOutbox(),
            start=False,
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        stop_app(app)


def restricted(*domains: str) -> FakeDirectory:
    """The fake Directory with SHOP limited to `domains`."""
    directory = FakeDirectory()
    shop = directory._widgets[SHOP]
    design = shop.design.model_copy(update={"allowed_domains": domains})
    directory._widgets[SHOP] = dataclasses.replace(shop, design=design)
    return directory


def config(app: Flask, widget: str = SHOP, **headers: str) -> Any:
    return app.test_client().get(f"/api/widgets/{widget}/config", headers=headers)


def test_the_config_is_refused_past_the_limit_per_address_with_retry_after(
    make_app: MakeApp,
) -> None:
    app = make_app(config_limit_per_address="3/minute")
    assert [config(app).status_code for _ in range(3)] == [200, 200, 200]
    refused = config(app)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    # Another address still gets the config.
    other = app.test_client().get(
        f"/api/widgets/{SHOP}/config", environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert other.status_code == 200


def test_the_config_limit_per_widget_counts_every_address_and_leaves_other_widgets(
    make_app: MakeApp,
) -> None:
    app = make_app(config_limit_per_widget="2/minute")
    client = app.test_client()
    codes = [
        client.get(
            f"/api/widgets/{SHOP}/config", environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}
        ).status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]
    assert config(app, HELP).status_code == 200


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[str]:
    """`app` on a real port (sockets need a real upgrade); yields its ws:// base."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def socket_answer(base: str, widget: str = SHOP, origin: str | None = None) -> int:
    """The status of a visitor socket's opening handshake (101: it opened)."""
    host, port = base.removeprefix("ws://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **({"Origin": origin} if origin else {}),
    }
    try:
        connection.request("GET", f"/ws/visitor?widget={widget}", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_visitor_socket_connects_are_limited_per_address(make_app: MakeApp) -> None:
    app = make_app(socket_limit_per_address="2/minute")
    with serving(app) as base:
        answers = [socket_answer(base) for _ in range(3)]
    assert answers == [101, 101, 429]


def test_two_processes_on_one_redis_share_the_count(
    make_app: MakeApp, redis_server: RedisServer
) -> None:
    first = make_app(redis_url=redis_server.url, config_limit_per_address="3/minute")
    second = make_app(redis_url=redis_server.url, config_limit_per_address="3/minute")
    codes = [config(app).status_code for app in (first, second, first, second)]
    assert codes == [200, 200, 200, 429]


def test_a_limit_in_bad_notation_stops_the_start() -> None:
    with pytest.raises(ValidationError):
        Settings(config_limit_per_address="lots per minute")


def test_the_config_refuses_a_site_outside_the_allowed_domains(make_app: MakeApp) -> None:
    app = make_app(restricted("shop.example.com", "*.example.org"))
    assert config(app, Origin="https://shop.example.com").status_code == 200
    assert config(app, Origin="https://www.example.org:8443").status_code == 200
    refused = config(app, Origin="https://evil.example")
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "origin_not_allowed"
    # The other site can read the refusal (CORS) and caches keep answers per site.
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "Origin" in config(app, Origin="https://shop.example.com").headers["Vary"]
    # A widget without a list is open to every site.
    assert config(app, HELP, Origin="https://evil.example").status_code == 200


def test_the_visitor_socket_refuses_a_site_outside_the_allowed_domains(
    make_app: MakeApp,
) -> None:
    app = make_app(restricted("shop.example.com"))
    with serving(app) as base:
        assert socket_answer(base, origin="https://evil.example") == 403
        assert socket_answer(base, origin="https://shop.example.com") == 101
        assert socket_answer(base, HELP, origin="https://evil.example") == 101


def test_the_config_names_the_widget_in_the_socket_url(make_app: MakeApp) -> None:
    assert config(make_app()).json["socket_url"] == f"wss://chat.example/ws/visitor?widget={SHOP}"


@pytest.mark.parametrize(
    "domain", ["https://shop.example.com", "shop.example.com/path", "*", "a.*.com", "x" * 254]
)
def test_an_allowed_domain_is_a_host_name(domain: str) -> None:
    with pytest.raises(ValidationError):
        WidgetDesign(allowed_domains=(domain,))


def test_allowed_domains_match_hosts_and_subdomains_not_look_alikes() -> None:
    design = WidgetDesign(allowed_domains=("Shop.Example.com", "*.corp.test"))
    assert design.allowed_domains == ("shop.example.com", "*.corp.test")
    assert design.allows_origin("https://SHOP.example.com")
    assert design.allows_origin("http://a.b.corp.test:8080")
    assert not design.allows_origin("https://corp.test")
    assert not design.allows_origin("https://evilcorp.test")
    assert not design.allows_origin("https://shop.example.com.evil.test")
    assert not design.allows_origin("null")


def test_the_services_own_chat_window_is_no_other_site(make_app: MakeApp) -> None:
    # The chat window (/widget/window/<id>) is a page of the service: its socket's Origin is
    # the service's own, which no widget's allowed domains list.
    app = make_app(restricted("shop.example.com"))
    with serving(app) as base:
        assert socket_answer(base, origin="https://chat.example") == 101  # its public_url
        assert socket_answer(base, origin="https://chat.example.evil") == 403
        assert config(app, Origin="https://chat.example").status_code == 200


def hello_answers(base: str, query: str, widget: str, origin: str) -> list[dict[str, Any]]:
    """The frames a visitor socket opened on `/ws/visitor<query>` answers to a hello for
    `widget` from a page of `origin`, until the service closes it (or 5 s pass)."""
    ws = Client.connect(f"{base}/ws/visitor{query}", headers={"Origin": origin})
    ws.send(json.dumps({"type": "hello", "widget_id": widget, "visitor_id": "visitor-0042"}))
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    try:
        while (left := deadline - time.monotonic()) > 0:
            raw = ws.receive(timeout=left)
            if raw is None:
                break
            frames.append(json.loads(raw))
            if frames[-1]["type"] == "hello.ok":
                break
    except ConnectionClosed:
        frames.append({"type": "closed"})
    finally:
        with contextlib.suppress(ConnectionClosed):
            ws.close()
    return frames


def test_a_hello_cannot_bypass_the_allowed_domains(make_app: MakeApp) -> None:
    app = make_app(restricted("shop.example.com"))
    evil, shop = "https://evil.example", "https://shop.example.com"
    with serving(app) as base:
        # A socket whose URL names no widget: its hello's widget is checked instead.
        no_widget = hello_answers(base, "", SHOP, evil)
        # The URL names an open widget, the hello the restricted one.
        swapped = hello_answers(base, f"?widget={HELP}", SHOP, evil)
        # Even between two widgets the site may use, a hello keeps to its URL's widget.
        other = hello_answers(base, f"?widget={SHOP}", HELP, shop)
        # What the widget itself does still works, and so does an open widget anywhere.
        allowed = hello_answers(base, f"?widget={SHOP}", SHOP, shop)
        open_widget = hello_answers(base, "", HELP, evil)
    for refused in (no_widget, swapped, other):
        assert refused[0]["type"] == "error"
        assert refused[0]["code"] == "origin_not_allowed"
        assert refused[-1] == {"type": "closed"}  # and the socket is closed
        assert all(frame["type"] != "hello.ok" for frame in refused)
    assert "may not be used on this site" in no_widget[0]["message"]
    assert "another widget" in other[0]["message"]
    assert allowed[-1]["type"] == "hello.ok"
    assert open_widget[-1]["type"] == "hello.ok"
