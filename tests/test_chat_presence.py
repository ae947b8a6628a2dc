"""Agents' presence at load: changes sent per tick, one frame per console; a bounded
sign-in snapshot (docs/protocol.md, "Presence")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chat_fakes import ANN, BOB, CID
from test_chat_engine import World

from connector.chat.actions import agents
from connector.chat.model import AgentStatus


def test_agents_signing_in_within_one_tick_cost_each_console_one_frame(tmp_path: Path) -> None:
    world = World(tmp_path)
    _, ann_in = world.agent(ANN)
    agents.do_flush_presence(world.engine)
    ann_in.clear()

    world.agent(BOB)
    world.agent(CID)
    assert ann_in.of_type("agents.updated") == []  # nothing sent per sign-in
    assert agents.do_flush_presence(world.engine) == 2

    frames = ann_in.of_type("agents.updated")
    assert len(frames) == 1
    rows = {row["agent_id"]: row for row in frames[0]["agents"]}
    assert set(rows) == {BOB, CID}
    assert all(row["online"] for row in rows.values())
    assert agents.do_flush_presence(world.engine) == 0  # sent once


def test_a_status_change_and_a_sign_out_reach_the_other_consoles(tmp_path: Path) -> None:
    world = World(tmp_path)
    ann, ann_in = world.agent(ANN)
    _, bob_in = world.agent(BOB)
    agents.do_flush_presence(world.engine)
    ann_in.clear()
    bob_in.clear()

    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.BUSY)
    agents.do_agent_disconnect(world.engine, ann)
    agents.do_flush_presence(world.engine)

    # Busy then offline within one tick: one row, as Ann is now.
    (frame,) = bob_in.of_type("agents.updated")
    assert frame["agents"] == [
        {
            "agent_id": ANN,
            "name": "Ann",
            "status": "busy",
            "online": False,
            "topic_ids": frame["agents"][0]["topic_ids"],
        }
    ]
    assert ann_in.of_type("agents.updated") == []  # her socket is gone


def test_the_sign_in_snapshot_lists_the_online_agents_and_me_only(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.agent(ANN)
    _, bob_in = world.agent(BOB)

    listed = {row["agent_id"] for row in bob_in.last("snapshot")["agents"]}
    assert listed == {ANN, BOB}  # Cid never signed in: no row to send


def test_the_running_engine_sends_presence_within_a_tick(tmp_path: Path) -> None:
    world = World(tmp_path)
    _, ann_in = world.agent(ANN)
    world.engine.start()
    try:
        world.agent(BOB)
        deadline = time.monotonic() + 5
        while not ann_in.of_type("agents.updated") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        world.engine.stop()
    rows = [row for frame in ann_in.of_type("agents.updated") for row in frame["agents"]]
    assert BOB in {row["agent_id"] for row in rows}


def test_with_more_consoles_online_than_the_send_budget_rows_wait_for_a_later_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 agents online at 5 sends a second: a frame to each every 0.6 s, not every tick.
    monkeypatch.setattr(agents, "PRESENCE_SENDS_PER_SEC", 5)
    world = World(tmp_path)
    ann, ann_in = world.agent(ANN)
    _, bob_in = world.agent(BOB)
    world.agent(CID)
    assert agents.do_flush_presence(world.engine) == 3
    bob_in.clear()

    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.BUSY)
    assert agents.do_flush_presence(world.engine) == 0  # the next tick: too soon
    assert bob_in.of_type("agents.updated") == []

    world.engine.presence_sent_at -= 0.6  # as if 0.6 s had passed
    assert agents.do_flush_presence(world.engine) == 1
    (frame,) = bob_in.of_type("agents.updated")
    assert frame["agents"][0]["status"] == "busy"


def test_a_later_snapshot_shows_an_agent_as_they_are_now(tmp_path: Path) -> None:
    world = World(tmp_path)
    ann, _ = world.agent(ANN)
    world.agent(BOB)  # his snapshot lists Ann, Available
    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.BUSY)

    _, cid_in = world.agent(CID)

    rows = {row["agent_id"]: row for row in cid_in.last("snapshot")["agents"]}
    assert rows[ANN]["status"] == "busy"
    assert set(rows) == {ANN, BOB, CID}
