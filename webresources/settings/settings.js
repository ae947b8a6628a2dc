// CRM Chat settings web resource: chat on/off, hosting region, secret word, and the support check.
// Runs inside a model-driven app (Xrm from the host) or served by the CRM Chat service.
// It signs in by the handshake (ARCHITECTURE.md flow 2): a row created through Xrm.WebApi
// proves to the service who the user is. User-supplied text only ever goes in textContent.
"use strict";

(function () {
  const xrm = window.Xrm || (window.parent && window.parent !== window && window.parent.Xrm);
  let token = null;

  function serviceUrl() {
    // Served by the service itself: same origin. Inside Dataverse: the region's service.
    if (!/\/WebResources\//.test(location.pathname)) return location.origin;
    return null;
  }

  async function regionServiceUrl() {
    const found = await xrm.WebApi.retrieveMultipleRecords(
      "crmchat_settings", "?$select=crmchat_region&$top=1");
    const code = (found.entities[0] && found.entities[0].crmchat_region) || "centralus";
    return window.CRMCHAT_REGIONS[code] || window.CRMCHAT_REGIONS.centralus;
  }

  function randomNonce() {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    return btoa(String.fromCharCode.apply(null, bytes))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function call(base, method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(base + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  async function signIn(base) {
    const nonce = randomNonce();
    const row = await xrm.WebApi.createRecord("crmchat_handshake", { crmchat_name: nonce });
    const answer = await call(base, "POST", "/api/auth/handshake", { handshake_id: row.id, nonce });
    token = answer.token;
    return answer.user;
  }

  function show(el, text, tone) {
    el.textContent = text;
    el.className = el.className.replace(/\b(ok|bad)\b/g, "").trim() + (tone ? " " + tone : "");
  }

  function busy(form, on) {
    form.querySelector("button").disabled = on;
  }

  function renderSettings(settings) {
    const select = document.getElementById("region");
    select.replaceChildren(...settings.regions.map((r) => {
      const option = document.createElement("option");
      option.value = r.code;
      option.textContent = r.name;
      option.selected = r.code === settings.region;
      return option;
    }));
    document.getElementById("chat-enabled").checked = settings.chat_enabled !== false;
    document.getElementById("word-state").textContent = settings.has_secret_word
      ? "A secret word is set." : "No secret word is set yet.";
  }

  function wire(base) {
    const regionForm = document.getElementById("region-form");
    regionForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = regionForm.querySelector(".result");
      busy(regionForm, true);
      try {
        renderSettings(await call(base, "PUT", "/api/admin/settings/region",
          { region: regionForm.region.value }));
        show(result, "Region saved.", "ok");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(regionForm, false); }
    });

    const chatForm = document.getElementById("chat-form");
    chatForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = chatForm.querySelector(".result");
      busy(chatForm, true);
      try {
        const enabled = chatForm.enabled.checked;
        renderSettings(await call(base, "PUT", "/api/admin/settings/chat", { enabled }));
        show(result, enabled ? "Chat is on." : "Chat is off everywhere.", "ok");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(chatForm, false); }
    });

    const wordForm = document.getElementById("word-form");
    wordForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = wordForm.querySelector(".result");
      if (wordForm.word.value !== wordForm.word2.value) {
        show(result, "The two words differ.", "bad");
        return;
      }
      busy(wordForm, true);
      try {
        renderSettings(await call(base, "PUT", "/api/admin/secret-word", { word: wordForm.word.value }));
        wordForm.reset();
        show(result, "Secret word set.", "ok");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(wordForm, false); }
    });

    const checkForm = document.getElementById("check-form");
    checkForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = checkForm.querySelector(".result");
      show(result, "Checking…");
      busy(checkForm, true);
      try {
        const answer = await call(base, "POST", "/api/support/secret-word/check",
          { word: checkForm.guess.value });
        show(result, answer.match ? "Yes, it matches." : "No, it does not match.",
          answer.match ? "ok" : "bad");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(checkForm, false); }
    });
  }

  async function start() {
    const status = document.getElementById("signin");
    if (!xrm || !xrm.WebApi) {
      status.textContent = "Open this page from the CRM Chat app: it signs you in through Dataverse.";
      return;
    }
    try {
      const base = serviceUrl() || await regionServiceUrl();
      const user = await signIn(base);
      status.textContent = "Signed in as " + user.name + ".";
      wire(base);
      document.getElementById("check-card").hidden = false;
      try {
        renderSettings(await call(base, "GET", "/api/admin/settings"));
        document.getElementById("chat-card").hidden = false;
        document.getElementById("region-card").hidden = false;
        document.getElementById("word-card").hidden = false;
      } catch (error) {
        if (error.status !== 403) throw error;
      }
    } catch (error) {
      status.textContent = "Could not sign in: " + error.message;
    }
  }

  start();
}());
