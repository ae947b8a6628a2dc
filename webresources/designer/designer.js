// CRM Chat widget designer: edits one widget's design, name, switch and topics, with a live
// preview of the real widget (widget.js in preview mode, in an iframe). Opened from a widget
// record: the record id comes in the `data` (Xrm.Navigation.navigateTo) or `id` (a form's
// web resource) query parameter. Signs in by the handshake (../common/signin.js) and saves
// through PUT /api/admin/widgets/<id>. Typed text only ever goes into textContent or value.
"use strict";

(function () {
  const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const HEX = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
  const FONTS = ["Segoe UI", "Arial", "Calibri", "Cambria", "Candara", "Consolas", "Constantia",
    "Corbel", "Courier New", "Georgia", "Tahoma", "Times New Roman", "Trebuchet MS", "Verdana"];
  const COLOR_LABELS = {
    primary: "Header and buttons", primary_text: "Text on header and buttons",
    background: "Background", text: "Text", visitor_bubble: "Visitor's bubbles",
    visitor_text: "Visitor's text", agent_bubble: "Agent's bubbles", agent_text: "Agent's text",
  };
  // Options this page lays out by hand; any other option design.py has is drawn generically.
  const HANDLED = new Set(["title", "fields", "display_name_template", "start_button",
    "send_button", "show_agent_image", "emoji", "confirm_end", "rating", "end", "colors",
    "font", "label_position", "corners", "position", "initial_state", "delay_ms",
    "allowed_domains", "operating_hours", "language", "translations"]);
  // The design's own texts a translation may give (connector/crm/design.py,
  // DESIGN_TEXT_KEYS); the widget's other texts come from the preview (defaultTexts).
  const DESIGN_TEXTS = ["title", "start_button", "send_button", "confirm_end.message",
    "confirm_end.yes", "confirm_end.no", "end.title", "end.text", "end.note", "proactive.message",
    "ticket_fallback.title", "ticket_fallback.text", "ticket_fallback.button",
    "operating_hours.reply_time"];
  const LANGUAGE_TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/;
  const LABELS = {
    require_login: "Require login (only identified visitors may chat)",
    auth_key_url: "Public key URL (the site's RS256 sign-in tokens; PEM or JWKS)",
    sound: "Play a sound for new messages while the chat is minimized",
    ask_name_email: "Ask for name and email before the chat starts",
    proactive: "Proactive chat invitation",
    ticket_fallback: "Leave a message when nobody answers (ticket fallback)",
    enabled: "On", accept_timeout_secs: "Wait for an agent (seconds)",
    inactive_close_secs: "Close a chat this long after its visitor left (seconds)",
    delay_ms: "Delay (milliseconds)", delay_secs: "Delay (seconds)", message: "Message",
    title: "Title", text: "Text",
    button: "Button",
    privacy: "Privacy", mask_ip: "Keep only the network part of visitors' IP addresses",
    retention_days: "Delete chats and their notes this many days after they end (0: keep them)",
    consent_required: "Ask the visitor to agree before the chat starts (a checkbox)",
    consent_text: "Consent text (stored with the chat)",
    attachments: "Files in the chat (both ways)", max_kb: "Largest file (KB, at most 5120)",
    types: "File types allowed: one extension a line (programs and scripts never are)",
    masking_rules: "Masking rules: one regular expression (RE2) a line; agents and the transcript see matches as *",
  };
  const PREVIEW_DEBOUNCE_MS = 150;

  const $ = (id) => document.getElementById(id);
  const form = $("design-form");
  const result = $("result");
  let session = null;
  let widget = null; // the widget as the API answered it, with the edits applied
  let screen = "pre";
  let previewTimer = 0;
  let previewLanguage = ""; // the translation the preview shows ("": the design's texts)
  let widgetTexts = null; // the widget's own texts, as the preview's widget.js has them
  let drawLanguages = null;
  let inputSeq = 0;

  // `data` is "<id>" (Design) or "<id>|script" (the form's Generate Script command).
  function recordId() {
    const params = new URLSearchParams(location.search);
    for (const name of ["data", "id"]) {
      const value = (params.get(name) || "").split("|")[0].replace(/[{}]/g, "").trim().toLowerCase();
      if (GUID.test(value)) return value;
    }
    return null;
  }

  function scriptAsked() {
    return /\|script$/.test(new URLSearchParams(location.search).get("data") || "");
  }

  function show(el, text, tone) {
    el.textContent = text;
    el.classList.remove("ok", "bad");
    if (tone) el.classList.add(tone);
  }

  function el(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const key in props || {}) {
      const value = props[key];
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key === "value") node.value = value;
      else if (key === "checked") node.checked = !!value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const kid of kids) if (kid != null) node.append(kid);
    return node;
  }

  const humanize = (key) => LABELS[key] || (key.charAt(0).toUpperCase() + key.slice(1)).replace(/_/g, " ");

  // ----- reading and writing the design by path ("colors.primary") ----------------------

  function get(path) {
    return path.split(".").reduce((at, key) => (at == null ? undefined : at[key]), widget.design);
  }
  function set(path, value) {
    const keys = path.split(".");
    const last = keys.pop();
    let at = widget.design;
    for (const key of keys) at = at[key];
    at[last] = value;
    changed();
  }
  const inputId = (path) => "d-" + path.replace(/[^a-z0-9_]/gi, "-");

  function changed() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(renderPreview, PREVIEW_DEBOUNCE_MS);
  }

  // ----- form controls --------------------------------------------------------------------

  function row(path, label, control, extraClass) {
    control.id = control.id || inputId(path);
    control.dataset.path = path;
    const lab = el("label", { for: control.id, text: label });
    return extraClass === "check"
      ? el("div", { class: "row check" }, control, lab)
      : el("div", { class: "row" }, lab, control);
  }

  function text(path, label, opts) {
    const o = opts || {};
    const input = el(o.multiline ? "textarea" : "input", {
      type: o.multiline ? null : (o.type || "text"), value: get(path) == null ? "" : get(path),
      maxlength: o.max, rows: o.multiline ? 2 : null, placeholder: o.placeholder,
      oninput: (e) => set(path, o.nullWhenEmpty && !e.target.value ? null : e.target.value),
    });
    return row(path, label, input);
  }

  function number(path, label, min, max) {
    const input = el("input", {
      type: "number", min, max, step: 1, value: String(get(path)),
      oninput: (e) => set(path, e.target.value === "" ? 0 : Number(e.target.value)),
    });
    return row(path, label, input);
  }

  function check(path, label) {
    const input = el("input", {
      type: "checkbox", checked: get(path), onchange: (e) => set(path, e.target.checked),
    });
    return row(path, label, input, "check");
  }

  // A list of patterns, one a line; the service checks each when the design is saved.
  function patternLines(path, label) {
    const input = el("textarea", { rows: 3, spellcheck: "false", text: (get(path) || []).join("\n"),
      oninput: (e) => set(path, e.target.value.split("\n").map((l) => l.trim()).filter(Boolean)) });
    return row(path, label, input);
  }

  function select(path, label, options, onchange) {
    const input = el("select", {
      onchange: (e) => { set(path, e.target.value); if (onchange) onchange(); },
    }, ...options.map(([value, name]) => el("option", { value, text: name })));
    input.value = get(path);
    return row(path, label, input);
  }

  function color(path, label) {
    const sixDigits = (v) => (v.length === 4 ? "#" + [...v.slice(1)].map((c) => c + c).join("") : v);
    const picker = el("input", { type: "color", value: sixDigits(get(path)), "aria-label": label + " (picker)" });
    const hex = el("input", {
      type: "text", value: get(path), maxlength: 7, spellcheck: "false", autocomplete: "off",
      pattern: "#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})",
    });
    const problem = el("p", { class: "problem", hidden: true, text: "Use #rgb or #rrggbb, e.g. #0f6cbd." });
    hex.addEventListener("input", () => {
      const ok = HEX.test(hex.value.trim());
      hex.setAttribute("aria-invalid", String(!ok));
      problem.hidden = ok;
      if (ok) {
        picker.value = sixDigits(hex.value.trim().toLowerCase());
        set(path, hex.value.trim().toLowerCase());
      }
    });
    picker.addEventListener("input", () => {
      hex.value = picker.value;
      hex.setAttribute("aria-invalid", "false");
      problem.hidden = true;
      set(path, picker.value);
    });
    hex.id = inputId(path);
    hex.dataset.path = path;
    return el("div", { class: "row" }, el("label", { for: hex.id, text: label }),
      el("span", { class: "color" }, picker, hex), problem);
  }

  function group(title, ...kids) {
    return el("fieldset", null, el("legend", { text: title }), ...kids);
  }

  // ----- the sections ---------------------------------------------------------------------

  function widgetSection() {
    return group("Widget",
      row("widget.name", "Name (internal only)", el("input", {
        type: "text", value: widget.name, maxlength: 100, required: true,
        oninput: (e) => { widget.name = e.target.value; },
      })),
      row("widget.enabled", "Enabled (shown on sites)", el("input", {
        type: "checkbox", checked: widget.enabled,
        onchange: (e) => { widget.enabled = e.target.checked; },
      }), "check"));
  }

  function displaySection() {
    return group("Chat display",
      text("title", "Title", { max: 100 }),
      templateRow(),
      text("start_button", "Start button text", { max: 40 }),
      // The widget's send button is an icon: this text is its name for screen readers and
      // its tooltip, so the label says so rather than promising visible text.
      text("send_button", "Send button label (read by screen readers, shown as its tooltip; the button is an icon)", { max: 40 }),
      select("font", "Font", FONTS.map((f) => [f, f])),
      select("label_position", "Label position",
        [["above", "Above the input"], ["left", "Left of the input"], ["inside", "Inside the input"]]),
      select("corners", "Corners", [["rounded", "Rounded"], ["square", "Square"]]),
      select("position", "Position on the page", [["bottom-right", "Bottom right"], ["bottom-left", "Bottom left"]]),
      check("show_agent_image", "Show the agent's picture"),
      fieldsEditor());
  }

  function templateRow() {
    const wrap = text("display_name_template", "Visitor's display name", { max: 200 });
    const input = wrap.querySelector("input");
    const inserts = el("div", { class: "inserts", id: "template-inserts" });
    const fill = () => inserts.replaceChildren(el("span", { class: "hint", text: "Insert:" }),
      ...widget.design.fields.filter((f) => f.name).map((f) => el("button", {
        type: "button", class: "small", text: f.label || f.name,
        title: "Insert {" + f.name + "}",
        onclick: () => {
          const at = input.selectionStart == null ? input.value.length : input.selectionStart;
          input.setRangeText("{" + f.name + "}", at, input.selectionEnd == null ? at : input.selectionEnd, "end");
          input.dispatchEvent(new Event("input"));
          input.focus();
        },
      })));
    fill();
    templateRefresh = fill;
    wrap.append(inserts);
    return wrap;
  }
  let templateRefresh = () => {};

  function fieldsEditor() {
    const body = el("tbody");
    const table = el("table", { class: "fields-table" },
      el("thead", null, el("tr", null, ...["Key", "Label", "Type", "Required", ""].map(
        (h) => el("th", { scope: "col", text: h })))), body);
    const add = el("button", { type: "button", class: "small", text: "Add field", id: "add-field" });
    function draw() {
      const fields = widget.design.fields;
      body.replaceChildren(...fields.map((field, index) => {
        const update = (key, value) => { field[key] = value; templateRefresh(); changed(); };
        const n = ++inputSeq;
        return el("tr", { "data-field": index },
          el("td", null, el("input", {
            type: "text", value: field.name, maxlength: 32, "aria-label": "Key of field " + (index + 1),
            pattern: "[a-z][a-z0-9_]{0,31}", id: "field-name-" + n,
            oninput: (e) => update("name", e.target.value.trim()),
          })),
          el("td", null, el("input", {
            type: "text", value: field.label, maxlength: 100, "aria-label": "Label of field " + (index + 1),
            oninput: (e) => update("label", e.target.value),
          })),
          el("td", null, (() => {
            const s = el("select", { "aria-label": "Type of field " + (index + 1),
              onchange: (e) => update("type", e.target.value) },
            ...[["text", "Text"], ["email", "Email"], ["tel", "Phone"], ["textarea", "Long text"]]
              .map(([v, t]) => el("option", { value: v, text: t })));
            s.value = field.type;
            return s;
          })()),
          el("td", null, el("input", {
            type: "checkbox", checked: field.required, "aria-label": "Field " + (index + 1) + " required",
            onchange: (e) => update("required", e.target.checked),
          })),
          el("td", null, el("button", {
            type: "button", class: "small", text: "Remove", "aria-label": "Remove field " + (index + 1),
            onclick: () => {
              fields.splice(index, 1);
              draw();
              templateRefresh();
              changed();
              // The button went with its row: the focus goes to the next row's (or Add field).
              (body.querySelectorAll("button")[index] || add).focus();
            },
          })));
      }));
      const full = fields.length >= 20;
      // Disabling the focused button would drop the focus: it goes to the last field.
      if (full && document.activeElement === add) body.querySelector("tr:last-child input").focus();
      add.disabled = full;
    }
    add.addEventListener("click", () => {
      const names = new Set(widget.design.fields.map((f) => f.name));
      let n = widget.design.fields.length + 1;
      while (names.has("field" + n)) n += 1;
      widget.design.fields.push({ name: "field" + n, label: "Field " + n, type: "text", required: false });
      draw();
      templateRefresh();
      changed();
    });
    draw();
    return el("fieldset", { id: "input-fields" }, el("legend", { text: "Input fields (pre-chat form)" }),
      el("p", { class: "hint", text: "The key is what agents and the CRM see; lower case letters, digits and _." }),
      table, el("div", null, add));
  }

  function endSection() {
    const textPart = el("div", { class: "editor" },
      text("end.title", "Title", { max: 100 }),
      text("end.text", "Text", { max: 1000, multiline: true }),
      text("end.note", "Note (optional third line)", { max: 1000, multiline: true }));
    const linkPart = el("div", { class: "editor" },
      text("end.link", "Link (https://…)", { type: "url", max: 2000, nullWhenEmpty: true,
        placeholder: "https://www.example.com/thanks" }));
    const toggle = () => {
      textPart.hidden = get("end.type") !== "text";
      linkPart.hidden = get("end.type") !== "link";
    };
    const kind = select("end.type", "Type", [["text", "Text"], ["link", "Link"]], toggle);
    toggle();
    return group("End chat", kind, textPart, linkPart);
  }

  function colorsSection() {
    return group("Colours", ...Object.keys(widget.design.colors).map(
      (key) => color("colors." + key, COLOR_LABELS[key] || humanize(key))));
  }

  function confirmSection() {
    return group("Confirm box (before a chat ends)",
      text("confirm_end.message", "Message", { max: 200 }),
      text("confirm_end.yes", "Yes button", { max: 40 }),
      text("confirm_end.no", "No button", { max: 40 }));
  }

  function buttonsSection() {
    return group("Buttons visitors see and may use",
      check("emoji", "Emoji button"),
      check("rating", "Rating stars after the chat"));
  }

  function animationSection() {
    return group("Animation",
      select("initial_state", "When a page opens",
        [["open", "Open"], ["minimized", "Minimized"], ["hidden", "Hidden (until the site calls CRMChat.show())"]]),
      number("delay_ms", "Delay before it appears (milliseconds)", 0, 3600000));
  }

  // One host per line ("shop.example.com", or "*.example.com" for its subdomains); the
  // service checks each (connector/crm/design.py) and says which line it refused.
  function sitesSection() {
    const input = el("textarea", {
      rows: 3, maxlength: 50 * 254, placeholder: "shop.example.com\n*.example.com",
      value: (get("allowed_domains") || []).join("\n"),
      oninput: (e) => set("allowed_domains",
        e.target.value.split("\n").map((line) => line.trim()).filter(Boolean)),
    });
    return group("Sites that may show the widget",
      row("allowed_domains", "Allowed domains, one a line (empty: any site)", input));
  }

  // Operating hours (connector/crm/hours.py): a weekday's spans as "09:00-12:30, 13:30-17:00"
  // (empty: closed that day), holidays one date a line; the service checks each on Save.
  const WEEKDAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"],
    ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
  function hoursSection() {
    const h = "operating_hours";
    const zoneNames = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
    const zones = el("datalist", { id: "time-zones" }, ...zoneNames.map((z) => el("option", { value: z })));
    const zone = text(h + ".time_zone", "Time zone (IANA, e.g. Europe/Paris)", { max: 64 });
    zone.querySelector("input").setAttribute("list", "time-zones");
    const days = WEEKDAYS.map(([key, name]) => row(h + ".weekly." + key, name, el("input", {
      type: "text", maxlength: 80, placeholder: "Closed",
      value: (get(h + ".weekly")[key] || []).join(", "),
      oninput: (e) => {
        const spans = e.target.value.split(",").map((s) => s.trim()).filter(Boolean);
        const weekly = get(h + ".weekly");
        if (spans.length) weekly[key] = spans; else delete weekly[key];
        changed();
      },
    })));
    const holidays = el("textarea", {
      rows: 3, maxlength: 400 * 11, placeholder: "2026-12-25",
      value: (get(h + ".holidays") || []).join("\n"),
      oninput: (e) => set(h + ".holidays", e.target.value.split("\n").map((l) => l.trim()).filter(Boolean)),
    });
    return group("Operating hours",
      check(h + ".enabled", "Use operating hours (outside them no chat starts)"), zone, zones, ...days,
      row(h + ".holidays", "Holidays (closed all day), one date a line", holidays),
      select(h + ".offline", "Outside the hours show",
        [["hidden", "Nothing (the widget is hidden)"], ["message", "A message form (it becomes a case)"]]),
      text(h + ".reply_time", "Expected reply time, shown while a visitor waits",
        { max: 100, placeholder: "We usually reply within 5 minutes" }));
  }

  // Languages: the design's texts are in `language`; each translation (design.translations,
  // language tag -> text key -> text) gives them in another one, and the visitor's browser
  // language picks it. An empty box keeps the design's text.
  function languagesSection() {
    const picker = el("select", { id: "translation-language" });
    const table = el("table", { class: "fields-table", "aria-labelledby": "translation-title" });
    const title = el("p", { id: "translation-title", class: "hint" });
    const addBox = el("input", { type: "text", id: "new-language", maxlength: 35,
      placeholder: "ar", spellcheck: "false", autocomplete: "off" });
    const addProblem = el("p", { class: "problem", hidden: true, role: "alert",
      text: "A language tag is like ar, he, fr or pt-br." });
    const all = () => widget.design.translations || (widget.design.translations = {});
    const defaults = () => {
      const rows = DESIGN_TEXTS.map((key) => [key, get(key) || ""]).filter(([, v]) => v);
      for (const f of widget.design.fields || []) rows.push(["field." + f.name, f.label]);
      for (const key in widgetTexts || {}) rows.push([key, widgetTexts[key]]);
      return rows;
    };
    function draw() {
      const langs = Object.keys(all());
      if (!langs.includes(previewLanguage)) previewLanguage = langs[0] || "";
      picker.replaceChildren(...langs.map((l) => el("option", { value: l, text: l })));
      picker.value = previewLanguage;
      picker.disabled = !langs.length;
      title.textContent = previewLanguage ? "Texts in " + previewLanguage + " (empty: as designed)"
        : "No translation yet: add a language.";
      const texts = all()[previewLanguage];
      table.hidden = !texts;
      if (!texts) return table.replaceChildren();
      table.replaceChildren(el("tr", null, el("th", { text: "Designed text" }),
        el("th", { text: "Translation" })), ...defaults().map(([key, text], i) => {
        const id = "tr-" + i;
        return el("tr", null,
          el("td", null, el("label", { for: id, text })),
          el("td", null, el("input", { type: "text", id, "data-key": key, maxlength: 1000,
            value: texts[key] || "", dir: "auto", lang: previewLanguage,
            oninput: (e) => {
              if (e.target.value) texts[key] = e.target.value; else delete texts[key];
              changed();
            } })));
      }));
    }
    picker.addEventListener("change", () => { previewLanguage = picker.value; draw(); changed(); });
    const addLanguage = () => {
      const tag = addBox.value.trim().toLowerCase();
      const ok = LANGUAGE_TAG.test(tag) && tag !== String(get("language")).toLowerCase();
      addProblem.hidden = ok;
      addBox.setAttribute("aria-invalid", String(!ok));
      if (!ok) return;
      all()[tag] = all()[tag] || {};
      previewLanguage = tag;
      addBox.value = "";
      draw();
      changed();
    };
    const add = el("button", { type: "button", class: "small", text: "Add language", onclick: addLanguage });
    // Enter in the box adds the language, as the button next to it does, rather than
    // submitting (saving) the whole design.
    addBox.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      addLanguage();
    });
    drawLanguages = draw;
    draw();
    return group("Languages",
      text("language", "Language of the texts above (e.g. en)", { max: 35 }),
      row("new-language", "Add a translation", addBox), el("div", { class: "inserts" }, add), addProblem,
      row("translation-language", "Translation shown", picker), title, table);
  }

  function topicsSection() {
    const note = el("p", { class: "hint", id: "topics-note" });
    const chosen = new Set(widget.topic_ids);
    const refresh = () => {
      const n = chosen.size;
      note.textContent = n === 0
        ? "With no topic, no agent answers this widget: chat is not offered."
        : n > 1 ? "Best practice is one topic per widget; visitors pick among several." : "Best practice: one topic.";
      note.className = n === 1 ? "hint" : "hint warn";
    };
    const boxes = widget.all_topics.map((topic) => {
      const id = "topic-" + topic.id;
      const box = el("input", { type: "checkbox", id, checked: chosen.has(topic.id), onchange: (e) => {
        if (e.target.checked) chosen.add(topic.id); else chosen.delete(topic.id);
        widget.topic_ids = [...chosen];
        refresh();
      } });
      const swatch = el("span", { class: "swatch" });
      if (HEX.test(topic.color)) swatch.style.background = topic.color;
      return el("div", { class: "row check" }, box, el("label", { for: id }, swatch, topic.name));
    });
    refresh();
    return group("Topics", el("div", { class: "topics" }, ...boxes), note);
  }

  // Options the designer was not written for (e.g. chat options added later): booleans,
  // numbers and texts, nested one level, drawn from the design itself.
  function genericControls(prefix, value) {
    const out = [];
    // The API's JSON has sorted keys: an option group's on/off switch goes first.
    const keys = Object.keys(value).sort((a, b) => (b === "enabled") - (a === "enabled"));
    for (const key of keys) {
      const path = prefix ? prefix + "." + key : key;
      if (!prefix && HANDLED.has(key)) continue;
      const v = value[key];
      const label = humanize(key);
      if (typeof v === "boolean") out.push(check(path, label));
      else if (typeof v === "number") out.push(number(path, /_secs$/.test(key) && !LABELS[key] ? label + " (seconds)" : label, 0, null));
      else if (typeof v === "string") out.push(text(path, label, { multiline: v.length > 60 }));
      else if (path === "privacy.masking_rules" || path === "attachments.types") out.push(patternLines(path, label));
      else if (v && typeof v === "object" && !Array.isArray(v) && !prefix) {
        out.push(el("fieldset", null, el("legend", { text: label }), ...genericControls(path, v)));
      }
    }
    return out;
  }

  function render() {
    // Saving draws the form again: the control that had the focus (Enter in a text box
    // saves too) gets it back, so a keyboard user stays where they were.
    const focused = form.contains(document.activeElement) ? document.activeElement.id : "";
    const extra = genericControls("", widget.design);
    const sections = [widgetSection(), displaySection(), endSection(), colorsSection(),
      confirmSection(), buttonsSection(), animationSection(), sitesSection(), hoursSection(),
      languagesSection(), topicsSection()];
    if (extra.length) sections.push(group("Chat options", ...extra));
    form.replaceChildren(...sections);
    if (focused) ($(focused) || $("save")).focus();
    $("widget-name").textContent = widget.name;
    $("script").value = widget.script;
    renderPreview();
  }

  // ----- preview: the real widget.js in preview mode ------------------------------------

  function renderPreview() {
    clearTimeout(previewTimer);
    if (!widget) return;
    const mode = screen === "pre" ? true : screen === "confirm" ? "chat" : screen;
    // A fresh iframe each time: widget.js starts once per page, and a new browsing context
    // cannot receive a late load event from an earlier preview.
    const old = $("preview");
    const frame = old.cloneNode(false);
    frame.onload = () => {
      const win = frame.contentWindow;
      const doc = frame.contentDocument;
      win.CRMChat = {
        preview: mode, base: session.base, widgetId: widget.id, language: previewLanguage,
        config: { widget_id: widget.id, enabled: true, available: true,
          design: JSON.parse(JSON.stringify(widget.design)), socket_url: "ws://preview.invalid/" },
      };
      if (screen === "confirm") {
        win.addEventListener("crmchat:ready", () => {
          const host = doc.querySelector("crmchat-widget");
          const end = host && host.shadowRoot &&
            host.shadowRoot.querySelector('[data-testid="crmchat-end-chat"]');
          if (end) end.click();
        });
      }
      const script = doc.createElement("script");
      script.src = session.base + "/widget/widget.js";
      script.onload = () => {
        // The widget's own texts join the translation table once the preview has them,
        // with those of the part it loads later (extras.js: files, transcript).
        if (widgetTexts || !win.CRMChat.defaultTexts) return;
        const extras = doc.createElement("script");
        extras.src = session.base + "/widget/extras.js";
        extras.onload = () => {
          if (widgetTexts) return;
          widgetTexts = Object.assign({}, win.CRMChat.defaultTexts, (win.CRMChat.extras || {}).texts);
          if (drawLanguages) drawLanguages();
        };
        doc.head.append(extras);
      };
      doc.head.append(script);
    };
    frame.dataset.screen = screen;
    frame.srcdoc = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"></head><body></body></html>";
    old.replaceWith(frame);
  }

  // The preview's screens are a tab list (WAI-ARIA Authoring Practices, Tabs): one tab stop,
  // the arrow keys (and Home, End) move to a screen and show it.
  const screenTabs = [...document.querySelectorAll(".screens [role=tab]")];
  function showScreen(tab) {
    screen = tab.dataset.screen;
    for (const other of screenTabs) {
      other.setAttribute("aria-selected", String(other === tab));
      other.tabIndex = other === tab ? 0 : -1;
    }
    renderPreview();
  }
  const SCREEN_KEYS = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  for (const tab of screenTabs) {
    tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
    tab.addEventListener("click", () => showScreen(tab));
    tab.addEventListener("keydown", (event) => {
      const at = screenTabs.indexOf(tab);
      const to = event.key === "Home" ? 0 : event.key === "End" ? screenTabs.length - 1
        : event.key in SCREEN_KEYS ? (at + SCREEN_KEYS[event.key] + screenTabs.length) % screenTabs.length
          : -1;
      if (to < 0) return;
      event.preventDefault();
      screenTabs[to].focus();
      showScreen(screenTabs[to]);
    });
  }

  // ----- saving and the script ------------------------------------------------------------

  function markProblems(fields) {
    for (const node of form.querySelectorAll("[aria-invalid=true]")) node.setAttribute("aria-invalid", "false");
    let first = null;
    for (const problem of fields || []) {
      const path = String(problem.field || "").replace(/^design\./, "");
      const node = form.querySelector('[data-path="' + CSS.escape(path) + '"]');
      if (node) {
        node.setAttribute("aria-invalid", "true");
        node.dataset.refused = "true";
        first = first || node;
      }
    }
    if (first) first.focus();
  }

  // A value the service refused is marked until it is edited; the edit may fix it (the
  // service checks again on Save). Capture runs before a control's own check (a colour's
  // #rgb test), which may mark it again.
  form.addEventListener("input", (event) => {
    const node = event.target;
    if (node && node.dataset && node.dataset.refused) {
      delete node.dataset.refused;
      node.setAttribute("aria-invalid", "false");
      if (!form.querySelector("[aria-invalid=true]")) show(result, "");
    }
  }, true);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const bad = form.querySelector("[aria-invalid=true]");
    if (bad) {
      show(result, "Fix the marked value first.", "bad");
      bad.focus();
      result.scrollIntoView({ block: "nearest" });
      return;
    }
    // Busy, not disabled: disabling the focused Save button would drop the focus.
    const save = $("save");
    if (save.getAttribute("aria-disabled") === "true") return;
    save.setAttribute("aria-disabled", "true");
    show(result, "Saving…");
    try {
      const saved = await session.call("PUT", "/api/admin/widgets/" + widget.id, {
        name: widget.name, enabled: widget.enabled, design: widget.design, topic_ids: widget.topic_ids,
      });
      widget = saved;
      render();
      show(result, "Saved. Sites that carry the script show the new design on their next page load.", "ok");
    } catch (error) {
      markProblems(error.fields);
      show(result, "Not saved: " + error.message, "bad");
    } finally {
      save.removeAttribute("aria-disabled");
    }
  });

  $("script-button").addEventListener("click", () => {
    $("script-card").hidden = false;
    $("script").value = widget.script;
    $("script").select();
  });

  $("copy-script").addEventListener("click", async () => {
    const box = $("script");
    try {
      await navigator.clipboard.writeText(box.value);
    } catch (error) {
      box.select();
      document.execCommand("copy");
    }
    show($("copy-result"), "Copied.", "ok");
  });

  // ----- start ----------------------------------------------------------------------------

  async function pickWidget() {
    const widgets = await session.call("GET", "/api/admin/widgets");
    $("widget-list").replaceChildren(...widgets.map((w) => el("li", null, el("a", {
      href: "?data=" + encodeURIComponent(w.id), text: w.name + (w.enabled ? "" : " (off)"),
    }))));
    $("picker").hidden = false;
  }

  async function start() {
    const status = $("signin");
    try {
      session = await window.CRMChatSignIn.signIn();
    } catch (error) {
      status.textContent = error.status === 0 ? error.message : "Could not sign in: " + error.message;
      return;
    }
    status.textContent = "Signed in as " + session.user.name + ".";
    const id = recordId();
    try {
      if (!id) {
        await pickWidget();
        return;
      }
      widget = await session.call("GET", "/api/admin/widgets/" + id);
      if (widget.design_error) show(result, "The stored design was broken; showing defaults. " + widget.design_error, "bad");
      $("actions").hidden = false;
      $("workspace").hidden = false;
      render();
      if (scriptAsked()) $("script-button").click();
    } catch (error) {
      show(result, error.status === 403 ? "Only CRM Chat administrators may design widgets."
        : "Could not open the widget: " + error.message, "bad");
    }
  }

  start();
}());
