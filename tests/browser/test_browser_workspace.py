"""The agent workspace in real browsers (issue 11): the composer and incoming-chat
notifications, with the agents and the visitor each in their own browser context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect


def start_visitor_chat(new_page: Callable[[], Any], url: str, first: str, last: str) -> Any:
    """A visitor on the demo shop (Sales widget) who starts a chat and waits."""
    visitor = new_page()
    visitor.goto(f"{url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill(first)
    visitor.get_by_test_id("crmchat-field-lastname").fill(last)
    visitor.get_by_test_id("crmchat-field-email").fill(f"{first.lower()}@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    expect(visitor.get_by_test_id("crmchat-status")).to_have_text("Waiting for an agent…")
    return visitor


def accept_offer(console: Any, name: str) -> None:
    offer = console.get_by_test_id("incoming-chat").filter(has_text=name)
    offer.get_by_test_id("accept-button").click()
    expect(console.get_by_test_id("chat-name")).to_contain_text(name)


def last_visitor_bubble(visitor: Any) -> Any:
    return visitor.get_by_test_id("crmchat-messages").get_by_test_id("crmchat-message").last


def test_the_composer_inserts_snippets_and_emoticons_and_enter_sends_shift_enter_breaks(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Ann", "Composer")
    accept_offer(sam, "Ann Composer")
    composer = sam.get_by_test_id("message-input")

    # A snippet picked from the dropdown (found by typing part of its name) lands where
    # the cursor is, after what the agent had typed.
    composer.fill("Welcome. ")
    sam.get_by_test_id("snippet-button").click()
    sam.get_by_test_id("snippet-filter").fill("hou")
    expect(sam.get_by_test_id("snippet-item")).to_have_count(1)
    sam.get_by_test_id("snippet-item").click()
    expect(sam.get_by_test_id("snippet-picker")).to_be_hidden()
    expect(composer).to_have_value(
        "Welcome. We are here Monday to Friday, 9:00 to 17:00 (Central European Time)."
    )
    composer.press("Enter")
    expect(last_visitor_bubble(visitor)).to_contain_text("Welcome. We are here Monday to Friday")
    expect(composer).to_have_value("")

    # Shift+Enter makes a new line and does not send; `#name#` in the middle of a message
    # is expanded by the service; an emoticon from the picker goes in at the cursor.
    composer.press_sequentially("Line one #thanks#")
    composer.press("Shift+Enter")
    composer.press_sequentially("Line two ")
    expect(composer).to_have_value("Line one #thanks#\nLine two ")
    sam.get_by_test_id("emoji-button").click()
    sam.get_by_test_id("emoji-item").filter(has_text="👍").click()
    expect(composer).to_have_value("Line one #thanks#\nLine two 👍")
    expect(visitor.get_by_test_id("crmchat-messages")).not_to_contain_text("Line one")
    composer.press("Enter")
    bubble = last_visitor_bubble(visitor)
    expect(bubble).to_contain_text("Line one Thank you for chatting with us!")
    expect(bubble).to_contain_text("Line two 👍")
    # The new line is kept and shown as one: two lines of text in the visitor's bubble and
    # in the agent's own log.
    assert "Thank you for chatting with us!\nLine two 👍" in bubble.inner_text()
    agent_bubble = sam.get_by_test_id("messages").get_by_test_id("message-text").last
    assert "Thank you for chatting with us!\nLine two 👍" in agent_bubble.inner_text()


# ----- notifications --------------------------------------------------------------------

# Counts the tones the console plays (each is one oscillator) and records desktop
# notifications, in every frame of the page: headless Chromium has neither speakers nor a
# notification centre to look at.
ALERT_PROBES = """
window.__beeps = 0;
const realOscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__beeps += 1;
  return realOscillator.call(this);
};
window.__notes = [];
class ProbeNotification {
  constructor(title, options) { window.__notes.push({ title, body: (options || {}).body || "" }); }
  close() {}
  static requestPermission() {
    ProbeNotification.permission = "granted";
    return Promise.resolve("granted");
  }
}
ProbeNotification.permission = "default";
window.Notification = ProbeNotification;
"""

HIDE_CONSOLE = """(body, hidden) => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def probed_console(
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    name: str,
) -> tuple[Any, Any]:
    page = new_page()
    page.add_init_script(ALERT_PROBES)
    sign_in(page, name)
    return page, open_console(page)


def probe(console: Any, expression: str) -> Any:
    return console.locator("body").evaluate(f"() => {expression}")


def test_an_offer_toasts_with_who_what_and_how_long_rings_and_accepts_from_the_toast(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    from connector.demo import ANN_CONTACT_ID

    page, sam = probed_console(new_page, sign_in, open_console, "Sam Sales")
    # Sound is on for an agent who never chose.
    expect(sam.get_by_test_id("sound-toggle")).to_be_checked()
    set_status(sam, "available")

    start_visitor_chat(new_page, service.url, "Ann", "Smith")
    toast = sam.get_by_test_id("offer-toast")
    expect(toast).to_have_count(1)
    # Who (linked to the CRM contact the email matched), the topic, and two clocks: how
    # long the customer has waited and how long the toast has been up.
    contact = toast.get_by_test_id("offer-contact")
    expect(contact).to_have_text("Ann Smith")
    expect(contact).to_have_attribute("data-id", ANN_CONTACT_ID)
    expect(toast.get_by_test_id("offer-topics")).to_contain_text("Sales")
    expect(toast.get_by_test_id("offer-shown")).to_have_text(re.compile(r"^0:0[1-9]$"))
    expect(toast.get_by_test_id("offer-waited")).to_have_text(re.compile(r"^0:\d\d$"))
    assert probe(sam, "window.__beeps") >= 1
    # The name opens the contact's form.
    with page.expect_popup() as popup:
        contact.click()
    expect(popup.value).to_have_url(re.compile(ANN_CONTACT_ID))

    # Accept on the toast takes the chat; the toast goes.
    toast.get_by_test_id("offer-accept").click()
    expect(sam.get_by_test_id("chat-name")).to_contain_text("Ann Smith")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)


def test_a_colleague_taking_the_offer_removes_its_toast_and_sound_is_each_agents_own_choice(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    page, sam = probed_console(new_page, sign_in, open_console, "Sam Sales")
    sam.get_by_test_id("sound-toggle").uncheck()
    set_status(sam, "available")
    # Sam in a second browser takes the chat: the first console's toast disappears.
    other = open_console_for(new_page, sign_in, open_console, set_status, "Sam Sales")
    start_visitor_chat(new_page, service.url, "Ben", "Quiet")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(1)
    expect(other.get_by_test_id("offer-toast")).to_have_count(1)
    other.get_by_test_id("offer-accept").click()
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)
    # With sound off this console never rang.
    assert probe(sam, "window.__beeps") == 0

    # The choice is kept for Sam across a reload, and is not Bea's in the same browser.
    page.reload()
    sam = open_console(page)
    expect(sam.get_by_test_id("sound-toggle")).not_to_be_checked()
    sign_in(page, "Bea Support")
    bea = open_console(page)
    expect(bea.get_by_test_id("sound-toggle")).to_be_checked()


def open_console_for(
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
    name: str,
) -> Any:
    page = new_page()
    sign_in(page, name)
    console = open_console(page)
    set_status(console, "available")
    return console


def test_a_hidden_console_notifies_the_desktop_and_flashes_the_title_for_every_message(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    page, sam = probed_console(new_page, sign_in, open_console, "Sam Sales")
    # The agent's first click asks for permission.
    assert probe(sam, "Notification.permission") == "default"
    sam.get_by_test_id("alert-mode").click()
    assert probe(sam, "Notification.permission") == "granted"
    sam.get_by_test_id("alert-mode").select_option("every")
    set_status(sam, "available")

    sam.locator("body").evaluate(HIDE_CONSOLE, True)
    visitor = start_visitor_chat(new_page, service.url, "Cleo", "Hidden")
    wait_for_note(sam, "New chat: Cleo Hidden")

    sam.locator("body").evaluate(HIDE_CONSOLE, False)
    accept_offer(sam, "Cleo Hidden")
    sam.locator("body").evaluate(HIDE_CONSOLE, True)
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("Are you still there?")
    composer.press("Enter")
    note = wait_for_note(sam, "Cleo Hidden")
    assert note["body"] == "Are you still there?"
    expect(sam.get_by_test_id("message-toast")).to_contain_text("Cleo Hidden: Are you still there?")
    # The app's tab (the top document, same origin) flashes the count.
    page.wait_for_function("() => document.title.startsWith('(1) New message')")


def wait_for_note(console: Any, title: str) -> dict[str, str]:
    console.locator("body").evaluate(
        """(body, title) => new Promise((resolve, reject) => {
          const started = Date.now();
          (function look() {
            if (window.__notes.some((n) => n.title === title)) resolve();
            else if (Date.now() - started > 10000) reject(new Error("no notification " + title));
            else setTimeout(look, 100);
          })();
        })""",
        title,
    )
    notes = console.locator("body").evaluate("() => window.__notes")
    return [n for n in notes if n["title"] == title][-1]


def test_by_default_a_toast_comes_once_the_customer_has_waited_the_agents_delay(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    page, sam = probed_console(new_page, sign_in, open_console, "Sam Sales")
    expect(sam.get_by_test_id("alert-mode")).to_have_value("delay")
    expect(sam.get_by_test_id("alert-delay")).to_have_value("30")
    sam.get_by_test_id("alert-delay").fill("5")
    sam.get_by_test_id("alert-delay").press("Tab")
    set_status(sam, "available")
    visitor = start_visitor_chat(new_page, service.url, "Dan", "Waits")
    accept_offer(sam, "Dan Waits")
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("Hello?")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("Hello?")
    # No toast for the message itself in this mode ...
    expect(sam.get_by_test_id("message-toast")).to_have_count(0)
    # ... but one once Dan has waited 5 seconds for an answer.
    expect(sam.get_by_test_id("message-toast")).to_contain_text(
        re.compile(r"Dan Waits has waited 0:0[5-9] for an answer")
    )


def test_reject_withdraws_the_offer_from_every_console_of_that_agent_and_the_visitor_still_waits(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    page = new_page()
    sign_in(page, "Sam Sales")
    sam = open_console(page)
    set_status(sam, "available")
    sam_elsewhere = open_console_for(new_page, sign_in, open_console, set_status, "Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Eve", "Declined")
    second = start_visitor_chat(new_page, service.url, "Fay", "Kept")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(2)

    sam.get_by_test_id("offer-toast").filter(has_text="Eve Declined").get_by_test_id(
        "offer-reject"
    ).click()
    for console in (sam, sam_elsewhere):
        expect(console.get_by_test_id("offer-toast")).to_have_count(1)
        expect(console.get_by_test_id("offer-toast")).to_contain_text("Fay Kept")
        expect(console.get_by_test_id("incoming-chat")).to_have_count(1)
        expect(console.get_by_test_id("incoming-chat")).not_to_contain_text("Eve Declined")
    # The other waiting chat is rejected from the incoming list instead.
    sam_elsewhere.get_by_test_id("incoming-chat").get_by_test_id("reject-button").click()
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(0)
    # Nothing brings them back to Sam: not a reload, not going Busy and Available again.
    page.reload()
    sam = open_console(page)
    set_status(sam, "busy")
    set_status(sam, "available")
    expect(sam.get_by_test_id("incoming-panel")).to_contain_text("No chats waiting.")
    expect(sam.get_by_test_id("offer-toast")).to_have_count(0)
    # The visitors are not told; they keep waiting for another agent.
    expect(visitor.get_by_test_id("crmchat-status")).to_have_text("Waiting for an agent…")
    expect(second.get_by_test_id("crmchat-status")).to_have_text("Waiting for an agent…")


def test_at_most_three_offer_toasts_show_and_the_rest_are_counted(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import SAM_AGENT_ID
    from connector.services import services_of

    # Four chats ring for Sam at once only when his capacity allows four (default 3).
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.goto(f"{service.url}/app/main#record/crmchat_agent/{SAM_AGENT_ID}")
    admin.get_by_label("Concurrent chats").fill("5")
    admin.get_by_test_id("save-record").click()
    expect(admin.locator("form.record-form").get_by_role("status")).to_have_text("Saved.")
    services_of(service.app).directory.invalidate()
    sam = agent_console("Sam Sales")
    for first in ("Gus", "Hal", "Ida", "Jon"):
        start_visitor_chat(new_page, service.url, first, "Queue")
    expect(sam.get_by_test_id("incoming-chat")).to_have_count(4)
    # The three oldest offers as toasts, the fourth counted below them.
    expect(sam.get_by_test_id("offer-toast")).to_have_count(3)
    expect(sam.get_by_test_id("offer-toast").first).to_contain_text("Gus Queue")
    expect(sam.get_by_test_id("offer-more")).to_have_text("+1 more in Incoming chats")
    sam.get_by_test_id("offer-toast").first.get_by_test_id("offer-accept").click()
    expect(sam.get_by_test_id("offer-toast")).to_have_count(3)
    expect(sam.get_by_test_id("offer-toast").last).to_contain_text("Jon Queue")
    expect(sam.get_by_test_id("offer-more")).to_have_count(0)


# ----- closing with a disposition -------------------------------------------------------


def test_an_agent_must_choose_the_topics_disposition_to_end_and_the_activity_shows_it(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
    chat_activity: Callable[[list[str]], dict[str, Any]],
) -> None:
    from connector.demo import SALES_TOPIC_ID
    from connector.services import services_of

    # The admin writes the Sales topic's list on its form, one per line.
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.goto(f"{service.url}/app/main#record/crmchat_topic/{SALES_TOPIC_ID}")
    admin.get_by_label("Dispositions (one per line)").fill("Sold\nNeeds a quote\nNo interest")
    admin.get_by_test_id("save-record").click()
    expect(admin.locator("form.record-form").get_by_role("status")).to_have_text("Saved.")
    services_of(service.app).directory.invalidate()  # as the next refresh would

    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Dora", "Disposition")
    accept_offer(sam, "Dora Disposition")

    sam.get_by_test_id("end-button").click()
    choice = sam.get_by_test_id("disposition-select")
    expect(choice).to_be_focused()
    expect(choice.locator("option")).to_have_text(
        ["Choose…", "Sold", "Needs a quote", "No interest"]
    )
    # Ending without one is refused in the console: the chat goes on for both.
    sam.get_by_test_id("end-confirm").click()
    expect(sam.get_by_test_id("disposition-hint")).to_be_visible()
    expect(sam.get_by_test_id("end-confirm-box")).to_be_visible()
    expect(sam.locator("#chat-state")).to_have_text("Active")
    # A console that skipped the check is refused by the service with the same words.
    sam.locator("body").evaluate(
        "() => document.getElementById('disposition').replaceChildren("
        "Object.assign(document.createElement('option'), {value: 'Made up', text: 'Made up'}))"
    )
    sam.get_by_test_id("end-confirm").click()
    expect(sam.get_by_test_id("toast")).to_contain_text("not one of this topic's")
    expect(sam.locator("#chat-state")).to_have_text("Active")
    expect(visitor.get_by_test_id("crmchat-end")).to_be_hidden()

    sam.get_by_test_id("end-button").click()
    sam.get_by_test_id("disposition-select").select_option("Needs a quote")
    sam.get_by_test_id("end-confirm").click()
    expect(sam.locator("#chat-state")).to_have_text("Ended")
    visitor.get_by_test_id("crmchat-star-5").click()

    chat = chat_activity(["activityid", "crmchat_disposition", "crmchat_rating"])
    assert chat["crmchat_disposition"] == "Needs a quote"
    # The chat's form shows it.
    admin.goto(f"{service.url}/app/main#record/crmchat_chat/{chat['activityid']}")
    expect(admin.get_by_label("Disposition", exact=True)).to_have_value("Needs a quote")


# ----- the Contact panel ----------------------------------------------------------------


def test_the_contact_panel_links_another_matching_contact_shows_it_and_unpairs_it(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import admin_client
    from connector.services import services_of

    # Two contacts share the visitor's email: record identification links neither.
    dataverse = admin_client(services_of(service.app).standin)
    for last, phone in (("O'Hara", "+33 1 11"), ("Newman", "+33 1 22")):
        dataverse.create(
            "contacts",
            {
                "firstname": "Lena",
                "lastname": last,
                "emailaddress1": "lena@example.com",
                "telephone1": phone,
            },
        )
    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Lena", "Visitor")
    accept_offer(sam, "Lena Visitor")

    panel = sam.get_by_test_id("contact-panel")
    expect(panel.get_by_test_id("contact-facts")).to_contain_text("No contact linked.")
    matches = panel.get_by_test_id("contact-match")
    expect(matches).to_have_text([re.compile("Lena Newman"), re.compile("Lena O'Hara")])

    matches.filter(has_text="O'Hara").get_by_test_id("contact-link").click()
    expect(panel.get_by_test_id("contact-name")).to_contain_text("Lena O'Hara")
    expect(panel.get_by_test_id("contact-facts")).to_contain_text("+33 1 11")
    expect(sam.get_by_test_id("regarding")).to_contain_text("Lena O'Hara")
    expect(matches).to_have_text([re.compile("Lena Newman")])

    # The agent picks the other one instead.
    matches.get_by_test_id("contact-link").click()
    expect(panel.get_by_test_id("contact-name")).to_contain_text("Lena Newman")
    expect(panel.get_by_test_id("contact-facts")).to_contain_text("+33 1 22")
    expect(matches).to_have_text([re.compile("Lena O'Hara")])

    panel.get_by_test_id("contact-unpair").click()
    expect(panel.get_by_test_id("contact-facts")).to_contain_text("No contact linked.")
    expect(sam.get_by_test_id("regarding")).to_have_text("None yet")
    expect(matches).to_have_count(2)


# ----- the Case panel -------------------------------------------------------------------


def test_the_case_and_account_panels_search_the_contacts_cases_and_assign_the_chat_to_one(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import admin_client
    from connector.services import services_of

    dataverse = admin_client(services_of(service.app).standin)
    corp = dataverse.create("accounts", {"name": "Case Corp", "telephone1": "+33 1 99"})
    cora = dataverse.create(
        "contacts",
        {
            "firstname": "Cora",
            "lastname": "Case",
            "emailaddress1": "cora@example.com",
            "parentcustomerid_account@odata.bind": f"/accounts({corp})",
        },
    )
    for title in ("Broken screen", "Late delivery", "Can't log in"):
        dataverse.create(
            "incidents", {"title": title, "customerid_contact@odata.bind": f"/contacts({cora})"}
        )
    dataverse.create(
        "incidents",
        {"title": "Corp invoice", "customerid_account@odata.bind": f"/accounts({corp})"},
    )
    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Cora", "Case")
    accept_offer(sam, "Cora Case")
    # Record identification linked the one contact (and no case: she has three).
    expect(sam.get_by_test_id("regarding")).to_contain_text("Contact: Cora Case")

    panel = sam.get_by_test_id("case-panel")
    items = panel.get_by_test_id("case-item")
    expect(items).to_have_count(3)
    # A quote in the search is a literal, not OData.
    panel.get_by_test_id("case-search").fill("can't")
    expect(items).to_have_count(1)
    expect(items).to_contain_text(["Can't log in"])
    panel.get_by_test_id("case-search").fill("late")
    expect(items).to_have_text([re.compile("Late delivery")])
    items.get_by_test_id("case-assign").click()
    expect(sam.get_by_test_id("regarding")).to_contain_text("Case: Late delivery")
    expect(items.get_by_test_id("case-assigned")).to_have_text("Assigned")

    # The Account panel shows her company; its cases are a filter away.
    account = sam.get_by_test_id("account-panel")
    expect(account.get_by_test_id("account-name")).to_contain_text("Case Corp")
    expect(account.get_by_test_id("account-facts")).to_contain_text("+33 1 99")
    panel.get_by_test_id("case-search").fill("")
    panel.get_by_test_id("case-filter").select_option("account")
    expect(items).to_have_text([re.compile("Corp invoice")])

    # Sam owns no case: "Mine" finds none.
    panel.get_by_test_id("case-filter").select_option("mine")
    expect(panel.get_by_test_id("case-results")).to_contain_text("No open cases.")


# ----- the Knowledge panel --------------------------------------------------------------


def test_the_knowledge_panel_finds_a_published_article_shows_its_text_and_sends_it(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    from connector.demo import admin_client
    from connector.services import services_of

    dataverse = admin_client(services_of(service.app).standin)
    published = dataverse.create(
        "knowledgearticles",
        {
            "title": "Returns policy",
            "keywords": "refund",
            "content": "<p>You can return any item within <b>30 days</b>.</p>"
            "<img src=x onerror=\"document.title='owned'\"><p>Keep the receipt.</p>",
        },
    )
    dataverse.update("knowledgearticles", published, {"statecode": 3, "statuscode": 7})
    dataverse.create("knowledgearticles", {"title": "Returns (draft)", "content": "<p>Soon</p>"})

    sam = agent_console("Sam Sales")
    visitor = start_visitor_chat(new_page, service.url, "Kim", "Knowledge")
    accept_offer(sam, "Kim Knowledge")
    panel = sam.get_by_test_id("kb-panel")
    panel.get_by_test_id("kb-search").fill("refund")  # by keyword
    items = panel.get_by_test_id("kb-item")
    expect(items).to_have_text([re.compile("Returns policy")])
    panel.get_by_test_id("kb-search").fill("Returns")  # the draft is not offered
    expect(items).to_have_text([re.compile("Returns policy")])
    items.get_by_role("button").click()
    body = panel.get_by_test_id("kb-body")
    expect(body).to_contain_text("You can return any item within 30 days.")
    expect(body).to_contain_text("Keep the receipt.")
    assert "<b>" not in body.inner_text() and body.locator("img").count() == 0

    panel.get_by_test_id("kb-send-text").click()
    composer = sam.get_by_test_id("message-input")
    expect(composer).to_have_value(re.compile(r"^Returns policy\nYou can return any item"))
    composer.press("Enter")
    expect(last_visitor_bubble(visitor)).to_contain_text("You can return any item within 30 days.")
    assert sam.locator("body").evaluate("() => document.title") != "owned"


# ----- the admin's choice of panels -----------------------------------------------------


def test_the_admin_chooses_and_orders_the_consoles_side_panels(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    from connector.crm.org_settings import save_chat_enabled
    from connector.crm.tables import SETTINGS_ID
    from connector.demo import admin_client
    from connector.services import services_of

    # The settings row exists once an admin saved anything on the Settings page.
    save_chat_enabled(admin_client(services_of(service.app).standin), True)
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.goto(f"{service.url}/app/main#record/crmchat_settings/{SETTINGS_ID}")
    admin.get_by_label("Console side panels").fill("knowledge, contact, nonsense")
    admin.get_by_test_id("save-record").click()
    expect(admin.locator("form.record-form").get_by_role("status")).to_have_text("Saved.")

    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Pia", "Panels")
    accept_offer(sam, "Pia Panels")
    expect(sam.get_by_test_id("kb-panel")).to_be_visible()
    expect(sam.get_by_test_id("contact-panel")).to_be_visible()
    expect(sam.get_by_test_id("case-panel")).to_be_hidden()
    shown = sam.locator("body").evaluate(
        "() => [...document.querySelectorAll('[data-panel]')]"
        ".filter((card) => card.offsetParent !== null).map((card) => card.dataset.panel)"
    )
    assert shown == ["knowledge", "contact"]


# ----- the contact's past activities ----------------------------------------------------


def test_the_activities_panel_lists_the_contacts_earlier_activities(
    service: Any,
    new_page: Callable[[], Any],
    agent_console: Callable[..., Any],
) -> None:
    from connector.crm.tables import bind_regarding
    from connector.demo import SAM_USER_ID, admin_client
    from connector.services import services_of

    dataverse = admin_client(services_of(service.app).standin)
    ada = dataverse.create(
        "contacts", {"firstname": "Ada", "lastname": "Activity", "emailaddress1": "ada@example.com"}
    )
    other = dataverse.create("contacts", {"lastname": "Someone"})
    # Sam's own chats (the agent role reads the chats it owns): one with Ada, one not.
    for subject, contact in (("Asked about pricing", ada), ("Not Ada's", other)):
        name, value = bind_regarding("contact", contact)
        dataverse.create(
            "crmchat_chats",
            {"subject": subject, name: value, "ownerid@odata.bind": f"/systemusers({SAM_USER_ID})"},
        )

    sam = agent_console("Sam Sales")
    start_visitor_chat(new_page, service.url, "Ada", "Activity")
    accept_offer(sam, "Ada Activity")
    items = sam.get_by_test_id("activities-panel").get_by_test_id("activity-item")
    expect(items).to_have_count(1)
    expect(items).to_contain_text(["Asked about pricing"])
