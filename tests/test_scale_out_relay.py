"""Many chats relaying at once across two real service processes on one Redis (issue 7).

`message.send` runs without the org lease on Redis (docs/scale-out.md, "The relay path"):
one script appends the message with the next seq and publishes it. Here 100 visitors on
process A each send 20 messages at once while their agent, on process B, answers some of
them: every message must arrive on the other side exactly once and in order, every sender
must get its acknowledgement, and the stored seqs must run 1..n.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis_fixture import redis_server  # noqa: F401 - a fixture
from service_process import PROCESS_WAIT_SECS, ServiceProcess
from test_scale_out_service import agent_on, start_chat, visitor_on
from test_shared_dataverse import _token, shared_dataverse  # noqa: F401 - a fixture
from test_sockets import Ws

from connector.crm.connection import SERVICE_USER_DOMAIN
from connector.redis_server import RedisServer

CHATS = 100
MESSAGES = 20  # per visitor: within a socket's burst of frames (connector/chat/frames.py)
ANSWERED = 10  # chats the agent answers twice meanwhile (one console's burst)
UNLIMITED = "1000000/minute"  # every test visitor comes from 127.0.0.1


@dataclass
class Pair:
    first: ServiceProcess
    second: ServiceProcess


@pytest.fixture
def processes(
    shared_dataverse: tuple[str, Path, Path],  # noqa: F811 - the fixture above
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Pair]:
    url, cert, db = shared_dataverse
    token = _token(db, "--user", SERVICE_USER_DOMAIN, "--days", "30")
    assert token.returncode == 0, token.stderr
    env = {
        "CRMCHAT_DATAVERSE_URL": url,
        "CRMCHAT_DATAVERSE_TOKEN": token.stdout.strip(),
        "CRMCHAT_DATAVERSE_CA_BUNDLE": str(cert),
        "CRMCHAT_REDIS_URL": redis_server.url,
        # A thread per socket: the 100 visitors and the consoles, and room for requests.
        "CRMCHAT_THREADS": "300",
        "CRMCHAT_CONFIG_LIMIT_PER_ADDRESS": UNLIMITED,
        "CRMCHAT_SOCKET_LIMIT_PER_ADDRESS": UNLIMITED,
        "CRMCHAT_SOCKET_LIMIT_PER_WIDGET": UNLIMITED,
        "CRMCHAT_CHAT_START_LIMIT_PER_ADDRESS": UNLIMITED,
        "CRMCHAT_CHAT_START_LIMIT_PER_WIDGET": UNLIMITED,
    }
    first = ServiceProcess(tmp_path / "a", env=env)
    second = ServiceProcess(tmp_path / "b", env=env)
    for process in (first, second):
        process.folder.mkdir()
        process.start()
    try:
        yield Pair(first, second)
    finally:
        first.stop()
        second.stop()


def collect(ws: Ws, done: Any, secs: float) -> list[dict[str, Any]]:
    """`message.created` frames received until `done(frames)` or `secs` pass."""
    frames: list[dict[str, Any]] = [f for f in ws.seen if f["type"] == "message.created"]
    ws.seen = []
    deadline = time.monotonic() + secs
    while not done(frames) and (left := deadline - time.monotonic()) > 0:
        raw = ws.client.receive(timeout=left)
        if raw is not None:
            frame = json.loads(raw)
            if frame["type"] == "message.created":
                frames.append(frame)
    return frames


def test_100_chats_sending_at_once_across_processes_lose_and_repeat_nothing(
    processes: Pair,
) -> None:
    console = agent_on(processes.second)
    acceptors = [agent_on(processes.second) for _ in range(CHATS // 20)]
    with ThreadPoolExecutor(16) as pool:
        visitors = list(
            pool.map(
                lambda n: visitor_on(processes.first, f"visitor-load-{n:04d}")[0], range(CHATS)
            )
        )
        chat_ids = list(pool.map(start_chat, visitors))
    try:
        for n, conversation_id in enumerate(chat_ids):  # 20 accepts per console: its burst
            acceptors[n // 20].send({"type": "chat.accept", "conversation_id": conversation_id})
        for visitor in visitors:
            visitor.expect("chat.accepted")
        index = {conversation_id: n for n, conversation_id in enumerate(chat_ids)}

        def visitor_sends(n: int) -> None:
            for m in range(MESSAGES):
                visitors[n].send(
                    {"type": "message.send", "client_id": f"v{n}-{m}", "text": f"visitor {n} {m}"}
                )

        with ThreadPoolExecutor(CHATS) as pool:
            sent = [pool.submit(visitor_sends, n) for n in range(CHATS)]
            for n in range(ANSWERED):
                for m in range(2):
                    console.send(
                        {
                            "type": "message.send",
                            "conversation_id": chat_ids[n],
                            "client_id": f"a{n}-{m}",
                            "text": f"agent {n} {m}",
                        }
                    )
            for future in sent:
                future.result()

        # On B, the agent's console: every visitor message once, in order, per chat.
        def from_visitors(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [f for f in frames if str(f["client_id"]).startswith("v")]

        received = collect(
            console, lambda fs: len(from_visitors(fs)) >= CHATS * MESSAGES, 6 * PROCESS_WAIT_SECS
        )
        by_chat: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for frame in received:
            by_chat[index[frame["conversation_id"]]].append(frame)
        for n in range(CHATS):
            frames = by_chat[n]
            texts = [f["text"] for f in frames if str(f["client_id"]).startswith("v")]
            assert texts == [f"visitor {n} {m}" for m in range(MESSAGES)], f"chat {n}: {texts}"
            seqs = [f["seq"] for f in frames]
            assert seqs == sorted(set(seqs)), f"chat {n} out of order or twice: {seqs}"

        # On A, each visitor: its own messages acknowledged, the agent's answers once, in
        # order, every seq once.
        def acknowledged(n: int) -> None:
            wanted = MESSAGES + (2 if n < ANSWERED else 0)
            frames = collect(
                visitors[n],
                lambda fs: sum(1 for f in fs if f["sender"]["kind"] != "system") >= wanted,
                2 * PROCESS_WAIT_SECS,
            )
            mine = [f["text"] for f in frames if str(f["client_id"]).startswith("v")]
            answers = [f["text"] for f in frames if str(f["client_id"]).startswith("a")]
            assert mine == [f"visitor {n} {m}" for m in range(MESSAGES)], f"chat {n}: {mine}"
            assert answers == ([f"agent {n} {m}" for m in range(2)] if n < ANSWERED else [])
            seqs = [f["seq"] for f in frames]
            assert seqs == sorted(set(seqs)), f"chat {n}: {seqs}"

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(acknowledged, range(CHATS)))

        # Stored: seq 1..n without a gap, each message once (the accept's system line first).
        checker = agent_on(processes.first)
        try:
            for n in (0, ANSWERED - 1, CHATS - 1):
                checker.send(
                    {"type": "chat.resync", "conversation_id": chat_ids[n], "since_seq": 0}
                )
                wanted = 1 + MESSAGES + (2 if n < ANSWERED else 0)
                stored = collect(checker, lambda fs, w=wanted: len(fs) >= w, PROCESS_WAIT_SECS)
                assert [f["seq"] for f in stored] == list(range(1, wanted + 1))
                assert len({f["client_id"] for f in stored}) == wanted
        finally:
            checker.close()
    finally:
        for ws in [console, *acceptors, *visitors]:
            ws.close()
