"""A channel's unknown person linked from the console: the agent searches the contacts,
links one, and the person's next conversation on that account opens regarding it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.channels.model import ChannelType
from connector.channels.shared import channels_of


def test_an_unknown_person_is_linked_to_a_contact_and_the_next_chat_links_by_itself(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    (account,) = [
        a for a in channels_of(service.app).accounts.all() if a.channel is ChannelType.MESSENGER
    ]
    platform = new_page()
    platform.goto(f"{service.url}/simulator/")
    platform.get_by_label("Channel account").select_option(account.key)
    platform.get_by_label("Person id").fill("psid-5150")

    def person_writes() -> None:
        platform.get_by_label("Message").fill("Hi, it's Ann")
        platform.get_by_role("button", name="Send as person").click()
        expect(platform.get_by_role("status")).to_have_text("Webhook answered 200.")
        sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
        expect(sam.get_by_test_id("messages")).to_contain_text("Hi, it's Ann")
        expect(sam.get_by_test_id("messages").get_by_text("Hi, it's Ann")).to_have_count(1)

    person_writes()
    expect(sam.get_by_test_id("regarding")).to_have_text("None yet")
    form = sam.get_by_test_id("link-contact")
    expect(form).to_be_visible()
    sam.get_by_test_id("link-query").fill("Ann")
    sam.get_by_test_id("link-search").click()
    result = sam.get_by_test_id("link-result").filter(has_text="Ann Smith")
    expect(result).to_have_count(1)
    result.get_by_test_id("link-choose").click()
    expect(sam.get_by_test_id("regarding")).to_have_text("Contact: Ann Smith")
    expect(form).to_be_hidden()
    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()

    # Later the same person writes again: the new chat regards Ann from the start.
    person_writes()
    expect(sam.get_by_test_id("regarding")).to_have_text("Contact: Ann Smith")
    expect(form).to_be_hidden()
