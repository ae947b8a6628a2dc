// CRM Chat widget extras: what a visitor needs only after a chat, loaded by widget.js when
// the end screen first shows (so the first message never pays for it).
//
// Transcript: "Download transcript" asks POST /api/widgets/<id>/transcript with the chat's
// resume token in the body (never the URL) and saves the plain-text answer as a file;
// "Email transcript" (only when the service can send mail: config.transcript.mail) asks
// .../transcript/mail with the address the visitor typed. docs/protocol.md, "Transcripts".
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

  ns.extras = { transcript };
})(window, document);
