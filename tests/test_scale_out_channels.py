"""Messaging channels on two real service processes and one Redis (issues 7 and 10).

The platform is the channel simulator (connector/channels/simulator.py) on an app of its
own in this test process: it signs the person's webhooks and sends them to one service
process, and takes the service's send API calls, from either process, recording each
message the person receives. Both service processes point their send clients at it
(CRMCHAT_META_GRAPH_URL), reach one embedded Dataverse served alone over HTTPS, and share
one redis-server, as in tests/test_scale_out_service.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from flask import Flask
from redis_fixture import persistent_redis  # noqa: F401 - a fixture
from service_process import PROCESS_WAIT_SECS, ServiceProcess
from test_observability import _metric
from test_scale_out_service import agent_on, kill_9
from test_shared_dataverse import _token, shared_dataverse  # noqa: F401 - a fixture
from test_sockets import Ws
from werkzeug.serving import BaseWSGIServer, make_server

from connector.channels import simulator, wire
from connector.channels.accounts import DataverseAccounts
from connector.crm.connection import SERVICE_USER_DOMAIN
from connector.dataverse import DataverseClient, StaticTokenProvider
from connector.demo import DEMO_CHANNEL_ACCOUNTS
from connector.redis_server import RedisServer
from connector.web import errors

MESSENGER = DEMO_CHANNEL_ACCOUNTS[0][0]


@dataclass
class Platform:
    """The simulator on its own port, delivering webhooks to one service process."""

    app: Flask
    server: BaseWSGIServer
    url: str

    def deliver_to(self, service: ServiceProcess) -> None:
        self.app.extensions["crmchat.simulator"]["service_url"] = service.url

    def person_writes(self, person_id: str, text: str) -> None:
        answer = requests.post(
            f"{self.url}/simulator/api/person-message",
            json={"account": MESSENGER, "person_id": person_id, "person_name": "Pat", "text": text},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["webhook_status"] == 200, answer.json()

    def received(self, person_id: str) -> list[str]:
        """What the person got from the business, in order (each send API call once)."""
        answer = requests.get(
            f"{self.url}/simulator/api/conversation",
            params={"account": MESSENGER, "person": person_id},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return [line["text"] for line in answer.json()["lines"] if line["sender"] == "business"]

    def wait_received(self, person_id: str, count: int) -> list[str]:
        deadline = time.monotonic() + PROCESS_WAIT_SECS
        while len(got := self.received(person_id)) < count:
            assert time.monotonic() < deadline, f"the person got {got}"
            time.sleep(0.2)
        time.sleep(3)  # time enough for a second process to send it again
        return self.received(person_id)


@dataclass
class ChannelOrg:
    first: ServiceProcess
    second: ServiceProcess
    platform: Platform


@pytest.fixture
def channel_org(
    shared_dataverse: tuple[str, Path, Path],  # noqa: F811 - the fixture above
    persistent_redis: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> Iterator[ChannelOrg]:
    url, cert, db = shared_dataverse
    token = _token(db, "--user", SERVICE_USER_DOMAIN, "--days", "30").stdout.strip()
    session = requests.Session()
    session.verify = str(cert)
    session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides the bundle
    # The platform knows the accounts' secrets as an admin copied them into CRM: read
    # them with the service's application user (the CRM Chat Secrets profile).
    dataverse = DataverseClient(
        f"{url}/api/data/v9.2/", StaticTokenProvider(token), session=session
    )
    app = Flask("platform")
    errors.init_app(app)
    simulator.init_app(app, service_url="", accounts=DataverseAccounts(dataverse))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    platform = Platform(app, server, f"http://127.0.0.1:{server.server_port}")
    env = {
        "CRMCHAT_DATAVERSE_URL": url,
        "CRMCHAT_DATAVERSE_TOKEN": token,
        "CRMCHAT_DATAVERSE_CA_BUNDLE": str(cert),
        "CRMCHAT_REDIS_URL": persistent_redis.url,
        "CRMCHAT_META_GRAPH_URL": platform.url + simulator.GRAPH_PATH,
        "CRMCHAT_VIBER_API_URL": platform.url + simulator.VIBER_PATH,
    }
    first = ServiceProcess(tmp_path / "a", env=env)
    second = ServiceProcess(tmp_path / "b", env=env)
    try:
        for process in (first, second):
            process.folder.mkdir()
            process.start()
        yield ChannelOrg(first, second, platform)
    finally:
        first.stop()
        second.stop()
        server.shutdown()
        dataverse.close()


def _accept_offer(agent: Ws) -> str:
    offered = agent.expect("chat.offered")["chat"]
    conversation_id = str(offered["conversation_id"])
    agent.send({"type": "chat.accept", "conversation_id": conversation_id})
    agent.expect("chat.accepted")
    return conversation_id


def _reply(agent: Ws, conversation_id: str, client_id: str, text: str) -> None:
    agent.send(
        {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_id": client_id,
            "text": text,
        }
    )
    agent.expect("message.created", client_id=client_id)


def test_a_webhook_on_one_process_reaches_the_agent_on_the_other_and_each_reply_goes_once(
    channel_org: ChannelOrg,
) -> None:
    org = channel_org
    org.platform.deliver_to(org.first)
    sam = agent_on(org.second)
    try:
        org.platform.person_writes("pat-0001", "Hello from Messenger")
        conversation_id = _accept_offer(sam)
        # Chats by state are the shared state's: the same on both processes.
        for process in (org.first, org.second):
            metrics = requests.get(process.url + "/metrics", timeout=10).text
            assert _metric(metrics, "crmchat_chats", 'state="active"') == 1
            assert _metric(metrics, "crmchat_outbox_pending") == 0
        _reply(sam, conversation_id, "a1", "Hi Pat, Sam here")
        assert org.platform.wait_received("pat-0001", 1) == ["Hi Pat, Sam here"]

        # A rolling restart: the agent's process comes back while the chat is open, so
        # both processes now hear the chat's events. Still one send per reply.
        sam.close()
        org.second.stop()
        org.second.start()
        sam = agent_on(org.second)
        org.platform.person_writes("pat-0001", "Are you still there?")
        assert sam.expect("message.created", text="Are you still there?")
        _reply(sam, conversation_id, "a2", "Still here")
        assert org.platform.wait_received("pat-0001", 2) == ["Hi Pat, Sam here", "Still here"]
    finally:
        sam.close()


def test_replies_still_go_out_when_the_process_that_took_the_webhook_died(
    channel_org: ChannelOrg,
) -> None:
    org = channel_org
    org.platform.deliver_to(org.first)
    sam = agent_on(org.second)
    try:
        org.platform.person_writes("pat-0002", "Hello")
        conversation_id = _accept_offer(sam)
        kill_9(org.first)  # the process that opened the chat is gone
        _reply(sam, conversation_id, "a1", "Hello Pat")
        assert org.platform.wait_received("pat-0002", 1) == ["Hello Pat"]
        # The platform's next webhook goes to the survivor (the load balancer's choice).
        org.platform.deliver_to(org.second)
        org.platform.person_writes("pat-0002", "Thanks")
        sam.expect("message.created", text="Thanks")
        _reply(sam, conversation_id, "a2", "You're welcome")
        assert org.platform.wait_received("pat-0002", 2) == ["Hello Pat", "You're welcome"]
    finally:
        sam.close()


def test_a_redelivery_to_the_other_process_is_not_taken_again(channel_org: ChannelOrg) -> None:
    """Meta retries a webhook it got no 200 for, and the load balancer may hand the retry
    to another process: the shared redelivery memory (Redis) takes it once."""
    org = channel_org
    account = org.platform.app.extensions["crmchat.simulator"]["accounts"].get(MESSENGER)
    assert account is not None
    sam = agent_on(org.second)
    try:
        body = wire.meta_message_body(
            account,
            person_id="pat-0003",
            person_name="Pat",
            message_id="m_redelivered",
            at=datetime.now(UTC),
            text="Is my order on its way?",
        )
        raw, headers = wire.signed_request(account, body)
        answers = [
            requests.post(
                f"{process.url}/channels/{MESSENGER}/webhook", data=raw, headers=headers, timeout=30
            )
            for process in (org.first, org.second, org.first)
        ]
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        assert [answer.json()["accepted"] for answer in answers] == [1, 0, 0]
        conversation_id = _accept_offer(sam)
        # Another message of the same person is new to either process.
        raw, headers = wire.signed_request(
            account,
            wire.meta_message_body(
                account,
                person_id="pat-0003",
                person_name="Pat",
                message_id="m_next",
                at=datetime.now(UTC),
                text="It's order 1042",
            ),
        )
        answer = requests.post(
            f"{org.second.url}/channels/{MESSENGER}/webhook", data=raw, headers=headers, timeout=30
        )
        assert answer.json()["accepted"] == 1
        sam.expect("message.created", conversation_id=conversation_id, text="It's order 1042")
    finally:
        sam.close()
