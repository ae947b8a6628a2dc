// The global context of the local app stand-in: the object a model-driven app answers to
// Xrm.Utility.getGlobalContext() and, in pages opened from the sitemap, to the
// GetGlobalContext() of ClientGlobalContext.js.aspx ("the same context object", Microsoft
// Learn, "GetGlobalContext function and ClientGlobalContext.js.aspx"). The shell's Xrm
// (xrm.js) and the stand-in's ClientGlobalContext.js.aspx both build it here.
// Not part of the solution: a real organization serves its own.
"use strict";

window.CrmChatStandin = window.CrmChatStandin || {};

(function (ns) {
  function collection(items) {
    const list = items.slice();
    list.getLength = () => list.length;
    list.get = (which) => {
      if (which === undefined) return list.slice();
      if (typeof which === "number") return list[which];
      if (typeof which === "function") return list.filter(which);
      return list.find((item) => item.id === which || item.name === which) || null;
    };
    return list;
  }

  /** The global context for `user` ({id, name, roles: [{id, name}]}) in the organization
   * `organizationId` (a GUID, when known). */
  ns.createGlobalContext = function (user, organizationId) {
    const roles = collection((user.roles || []).map((role) => ({ id: role.id, name: role.name })));
    return {
      userSettings: {
        userId: "{" + user.id.toUpperCase() + "}",
        userName: user.name,
        roles,
        securityRoles: roles.map((role) => role.id),
        languageId: 1033,
        getTimeZoneOffsetMinutes: () => -new Date().getTimezoneOffset(),
      },
      organizationSettings: {
        uniqueName: "crmchat",
        languageId: 1033,
        organizationId: organizationId ? "{" + organizationId.toUpperCase() + "}" : null,
      },
      client: { getClient: () => "Web", getFormFactor: () => 1 },
      // The organization's address: the Web API is at getClientUrl() + "/api/data/v9.2/".
      getClientUrl: () => location.origin,
      getCurrentAppUrl: () => location.origin + "/app/main",
      getVersion: () => "9.2.0.0",
    };
  };
}(window.CrmChatStandin));
