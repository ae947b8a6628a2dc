"""Issue 12: past the chat start limit per address, the widget says so (it does not wait
an hour unseen). Two people behind one address, a limit of one chat an hour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect


@pytest.fixture
def one_chat_an_hour(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    monkeypatch.setenv("CRMCHAT_CHAT_START_LIMIT_PER_ADDRESS", "1/hour")
    return request.getfixturevalue("service")


def start(service: Any, visitor: Any, name: str) -> None:
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill(name)
    visitor.get_by_test_id("crmchat-field-email").fill(f"{name.lower()}@example.com")
    visitor.get_by_test_id("crmchat-start").click()


def test_a_chat_start_past_the_limit_says_why_and_starts_nothing(
    one_chat_an_hour: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    first = new_page()
    start(one_chat_an_hour, first, "Ola")
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(1)
    second = new_page()
    start(one_chat_an_hour, second, "Per")
    expect(second.get_by_test_id("crmchat-prechat-error")).to_contain_text(
        "Too many chats were started from here"
    )
    expect(second.get_by_test_id("crmchat-start")).to_be_enabled()  # may try again later
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(1)
