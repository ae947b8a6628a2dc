// Command bar of the Contact form (RibbonDiffXml in customizations.xml): a contact's chat
// data on request. Export chat data saves one JSON file (chats, transcripts, notes with
// their attachments, platform links, presence records); Delete chat data asks first, then
// deletes the chats, their notes and the platform links (the contact record stays).
// Both sign in to the CRM Chat service as the user (crmchat_/common/signin.js, loaded by
// the command first) and the service acts in Dataverse as that user, so their own CRM
// privileges decide (docs/security.md); the record id only names what is asked for.
"use strict";

var CRMChat = window.CRMChat || {};

CRMChat.ContactRibbon = (function () {
  function contactId(formContext) {
    return String(formContext.data.entity.getId() || "").replace(/[{}]/g, "").toLowerCase();
  }

  function path(formContext, action) {
    return "/api/privacy/contacts/" + encodeURIComponent(contactId(formContext)) + "/" + action;
  }

  // Xrm.Navigation.openFile takes the content as base64; the JSON is UTF-8.
  function base64(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return { content: btoa(binary), size: bytes.length };
  }

  function tell(title, text) {
    return Xrm.Navigation.openAlertDialog({ title, text });
  }

  function failed(title, error) {
    // 403: the user's CRM privileges do not allow it (the service says which).
    return tell(title, error.message || "The CRM Chat service did not answer.");
  }

  return {
    async exportChatData(formContext) {
      const title = "Export chat data";
      try {
        const session = await CRMChatSignIn.signIn();
        const data = await session.call("GET", path(formContext, "export"));
        const file = base64(JSON.stringify(data, null, 2));
        await Xrm.Navigation.openFile({
          fileContent: file.content,
          fileName: "crmchat-contact-" + contactId(formContext) + ".json",
          fileSize: file.size,
          mimeType: "application/json",
        }, { openMode: 2 }); // 2: save
      } catch (error) {
        await failed(title, error);
      }
    },

    async deleteChatData(formContext) {
      const title = "Delete chat data";
      const answer = await Xrm.Navigation.openConfirmDialog({
        title,
        text: "Delete every chat of this contact with its transcript, notes and attachments, "
          + "and the contact's messaging platform links? This cannot be undone. "
          + "The contact record stays.",
        confirmButtonLabel: "Delete",
        cancelButtonLabel: "Cancel",
      });
      if (!answer.confirmed) return;
      try {
        const session = await CRMChatSignIn.signIn();
        const done = await session.call("POST", path(formContext, "delete"), { delete_contact: false });
        // Dataverse shows each user only the chats their role may read: none found is
        // not the same as none there.
        await tell(title, done.chats || done.notes || done.links
          ? "Deleted " + done.chats + " chats, " + done.notes + " notes and " + done.links + " platform links."
          : "Nothing was deleted: this contact has no chats your CRM privileges let you see.");
      } catch (error) {
        await failed(title, error);
      }
    },
  };
}());

window.CRMChat = CRMChat;
