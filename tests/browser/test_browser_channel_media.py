"""A person's picture and document on a channel reach the agent console as files of the
chat: the picture previewed inline, the document offered for download, as a web chat's
uploads are (the notes on the activity: tests/test_channels_inbound_media.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.channels import simulator
from connector.channels.model import ChannelType
from connector.channels.shared import channels_of


@pytest.mark.parametrize("channel", [ChannelType.WHATSAPP, ChannelType.MESSENGER])
def test_the_agent_sees_the_persons_picture_and_file(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    channel: ChannelType,
) -> None:
    sam = agent_console("Sam Sales")
    (account,) = [a for a in channels_of(service.app).accounts.all() if a.channel is channel]
    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(account.key)
    platform.get_by_label("Person id").fill("4670002")
    platform.get_by_role("button", name="Send a picture").click()
    expect(platform.get_by_role("status")).to_have_text("Webhook answered 200.")

    offer = sam.get_by_test_id("incoming-chat")
    expect(offer).to_have_count(1)
    offer.get_by_test_id("accept-button").click()
    preview = sam.get_by_test_id("attachment-preview")
    expect(preview).to_have_count(1)
    expect(preview).to_have_attribute("src", re.compile(r"^blob:"))
    # The picture really loaded (1x1), read through the chat's file API.
    assert preview.evaluate("img => img.complete && img.naturalWidth") == 1

    platform.get_by_role("button", name="Send a file").click()
    name = simulator.SAMPLE_FILE_NAME if channel is ChannelType.WHATSAPP else "sample.pdf"
    files = sam.get_by_test_id("message-attachment")
    expect(files).to_have_count(2)
    expect(files.last).to_have_attribute("data-name", name)
    expect(files.last.get_by_test_id("attachment-download")).to_contain_text(name)


@pytest.mark.parametrize("channel", [ChannelType.VIBER, ChannelType.INSTAGRAM])
def test_the_agents_picture_reaches_the_person_on_the_platform(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    channel: ChannelType,
) -> None:
    sam = agent_console("Sam Sales")
    (account,) = [a for a in channels_of(service.app).accounts.all() if a.channel is channel]
    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(account.key)
    platform.get_by_label("Person id").fill("person-77")
    platform.get_by_label("Message").fill("Can I see it?")
    platform.get_by_role("button", name="Send as person").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(sam.get_by_test_id("attach-button")).to_be_visible()

    sam.locator("#file-input").set_input_files(
        {"name": "shirt.png", "mimeType": "image/png", "buffer": simulator.SAMPLE_PNG}
    )
    expect(sam.get_by_test_id("attachment-preview")).to_have_count(1)
    # The platform fetched it from the service's signed link and shows the picture.
    shown = platform.locator("#lines li[data-sender=business] img.media")
    expect(shown).to_have_count(1)
    kind = "picture" if channel is ChannelType.VIBER else "image"
    expect(platform.locator("#lines li[data-sender=business] .text")).to_have_text(
        f"[{kind}] shirt.png"
    )
    assert shown.evaluate("img => img.complete && img.naturalWidth") == 1
    expect(sam.get_by_test_id("message-receipt").last).to_have_text("Delivered")
    # A file the platform does not take is refused in the console, before any upload.
    sam.locator("#file-input").set_input_files(
        {
            "name": "notes.docx" if channel is ChannelType.INSTAGRAM else "tool.exe",
            "mimeType": "application/octet-stream",
            "buffer": b"PK",
        }
    )
    expect(sam.get_by_test_id("attachment-preview")).to_have_count(1)
