"""An agent's console preferences (sound, toast mode and delay) are kept on their agent
record in CRM, so they follow the agent to another browser (issue 11)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import SAM_AGENT_ID, admin_client
from connector.services import services_of


def test_preferences_follow_the_agent_to_another_browser(
    service: Any, agent_console: Callable[..., Any]
) -> None:
    first = agent_console("Sam Sales")
    expect(first.get_by_test_id("sound-toggle")).to_be_checked()  # the defaults at first
    first.get_by_test_id("sound-toggle").uncheck()
    first.get_by_test_id("alert-mode").select_option("every")

    client = admin_client(services_of(service.app).standin)

    def stored() -> Any:
        row = client.retrieve("crmchat_agents", SAM_AGENT_ID, select=["crmchat_preferences"])
        return json.loads(row["crmchat_preferences"] or "null")

    wanted = {"sound": False, "mode": "every", "delaySecs": 30}
    deadline = time.monotonic() + 10
    while stored() != wanted:  # the console writes it through Xrm.WebApi, soon
        assert time.monotonic() < deadline, stored()
        time.sleep(0.1)

    # Another browser (a fresh context: nothing in its localStorage) shows Sam's choice.
    second = agent_console("Sam Sales")
    expect(second.get_by_test_id("sound-toggle")).not_to_be_checked()
    expect(second.get_by_test_id("alert-mode")).to_have_value("every")
    expect(second.get_by_test_id("alert-delay")).to_be_hidden()
