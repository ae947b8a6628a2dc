"""The "leave a message" form on plain Dataverse (no Dynamics 365 Customer Service, so no
case table): the visitor is thanked without a ticket number, and the message is a chat
activity regarding their new contact, on its timeline, with no error anywhere."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.demo import admin_client
from connector.services import services_of

WAIT_SECS = 15.0


@pytest.fixture
def plain_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The demo on an embedded Dataverse without the Dynamics 365 apps."""
    from werkzeug.serving import make_server

    from connector.app import create_app, stop_app

    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_app(
        {
            "data_dir": tmp_path / "data",
            "port": port,
            "log_level": "WARNING",
            "embedded_dynamics_apps": False,
        }
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        stop_app(app)


def test_a_message_without_cases_is_kept_on_the_contact(
    plain_service: Any, new_page: Callable[[], Any]
) -> None:
    app, url = plain_service
    assert "incident" not in services_of(app).standin.schema.tables
    visitor = new_page()
    visitor.goto(f"{url}/demo/message")
    visitor.get_by_test_id("crmchat-launcher").click()
    form = visitor.get_by_test_id("crmchat-ticket-form")
    expect(form).to_be_visible()  # nobody is available
    form.get_by_test_id("crmchat-ticket-field-firstname").fill("Nia")
    form.get_by_test_id("crmchat-ticket-field-lastname").fill("Noor")
    form.get_by_test_id("crmchat-ticket-field-email").fill("nia.noor@example.com")
    form.get_by_test_id("crmchat-ticket-message").fill("Do you deliver on Sundays?")
    form.get_by_test_id("crmchat-ticket-submit").click()
    expect(visitor.get_by_test_id("crmchat-ticket-done")).to_have_text(
        "Thanks, we got your message. We will get back to you."
    )

    client = admin_client(services_of(app).standin)
    (person,) = list(
        client.list(
            "contacts",
            select=["contactid", "fullname"],
            filter="emailaddress1 eq 'nia.noor@example.com'",
        )
    )
    assert person["fullname"] == "Nia Noor"
    deadline = time.monotonic() + WAIT_SECS
    while not (
        chats := list(
            client.list(
                "crmchat_chats",
                select=["_regardingobjectid_value", "crmchat_transcript", "statecode"],
            )
        )
    ):
        assert time.monotonic() < deadline, "the message never became a chat activity"
        time.sleep(0.2)
    (chat,) = chats
    assert chat["_regardingobjectid_value"] == person["contactid"]
    assert "Nia Noor: Do you deliver on Sundays?" in chat["crmchat_transcript"]
