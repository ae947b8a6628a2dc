// The shell of the local app stand-in: plays the model-driven app. Navigation comes from
// the solution's sitemap (sent with the page), table subareas list records through
// Xrm.WebApi, web resource subareas run in iframes that stay alive while hidden (as the
// agent console must keep its socket), and window.Xrm serves them all.
// Record text only ever goes into textContent.
"use strict";

(function (ns) {
  // Where an organization serves a web resource: <org>/WebResources/<name>, the name with
  // its publisher prefix (crmchat_/console/index.html). Microsoft Learn, "Web resources".
  const WEBRESOURCES = "/WebResources/";
  const app = JSON.parse(document.getElementById("crmchat-app").textContent);
  const session = ns.readSession();
  if (!session) {
    location.replace("/app/");
    return;
  }
  const user = session.user;
  // Dataverse finds privileges by name ignoring case.
  const privileges = new Set((user.privileges || []).map((name) => name.toLowerCase()));
  const PAGE_SIZE = 50;

  const nav = document.getElementById("sitemap");
  const view = document.getElementById("view");
  const frames = document.getElementById("frames");
  const subareas = new Map(); // id -> subarea
  const loadedFrames = new Map(); // subarea id -> iframe

  // Privilege names come from the server, which spells them as Dataverse does
  // (prvReadActivity for a chat, prvReadUser for systemuser).
  function allowed(name) {
    return privileges.has("*") || (Boolean(name) && privileges.has(name.toLowerCase()));
  }

  function visible(subarea) {
    if (subarea.entity && !allowed(subarea.readPrivilege)) return false;
    const privilege = subarea.privilege;
    return !privilege || allowed(privilege.name);
  }

  // ----- dialogs (Xrm.Navigation.openConfirmDialog / openAlertDialog) -------------------

  const dialog = document.getElementById("dialog");
  let dialogQueue = Promise.resolve();

  function ask(strings, withCancel) {
    const run = () => new Promise((resolve) => {
      document.getElementById("dialog-title").textContent = strings.title || "";
      document.getElementById("dialog-text").textContent = strings.text || "";
      const ok = document.getElementById("dialog-ok");
      const cancel = document.getElementById("dialog-cancel");
      ok.textContent = strings.confirmButtonLabel || "OK";
      cancel.textContent = strings.cancelButtonLabel || "Cancel";
      cancel.hidden = !withCancel;
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
    dialogQueue = dialogQueue.then(run, run);
    return dialogQueue;
  }

  // ----- navigation ---------------------------------------------------------------------

  function subareaFor(pageInput) {
    for (const subarea of subareas.values()) {
      if (pageInput.pageType === "entitylist" && subarea.entity === pageInput.entityName) {
        return subarea;
      }
      if (pageInput.pageType === "webresource" && subarea.url &&
          subarea.url.split("?")[0] === WEBRESOURCES + String(pageInput.webresourceName || "")) {
        return subarea;
      }
    }
    return null;
  }

  function hashFor(pageInput) {
    if (pageInput.pageType === "entityrecord" && pageInput.entityName && pageInput.entityId) {
      return "record/" + pageInput.entityName + "/" +
        String(pageInput.entityId).replace(/[{}]/g, "").toLowerCase();
    }
    const subarea = subareaFor(pageInput);
    if (subarea && !pageInput.data) return subarea.id;
    if (pageInput.pageType === "entitylist" && pageInput.entityName) {
      return "list/" + pageInput.entityName;
    }
    if (pageInput.pageType === "webresource" && pageInput.webresourceName) {
      // The record id a model-driven app passes a web resource in its `data` parameter.
      const data = pageInput.data ? "?data=" + encodeURIComponent(String(pageInput.data)) : "";
      return "webresource/" + String(pageInput.webresourceName) + data;
    }
    return null;
  }

  // A new window is another tab of the same app: it inherits this tab's session.
  function navigate(pageInput, newWindow) {
    const hash = hashFor(pageInput);
    if (hash === null) return;
    if (newWindow) window.open("/app/main#" + hash, "_blank");
    else location.hash = hash;
  }

  function signedOut() {
    ns.clearSession();
    location.replace("/app/");
  }

  // ----- side panes (Xrm.App.sidePanes) -------------------------------------------------
  // Panes live beside the main area and outlive its navigation; each shows one page in
  // its own iframe, with a tab carrying the pane's title and badge.

  function webResourceUrl(pageInput) {
    const data = pageInput.data ? "?data=" + encodeURIComponent(String(pageInput.data)) : "";
    return WEBRESOURCES + String(pageInput.webresourceName || "") + data;
  }

  const sidePanes = (function () {
    const aside = document.getElementById("sidepanes");
    const tabs = document.getElementById("sidepane-tabs");
    const body = document.getElementById("sidepane-body");
    const panes = new Map(); // paneId -> {pane, tab, badge, frame}
    let selected = null;
    let expanded = 1;

    function refresh() {
      aside.hidden = panes.size === 0;
      for (const [id, parts] of panes) {
        const current = id === selected;
        parts.tab.setAttribute("aria-selected", String(current));
        parts.frame.hidden = !(current && expanded);
      }
      body.style.width = selected && expanded ? panes.get(selected).width + "px" : "0";
    }

    function create(options) {
      const paneId = String(options.paneId || "pane" + (panes.size + 1));
      if (panes.has(paneId)) throw new Error("A side pane with id " + paneId + " exists already.");
      const tab = document.createElement("button");
      tab.type = "button";
      tab.setAttribute("role", "tab");
      tab.dataset.testid = "sidepane-tab";
      tab.dataset.pane = paneId;
      const label = document.createElement("span");
      const badge = document.createElement("span");
      badge.className = "pane-badge";
      badge.dataset.testid = "sidepane-badge";
      badge.hidden = true;
      tab.append(label, badge);
      const frame = document.createElement("iframe");
      frame.dataset.pane = paneId;
      const parts = { tab, frame, width: Number(options.width) || 340 };
      let title = "";
      let badgeValue = false;
      const pane = {
        paneId,
        canClose: options.canClose !== false,
        get title() { return title; },
        set title(value) { title = String(value || ""); label.textContent = title; frame.title = title; },
        // A number shows as a count, true as a dot; 0 or false hides it.
        get badge() { return badgeValue; },
        set badge(value) {
          badgeValue = value;
          badge.hidden = !value;
          badge.textContent = typeof value === "number" ? String(value) : "";
        },
        navigate(pageInput) {
          if (!pageInput || pageInput.pageType !== "webresource") {
            return Promise.reject(new Error("This stand-in's side panes show web resources only."));
          }
          frame.src = webResourceUrl(pageInput);
          return Promise.resolve();
        },
        select() { selected = paneId; expanded = 1; refresh(); },
        close() {
          panes.delete(paneId);
          tab.remove();
          frame.remove();
          if (selected === paneId) selected = panes.size ? [...panes.keys()][0] : null;
          refresh();
        },
      };
      pane.title = options.title;
      pane.badge = options.badge || false;
      tab.addEventListener("click", () => {
        if (selected === paneId && expanded) { expanded = 0; refresh(); } else pane.select();
      });
      tabs.append(tab);
      body.append(frame);
      parts.pane = pane;
      panes.set(paneId, parts);
      pane.select();
      return pane;
    }

    return {
      createPane(options) {
        try {
          return Promise.resolve(create(options || {}));
        } catch (error) {
          return Promise.reject(error);
        }
      },
      getPane(paneId) {
        const parts = panes.get(String(paneId));
        return parts ? parts.pane : undefined;
      },
      getSelectedPane() {
        return selected ? panes.get(selected).pane : undefined;
      },
      getAllPanes() {
        const all = [...panes.values()].map((parts) => parts.pane);
        return { getLength: () => all.length, get: (index) => all[index], forEach: (fn) => all.forEach(fn) };
      },
      get state() { return expanded; },
      set state(value) { expanded = value ? 1 : 0; refresh(); },
    };
  }());

  window.Xrm = ns.createXrm(session, app.entities, {
    sidePanes,
    navigate,
    confirm: (strings) => ask(strings, true),
    alert: (strings) => ask(strings, false).then(() => undefined),
    signedOut,
  });

  function buildNav() {
    const parts = [];
    for (const area of app.areas) {
      const areaTitle = document.createElement("h2");
      areaTitle.className = "area";
      areaTitle.textContent = area.title;
      parts.push(areaTitle);
      for (const group of area.groups) {
        const shown = group.subareas.filter(visible);
        if (!shown.length) continue;
        const groupTitle = document.createElement("h3");
        groupTitle.className = "group";
        groupTitle.textContent = group.title;
        const list = document.createElement("ul");
        for (const subarea of shown) {
          subareas.set(subarea.id, subarea);
          const item = document.createElement("li");
          const link = document.createElement("a");
          link.href = "#" + subarea.id;
          link.dataset.subarea = subarea.id;
          if (subarea.url) link.dataset.url = subarea.url;
          if (subarea.icon) {
            const icon = document.createElement("img");
            icon.src = subarea.icon;
            icon.alt = "";
            icon.width = icon.height = 16;
            link.append(icon);
          }
          link.append(document.createTextNode(subarea.title));
          item.append(link);
          list.append(item);
        }
        parts.push(groupTitle, list);
      }
    }
    nav.replaceChildren(...parts);
  }

  function markCurrent(id) {
    for (const link of nav.querySelectorAll("a[data-subarea]")) {
      if (link.dataset.subarea === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  function showFrame(subarea) {
    view.hidden = true;
    let frame = loadedFrames.get(subarea.id);
    if (!frame) {
      frame = document.createElement("iframe");
      frame.src = subarea.url;
      frame.title = subarea.title;
      frame.dataset.subarea = subarea.id;
      frames.append(frame);
      loadedFrames.set(subarea.id, frame);
    }
    for (const other of loadedFrames.values()) other.hidden = other !== frame;
    frames.hidden = false;
  }

  function showView() {
    frames.hidden = true;
    view.hidden = false;
  }

  // ----- table lists and records ----------------------------------------------------------

  function formatted(row, wire) {
    const text = row[wire + ns.FORMATTED];
    if (text !== undefined && text !== null) return String(text);
    const value = row[wire];
    if (value === undefined || value === null) return "";
    return String(value);
  }

  function heading(text) {
    const title = document.createElement("h1");
    title.textContent = text;
    return title;
  }

  function message(text, tone) {
    const p = document.createElement("p");
    p.className = "message" + (tone ? " " + tone : "");
    p.setAttribute("role", "status");
    p.textContent = text;
    return p;
  }

  async function showList(entityName, title) {
    showView();
    const entity = app.entities[entityName];
    const columns = entity && entity.columns ? entity.columns
      : [{ name: entity.name, wire: entity.name, label: "Name" }];
    const status = message("Loading…");
    view.replaceChildren(heading(title), status);
    view.dataset.entity = entityName;
    const table = document.createElement("table");
    table.className = "records";
    const head = document.createElement("tr");
    for (const column of columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = column.label;
      head.append(th);
    }
    table.createTHead().append(head);
    const body = table.createTBody();
    const more = document.createElement("button");
    more.type = "button";
    more.className = "secondary";
    more.textContent = "Load more";
    more.hidden = true;

    // The public view's filter and order when the solution has one (as a tenant's list).
    const listed = entity.list;
    let options = "?$select=" + [entity.id].concat(columns.map((c) => c.wire)).join(",") +
      (listed ? (listed.filter ? "&$filter=" + encodeURIComponent(listed.filter) : "") +
        (listed.orderby ? "&$orderby=" + encodeURIComponent(listed.orderby) : "")
        : (columns.some((c) => c.name === "modifiedon") ? "&$orderby=modifiedon desc" : ""));
    let count = 0;

    async function page() {
      more.disabled = true;
      try {
        const result = await window.Xrm.WebApi.retrieveMultipleRecords(entityName, options, PAGE_SIZE);
        for (const row of result.entities) {
          const tr = document.createElement("tr");
          tr.dataset.id = row[entity.id];
          columns.forEach((column, index) => {
            const td = document.createElement("td");
            const text = formatted(row, column.wire);
            if (index === 0) {
              const link = document.createElement("a");
              link.href = "#record/" + entityName + "/" + row[entity.id];
              link.textContent = text || "(no name)";
              td.append(link);
            } else {
              td.textContent = text.length > 120 ? text.slice(0, 119) + "…" : text;
            }
            tr.append(td);
          });
          body.append(tr);
        }
        count += result.entities.length;
        status.textContent = count === 1 ? "1 record" : count + " records";
        options = result.nextLink || null;
        more.hidden = !options;
      } catch (error) {
        status.textContent = "Could not load the records: " + error.message;
        status.className = "message bad";
      } finally {
        more.disabled = false;
      }
    }

    more.addEventListener("click", page);
    if (entity.form) {
      const create = document.createElement("a");
      create.href = "#new/" + entityName;
      create.className = "command";
      create.dataset.testid = "new-record";
      create.textContent = "New";
      view.append(create);
    }
    view.append(table, more);
    await page();
  }

  async function showRecord(entityName, id) {
    showView();
    const entity = app.entities[entityName];
    view.replaceChildren(heading(entityName), message("Loading…"));
    view.dataset.entity = entityName;
    if (!entity) {
      view.replaceChildren(heading("Not found"), message("There is no table " + entityName + ".", "bad"));
      return;
    }
    if (entity.form) {
      await showForm(entityName, id);
      return;
    }
    try {
      const row = await window.Xrm.WebApi.retrieveRecord(entityName, id);
      const list = document.createElement("dl");
      list.className = "record";
      for (const key of Object.keys(row)) {
        if (key.includes("@") || row[key] === null) continue;
        const name = document.createElement("dt");
        name.textContent = key.replace(/^_(.*)_value$/, "$1");
        const value = document.createElement("dd");
        value.textContent = formatted(row, key);
        list.append(name, value);
      }
      const back = document.createElement("a");
      const listed = [...subareas.values()].find((s) => s.entity === entityName);
      back.href = listed ? "#" + listed.id : "#list/" + entityName;
      back.textContent = "Back to the list";
      view.replaceChildren(heading(formatted(row, entity.name) || entityName), back,
        ...recordCommands(entityName, id, false), list);
      if (entity.timeline) timeline(id);
    } catch (error) {
      view.replaceChildren(heading(entityName), message("Could not load the record: " + error.message, "bad"));
    }
  }

  // The command-bar buttons the solution's RibbonDiffXml gives the table's form. Each loads
  // its command's libraries in order (a JavaScriptFunction "isNaN" only loads its library)
  // and runs the last JavaScriptFunction with the form context (CrmParameter PrimaryControl).
  const libraries = new Map(); // library URL -> Promise of its loading

  function loadLibrary(url) {
    if (!libraries.has(url)) {
      libraries.set(url, new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = url;
        script.onload = resolve;
        script.onerror = () => reject(new Error("could not load " + url));
        document.head.append(script);
      }));
    }
    return libraries.get(url);
  }

  function formContext(entityName, id) {
    return {
      data: { entity: { getId: () => "{" + id.toUpperCase() + "}", getEntityName: () => entityName } },
      ui: { getFormType: () => 2 }, // 2: Update (a saved record)
    };
  }

  // On the create form (no id yet) the buttons the ribbon hides there (FormStateRule
  // State="Create" InvertResult="true") stay away, as in a tenant.
  function recordCommands(entityName, id, creating) {
    const entity = app.entities[entityName];
    const shown = (entity.commands || []).filter((command) => !(creating && command.hiddenOnCreate));
    return shown.map((command) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "command";
      button.dataset.command = command.id;
      button.textContent = command.label;
      button.addEventListener("click", async () => {
        try {
          for (const url of command.libraries || [command.library]) await loadLibrary(url);
          const fn = command.function.split(".").reduce((o, key) => (o ? o[key] : undefined), window);
          if (typeof fn !== "function") throw new Error(command.function + " is not defined");
          await fn(formContext(entityName, id));
        } catch (error) {
          ask({ title: command.label, text: "The command failed: " + error.message }, false);
        }
      });
      return button;
    });
  }

  // ----- records through the solution's main form -----------------------------------------
  // Tabs, sections and fields as the form's FormXml lays them out; lookups pick from their
  // table and save as `<navigation>@odata.bind`; subgrids list the related records, and an
  // N:N grid adds existing ones with an Associate request. `id` null: the create form.

  let controlCount = 0;

  function fieldControl(field, row, creating) {
    const editable = creating ? field.create : field.update;
    const id = "field-" + field.name + "-" + (++controlCount);
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = field.label + (field.required && editable ? " *" : "");
    let control;
    const value = row ? row[field.wire] : undefined;
    if (field.lookup && editable) {
      control = document.createElement("select");
      const empty = document.createElement("option");
      empty.value = "";
      empty.textContent = "—";
      control.append(empty);
      const current = value ? String(value) : "";
      const lookup = field.lookup;
      control.dataset.loading = "true";
      window.Xrm.WebApi.retrieveMultipleRecords(lookup.target,
        "?$select=" + lookup.id + "," + lookup.name + "&$orderby=" + lookup.name).then((found) => {
        for (const record of found.entities) {
          const option = document.createElement("option");
          option.value = record[lookup.id];
          option.textContent = record[lookup.name] || "(no name)";
          control.append(option);
        }
        control.value = current;
        control.dataset.initial = current;
        delete control.dataset.loading;
      }).catch((error) => {
        control.after(message("Could not load the choices: " + error.message, "bad"));
      });
    } else if (field.type === "boolean" && editable) {
      control = document.createElement("input");
      control.type = "checkbox";
      control.checked = value === true;
    } else if (field.options && editable) {
      control = document.createElement("select");
      const empty = document.createElement("option");
      empty.value = "";
      empty.textContent = "—";
      control.append(empty);
      for (const [optionValue, text] of field.options) {
        const option = document.createElement("option");
        option.value = String(optionValue);
        option.textContent = text;
        control.append(option);
      }
      control.value = value === undefined || value === null ? "" : String(value);
    } else if (field.multiline) {
      control = document.createElement("textarea");
      control.rows = field.name.endsWith("transcript") ? 12 : 4;
      control.value = row ? formatted(row, field.wire) : "";
      control.readOnly = !editable;
    } else {
      control = document.createElement("input");
      control.type = editable && (field.type === "integer" || field.type === "bigint") ? "number" : "text";
      control.value = row ? formatted(row, field.wire) : "";
      control.readOnly = !editable;
    }
    control.id = id;
    control.name = field.name;
    control.dataset.field = field.name;
    if (control.dataset.initial === undefined) {
      control.dataset.initial = control.type === "checkbox" ? String(control.checked) : control.value;
    }
    control.disabled = control.disabled || (!editable && control.tagName === "SELECT");
    return { label, control, editable };
  }

  // The body a save sends: only what the person changed (a create: what they filled in).
  function changes(fields, controls, creating) {
    const body = {};
    fields.forEach((field, index) => {
      const { control, editable } = controls[index];
      if (!editable) return;
      const now = control.type === "checkbox" ? String(control.checked) : control.value;
      if (!creating && now === control.dataset.initial) return;
      if (field.lookup) {
        // Clearing a lookup is a DELETE of its $ref in the Web API; this form only sets one.
        if (now) body[field.lookup.navigation + "@odata.bind"] = "/" + field.lookup.set + "(" + now + ")";
      } else if (field.type === "boolean") {
        body[field.name] = control.checked;
      } else if (field.options || field.type === "integer" || field.type === "bigint") {
        if (now !== "" || !creating) body[field.name] = now === "" ? null : Number(now);
      } else if (now !== "" || !creating) {
        body[field.name] = now === "" ? null : now;
      }
    });
    return body;
  }

  async function showForm(entityName, id) {
    const entity = app.entities[entityName];
    const creating = !id;
    let row = null;
    try {
      if (!creating) row = await window.Xrm.WebApi.retrieveRecord(entityName, id);
    } catch (error) {
      view.replaceChildren(heading(entityName), message("Could not load the record: " + error.message, "bad"));
      return;
    }
    const form = document.createElement("form");
    form.className = "record-form";
    form.dataset.form = entity.form.id;
    const fields = [];
    const controls = [];
    const grids = [];
    for (const tab of entity.form.tabs) {
      const tabSection = document.createElement("section");
      tabSection.className = "form-tab";
      const tabTitle = document.createElement("h2");
      tabTitle.textContent = tab.label;
      tabSection.append(tabTitle);
      for (const section of tab.sections) {
        const box = document.createElement("fieldset");
        box.className = "form-section";
        const legend = document.createElement("legend");
        legend.textContent = section.label;
        box.append(legend);
        const list = document.createElement("div");
        list.className = "record";
        for (const item of section.items) {
          if (item.kind === "subgrid") {
            grids.push([box, item]);
            continue;
          }
          const parts = fieldControl(item, row, creating);
          fields.push(item);
          controls.push(parts);
          list.append(parts.label, parts.control);
        }
        if (list.childElementCount) box.append(list);
        tabSection.append(box);
      }
      form.append(tabSection);
    }
    const status = message("");
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = "Save";
    save.dataset.testid = "save-record";
    form.prepend(save, status);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      save.disabled = true;
      status.className = "message";
      status.textContent = "Saving…";
      try {
        const body = changes(fields, controls, creating);
        if (creating) {
          const created = await window.Xrm.WebApi.createRecord(entityName, body);
          location.hash = "record/" + entityName + "/" + created.id;
          return;
        }
        await window.Xrm.WebApi.updateRecord(entityName, id, body);
        await showForm(entityName, id);
        view.querySelector(".record-form .message").textContent = "Saved.";
      } catch (error) {
        status.className = "message bad";
        status.textContent = "Could not save: " + error.message;
      } finally {
        save.disabled = false;
      }
    });
    const back = document.createElement("a");
    const listed = [...subareas.values()].find((s) => s.entity === entityName);
    back.href = listed ? "#" + listed.id : "#list/" + entityName;
    back.textContent = "Back to the list";
    const title = creating ? "New " + (entity.displayName || entityName)
      : formatted(row, entity.name) || entityName;
    view.replaceChildren(heading(title), back, ...recordCommands(entityName, id, creating), form);
    view.dataset.entity = entityName;
    for (const [box, grid] of grids) box.append(subgrid(entityName, id, grid));
    if (!creating && entity.timeline) timeline(id);
  }

  // A subgrid: the records related through the grid's relationship; for N:N, "Add existing".
  function subgrid(entityName, id, grid) {
    const section = document.createElement("section");
    section.className = "related";
    section.dataset.related = grid.target;
    const h = document.createElement("h3");
    h.textContent = grid.label;
    const ul = document.createElement("ul");
    section.append(h, ul);
    if (!id) {
      ul.append(message("Save the record to add " + grid.label.toLowerCase() + "."));
      return section;
    }
    const api = window.Xrm.WebApi;
    const target = app.entities[grid.target];
    (async () => {
      const found = await api.retrieveRecord(entityName, id,
        "?$select=" + app.entities[entityName].id +
        "&$expand=" + grid.navigation + "($select=" + grid.id + "," + grid.display + ")");
      const rows = (found[grid.navigation] || []).slice().sort((a, b) =>
        String(a[grid.display] || "").localeCompare(String(b[grid.display] || "")));
      for (const r of rows) {
        const li = document.createElement("li");
        const link = document.createElement("a");
        link.href = "#record/" + grid.target + "/" + r[grid.id];
        link.textContent = r[grid.display] || "(no name)";
        li.append(link);
        ul.append(li);
      }
      if (!rows.length) ul.append(message("None."));
      if (!grid.associate) return;
      const linked = new Set(rows.map((r) => r[grid.id]));
      const all = await api.retrieveMultipleRecords(grid.target,
        "?$select=" + grid.id + "," + grid.display + "&$orderby=" + grid.display);
      const pick = document.createElement("select");
      pick.setAttribute("aria-label", "Add existing " + (target.displayName || grid.target));
      for (const record of all.entities) {
        if (linked.has(record[grid.id])) continue;
        const option = document.createElement("option");
        option.value = record[grid.id];
        option.textContent = record[grid.display] || "(no name)";
        pick.append(option);
      }
      const add = document.createElement("button");
      add.type = "button";
      add.className = "secondary";
      add.textContent = "Add existing " + (target.displayName || grid.target);
      add.disabled = !pick.options.length;
      add.addEventListener("click", async () => {
        add.disabled = true;
        try {
          await api.execute({
            target: { entityType: entityName, id },
            relatedEntities: [{ entityType: grid.target, id: pick.value }],
            relationship: grid.navigation,
            getMetadata: () => ({ boundParameter: undefined, parameterTypes: {}, operationType: 2, operationName: "Associate" }),
          });
          section.replaceWith(subgrid(entityName, id, grid));
        } catch (error) {
          add.disabled = false;
          section.append(message("Could not add: " + error.message, "bad"));
        }
      });
      section.append(pick, add);
    })().catch((error) => {
      ul.append(message("Could not load the related records: " + error.message, "bad"));
    });
    return section;
  }

  // The timeline a model-driven form shows, newest first: every activity regarding the
  // record and every activity it takes part in (its activity parties: a chat's customer),
  // read through activitypointer whatever the activity's table.
  const TIMELINE_SELECT = "?$select=activityid,subject,activitytypecode,actualend,createdon";

  async function timelineActivities(id) {
    const api = window.Xrm.WebApi;
    const regarding = await api.retrieveMultipleRecords("activitypointer", TIMELINE_SELECT +
      "&$filter=_regardingobjectid_value eq " + id + "&$orderby=createdon desc", PAGE_SIZE);
    const parties = await api.retrieveMultipleRecords("activityparty",
      "?$select=_activityid_value&$filter=_partyid_value eq " + id, PAGE_SIZE);
    const seen = new Set(regarding.entities.map((a) => a.activityid));
    const more = [...new Set(parties.entities.map((p) => p._activityid_value))]
      .filter((activityId) => activityId && !seen.has(activityId));
    let involved = [];
    if (more.length) {
      const found = await api.retrieveMultipleRecords("activitypointer", TIMELINE_SELECT +
        "&$filter=" + more.map((activityId) => "activityid eq " + activityId).join(" or "));
      involved = found.entities;
    }
    return regarding.entities.concat(involved)
      .sort((a, b) => String(b.createdon).localeCompare(String(a.createdon)));
  }

  async function timeline(id) {
    const section = document.createElement("section");
    section.className = "timeline";
    section.dataset.testid = "timeline";
    const h = document.createElement("h2");
    h.textContent = "Timeline";
    const ul = document.createElement("ul");
    section.append(h, ul);
    view.append(section);
    try {
      const activities = await timelineActivities(id);
      for (const activity of activities) {
        const li = document.createElement("li");
        li.dataset.testid = "timeline-item";
        const kind = document.createElement("span");
        kind.className = "kind";
        const type = activity.activitytypecode;
        kind.textContent = (app.entities[type] && app.entities[type].displayName) || type;
        const link = document.createElement("a");
        link.href = "#record/" + type + "/" + activity.activityid;
        link.textContent = activity.subject || "(no subject)";
        const when = document.createElement("time");
        when.textContent = formatted(activity, activity.actualend ? "actualend" : "createdon");
        li.append(kind, " ", link, " ", when);
        ul.append(li);
      }
      if (!activities.length) ul.append(message("No activities yet."));
    } catch (error) {
      ul.append(message("Could not load the timeline: " + error.message, "bad"));
    }
  }

  function route() {
    const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    const record = /^record\/([a-z0-9_]+)\/([0-9a-f-]{36})$/.exec(hash);
    if (record) {
      markCurrent(null);
      showRecord(record[1], record[2]);
      return;
    }
    // Any web resource by name, as Xrm.Navigation.navigateTo opens one outside the sitemap.
    // (`|` as in the designer's "<id>|script".)
    const resource = /^webresource\/([A-Za-z0-9_\-./]+)(\?data=[A-Za-z0-9_\-{}%|]+)?$/.exec(hash);
    if (resource && !resource[1].includes("..")) {
      const url = WEBRESOURCES + resource[1] + (resource[2] || "");
      const listed = [...subareas.values()].find((s) => s.url === url);
      markCurrent(listed ? listed.id : null);
      showFrame(listed || { id: "webresource:" + resource[1] + (resource[2] || ""), url, title: resource[1] });
      return;
    }
    const creating = /^new\/([a-z0-9_]+)$/.exec(hash);
    if (creating && app.entities[creating[1]] && app.entities[creating[1]].form) {
      markCurrent(null);
      showView();
      showForm(creating[1], null);
      return;
    }
    const list = /^list\/([a-z0-9_]+)$/.exec(hash);
    if (list && app.entities[list[1]]) {
      markCurrent(null);
      showList(list[1], list[1]);
      return;
    }
    const subarea = subareas.get(hash) || subareas.values().next().value;
    if (!subarea) {
      showView();
      view.replaceChildren(message("Nothing in this app is open to you. Ask an administrator for a role."));
      return;
    }
    markCurrent(subarea.id);
    document.title = subarea.title + " · " + app.name + " (local)";
    if (subarea.url) showFrame(subarea);
    else showList(subarea.entity, subarea.title);
  }

  document.getElementById("app-name").textContent = app.name;
  document.getElementById("user-name").textContent = user.name;
  document.getElementById("sign-out").addEventListener("click", (event) => {
    event.preventDefault();
    // The cookie signs in pages opened outside the shell (ClientGlobalContext.js.aspx).
    fetch("/app/api/session", { method: "DELETE", headers: { "Content-Type": "application/json" } })
      .catch(() => {}).finally(signedOut);
  });
  // Stands in for the app-wide command a tenant would carry: the solution's own script.
  document.getElementById("open-console-pane").addEventListener("click", () => {
    window.CRMChat.openConsolePane(window.Xrm).catch((error) =>
      ask({ title: "Chat console", text: "Could not open the console: " + error.message }, false));
  });
  buildNav();
  window.addEventListener("hashchange", route);
  route();
}(window.CrmChatStandin));
