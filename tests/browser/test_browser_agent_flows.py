"""Wrap-up and postpone in real browsers (issue 11): the visitor and the agent each in
their own browser context; the admin's list through the topic form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from test_browser_workspace import accept_offer, start_visitor_chat


def test_the_visitor_ends_and_the_agent_closes_the_wrapup_with_a_disposition(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
) -> None:
    from connector.demo import SALES_TOPIC_ID
    from connector.services import services_of

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.goto(f"{service.url}/app/main#record/crmchat_topic/{SALES_TOPIC_ID}")
    admin.get_by_label("Dispositions (one per line)").fill("Sold\nNo interest")
    admin.get_by_test_id("save-record").click()
    expect(admin.locator("form.record-form").get_by_role("status")).to_have_text("Saved.")
    services_of(service.app).directory.invalidate()  # as the next refresh would

    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Wendy", "Wrapup")
    accept_offer(sam, "Wendy Wrapup")

    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    visitor.get_by_test_id("crmchat-star-4").click()
    expect(visitor.get_by_test_id("crmchat-end")).to_contain_text("Thanks for your feedback!")

    # The chat stays open for Sam in wrap-up, asking for the disposition.
    expect(sam.locator("#chat-state")).to_have_text("Wrap-up")
    expect(sam.get_by_test_id("chat-banner")).to_contain_text("Choose its disposition")
    expect(sam.get_by_test_id("visitor-chat-item")).to_contain_text("Wendy Wrapup")
    close = sam.get_by_test_id("end-button")
    expect(close).to_have_text("Close")
    close.click()
    sam.get_by_test_id("end-confirm").click()
    expect(sam.get_by_test_id("disposition-hint")).to_be_visible()
    sam.get_by_test_id("disposition-select").select_option("No interest")
    sam.get_by_test_id("end-confirm").click()
    expect(sam.locator("#chat-state")).to_have_text("Ended")
    expect(sam.get_by_test_id("end-button")).to_be_disabled()
    expect(sam.get_by_test_id("visitor-chat-item")).to_have_count(0)

    # One activity, with the rating the visitor gave and the disposition Sam chose after.
    chat = chat_activity(["crmchat_disposition", "crmchat_rating"])
    assert chat["crmchat_disposition"] == "No interest"
    assert chat["crmchat_rating"] == 4


def in_minutes(page: Any, minutes: int) -> str:
    """A datetime-local value `minutes` from now in the browser's own time zone."""
    return str(
        page.locator("body").evaluate(
            """(body, minutes) => {
              const at = new Date(Date.now() + minutes * 60000);
              const pad = (n) => String(n).padStart(2, "0");
              return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate())
                + "T" + pad(at.getHours()) + ":" + pad(at.getMinutes());
            }""",
            minutes,
        )
    )


def test_an_agent_postpones_a_chat_and_it_returns_when_the_customer_writes(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Paula", "Postpone")
    accept_offer(sam, "Paula Postpone")

    sam.get_by_test_id("postpone-button").click()
    until = sam.get_by_test_id("postpone-until")
    expect(until).to_be_focused()
    # Too soon is refused in the console, and the chat stays.
    until.fill(in_minutes(sam, -5))
    sam.get_by_test_id("postpone-confirm").click()
    expect(sam.get_by_test_id("postpone-hint")).to_have_text(
        "Choose a time at least a minute from now."
    )
    until.fill(in_minutes(sam, 30))
    sam.get_by_test_id("postpone-confirm").click()

    # It leaves Visitor chats and its tab for the Postponed list.
    postponed = sam.get_by_test_id("postponed-chat-item")
    expect(postponed).to_contain_text("Paula Postpone")
    expect(postponed.get_by_test_id("postponed-until")).to_contain_text("until")
    expect(sam.get_by_test_id("visitor-chat-item")).to_have_count(0)
    expect(sam.get_by_test_id("chat-tab")).to_have_count(0)
    # Opened from there, it says so; it is still Sam's and the visitor sees nothing of it.
    postponed.click()
    expect(sam.get_by_test_id("chat-banner")).to_contain_text("Postponed until")
    sam.get_by_test_id("chat-tab-close").click()

    # The customer writes: the chat is back, in a flagged tab, with the message.
    visitor.get_by_test_id("crmchat-input").fill("Any news on my order?")
    visitor.get_by_test_id("crmchat-input").press("Enter")
    expect(sam.get_by_test_id("toast")).to_contain_text("Paula Postpone is back from Postponed.")
    expect(sam.get_by_test_id("postponed-chat-item")).to_have_count(0)
    expect(sam.get_by_test_id("visitor-chat-item")).to_contain_text("Paula Postpone")
    tab = sam.get_by_test_id("chat-tab").filter(has_text="Paula Postpone")
    expect(tab.get_by_test_id("chat-tab-new")).to_be_visible()
    tab.click()
    expect(sam.get_by_test_id("messages")).to_contain_text("Any news on my order?")
    expect(sam.locator("#chat-state")).to_have_text("Active")


def test_an_agent_invites_the_support_queue_and_its_free_agent_joins(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    bea = agent_console("Bea Support")  # Support only: not offered a Sales chat by name
    visitor = start_visitor_chat(new_page, service.url, "Quinn", "Queue")
    accept_offer(sam, "Quinn Queue")

    sam.get_by_test_id("invite-button").click()
    menu = sam.get_by_test_id("invite-menu")
    expect(menu.get_by_test_id("invite-agent")).to_have_count(0)
    menu.get_by_test_id("invite-queue").filter(has_text="Queue: Support").click()

    # The Support queue's routing picks Bea: she is in the chat, the visitor is told.
    expect(bea.get_by_test_id("chat-tab").filter(has_text="Quinn Queue")).to_be_visible()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Bea")
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("joined the chat.")

    # Nobody else of Support is free: the service says so and the chat goes on.
    sam.get_by_test_id("invite-button").click()
    menu.get_by_test_id("invite-queue").filter(has_text="Queue: Support").click()
    refused = sam.get_by_test_id("toast").filter(has_text="Nobody in the Support queue is free now")
    expect(refused).to_be_visible()
    expect(sam.locator("#chat-state")).to_have_text("Active")


def test_an_agent_sends_a_knowledge_article_as_a_link_to_the_public_knowledge_base(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    from test_browser_pages import save_settings

    from connector.demo import admin_client
    from connector.services import services_of

    dataverse = admin_client(services_of(service.app).standin)
    article_id = dataverse.create(
        "knowledgearticles",
        {"title": "Warranty", "keywords": "guarantee", "content": "<p>Two years.</p>"},
    )
    dataverse.update("knowledgearticles", article_id, {"statecode": 3, "statuscode": 7})
    save_settings(
        service,
        new_page,
        sign_in,
        Knowledge_base_address="https://support.example.com/knowledgebase/article/{id}",
    )

    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Kai", "Link")
    accept_offer(sam, "Kai Link")
    panel = sam.get_by_test_id("kb-panel")
    panel.get_by_test_id("kb-search").fill("guarantee")
    panel.get_by_test_id("kb-item").get_by_role("button").click()
    expect(panel.get_by_test_id("kb-title")).to_have_text("Warranty")
    panel.get_by_test_id("kb-send-link").click()
    link = f"https://support.example.com/knowledgebase/article/{article_id}"
    composer = sam.get_by_test_id("message-input")
    expect(composer).to_have_value(f"Warranty: {link}")
    composer.press("Enter")
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text(link)

    # An address that is not https:// is never used: no button, and the console says why.
    save_settings(
        service,
        new_page,
        sign_in,
        Knowledge_base_address="http://support.example.com/knowledgebase/article/{id}",
    )
    again = agent_console("Sam Sales")
    again.get_by_test_id("visitor-chat-item").filter(has_text="Kai Link").click()
    panel = again.get_by_test_id("kb-panel")
    panel.get_by_test_id("kb-search").fill("guarantee")
    panel.get_by_test_id("kb-item").get_by_role("button").click()
    expect(panel.get_by_test_id("kb-send-link")).to_be_hidden()
    expect(panel.get_by_test_id("kb-link-note")).to_have_text(
        "The knowledge base address must be an https:// address with {number} or {id} in it."
    )


def test_an_agent_edits_the_contact_with_checks_and_crm_refuses_an_account_they_may_not_write(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import SAM_USER_ID, admin_client
    from connector.services import services_of

    dataverse = admin_client(services_of(service.app).standin)
    # The account is the admin's; the contact Sam's (the Agent role writes contacts and
    # accounts it owns: Basic).
    account_id = dataverse.create(
        "accounts", {"name": "Edit Bikes Ltd", "telephone1": "+1 555 0100"}
    )
    contact_id = dataverse.create(
        "contacts",
        {
            "firstname": "Eddie",
            "lastname": "Edit",
            "emailaddress1": "eddie@example.com",
            "telephone1": "+1 555 0101",
            "ownerid@odata.bind": f"/systemusers({SAM_USER_ID})",
            "parentcustomerid_account@odata.bind": f"/accounts({account_id})",
        },
    )
    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Eddie", "Visitor")  # eddie@example.com
    accept_offer(sam, "Eddie Visitor")
    panel = sam.get_by_test_id("contact-panel")
    expect(panel.get_by_test_id("contact-name")).to_contain_text("Eddie Edit")

    panel.get_by_test_id("contact-edit").click()
    form = panel.get_by_test_id("contact-form")
    expect(form.get_by_test_id("contact-lastname")).to_have_value("Edit")
    form.get_by_test_id("contact-lastname").fill("")
    form.get_by_test_id("contact-save").click()
    error = form.get_by_test_id("contact-form-error")
    expect(error).to_have_text("Last name is required.")
    form.get_by_test_id("contact-lastname").fill("Edison")
    form.get_by_test_id("contact-email").fill("eddie at example")
    form.get_by_test_id("contact-save").click()
    expect(error).to_have_text("Enter an email address like name@example.com.")
    form.get_by_test_id("contact-email").fill("eddie@example.com")
    form.get_by_test_id("contact-phone").fill("+1 555 0199")
    form.get_by_test_id("contact-save").click()
    expect(form).to_be_hidden()
    expect(panel.get_by_test_id("contact-name")).to_contain_text("Eddie Edison")
    expect(panel.get_by_test_id("contact-facts")).to_contain_text("+1 555 0199")
    saved = dataverse.retrieve("contacts", contact_id, select=["lastname", "telephone1"])
    assert saved["lastname"] == "Edison" and saved["telephone1"] == "+1 555 0199"

    account = sam.get_by_test_id("account-panel")
    expect(account.get_by_test_id("account-name")).to_contain_text("Edit Bikes Ltd")
    account.get_by_test_id("account-edit").click()
    account.get_by_test_id("account-name-input").fill("Edit Bikes plc")
    account.get_by_test_id("account-save").click()
    expect(account.get_by_test_id("account-form-error")).to_contain_text("CRM did not save it")
    saved = dataverse.retrieve("accounts", account_id, select=["name"])
    assert saved["name"] == "Edit Bikes Ltd"


def test_an_agent_marks_a_chat_important_and_both_agents_see_the_star(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
) -> None:
    sam = agent_console("Sam Sales")
    bea = agent_console("Bea Support")
    visitor = start_visitor_chat(new_page, service.url, "Ivy", "Important")
    accept_offer(sam, "Ivy Important")
    sam.get_by_test_id("invite-button").click()
    sam.get_by_test_id("invite-menu").get_by_test_id("invite-queue").filter(
        has_text="Queue: Support"
    ).click()
    bea_tab = bea.get_by_test_id("chat-tab").filter(has_text="Ivy Important")
    expect(bea_tab).to_be_visible()
    expect(bea_tab.get_by_test_id("chat-tab-important")).to_have_count(0)

    mark = sam.get_by_test_id("important-button")
    expect(mark).to_have_attribute("aria-pressed", "false")
    mark.click()
    expect(mark).to_have_attribute("aria-pressed", "true")
    expect(
        sam.get_by_test_id("visitor-chat-item").get_by_test_id("chat-item-important")
    ).to_be_visible()
    expect(bea_tab.get_by_test_id("chat-tab-important")).to_be_visible()
    expect(visitor.get_by_test_id("crmchat-messages")).not_to_contain_text("important")

    # Bea clears it; Sam sees the star go, then marks it again before ending.
    bea_tab.click()
    bea.get_by_test_id("important-button").click()
    expect(sam.get_by_test_id("chat-tab-important")).to_have_count(0)
    expect(mark).to_have_attribute("aria-pressed", "false")
    mark.click()
    expect(bea_tab.get_by_test_id("chat-tab-important")).to_be_visible()
    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("end-confirm").click()
    expect(sam.locator("#chat-state")).to_have_text("Ended")
    visitor.get_by_test_id("crmchat-star-5").click()
    assert chat_activity(["prioritycode", "crmchat_rating"])["prioritycode"] == 2
