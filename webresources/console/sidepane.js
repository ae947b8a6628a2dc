// Opens the agent console in a persistent app side pane (Xrm.App.sidePanes), so the
// console keeps its chats while the agent opens contacts, cases and lists in the main
// area. Call CRMChat.openConsolePane() from a command (e.g. an application ribbon button)
// or any script with Xrm; calling it again selects the pane already open. The full-page
// console (the sitemap's Agent console) stays available.
"use strict";

(function (ns) {
  const PANE_ID = "crmchat_console";
  const PANE_WIDTH_PX = 420;

  ns.CONSOLE_PANE_ID = PANE_ID;

  ns.openConsolePane = async function (xrm) {
    const panes = (xrm || window.Xrm).App.sidePanes;
    const existing = panes.getPane(PANE_ID);
    if (existing) {
      existing.select();
      return existing;
    }
    const pane = await panes.createPane({
      title: "CRM Chat",
      paneId: PANE_ID,
      canClose: true,
      width: PANE_WIDTH_PX,
      imageSrc: "WebResources/crmchat_/icons/crmchat.svg",
      // The console holds the agent's WebSocket: never unload it while the pane is hidden.
      alwaysRender: true,
    });
    await pane.navigate({ pageType: "webresource", webresourceName: "crmchat_/console/index.html" });
    return pane;
  };
}(window.CRMChat = window.CRMChat || {}));
