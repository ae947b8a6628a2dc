// CRM Chat loader: the one script a site pastes into its pages (see README.md).
// It reads its own tag, asks the service for the widget's published config and, when the
// widget is enabled, loads widget.js from the same service. It stays tiny on purpose: a
// site owner pays for every byte on every page view. Its globals are window.CRMChat and
// the Dynamics 365 Omnichannel API, window.Microsoft.Omnichannel.LiveChatWidget.SDK.
"use strict";
(function (w, d) {
  var tag = d.currentScript ||
    d.getElementById("Microsoft_Omnichannel_LCWidget") ||
    d.querySelector("script[data-widget-id],script[data-app-id]");
  var old = w.CRMChat;
  // One widget a page; a page that removed it (ns.gone) and adds the tag again re-inits it.
  if (!tag || (old && old.widgetId && !(old.gone && old.gone()))) return;
  if (old && old.destroy) { old.destroy(); w.CRMChat = null; }
  function attr(name) { return tag.getAttribute("data-" + name) || ""; }
  var widgetId = attr("widget-id") || attr("app-id");
  // The service base: an explicit data-service-url / data-org-url (the Omnichannel tag's
  // attribute), else the origin this script was served from.
  var base = (attr("service-url") || attr("org-url") ||
    (tag.src ? new URL(tag.src, location.href).origin : location.origin)).replace(/\/+$/, "");
  if (!/^[0-9a-zA-Z-]{1,64}$/.test(widgetId)) return;

  // Calls made before widget.js arrives are queued and replayed by it.
  var ns = w.CRMChat = w.CRMChat || {};
  var queue = ns.q = ns.q || [];
  ["open", "close", "toggle", "hide", "show"].forEach(function (m) {
    if (!ns[m]) ns[m] = function () { queue.push([m, [].slice.call(arguments)]); };
  });
  ns.widgetId = widgetId;
  ns.base = base;
  ns.tag = tag;
  // A strict CSP's nonce (the tag's own, which the browser hides from getAttribute, or
  // data-nonce) for the scripts and the style sheet the widget adds.
  ns.nonce = tag.nonce || attr("nonce");

  // The Omnichannel API. The providers live here, so a page may set them at any time;
  // widget.js replaces the other methods (queued until then) and fires lcw:ready.
  var m = w.Microsoft = w.Microsoft || {};
  m = m.Omnichannel = m.Omnichannel || {};
  m = m.LiveChatWidget = m.LiveChatWidget || {};
  var sdk = m.SDK = {};
  var providers = ns.providers = {};
  ["Context", "AuthToken"].forEach(function (k) {
    sdk["set" + k + "Provider"] = function (fn) {
      if (typeof fn !== "function") throw new TypeError(k + " provider must be a function");
      providers[k] = fn;
      if (ns.onProvider) ns.onProvider(k);
    };
    sdk["get" + k + "Provider"] = function () { return providers[k] || null; };
    sdk["remove" + k + "Provider"] = function () {
      delete providers[k];
      if (ns.onProvider) ns.onProvider(k);
    };
  });
  ["startChat", "closeChat", "startProactiveChat", "getAgentAvailability"].forEach(function (k) {
    sdk[k] = function () {
      var args = [].slice.call(arguments);
      return new Promise(function (done) { queue.push(["sdk:" + k, args, done]); });
    };
  });
  // No widget after all: queued promises settle (availability: none), nothing else runs.
  function fail(code, why) {
    var none = { isAgentAvailable: false, positionInQueue: null };
    sdk.getAgentAvailability = function () { return Promise.resolve(none); };
    queue.splice(0).forEach(function (c) {
      if (c[2]) c[2](c[0] === "sdk:getAgentAvailability" ? none : undefined);
    });
    if (code) w.dispatchEvent(new CustomEvent("lcw:error", { detail: { errorCode: code, errorDescription: why } }));
  }

  fetch(base + "/api/widgets/" + encodeURIComponent(widgetId) + "/config", {
    credentials: "omit",
  }).then(function (r) {
    if (!r.ok) throw new Error("CRM Chat: config " + r.status);
    return r.json();
  }).then(function (config) {
    // A disabled widget shows nothing and opens no socket. An enabled one loads the widget
    // even while no agent is available: its socket is the visitor's presence, and the
    // launcher appears when an agent becomes available.
    if (!config || !config.enabled) return fail();
    ns.config = config;
    var s = d.createElement("script");
    // A versioned URL the browser keeps for a year; a path on this service, nothing else.
    var path = /^\/widget\/v\/[0-9a-f]+\/[a-z][\w-]*\.js$/.test(config.script_url || "") ?
      config.script_url : "/widget/widget.js";
    s.src = base + path;
    s.async = true;
    if (ns.nonce) s.nonce = ns.nonce;
    s.onerror = function () { fail(7, "The widget's script failed to load."); };
    (d.head || d.documentElement).appendChild(s);
  }).catch(function (e) {
    if (w.console) console.warn(e.message || e);
    fail(7, String(e.message || e));
  });
})(window, document);
