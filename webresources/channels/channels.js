// CRM Chat channel setup web resource: per channel account, what to paste into the
// platform's console (the webhook address; Meta's verify token) and a "test connection"
// button that has the service call the platform with the account's token.
// The verify token is read through Xrm.WebApi, so column security decides who sees it.
// Platform and account text only ever goes in textContent.
"use strict";

(function () {
  const CHANNELS = {
    messenger: { label: "Messenger", where: "Meta app dashboard → Messenger → Webhooks (Callback URL, Verify token); subscribe the page to messages, message_deliveries, message_reads." },
    instagram: { label: "Instagram", where: "Meta app dashboard → Instagram → Webhooks (Callback URL, Verify token); subscribe to messages." },
    whatsapp: { label: "WhatsApp", where: "Meta app dashboard → WhatsApp → Configuration → Webhook (Callback URL, Verify token); subscribe to messages." },
    viber: { label: "Viber", where: "Viber has no console field: the address is registered with the bot's set_webhook call (url = the address below)." },
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function field(label, value, testid) {
    const input = el("input", { type: "text", readonly: "", value, "data-testid": testid, "aria-label": label });
    input.value = value;
    return el("label", {}, label, input);
  }

  async function verifyToken(accountId) {
    const api = window.CRMChatSignIn.xrm();
    const row = await api.WebApi.retrieveRecord("crmchat_channelaccount", accountId, "?$select=crmchat_verifytoken");
    return row.crmchat_verifytoken || null;
  }

  function card(account, call) {
    const kind = CHANNELS[account.channel];
    const result = el("p", { class: "result", role: "status", "aria-live": "polite", "data-testid": "test-result" });
    const button = el("button", { type: "button", "data-testid": "test-connection", text: "Test connection" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      result.textContent = "Calling " + kind.label + "…";
      result.className = "result";
      try {
        const answer = await call("POST", "/api/admin/channels/" + encodeURIComponent(account.id) + "/test");
        if (answer.ok) {
          result.textContent = "Connected: " + kind.label + " knows this account as " + (answer.name || account.platform_id) + ".";
          result.className = "result ok";
        } else {
          result.textContent = kind.label + " refused: " + answer.error.message + " (" + answer.error.code + ")";
          result.className = "result bad";
        }
      } catch (error) {
        result.textContent = error.message;
        result.className = "result bad";
      } finally { button.disabled = false; }
    });
    const section = el("section", {
      class: "card", "data-testid": "channel-account", "data-channel": account.channel, "data-account-id": account.id,
    },
    el("h2", { text: kind.label + ": " + account.name + (account.enabled ? "" : " (disabled)") }),
    el("p", { class: "hint", text: kind.where }),
    el("form", {}, field("Webhook address", account.webhook_url, "webhook-url")));
    const form = section.querySelector("form");
    if (account.channel !== "viber") {
      const token = el("p", { class: "hint", "data-testid": "verify-token-note" });
      form.append(token);
      verifyToken(account.id).then((value) => {
        if (value) form.insertBefore(field("Verify token", value, "verify-token"), token);
        token.textContent = value ? "" : "The verify token is hidden: it needs the CRM Chat Secrets field security profile.";
      }, () => { token.textContent = "The verify token could not be read."; });
    }
    form.append(button, result);
    if (account.channel === "whatsapp") form.append(...templateSync(account, call));
    return section;
  }

  // WhatsApp: copy the business account's message templates into CRM (agents pick from
  // them outside the 24-hour window).
  function templateSync(account, call) {
    const result = el("p", { class: "result", role: "status", "aria-live": "polite", "data-testid": "sync-result" });
    const button = el("button", { type: "button", "data-testid": "sync-templates", text: "Sync templates" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      result.textContent = "Reading the templates from WhatsApp…";
      result.className = "result";
      try {
        const answer = await call("POST", "/api/admin/channels/" + encodeURIComponent(account.id) + "/templates/sync");
        if (answer.ok) {
          result.textContent = answer.synced + " template(s) in CRM" + (answer.removed ? ", " + answer.removed + " removed." : ".");
          result.className = "result ok";
        } else {
          result.textContent = "WhatsApp refused: " + answer.error.message + " (" + answer.error.code + ")";
          result.className = "result bad";
        }
      } catch (error) {
        result.textContent = error.message;
        result.className = "result bad";
      } finally { button.disabled = false; }
    });
    return [button, result];
  }

  async function start() {
    const status = document.getElementById("signin");
    try {
      const session = await window.CRMChatSignIn.signIn();
      status.textContent = "Signed in as " + session.user.name + ".";
      const answer = await session.call("GET", "/api/admin/channels");
      document.getElementById("none").hidden = answer.accounts.length > 0;
      document.getElementById("accounts").replaceChildren(...answer.accounts.map((a) => card(a, session.call)));
    } catch (error) {
      status.textContent = error.status === 0 ? error.message : "Could not load the channels: " + error.message;
    }
  }

  start();
}());
