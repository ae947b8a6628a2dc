"""Webhook-to-console latency: from a platform's signed webhook to the agent's console.

Seeds a fresh data folder's embedded Dataverse with the demo records (agent Sam, topic
Sales, one channel account per platform), starts the service under gunicorn as
`crmchat serve` runs it (subprocess, one worker), and connects Sam's console websocket.
Then, for the Messenger and the Viber demo account:

- `new`: --chats people each write a first message; the time from sending the signed
  webhook to Sam's console receiving `chat.offered` (a new conversation: routing by the
  account's topic, the conversation stored, the offer published). Sam accepts the first
  and declines each of the others once timed: an offer ringing for him counts against
  his capacity (3 chats), so offers left ringing would queue the fourth person unoffered;
- `next`: the person of the accepted chat writes --messages more, one at a time; the
  time from the webhook to `message.created` on Sam's socket.

The webhook is answered at once and the work happens on the intake's worker thread, so
this is the whole way (HTTP, signature, parse, queue, worker, engine, websocket). Client
and server share this machine's cores. Prints one line per measure and, last, one JSON
object {"messenger": {"new": {...}, "next": {...}}, "viber": {...}, "load_average": 1-min}
with count, p50_ms, p99_ms, max_ms.

Usage: python bench/channel_to_console.py [--chats 50] [--messages 100]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from connector.channels.accounts import ACCOUNTS_SET, account_from_row
from connector.channels.model import ChannelAccount, ChannelType
from connector.channels.webhooks import webhook_path
from connector.channels.wire import meta_message_body, signed_request, viber_message_body
from connector.crm.connection import connect
from connector.crm.handshake import SignedInUser
from connector.demo import SAM_USER_ID, seed_demo
from connector.settings import Settings
from connector.web import auth

SECRET = "bench-secret-" + "x" * 40
WAIT_SECS = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _settings(data_dir: Path, port: int = 8600) -> Settings:
    return Settings(data_dir=data_dir, port=port, secret_key=SecretStr(SECRET), demo=False)


def serve(data_dir: Path, port: int) -> None:
    """The service under gunicorn (subprocess); the demo records are already seeded."""
    from connector.app import create_app
    from connector.server import serve as gunicorn_serve

    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "port": port,
        "log_level": "WARNING",
        "secret_key": SECRET,
        "demo": False,
    }
    gunicorn_serve(Settings(**overrides), lambda: create_app(overrides))


def seed(data_dir: Path) -> dict[ChannelType, ChannelAccount]:
    """The demo records, and the channel accounts as the service reads them (secrets
    included: read as the service's application user)."""
    connection = connect(_settings(data_dir))
    assert connection.embedded_app is not None
    seed_demo(connection.embedded_app)
    rows = connection.client.list(ACCOUNTS_SET)
    found = (account_from_row(row) for row in rows)
    return {a.channel: a for a in found if a is not None}


def _percentiles(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)

    return {"count": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


class SlowDown(Exception):
    """The console sent frames faster than the agent socket takes them (10 a second)."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"rate limited, retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class Console:
    """Sam's console websocket."""

    def __init__(self, url: str) -> None:
        from simple_websocket import Client

        user = SignedInUser(SAM_USER_ID, "Sam", "sam@crmchat.local", frozenset({"CRM Chat Agent"}))
        token = auth.issue_service_token(user, signer=auth.service_token_signer(SECRET.encode()))
        self.client = Client.connect(
            url.replace("http://", "ws://") + "/ws/agent",
            subprotocols=auth.agent_subprotocols(token),
        )
        self.send({"type": "ping"})  # brings a frame left with the handshake answer
        self.expect("snapshot")

    def send(self, frame: dict[str, Any]) -> None:
        self.client.send(json.dumps(frame))

    def act(self, frame: dict[str, Any], answer: str) -> None:
        """Send an agent's action and wait for its answer about that chat, resending
        after the wait the socket's rate limit names (a person does not click 10 times a
        second; the bench does, between timed measures)."""
        while True:
            self.send(frame)
            try:
                self.expect(answer, conversation_id=frame["conversation_id"])
                return
            except SlowDown as slow:
                time.sleep(slow.retry_after_ms / 1000)

    def expect(
        self, kind: str, text: str | None = None, conversation_id: str | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECS
        while True:
            raw = self.client.receive(timeout=max(0.01, deadline - time.monotonic()))
            if raw is None:
                raise TimeoutError(f"no {kind} within {WAIT_SECS} s")
            frame: dict[str, Any] = json.loads(raw)
            if frame["type"] == "error" and frame.get("code") == "rate_limited":
                raise SlowDown(int(frame.get("retry_after_ms") or 100))
            if frame["type"] == "error":
                raise RuntimeError(f"server error: {frame}")
            if frame["type"] != kind:
                continue
            if conversation_id is not None and _chat_of(frame) != conversation_id:
                continue
            if text is None or _text_of(frame) == text:
                return frame


def _chat_of(frame: dict[str, Any]) -> str:
    """The conversation a frame is about (offers and accepts carry the whole chat)."""
    return str(frame.get("conversation_id") or frame.get("chat", {}).get("conversation_id"))


def _text_of(frame: dict[str, Any]) -> str:
    if frame["type"] == "chat.offered":
        messages = frame["chat"]["messages"]
        return str(messages[-1]["text"]) if messages else ""
    return str(frame.get("text", ""))


def _webhook(
    session: requests.Session,
    base: str,
    account: ChannelAccount,
    person: tuple[int, str],
    n: int,
    text: str,
) -> None:
    at = datetime.now(UTC)
    index, person_id = person
    if account.channel is ChannelType.VIBER:
        body = viber_message_body(
            person_id=person_id,
            person_name="Bench",
            message_token=index * 1_000_000 + n,
            at=at,
            text=text,
        )
    else:
        message_id = f"bench-{person_id}-{n}"
        body = meta_message_body(
            account, person_id=person_id, person_name="", message_id=message_id, at=at, text=text
        )
    raw, headers = signed_request(account, body)
    answer = session.post(base + webhook_path(account), data=raw, headers=headers, timeout=10)
    answer.raise_for_status()


def measure(
    base: str, console: Console, account: ChannelAccount, chats: int, messages: int
) -> dict[str, Any]:
    session = requests.Session()
    new: list[float] = []
    label = account.channel.value
    first_chat = ""
    for index in range(chats):
        text = f"{label} hello {index}"
        started = time.perf_counter()
        _webhook(session, base, account, (index, f"{label}-p{index}"), 0, text)
        offered = console.expect("chat.offered", text)
        new.append(time.perf_counter() - started)
        conversation_id = str(offered["chat"]["conversation_id"])
        if index == 0:
            first_chat = conversation_id
            console.act({"type": "chat.accept", "conversation_id": first_chat}, "chat.accepted")
        else:
            # An offer ringing for Sam counts against his capacity (3 chats, the most a
            # record allows is 20), so unanswered offers would leave the next person
            # queued and never offered. Declining frees the place and the chat is never
            # offered to him again (actions/offers.py); it waits, as for a busy team.
            console.act(
                {"type": "chat.reject", "conversation_id": conversation_id}, "chat.withdrawn"
            )
    following: list[float] = []
    for n in range(1, messages + 1):
        text = f"{label} more {n}"
        started = time.perf_counter()
        _webhook(session, base, account, (0, f"{label}-p0"), n, text)
        console.expect("message.created", text)
        following.append(time.perf_counter() - started)
    result = {"new": _percentiles(new), "next": _percentiles(following)}
    for name, figures in result.items():
        print(f"{label:9} {name:4} {json.dumps(figures)}", flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return {}
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        accounts = seed(data_dir)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(data_dir), str(port)],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{base}/livez", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the service did not start")
                time.sleep(0.2)
            console = Console(base)
            figures: dict[str, Any] = {
                channel.value: measure(base, console, accounts[channel], args.chats, args.messages)
                for channel in (ChannelType.MESSENGER, ChannelType.VIBER)
            }
        finally:
            server.terminate()
            server.wait(timeout=30)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
