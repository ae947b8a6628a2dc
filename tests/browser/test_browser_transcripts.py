"""After a chat, the visitor downloads its transcript and has it mailed to them, in real
Chromium, through a real SMTP server (Debian's aiosmtpd, tests/smtp_fixture.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from smtp_fixture import SmtpServer


@pytest.fixture
def mail_env(smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    monkeypatch.setenv("CRMCHAT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CRMCHAT_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("CRMCHAT_SMTP_TLS", "none")
    monkeypatch.setenv("CRMCHAT_SMTP_FROM", "chat@shop.example")
    return smtp_server


@pytest.fixture
def mail_service(mail_env: SmtpServer, service: Any) -> Iterator[Any]:
    """The service (tests/browser/conftest.py) started with mail set up."""
    yield service


def ended_chat(service: Any, new_page: Callable[[], Any], sam: Any) -> Any:
    """A visitor's chat with Sam, ended by the visitor; the visitor's page."""
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Ann")
    visitor.get_by_test_id("crmchat-field-lastname").fill("Visitor")
    visitor.get_by_test_id("crmchat-field-email").fill("ann.visitor@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("Is <script>alert(1)</script> a valid coupon?")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("valid coupon?")
    sam.get_by_test_id("message-input").fill("No, sorry.")
    sam.get_by_test_id("send-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("No, sorry.")
    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    return visitor


def test_the_visitor_downloads_and_mails_the_transcript(
    mail_service: Any,
    mail_env: SmtpServer,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = ended_chat(mail_service, new_page, sam)

    with visitor.expect_download() as download_info:
        visitor.get_by_test_id("crmchat-transcript-download").click()
    saved = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert "Ann Visitor: Is <script>alert(1)</script> a valid coupon?" in saved
    assert "Sam: No, sorry." in saved

    visitor.get_by_test_id("crmchat-transcript-mail").click()
    address = visitor.get_by_test_id("crmchat-transcript-email")
    # The address the visitor gave before the chat, ready to send.
    expect(address).to_have_value("ann.visitor@example.com")
    address.fill("ann@example")
    visitor.get_by_test_id("crmchat-transcript-send").click()
    status = visitor.get_by_test_id("crmchat-transcript-status")
    expect(status).to_have_text("Please enter a valid email address.")
    address.fill("ann.home@example.com")
    visitor.get_by_test_id("crmchat-transcript-send").click()
    expect(status).to_have_text("The transcript is on its way to ann.home@example.com.")

    [mail] = mail_env.messages()
    assert mail["To"] == "ann.home@example.com"
    body = mail.get_payload(decode=True).decode()
    assert "Sam: No, sorry." in body


def test_without_mail_the_widget_offers_only_the_download(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = ended_chat(service, new_page, sam)
    expect(visitor.get_by_test_id("crmchat-transcript-download")).to_be_visible()
    expect(visitor.get_by_test_id("crmchat-transcript-mail")).to_have_count(0)
