// CRM Chat reports web resource: chats per day, wait before answer, duration and rating,
// by topic and by agent, for a date range; plots drawn as SVG; CSV export.
// It reads aggregates through the Web API ($apply: filter, groupby, aggregate) with
// Xrm.WebApi, so it sees exactly the chats the signed-in user may read, and nothing
// more. Names from records only ever go in textContent / SVG text nodes.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const FORMATTED = "@OData.Community.Display.V1.FormattedValue";
  const DAY_MS = 86400000;
  // The figures per group, as the $apply aliases name them.
  const MEASURES = [
    { key: "chats", title: "Chats", unit: "" },
    { key: "wait", title: "Average wait before answer", unit: " s" },
    { key: "duration", title: "Average duration", unit: " s" },
    { key: "rating", title: "Average rating", unit: "" },
  ];
  const GROUPS = [
    { key: "topic", column: "_crmchat_topicid_value", target: "plots-topic", label: "Topic" },
    { key: "agent", column: "_crmchat_agentid_value", target: "plots-agent", label: "Agent" },
  ];
  let lastReport = null;

  function isoDay(date) { return date.toISOString().slice(0, 10); }

  function status(text, tone) {
    const el = document.getElementById("status");
    el.textContent = text;
    el.className = tone || "";
  }

  // OData datetime literals need no quotes; the days come from <input type=date>, checked here.
  function rangeFilter(from, to) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(from) || !/^\d{4}-\d{2}-\d{2}$/.test(to)) {
      throw new Error("Pick a start and an end date.");
    }
    const end = isoDay(new Date(Date.parse(to + "T00:00:00Z") + DAY_MS));
    return "filter(statecode eq 1 and actualstart ge " + from + "T00:00:00Z and actualstart lt "
      + end + "T00:00:00Z)";
  }

  async function aggregate(api, apply) {
    const page = await api.WebApi.retrieveMultipleRecords(
      "crmchat_chat", "?$apply=" + encodeURIComponent(apply));
    return page.entities;
  }

  async function load(api, from, to) {
    const filter = rangeFilter(from, to);
    const figures = "aggregate($count as chats,crmchat_waitseconds with average as wait,"
      + "crmchat_durationseconds with average as duration,crmchat_rating with average as rating)";
    const perDay = await aggregate(api,
      filter + "/groupby((crmchat_chatday),aggregate($count as chats))");
    const groups = {};
    for (const group of GROUPS) {
      const rows = await aggregate(api, filter + "/groupby((" + group.column + ")," + figures + ")");
      groups[group.key] = rows.map((row) => ({
        name: row[group.column] ? (row[group.column + FORMATTED] || row[group.column]) : "(none)",
        chats: row.chats, wait: row.wait, duration: row.duration, rating: row.rating,
      })).sort((a, b) => a.name.localeCompare(b.name));
    }
    const counts = {};
    for (const row of perDay) if (row.crmchat_chatday) counts[row.crmchat_chatday] = row.chats;
    const days = [];
    for (let t = Date.parse(from + "T00:00:00Z"); t <= Date.parse(to + "T00:00:00Z"); t += DAY_MS) {
      const day = isoDay(new Date(t));
      days.push({ name: day, chats: counts[day] || 0 });
    }
    return { from, to, days, groups };
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function shown(value, unit) {
    if (value === null || value === undefined) return "–";
    const rounded = Math.round(Number(value) * 10) / 10;
    return String(rounded) + unit;
  }

  // Vertical columns (one per day).
  function columns(title, items) {
    const width = Math.max(320, items.length * 22 + 40), height = 180, base = 150;
    const top = Math.max(1, ...items.map((i) => i.chats));
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": title, "data-plot": "per-day" });
    svg.appendChild(el("line", { class: "axis", x1: 30, y1: base, x2: width - 4, y2: base }));
    svg.appendChild(el("text", { x: 2, y: 20 }, String(top)));
    items.forEach((item, index) => {
      const h = Math.round((item.chats / top) * 120);
      const x = 34 + index * 22;
      const bar = el("rect", { class: "bar", x, y: base - h, width: 16, height: h,
        "data-label": item.name, "data-value": item.chats });
      bar.appendChild(el("title", {}, item.name + ": " + item.chats));
      svg.appendChild(bar);
      if (items.length <= 31 || index % 7 === 0) {
        svg.appendChild(el("text", { x, y: base + 14 }, item.name.slice(8)));
      }
    });
    return svg;
  }

  // Horizontal bars (one per topic or agent).
  function bars(title, measure, items) {
    const rowHeight = 22, width = 300, labelWidth = 110, height = items.length * rowHeight + 8;
    const values = items.map((i) => Number(i[measure.key]) || 0);
    const top = Math.max(1, ...values);
    const figure = document.createElement("figure");
    const caption = document.createElement("h3");
    caption.textContent = measure.title;
    figure.appendChild(caption);
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": title + ": " + measure.title, "data-plot": measure.key });
    items.forEach((item, index) => {
      const y = 4 + index * rowHeight;
      const w = Math.round((values[index] / top) * (width - labelWidth - 50));
      svg.appendChild(el("text", { x: 0, y: y + 14 }, item.name.slice(0, 18)));
      const bar = el("rect", { class: "bar", x: labelWidth, y, width: w, height: 16,
        "data-label": item.name, "data-value": item[measure.key] ?? "" });
      bar.appendChild(el("title", {}, item.name + ": " + shown(item[measure.key], measure.unit)));
      svg.appendChild(bar);
      svg.appendChild(el("text", { x: labelWidth + w + 4, y: y + 14 },
        shown(item[measure.key], measure.unit)));
    });
    figure.appendChild(svg);
    return figure;
  }

  function render(report) {
    const perDay = document.getElementById("plot-per-day");
    perDay.replaceChildren(columns("Chats per day", report.days));
    for (const group of GROUPS) {
      const target = document.getElementById(group.target);
      const items = report.groups[group.key];
      if (!items.length) {
        const empty = document.createElement("p");
        empty.className = "empty";
        empty.textContent = "No finished chats in this range.";
        target.replaceChildren(empty);
        continue;
      }
      target.replaceChildren(...MEASURES.map((m) => bars(group.label, m, items)));
    }
  }

  function csvCell(value) {
    const text = value === null || value === undefined ? "" : String(value);
    // A leading = + - @ would run as a formula in a spreadsheet.
    const safe = /^[=+\-@\t\r]/.test(text) ? "'" + text : text;
    return /[",\n\r]/.test(safe) ? '"' + safe.replace(/"/g, '""') + '"' : safe;
  }

  function toCsv(report) {
    const lines = [["section", "name", "chats", "avg_wait_seconds", "avg_duration_seconds",
      "avg_rating"]];
    for (const day of report.days) lines.push(["day", day.name, day.chats, "", "", ""]);
    for (const group of GROUPS) {
      for (const item of report.groups[group.key]) {
        lines.push([group.key, item.name, item.chats, item.wait, item.duration, item.rating]);
      }
    }
    return lines.map((line) => line.map(csvCell).join(",")).join("\r\n") + "\r\n";
  }

  function download(report) {
    const blob = new Blob([toCsv(report)], { type: "text/csv;charset=utf-8" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `crmchat-report-${report.from}-to-${report.to}.csv`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  async function show(api, form) {
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status("Loading…");
    try {
      lastReport = await load(api, form.from.value, form.to.value);
      render(lastReport);
      const total = lastReport.days.reduce((sum, d) => sum + d.chats, 0);
      status(total + " finished chat" + (total === 1 ? "" : "s") + " from " + lastReport.from
        + " to " + lastReport.to + ".", "ok");
      document.getElementById("export").disabled = false;
    } catch (error) {
      status(error.message || "The report could not be loaded.", "bad");
    } finally { button.disabled = false; }
  }

  function start() {
    const form = document.getElementById("range-form");
    const today = new Date();
    form.to.value = isoDay(today);
    form.from.value = isoDay(new Date(today.getTime() - 29 * DAY_MS));
    const api = window.CRMChatSignIn.xrm();
    if (!api) {
      status("Open this page from the CRM Chat app: it reads the chats through Dataverse.", "bad");
      return;
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); show(api, form); });
    document.getElementById("export").addEventListener("click", () => {
      if (lastReport) download(lastReport);
    });
    show(api, form);
  }

  start();
}());
