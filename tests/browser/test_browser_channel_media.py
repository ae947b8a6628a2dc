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
