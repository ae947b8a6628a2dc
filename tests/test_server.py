"""`crmchat serve` as a production server: gunicorn, a request-head deadline, graceful
SIGTERM that tells sockets to reconnect, one worker without Redis, clear start-up errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from service_process import ServiceProcess, agent_token
from simple_websocket import Client, ConnectionClosed

from connector.demo import SALES_WIDGET_ID, SAM_USER_ID
from connector.web.auth import agent_subprotocols


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        tmp_path, env={"CRMCHAT_HEADER_TIMEOUT_SECS": "1", "CRMCHAT_GRACEFUL_TIMEOUT_SECS": "20"}
    )
    process.start()
    yield process
    process.stop()


def test_serve_runs_gunicorn_and_answers_livez(service: ServiceProcess) -> None:
    answer = requests.get(service.url + "/livez", timeout=5)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert "gunicorn" in answer.headers.get("Server", "").lower()


def test_a_connection_stays_open_for_the_next_request(service: ServiceProcess) -> None:
    """Keep-alive (CRMCHAT_KEEPALIVE_SECS): a platform posting webhooks, or a browser,
    sends its next request on the same connection instead of a new TCP handshake."""
    with (
        socket.create_connection(("127.0.0.1", service.port), timeout=10) as conn,
        conn.makefile("rb") as reader,
    ):
        for _ in range(2):
            conn.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = _read_head(reader)
            assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower()
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            assert json.loads(reader.read(length)) == {"status": "ok"}


def _read_head(reader: Any) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        assert line, "the server closed the connection"
        head += line
    return head


def test_a_half_open_request_is_dropped_after_the_header_timeout(service: ServiceProcess) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as conn:
        conn.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the end
        started = time.monotonic()
        assert conn.recv(1024) == b""  # closed by the server, nothing answered
        assert time.monotonic() - started < 5
    # A whole request still gets through.
    assert requests.get(service.url + "/livez", timeout=5).status_code == 200


def test_sigterm_tells_open_sockets_to_reconnect_then_exits(service: ServiceProcess) -> None:
    base = service.url.replace("http", "ws")
    visitor = Client.connect(base + "/ws/visitor")
    visitor.send(
        json.dumps(
            {
                "type": "hello",
                "widget_id": SALES_WIDGET_ID,
                "visitor_id": "visitor-sigterm-01",
                "page": {"url": "https://shop.example/", "title": "Shop"},
            }
        )
    )
    agent = Client.connect(
        base + "/ws/agent", subprotocols=agent_subprotocols(agent_token(SAM_USER_ID))
    )
    assert json.loads(agent.receive(timeout=60) or "{}").get("type") == "snapshot"
    started = time.monotonic()
    service.terminate()
    for ws in (visitor, agent):
        with pytest.raises(ConnectionClosed):
            while True:
                ws.receive(timeout=10)
        assert ws.close_reason == 1012  # Service Restart: the widget and console reconnect
    assert service.wait(timeout=15) == 0
    # Drained, not killed at the end of the 20 s graceful timeout.
    assert time.monotonic() - started < 15
    assert "told 2 open socket(s) to reconnect" in service.log_text()


def test_more_than_one_worker_without_redis_is_refused_in_one_line(tmp_path: Path) -> None:
    process = ServiceProcess(tmp_path, env={"CRMCHAT_WORKERS": "2"})
    done = subprocess.run(
        process.command(), env=process.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "crmchat: CRMCHAT_WORKERS=2 needs CRMCHAT_REDIS_URL: without Redis each worker keeps "
        "its own chats, so run one worker (the default)"
    ]


def test_bad_settings_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    process = ServiceProcess(tmp_path, env={"CRMCHAT_THREADS": "many"})
    done = subprocess.run(
        process.command(), env=process.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "threads" in done.stderr
    assert "Traceback" not in done.stderr


def test_dev_flag_runs_werkzeug(tmp_path: Path) -> None:
    process = ServiceProcess(tmp_path).start("--dev")
    try:
        answer = requests.get(process.url + "/livez", timeout=5)
        assert "werkzeug" in answer.headers.get("Server", "").lower()
    finally:
        process.stop()


def test_the_cli_help_names_the_dev_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--dev" in done.stdout and "--workers" in done.stdout


def test_empty_optional_settings_mean_unset() -> None:
    from connector.settings import Settings

    settings = Settings(redis_url="", dataverse_token=" ", dataverse_ca_bundle="", workers=2)
    assert settings.redis_url is None and settings.dataverse_token is None
    assert settings.dataverse_ca_bundle is None
    from connector.server import check_workers

    assert check_workers(settings) is not None


def test_a_connection_past_descriptor_1023_is_still_served() -> None:
    # A worker holding ~500 chats has two sockets per chat open: select() refused every
    # descriptor past 1023, so each connection after that was reset (bench/chat_load.py).
    from connector.server import _head_arrives

    held = [socket.socket() for _ in range(1100)]
    server_side, client_side = socket.socketpair()
    try:
        assert server_side.fileno() > 1023
        client_side.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _head_arrives(server_side, 2.0)
        silent, _peer = socket.socketpair()
        with silent, _peer:
            assert not _head_arrives(silent, 0.2)  # the deadline still holds
    finally:
        for sock in [*held, server_side, client_side]:
            sock.close()
