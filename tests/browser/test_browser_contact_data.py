"""Issue 12, privacy: a contact's chat data on request from the contact form's command bar
(the solution's RibbonDiffXml, crmchat_/ribbon/contact.js) in the stand-in. Export saves one
file with the contact's chats, transcripts and notes; Delete asks first and deletes; what a
user may do is their own CRM privileges, checked on the server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from connector.crm import tables
from connector.demo import ANN_CONTACT_ID, SAM_USER_ID, admin_client
from connector.services import services_of

TRANSCRIPT = "[10:00:00] Ann: my card was charged twice"


def _crm(service: Any) -> Any:
    return admin_client(services_of(service.app).standin)


def _ann_chat(service: Any, *, owner: str | None = None) -> str:
    """A chat regarding Ann with one note (the visitor's file)."""
    crm = _crm(service)
    chat_id = str(uuid.uuid4())
    name, value = tables.bind_regarding("contact", ANN_CONTACT_ID)
    fields = {"subject": "Chat with Ann", "crmchat_transcript": TRANSCRIPT, name: value}
    if owner is not None:
        fields["ownerid@odata.bind"] = f"/systemusers({owner})"
    crm.create(tables.CHATS, fields, record_id=chat_id)
    crm.create(
        "annotations",
        {
            "subject": "receipt.pdf",
            "notetext": "the visitor's file",
            "objectid_crmchat_chat@odata.bind": f"/{tables.CHATS}({chat_id})",
        },
    )
    return chat_id


def _chats_of_ann(service: Any) -> list[str]:
    rows = _crm(service).list(
        tables.CHATS,
        select=["activityid"],
        filter=f"_regardingobjectid_value eq {ANN_CONTACT_ID}",
    )
    return [str(row["activityid"]) for row in rows]


def _open_ann(page: Any) -> None:
    page.evaluate(
        "(id) => Xrm.Navigation.navigateTo("
        "{pageType: 'entityrecord', entityName: 'contact', entityId: id})",
        ANN_CONTACT_ID,
    )
    expect(page.locator("#view button.command")).to_have_text(
        ["Send a new message", "Export chat data", "Delete chat data"]
    )


def test_an_admin_exports_a_contacts_chat_data_as_a_file_from_the_contact_form(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    tmp_path: Path,
) -> None:
    chat_id = _ann_chat(service)
    page = new_page()
    sign_in(page, "CRM Chat Admin")
    _open_ann(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="Export chat data", exact=True).click()
    download = info.value
    assert download.suggested_filename == f"crmchat-contact-{ANN_CONTACT_ID}.json"
    saved = tmp_path / "export.json"
    download.save_as(saved)
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["contact"]["fullname"] == "Ann Smith"
    (chat,) = [c for c in document["chats"] if c["activityid"] == chat_id]
    assert chat["crmchat_transcript"] == TRANSCRIPT
    assert [n["subject"] for n in chat["notes"]] == ["receipt.pdf"]


def test_delete_asks_first_and_only_a_user_whose_privileges_allow_it_deletes(
    service: Any, new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> None:
    chat_id = _ann_chat(service)
    sams = _ann_chat(service, owner=SAM_USER_ID)  # an agent reads only his own chats

    # Sam is an agent: his CRM role may not delete activities, so the service refuses.
    sam = new_page()
    sign_in(sam, "Sam Sales")
    _open_ann(sam)
    sam.get_by_role("button", name="Delete chat data", exact=True).click()
    dialog = sam.locator("#dialog")
    expect(dialog).to_contain_text("This cannot be undone")
    sam.get_by_test_id("dialog-ok").click()
    expect(dialog).to_contain_text("Your CRM privileges do not allow you")
    sam.get_by_test_id("dialog-ok").click()
    assert {chat_id, sams} <= set(_chats_of_ann(service))

    admin = new_page()
    sign_in(admin, "CRM Chat Admin")
    _open_ann(admin)
    dialog = admin.locator("#dialog")
    # Cancel deletes nothing.
    admin.get_by_role("button", name="Delete chat data", exact=True).click()
    expect(dialog).to_contain_text("This cannot be undone")
    admin.get_by_test_id("dialog-cancel").click()
    expect(dialog).to_be_hidden()
    assert {chat_id, sams} <= set(_chats_of_ann(service))

    admin.get_by_role("button", name="Delete chat data", exact=True).click()
    expect(dialog).to_contain_text("This cannot be undone")
    admin.get_by_test_id("dialog-ok").click()
    expect(dialog).to_contain_text("Deleted 2 chats, 2 notes and 0 platform links.")
    assert _chats_of_ann(service) == []
    assert _crm(service).retrieve("contacts", ANN_CONTACT_ID, select=["fullname"])
