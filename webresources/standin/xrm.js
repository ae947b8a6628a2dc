// The Xrm shim of the local app stand-in: the part of the Dynamics 365 client API that
// CRM Chat's web resources use, backed by the embedded Dataverse at /api/data/v9.2 (same
// origin) with the signed-in user's bearer token. Web resources in the shell's iframes
// reach it as parent.Xrm, exactly as inside a model-driven app.
// Not part of the solution: a real model-driven app brings its own Xrm. Needs
// globalcontext.js first.
"use strict";

window.CrmChatStandin = window.CrmChatStandin || {};

(function (ns) {
  const SESSION_KEY = "crmchat.standin.session";
  const API_ROOT = "/api/data/v9.2/";
  const FORMATTED = "@OData.Community.Display.V1.FormattedValue";

  ns.SESSION_KEY = SESSION_KEY;
  ns.FORMATTED = FORMATTED;

  /** The signed-in session {token, expires_at, user} of this tab, or null. */
  ns.readSession = function () {
    try {
      const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (!session || !session.token || Date.now() >= session.expires_at) return null;
      return session;
    } catch (error) {
      return null;
    }
  };

  ns.saveSession = function (answer) {
    const session = {
      token: answer.token,
      expires_at: Date.now() + answer.expires_in * 1000,
      user: answer.user,
    };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    return session;
  };

  ns.clearSession = function () {
    sessionStorage.removeItem(SESSION_KEY);
  };

  // Dataverse error codes are hex strings ("0x80040220"); Xrm reports them as numbers.
  function xrmError(status, error) {
    const code = error && typeof error.code === "string" && /^0x[0-9a-f]+$/i.test(error.code)
      ? parseInt(error.code, 16) : status;
    const failure = new Error((error && error.message) || "Request failed (" + status + ")");
    failure.errorCode = code;
    failure.code = code;
    failure.httpStatus = status;
    return failure;
  }

  /**
   * Build `Xrm` for `session` over the tables in `entities`
   * ({logicalName: {set, id, name}}). `hooks` lets the shell navigate and ask questions:
   * {navigate(pageInput, newWindow), confirm({text,title,...}) -> Promise<bool>, alert({text}),
   *  signedOut()}.
   */
  ns.createXrm = function (session, entities, hooks) {
    const user = session.user;

    function table(logicalName) {
      const entity = entities[String(logicalName || "").toLowerCase()];
      if (!entity) throw xrmError(404, { message: "There is no table named " + logicalName + "." });
      return entity;
    }

    function guid(id) {
      const clean = String(id || "").replace(/[{}]/g, "").toLowerCase();
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(clean)) {
        throw xrmError(400, { message: "Not a GUID: " + id });
      }
      return clean;
    }

    function query(options) {
      if (!options) return "";
      return options.charAt(0) === "?" ? options : "?" + options;
    }

    async function send(method, path, body, headers) {
      const all = Object.assign({
        Accept: "application/json",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        Authorization: "Bearer " + session.token,
      }, headers || {});
      if (body !== undefined) all["Content-Type"] = "application/json; charset=utf-8";
      const response = await fetch(path.charAt(0) === "/" ? path : API_ROOT + path, {
        method,
        headers: all,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        if (response.status === 401 && hooks.signedOut) hooks.signedOut();
        throw xrmError(response.status, data.error);
      }
      return response;
    }

    function idFromEntityId(response) {
      const header = response.headers.get("OData-EntityId") || "";
      const match = /\(([0-9a-fA-F-]{36})\)\s*$/.exec(header);
      return match ? match[1].toLowerCase() : null;
    }

    const annotations = { Prefer: 'odata.include-annotations="*"' };

    const webApi = {
      async createRecord(entityLogicalName, data) {
        const entity = table(entityLogicalName);
        const response = await send("POST", entity.set, data || {});
        return { entityType: entityLogicalName, id: idFromEntityId(response) };
      },

      async retrieveRecord(entityLogicalName, id, options) {
        const entity = table(entityLogicalName);
        const response = await send(
          "GET", entity.set + "(" + guid(id) + ")" + query(options), undefined, annotations);
        return response.json();
      },

      async retrieveMultipleRecords(entityLogicalName, options, maxPageSize) {
        const entity = table(entityLogicalName);
        let path = entity.set + query(options);
        // A nextLink from an earlier page may come back whole; only this origin is allowed.
        if (/^https?:\/\//i.test(options || "")) {
          const url = new URL(options);
          if (url.origin !== location.origin) throw xrmError(400, { message: "Not this environment." });
          path = url.pathname + url.search;
        }
        const prefer = ['odata.include-annotations="*"'];
        if (maxPageSize) prefer.push("odata.maxpagesize=" + Number(maxPageSize));
        const response = await send("GET", path, undefined, { Prefer: prefer.join(",") });
        const data = await response.json();
        const page = { entities: data.value || [] };
        if (data["@odata.nextLink"]) page.nextLink = data["@odata.nextLink"];
        return page;
      },

      async updateRecord(entityLogicalName, id, data) {
        const entity = table(entityLogicalName);
        const clean = guid(id);
        await send("PATCH", entity.set + "(" + clean + ")", data || {}, { "If-Match": "*" });
        return { entityType: entityLogicalName, id: clean };
      },

      async deleteRecord(entityLogicalName, id) {
        const entity = table(entityLogicalName);
        const clean = guid(id);
        await send("DELETE", entity.set + "(" + clean + ")", undefined, { "If-Match": "*" });
        return { entityType: entityLogicalName, id: clean };
      },
    };
    // Xrm.WebApi.online.execute, for the one request the stand-in's forms send: Associate
    // (operationType 2), as a subgrid's "Add existing" does. It posts the $ref a tenant's
    // Web API takes: <set>(<id>)/<relationship>/$ref {"@odata.id": <related record URL>}.
    webApi.execute = async function (request) {
      const metadata = request && typeof request.getMetadata === "function" ? request.getMetadata() : {};
      if (metadata.operationType !== 2 || metadata.operationName !== "Associate") {
        throw xrmError(501, { message: "This stand-in executes Associate requests only." });
      }
      const target = table(request.target.entityType);
      const path = target.set + "(" + guid(request.target.id) + ")/" + request.relationship + "/$ref";
      for (const related of request.relatedEntities || []) {
        const other = table(related.entityType);
        await send("POST", path, {
          "@odata.id": location.origin + API_ROOT + other.set + "(" + guid(related.id) + ")",
        });
      }
      return { ok: true, status: 204 };
    };
    webApi.online = webApi;

    const globalContext = ns.createGlobalContext(user);

    return {
      WebApi: webApi,
      // Xrm.App.sidePanes, drawn by the shell beside the main area.
      App: { sidePanes: hooks.sidePanes },
      Utility: {
        getGlobalContext: () => globalContext,
        showProgressIndicator() {},
        closeProgressIndicator() {},
      },
      Navigation: {
        navigateTo(pageInput, navigationOptions) {
          hooks.navigate(pageInput || {}, !!(navigationOptions && navigationOptions.target === 2));
          return Promise.resolve();
        },
        openForm(options) {
          hooks.navigate({
            pageType: "entityrecord",
            entityName: options && options.entityName,
            entityId: options && options.entityId,
          }, !!(options && options.openInNewWindow));
          return Promise.resolve({ savedEntityReference: [] });
        },
        openAlertDialog(strings) {
          return hooks.alert(strings || {});
        },
        openConfirmDialog(strings) {
          return hooks.confirm(strings || {}).then((confirmed) => ({ confirmed }));
        },
        openUrl(url) {
          window.open(url, "_blank", "noopener");
        },
        // {fileContent (base64), fileName, fileSize, mimeType}: the browser saves it, as a
        // tenant does with openMode 2 (save).
        openFile(file) {
          const binary = atob(String(file && file.fileContent || ""));
          const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
          const url = URL.createObjectURL(new Blob([bytes], { type: file.mimeType || "application/octet-stream" }));
          const link = document.createElement("a");
          link.href = url;
          link.download = file.fileName || "file";
          document.body.append(link);
          link.click();
          link.remove();
          setTimeout(() => URL.revokeObjectURL(url), 60000);
          return Promise.resolve();
        },
      },
    };
  };
}(window.CrmChatStandin));
