"""Chat-flow faults users hit, each seen in real browsers (issue 13): the visitor's rating
reaches the agent, the console offers only agents who can take a chat, names widgets and
fields as the admin did, puts the other agent of an agent chat on the other side; the
widget's title is not cut short; a value the designer's Save refused can be fixed and saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import SALES_TOPIC_ID, SALES_WIDGET_ID, admin_client


def start_chat(service: Any, visitor: Any) -> None:
    visitor.goto(f"{service.url}/demo/")
    visitor.get_by_test_id("crmchat-launcher").click()
    visitor.get_by_test_id("crmchat-field-firstname").fill("Gus")
    visitor.get_by_test_id("crmchat-field-email").fill("gus@example.com")
    visitor.get_by_test_id("crmchat-start").click()


def accepted_chat(service: Any, new_page: Callable[[], Any], sam: Any) -> Any:
    visitor = new_page()
    start_chat(service, visitor)
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    expect(visitor.get_by_test_id("crmchat-messages")).to_contain_text("Sam joined the chat")
    return visitor


def test_the_widget_title_wraps_beside_the_end_chat_button(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    agent_console("Sam Sales")
    visitor = new_page()
    start_chat(service, visitor)
    expect(visitor.get_by_test_id("crmchat-end-chat")).to_be_visible()
    title = visitor.get_by_test_id("crmchat-panel").locator(".title")
    expect(title).to_have_text("Questions before you buy?")
    assert title.evaluate("t => t.scrollWidth <= t.clientWidth")  # nothing cut off


def test_the_console_names_the_widget_and_the_fields_as_the_admin_did(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = new_page()
    start_chat(service, visitor)
    item = sam.get_by_test_id("visitor-item")
    expect(item).to_contain_text("Sales chat")
    expect(item).not_to_contain_text("Widget 0c5a1e50")
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    facts = sam.get_by_test_id("visitor-input")
    expect(facts).to_contain_text("First name")
    expect(facts).not_to_contain_text("firstname")


def test_invite_offers_only_agents_who_can_take_the_chat(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    agent_console("Bea Support")  # online, but Support only: she cannot take a Sales chat
    accepted_chat(service, new_page, sam)
    sam.get_by_test_id("invite-button").click()
    menu = sam.get_by_test_id("invite-menu")
    expect(menu).to_be_visible()
    expect(menu).to_contain_text("No other agent of this chat's topics is online.")
    expect(menu.get_by_test_id("invite-agent")).to_have_count(0)


def test_the_agent_sees_the_visitors_rating(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = accepted_chat(service, new_page, sam)
    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    visitor.get_by_test_id("crmchat-star-4").click()
    expect(sam.get_by_test_id("chat-rating")).to_have_text("Rated ★★★★☆ (4 of 5)")
    expect(sam.get_by_test_id("chat-tab-rating")).to_have_attribute("data-rating", "4")


def test_in_an_agent_chat_the_other_agent_speaks_from_the_other_side(
    agent_console: Callable[..., Any],
) -> None:
    sam = agent_console("Sam Sales")
    bea = agent_console("Bea Support")
    sam.get_by_test_id("agent-item").filter(has_text="Bea").get_by_test_id(
        "agent-chat-button"
    ).click()
    sam.get_by_test_id("message-input").fill("Hi Bea")
    sam.get_by_test_id("send-button").click()
    expect(bea.get_by_test_id("message").filter(has_text="Hi Bea")).to_have_count(1)
    bea.get_by_test_id("message-input").fill("Hi Sam")
    bea.get_by_test_id("send-button").click()
    mine = sam.get_by_test_id("message").filter(has_text="Hi Bea")
    theirs = sam.get_by_test_id("message").filter(has_text="Hi Sam")
    expect(theirs).to_have_count(1)
    log_box = sam.get_by_test_id("messages").bounding_box()
    mine_box, theirs_box = mine.bounding_box(), theirs.bounding_box()
    assert log_box is not None and mine_box is not None and theirs_box is not None
    middle = log_box["x"] + log_box["width"] / 2
    assert mine_box["x"] + mine_box["width"] / 2 > middle  # my message on the right
    assert theirs_box["x"] + theirs_box["width"] / 2 < middle  # Bea's on the left


def open_designer(new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]) -> Any:
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    nav = admin.get_by_role("navigation", name="App navigation")
    nav.get_by_role("link", name="Widgets", exact=True).click()
    admin.get_by_role("link", name="Sales chat", exact=True).click()
    admin.get_by_role("button", name="Design", exact=True).click()
    designer = admin.frame_locator("#frames iframe:visible")
    expect(designer.get_by_test_id("designer-widget-name")).to_have_text("Sales chat")
    return designer


def test_the_designer_says_the_send_text_is_the_icon_buttons_label(
    new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    designer = open_designer(new_page, sign_in)
    label = designer.locator('label[for="d-send_button"]')
    expect(label).to_contain_text("read by screen readers")
    expect(label).to_contain_text("the button is an icon")


def test_a_value_the_service_refused_can_be_fixed_and_saved(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    designer = open_designer(new_page, sign_in)
    end_chat = designer.get_by_role("group", name="End chat")
    end_chat.get_by_label("Type", exact=True).select_option("link")
    link = end_chat.get_by_label("Link (https://…)", exact=True)
    link.fill("ftp://example.com/bye")  # the service accepts only http(s) links
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Not saved")
    expect(link).to_have_attribute("aria-invalid", "true")

    link.fill("https://example.com/bye")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    client = admin_client(service.app.extensions["crmchat.standin"])
    design = client.retrieve("crmchat_widgets", SALES_WIDGET_ID, select=["crmchat_design"])
    assert '"link": "https://example.com/bye"' in design["crmchat_design"]


def test_turning_chat_off_hides_the_widget_on_pages_already_open(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    agent_console("Sam Sales")
    visitor = new_page()
    visitor.goto(f"{service.url}/demo/")
    launcher = visitor.get_by_test_id("crmchat-launcher")
    expect(launcher).to_be_visible()

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    admin.get_by_role("navigation", name="App navigation").get_by_role(
        "link", name="Settings", exact=True
    ).click()
    settings = admin.frame_locator('iframe[data-subarea="sub_settings"]')
    expect(settings.locator("#signin")).to_have_text("Signed in as CRM Chat Admin.")
    settings.locator("#chat-enabled").uncheck()
    settings.locator("#chat-form").get_by_role("button", name="Save").click()
    expect(settings.locator("#chat-form .result")).to_have_text("Chat is off everywhere.")

    # The page opened before is told at once: no launcher that would lead nowhere.
    expect(launcher).to_be_hidden(timeout=5_000)


def test_an_earlier_chat_in_history_shows_its_transcript(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    sam = agent_console("Sam Sales")
    visitor = accepted_chat(service, new_page, sam)
    composer = visitor.get_by_test_id("crmchat-input")
    composer.fill("My first question")
    composer.press("Enter")
    expect(sam.get_by_test_id("messages")).to_contain_text("My first question")
    visitor.get_by_test_id("crmchat-end-chat").click()
    visitor.get_by_test_id("crmchat-confirm-yes").click()
    expect(visitor.get_by_test_id("crmchat-end")).to_be_visible()
    visitor.get_by_test_id("crmchat-new-chat").click()

    # The same visitor again: the new chat's History card lists the first one.
    visitor.get_by_test_id("crmchat-field-firstname").fill("Gus")
    visitor.get_by_test_id("crmchat-field-email").fill("gus@example.com")
    visitor.get_by_test_id("crmchat-start").click()
    sam.get_by_test_id("incoming-chat").get_by_test_id("accept-button").click()
    item = sam.get_by_test_id("history-item")
    expect(item).to_have_count(1)
    item.get_by_role("button").click()
    transcript = sam.get_by_test_id("history-transcript")
    expect(transcript).to_contain_text("My first question")
    expect(transcript).to_contain_text("Sam joined the chat")


def add_sales_agent(service: Any) -> None:
    """A third agent, Sue Sales (topic Sales), so a Sales chat can have two agents."""
    from connector.dataverse_local import add_user

    standin = service.app.extensions["crmchat.standin"]
    role = standin.store.schema.role_named("CRM Chat Agent")
    user_id = add_user(
        standin.store,
        domain_name="sue@crmchat.local",
        first_name="Sue",
        last_name="Sales",
        role_ids=[role.id],
    )
    client = admin_client(standin)
    client.create(
        "crmchat_agents",
        {
            "crmchat_name": "Sue",
            "crmchat_SystemUserId@odata.bind": f"/systemusers({user_id})",
            "crmchat_agent_topic@odata.bind": [f"/crmchat_topics({SALES_TOPIC_ID})"],
        },
    )
    service.app.extensions["crmchat.directory"].invalidate()


def test_an_invited_agent_can_take_the_chat_over_and_sees_it_flagged(
    service: Any, new_page: Callable[[], Any], agent_console: Callable[..., Any]
) -> None:
    add_sales_agent(service)
    sam = agent_console("Sam Sales")
    sue = agent_console("Sue Sales")
    # Sue is busy in a chat of her own when Sam invites her to his.
    sue.get_by_test_id("agent-item").filter(has_text="Sam").get_by_test_id(
        "agent-chat-button"
    ).click()
    expect(sue.get_by_test_id("chat-tab")).to_have_count(1)
    accepted_chat(service, new_page, sam)
    sam.get_by_test_id("chat-tab").filter(has_text="Gus").click()

    sam.get_by_test_id("invite-button").click()
    sam.get_by_test_id("invite-menu").get_by_test_id("invite-agent").filter(has_text="Sue").click()
    # The chat Sue was handed opens as a flagged tab beside the one she is in.
    handed = sue.get_by_test_id("chat-tab").filter(has_text="Gus")
    expect(handed.get_by_test_id("chat-tab-new")).to_be_visible()

    # Sue is in the chat now, and Transfer offers her all the same.
    sam.get_by_test_id("transfer-button").click()
    sam.get_by_test_id("transfer-menu").get_by_test_id("transfer-agent").filter(
        has_text="Sue"
    ).click()
    expect(sam.get_by_test_id("chat-tab").filter(has_text="Gus")).to_have_attribute(
        "data-state", "ended"
    )
    handed.click()
    expect(handed.get_by_test_id("chat-tab-new")).to_have_count(0)
    expect(sue.get_by_test_id("messages")).to_contain_text("Sam transferred the chat to Sue.")
