// Command bar of the Widget form (RibbonDiffXml in customizations.xml): Design opens the
// widget designer, Generate Script the designer's script to paste. Both take the form's
// context (CrmParameter PrimaryControl) and show only once the widget is saved, as the
// designer works on a stored widget.
"use strict";

var CRMChat = window.CRMChat || {};

CRMChat.WidgetRibbon = (function () {
  const DESIGNER = "crmchat_/designer/index.html";

  function widgetId(formContext) {
    return String(formContext.data.entity.getId() || "").replace(/[{}]/g, "").toLowerCase();
  }

  function open(formContext, data) {
    return Xrm.Navigation.navigateTo({ pageType: "webresource", webresourceName: DESIGNER, data: data });
  }

  return {
    openDesigner(formContext) {
      return open(formContext, widgetId(formContext));
    },
    // The designer reads "<id>|script" as: open that widget with its script shown.
    generateScript(formContext) {
      return open(formContext, widgetId(formContext) + "|script");
    },
  };
}());

window.CRMChat = CRMChat;
