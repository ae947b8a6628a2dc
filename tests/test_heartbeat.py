"""A process killed with -9 stops counting, and exactly one survivor buries it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from live_workers import beat_with_sockets

from connector.chat.heartbeat import ProcessHeartbeat
from connector.chat.state import LivePrimitives

CTX = multiprocessing.get_context("spawn")


def test_a_killed_process_is_buried_once_by_one_survivor(
    live_spec: str, live_state: LivePrimitives
) -> None:
    ready = CTX.Event()
    doomed = CTX.Process(target=beat_with_sockets, args=(live_spec, "doomed", ready))
    doomed.start()
    assert ready.wait(30)
    buried: list[str] = []
    survivors = [
        ProcessHeartbeat(live_state, process_id=name, on_dead=buried.append, ttl_secs=0.5)
        for name in ("a", "b")
    ]
    for survivor in survivors:
        survivor.beat()
    assert live_state.presence_counts() == {"visitor:v1": 2}
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)

    deadline = time.monotonic() + 10
    while not buried:
        assert time.monotonic() < deadline, "the dead process was never buried"
        for survivor in survivors:
            survivor.beat()
        time.sleep(0.05)
    for survivor in survivors:
        survivor.beat()
    assert buried == ["doomed"]
    assert live_state.presence_counts() == {}
    assert live_state.dead_processes() == []


def test_stopping_forgets_this_processs_sockets(live_state: LivePrimitives) -> None:
    heartbeat = ProcessHeartbeat(live_state, process_id="me", beat_secs=0.05)
    heartbeat.start()
    live_state.presence_change("me", "agent:a1", 1)
    time.sleep(0.2)
    assert live_state.presence_counts() == {"agent:a1": 1}
    heartbeat.stop()
    assert live_state.presence_counts() == {}
