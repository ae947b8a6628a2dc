"""The agent console in an organization with and without Dynamics 365 Sales / Customer
Service (docs/solution.md, "Two solutions"): without lead, incident and knowledgearticle
there is no Create lead, no Create case and no Case or Knowledge panel; contacts still work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.services import services_of
from tests.browser.test_browser_workspace import accept_offer, start_visitor_chat


@pytest.fixture
def plain_dataverse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before `service`: the embedded Dataverse as a plain environment (core solution)."""
    monkeypatch.setenv("CRMCHAT_EMBEDDED_DYNAMICS_APPS", "0")


def test_without_the_apps_the_console_offers_only_what_the_organization_has(
    plain_dataverse: None,
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    assert "incident" not in services_of(service.app).standin.store.schema.tables
    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Pam", "Plain")
    accept_offer(sam, "Pam Plain")
    expect(sam.get_by_test_id("create-contact")).to_be_visible()
    expect(sam.get_by_test_id("create-lead")).to_be_hidden()
    expect(sam.get_by_test_id("create-case")).to_be_hidden()
    expect(sam.get_by_test_id("case-panel")).to_be_hidden()
    expect(sam.get_by_test_id("kb-panel")).to_be_hidden()
    expect(sam.get_by_test_id("contact-panel")).to_be_visible()

    sam.get_by_test_id("create-contact").click()
    expect(sam.get_by_test_id("regarding")).to_contain_text("Pam Plain")


def test_with_the_apps_the_console_offers_leads_cases_and_knowledge(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Dina", "Dynamics")
    accept_offer(sam, "Dina Dynamics")
    for test_id in ("create-lead", "create-contact", "create-case", "case-panel", "kb-panel"):
        expect(sam.get_by_test_id(test_id)).to_be_visible()
