// CRM Chat web resources' shared sign-in: the handshake (ARCHITECTURE.md flow 2).
// A row created through Xrm.WebApi proves to the service who the user is; the service
// answers a bearer token. Runs inside a model-driven app (Xrm from the host page) or served
// by the CRM Chat service (the local stand-in).
//
//   const session = await CRMChatSignIn.signIn();   // {base, user, call}
//   const widgets = await session.call("GET", "/api/admin/widgets");
//   const proof = await CRMChatSignIn.handshake();   // {handshake_id, nonce}, for other endpoints
//
// `call` throws an Error with `status` (HTTP) and `fields` (the API's per-field problems).
// Needs regions.js (window.CRMCHAT_REGIONS) only when running inside Dataverse.
"use strict";

window.CRMChatSignIn = (function () {
  function xrm() {
    if (window.Xrm && window.Xrm.WebApi) return window.Xrm;
    try {
      const parent = window.parent !== window && window.parent.Xrm;
      if (parent && parent.WebApi) return parent;
    } catch (error) { /* another origin's parent: no Xrm */ }
    return null;
  }

  // Served by the service itself: same origin. Inside Dataverse: the region's service.
  async function serviceUrl(api) {
    if (!/\/WebResources\//.test(location.pathname)) return location.origin;
    const found = await api.WebApi.retrieveMultipleRecords(
      "crmchat_settings", "?$select=crmchat_region&$top=1");
    const regions = window.CRMCHAT_REGIONS || {};
    const code = (found.entities[0] && found.entities[0].crmchat_region) || "centralus";
    return regions[code] || regions.centralus;
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

  /** Sign in; resolves {base, user: {id, name, roles}, call(method, path, body)}. */
  async function signIn() {
    const api = xrm();
    if (!api) {
      const error = new Error("Open this page from the CRM Chat app: it signs you in through Dataverse.");
      error.status = 0;
      throw error;
    }
    const base = await serviceUrl(api);
    let token = null;
    const call = caller(base, () => token);
    const answer = await call("POST", "/api/auth/handshake", await handshake(api));
    token = answer.token;
    return { base, user: answer.user, call };
  }

  /** A fresh handshake row, created as the signed-in user: {handshake_id, nonce}. For
   * endpoints other than /api/auth/handshake (e.g. /api/internal/identity). */
  async function handshake(api) {
    const nonce = randomNonce();
    const row = await (api || xrm()).WebApi.createRecord("crmchat_handshake", { crmchat_name: nonce });
    return { handshake_id: row.id, nonce };
  }

  return { signIn, handshake, serviceUrl: () => serviceUrl(xrm()), xrm };
}());
