// CRM Chat agent console: how an agent is alerted (issue 11). Each agent's choices (sound,
// and whether a toast comes for every customer message or once a customer has waited a
// while) are kept per agent id, so two agents sharing a browser keep their own; the tone;
// desktop notifications, used only while the console is not visible and only after the
// agent granted permission (asked on a click, as browsers require a user gesture).
"use strict";

(function (ns) {
  const PREFS_KEY_PREFIX = "crmchat.console.alerts.";
  // The wait after which a customer's unanswered message raises a toast, by default: long
  // enough not to nag an agent who is typing the answer, short of the minute customers
  // start to give up after (docs/chat-design.md).
  const DEFAULT_DELAY_SECS = 30;
  const MIN_DELAY_SECS = 5;
  const MAX_DELAY_SECS = 600;
  const MODES = ["delay", "every"];

  function clampDelay(value) {
    const n = Math.round(Number(value));
    if (!Number.isFinite(n)) return DEFAULT_DELAY_SECS;
    return Math.min(MAX_DELAY_SECS, Math.max(MIN_DELAY_SECS, n));
  }

  // Sound on, toast after a delay, unless `saved` (this agent's choice) says otherwise.
  ns.fromSaved = function (saved) {
    const prefs = { sound: true, mode: "delay", delaySecs: DEFAULT_DELAY_SECS };
    if (saved && typeof saved === "object") {
      if (typeof saved.sound === "boolean") prefs.sound = saved.sound;
      if (MODES.includes(saved.mode)) prefs.mode = saved.mode;
      if (saved.delaySecs !== undefined) prefs.delaySecs = clampDelay(saved.delaySecs);
    }
    return prefs;
  };

  // This browser's copy; the agent record's (crmchat_agent.crmchat_preferences) wins once read.
  ns.preferences = function (agentId) {
    try {
      return ns.fromSaved(JSON.parse(localStorage.getItem(PREFS_KEY_PREFIX + agentId) || "null"));
    } catch (error) {
      return ns.fromSaved(null);   // storage blocked or garbled: the defaults
    }
  };

  ns.savePreferences = function (agentId, prefs) {
    const clean = {
      sound: Boolean(prefs.sound),
      mode: MODES.includes(prefs.mode) ? prefs.mode : "delay",
      delaySecs: clampDelay(prefs.delaySecs),
    };
    try {
      localStorage.setItem(PREFS_KEY_PREFIX + agentId, JSON.stringify(clean));
    } catch (error) { /* storage blocked: kept for this page only */ }
    return clean;
  };

  ns.clampDelay = clampDelay;
  ns.MIN_DELAY_SECS = MIN_DELAY_SECS;
  ns.MAX_DELAY_SECS = MAX_DELAY_SECS;

  ns.beep = function () {
    try {
      const Audio = window.AudioContext || window.webkitAudioContext;
      const ctx = new Audio();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.4);
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.4);
      osc.onended = () => ctx.close();
    } catch (error) { /* no audio here: the title still flashes */ }
  };

  // Asked once, from a click; a refusal is the agent's answer and is not asked again.
  ns.askPermission = function () {
    if (!("Notification" in window) || Notification.permission !== "default") return;
    try {
      const asked = Notification.requestPermission();
      if (asked && asked.catch) asked.catch(() => {});
    } catch (error) { /* an old browser without the promise form */ }
  };

  // A desktop notification while the console cannot be seen; `tag` replaces an earlier
  // one about the same chat instead of stacking them. Clicking it brings the console back.
  ns.desktop = function (title, body, tag, onclick) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return false;
    try {
      const note = new Notification(title, { body, tag });
      note.onclick = () => {
        window.focus();
        note.close();
        if (onclick) onclick();
      };
      return true;
    } catch (error) {
      return false;   // e.g. Android Chrome, which only notifies from a service worker
    }
  };
}(window.CRMChatAlerts = window.CRMChatAlerts || {}));
