// Command bar of the contact and case forms (RibbonDiffXml in customizations.xml, the case
// in the Dynamics 365 layer): "Send a new message" opens the agent console with the
// conversation's "send a new message" panel set to this contact, or to this case's
// contact with the conversation regarding the case. The console lists the channel
// accounts the person wrote to (nobody else can be messaged) and starts it from there.
"use strict";

var CRMChat = window.CRMChat || {};

CRMChat.RecordRibbon = (function () {
  const CONSOLE = "crmchat_/console/index.html";

  return {
    sendNewMessage(formContext) {
      const table = formContext.data.entity.getEntityName();
      const id = String(formContext.data.entity.getId() || "").replace(/[{}]/g, "").toLowerCase();
      // The console reads "message|<table>|<id>" as: open the new-message panel for it.
      return Xrm.Navigation.navigateTo({ pageType: "webresource", webresourceName: CONSOLE, data: "message|" + table + "|" + id });
    },
  };
}());

window.CRMChat = CRMChat;
