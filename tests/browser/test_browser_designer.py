"""The widget designer in a real browser: opened from the Sales widget's record in the app
stand-in, it previews the real widget, saves, and the saved design reaches a site page that
already carried the script, with no new paste."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import SALES_TOPIC_ID, SALES_WIDGET_ID, SUPPORT_TOPIC_ID, admin_client
from connector.services import services_of


def _open_designer(page: Any) -> Any:
    nav = page.get_by_role("navigation", name="App navigation")
    nav.get_by_role("link", name="Widgets", exact=True).click()
    page.get_by_role("link", name="Sales chat", exact=True).click()
    page.get_by_role("button", name="Design", exact=True).click()
    frame = page.frame_locator("#frames iframe:visible")
    expect(frame.locator("#signin")).to_have_text("Signed in as CRM Chat Admin.")
    expect(frame.get_by_test_id("designer-widget-name")).to_have_text("Sales chat")
    return frame


def test_a_design_saved_in_the_designer_reaches_a_page_that_already_carries_the_script(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    agent_console: Callable[..., Any],
) -> None:
    agent_console("Sam Sales", status=None)  # the Sales widget has an agent and shows
    # A visitor's page, loaded before the change: its script tag never changes.
    site = new_page()
    site.goto(f"{service.url}/demo/")
    script_tag = site.locator("script[data-widget-id]").evaluate("s => s.outerHTML")
    expect(site.get_by_test_id("crmchat-launcher")).to_be_visible()
    site.get_by_test_id("crmchat-launcher").click()
    expect(site.get_by_test_id("crmchat-title")).to_have_text("Questions before you buy?")

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    preview = designer.frame_locator('[data-testid="designer-preview"]')
    expect(preview.get_by_test_id("crmchat-title")).to_have_text("Questions before you buy?")

    designer.get_by_role("group", name="Chat display").get_by_label("Title", exact=True).fill(
        "Talk to our sales team"
    )
    # The preview follows every change.
    expect(preview.get_by_test_id("crmchat-title")).to_have_text("Talk to our sales team")
    designer.get_by_label("Header and buttons", exact=True).fill("#b00b1e")
    expect(preview.get_by_test_id("crmchat-start")).to_have_css(
        "background-color", "rgb(176, 11, 30)"
    )
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_have_text(
        "Saved. Sites that carry the script show the new design on their next page load."
    )

    # The service publishes the new design at once: revalidating the config (the loader's
    # request, ETag and all) already answers it.
    config_url = f"{service.url}/api/widgets/{SALES_WIDGET_ID}/config"
    revalidated = site.evaluate(
        "url => fetch(url, {cache: 'no-cache'}).then(r => r.json()).then(c => c.design.title)",
        config_url,
    )
    assert revalidated == "Talk to our sales team"
    # The browser may keep its copy of the config for CONFIG_MAX_AGE_SECS (30 s); let that
    # pass (drop the HTTP cache) instead of sleeping, then load the page again.
    site.context.new_cdp_session(site).send("Network.clearBrowserCache")
    site.reload()
    assert site.locator("script[data-widget-id]").evaluate("s => s.outerHTML") == script_tag
    site.get_by_test_id("crmchat-launcher").click()
    expect(site.get_by_test_id("crmchat-title")).to_have_text("Talk to our sales team")
    expect(site.get_by_test_id("crmchat-start")).to_have_css("background-color", "rgb(176, 11, 30)")

    # Generate Script: the tag to paste names this widget and this service.
    designer.get_by_role("button", name="Generate script").click()
    expect(designer.get_by_test_id("designer-script")).to_have_value(
        f'<script src="{service.url}/widget/loader.js" '
        f'data-widget-id="{SALES_WIDGET_ID}" async></script>'
    )


def test_the_preview_switches_screens_and_a_bad_colour_is_refused(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    designer = _open_designer(admin)
    preview = designer.frame_locator('[data-testid="designer-preview"]')

    expect(preview.get_by_test_id("crmchat-prechat")).to_be_visible()
    expect(preview.get_by_test_id("crmchat-field-email")).to_be_visible()

    designer.get_by_role("tab", name="Chat", exact=True).click()
    expect(preview.get_by_test_id("crmchat-message").first).to_be_visible()
    expect(preview.get_by_test_id("crmchat-prechat")).to_be_hidden()

    confirm_box = designer.get_by_role("group", name="Confirm box (before a chat ends)")
    confirm_box.get_by_label("Message", exact=True).fill("Really leave?")
    designer.get_by_role("tab", name="Confirm box", exact=True).click()
    expect(preview.get_by_test_id("crmchat-confirm")).to_contain_text("Really leave?")

    end_chat = designer.get_by_role("group", name="End chat")
    end_chat.get_by_label("Title", exact=True).fill("Bye for now")
    designer.get_by_role("tab", name="Ended", exact=True).click()
    expect(preview.get_by_test_id("crmchat-end-title")).to_have_text("Bye for now")

    # A field added in the designer appears in the pre-chat preview.
    designer.get_by_role("button", name="Add field").click()
    designer.get_by_label("Label of field 4").fill("Order number")
    designer.get_by_role("tab", name="Pre-chat", exact=True).click()
    expect(preview.get_by_test_id("crmchat-field-field4")).to_be_visible()
    expect(preview.get_by_text("Order number")).to_be_visible()

    # A colour that is no #hex is marked and never saved.
    agent_bubble = designer.get_by_label("Agent's bubbles", exact=True)
    agent_bubble.fill("blue")
    expect(agent_bubble).to_have_attribute("aria-invalid", "true")
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_have_text("Fix the marked value first.")

    # Fixed, and the topic changed: saved together.
    agent_bubble.fill("#eeeeee")
    designer.get_by_label("Support").check()
    designer.get_by_label("Sales", exact=True).uncheck()
    designer.get_by_role("button", name="Save", exact=True).click()
    expect(designer.locator("#result")).to_contain_text("Saved.")
    client = admin_client(services_of(service.app).standin)
    topics = client.list_related(
        "crmchat_widgets", SALES_WIDGET_ID, "crmchat_widget_topic", select=["crmchat_topicid"]
    )
    assert [row["crmchat_topicid"] for row in topics] == [SUPPORT_TOPIC_ID]
    design = client.retrieve("crmchat_widgets", SALES_WIDGET_ID, select=["crmchat_design"])
    assert '"agent_bubble": "#eeeeee"' in design["crmchat_design"]
    assert '"label": "Order number"' in design["crmchat_design"]

    # The Support topic's record lists the widgets that now answer through it.
    admin.goto(f"{service.url}/app/main#record/crmchat_topic/{SUPPORT_TOPIC_ID}")
    widgets = admin.locator('section.related[data-related="crmchat_widget"]')
    expect(widgets.get_by_role("link", name="Sales chat", exact=True)).to_be_visible()
    expect(widgets.get_by_role("link", name="Support chat", exact=True)).to_be_visible()
    agents = admin.locator('section.related[data-related="crmchat_agent"]')
    expect(agents.get_by_role("link")).to_have_text(["Bea"])
    sales = f"{service.url}/app/main#record/crmchat_topic/{SALES_TOPIC_ID}"
    admin.goto(sales)
    expect(admin.locator('section.related[data-related="crmchat_agent"]')).to_contain_text("Sam")
    expect(
        admin.locator('section.related[data-related="crmchat_widget"]').get_by_role(
            "link", name="Sales chat", exact=True
        )
    ).to_have_count(0)
