"""Set-up cost per chat as chats accumulate, in one engine process (issue 14, "The engine").

The shape of `relay_scale.py`'s load, without sockets, so the shared machine's scheduling
noise stays out of it: chat i is agent i signing in (its console's `snapshot`), visitor i
saying hello and starting a chat, and agent i accepting it; every chat stays open. The
engine is the real one (`ChatEngine` over `SqliteLiveState` in a temporary folder, a real
`Hub`), the Directory an in-memory one shaped as `chat_load.py` seeds Dataverse: agent i
serves topic i, widget i routes to topic i, so each chat is offered to exactly one agent.
Presence is sent as the running engine sends it: `do_flush_presence` whenever
`PRESENCE_TICK_SECS` of wall time passed since the last send (inline, so the figures are
this thread's).

For each window of `--window` chats ending at each `--at` count it prints the CPU time per
chat (`time.process_time`, the engine's own work: less sensitive to other processes than
wall time) and the frames and bytes every console received per chat set up (the fan-out).

    .venv/bin/python bench/engine_setup.py --at 100 1000 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.chat import engine as engine_module  # noqa: E402
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


def _id(kind: int, n: int) -> str:
    return f"{kind}0000000-0000-0000-0000-{n:012d}"


FIELDS = {"firstname": "Bench", "lastname": "Visitor", "email": "v@bench.local"}
PAGE = {"url": "https://shop.example/", "title": "Shop", "referrer": ""}


class Directory:
    """`DirectoryLike` over `count` agents, topics and widgets: agent i <-> widget i."""

    def __init__(self, count: int) -> None:
        self._agents = {
            _id(3, n): AgentProfile(
                agent_id=_id(3, n),
                user_id=_id(4, n),
                name=f"Agent {n}",
                email=f"agent{n}@bench.local",
                phone="",
                image=None,
                topic_ids=frozenset({_id(1, n)}),
            )
            for n in range(count)
        }
        self._widgets = {
            _id(2, n): WidgetRecord(
                _id(2, n), f"Widget {n}", True, WidgetDesign(), frozenset({_id(1, n)})
            )
            for n in range(count)
        }
        self._topics = {
            _id(1, n): TopicRecord(_id(1, n), f"Topic {n}", "#ff0000") for n in range(count)
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
    def enqueue(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        pass


class Received:
    """What every console together received."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0

    def subscriber(self) -> Subscriber:
        def send(text: str) -> None:
            self.frames += 1
            self.bytes += len(text)

        return Subscriber(send)


def run(at: list[int], window: int, folder: Path) -> list[dict[str, Any]]:
    count = max(at)
    directory = Directory(count)
    engine = ChatEngine(
        SqliteLiveState(folder / "live.sqlite"),
        Hub(),
        directory,
        Outbox(),
        ChatTokens(b"bench-secret"),
    )
    # A build without presence ticks (before issue 14) sends presence at once.
    flush = getattr(agents, "do_flush_presence", None)
    tick = float(getattr(engine_module, "PRESENCE_TICK_SECS", 0.2))
    consoles, pages = Received(), Received()
    last_tick = time.monotonic()
    marks: dict[int, tuple[float, int, int]] = {}
    profiles = directory.agents()
    figures = []
    starts = {max(0, t - window): t for t in at}  # the window measured for each count
    for n in range(count):
        if n in starts:
            marks[starts[n]] = (time.process_time(), consoles.frames, consoles.bytes)
        agent = AgentSession(consoles.subscriber(), profiles[n].agent_id)
        agents.do_agent_connect(engine, agent)
        visitor = VisitorSession(pages.subscriber(), ip="203.0.113.7")
        visitors.do_visitor_hello(
            engine, visitor, widget_id=_id(2, n), visitor_id=f"visitor-{n:06d}", page=PAGE
        )
        visitors.do_visitor_start(engine, visitor, client_id=f"start-{n}", fields=FIELDS)
        assert visitor.conversation_id is not None
        agents.do_agent_accept(engine, agent, conversation_id=visitor.conversation_id)
        if flush is not None and time.monotonic() - last_tick >= tick:
            flush(engine)
            last_tick = time.monotonic()
        done = n + 1
        if done in marks:
            cpu, frames, size = marks[done]
            spent = min(window, done)  # chats in this window
            figures.append(
                {
                    "chats_open": done,
                    "cpu_ms_per_chat": round(1000 * (time.process_time() - cpu) / spent, 2),
                    "console_frames_per_chat": round((consoles.frames - frames) / spent, 1),
                    "console_kib_per_chat": round((consoles.bytes - size) / spent / 1024, 1),
                }
            )
            print(json.dumps(figures[-1]), flush=True)
    return figures


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=int, nargs="+", default=[100, 1000, 2000])
    parser.add_argument("--window", type=int, default=50, help="chats per measured window")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        figures = run(sorted(args.at), args.window, Path(folder))
    print("| chats open | CPU ms per chat | console frames per chat | console KiB per chat |")
    print("|---|---|---|---|")
    for row in figures:
        print(
            f"| {row['chats_open']} | {row['cpu_ms_per_chat']} | "
            f"{row['console_frames_per_chat']} | {row['console_kib_per_chat']} |"
        )
    return figures


if __name__ == "__main__":
    main()
