// CRM Chat settings web resource: subscription, chat on/off, hosting region, secret word, and
// the support check.
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
    const select = document.getElementById("region");
    select.replaceChildren(...settings.regions.map((r) => {
      const option = document.createElement("option");
      option.value = r.code;
      option.textContent = r.name;
      option.selected = r.code === settings.region;
      return option;
    }));
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
    const subscriptionForm = document.getElementById("subscription-form");
    subscriptionForm.dataset.subscribed = String(subscribed);
    subscriptionForm.querySelector("button").textContent = subscribed ? "Unsubscribe" : "Subscribe again";
  }

  function wire(call) {
    const regionForm = document.getElementById("region-form");
    regionForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = regionForm.querySelector(".result");
      busy(regionForm, true);
      try {
        renderSettings(await call("PUT", "/api/admin/settings/region",
          { region: regionForm.region.value }));
        show(result, "Region saved.", "ok");
      } catch (error) {
        show(result, error.message, "bad");
      } finally { busy(regionForm, false); }
    });

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
        document.getElementById("region-card").hidden = false;
        document.getElementById("word-card").hidden = false;
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
