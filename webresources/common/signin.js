// CRM Chat web resources' shared sign-in: the handshake (ARCHITECTURE.md flow 2).
// A row created through Xrm.WebApi proves to the service who the user is; the service
// answers a bearer token. Runs inside a model-driven app (Xrm from the host page) or served
// by the CRM Chat service (the local stand-in).
//
//   const session = await CRMChatSignIn.signIn();   // open() and session.signIn() in one
//   const widgets = await session.call("GET", "/api/admin/widgets");
//
//   const session = await CRMChatSignIn.open();     // the service found, not signed in yet
//   if (await session.reachable()) await session.signIn();
//   if (!session.fresh(600)) await session.signIn();  // renew before the token runs out
//
//   const proof = await CRMChatSignIn.handshake();   // {handshake_id, nonce}, for other endpoints
//   const found = await CRMChatSignIn.readServiceAddress();  // {definition, value, address}
//
// A session is {base, user, call(method, path, body), signIn(), token(), fresh(marginSecs),
// reachable()}. `call` sends the session's token once it has one and throws an Error with
// `status` (HTTP) and `fields` (the API's per-field problems). open() and signIn() throw an
// Error with status 0 when there is no Xrm (the page was not opened from a model-driven app).
// A page opened from the sitemap loads ../../ClientGlobalContext.js.aspx before this file;
// xrm() then works through GetGlobalContext() and the same-origin Web API.
"use strict";

window.CRMChatSignIn = (function () {
  let pageXrm; // built once from GetGlobalContext(), see sameOriginXrm

  /** The host's Xrm (own window or parent), else one built from ClientGlobalContext.js.aspx
   * for a page opened from the sitemap or on its own; null outside a model-driven app. */
  function xrm() {
    if (window.Xrm && window.Xrm.WebApi) return window.Xrm;
    try {
      const parent = window.parent !== window && window.parent.Xrm;
      if (parent && parent.WebApi) return parent;
    } catch (error) { /* another origin's parent: no Xrm */ }
    if (pageXrm === undefined) pageXrm = sameOriginXrm();
    return pageXrm;
  }

  // A page opened from the sitemap has no supported parent.Xrm. Microsoft's way there is
  // the GetGlobalContext() of ClientGlobalContext.js.aspx (loaded by the page) and the Web
  // API at getClientUrl(), same-origin, signed in by the browser's own session (Microsoft
  // Learn, "GetGlobalContext function and ClientGlobalContext.js.aspx"; docs/solution.md).
  // This is the part of Xrm.WebApi the pages use, over fetch; entity sets come from
  // EntityDefinitions as a tenant names them.
  function sameOriginXrm() {
    if (typeof window.GetGlobalContext !== "function") return null;
    const context = window.GetGlobalContext();
    const root = String(context.getClientUrl()).replace(/\/+$/, "") + "/api/data/v9.2/";
    const sets = new Map();
    const annotations = { Prefer: 'odata.include-annotations="*"' };

    async function send(method, path, body, extra) {
      const headers = Object.assign(
        { Accept: "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0" }, extra);
      if (body !== undefined) headers["Content-Type"] = "application/json; charset=utf-8";
      const response = await fetch(root + path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        const error = new Error((data.error && data.error.message) || "Request failed (" + response.status + ")");
        error.httpStatus = response.status;
        throw error;
      }
      return response;
    }

    function entitySet(logicalName) {
      const name = String(logicalName || "").toLowerCase();
      if (!/^[a-z][a-z0-9_]*$/.test(name)) return Promise.reject(new Error("Not a table name: " + logicalName));
      if (!sets.has(name)) {
        const found = send("GET", "EntityDefinitions(LogicalName='" + name + "')?$select=EntitySetName")
          .then((response) => response.json()).then((definition) => definition.EntitySetName);
        found.catch(() => sets.delete(name)); // a failure is not remembered
        sets.set(name, found);
      }
      return sets.get(name);
    }

    function key(id) {
      const clean = String(id || "").replace(/[{}]/g, "").toLowerCase();
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(clean)) {
        throw new Error("Not a record id: " + id);
      }
      return clean;
    }

    const query = (options) => (!options ? "" : options.charAt(0) === "?" ? options : "?" + options);

    const WebApi = {
      async createRecord(entityName, data) {
        const response = await send("POST", await entitySet(entityName), data || {});
        const match = /\(([0-9a-fA-F-]{36})\)\s*$/.exec(response.headers.get("OData-EntityId") || "");
        return { entityType: entityName, id: match ? match[1].toLowerCase() : null };
      },
      async retrieveRecord(entityName, id, options) {
        const path = (await entitySet(entityName)) + "(" + key(id) + ")" + query(options);
        return (await send("GET", path, undefined, annotations)).json();
      },
      async retrieveMultipleRecords(entityName, options) {
        const data = await (await send("GET", (await entitySet(entityName)) + query(options),
          undefined, annotations)).json();
        const page = { entities: data.value || [] };
        if (data["@odata.nextLink"]) page.nextLink = data["@odata.nextLink"];
        return page;
      },
      async updateRecord(entityName, id, data) {
        const path = (await entitySet(entityName)) + "(" + key(id) + ")";
        await send("PATCH", path, data || {}, { "If-Match": "*" });
        return { entityType: entityName, id: key(id) };
      },
      async deleteRecord(entityName, id) {
        await send("DELETE", (await entitySet(entityName)) + "(" + key(id) + ")", undefined, { "If-Match": "*" });
        return { entityType: entityName, id: key(id) };
      },
    };
    return { WebApi, Utility: { getGlobalContext: () => context } };
  }

  // The service address is the solution's environment variable crmchat_ServiceUrl, read
  // through the Web API as the platform defines it: the value record when there is one,
  // else the definition's default (docs/solution-environment.md).
  const SERVICE_URL_VARIABLE = "crmchat_ServiceUrl";

  /** The service address and the rows it comes from: {definition, value (row or null),
   * address}. Throws when the solution's definition is missing. */
  async function readServiceAddress(api) {
    // One request: the definition with its value rows (at most one per definition).
    const found = await api.WebApi.retrieveMultipleRecords("environmentvariabledefinition",
      "?$select=environmentvariabledefinitionid,defaultvalue&$filter=schemaname eq '"
      + SERVICE_URL_VARIABLE + "'&$expand=environmentvariabledefinition_environmentvariablevalue"
      + "($select=environmentvariablevalueid,value)");
    const definition = found.entities[0];
    if (!definition) throw new Error("The CRM Chat solution's service address (" + SERVICE_URL_VARIABLE + ") is missing: import the solution again.");
    const value = (definition.environmentvariabledefinition_environmentvariablevalue || [])[0] || null;
    const address = String((value && value.value) || definition.defaultvalue || "");
    return { definition, value, address: address.replace(/\/+$/, "") };
  }

  async function serviceUrl(api) {
    return (await readServiceAddress(api)).address;
  }

  function randomNonce() {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    return btoa(String.fromCharCode.apply(null, bytes))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function caller(base, getToken) {
    return async function call(method, path, body) {
      const headers = { "Content-Type": "application/json" };
      const token = getToken();
      if (token) headers.Authorization = "Bearer " + token;
      const response = await fetch(base + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        const error = new Error((data.error && data.error.message) || response.statusText);
        error.status = response.status;
        error.fields = (data.error && data.error.fields) || [];
        throw error;
      }
      return data;
    };
  }

  function requireXrm() {
    const api = xrm();
    if (!api) {
      const error = new Error("Open this page from the CRM Chat app: it signs you in through Dataverse.");
      error.status = 0;
      throw error;
    }
    return api;
  }

  function session(base, api) {
    let token = null;
    let expiresAt = 0;
    const call = caller(base, () => token);
    const self = {
      base,
      user: null,
      call,
      token: () => token,
      /** Whether the token has more than `marginSecs` left. */
      fresh: (marginSecs) => Boolean(token) && Date.now() < expiresAt - (marginSecs || 0) * 1000,
      /** A new token by a fresh handshake; on failure the old token stays. */
      async signIn() {
        const proof = await handshake(api);
        const saved = token;
        token = null;
        try {
          const answer = await call("POST", "/api/auth/handshake", proof);
          token = answer.token;
          expiresAt = Date.now() + (answer.expires_in || 0) * 1000;
          self.user = answer.user;
          return answer.user;
        } catch (error) {
          token = saved;
          throw error;
        }
      },
      /** Whether the service answers at all. Checked before a sign-in so that an outage
       * does not leave a trail of unredeemed handshake rows in Dataverse. */
      async reachable() {
        try {
          await fetch(base + "/healthz", { mode: "no-cors", cache: "no-store" });
          return true;
        } catch (error) {
          return false;
        }
      },
    };
    return self;
  }

  /** The service found, not signed in: a session without a token. */
  async function open() {
    const api = requireXrm();
    return session(await serviceUrl(api), api);
  }

  /** Sign in; resolves a session with {base, user: {id, name, roles}, call(method, path, body)}. */
  async function signIn() {
    const signedIn = await open();
    await signedIn.signIn();
    return signedIn;
  }

  /** A fresh handshake row, created as the signed-in user: {handshake_id, nonce}. For
   * endpoints other than /api/auth/handshake (e.g. /api/internal/identity). */
  async function handshake(api) {
    const nonce = randomNonce();
    const row = await (api || xrm()).WebApi.createRecord("crmchat_handshake", { crmchat_name: nonce });
    return { handshake_id: row.id, nonce };
  }

  return {
    signIn, open, handshake, xrm, SERVICE_URL_VARIABLE,
    serviceUrl: () => serviceUrl(xrm()),
    readServiceAddress: (api) => readServiceAddress(api || xrm()),
  };
}());
