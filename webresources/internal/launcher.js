// CRM Chat internal launcher: "Chat with an agent" for any model-driven app.
// It reads the signed-in CRM user through Xrm, proves who they are to the service with the
// handshake (ARCHITECTURE.md flow 2: a crmchat_handshake row created as the user, exchanged
// at POST /api/internal/identity for an identity token the service signs; the row and the
// service's address come from ../common/signin.js), loads the chat
// widget and passes the user's email and name through the Omnichannel-style SDK
// (setContextProvider) and the identity token through setAuthTokenProvider. The service
// checks that the context's Email is the token's: nobody can pass someone else's email.
// The widget id comes from the web resource's `data` parameter, else this script tag's
// data-default-widget-id. Text from anywhere only reaches the page through textContent.
"use strict";

(function () {
  const xrm = window.CRMChatSignIn.xrm();
  const script = document.currentScript;
  const GUID = /^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$/;
  // Fetch a new identity token this long before the old one runs out.
  const TOKEN_RENEW_MARGIN_SECS = 60;

  const status = document.getElementById("status");

  function say(text, stateName) {
    status.textContent = text;
    status.dataset.state = stateName;
  }

  function widgetId() {
    const data = new URLSearchParams(location.search).get("data") || "";
    const fromData = GUID.exec(data.trim());
    if (fromData) return fromData[1].toLowerCase();
    const fallback = GUID.exec((script && script.getAttribute("data-default-widget-id")) || "");
    return fallback ? fallback[1].toLowerCase() : null;
  }

  async function currentUser() {
    const userId = currentUserId();
    const record = await xrm.WebApi.retrieveRecord(
      "systemuser", userId, "?$select=fullname,internalemailaddress");
    return { id: userId, name: record.fullname || "", email: record.internalemailaddress || "" };
  }

  function currentUserId() {
    const settings = xrm.Utility.getGlobalContext().userSettings;
    return String(settings.userId || "").replace(/[{}]/g, "").toLowerCase();
  }

  // The handshake: the row is created as the user (Dataverse records who), the service
  // reads it back as itself and answers a token naming that user.
  async function fetchIdentity(session) {
    const data = await session.call("POST", "/api/internal/identity", await window.CRMChatSignIn.handshake());
    if (!data.token) throw new Error("no token");
    const lifetime = Number(data.expires_in) || 0;
    return { token: data.token, renewAt: lifetime ? Date.now() + (lifetime - TOKEN_RENEW_MARGIN_SECS) * 1000 : 0 };
  }

  function tokenProvider(session, first) {
    let current = first;
    return function (callback) {
      if (!current.renewAt || Date.now() < current.renewAt) {
        callback(current.token);
        return;
      }
      fetchIdentity(session).then((fresh) => {
        current = fresh;
        callback(fresh.token);
      }, (error) => {
        say("Could not confirm who you are: " + error.message, "error");
        callback(current.token);
      });
    };
  }

  function omnichannelSdk() {
    const m = window.Microsoft;
    return m && m.Omnichannel && m.Omnichannel.LiveChatWidget && m.Omnichannel.LiveChatWidget.SDK;
  }

  function loadWidget(session, id, user, identity) {
    const base = session.base;
    const provideToken = tokenProvider(session, identity);
    const provideContext = () => ({
      Email: { value: user.email, isDisplayable: true },
      Name: { value: user.name, isDisplayable: true },
    });
    let provided = false;
    // As early as the SDK exists (the loader defines it), so the widget's first hello
    // already carries the identity; at lcw:ready at the latest, as Microsoft's docs say.
    function provide() {
      const sdk = omnichannelSdk();
      if (provided || !sdk) return Boolean(sdk);
      sdk.setAuthTokenProvider(provideToken);
      sdk.setContextProvider(provideContext);
      provided = true;
      return true;
    }
    window.addEventListener("lcw:ready", () => {
      if (!provide()) {
        say("The chat did not start. Reload the page to try again.", "error");
        return;
      }
      // The internal widget may start hidden elsewhere; here its button is the point.
      if (window.CRMChat && typeof window.CRMChat.show === "function") window.CRMChat.show();
      say("Signed in as " + user.name + ". Use the chat button to start.", "ready");
    }, { once: true });
    window.addEventListener("lcw:error", (event) => {
      const detail = event.detail || {};
      say("The chat reported a problem: " + (detail.errorDescription || "unknown error"), "error");
    });
    const tag = document.createElement("script");
    tag.src = base + "/widget/loader.js";
    tag.async = true;
    tag.setAttribute("data-widget-id", id);
    tag.setAttribute("data-service-url", base);
    tag.onload = provide;
    tag.onerror = () => say("The chat could not be loaded. Reload the page to try again.", "error");
    document.body.appendChild(tag);
  }

  async function start() {
    if (!xrm || !xrm.Utility) {
      say("Open this page from a model-driven app: it knows who you are through Dataverse.", "error");
      return;
    }
    const id = widgetId();
    if (!id) {
      say("No chat widget is set for this page: pass its id as the web resource's data parameter.", "error");
      return;
    }
    try {
      // Not signed in to the service: the identity endpoint takes the handshake itself.
      const session = await window.CRMChatSignIn.open();
      const user = await currentUser();
      if (!user.email) {
        say("Your CRM user has no email address, so an agent cannot tell who you are.", "error");
        return;
      }
      const identity = await fetchIdentity(session);
      say("Signed in as " + user.name + ". Loading the chat…", "loading");
      loadWidget(session, id, user, identity);
    } catch (error) {
      say("Could not sign you in: " + error.message, "error");
    }
  }

  start();
}());
