// CRM Chat widget extras: what the first message does not need, loaded by widget.js the
// first time one of these is (so the first message never pays for it):
//
// Files (docs/agent-workspace.md, "Attachments"): the design's limits are checked here
// before anything is sent, and by the service again; a file in the chat is read with the
// chat's token in the body (never the URL) and shown as a blob: URL.
//
// Transcript: "Download transcript" asks POST /api/widgets/<id>/transcript with the chat's
// resume token in the body (never the URL) and saves the plain-text answer as a file;
// "Email transcript" (only when the service can send mail: config.transcript.mail) asks
// .../transcript/mail with the address the visitor typed. docs/protocol.md, "Transcripts".
//
// The chat window (/widget/window/<id>, startChat({inNewWindow: true})): handover() waits
// for the page that opened the window to hand over its visitor and chat.
//
// Text only ever reaches the page through textContent.
"use strict";
(function (w, d) {
  const ns = w.CRMChat;
  if (!ns || ns.extras) return;
  const DEFAULT_TEXTS = {
    transcriptDownload: "Download transcript",
    transcriptEmail: "Email transcript",
    transcriptEmailLabel: "Your email address",
    transcriptSend: "Send",
    transcriptSent: "The transcript is on its way to {email}.",
    transcriptFailed: "The transcript could not be sent. Please try again later.",
    transcriptBadEmail: "Please enter a valid email address.",
    transcriptTooMany: "Too many requests. Please try again later.",
    fileType: "Only these files can be sent: {types}.",
    fileSize: "The file is larger than {kb} KB.", fileFailed: "The file was not sent: {why}",
  };
  const EMAIL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/;
  const fmt = (s, v) => String(s).replace(/\{(\w+)\}/g,
    (m, k) => (Object.prototype.hasOwnProperty.call(v, k) ? v[k] : ""));

  // ctx: {base, widgetId, visitorId, token, mail, email, texts, el, conversationId}
  function transcript(slot, ctx) {
    const T = Object.assign({}, DEFAULT_TEXTS, ctx.texts || {});
    const el = ctx.el;
    const url = ctx.base + "/api/widgets/" + encodeURIComponent(ctx.widgetId) + "/transcript";
    const post = (path, body) => fetch(url + path, {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ visitor_id: ctx.visitorId, token: ctx.token }, body)),
    });
    const status = el("p", { class: "endnote", role: "status", tid: "transcript-status" });
    const say = (text) => { status.textContent = text; };
    const failed = (r) => say(r && r.status === 429 ? T.transcriptTooMany : T.transcriptFailed);

    async function download() {
      try {
        const r = await post("", {});
        if (!r.ok) return failed(r);
        const blob = await r.blob();
        const href = URL.createObjectURL(blob);
        const a = el("a", { href, download: "chat-transcript.txt", hidden: true });
        slot.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(href), 60000);
      } catch (e) { failed(null); }
    }
    slot.append(el("button", { class: "secondary", type: "button", tid: "transcript-download",
      text: T.transcriptDownload, onclick: download }));

    if (ctx.mail) {
      const id = "crmchat-transcript-email";
      const input = el("input", { id, type: "email", name: "email", maxlength: 254,
        autocomplete: "email", required: true, tid: "transcript-email" });
      input.value = ctx.email || "";
      const form = el("form", { class: "transcriptmail", hidden: true, novalidate: true },
        el("div", { class: "field" }, el("label", { for: id, text: T.transcriptEmailLabel }), input),
        el("button", { class: "secondary", type: "submit", tid: "transcript-send", text: T.transcriptSend }));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const email = input.value.trim();
        if (!EMAIL.test(email)) { input.setAttribute("aria-invalid", "true"); return say(T.transcriptBadEmail); }
        input.removeAttribute("aria-invalid");
        say("");
        try {
          const r = await post("/mail", { email });
          if (!r.ok) return failed(r);
          form.hidden = true;
          say(fmt(T.transcriptSent, { email }));
        } catch (err) { failed(null); }
      });
      const open = el("button", { class: "secondary", type: "button", tid: "transcript-mail",
        text: T.transcriptEmail, "aria-expanded": "false",
        onclick: () => {
          form.hidden = !form.hidden;
          open.setAttribute("aria-expanded", String(!form.hidden));
          if (!form.hidden) input.focus();
        } });
      slot.append(open, form);
    }
    slot.append(status);
  }

  // ---- files ----
  // ctx: {base, widgetId, visitorId, token, limits: design.attachments, texts, el, say, id}
  const filesUrl = (ctx) => ctx.base + "/api/widgets/" + encodeURIComponent(ctx.widgetId) + "/files";
  function fileProblem(f, limits, T) {
    const types = limits.types || [];
    const ext = f.name.includes(".") ? f.name.split(".").pop().toLowerCase() : "";
    if (!types.includes(ext)) return fmt(T.fileType, { types: types.join(", ") });
    if (!f.size || f.size > limits.max_kb * 1024) return fmt(T.fileSize, { kb: limits.max_kb });
    return "";
  }
  async function sendFile(f, ctx) {
    const T = Object.assign({}, DEFAULT_TEXTS, ctx.texts);
    const problem = fileProblem(f, ctx.limits || {}, T);
    if (problem) return ctx.say(f.name + ": " + problem);
    ctx.say("");
    const form = new FormData();
    for (const [k, v] of [["visitor_id", ctx.visitorId], ["token", ctx.token], ["client_id", ctx.id()]]) form.append(k, v);
    form.append("file", f, f.name);
    try {
      const r = await fetch(filesUrl(ctx), { method: "POST", credentials: "omit", body: form });
      if (!r.ok) throw new Error(((await r.json().catch(() => ({}))).error || {}).message || r.status);
    } catch (e) {
      ctx.say(fmt(T.fileFailed, { why: e.message }));
    }
  }
  const fileUrls = {};
  function fileUrl(a, ctx) {
    fileUrls[a.id] = fileUrls[a.id] || fetch(filesUrl(ctx) + "/" + encodeURIComponent(a.id), {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ visitor_id: ctx.visitorId, token: ctx.token }),
    }).then((r) => (r.ok ? r.blob() : Promise.reject(r.status))).then((b) => URL.createObjectURL(b));
    return fileUrls[a.id];
  }
  function fileView(a, ctx) {
    const el = ctx.el;
    const link = el("a", { class: "file", tid: "attachment", href: "#", download: a.name,
      text: "📎 " + a.name + " (" + Math.ceil((a.size || 0) / 1024) + " KB)" });
    fileUrl(a, ctx).then((u) => { link.href = u; }, () => {});
    if (!/^image\/(png|jpeg|gif|webp)$/.test(a.type)) return link;
    const img = el("img", { alt: a.name, tid: "attachment-preview", class: "thumb" });
    fileUrl(a, ctx).then((u) => { img.src = u; }, () => img.remove());
    return el("span", {}, img, link);
  }

  // ---- the chat window ----
  // The window is a page of the service, so it cannot read the site's storage: the page
  // that opened it posts its visitor id, chat token, fields, context and identity token,
  // addressed to the service's origin only. Resolves with that (checked here: it comes
  // from the opener, names this widget, and the opener's site is one of the widget's
  // allowed domains) or null after WAIT_MS (a window opened on its own).
  const HANDOVER_WAIT_MS = 3000;
  function handover(widgetId, allowed) {
    return new Promise((done) => {
      const opener = w.opener;
      if (!opener) return done(null);
      setTimeout(() => done(null), HANDOVER_WAIT_MS);
      w.addEventListener("message", (e) => {
        const m = e.data;
        if (e.source !== opener || !m || m.crmchat !== "handover" || m.widget !== widgetId) return;
        done(allowedSite(e.origin, allowed || []) ? Object.assign({}, m, { origin: e.origin }) : null);
      });
      // Nothing secret in it: the opener answers only a window at the service's origin.
      opener.postMessage({ crmchat: "window", widget: widgetId }, "*");
    });
  }
  // As design.py's allows_origin: no list, any site; "*.example.com" its subdomains.
  function allowedSite(origin, allowed) {
    const host = new URL(origin).hostname.toLowerCase();
    return !allowed.length || allowed.some((p) => (p.startsWith("*.")
      ? host.endsWith(p.slice(1)) && host.length > p.length - 1 : host === p));
  }

  // ---- the end screen ----
  // ctx: {end: design.end, rating, rated, rate(n), newChat(), texts, el, safeUrl, transcript}
  function endScreen(box, ctx) {
    const el = ctx.el;
    const T = ctx.texts;
    const end = ctx.end;
    box.replaceChildren();
    if (ctx.rating) {
      const stars = el("div", { class: "stars" + (ctx.rated ? " done" : ""), role: "group",
        "aria-labelledby": "crmchat-rate", tid: "rating" });
      for (let n = 1; n <= 5; n++) {
        stars.append(el("button", { type: "button", text: "★", tid: "star-" + n,
          class: n <= ctx.rated ? "on" : null, disabled: !!ctx.rated,
          "aria-label": fmt(T.star, { n }), "aria-pressed": String(n === ctx.rated),
          onclick: () => ctx.rate(n) }));
      }
      box.append(el("p", { id: "crmchat-rate", class: "ratelabel", text: ctx.rated ? T.thanks : T.rate }), stars);
    }
    if (end.title) box.append(el("h3", { tid: "end-title", text: end.title }));
    const link = end.type === "link" && end.link ? ctx.safeUrl(end.link) : null;
    if (link) {
      box.append(el("a", { class: "endlink", href: link, target: "_blank",
        rel: "noopener noreferrer", tid: "end-link", text: end.text || link }));
    } else if (end.text) {
      box.append(el("p", { class: "endtext", tid: "end-text", text: end.text }));
    }
    if (end.note) box.append(el("p", { class: "endnote", tid: "end-note", text: end.note }));
    if (ctx.transcript) {
      const slot = el("div", { class: "extras", tid: "extras" });
      box.append(slot);
      transcript(slot, Object.assign({ texts: T, el }, ctx.transcript));
    }
    box.append(el("button", { class: "secondary", type: "button", tid: "new-chat",
      text: T.newChat, onclick: ctx.newChat }));
  }

  ns.extras = { endScreen, transcript, sendFile, fileView, handover, texts: DEFAULT_TEXTS };
})(window, document);
