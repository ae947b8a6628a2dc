"""Earlier chats with the contact, from CRM (issue 11): loaded on demand with the agent's
own permissions, newest first, a page at a time, each with its readable transcript; the
chats of another contact never show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_workspace import accept_offer, start_visitor_chat


def test_the_agent_loads_the_contacts_earlier_chats_from_crm_page_by_page(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    from connector.crm.tables import bind_regarding
    from connector.demo import SAM_USER_ID, admin_client
    from connector.services import services_of

    dataverse = admin_client(services_of(service.app).standin)
    ella = dataverse.create(
        "contacts",
        {"firstname": "Ella", "lastname": "Earlier", "emailaddress1": "ella@example.com"},
    )
    other = dataverse.create("contacts", {"lastname": "Someone"})
    owner = {"ownerid@odata.bind": f"/systemusers({SAM_USER_ID})"}

    def chat(day: int, contact: str, *, as_party: bool = False) -> None:
        record: dict[str, Any] = {
            **owner,
            "subject": f"Chat of March {day}",
            "actualstart": f"2026-03-{day:02d}T10:00:00Z",
            "crmchat_transcript": (
                f"[10:00:05] Ella Earlier: question {day}\n[10:01:00] Sam: answer {day}"
            ),
        }
        if as_party:  # a chat regarding something else still has her as its customer
            record["crmchat_chat_activity_parties"] = [
                {"partyid_contact@odata.bind": f"/contacts({contact})", "participationtypemask": 1}
            ]
        else:
            name, value = bind_regarding("contact", contact)
            record[name] = value
        dataverse.create("crmchat_chats", record)

    for day in (1, 2, 3, 4, 5):
        chat(day, ella)
    chat(6, ella, as_party=True)
    chat(7, other)

    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Ella", "Earlier")
    accept_offer(sam, "Ella Earlier")
    items = sam.get_by_test_id("crm-chats").get_by_test_id("crm-chat-item")
    expect(items).to_have_count(0)  # on demand only
    sam.get_by_test_id("crm-chats-load").click()
    expect(items).to_have_count(5)
    expect(items.first).to_contain_text("Chat of March 6")
    expect(items.last).to_contain_text("Chat of March 2")
    more = sam.get_by_test_id("crm-chats-load")
    expect(more).to_have_text("More earlier chats")
    more.click()
    expect(items).to_have_count(6)
    expect(items.last).to_contain_text("Chat of March 1")
    expect(more).to_be_hidden()  # nothing older
    expect(sam.get_by_test_id("crm-chats")).not_to_contain_text("March 7")

    items.filter(has_text="Chat of March 3").get_by_role("button").click()
    transcript = sam.get_by_test_id("crm-chat-transcript")
    expect(transcript).to_have_count(1)
    expect(transcript).to_contain_text("Ella Earlier: question 3")
    expect(transcript).to_contain_text("Sam: answer 3")
