"""The supervisor board pushed (issue 11): what one sweep's push costs the service.

The engine is the real one (`ChatEngine` over `SqliteLiveState` in a temporary folder, a
real `Hub`, routing_load's in-memory Directory): `--agents` agents of capacity 3 over 10
topics, each filling their capacity, and chats up to `--chats` in all (the rest wait in the
queues). One supervisor console is connected (its first frame: the whole board). Then
`--sweeps` times a visitor writes (the board's `last_seq` moves) and the sweep's
`do_push_board` runs: its wall time (the board built, compared row by row with the last
one, the changed rows sent) is measured, and the same for a sweep with nothing changed
(built and compared, not sent); and how long a build holds the engine lock (copying the
working copy's values out, `supervision._capture`), which is what every chat's relay waits
for. A burst of `--burst` messages between two sweeps reaches the supervisor as one frame.

    .venv/bin/python bench/supervisor_board.py                 # 1,000 chats, 100 agents
    .venv/bin/python bench/supervisor_board.py --chats 2000 --agents 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from routing_load import FIELDS, PAGE, Console, Directory, Outbox, _id, _quiet  # noqa: E402

from connector.chat.actions import agents, supervision, visitors  # noqa: E402
from connector.chat.engine import ChatEngine  # noqa: E402
from connector.chat.hub import Hub, Subscriber  # noqa: E402
from connector.chat.sessions import AgentSession, VisitorSession  # noqa: E402
from connector.chat.state import SqliteLiveState  # noqa: E402
from connector.chat.tokens import ChatTokens  # noqa: E402

TOPICS = 10
CAPACITY = 3


def run(*, agent_count: int, chats: int, sweeps: int, burst: int, folder: Path) -> dict[str, Any]:
    directory = Directory(agent_count, TOPICS, CAPACITY)
    engine = ChatEngine(
        SqliteLiveState(folder / "live.sqlite"), Hub(), directory, Outbox(), ChatTokens(b"bench")
    )
    consoles = []
    for profile in directory.agents():
        console = Console()
        session = AgentSession(console.subscriber(), profile.agent_id)
        agents.do_agent_connect(engine, session)
        consoles.append((session, console))
    pages: list[VisitorSession] = []
    for n in range(chats):
        visitor = VisitorSession(_quiet(), ip="203.0.113.7")
        visitors.do_visitor_hello(
            engine, visitor, widget_id=_id(2, n % TOPICS), visitor_id=f"visitor-{n:06d}", page=PAGE
        )
        visitors.do_visitor_start(engine, visitor, client_id=f"start-{n}", fields=FIELDS)
        pages.append(visitor)
        for session, console in consoles:
            while console.offered:
                agents.do_agent_accept(engine, session, conversation_id=console.offered.pop())

    frames: list[int] = []
    supervisor = AgentSession(
        Subscriber(lambda text: frames.append(len(text.encode()))),
        consoles[0][0].agent_id,
        supervisor=True,
    )
    supervision.watch_board(engine, supervisor)
    supervision.do_push_board(engine)
    changed_ms, unchanged_ms, locked_ms = [], [], []
    for n in range(sweeps):
        visitors.do_visitor_send(engine, pages[n % len(pages)], client_id=f"m{n}", text="Hello?")
        t0 = time.perf_counter()
        assert supervision.do_push_board(engine)
        changed_ms.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        assert not supervision.do_push_board(engine)
        unchanged_ms.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        supervision._capture(engine)
        locked_ms.append(1000 * (time.perf_counter() - t0))
    before = len(frames)
    for n in range(burst):
        visitors.do_visitor_send(engine, pages[n % len(pages)], client_id=f"b{n}", text="Hi")
    supervision.do_push_board(engine)
    burst_frames = len(frames) - before
    engine.stop()

    def pct(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1], 2) if len(values) > 1 else 0.0

    return {
        "agents": agent_count,
        "open_chats": chats,
        "sweeps": sweeps,
        "push_changed_ms_p50": pct(changed_ms, 50),
        "push_changed_ms_p99": pct(changed_ms, 99),
        "sweep_unchanged_ms_p50": pct(unchanged_ms, 50),
        "engine_lock_held_per_build_ms_p50": pct(locked_ms, 50),
        "engine_lock_held_per_build_ms_p99": pct(locked_ms, 99),
        "board_frame_at_connect_kb": round(frames[0] / 1024, 1),
        "change_frame_kb_median": round(statistics.median(frames[1:before]) / 1024, 2),
        "burst_messages": burst,
        "frames_per_supervisor_for_the_burst": burst_frames,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        figures = run(
            agent_count=args.agents,
            chats=args.chats,
            sweeps=args.sweeps,
            burst=args.burst,
            folder=Path(folder),
        )
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
