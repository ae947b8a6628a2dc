// CRM Chat settings web resource: subscription, chat on/off, masking rules, service address,
// secret word, and the support check.
// Runs inside a model-driven app (Xrm from the host) or served by the CRM Chat service.
// It signs in by the handshake (ARCHITECTURE.md flow 2) through ../common/signin.js.
// User-supplied text only ever goes in textContent.
"use strict";

(function () {
  function show(el, text, tone) {
    el.textContent = text;
    el.className = el.className.replace(/\b(ok|bad)\b/g, "").trim() + (tone ? " " + tone : "");
  }

  function busy(form, on) {
    form.querySelector("button").disabled = on;
  }

  function renderSettings(settings) {
    document.getElementById("chat-enabled").checked = settings.chat_enabled !== false;
    const parked = settings.parked_writes || 0;
    const parkedNote = document.getElementById("parked-writes");
    parkedNote.hidden = parked === 0;
    parkedNote.textContent = parked === 1
      ? "1 chat could not be written to the CRM. Run 'crmchat outbox list' on the service to see it, then 'crmchat outbox retry KEY' (add --without-regarding to write it without a deleted record)."
      : parked + " chats could not be written to the CRM. Run 'crmchat outbox list' on the service to see them, then 'crmchat outbox retry KEY' (add --without-regarding to write one without a deleted record).";
    document.getElementById("word-state").textContent = settings.has_secret_word
      ? "A secret word is set." : "No secret word is set yet.";
    const subscribed = settings.subscribed !== false;
    document.getElementById("subscription-state").textContent = subscribed
      ? "Subscribed: chat runs wherever it is on."
      : "Unsubscribed: chat is stopped everywhere. Every record is kept.";
    document.getElementById("masking-rules").value = (settings.masking_rules || []).join("\n");
    const subscriptionForm = document.getElementById("subscription-form");
    subscriptionForm.dataset.subscribed = String(subscribed);
    subscriptionForm.querySelector("button").textContent = subscribed ? "Unsubscribe" : "Subscribe again";
  }

  function wire(call) {
    const subscriptionForm = document.getElementById("subscription-form");
    subscriptionForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = subscriptionForm.querySelector(".result");
      const subscribe = subscriptionForm.dataset.subscribed !== "true";
      if (!subscribe && !window.confirm("Stop chat everywhere for the whole organisation?")) return;
      busy(subscriptionForm, true);
      try {
        renderSettings(await call("PUT", "/api/admin/settings/subscription", { subscribed: subscribe }));
        show(result, subscribe ? "Subscribed again." : "Unsubscribed. Chat is stopped everywhere.", "ok");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(subscriptionForm, false); }
    });

    const chatForm = document.getElementById("chat-form");
    chatForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = chatForm.querySelector(".result");
      busy(chatForm, true);
      try {
        const enabled = chatForm.enabled.checked;
        renderSettings(await call("PUT", "/api/admin/settings/chat", { enabled }));
        show(result, enabled ? "Chat is on." : "Chat is off everywhere.", "ok");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(chatForm, false); }
    });

    const maskingForm = document.getElementById("masking-form");
    maskingForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = maskingForm.querySelector(".result");
      // One rule a line; blank lines are no rule (the service refuses an empty pattern).
      const rules = maskingForm.rules.value.split("\n").map((line) => line.trim()).filter(Boolean);
      busy(maskingForm, true);
      try {
        renderSettings(await call("PUT", "/api/admin/settings/masking", { rules }));
        show(result, rules.length ? "Masking rules saved." : "No masking rules.", "ok");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(maskingForm, false); }
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
        renderSettings(await call("PUT", "/api/admin/secret-word", { word: wordForm.word.value }));
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
        const answer = await call("POST", "/api/support/secret-word/check",
          { word: checkForm.guess.value });
        show(result, answer.match ? "Yes, it matches." : "No, it does not match.",
          answer.match ? "ok" : "bad");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(checkForm, false); }
    });
  }

  // ----- the service address: the environment variable crmchat_ServiceUrl ---------------
  // Written straight to Dataverse (not through the service): the address must be right
  // before the service can be reached at all. A value record overrides the default.
  const OTHER = "other";
  const readAddress = (api) => window.CRMChatSignIn.readServiceAddress(api);

  // Plain http only for a service on this machine: Dynamics 365 pages are https, and
  // browsers block their calls to an http address (mixed content).
  const LOOPBACK = ["localhost", "127.0.0.1", "[::1]"];

  /** {address} for a usable service address as typed, else {problem}. */
  function cleanAddress(text) {
    let url;
    try { url = new URL(String(text).trim()); } catch (error) { url = null; }
    if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password
        || url.pathname !== "/" || url.search || url.hash) {
      return { problem: "Give an address like https://chat.example.com (no path)." };
    }
    if (url.protocol === "http:" && !LOOPBACK.includes(url.hostname)) {
      return { problem: "Use https://: browsers block calls from Dynamics 365 to a plain http address." };
    }
    return { address: url.origin };
  }

  function renderAddress(address) {
    const presets = window.CRMCHAT_REGIONS || [];
    const select = document.getElementById("address-preset");
    const options = presets.map((r) => {
      const option = document.createElement("option");
      option.value = r.service_url;
      option.textContent = r.name;
      return option;
    });
    const other = document.createElement("option");
    other.value = OTHER;
    other.textContent = "Other address";
    select.replaceChildren(...options, other);
    const preset = presets.find((r) => r.service_url === address);
    select.value = preset ? preset.service_url : OTHER;
    document.getElementById("address-url").value = address;
  }

  async function showAddress() {
    const api = window.CRMChatSignIn.xrm();
    const form = document.getElementById("address-form");
    const result = form.querySelector(".result");
    document.getElementById("address-card").hidden = false;
    try {
      renderAddress((await readAddress(api)).address);
    } catch (error) {
      // Without the definition (or the right to read it) there is nothing to set here.
      busy(form, true);
      show(result, "Could not read the service address: " + error.message, "bad");
      return;
    }
    form.preset.addEventListener("change", () => {
      if (form.preset.value !== OTHER) form.url.value = form.preset.value;
      else form.url.focus();
    });
    form.url.addEventListener("input", () => {
      const preset = (window.CRMCHAT_REGIONS || []).find((r) => r.service_url === form.url.value);
      form.preset.value = preset ? preset.service_url : OTHER;
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { address, problem } = cleanAddress(form.url.value);
      if (problem) {
        show(result, problem, "bad");
        return;
      }
      busy(form, true);
      try {
        const current = await readAddress(api);
        if (current.value) {
          await api.WebApi.updateRecord("environmentvariablevalue",
            current.value.environmentvariablevalueid, { value: address });
        } else {
          await api.WebApi.createRecord("environmentvariablevalue", {
            schemaname: window.CRMChatSignIn.SERVICE_URL_VARIABLE,
            value: address,
            "EnvironmentVariableDefinitionId@odata.bind":
              "/environmentvariabledefinitions(" + current.definition.environmentvariabledefinitionid + ")",
          });
        }
        renderAddress(address);
        show(result, "Address saved. CRM Chat pages opened from now on use " + address + ".", "ok");
      } catch (error) {
        show(result, "Could not save the address: " + error.message, "bad");
      } finally { busy(form, false); }
    });
  }

  async function start() {
    const status = document.getElementById("signin");
    try {
      const session = await window.CRMChatSignIn.signIn();
      status.textContent = "Signed in as " + session.user.name + ".";
      wire(session.call);
      document.getElementById("check-card").hidden = false;
      try {
        renderSettings(await session.call("GET", "/api/admin/settings"));
        document.getElementById("subscription-card").hidden = false;
        document.getElementById("chat-card").hidden = false;
        document.getElementById("masking-card").hidden = false;
        document.getElementById("word-card").hidden = false;
        await showAddress();
      } catch (error) {
        if (error.status !== 403) throw error;
      }
    } catch (error) {
      // Status 0: no Xrm, so the message says where to open the page.
      status.textContent = error.status === 0 ? error.message : "Could not sign in: " + error.message;
    }
  }

  start();
}());
