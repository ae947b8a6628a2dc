"""JSON logs (a line per request and per chat event, with request ids, never a credential)
and the Prometheus metrics, from a real `crmchat serve` process carrying a real chat."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from service_process import ServiceProcess, agent_token, chat_through

from connector.demo import SAM_USER_ID


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(tmp_path).start()
    yield process
    process.stop()


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)"
    found = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in metrics"
    return float(found.group(1))


def test_logs_are_json_lines_with_request_ids_and_no_credentials(service: ServiceProcess) -> None:
    token = agent_token(SAM_USER_ID)
    bearer = "eyJhbGciOi.header-secret-bearer.value"
    answer = requests.get(
        service.url + "/livez?token=query-secret-1234&x=1",
        headers={"Authorization": f"Bearer {bearer}", "X-Request-Id": "proxy-id-12345"},
        timeout=5,
    )
    assert answer.headers["X-Request-Id"] == "proxy-id-12345"
    requests.post(
        service.url + "/api/auth/handshake",
        json={"handshake_id": "x", "nonce": "n", "token": "json-secret-5678"},
        timeout=5,
    )
    chat = chat_through(service.url, agent_token_value=token)
    chat["visitor"].close()
    chat["agent"].close()
    service.stop()  # socket request lines are written when the sockets close

    text = service.log_text()
    for secret in (token, bearer, "query-secret-1234", "json-secret-5678", "Hello through"):
        assert secret not in text
    lines = service.log_lines()
    requests_logged = [line for line in lines if line["logger"] == "crmchat.request"]
    livez = next(line for line in requests_logged if "x=1" in line["query"])
    assert livez["request_id"] == "proxy-id-12345"
    assert livez["query"] == "token=[redacted]&x=1" and livez["status"] == 200
    agent_socket = next(line for line in requests_logged if line["path"] == "/ws/agent")
    assert agent_socket["query"] == "token=[redacted]" and agent_socket["websocket"] is True
    assert len({line["request_id"] for line in requests_logged}) == len(requests_logged)

    events = [line for line in lines if line["logger"] == "crmchat.chat.events"]
    messages = [e for e in events if e["event"] == "message.created"]
    # The two typed messages (and any system line), each once, in its conversation.
    assert len(messages) >= 2
    assert {m["conversation_id"] for m in messages} == {chat["conversation_id"]}
    assert len({m["seq"] for m in messages}) == len(messages)
    # Each event carries the request id of the socket whose frame caused it.
    socket_ids = {line["request_id"] for line in requests_logged if line["websocket"]}
    assert {m["request_id"] for m in messages} <= socket_ids


def test_text_logs_for_development(tmp_path: Path) -> None:
    process = ServiceProcess(tmp_path, env={"CRMCHAT_LOG_FORMAT": "text"}).start()
    try:
        requests.get(process.url + "/livez?token=abc-secret", timeout=5)
    finally:
        process.stop()
    line = next(x for x in process.log_text().splitlines() if "GET /livez" in x)
    assert not line.startswith("{") and "abc-secret" not in line
    assert "INFO crmchat.request [" in line


def test_metrics_show_sockets_chats_relays_dataverse_and_directory(
    service: ServiceProcess,
) -> None:
    chat = chat_through(service.url)
    try:
        text = requests.get(service.url + "/metrics", timeout=5).text
        assert _metric(text, "crmchat_open_sockets", 'kind="visitor"') == 1
        assert _metric(text, "crmchat_open_sockets", 'kind="agent"') == 1
        assert _metric(text, "crmchat_chats", 'state="active"') == 1
        assert _metric(text, "crmchat_messages_relayed_total") >= 2
        assert _metric(text, "crmchat_relay_latency_seconds_count") >= 2
        assert _metric(text, "crmchat_dataverse_requests_total", 'status="200"') > 0
        assert _metric(text, "crmchat_outbox_pending") == 0
        assert _metric(text, "crmchat_outbox_parked") == 0
        assert 0 <= _metric(text, "crmchat_directory_age_seconds") < 60
    finally:
        chat["visitor"].close()
        chat["agent"].close()
