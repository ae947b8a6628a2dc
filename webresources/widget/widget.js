// CRM Chat visitor widget. Loaded by loader.js, which leaves the published config in
// window.CRMChat.config. Renders a launcher and a chat panel inside a Shadow DOM root (the
// host page's CSS cannot reach in), and keeps one WebSocket to /ws/visitor per page: it is
// the visitor's presence even when no chat is open. Wire contract: docs/protocol.md.
//
// Exactly-once and resume: every message carries a client_id and is kept in an outbox
// (sessionStorage) until the server's message.created for it arrives; the outbox is resent
// after each reconnect and the server dedupes by client_id. The chat token, the highest
// seq seen and the transcript live in sessionStorage too, so another page of the site (or a
// reload) resumes the chat with `resume: {token, since_seq}` and receives only what it
// missed. Messages are deduped and ordered by seq.
//
// Text from the server or the visitor only ever goes into the page through textContent.
//
// The Dynamics 365 Omnichannel live chat API (README.md, "Omnichannel"): loader.js keeps
// the context and auth token providers and queues the other SDK calls; this file puts the
// real methods in place, replays the queue and fires lcw:ready. The context is checked
// here against Omnichannel's rules before a chat starts (the service checks it again).
"use strict";
(function (w, d) {
  const ns = w.CRMChat;
  if (!ns || !ns.config || ns.started) return;
  ns.started = true;

  // Preview (the widget designer): no socket, no storage; "chat" and "ended" show a sample.
  const PREVIEW = ns.preview || null;
  const cfg = ns.config;
  // The visitor's languages (navigator.languages, then the page's lang; the designer's
  // preview sets ns.language) pick one of the
  // design's translations, by full tag then by its language ("pt-br", then "pt"); none
  // known: the design's own language. A text the translation lacks stays as designed.
  const TR = (cfg.design && cfg.design.translations) || {};
  const BASE_LANG = String((cfg.design && cfg.design.language) || "en").toLowerCase();
  const LANG = (() => {
    const own = Object.prototype.hasOwnProperty;
    const asked = [ns.language, ...(navigator.languages || [navigator.language]), d.documentElement.lang];
    for (const tag of asked) {
      const t = String(tag || "").toLowerCase();
      for (const c of t ? [t, t.split("-")[0]] : []) if (c === BASE_LANG || own.call(TR, c)) return c;
    }
    return BASE_LANG;
  })();
  const TEXTS = Object.assign({}, TR[LANG]);
  // Arabic, Hebrew, Persian and Urdu are written right to left.
  const RTL = /^(ar|he|fa|ur)(-|$)/.test(LANG);
  const design = JSON.parse(JSON.stringify(cfg.design || {}));
  for (const key in TEXTS) {
    const path = key.split(".");
    if (path[0] === "field") (design.fields || []).forEach((f) => { if (f.name === path[1]) f.label = TEXTS[key]; });
    else if (path.length === 2 && design[path[0]]) design[path[0]][path[1]] = TEXTS[key];
    else if (["title", "start_button", "send_button"].includes(key)) design[key] = TEXTS[key];
    else continue;
    delete TEXTS[key];
  }
  const WIDGET_ID = cfg.widget_id || ns.widgetId;
  const SOCKET_URL = cfg.socket_url || ns.base.replace(/^http/, "ws") + "/ws/visitor";
  const KEY = "crmchat:" + WIDGET_ID;
  const MAX_KEPT_MESSAGES = 300;
  const PING_EVERY_MS = 30000;
  const PONG_WITHIN_MS = 10000;
  const WAKE_PONG_WITHIN_MS = 5000;
  const MAX_BACKOFF_SECS = 30;
  const TYPING_IDLE_MS = 3000;
  const TYPING_SHOWN_MS = 8000;
  const PAGE_CHECK_MS = 2000;
  const EMOJI = "😀 😂 😊 😍 🤔 😮 😢 😉 👍 👎 👏 🙏 🙌 💪 🎉 ❤️ 🔥 ✅ ❌ 👋 ☕ 🚀 ⭐ 💡".split(" ");
  const DEFAULT_TEXTS = {
    open: "Open chat", minimize: "Minimize chat", end: "End chat",
    connecting: "Connecting…", reconnecting: "Reconnecting…",
    waiting: "Waiting for an agent…",
    typing: "{name} is typing…", placeholder: "Type a message…", emoji: "Insert emoji",
    ended: "The chat has ended.",
    rate: "How was this chat?", star: "{n} of 5 stars", thanks: "Thanks for your feedback!",
    newChat: "Start a new chat", unavailable: "No agent is available right now. Please try again later.",
    sending: "Sending…", notSent: "Not sent", seen: "Seen", unread: "{n} new", newTitle: "({n}) New message",
    slowed: "Sending more slowly: your messages follow in the order you typed them.",
    login: "Please sign in to chat.", topic: "Topic", chooseTopic: "Choose a topic",
    notStarted: "The chat could not start. Please try again later.",
    badIdentity: "We could not verify who you are. Please sign in again.",
    mismatch: "This chat's email does not match the account you are signed in with.",
    message: "Message", ticketDone: "Thanks, we got your message. Your ticket number is {number}.",
    messageDone: "Thanks, we got your message. We will get back to you.",
    closeInvite: "Close",
    attach: "Send a file",
    queue: "You are number {position} in the queue.",
    queueWait: "You are number {position} in the queue, about {minutes} min.",
  };
  const T = Object.assign({}, DEFAULT_TEXTS, TEXTS);
  // The designer lists these as the texts a translation may give.
  if (PREVIEW) ns.defaultTexts = DEFAULT_TEXTS;
  // The Omnichannel script tag's data-* customizations ("Customize live chat widgets using
  // data tags"); each overrides the widget's design, as Omnichannel's override the admin's.
  const tagAttr = (name) => (ns.tag && ns.tag.getAttribute("data-" + name)) || "";
  const TAG = {
    color: tagAttr("color-override"), font: tagAttr("font-family-override"),
    mobile: tagAttr("render-mobile") === "true", noMinimize: tagAttr("hide-minimize-button") === "true",
    // data-open-in-window: the launcher opens the chat in a window of its own (popOut).
    popout: tagAttr("open-in-window") === "true",
  };
  // The service's chat window (/widget/window/<id>): the panel is the whole window, always
  // open; it takes over the chat of the page that opened it (extras.js's handover()).
  const WINDOW = !PREVIEW && tagAttr("window") === "true";
  if (tagAttr("custom-close-button-text")) T.end = tagAttr("custom-close-button-text").slice(0, 40);
  // Outside its operating hours a widget may take messages (cfg.offline_form) too.
  const TICKET = Object.assign({}, design.ticket_fallback, cfg.offline_form ? { enabled: true } : null);
  const REPLY_TIME = (design.operating_hours || {}).reply_time || "";
  const PROACTIVE = design.proactive || {};
  const ASK_FIELDS = design.ask_name_email !== false;
  // The topics a visitor may pick (docs/protocol.md): with several, the pre-chat form asks.
  const TOPICS = Array.isArray(cfg.topics) ? cfg.topics : [];
  const DEFAULT_INVITE = "Hi! Have any questions? I'm here to help";
  const TOKEN_WAIT_MS = 10000;
  // A refused chat start or message waiting longer than this (the service's hourly limits,
  // not its per-socket pacing) is given up, saying why, instead of waiting unseen.
  const RETRY_WITHIN_MS = 10000;
  // Omnichannel's context rules (live-chat.md §2).
  const MAX_CONTEXT_VARS = 100;
  const MAX_CONTEXT_NAME_CHARS = 100;
  const MAX_CONTEXT_VALUE_CHARS = 4000;
  const fmt = (s, v) => String(s).replace(/\{(\w+)\}/g,
    (m, k) => (Object.prototype.hasOwnProperty.call(v, k) ? v[k] : ""));

  // ---- storage (any of it may be blocked: then the widget simply forgets) ----
  function store(kind, key, value) {
    if (PREVIEW) return null;
    try {
      const s = w[kind];
      if (value === undefined) return JSON.parse(s.getItem(key));
      if (value === null) s.removeItem(key);
      else s.setItem(key, JSON.stringify(value));
    } catch (e) { /* storage unavailable */ }
    return null;
  }
  function randomId(bytes) {
    const b = crypto.getRandomValues(new Uint8Array(bytes));
    return btoa(String.fromCharCode.apply(null, b))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function visitorId() {
    const valid = (v) => typeof v === "string" && /^[A-Za-z0-9_-]{16,64}$/.test(v);
    const m = d.cookie.match(/(?:^|;\s*)crmchat_vid=([^;]*)/);
    let id = m && m[1];
    if (!valid(id)) id = store("localStorage", "crmchat_vid");
    if (!valid(id)) id = randomId(16);
    store("localStorage", "crmchat_vid", id);
    d.cookie = "crmchat_vid=" + id + "; path=/; max-age=31536000; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
    return id;
  }
  let VISITOR_ID = PREVIEW ? "preview" : visitorId();

  function fresh() {
    return { token: null, cid: null, seq: 0, state: null, agent: null, by: null, rated: 0,
      msgs: [], out: [], start: null, fields: {}, open: false, shown: true,
      timedOut: false, ticketReq: null, ticket: null, queue: null };
  }
  let S = Object.assign(fresh(), { shown: false }, store("sessionStorage", KEY) || {});
  const save = () => store("sessionStorage", KEY, S);
  // The running chat is shared with the site's other tabs: its resume token (the chat's
  // only credential) and id in localStorage, which only pages of this site's origin can
  // read, as they can read sessionStorage. A tab without a chat of its own resumes it.
  const SHARED = KEY + ":chat";
  // The queue place goes along: the service says it again only when it changes.
  const share = () => store("localStorage", SHARED, { token: S.token, cid: S.cid, queue: S.queue });
  function unshare(cid) {
    const sh = store("localStorage", SHARED);
    if (sh && sh.cid === cid) store("localStorage", SHARED, null);
  }
  function adopt(sh) {
    if (!sh || typeof sh.token !== "string" || sh.token === S.token || S.token || S.start) return false;
    S = Object.assign(fresh(), { fields: S.fields, open: S.open, shown: S.shown,
      token: sh.token, cid: sh.cid, state: "waiting", queue: queuePlace(sh.queue) });
    save();
    return true;
  }
  // A queue place from storage or the chat window's hand-over, or null.
  function queuePlace(q) {
    return q && q.position >= 1 && q.position % 1 === 0
      ? { position: q.position, minutes: q.minutes >= 1 && q.minutes % 1 === 0 ? q.minutes : null } : null;
  }
  adopt(store("localStorage", SHARED));

  // ---- DOM helpers ----
  function el(tag, props, ...kids) {
    const e = d.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "tid") e.setAttribute("data-testid", "crmchat-" + v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids) if (kid != null) e.append(kid);
    return e;
  }
  const svg = (path) => {
    const s = d.createElementNS("http://www.w3.org/2000/svg", "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    const p = d.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", path);
    s.append(p);
    return s;
  };
  const ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  const ICON_DOWN = "M6 9l6 6 6-6";
  const ICON_SEND = "M3 20l18-8L3 4v6l12 2-12 2z";
  const ICON_CLIP = "M21 11l-8.5 8.5a5 5 0 0 1-7-7L14 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 7";
  const ICON_SMILE = "M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zM8 14s1.5 2 4 2 4-2 4-2M9 9h.01M15 9h.01";
  const SYSTEM_FONTS = 'system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif';
  const safeUrl = (u, dataImage) => {
    try {
      if (dataImage && /^data:image\/(png|jpe?g|gif|webp);base64,/i.test(u)) return u;
      const url = new URL(u);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) { return null; }
  };
  // Plain text with http(s) links made clickable; every piece is a text node.
  function richText(text) {
    const f = d.createDocumentFragment();
    String(text).split(/(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)])/).forEach((part, i) => {
      const href = i % 2 ? safeUrl(part) : null;
      f.append(href ? el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow",
        text: part }) : part);
    });
    return f;
  }
  function displayName(fields) {
    // As design.py's display_name: nothing typed for any placeholder gives "Visitor".
    const template = design.display_name_template || "{firstname} {lastname}";
    const keys = template.match(/\{[a-z][a-z0-9_]*\}/g) || [];
    if (keys.length && !keys.some((k) => String((fields || {})[k.slice(1, -1)] || "").trim())) return "Visitor";
    const name = fmt(template, fields).replace(/\s+/g, " ").trim();
    return name || "Visitor";
  }
  const initials = (n) => String(n || "?").split(/\s+/).map((p) => p[0] || "").join("")
    .slice(0, 2).toUpperCase();

  // ---- the UI ----
  const panelId = "crmchat-panel";
  const launcher = el("button", { class: "launcher", type: "button", tid: "launcher",
    "aria-controls": panelId, "aria-expanded": "false", "aria-label": T.open,
    onclick: () => S.open || !TAG.popout || !popOut() ? setOpen(!S.open) : 0 }, svg(ICON_CHAT), svg(ICON_DOWN));
  const badge = el("span", { class: "badge", tid: "unread", hidden: true });
  launcher.append(badge);

  const avatar = el("span", { class: "avatar", tid: "agent-avatar", hidden: true });
  const titleEl = el("h2", { class: "title", id: "crmchat-title", tid: "title" });
  const statusEl = el("p", { class: "status", tid: "status", "aria-live": "polite" });
  const endBtn = el("button", { class: "hbtn end", type: "button", tid: "end-chat",
    text: T.end, onclick: () => confirmEnd(true) });
  const minBtn = el("button", { class: "hbtn min", type: "button", tid: "minimize",
    "aria-label": T.minimize, title: T.minimize, onclick: () => setOpen(false) }, svg(ICON_DOWN));
  const header = el("header", null, avatar,
    el("div", { class: "who" }, titleEl, statusEl), endBtn, minBtn);

  // pre-chat form
  const preError = el("p", { class: "error", tid: "prechat-error", role: "alert", hidden: true });
  const startBtn = el("button", { class: "primary", type: "submit", tid: "start",
    text: design.start_button || "Start chat" });
  const fields = Array.isArray(design.fields) ? design.fields : [
    { name: "firstname", label: "First name", type: "text", required: true },
    { name: "lastname", label: "Last name", type: "text", required: false },
    { name: "email", label: "Email", type: "email", required: true },
  ];
  const AUTOCOMPLETE = { firstname: "given-name", lastname: "family-name", email: "email",
    name: "name", fullname: "name", phone: "tel", mobilephone: "tel", telephone1: "tel" };
  const inside = design.label_position === "inside";
  function fieldBox(id, f, input) {
    if (inside) input.placeholder = (f.label || f.name) + (f.required ? " *" : "");
    return el("div", { class: "field" },
      el("label", { for: id, class: inside ? "sr" : null }, f.label || f.name,
        f.required ? el("span", { class: "req", "aria-hidden": "true", text: " *" }) : null),
      input);
  }
  // The design's input fields, in a form; `prefix` keeps the ids of two forms apart.
  function addFields(form, prefix) {
    fields.forEach((f, i) => {
      const id = prefix + i;
      const type = ["text", "email", "tel", "textarea"].includes(f.type) ? f.type : "text";
      const input = el(type === "textarea" ? "textarea" : "input", {
        id, name: f.name, type: type === "textarea" ? null : type, required: !!f.required,
        maxlength: 500, tid: (prefix === "crmchat-f" ? "" : "ticket-") + "field-" + f.name,
        rows: type === "textarea" ? 3 : null,
        autocomplete: AUTOCOMPLETE[f.type === "email" ? "email" : f.name] || null,
      });
      if (S.fields[f.name]) input.value = S.fields[f.name];
      form.append(fieldBox(id, f, input));
    });
  }
  function readFields(form) {
    const values = {};
    form.querySelectorAll(".field input[name],.field textarea[name]").forEach((i) => {
      const v = i.value.trim();
      if (v && !i.disabled) values[i.name] = v;
    });
    return values;
  }
  const pre = el("form", { class: "pre", tid: "prechat", onsubmit: (e) => { e.preventDefault(); startChat(); } });
  const loginBox = el("p", { class: "error", tid: "login-required", role: "alert", text: T.login, hidden: true });
  // With ask_name_email off the form is a single Start button (and the topic, if asked).
  if (ASK_FIELDS) addFields(pre, "crmchat-f");
  const topicSelect = TOPICS.length > 1 ? el("select", { id: "crmchat-topic", name: "topic_id",
    required: true, tid: "topic" }, el("option", { value: "", text: T.chooseTopic })) : null;
  if (topicSelect) {
    TOPICS.forEach((t) => topicSelect.append(el("option", { value: t.id, text: t.name })));
    if (S.topic) topicSelect.value = S.topic;
    pre.append(fieldBox("crmchat-topic", { label: T.topic, required: true }, topicSelect));
  }
  // The widget's consent box (design privacy): the service refuses chat.start without it.
  const PRIVACY = design.privacy || {};
  const consentBox = PRIVACY.consent_required ? el("input", { type: "checkbox",
    id: "crmchat-consent", required: true, tid: "consent" }) : null;
  if (consentBox) {
    pre.append(el("div", { class: "consent" }, consentBox,
      el("label", { for: "crmchat-consent", text: PRIVACY.consent_text || "" })));
  }
  pre.append(preError, startBtn);

  // leave a message (ticket fallback), and its answer
  const ticketError = el("p", { class: "error", role: "alert", hidden: true });
  const ticketMsg = el("textarea", { id: "crmchat-tm", rows: 4, maxlength: 4000,
    required: true, tid: "ticket-message" });
  const ticketBtn = el("button", { class: "primary", type: "submit", tid: "ticket-submit",
    text: TICKET.button || "Send message" });
  const ticketForm = el("form", { class: "pre", tid: "ticket-form", hidden: true,
    onsubmit: (e) => { e.preventDefault(); createTicket(); } });
  // Built the first time it shows: most pages never need it.
  function buildTicket() {
    if (ticketForm.firstChild) return;
    ticketForm.append(el("h3", { text: TICKET.title || "Leave us a message" }),
      el("p", { class: "ticketnote", text: TICKET.text || "" }));
    addFields(ticketForm, "crmchat-t");
    ticketForm.append(fieldBox("crmchat-tm", { label: T.message, required: true }, ticketMsg),
      ticketError, ticketBtn);
    if (me && me.verified) fillFromIdentity();
  }
  const ticketDone = el("p", { class: "done", tid: "ticket-done", role: "status", hidden: true });

  // conversation
  // A role="log" is not a list: its messages are plain blocks (an <ol> with that role
  // would hold list items outside a list).
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", tid: "messages",
    "aria-labelledby": "crmchat-title" });
  const typingEl = el("p", { class: "typing", tid: "typing", hidden: true });
  const slowedEl = el("p", { class: "typing", tid: "slowed", role: "status", hidden: true, text: T.slowed });
  const input = el("textarea", { rows: 1, maxlength: 4000, tid: "input",
    placeholder: T.placeholder, "aria-label": T.placeholder });
  const sendBtn = el("button", { class: "send", type: "submit", tid: "send",
    "aria-label": design.send_button || "Send", title: design.send_button || "Send" },
  svg(ICON_SEND));
  const picker = el("div", { class: "picker", role: "group", tid: "emoji-picker",
    "aria-label": T.emoji, hidden: true });
  EMOJI.forEach((e) => picker.append(el("button", { type: "button", text: e,
    tid: "emoji-option", onclick: () => insertEmoji(e) })));
  const emojiBtn = design.emoji === false ? null : el("button", { class: "emo", type: "button",
    tid: "emoji", "aria-label": T.emoji, title: T.emoji, "aria-expanded": "false",
    onclick: () => togglePicker() }, svg(ICON_SMILE));
  // Files both ways (docs/agent-workspace.md, "Attachments"): the design's limits are
  // checked here before anything is sent, and by the service again.
  const FILES = design.attachments || {};
  const fileInput = el("input", { type: "file", hidden: true, tid: "file-input",
    onchange: () => { sendFile(fileInput.files[0]); fileInput.value = ""; } });
  const attachBtn = FILES.enabled ? el("button", { class: "emo", type: "button", tid: "attach",
    "aria-label": T.attach, title: T.attach, onclick: () => fileInput.click() }, svg(ICON_CLIP)) : null;
  const composer = el("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); sendText(); } },
    emojiBtn, attachBtn, fileInput, input, sendBtn);
  if (FILES.enabled) {
    log.addEventListener("dragover", (e) => { if (S.cid) e.preventDefault(); });
    log.addEventListener("drop", (e) => { e.preventDefault(); sendFile(e.dataTransfer.files[0]); });
  }

  // end of chat
  const endBox = el("div", { class: "endbox", tid: "end", hidden: true });

  // confirm box
  const confirmMsg = el("p", { id: "crmchat-confirm-msg",
    text: (design.confirm_end && design.confirm_end.message) || "End this chat?" });
  const yesBtn = el("button", { class: "primary", type: "button", tid: "confirm-yes",
    text: (design.confirm_end && design.confirm_end.yes) || "Yes",
    onclick: () => { confirmEnd(false); endChat(); } });
  const noBtn = el("button", { class: "secondary", type: "button", tid: "confirm-no",
    text: (design.confirm_end && design.confirm_end.no) || "No",
    onclick: () => confirmEnd(false) });
  const confirmBox = el("div", { class: "confirm", role: "alertdialog", "aria-modal": "true",
    "aria-labelledby": "crmchat-confirm-msg", tid: "confirm", hidden: true },
  el("div", { class: "card" }, confirmMsg, el("div", { class: "row" }, noBtn, yesBtn)));

  // The chat's place in the queue (chat.queued), announced as it changes.
  const queueEl = el("p", { class: "queue", tid: "queue", role: "status", hidden: true });
  const body = el("div", { class: "body" }, loginBox, pre, ticketForm, ticketDone, queueEl, log, typingEl, slowedEl, endBox);
  const panel = el("section", { class: "panel", id: panelId, role: "dialog", tid: "panel",
    "aria-labelledby": "crmchat-title", hidden: true }, header, body, picker, composer, confirmBox);
  // the proactive invitation: a bubble by the launcher
  const inviteText = el("button", { class: "invmsg", type: "button", onclick: () => acceptInvite() });
  const invite = el("div", { class: "invite", tid: "proactive", role: "status", hidden: true },
    inviteText, el("button", { class: "invx", type: "button", "aria-label": T.closeInvite,
      title: T.closeInvite, text: "×", onclick: () => dismissInvite() }));
  const ui = el("div", { class: "w" + (design.position === "bottom-left" ? " left" : "") +
    (TAG.mobile ? " mobile" : "") + (TAG.noMinimize ? " nomin" : "") +
    (design.corners === "square" ? " sq" : "") + " lp-" + (design.label_position || "above"),
  lang: LANG, dir: RTL ? "rtl" : "ltr" }, panel, invite, launcher);
  if (WINDOW) ui.classList.add("window", "nomin");

  const host = el("crmchat-widget", { tid: "root" });
  const root = host.attachShadow({ mode: "open" });
  // A strict style-src allows the style sheet by the nonce the site gave (loader.js).
  root.append(el("style", { text: styles(), nonce: ns.nonce || null }), ui);

  // design.colors (connector/crm/design.py) become CSS custom properties.
  const COLOR_VARS = { primary: "--p", primary_text: "--pt", background: "--bg", text: "--tx",
    visitor_bubble: "--vb", visitor_text: "--vt", agent_bubble: "--ab", agent_text: "--at" };
  function applyDesign() {
    const c = design.colors || {};
    for (const k in COLOR_VARS) {
      if (typeof c[k] === "string" && CSS.supports("color", c[k])) ui.style.setProperty(COLOR_VARS[k], c[k]);
    }
    if (c.primary && !c.primary_text) ui.style.setProperty("--pt", readableOn(c.primary));
    const font = typeof design.font === "string" && design.font.replace(/["\\;{}]/g, "");
    if (font) ui.style.setProperty("--f", '"' + font + '",' + SYSTEM_FONTS);
    // data-color-override: the theme colour (the primary); data-font-family-override: a
    // font list as CSS writes it ("Arial, Segoe UI"), the system fonts after it.
    if (TAG.color && CSS.supports("color", TAG.color)) {
      ui.style.setProperty("--p", TAG.color);
      ui.style.setProperty("--pt", readableOn(TAG.color));
    }
    if (TAG.font && CSS.supports("font-family", TAG.font)) ui.style.setProperty("--f", TAG.font + "," + SYSTEM_FONTS);
  }
  // Black or white text on the primary colour, whichever contrasts more (needs the host in
  // the document: a detached element has no computed colour).
  function readableOn(colorValue) {
    const probe = el("i"); // the CSSOM: a style attribute breaks under a strict style-src
    probe.style.color = colorValue;
    ui.append(probe);
    const rgb = (getComputedStyle(probe).color.match(/[\d.]+/g) || [0, 0, 0]).map(Number);
    probe.remove();
    const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    const l = 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2]);
    return l > 0.35 ? "#111" : "#fff";
  }

  // ---- view state ----
  let available = !!(PREVIEW || cfg.available);
  let apiHidden = false; // the site called CRMChat.hide()
  // Until CRMChat.show() or open(), or SDK.startChat(): design.initial_state "hidden", or
  // the Omnichannel tag's data-hide-chat-button="true" (the page has its own button).
  let designHidden = design.initial_state === "hidden" ||
    !!(ns.tag && ns.tag.getAttribute("data-hide-chat-button") === "true");
  let delayed = !PREVIEW && !S.shown && design.delay_ms > 0; // design.delay_ms, once per session
  let unread = 0;
  let notice = null;

  // ---- while the visitor is not looking: title flash (hidden tab) and sound ----
  const FLASH_MS = 1000;
  const BEEP_SECS = 0.25;
  let baseTitle = null;
  let flashTimer = null;
  let audio = null;
  // Browsers let a page play sound only after the visitor interacted with it.
  function unlockAudio() {
    if (audio || design.sound === false || !w.AudioContext) return;
    try { audio = new w.AudioContext(); } catch (e) { audio = null; }
  }
  ui.addEventListener("pointerdown", unlockAudio);
  ui.addEventListener("keydown", unlockAudio);
  function beep(seq) {
    // Every tab of the site gets the message: the first to claim its seq rings, once.
    if (!audio || (store("localStorage", KEY + ":rang") || 0) >= seq) return;
    store("localStorage", KEY + ":rang", seq);
    try {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.frequency.value = 880;
      g.gain.setValueAtTime(0.1, audio.currentTime);
      g.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + BEEP_SECS);
      o.connect(g).connect(audio.destination);
      o.start();
      o.stop(audio.currentTime + BEEP_SECS);
    } catch (e) { /* no sound device */ }
  }
  function attention(seq) {
    if (S.open && !d.hidden) return;
    beep(seq);
    if (d.hidden && !flashTimer) {
      baseTitle = d.title;
      let on = false;
      flashTimer = setInterval(() => {
        on = !on;
        d.title = on ? fmt(T.newTitle, { n: Math.max(1, unread) }) : baseTitle;
      }, FLASH_MS);
    }
  }
  function calm() {
    if (!flashTimer) return;
    clearInterval(flashTimer);
    flashTimer = null;
    d.title = baseTitle;
  }
  d.addEventListener("visibilitychange", () => { if (!d.hidden) calm(); });
  let identity = null; // the page's auth token (setAuthTokenProvider), sent in hello
  let me = null; // hello.ok's identity: {verified, source, name, email}
  let inviteDue = false; // design.proactive's delay has passed
  let inviteMsg = null; // the invitation on show
  let invitePrechat = true;
  let inviteWindow = false; // startProactiveChat(…, {inNewWindow: true})

  const inChat = () => !!(S.token || S.start);
  // require_login: a page with a token is given the benefit of the doubt until hello.ok.
  const loginNeeded = () => !PREVIEW && !!design.require_login && !(me && me.verified) &&
    !(identity && !helloDone);
  function view() {
    if (S.ticket) return "done";
    if (TICKET.enabled && S.timedOut && S.state !== "active") return "ticket";
    if (S.state === "ended") return "ended";
    if (inChat()) return "chat";
    if (loginNeeded()) return "login";
    return TICKET.enabled && !available ? "ticket" : "pre";
  }

  function render() {
    const v = view();
    const visible = !apiHidden && (inChat() || S.state === "ended" || !!S.ticket ||
      (!delayed && !designHidden && (available || TICKET.enabled || S.open)));
    ui.hidden = !visible;
    const canInvite = visible && !S.open && v === "pre" && available;
    if (inviteDue && canInvite) {
      inviteDue = false;
      inviteMsg = PROACTIVE.message || DEFAULT_INVITE;
      store("sessionStorage", KEY + ":invited", 1);
    }
    invite.hidden = !(inviteMsg && canInvite);
    inviteText.textContent = inviteMsg || "";
    loginBox.hidden = v !== "login";
    if (v === "ticket") buildTicket();
    ticketForm.hidden = v !== "ticket";
    ticketBtn.disabled = !!S.ticketReq;
    ticketDone.hidden = v !== "done";
    // No number where CRM has no cases: the message was kept on the contact.
    ticketDone.textContent = S.ticket === true ? T.messageDone : fmt(T.ticketDone, { number: S.ticket || "" });
    panel.hidden = !S.open;
    ui.classList.toggle("open", S.open);
    launcher.setAttribute("aria-expanded", String(S.open));
    launcher.setAttribute("aria-label", S.open ? T.minimize : T.open +
      (unread ? " (" + fmt(T.unread, { n: unread }) + ")" : ""));
    badge.hidden = !unread || S.open;
    badge.textContent = unread > 9 ? "9+" : String(unread);
    pre.hidden = v !== "pre";
    log.hidden = v !== "chat" && v !== "ended";
    composer.hidden = v !== "chat";
    if (v !== "chat") showPicker(false);
    endBtn.hidden = !(v === "chat" || (v === "ticket" && S.token && S.state !== "ended"));
    endBox.hidden = v !== "ended";
    if (v !== "chat") typingEl.hidden = true;
    const queue = v === "chat" && S.state === "waiting" ? queueText() : "";
    queueEl.hidden = !queue;
    if (queueEl.textContent !== queue) queueEl.textContent = queue;
    startBtn.disabled = !available || !!S.start || starting;
    const problem = notice || (available ? "" : T.unavailable);
    preError.hidden = !problem;
    preError.textContent = problem;
    renderHeader(v);
  }

  let avatarKey = "";
  function renderHeader(v) {
    const agent = S.agent && (v === "chat" || v === "ended") ? S.agent : null;
    titleEl.textContent = agent ? agent.name || design.title || "" : design.title || "Chat with us";
    avatar.hidden = !agent || design.show_agent_image === false;
    const key = avatar.hidden ? "" : agent.name + "|" + agent.image;
    if (key !== avatarKey) {
      // Rebuilt only when the agent changes: decoding a data URL on every render flickers.
      avatarKey = key;
      avatar.replaceChildren();
      const src = key && agent.image && safeUrl(agent.image, true);
      if (key) avatar.append(src ? el("img", { src, alt: "", tid: "agent-image" })
        : el("span", { text: initials(agent.name) }));
    }
    let status = "";
    if (v === "chat" && !online() && !PREVIEW) status = ws ? T.connecting : T.reconnecting;
    else if (v === "chat" && S.state !== "active") status = REPLY_TIME ? T.waiting + " " + REPLY_TIME : T.waiting;
    else if (v === "ended") status = T.ended;
    else if (agent) status = design.title || "";
    if (statusEl.textContent !== status) statusEl.textContent = status;
  }

  // Read receipts: the agents learn what the visitor read while the panel is open and the
  // page visible, once per newer message (S.read: the last seq told).
  function markRead() {
    if (S.open && !d.hidden && S.state === "active" && S.seq > (S.read || 0) && send({ type: "message.read", seq: S.seq })) S.read = S.seq;
  }
  function setOpen(open, keepFocus) {
    if (WINDOW) open = true;
    if (open) { inviteMsg = null; inviteDue = false; }
    if (!!open !== S.open) fire(open ? "onMaximize" : "onMinimize");
    if (!open && (S.state === "ended" || (S.ticket && !inChat()))) {
      S = Object.assign(fresh(), { fields: S.fields });
      renderTranscript();
      fire("onClose");
    }
    S.open = !!open;
    if (open) unread = 0;
    markRead();
    save();
    render();
    fitViewport();
    if (open) {
      if (!keepFocus) focusView();
      scrollDown(true);
    } else if (!keepFocus && root.activeElement && panel.contains(root.activeElement)) {
      launcher.focus();
    }
  }
  // A phone's on-screen keyboard shrinks only the visual viewport, which fixed elements
  // ignore: the full-screen panel takes its size, so the composer stays above the keyboard.
  const vv = w.visualViewport;
  const FULL_SCREEN = w.matchMedia("(max-width:480px)");
  function fitViewport() {
    const fit = !!vv && S.open && (TAG.mobile || WINDOW || FULL_SCREEN.matches);
    panel.style.top = fit ? vv.offsetTop + "px" : "";
    panel.style.height = fit ? vv.height + "px" : "";
    if (fit) scrollDown();
  }
  if (vv) ["resize", "scroll"].forEach((e) => vv.addEventListener(e, fitViewport));
  function focusView() {
    const v = view();
    const target = v === "pre" ? pre.querySelector("input,select,textarea,button")
      : v === "ticket" ? ticketForm.querySelector("input,textarea,button")
        : v === "chat" ? input : v === "ended" ? endBox.querySelector("button,a") : null;
    if (target) target.focus();
  }

  // ---- messages ----
  function nodeFor(m, pending) {
    const kind = (m.sender && m.sender.kind) || "visitor";
    const name = kind === "visitor" ? displayName(S.fields) : (m.sender && m.sender.name) || "";
    const li = el("div", { class: "msg " + kind + (pending ? " pending" : ""), tid: "message",
      "data-kind": kind, "data-seq": pending ? null : m.seq, "data-client-id": m.client_id,
      "data-name": name });
    if (kind !== "system") li.append(el("span", { class: "from" + (kind === "visitor" ? " sr" : ""), text: name }));
    // A file's message is its name until extras.js shows the link (and an image's preview).
    const bubble = el("div", { class: "bubble" }, richText(m.text));
    if (m.attachment) withExtras((x) => bubble.replaceChildren(x.fileView(m.attachment, filesCtx())));
    li.append(bubble);
    li.append(el("span", { class: "meta" }));
    stamp(li, m, pending);
    return li;
  }
  function stamp(li, m, pending) {
    const meta = li.lastChild;
    meta.replaceChildren();
    if (pending === "failed") meta.textContent = T.notSent;
    else if (pending) meta.textContent = T.sending;
    else {
      const t = new Date(m.sent_at);
      if (!isNaN(t)) {
        meta.append(el("time", { datetime: t.toISOString(),
          text: t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }));
      }
    }
  }
  // Hide the sender's name when the message above is from the same sender.
  function tidyNames(li) {
    for (const n of [li, li.nextElementSibling]) {
      if (!n) continue;
      const prev = n.previousElementSibling;
      n.classList.toggle("cont", !!prev && prev.dataset.name === n.dataset.name &&
        prev.dataset.kind === n.dataset.kind);
    }
  }
  function place(li, seq) {
    let next = null;
    for (const c of log.children) {
      if (c.classList.contains("pending") || (c.dataset.seq && +c.dataset.seq > seq)) { next = c; break; }
    }
    log.insertBefore(li, next);
    tidyNames(li);
  }
  function addMessage(m) {
    // (a message of a chat closeChat() forgot has a conversation_id that is no longer S.cid)
    if (!m || typeof m.seq !== "number" || (m.conversation_id && m.conversation_id !== S.cid)) return;
    if (S.msgs.some((x) => x.seq === m.seq)) return;
    const kept = { seq: m.seq, client_id: m.client_id, sender: m.sender, text: m.text, sent_at: m.sent_at,
      attachment: m.attachment };
    S.msgs.push(kept);
    S.msgs.sort((a, b) => a.seq - b.seq);
    if (S.msgs.length > MAX_KEPT_MESSAGES) S.msgs.splice(0, S.msgs.length - MAX_KEPT_MESSAGES);
    S.seq = Math.max(S.seq, m.seq);
    const kind = m.sender && m.sender.kind;
    const mine = kind === "visitor" && S.out.some((o) => o.client_id === m.client_id);
    let li = null;
    if (kind === "visitor" && m.client_id) {
      S.out = S.out.filter((o) => o.client_id !== m.client_id);
      if (inFlight === m.client_id) { inFlight = null; setTimeout(pump, 0); }
      li = log.querySelector('.msg.pending[data-client-id="' + CSS.escape(m.client_id) + '"]');
    }
    if (li) {
      li.remove();
      li.classList.remove("pending", "failed");
      li.dataset.seq = m.seq;
      stamp(li, m);
    } else {
      li = nodeFor(m);
    }
    place(li, m.seq);
    if (kind === "agent") typingEl.hidden = true;
    if (kind !== "visitor" && !S.open) unread++;
    save();
    scrollDown(kind === "visitor");
    if (kind !== "visitor" || mine) fire(mine ? "onMessageSent" : "onMessageReceived", lcwMessage(kept, kind));
  }
  // Omnichannel's message payload (lcw:onMessageReceived reference): messageType "user" for
  // people, "system" for the service's lines, and channelData.tags saying what happened;
  // our own fields stay alongside for pages written for CRM Chat.
  function lcwMessage(m, kind) {
    let tags = ["public", "client_activity_id:" + (m.client_id || m.seq)];
    if (kind === "system") {
      tags = ["system"];
      if (nextTag) { tags.push(nextTag); nextTag = null; }
    }
    return Object.assign({ conversation_id: S.cid }, m, {
      messageType: kind === "system" ? "system" : "user", content: m.text, timestamp: m.sent_at,
      channelData: { tags },
    });
  }
  function scrollDown(force) {
    const near = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    if (force || near) log.scrollTop = log.scrollHeight;
  }
  function renderTranscript() {
    log.replaceChildren();
    S.msgs.forEach((m) => place(nodeFor(m), m.seq));
    S.out.forEach((o) => log.append(nodeFor({ client_id: o.client_id, text: o.text,
      sender: { kind: "visitor" } }, o.failed ? "failed" : true)));
  }

  // ---- the socket ----
  let ws = null;
  let helloDone = false;
  let retrieved = null; // the chat lcw:chatRetrieved or lcw:chatQueued was fired for
  let nextTag = null; // channelData tag of the next system line (agentaccepted)
  let backoff = 0;
  let retryTimer = 0;
  let deadTimer = 0;
  let stopped = false; // the widget no longer exists: stop reconnecting

  const online = () => !!ws && helloDone;
  function page() {
    // The service's limits (docs/protocol.md): a longer value would refuse the whole hello.
    return { url: location.href.slice(0, 2048), title: (flashTimer ? baseTitle : d.title).slice(0, 500),
      referrer: d.referrer.slice(0, 2048) };
  }
  function send(frame) {
    if (!online()) return false;
    try { ws.send(JSON.stringify(frame)); return true; } catch (e) { return false; }
  }
  function connect() {
    clearTimeout(retryTimer);
    if (ws || stopped) return;
    let sock;
    try { sock = ws = new WebSocket(SOCKET_URL); } catch (e) { ws = null; retry(); return; }
    helloDone = false;
    sock.onopen = () => {
      arm(PONG_WITHIN_MS);
      const hello = { type: "hello", widget_id: WIDGET_ID, visitor_id: VISITOR_ID, page: page() };
      if (S.token) hello.resume = { token: S.token, since_seq: S.seq };
      if (identity) hello.identity = { token: identity };
      sock.send(JSON.stringify(hello));
    };
    sock.onmessage = (e) => {
      if (sock !== ws) return;
      clearTimeout(deadTimer);
      let f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      if (f && typeof f.type === "string") handle(f);
    };
    sock.onclose = () => {
      if (sock !== ws) return;
      ws = null;
      helloDone = false;
      render();
      retry();
    };
  }
  // A new identity is said in hello only: drop the socket and say hello again.
  function reconnect() {
    const old = ws;
    ws = null;
    helloDone = false;
    clearTimeout(deadTimer);
    try { if (old) old.close(); } catch (e) { /* already gone */ }
    backoff = 0;
    connect();
  }
  function retry() {
    clearTimeout(retryTimer);
    const secs = Math.min(MAX_BACKOFF_SECS, 2 ** backoff++);
    retryTimer = setTimeout(connect, secs * 1000 * (0.85 + Math.random() * 0.15));
  }
  // A socket that went quiet (sleeping laptop, dropped Wi-Fi) often never reports close:
  // a ping must be answered in time or the socket is dropped and a fresh one opened.
  function probe(withinMs) {
    if (!online()) return;
    send({ type: "ping" });
    arm(withinMs);
  }
  function arm(withinMs) {
    clearTimeout(deadTimer);
    deadTimer = setTimeout(() => {
      const dead = ws;
      ws = null;
      helloDone = false;
      try { dead.close(); } catch (e) { /* already gone */ }
      render();
      connect();
    }, withinMs);
  }
  function wake() {
    if (!ws) { backoff = 0; connect(); } else probe(WAKE_PONG_WITHIN_MS);
  }
  const pinger = setInterval(() => probe(PONG_WITHIN_MS), PING_EVERY_MS);
  w.addEventListener("online", wake);
  w.addEventListener("focus", wake);
  d.addEventListener("visibilitychange", () => { if (!d.hidden) { wake(); markRead(); } });
  // A chat another tab of the site started: resume it here too (a new hello with its token).
  w.addEventListener("storage", (e) => {
    if (e.key !== SHARED || stopped) return;
    let sh = null;
    try { sh = JSON.parse(e.newValue); } catch (err) { return; }
    if (adopt(sh)) { renderTranscript(); render(); reconnect(); }
  });
  // Single-page sites change the URL without a page load: keep the presence page current.
  let lastUrl = location.href;
  const pageChecker = setInterval(() => {
    if (location.href !== lastUrl && send({ type: "page", page: page() })) lastUrl = location.href;
  }, PAGE_CHECK_MS);

  function flush() {
    if (!online()) return;
    if (S.ticketReq) send(Object.assign({ type: "ticket.create" }, S.ticketReq));
    if (S.token && S.endPending) {
      send({ type: "chat.end" });
      return;
    }
    if (!S.token) {
      if (S.start) send(Object.assign({ type: "chat.start" }, S.start));
      return;
    }
    if (S.state === "ended") return;
    inFlight = null;
    pump();
  }

  // Messages go one at a time, in the order typed: the next leaves when the service has
  // stored the one before (message.created). Sending them all at once let the rate limit
  // refuse some while later ones got through, so the resends arrived out of order.
  let inFlight = null; // the client_id the service has not answered yet
  let slowTimer = 0;
  function pump() {
    if (inFlight || slowTimer || !S.token || S.state === "ended") return;
    const next = S.out.find((o) => !o.failed);
    if (next && send({ type: "message.send", client_id: next.client_id, text: next.text })) {
      inFlight = next.client_id;
    }
  }
  function slowDown(ms) {
    // The service's rate limit answered: say so, wait as long as it asks, then go on.
    inFlight = null;
    clearTimeout(slowTimer);
    slowTimer = setTimeout(() => { slowTimer = 0; slowedEl.hidden = true; pump(); }, Math.max(250, ms || 1000));
    slowedEl.hidden = false;
  }

  function applyChat(c) {
    if (S.cid && c.conversation_id && c.conversation_id !== S.cid) {
      S.msgs = []; S.seq = 0; renderTranscript();
    }
    S.cid = c.conversation_id || S.cid;
    if (c.state === "ended") S.endPending = false;
    S.state = S.endPending ? "ended" : c.state || S.state;
    if (S.state !== "waiting") S.queue = null;
    S.agent = c.agent || S.agent;
    S.rated = c.rating || S.rated;
    (c.messages || []).forEach((m) => addMessage(m));
    if (S.state === "ended") dropOutbox();
  }
  function dropOutbox() {
    S.out.forEach((o) => { o.failed = true; });
    log.querySelectorAll(".msg.pending").forEach((li) => { li.classList.add("failed"); stamp(li, {}, "failed"); });
    S.out = [];
  }

  function handle(f) {
    switch (f.type) {
      case "resync":
        // The service may have missed events for us: a new hello resumes from S.seq.
        // Spread over 3 s: every visitor of the process is told at the same moment.
        setTimeout(reconnect, Math.random() * 3000);
        return;
      case "hello.ok":
        helloDone = true;
        backoff = 0;
        available = !!f.available;
        me = f.identity || null;
        if (me && me.verified) fillFromIdentity();
        // A verified person is one visitor on every device: their open chat comes with a
        // token for this one (docs/protocol.md, "Identity").
        if (f.visitor_id) VISITOR_ID = f.visitor_id;
        if (f.chat) {
          applyChat(f.chat);
          if (f.chat.token) { S.token = f.chat.token; share(); }
          if (S.state === "ended") renderEnd();
          // A chat this page found in storage (a reload, another page or tab of the site),
          // once per chat and page: later hellos are reconnects.
          else if (retrieved !== S.cid) fire("chatRetrieved", { conversation_id: S.cid });
          retrieved = S.cid;
        }
        else if (S.token) {
          // The service no longer knows this chat (expired or purged): start afresh.
          unshare(S.cid);
          S = Object.assign(fresh(), { fields: S.fields, open: S.open });
          renderTranscript();
        }
        save();
        flush();
        break;
      case "availability":
        available = !!f.available;
        break;
      case "chat.started":
        if (S.token && S.cid === f.conversation_id) break;
        if (dropStarted) { dropStarted = false; send({ type: "chat.end" }); break; }
        S.token = f.token;
        S.cid = f.conversation_id;
        retrieved = S.cid;
        S.start = null;
        share();
        tellOpener();
        // Ended by the visitor before the service answered: end it there too.
        if (S.state === "ended") send({ type: "chat.end" });
        else S.state = S.state === "active" ? "active" : "waiting";
        save();
        flush();
        fire("startChat", { conversation_id: f.conversation_id });
        // Omnichannel: "raised when the chat conversation is created and started": once per
        // queueing, not for each chat.queued after it.
        fire("chatQueued", { conversation_id: f.conversation_id });
        break;
      case "chat.queued": {
        // The chat's place in its queue (docs/protocol.md), sent again as it changes.
        const p = f.position;
        const secs = f.estimated_wait_secs;
        if (f.conversation_id !== S.cid || !S.token || S.state === "ended" || !(p >= 1 && p % 1 === 0)) break;
        // Only a transfer to a queue queues an accepted chat again: that is a new queueing.
        const again = S.state === "active";
        S.state = "waiting";
        S.queue = { position: p, minutes: secs >= 0 ? Math.max(1, Math.ceil(secs / 60)) : null };
        save();
        share();
        if (again) fire("chatQueued", { conversation_id: S.cid });
        // Omnichannel tells the place as a system message tagged queueposition (and
        // averagewaittime with the wait).
        fire("onMessageReceived", { conversation_id: S.cid, messageType: "system", content: queueText(),
          timestamp: new Date().toISOString(),
          channelData: { tags: ["system", "queueposition"].concat(S.queue.minutes ? ["averagewaittime"] : []) } });
        break;
      }
      case "chat.accepted":
        // The service posts a "… joined the chat." system message next: Omnichannel tags
        // that line agentaccepted (a transfer's join line too).
        nextTag = "agentaccepted";
        S.state = "active";
        S.queue = null;
        S.timedOut = false;
        if (f.agent) S.agent = f.agent;
        save();
        break;
      case "message.created":
        addMessage(f);
        if (f.sender && f.sender.kind !== "visitor" && (!f.conversation_id || f.conversation_id === S.cid)) { attention(f.seq); markRead(); }
        break;
      case "message.read": {
        // "Seen" under the visitor's last message the agent read (docs/protocol.md).
        let last = null;
        for (const c of log.querySelectorAll(".msg.visitor[data-seq]")) if (+c.dataset.seq <= f.seq) last = c;
        const old = log.querySelector(".seen");
        if (old) old.remove();
        if (last) last.lastChild.append(el("span", { class: "seen", tid: "seen", text: T.seen }));
        break;
      }
      case "typing":
        if (S.state === "active" || S.state === "waiting") showTyping(f.on, f.name);
        break;
      case "chat.ended":
        // A chat closeChat() already forgot.
        if (f.conversation_id && f.conversation_id !== S.cid && !S.start) break;
        S.endPending = false;
        if (S.state === "ended") { save(); break; }
        S.state = "ended";
        S.by = f.by || null;
        S.start = null;
        S.queue = null;
        unshare(S.cid);
        dropOutbox();
        save();
        renderEnd();
        fire("closeChat", { conversation_id: S.cid, by: S.by });
        // Omnichannel raises threadUpdate "when an agent ends a conversation".
        if (S.by === "agent") fire("threadUpdate", { conversation_id: S.cid, by: S.by });
        break;
      case "chat.timeout":
        // Nobody accepted in time (design.ticket_fallback): the service ended the chat;
        // offer to leave a message, with what the visitor wrote so far.
        if (f.conversation_id && f.conversation_id !== S.cid) break;
        S.timedOut = true;
        fillTicket();
        S.state = "ended";
        S.queue = null;
        dropOutbox();
        save();
        fire("closeChat", { conversation_id: S.cid, by: "timeout" });
        break;
      case "ticket.created":
        if (!S.ticketReq) break;
        S.ticketReq = null;
        S.ticket = f.ticket_number ? String(f.ticket_number) : true;
        ticketMsg.value = "";
        // A chat nobody accepted is over once the visitor left a message instead.
        if (S.token && S.state !== "ended") send({ type: "chat.end" });
        save();
        break;
      case "chat.rated":
        S.rated = f.rating;
        save();
        renderEnd();
        break;
      case "error":
        onError(f);
        break;
      default:
        return;
    }
    render();
    // The composer and the end button vanish when a chat ends: keep focus in the panel.
    const active = root.activeElement;
    if (f.type === "chat.ended" && S.open && (!active || active === endBtn || active === input)) focusView();
  }

  function onError(f) {
    if (f.code === "invalid_identity") {
      // The page's token was refused: stay anonymous, and say so (lcw:error 4).
      identity = null;
      me = null;
      notice = T.badIdentity;
      lcwError(4, f.message || "The identity token is not valid.");
      if (f.ref === "hello" && !helloDone) reconnect();
      return;
    }
    if (S.ticketReq && (f.ref === S.ticketReq.client_id || f.ref === "ticket.create")) {
      if (f.code === "rate_limited" && !(f.retry_after_ms > RETRY_WITHIN_MS)) { setTimeout(flush, Math.max(250, f.retry_after_ms || 1000)); return; }
      S.ticketReq = null;
      ticketError.textContent = f.message || T.notStarted;
      ticketError.hidden = false;
      save();
      return;
    }
    const out = S.out.find((o) => o.client_id === f.ref);
    if (out) {
      if (f.code === "rate_limited") { slowDown(f.retry_after_ms); return; }
      if (inFlight === out.client_id) { inFlight = null; setTimeout(pump, 0); }
      if (f.code === "chat_ended") return handle({ type: "chat.ended", by: null });
      out.failed = true;
      S.out = S.out.filter((o) => o !== out);
      const li = log.querySelector('.msg.pending[data-client-id="' + CSS.escape(out.client_id) + '"]');
      if (li) { li.classList.add("failed"); stamp(li, {}, "failed"); }
      save();
      return;
    }
    if (S.start && (f.ref === "chat.start" || f.ref === S.start.client_id)) {
      if (f.code === "rate_limited" && !(f.retry_after_ms > RETRY_WITHIN_MS)) { setTimeout(flush, Math.max(250, f.retry_after_ms || 1000)); return; }
      S.start = null;
      notice = f.code === "unavailable" ? T.unavailable : f.code === "login_required" ? T.login
        : f.code === "identity_mismatch" ? T.mismatch : f.message || T.notStarted;
      if (f.code === "login_required") lcwError(3, f.message || "Sign-in is required to chat.");
      if (f.code === "identity_mismatch" || f.code === "invalid_context") {
        lcwError(1, f.message || "The chat's context was refused.");
      }
      save();
      return;
    }
    if (f.code === "chat_ended" && S.token) {
      if (S.state === "ended") { S.endPending = false; save(); } else handle({ type: "chat.ended", by: null });
    }
    if (f.ref === "hello") {
      if (f.code === "not_found") { stopped = true; apiHidden = true; render(); } else if (S.token) {
        // The resume part was refused: forget the chat and say hello without it.
        unshare(S.cid);
        S = Object.assign(fresh(), { fields: S.fields });
        save();
        renderTranscript();
      }
      const sock = ws;
      ws = null;
      sock.close();
      if (!stopped) retry();
    }
  }

  // ---- actions ----
  let starting = false; // reading the context and the token before chat.start
  let pendingContext; // startChat({customContext}) waiting for the pre-chat form
  let booted = false; // lcw:ready has fired
  let dropStarted = false; // closeChat() came before chat.started: end that chat at once
  const topicId = () => (topicSelect ? topicSelect.value : TOPICS.length ? TOPICS[0].id : "");
  // The pre-chat form's Start button.
  function startChat() {
    if (!pre.reportValidity()) return;
    begin(ASK_FIELDS ? readFields(pre) : {}, topicId(), pendingContext);
  }
  // Start a chat once the context (customContext, else the page's context provider) passes
  // Omnichannel's rules and the auth token provider, if any, gave a token.
  async function begin(values, topic, custom) {
    if (S.start || starting || !available || loginNeeded()) return;
    starting = true;
    notice = null;
    render();
    let context = null;
    try {
      const provider = (ns.providers || {}).Context;
      context = checkContext(custom !== undefined ? custom : provider ? await provider() : null);
    } catch (err) {
      return refuse(1, "The context provider failed or gave an invalid context: " + ((err && err.message) || err));
    }
    if ((ns.providers || {}).AuthToken) {
      const token = await fetchToken();
      if (!token) return refuse(0);
      useToken(token);
    }
    starting = false;
    pendingContext = undefined;
    const start = { client_id: randomId(16), fields: values };
    if (topic) start.topic_id = topic;
    if (context) start.context = context;
    if (consentBox) start.consent = consentBox.checked;
    S = Object.assign(fresh(), { fields: ASK_FIELDS ? values : S.fields, topic, open: true, start });
    renderTranscript();
    save();
    flush();
    render();
    input.focus();
  }
  function refuse(code, why) {
    starting = false;
    if (code) lcwError(code, why);
    notice = T.notStarted;
    render();
  }
  // Omnichannel's context rules; throws saying which rule a variable breaks.
  function checkContext(raw) {
    if (raw == null) return null;
    if (typeof raw !== "object" || Array.isArray(raw)) throw new Error("the context must be an object");
    const names = Object.keys(raw);
    if (names.length > MAX_CONTEXT_VARS) throw new Error("more than " + MAX_CONTEXT_VARS + " variables");
    const out = {};
    for (const name of names) {
      const given = raw[name];
      const wrapped = given !== null && typeof given === "object";
      const v = wrapped ? given.value : given;
      if (!name || name.length > MAX_CONTEXT_NAME_CHARS) throw new Error("a name must be 1 to " + MAX_CONTEXT_NAME_CHARS + " characters");
      const shown = wrapped ? given.isDisplayable : true;
      if (typeof shown !== "boolean" && shown !== undefined) throw new Error(name + ": isDisplayable must be true or false");
      if (!["string", "number", "boolean"].includes(typeof v) || v !== v || v === Infinity || v === -Infinity) {
        throw new Error(name + ": a value must be a string, a number or a boolean");
      }
      if (String(v).length > MAX_CONTEXT_VALUE_CHARS) throw new Error(name + ": longer than " + MAX_CONTEXT_VALUE_CHARS + " characters");
      // A plain value, or one without isDisplayable, is shown to the agent (as the service reads it).
      out[name] = wrapped ? { value: v, isDisplayable: shown !== false } : v;
    }
    return names.length ? out : null;
  }
  // The page's auth token provider: fn(callback) calls callback(token) (a returned token or
  // promise is taken too). Resolves null after lcw:error 2 (failed) or 3 (no token).
  function fetchToken() {
    const provider = (ns.providers || {}).AuthToken;
    return new Promise((resolve) => {
      let done = !provider;
      const finish = (token, code, why) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (code) lcwError(code, why);
        resolve(code ? null : token);
      };
      const timer = setTimeout(() => finish(null, 2, "The auth token provider did not answer."), TOKEN_WAIT_MS);
      const got = (token) => (typeof token === "string" && token
        ? finish(token) : finish(null, 3, "The auth token provider gave no token."));
      const failed = (err) => finish(null, 2, "The auth token provider failed: " + ((err && err.message) || err));
      if (!provider) return resolve(null);
      try {
        const r = provider(got);
        if (r && typeof r.then === "function") r.then(got, failed);
        else if (typeof r === "string") got(r);
      } catch (err) { failed(err); }
    });
  }
  function useToken(token) {
    if (token === identity) return;
    identity = token;
    me = null;
    if (!PREVIEW) reconnect();
  }
  // setAuthTokenProvider / removeAuthTokenProvider after the widget started.
  function providerChanged(kind) {
    if (kind !== "AuthToken" || !booted) return; // before lcw:ready ends, mount reads it
    if ((ns.providers || {}).AuthToken) fetchToken().then((t) => { if (t) useToken(t); render(); });
    else if (identity) { useToken(null); render(); }
  }
  function fillFromIdentity() {
    const parts = String(me.name || "").trim().split(/\s+/);
    const known = { email: me.email, firstname: parts[0], lastname: parts.slice(1).join(" "),
      name: me.name, fullname: me.name };
    root.querySelectorAll(".field input[name]").forEach((i) => {
      const v = known[i.type === "email" ? "email" : i.name];
      if (v && !i.value) i.value = v;
    });
  }
  // The ticket form after a chat nobody accepted: the visitor's fields and messages so far.
  function fillTicket() {
    buildTicket();
    ticketForm.querySelectorAll(".field input[name]").forEach((i) => {
      if (!i.value && S.fields[i.name]) i.value = S.fields[i.name];
    });
    if (!ticketMsg.value) {
      ticketMsg.value = S.msgs.concat(S.out).filter((m) => !m.sender || m.sender.kind === "visitor")
        .map((m) => m.text).join("\n").slice(0, 4000);
    }
  }
  function createTicket() {
    if (S.ticketReq || !ticketForm.reportValidity()) return;
    ticketError.hidden = true;
    S.ticketReq = { client_id: randomId(16), fields: readFields(ticketForm),
      message: ticketMsg.value.trim() };
    save();
    flush();
    render();
  }
  function acceptInvite() {
    inviteMsg = null;
    if (inviteWindow && popOut()) render();
    else if (invitePrechat) setOpen(true);
    else sdkStartChat();
  }
  function dismissInvite() {
    inviteMsg = null;
    render();
    launcher.focus();
  }

  // ---- the chat in a window of its own (startChat({inNewWindow: true}), data-open-in-window) ----
  // The window (/widget/window/<id>) is a page of the service: this page hands it the
  // visitor and the chat by postMessage, to the service's origin only (extras.js's
  // handover() has the window's side); a chat the window starts comes back the same way,
  // so the site's tabs carry on with it. Nothing goes in a URL.
  const SERVICE_ORIGIN = new URL(ns.base).origin;
  let popup = null; // {win, custom}: the window this page opened
  let opener = null; // in the window: the origin of the site that handed over
  function popOut(custom) {
    if (WINDOW || PREVIEW) return false;
    const win = w.open(ns.base + "/widget/window/" + encodeURIComponent(WIDGET_ID), "crmchat-" + WIDGET_ID,
      "popup,width=420,height=680");
    if (!win) return false; // a popup blocker: the chat opens in the page instead
    popup = { win, custom };
    designHidden = delayed = false;
    setOpen(false, true);
    return true;
  }
  w.addEventListener("message", async (e) => {
    const m = e.data;
    if (!popup || e.source !== popup.win || e.origin !== SERVICE_ORIGIN || !m || m.widget !== WIDGET_ID) return;
    if (m.crmchat === "window") {
      let context = popup.custom;
      try {
        const provider = (ns.providers || {}).Context;
        if (context === undefined) context = provider ? await provider() : null;
      } catch (err) { context = null; } // the window's start says so (lcw:error there)
      popup.win.postMessage({ crmchat: "handover", widget: WIDGET_ID, visitor_id: VISITOR_ID, token: S.token,
        cid: S.cid, queue: S.queue, fields: S.fields, context, identity }, SERVICE_ORIGIN);
    } else if (m.crmchat === "started" && typeof m.token === "string" && adopt({ token: m.token, cid: m.cid })) {
      share();
      renderTranscript();
      render();
      reconnect();
    }
  });
  // In the window: what the site handed over (null: a window opened on its own).
  function takeOver(m) {
    if (!m) return;
    opener = m.origin;
    if (/^[A-Za-z0-9_-]{16,64}$/.test(m.visitor_id || "")) VISITOR_ID = m.visitor_id;
    if (typeof m.identity === "string" && m.identity) identity = m.identity;
    if (m.context && typeof m.context === "object") pendingContext = m.context;
    const given = m.fields && typeof m.fields === "object" ? m.fields : {};
    for (const k in given) if (typeof given[k] === "string") S.fields[k] = given[k];
    if (typeof m.token === "string" && m.token !== S.token) {
      S = Object.assign(fresh(), { fields: S.fields, token: m.token, cid: m.cid, state: "waiting", open: true,
        queue: queuePlace(m.queue) });
    }
    save();
    renderTranscript();
    pre.querySelectorAll(".field input[name]").forEach((i) => { i.value = i.value || S.fields[i.name] || ""; });
    render();
  }
  // In the window: a chat started here goes back to the site.
  function tellOpener() {
    if (opener && w.opener && !w.opener.closed) {
      w.opener.postMessage({ crmchat: "started", widget: WIDGET_ID, token: S.token, cid: S.cid }, opener);
    }
  }

  // ---- the Omnichannel SDK (window.Microsoft.Omnichannel.LiveChatWidget.SDK) ----
  function fire(name, detail) {
    if (!PREVIEW) w.dispatchEvent(new CustomEvent("lcw:" + name, { detail: detail || {} }));
  }
  function lcwError(errorCode, errorDescription) {
    fire("error", { errorCode, errorDescription });
  }
  // Reopens the chat in progress; else opens the pre-chat form, or starts at once when
  // there is nothing to ask.
  function sdkStartChat(options) {
    const custom = options && options.customContext;
    if (options && options.inNewWindow && popOut(custom)) return;
    designHidden = delayed = false;
    if (S.state === "ended" || (S.ticket && !inChat())) newChat();
    if (inChat() || !available || loginNeeded() || (ASK_FIELDS && fields.length) || topicSelect || consentBox) {
      pendingContext = custom;
      setOpen(true);
      return;
    }
    setOpen(true, true);
    begin({}, topicId(), custom);
  }
  // Ends the chat and forgets it (Omnichannel clears its cache for the chat too).
  function sdkCloseChat() {
    const live = inChat() && S.state !== "ended";
    if (S.token && live) send({ type: "chat.end" });
    else if (S.start) dropStarted = true;
    const cid = S.cid;
    unshare(cid);
    S = Object.assign(fresh(), { fields: S.fields });
    save();
    renderTranscript();
    render();
    if (live) fire("closeChat", { conversation_id: cid, by: "visitor" });
    fire("onClose");
  }
  // positionInQueue and averageWaitTime (minutes, as Omnichannel's) while the chat waits.
  function availability() {
    const q = S.state === "waiting" && S.queue;
    return { isAgentAvailable: available, isQueueAvailable: available,
      positionInQueue: q ? q.position : null, queueId: null,
      averageWaitTime: q ? q.minutes : null, nexttransitiontime: null,
      StartTimeOfNextOperatingHour: null, EndTimeOfNextOperatingHour: null };
  }
  function queueText() {
    const q = S.queue;
    return q ? fmt(q.minutes ? T.queueWait : T.queue, q) : "";
  }
  function sdkProactive(notification, showPrechat, options) {
    inviteMsg = (notification && notification.message) || DEFAULT_INVITE;
    invitePrechat = showPrechat !== false;
    inviteWindow = !!(options && options.inNewWindow);
    designHidden = delayed = false;
    render();
  }
  function sendText() {
    const text = input.value.trim();
    if (!text || S.state === "ended") return;
    const o = { client_id: randomId(16), text };
    S.out.push(o);
    save();
    log.append(nodeFor({ client_id: o.client_id, text, sender: { kind: "visitor" } }, true));
    tidyNames(log.lastChild);
    scrollDown(true);
    input.value = "";
    grow();
    stopTyping();
    pump();
    input.focus();
  }
  // Files (extras.js): checked, sent and shown there; said in the slowed line.
  function fileSaid(text) {
    slowedEl.textContent = text;
    slowedEl.hidden = !text;
  }
  const filesCtx = () => ({ base: ns.base, widgetId: WIDGET_ID, visitorId: VISITOR_ID, token: S.token,
    limits: FILES, texts: T, el, say: fileSaid, id: () => randomId(16) });
  function sendFile(f) {
    if (f && S.token && S.state !== "ended") withExtras((x) => x.sendFile(f, filesCtx()));
  }
  function endChat() {
    if (S.token && send({ type: "chat.end" })) return;
    // Offline, or the start not answered yet: end here now, and tell the service as soon as
    // the socket (or the chat token) is back (flush and chat.started).
    handle({ type: "chat.ended", by: "visitor" });
    S.endPending = !!S.token;
    save();
  }
  function confirmEnd(show) {
    confirmBox.hidden = !show;
    (show ? noBtn : endBtn.hidden ? input : endBtn).focus();
  }
  function rate(n) {
    if (S.rated) return;
    if (send({ type: "chat.rate", rating: n })) {
      S.rated = n;
      save();
      renderEnd();
    }
  }
  // The end screen (rating, the design's end texts, the transcript) is extras.js's.
  function renderEnd() {
    withExtras((x) => {
      if (S.state !== "ended") return; // a new chat began while it loaded
      x.endScreen(endBox, { end: design.end || {}, rating: design.rating !== false && !!S.token,
        rated: S.rated, rate, newChat, texts: T, el, safeUrl, transcript: S.token && !PREVIEW ? {
          base: ns.base, widgetId: WIDGET_ID, visitorId: VISITOR_ID, token: S.token,
          mail: !!(cfg.transcript && cfg.transcript.mail), email: (me && me.email) || S.fields.email || "" } : null });
      // The button that ended the chat (or the star just pressed) is gone: a keyboard user
      // goes on from the end screen, not from the top of the page.
      const at = root.activeElement;
      const gone = !at || !at.isConnected || at.closest("[hidden]") || at.disabled ||
        at === endBtn || composer.contains(at); // both hide with the chat ended
      if (S.open && gone) (endBox.querySelector("button:not(:disabled),a") || launcher).focus();
      requestAnimationFrame(() => scrollDown(true));
    });
  }
  // What the first message does not need (files, transcripts, the chat window's hand-over)
  // is in extras.js, a versioned file (cached for a year) loaded once, the first time it is.
  let extrasLoad = null;
  function withExtras(use, failed) {
    // A versioned URL on this service, nothing else (the designer's preview has none).
    const path = /^\/widget\/v\/[0-9a-f]+\/extras\.js$/.test(cfg.extras_url || "") ? cfg.extras_url : "/widget/extras.js";
    extrasLoad = extrasLoad || new Promise((ok, no) => {
      const s = el("script", { src: ns.base + path, async: true, nonce: ns.nonce || null, onload: ok, onerror: no });
      (d.head || d.documentElement).appendChild(s);
    });
    extrasLoad.then(() => { if (ns.extras) use(ns.extras); }, () => { extrasLoad = null; if (failed) failed(); });
  }
  function newChat() {
    S = Object.assign(fresh(), { fields: S.fields, open: true });
    save();
    renderTranscript();
    render();
    focusView();
  }

  // typing, both ways
  let typingOn = false;
  let typingTimer = 0;
  let typingShownTimer = 0;
  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingOn) { typingOn = false; if (S.token) send({ type: "typing", on: false }); }
  }
  function showTyping(on, name) {
    clearTimeout(typingShownTimer);
    typingEl.hidden = !on;
    typingEl.textContent = on ? fmt(T.typing, { name: name || (S.agent && S.agent.name) || "" }).trim() : "";
    if (on) { typingShownTimer = setTimeout(() => { typingEl.hidden = true; }, TYPING_SHOWN_MS); scrollDown(); }
  }
  function grow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  }
  input.addEventListener("input", () => {
    grow();
    if (!S.token) return;
    if (!typingOn && input.value.trim()) { typingOn = send({ type: "typing", on: true }); }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendText();
    }
  });
  function showPicker(show) {
    picker.hidden = !show;
    if (emojiBtn) emojiBtn.setAttribute("aria-expanded", String(show));
  }
  function togglePicker() {
    showPicker(picker.hidden);
    if (!picker.hidden) picker.firstChild.focus();
  }
  function insertEmoji(e) {
    input.focus();
    const at = input.selectionStart == null ? input.value.length : input.selectionStart;
    input.setRangeText(e, at, input.selectionEnd == null ? at : input.selectionEnd, "end");
    showPicker(false);
    input.dispatchEvent(new Event("input"));
  }
  panel.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (!confirmBox.hidden) confirmEnd(false);
    else if (!picker.hidden) { showPicker(false); input.focus(); }
    else setOpen(false);
  });

  // The first time in a session the widget shows (after design.delay_ms), the design's
  // initial_state applies: "open" opens the panel, without taking focus from the page.
  function reveal() {
    delayed = false;
    if (!S.shown) {
      S.shown = true;
      if (design.initial_state === "open" && available && !designHidden && !apiHidden) setOpen(true, true);
      save();
    }
    render();
  }

  function showSample() {
    const at = new Date().toISOString();
    const agent = { kind: "agent", name: "Alex" };
    S.open = true;
    if (PREVIEW !== "chat" && PREVIEW !== "ended") return;
    Object.assign(S, { token: "preview", state: PREVIEW === "ended" ? "ended" : "active",
      agent: { name: "Alex" }, fields: { firstname: "Ann", lastname: "Lee" }, msgs: [
        { seq: 1, sender: { kind: "system" }, text: "Alex joined the chat.", sent_at: at },
        { seq: 2, sender: agent, text: "Hello! How can I help you today?", sent_at: at },
        { seq: 3, sender: { kind: "visitor" }, text: "Do you ship to Norway? 🚲", sent_at: at },
        { seq: 4, sender: agent, text: "We do, in 3–5 days.", sent_at: at }] });
  }

  // ---- start ----
  function mount() {
    d.body.append(host);
    applyDesign();
    if (PREVIEW) showSample();
    renderTranscript();
    if (S.state === "ended") renderEnd();
    render();
    setTimeout(reveal, delayed ? design.delay_ms : 0);
    if (!PREVIEW && PROACTIVE.enabled && !store("sessionStorage", KEY + ":invited")) {
      setTimeout(() => { inviteDue = true; render(); }, (PROACTIVE.delay_secs || 0) * 1000);
    }
    ns.close = () => setOpen(false);
    ns.toggle = () => setOpen(!S.open);
    ns.show = () => { apiHidden = designHidden = delayed = false; render(); };
    ns.open = () => { ns.show(); setOpen(true); };
    ns.hide = () => { apiHidden = true; render(); };
    const sdk = PREVIEW ? {} : omnichannelSdk();
    Object.assign(sdk, {
      startChat: sdkStartChat,
      closeChat: sdkCloseChat,
      // lcw:getAgentAvailability: "raised when the getAgentAvailability method returns".
      getAgentAvailability: () => {
        const a = availability();
        fire("getAgentAvailability", a);
        return Promise.resolve(a);
      },
      startProactiveChat: sdkProactive,
    });
    ns.onProvider = providerChanged;
    (ns.q || []).splice(0).forEach((c) => {
      const sdkCall = c[0].startsWith("sdk:") && c[0].slice(4);
      const fn = sdkCall ? sdk[sdkCall] : ns[c[0]];
      const result = fn ? fn.apply(sdkCall ? sdk : ns, c[1]) : undefined;
      if (c[2]) c[2](result);
    });
    w.dispatchEvent(new CustomEvent("crmchat:ready", { detail: { widget_id: WIDGET_ID } }));
    fire("ready");
    booted = true;
    if (PREVIEW) return;
    // Connect after lcw:ready, whose listeners usually set the providers: a token provider's
    // token then goes in the first hello instead of a second connection.
    if (WINDOW) {
      d.title = design.title || d.title;
      setOpen(true, true);
      withExtras((x) => x.handover(WIDGET_ID, design.allowed_domains).then((m) => { takeOver(m); connect(); }), connect);
    } else if ((ns.providers || {}).AuthToken) fetchToken().then((t) => { if (t && !identity) identity = t; connect(); });
    else connect();
  }
  // The SDK object loader.js made (with the provider methods).
  // A page that removed the widget (a single-page site re-rendering its body) and adds the
  // script tag again gets a fresh widget: loader.js asks gone(), then destroy()s this one.
  ns.gone = () => !host.isConnected;
  ns.destroy = () => {
    stopped = true;
    [retryTimer, deadTimer].forEach(clearTimeout);
    [pinger, pageChecker, flashTimer].forEach(clearInterval);
    if (vv) ["resize", "scroll"].forEach((e) => vv.removeEventListener(e, fitViewport));
    const sock = ws;
    ws = null;
    try { if (sock) sock.close(); } catch (e) { /* already gone */ }
    host.remove();
  };
  function omnichannelSdk() {
    let o = w.Microsoft = w.Microsoft || {};
    o = o.Omnichannel = o.Omnichannel || {};
    o = o.LiveChatWidget = o.LiveChatWidget || {};
    return (o.SDK = o.SDK || {});
  }
  if (d.body) mount();
  else d.addEventListener("DOMContentLoaded", mount);

  function styles() {
    return `
:host{all:initial}
.w{--p:#0f6cbd;--pt:#fff;--bg:#fff;--tx:#1b1b1f;--mu:#6b6f76;--ln:#e3e5e8;--soft:#f2f4f7;
--vb:var(--p);--vt:var(--pt);--ab:#f0f0f0;--at:var(--tx);--f:${SYSTEM_FONTS};
font:15px/1.4 var(--f);color:var(--tx);text-align:start;-webkit-font-smoothing:antialiased}
.w[hidden],[hidden]{display:none!important}
*,*::before,*::after{box-sizing:border-box}
button,input,select,textarea{font:inherit;color:inherit}
button{cursor:pointer}
:focus-visible{outline:2px solid var(--p);outline-offset:2px}
svg{width:24px;height:24px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
.sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.launcher{position:fixed;z-index:2147483000;right:20px;bottom:20px;width:60px;height:60px;border:0;border-radius:50%;
background:var(--p);color:var(--pt);display:grid;place-items:center;box-shadow:0 6px 24px rgba(0,0,0,.22);transition:transform .15s}
.left .launcher{right:auto;left:20px}
.launcher:hover{transform:scale(1.06)}
.launcher svg{width:28px;height:28px;grid-area:1/1}
.launcher svg:last-of-type,.open .launcher svg:first-of-type{display:none}
.open .launcher svg:last-of-type{display:block}
.badge{position:absolute;top:-2px;inset-inline-end:-2px;min-width:20px;height:20px;padding:0 5px;border-radius:10px;
background:#d13438;color:#fff;font-size:12px;font-weight:600;line-height:20px;text-align:center}
.panel{position:fixed;z-index:2147483000;right:20px;bottom:92px;width:380px;height:min(620px,calc(100vh - 112px));
display:flex;flex-direction:column;background:var(--bg);border-radius:16px;overflow:hidden;
box-shadow:0 12px 48px rgba(0,0,0,.24);animation:up .18s ease-out}
.left .panel{right:auto;left:20px}
@keyframes up{from{opacity:0;transform:translateY(12px)}}
@media (prefers-reduced-motion:reduce){.panel{animation:none}.launcher{transition:none}}
header{display:flex;align-items:center;gap:10px;padding-block:14px;padding-inline:18px 12px;background:var(--p);color:var(--pt)}
.who{flex:1;min-width:0}
.title{margin:0;font-size:17px;font-weight:600;line-height:1.25;overflow-wrap:anywhere}
.status{margin:2px 0 0;font-size:13px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.status:empty{display:none}
.avatar{flex:none;width:40px;height:40px;border-radius:50%;overflow:hidden;display:grid;place-items:center;
background:rgba(255,255,255,.25);font-weight:600}
.avatar img{width:100%;height:100%;object-fit:cover}
.hbtn{flex:none;border:0;background:transparent;color:inherit;border-radius:8px;padding:6px;display:grid;place-items:center}
.hbtn:hover{background:rgba(255,255,255,.18)}
.hbtn.end{font-size:13px;font-weight:600;padding:6px 10px;border:1px solid currentColor}
.body{flex:1;min-height:0;display:flex;flex-direction:column;position:relative}
.pre{padding:20px 18px;overflow:auto;display:flex;flex-direction:column;gap:14px}
.field{display:flex;flex-direction:column;gap:5px}
label{font-size:13px;font-weight:600;color:var(--tx)}
.req{color:#c50f1f}
.consent{display:flex;gap:8px;align-items:flex-start;margin:0 0 12px}.consent input{margin-top:3px}
.field input,.field textarea,.field select{width:100%;padding:10px 12px;border:1px solid var(--ln);border-radius:10px;background:var(--bg);resize:vertical}
.field input:focus,.field textarea:focus{border-color:var(--p);outline:0;box-shadow:0 0 0 3px color-mix(in srgb,var(--p) 20%,transparent)}
.primary,.secondary{border-radius:10px;padding:11px 16px;font-weight:600;border:1px solid var(--p)}
.primary{background:var(--p);color:var(--pt)}
.secondary{background:transparent;color:var(--p)}
.primary:disabled{opacity:.5;cursor:default}
.pre h3{margin:0;font-size:17px}
.ticketnote{margin:0;color:var(--mu);font-size:14px}
.done{margin:0;padding:24px 18px;font-weight:600;text-align:center}
.body>.error{margin:14px 18px 0}
.invite{position:fixed;z-index:2147483000;right:20px;bottom:92px;max-width:300px;display:flex;align-items:flex-start;gap:4px;
padding-block:12px;padding-inline:16px 8px;border-radius:16px 16px 4px 16px;background:var(--bg);color:var(--tx);box-shadow:0 8px 30px rgba(0,0,0,.22);animation:up .18s ease-out}
.left .invite{right:auto;left:20px;border-radius:16px 16px 16px 4px}
.invmsg{flex:1;border:0;background:transparent;text-align:start;padding:0;font-weight:600}
.invx{flex:none;border:0;background:transparent;color:var(--mu);font-size:20px;line-height:1;padding:0 6px;border-radius:6px}
.invx:hover{background:var(--soft)}
.error{margin:0;padding:10px 12px;border-radius:10px;background:#fdf3f4;color:#a4262c;font-size:14px}
.log{flex:1;min-height:0;margin:0;padding:16px 14px 8px;list-style:none;overflow-y:auto;display:flex;flex-direction:column;gap:2px}
.msg{display:flex;flex-direction:column;align-items:flex-start;max-width:82%;margin-top:10px}
.msg.cont{margin-top:2px}
.msg.cont .from{display:none}
.from{font-size:12px;color:var(--mu);margin:0 0 3px;margin-inline-start:4px}
.bubble{padding:9px 13px;border-radius:16px;border-end-start-radius:4px;background:var(--ab);color:var(--at);white-space:pre-wrap;overflow-wrap:anywhere}
.bubble a{color:inherit}
.meta{font-size:11px;color:var(--mu);margin:3px 4px 0}
.seen::before{content:" · "}
.meta:empty{display:none}
.visitor{align-self:flex-end;align-items:flex-end}
.visitor .bubble{background:var(--vb);color:var(--vt);border-radius:16px;border-end-end-radius:4px}
.pending .bubble{opacity:.6}
.failed .bubble{opacity:1;background:#fdf3f4;color:#a4262c}
.failed .meta{color:#a4262c}
.system{align-self:center;align-items:center;max-width:90%}
.system .meta{display:none}
.system .bubble{background:transparent;color:var(--mu);font-size:13px;padding:2px 8px;text-align:center}
.queue{margin:10px 14px 0;padding:8px 12px;border-radius:10px;background:var(--soft);font-size:14px;text-align:center}
.typing{margin:0;padding:2px 18px 6px;font-size:13px;color:var(--mu);font-style:italic}
.composer{display:flex;align-items:flex-end;gap:6px;padding:10px;border-top:1px solid var(--ln)}
.composer textarea{flex:1;min-height:40px;max-height:120px;padding:9px 12px;border:1px solid var(--ln);border-radius:20px;resize:none;background:var(--bg)}
.composer textarea:focus{border-color:var(--p);outline:0}
.emo,.send{flex:none;width:40px;height:40px;border:0;border-radius:50%;display:grid;place-items:center;background:transparent;color:var(--mu)}
.emo:hover{background:var(--soft)}
.thumb{display:block;max-width:200px;max-height:150px;border-radius:6px;margin-bottom:4px}
.file{color:inherit}
.send{background:var(--p);color:var(--pt)}
.send svg{width:20px;height:20px;fill:currentColor;stroke:none}
[dir=rtl] .send svg{transform:scaleX(-1)}
.picker{display:grid;grid-template-columns:repeat(8,1fr);gap:2px;padding:8px;border-top:1px solid var(--ln)}
.picker button{border:0;background:transparent;border-radius:8px;font-size:20px;padding:4px 0}
.picker button:hover{background:var(--soft)}
.endbox{padding:16px 18px 20px;border-top:1px solid var(--ln);display:flex;flex-direction:column;align-items:center;gap:10px;text-align:center}
.endbox h3{margin:4px 0 0;font-size:16px}
.endbox p{margin:0}
.ratelabel{font-weight:600}
.endnote{color:var(--mu);font-size:13px}
.stars{display:flex;gap:4px}
.stars button{border:0;background:transparent;font-size:30px;line-height:1;padding:2px;color:#c8ccd1}
.stars:not(.done):hover button,.stars .on{color:#f5a623}
.stars:not(.done) button:hover~button{color:#c8ccd1}
.stars button:disabled{cursor:default}
.endlink{color:var(--p);font-weight:600}
.confirm{position:absolute;inset:0;background:rgba(0,0,0,.35);display:grid;place-items:center;padding:24px}
.card{background:var(--bg);border-radius:14px;padding:20px;width:100%;box-shadow:0 8px 30px rgba(0,0,0,.2)}
.card p{margin:0 0 16px;font-weight:600}
.row{display:flex;gap:8px;justify-content:flex-end}
.lp-left .field{flex-direction:row;align-items:center;gap:10px}
.lp-left .field label{flex:0 0 34%}
.sq .panel{border-radius:4px}
.sq .invite,.sq .bubble,.sq .field input,.sq .field textarea,.sq .composer textarea,.sq .primary,.sq .secondary,.sq .card,.sq .error{border-radius:3px}
.mobile .panel,.window .panel{inset:0;width:auto;height:auto;border-radius:0}
.window .launcher{display:none}
.w.mobile.open .launcher,.mobile header,.nomin .min{display:none}
@media (max-width:480px){
.panel{inset:0;width:auto;height:auto;border-radius:0}
.left .panel{left:0}
.open .launcher{display:none}
.field input,.field textarea,.composer textarea{font-size:16px}}
`;
  }
})(window, document);
