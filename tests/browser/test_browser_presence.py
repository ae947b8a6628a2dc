"""Agents' presence in the console arrives batched per tick (`agents.updated`, one frame
with the changed rows): another agent appears when signing in and goes when leaving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect


def test_the_console_shows_another_agent_come_and_go(
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    expect(sam.get_by_test_id("agent-item").filter(has_text="Bea")).to_have_count(0)

    bea = agent_console("Bea Support")
    expect(sam.get_by_test_id("agent-item").filter(has_text="Bea")).to_have_count(1)

    bea.owner.page.close()  # her only console: she is offline
    expect(sam.get_by_test_id("agent-item").filter(has_text="Bea")).to_have_count(0)
