"""The local app stand-in in a real browser: sign in, navigate, web resources through Xrm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from connector.demo import admin_client
from connector.services import services_of


def test_admin_signs_in_browses_tables_and_picks_a_region_for_the_service_address(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "CRM Chat Admin")

    nav = page.get_by_role("navigation", name="App navigation")
    for title in ("Chats", "Snippets", "Agents", "Topics", "Widgets", "Settings"):
        expect(nav.get_by_role("link", name=title, exact=True)).to_be_visible()

    nav.get_by_role("link", name="Agents", exact=True).click()
    rows = page.locator("table.records tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Sam")).to_contain_text("Sam Sales")  # the User lookup
    expect(rows.filter(has_text="Bea")).to_contain_text("Available")

    nav.get_by_role("link", name="Topics", exact=True).click()
    expect(page.locator("table.records tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Support", exact=True).click()
    expect(page.get_by_label("Colour")).to_have_value("#107c10")

    nav.get_by_role("link", name="Settings", exact=True).click()
    settings = page.frame_locator('iframe[data-subarea="sub_settings"]')
    expect(settings.locator("#signin")).to_have_text("Signed in as CRM Chat Admin.")
    # The import gave the address this service's; the four regions are presets.
    expect(settings.locator("#address-url")).to_have_value(service.url)
    expect(settings.locator("#address-preset")).to_have_value("other")
    settings.get_by_label("Region").select_option(label="West Europe")
    expect(settings.locator("#address-url")).to_have_value(
        "https://westeurope.service.crmchat.cloud"
    )
    settings.get_by_role("button", name="Save address").click()
    expect(settings.locator("#address-form .result")).to_contain_text("Address saved.")

    values = list(
        admin_client(services_of(service.app).standin).list(
            "environmentvariablevalues", select=["schemaname", "value"]
        )
    )
    assert [(row["schemaname"], row["value"]) for row in values] == [
        ("crmchat_ServiceUrl", "https://westeurope.service.crmchat.cloud")
    ]


def test_an_agent_sees_only_what_their_role_allows_and_xrm_knows_who_they_are(
    new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    page = new_page()
    sign_in(page, "Sam Sales")

    nav = page.get_by_role("navigation", name="App navigation")
    expect(nav.get_by_role("link", name="Snippets", exact=True)).to_be_visible()
    # Settings asks for Write on crmchat_settings, which the CRM Chat Agent role lacks.
    expect(nav.get_by_role("link", name="Settings", exact=True)).to_have_count(0)

    context = page.evaluate("""() => {
        const us = Xrm.Utility.getGlobalContext().userSettings;
        return {userId: us.userId, userName: us.userName, roles: us.roles.map(r => r.name)};
    }""")
    assert context == {
        "userId": "{0C5A1E50-7D1C-4E0A-9B51-5A1E50000101}",
        "userName": "Sam Sales",
        "roles": ["CRM Chat Agent"],
    }

    created = page.evaluate("""async () => {
        const made = await Xrm.WebApi.createRecord("contact", {firstname: "Dee", lastname: "Lee"});
        const back = await Xrm.WebApi.retrieveRecord("contact", made.id, "?$select=fullname");
        await Xrm.WebApi.updateRecord("contact", made.id, {lastname: "Leigh"});
        const found = await Xrm.WebApi.retrieveMultipleRecords(
            "contact", "?$select=fullname&$filter=firstname eq 'Dee'", 5);
        const first = await Xrm.WebApi.retrieveMultipleRecords(
            "contact", "?$select=lastname&$orderby=lastname", 2);
        const rest = await Xrm.WebApi.retrieveMultipleRecords("contact", first.nextLink, 2);
        const paged = first.entities.concat(rest.entities).map(e => e.lastname);
        let refused = null;
        try { await Xrm.WebApi.deleteRecord("contact", made.id); }
        catch (e) { refused = e.httpStatus; }
        return {entityType: made.entityType, fullname: back.fullname,
                renamed: found.entities.map(e => e.fullname), paged, refused};
    }""")
    assert created == {
        "entityType": "contact",
        "fullname": "Dee Lee",
        "renamed": ["Dee Leigh"],
        "paged": ["Jones", "Leigh", "Martin", "Smith"],
        "refused": 403,  # the CRM Chat Agent role may not delete contacts
    }


def test_signing_out_returns_to_the_user_list(
    new_page: Callable[[], Any], sign_in: Callable[[Any, str], None], service: Any
) -> None:
    page = new_page()
    sign_in(page, "Bea Support")
    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(f"{service.url}/app/")
    expect(page.locator("button.user")).to_have_count(3)
    page.goto(f"{service.url}/app/main")
    page.wait_for_url(f"{service.url}/app/")  # no session in this tab any more
