"""Routing under load (issue 11): time to offer a queued chat once capacity frees.

The engine is the real one (`ChatEngine` over `SqliteLiveState` in a temporary folder, a
real `Hub`); the Directory is in memory: `--agents` agents (capacity `--capacity`) spread
over `--topics` topics, one widget per topic. Every agent signs in and fills their
capacity (each accepts what rings for them); then `--queued` more chats start and wait in
their topics' queues. Then, `--frees` times, one random visitor ends their chat: the time
from that `chat.end` to the `chat.offered` frame reaching the freed agent's console is
measured (wall and CPU), and the agent accepts it, so the queue stays as long.

Dataverse: routing reads only the cached Directory (its refresh is a few requests per
interval whatever the number of chats, crm/directory.py), so the requests per chat are
the outbox items each ended chat queues (the activity write), counted here.

    .venv/bin/python bench/routing_load.py                 # 2,000 queued, 200 agents
    .venv/bin/python bench/routing_load.py --queued 200 --agents 20 --frees 50
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.chat.actions import agents, visitors  # noqa: E402
from connector.chat.engine import ChatEngine  # noqa: E402
from connector.chat.hub import Hub, Subscriber  # noqa: E402
from connector.chat.sessions import AgentSession, VisitorSession  # noqa: E402
from connector.chat.state import SqliteLiveState  # noqa: E402
from connector.chat.tokens import ChatTokens  # noqa: E402
from connector.crm.design import WidgetDesign  # noqa: E402
from connector.crm.directory import (  # noqa: E402
    AgentProfile,
    LabelRecord,
    SnippetRecord,
    TopicRecord,
    WidgetRecord,
)

PAGE = {"url": "https://shop.example/", "title": "Shop", "referrer": ""}
FIELDS = {"firstname": "Vera", "lastname": "Visitor", "email": "vera@example.com"}


def _id(kind: int, n: int) -> str:
    return f"{kind}0000000-0000-0000-0000-{n:012d}"


class Directory:
    """`DirectoryLike`: agent i serves topic i % topics; widget t routes to topic t."""

    def __init__(self, agents: int, topics: int, capacity: int) -> None:
        self._agents = {
            _id(3, n): AgentProfile(
                agent_id=_id(3, n),
                user_id=_id(4, n),
                name=f"Agent {n}",
                email=f"agent{n}@bench.local",
                phone="",
                image=None,
                topic_ids=frozenset({_id(1, n % topics)}),
                capacity=capacity,
            )
            for n in range(agents)
        }
        # No rating: an ended chat is written at once, as most are.
        design = WidgetDesign(rating=False)
        self._widgets = {
            _id(2, t): WidgetRecord(_id(2, t), f"Widget {t}", True, design, frozenset({_id(1, t)}))
            for t in range(topics)
        }
        self._topics = {
            _id(1, t): TopicRecord(_id(1, t), f"Topic {t}", "#ff0000") for t in range(topics)
        }

    def agents(self) -> list[AgentProfile]:
        return list(self._agents.values())

    def agent(self, agent_id: str) -> AgentProfile | None:
        return self._agents.get(agent_id)

    def agent_for_user(self, user_id: str) -> AgentProfile | None:
        return next((a for a in self._agents.values() if a.user_id == user_id), None)

    def widget(self, widget_id: str) -> WidgetRecord | None:
        return self._widgets.get(widget_id)

    def topics(self) -> dict[str, TopicRecord]:
        return dict(self._topics)

    def snippets(self) -> dict[str, SnippetRecord]:
        return {}

    def labels(self) -> dict[str, LabelRecord]:
        return {}

    def chat_enabled(self) -> bool:
        return True

    def subscribed(self) -> bool:
        return True

    def masking_rules(self) -> tuple[str, ...]:
        return ()


class Outbox:
    """Counts the activity writes the ended chats queue."""

    def __init__(self) -> None:
        self.items = 0

    def enqueue(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        self.items += 1


class Console:
    """One agent's console: keeps the chats offered to it and when the last offer came."""

    def __init__(self) -> None:
        self.offered: list[str] = []
        self.offered_at = 0.0

    def subscriber(self) -> Subscriber:
        def send(text: str) -> None:
            if '"type":"chat.offered"' in text or '"type": "chat.offered"' in text:
                self.offered_at = time.perf_counter()
                self.offered.append(json.loads(text)["chat"]["conversation_id"])

        return Subscriber(send)


def _quiet() -> Subscriber:
    return Subscriber(lambda text: None)


def run(
    *, agent_count: int, topics: int, capacity: int, queued: int, frees: int, folder: Path
) -> dict[str, Any]:
    directory = Directory(agent_count, topics, capacity)
    outbox = Outbox()
    engine = ChatEngine(
        SqliteLiveState(folder / "live.sqlite"), Hub(), directory, outbox, ChatTokens(b"bench")
    )
    consoles: dict[str, tuple[AgentSession, Console]] = {}
    for profile in directory.agents():
        console = Console()
        session = AgentSession(console.subscriber(), profile.agent_id)
        agents.do_agent_connect(engine, session)
        consoles[profile.agent_id] = (session, console)

    pages: dict[str, VisitorSession] = {}  # conversation id -> the visitor's session

    def start(n: int) -> str:
        visitor = VisitorSession(_quiet(), ip="203.0.113.7")
        visitors.do_visitor_hello(
            engine, visitor, widget_id=_id(2, n % topics), visitor_id=f"visitor-{n:06d}", page=PAGE
        )
        visitors.do_visitor_start(engine, visitor, client_id=f"start-{n}", fields=FIELDS)
        assert visitor.conversation_id is not None
        pages[visitor.conversation_id] = visitor
        return visitor.conversation_id

    def accept_offers() -> None:
        for session, console in consoles.values():
            while console.offered:
                agents.do_agent_accept(engine, session, conversation_id=console.offered.pop())

    began = time.perf_counter()
    for n in range(agent_count * capacity):
        start(n)
        accept_offers()
    for n in range(agent_count * capacity, agent_count * capacity + queued):
        start(n)
    setup_secs = time.perf_counter() - began
    waiting = sum(1 for c in engine.conversations.values() if c.state.value == "waiting")

    active = [cid for cid, c in engine.conversations.items() if c.state.value == "active"]
    rng = random.Random(11)
    wall_ms, cpu_ms = [], []
    items_before = outbox.items
    for _ in range(frees):
        ending = active.pop(rng.randrange(len(active)))
        agent_id = engine.conversations[ending].owner_agent_id
        assert agent_id is not None
        session, console = consoles[agent_id]
        t0, c0 = time.perf_counter(), time.process_time()
        visitors.do_visitor_end(engine, pages[ending])
        cpu_ms.append(1000 * (time.process_time() - c0))
        assert console.offered, "the freed place was not offered"
        wall_ms.append(1000 * (console.offered_at - t0))
        offered = console.offered.pop()
        agents.do_agent_accept(engine, session, conversation_id=offered)
        active.append(offered)
    engine.stop()

    def pct(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1], 2) if len(values) > 1 else 0.0

    return {
        "agents": agent_count,
        "capacity": capacity,
        "topics": topics,
        "queued": waiting,
        "setup_secs": round(setup_secs, 1),
        "frees": frees,
        "offer_after_free_ms_p50": pct(wall_ms, 50),
        "offer_after_free_ms_p99": pct(wall_ms, 99),
        "cpu_ms_per_free_p50": pct(cpu_ms, 50),
        "dataverse_writes_per_ended_chat": round((outbox.items - items_before) / frees, 2),
        "dataverse_reads_per_chat_by_routing": 0,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--capacity", type=int, default=3)
    parser.add_argument("--queued", type=int, default=2000)
    parser.add_argument("--frees", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        figures = run(
            agent_count=args.agents,
            topics=args.topics,
            capacity=args.capacity,
            queued=args.queued,
            frees=args.frees,
            folder=Path(folder),
        )
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
