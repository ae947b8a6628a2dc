"""Files in a chat both ways (issue 11), the visitor and the agent each in their own
browser context: the design's limits refuse a file before it is uploaded, the service
a file reaches the other side (an image with
its preview), and every file is a note with its bytes on the chat activity."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import SALES_WIDGET_ID, admin_client
from connector.services import services_of

# A 1x1 PNG: 67 bytes.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def limit_sales_files(service: Any, max_kb: int) -> None:
    """The admin's limits on the Sales widget (its design, as the designer saves it)."""
    client = admin_client(services_of(service.app).standin)
    row = client.retrieve("crmchat_widgets", SALES_WIDGET_ID, select=["crmchat_design"])
    design = json.loads(row["crmchat_design"] or "{}")
    design["attachments"] = {"enabled": True, "max_kb": max_kb, "types": ["png", "txt"]}
    client.update("crmchat_widgets", SALES_WIDGET_ID, {"crmchat_design": json.dumps(design)})
    services_of(service.app).directory.invalidate()  # as the next refresh would


def test_files_are_checked_before_upload_reach_the_other_side_and_become_notes(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
    activity_notes: Callable[[str, list[str]], list[dict[str, Any]]],
) -> None:
    limit_sales_files(service, max_kb=1)
    sam = agent_console("Sam Sales")
    visitor = new_page()
    uploads: list[str] = []
    for page in (visitor, sam.owner.page):
        page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/files") else None)
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Fay")
    visitor.get_by_test_id("crmchat-field-lastname").fill("File")
    visitor.get_by_test_id("crmchat-field-email").fill("fay@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").filter(has_text="Fay File").get_by_test_id(
        "accept-button"
    ).click()
    expect(sam.get_by_test_id("chat-name")).to_have_text("Fay File")

    # Over the admin's 1 KB, or not an allowed type: refused in the browser, nothing sent.
    files = visitor.get_by_test_id("crmchat-file-input")
    files.set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"x" * 2000})
    expect(visitor.get_by_test_id("crmchat-slowed")).to_have_text(
        "notes.txt: The file is larger than 1 KB."
    )
    files.set_input_files(
        {"name": "setup.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}
    )
    expect(visitor.get_by_test_id("crmchat-slowed")).to_contain_text(
        "Only these files can be sent: png, txt."
    )
    sam_files = sam.get_by_test_id("file-input")
    sam_files.set_input_files({"name": "big.png", "mimeType": "image/png", "buffer": b"x" * 2000})
    expect(sam.get_by_test_id("toast")).to_contain_text("big.png: The file is larger than 1 KB.")
    assert uploads == []

    # The visitor sends an image: Sam sees it previewed, and it downloads.
    files.set_input_files({"name": "receipt.png", "mimeType": "image/png", "buffer": PNG})
    attachment = sam.get_by_test_id("message-attachment").filter(has_text="receipt.png")
    expect(attachment).to_have_count(1)
    preview = attachment.get_by_test_id("attachment-preview")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.decode().then(() => img.naturalWidth)") == 1
    # Sam answers with a text file: the visitor gets it as a link holding its bytes.
    sam_files.set_input_files(
        {"name": "prices.txt", "mimeType": "text/plain", "buffer": b"Pro: 20 EUR a month"}
    )
    link = visitor.get_by_test_id("crmchat-attachment").filter(has_text="prices.txt")
    expect(link).to_have_attribute("href", re.compile(r"^blob:"))
    text = link.evaluate("a => fetch(a.href).then((r) => r.text())")
    assert text == "Pro: 20 EUR a month"
    assert len(uploads) == 2

    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()
    visitor.get_by_test_id("crmchat-star-5").click()
    chat = chat_activity(["activityid", "crmchat_transcript", "crmchat_rating"])
    assert "receipt.png" in chat["crmchat_transcript"]
    notes = {
        note["filename"]: note
        for note in activity_notes(
            chat["activityid"], ["subject", "filename", "mimetype", "documentbody"]
        )
    }
    assert set(notes) == {"receipt.png", "prices.txt"}
    assert notes["receipt.png"]["mimetype"] == "image/png"
    assert base64.b64decode(notes["receipt.png"]["documentbody"]) == PNG
    assert notes["receipt.png"]["subject"] == "Chat attachment from Fay File: receipt.png"
    assert base64.b64decode(notes["prices.txt"]["documentbody"]) == b"Pro: 20 EUR a month"
