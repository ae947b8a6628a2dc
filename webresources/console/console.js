// CRM Chat agent console: incoming chats, visitor and agent chats, visitors and agents, all
// live from the agent WebSocket (docs/protocol.md). Runs inside a model-driven app (Xrm from
// the host) or served by the CRM Chat service. Signs in by the handshake (ARCHITECTURE.md
// flow 2) through ../common/signin.js. Everything the server sends is attacker-controlled text (visitor names, pages,
// messages): it only ever reaches the page through textContent or attribute values.
"use strict";

(function () {
  const xrm = window.CRMChatSignIn.xrm();

  // Reconnect backoff: doubles from the first delay up to the cap, with jitter.
  const RECONNECT_FIRST_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  // Our own liveness check: a ping when the line was quiet, a reconnect when it stays quiet.
  const PING_EVERY_MS = 30000;
  const SILENT_LIMIT_MS = 70000;
  // Renew the service token this long before it expires.
  const TOKEN_RENEW_MARGIN_SECS = 600;
  const TITLE_FLASH_MS = 1000;
  const TYPING_IDLE_MS = 3000;
  const TOAST_MS = 6000;
  const MAX_TEXT_CHARS = 4000;
  // A customer message older than this when it reaches the console (a resync after a
  // reconnect) is history, not news: no sound or toast for it.
  const ALERT_FRESH_MS = 60000;
  const MESSAGE_TOAST_CHARS = 120;
  // Offer toasts shown at once, oldest first: more would cover the chat; the rest wait in
  // the Incoming list, which the last line points to.
  const MAX_OFFER_TOASTS = 3;
  const EMOJI = ["🙂", "😀", "😉", "😊", "👍", "👋", "🙏", "🎉", "❤️", "✅", "🤔", "😅"];
  // Paused is the service's (an offer rang past its topic's answer time limit), never chosen.
  const STATUS_LABELS = {
    available: "Available", busy: "Busy", away: "Away", paused: "Paused — missed chat", offline: "Offline",
  };
  const REGARDING_LABELS = { lead: "Lead", contact: "Contact", incident: "Case" };

  const $ = (id) => document.getElementById(id);

  // ---- state -------------------------------------------------------------------------
  const state = {
    session: null,          // CRMChatSignIn session: the service's base URL and our token
    me: null,
    agents: new Map(),      // agent_id -> agent
    visitors: new Map(),    // visitor_id -> visitor
    incoming: new Map(),    // conversation_id -> chat offered to me
    waiting: new Map(),     // conversation_id -> waiting chat I may pick up (Waiting chats)
    topics: [],             // every topic {id, name}: the queues a chat can be transferred to
    chats: new Map(),       // conversation_id -> chat I take part in (incl. ended, still open)
    tabs: [],               // conversation ids open as tabs, in order
    active: null,           // conversation id shown
    pending: new Map(),     // client_id -> {conversation_id, text, failed}
    drafts: new Map(),      // conversation_id -> unsent composer text
    unread: new Map(),      // conversation_id -> count
    typing: new Map(),      // conversation_id -> {name, until}
    snippets: null,
    labels: [],             // every label there is ({id, name, color}), from the snapshot
    wantFocus: new Set(),   // conversation ids to open and focus when they arrive
    flagged: new Set(),     // chats handed to me (invite, transfer) not opened yet
    earlier: null,          // {id, messages|null}: the earlier chat open in History
    ownClientIds: new Set(), // client ids of messages this console sent
    pendingVersion: 0,      // bumped whenever `pending` changes, to redraw the chat
    acceptPending: null,    // the conversation this console last tried to accept
    prefs: null,            // this agent's alert choices (alerts.js), once the snapshot says who
    offerCards: new Map(),  // conversation_id -> {node, chat, shownAt}: the offer's toast on screen
    reminded: new Map(),    // conversation_id -> waitingSince a "customer waits" toast was for
  };
  const alerts = window.CRMChatAlerts;

  // ---- small helpers -----------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function randomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(18));
    return btoa(String.fromCharCode.apply(null, bytes))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function parseTime(value) {
    const ms = value ? Date.parse(value) : NaN;
    return Number.isNaN(ms) ? null : ms;
  }

  function formatDuration(ms) {
    const secs = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(secs / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const s = String(secs % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
  }

  function formatClock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function formatDate(ms) {
    return new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  // A counter element: the ticker rewrites it every second from data-since, while it is on
  // screen (rewriting all 250 at 200 visitors and 50 chats cost 20 ms of CPU a second); one
  // scrolled into view is brought up to date at once.
  function counter(since, testid, title) {
    const node = el("span", { class: "counter", "data-testid": testid, title });
    setSince(node, since);
    counters.watched.add(node);
    if (counters.watch) counters.watch.observe(node);
    return node;
  }

  const counters = {
    watched: new Set(),     // every counter made (dropped once out of the page)
    shown: new Set(),       // those on screen
    watch: "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          counters.shown.add(entry.target);
          writeSince(entry.target, Date.now());
        } else {
          counters.shown.delete(entry.target);
        }
      }
    }) : null,
  };

  function writeSince(node, now) {
    if (node.dataset.since) node.textContent = formatDuration(now - Number(node.dataset.since));
  }

  function setSince(node, since) {
    const ms = typeof since === "number" ? since : parseTime(since);
    if (ms === null) {
      delete node.dataset.since;
      node.textContent = "";
    } else {
      node.dataset.since = String(ms);
      node.textContent = formatDuration(Date.now() - ms);
    }
  }

  function safeColor(value) {
    return /^#[0-9a-fA-F]{6}$/.test(value || "") ? value : "#616161";
  }

  function textOn(hex) {
    const n = parseInt(hex.slice(1), 16);
    const luminance = (0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
    return luminance > 0.6 ? "#242424" : "#ffffff";
  }

  function topicChips(topics) {
    return (topics || []).map((topic) => {
      const color = safeColor(topic.color);
      return el("span", {
        class: "chip", "data-testid": "topic-chip", style: "background:" + color + ";color:" + textOn(color),
        text: topic.name,
      });
    });
  }

  function pageText(page) {
    if (!page) return "";
    if (typeof page === "string") return page;
    return page.title || page.url || "";
  }

  function pageUrl(page) {
    if (!page) return "";
    return typeof page === "string" ? page : page.url || "";
  }

  function visitorName(visitor) {
    return (visitor && visitor.name) || "Visitor";
  }

  function chatName(chat) {
    if (chat.kind === "visitor") return visitorName(chat.visitor);
    if (chat.consult_of) return "Consult: " + (chat.consult_of.visitor_name || "Visitor") + " · " + agentNames(chat);
    return agentNames(chat) || "Agent chat";
  }

  // The other agents of an agent chat or consult, by name.
  function agentNames(chat) {
    const others = (chat.participants || [])
      .filter((p) => !(p.kind === "agent" && state.me && p.id === state.me.agent_id))
      .map((p) => p.name);
    return others.join(", ");
  }

  function widgetName(widgetId) {
    for (const chat of [...state.chats.values(), ...state.incoming.values()]) {
      if (chat.widget && chat.widget.id === widgetId && chat.widget.name) return chat.widget.name;
    }
    return widgetId ? "Widget " + String(widgetId).slice(0, 8) : "";
  }

  function toast(text, tone) {
    const node = el("div", { class: "toast " + (tone || ""), role: "status", "data-testid": "toast", text });
    $("toasts").append(node);
    setTimeout(() => node.remove(), TOAST_MS);
  }

  // ---- HTTP and sign-in ------------------------------------------------------------------
  // API calls for the signed-in agent; a token near its end is renewed first.
  async function agentCall(method, path, body) {
    if (!tokenFresh()) await state.session.signIn();
    return state.session.call(method, path, body);
  }

  function tokenFresh() {
    return state.session.fresh(TOKEN_RENEW_MARGIN_SECS);
  }

  // ---- the WebSocket -------------------------------------------------------------------
  const link = {
    socket: null,
    attempt: 0,
    timer: null,
    lastHeard: 0,
    opened: false,
    gotSnapshot: false,
    needSignIn: false,
    refused: null,          // why the service refused this user (no role, no agent profile)
  };

  function setConnection(stateName, text) {
    const node = $("connection");
    node.dataset.state = stateName;
    node.textContent = text;
  }

  function send(frame) {
    if (!link.socket || link.socket.readyState !== WebSocket.OPEN) return false;
    link.socket.send(JSON.stringify(frame));
    return true;
  }

  async function connect() {
    clearTimeout(link.timer);
    try {
      if (link.needSignIn || !tokenFresh()) {
        setConnection("connecting", "Signing in…");
        if (!await state.session.reachable()) {
          scheduleReconnect("The CRM Chat service cannot be reached.");
          return;
        }
        await state.session.signIn();
        link.needSignIn = false;
      }
    } catch (error) {
      scheduleReconnect("Could not sign in: " + error.message + ".");
      return;
    }
    setConnection("connecting", link.attempt ? "Reconnecting…" : "Connecting…");
    const session = state.session;
    // The token rides in the Sec-WebSocket-Protocol header, not the URL (proxy logs and
    // history keep URLs); the service answers "crmchat.v1" only (docs/protocol.md).
    const url = session.base.replace(/^http/i, "ws") + "/ws/agent";
    const socket = new WebSocket(url, ["crmchat.v1", "crmchat.bearer." + session.token()]);
    link.socket = socket;
    link.gotSnapshot = false;
    link.opened = false;
    socket.addEventListener("open", () => {
      link.opened = true;
      link.lastHeard = Date.now();
    });
    socket.addEventListener("message", (event) => {
      if (socket !== link.socket) return;
      link.lastHeard = Date.now();
      let frame;
      try { frame = JSON.parse(event.data); } catch (error) { return; }
      if (frame && typeof frame.type === "string") handle(frame);
    });
    socket.addEventListener("close", () => {
      if (socket !== link.socket) return;
      link.socket = null;
      $("status").disabled = true;
      if (link.refused) {
        // No agent role or profile: retrying cannot help until an admin changes that.
        setConnection("offline", link.refused);
        return;
      }
      // Accepted, then closed before the snapshot: most likely the token; sign in afresh.
      if (link.opened && !link.gotSnapshot) link.needSignIn = true;
      scheduleReconnect();
    });
  }

  function scheduleReconnect(reason) {
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** link.attempt);
    const jittered = Math.round(delay * (0.75 + Math.random() * 0.5));
    link.attempt += 1;
    setConnection("offline", (reason || "Disconnected.") + " Reconnecting in " + Math.ceil(jittered / 1000) + " s…");
    clearTimeout(link.timer);
    link.timer = setTimeout(connect, jittered);
  }

  function watchLine() {
    const socket = link.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const quiet = Date.now() - link.lastHeard;
    if (quiet > SILENT_LIMIT_MS) socket.close();
    else if (quiet > PING_EVERY_MS) send({ type: "ping" });
  }

  // ---- incoming frames -----------------------------------------------------------------
  function handle(frame) {
    // Marked before and after: a frame can move a chat (incoming -> mine) or its visitor.
    // Typing shows only in the chat window; a message or a rating leaves the visitor's row.
    const id = frame.type === "typing" ? null : frame.conversation_id || (frame.chat && frame.chat.conversation_id);
    const visitorRow = frame.type !== "message.created" && frame.type !== "chat.rated";
    touchChat(id, visitorRow);
    switch (frame.type) {
      case "snapshot": onSnapshot(frame); break;
      // The service may have missed events for us: reconnect, then the snapshot and a
      // chat.resync per open chat catch up (docs/protocol.md).
      case "resync": if (link.socket) link.socket.close(); break;
      case "agents.updated": (frame.agents || []).forEach(onAgent); break;
      case "visitor.updated": onVisitor(frame.visitor); break;
      case "visitor.left": onVisitorLeft(frame.visitor_id); break;
      case "chat.offered": onOffered(frame.chat); break;
      case "chat.withdrawn": onWithdrawn(frame.conversation_id); break;
      case "chat.waiting": onWaiting(frame.chat); break;
      case "chat.unoffered": onUnoffered(frame.conversation_id); break;
      case "chat.accepted": onAccepted(frame.chat); break;
      case "chat.updated": onChatUpdated(frame.chat); break;
      case "message.created": onMessage(frame); break;
      case "typing": onTyping(frame); break;
      case "message.read": onRead(frame); break;
      case "chat.ended": onEnded(frame.conversation_id, frame.by); break;
      case "chat.rated": onRated(frame.conversation_id, frame.rating); break;
      case "supervisor.board": onBoard(frame.board); break;
      case "supervisor.board_changed": onBoardChanged(frame); break;
      case "error": onError(frame); break;
      default: return;   // pong and anything newer than this console
    }
    touchChat(id, visitorRow);
    if (frame.type === "snapshot") touchAll();
    else if (frame.type === "typing" && frame.conversation_id === state.active) view.chat = true;
    else if (frame.type === "visitor.updated") touchVisitor(frame.visitor && frame.visitor.visitor_id);
    else if (frame.type === "visitor.left") touchVisitor(frame.visitor_id);
    else if (frame.type === "agents.updated") {
      for (const agent of frame.agents || []) if (agent && agent.agent_id) lists.agents.dirty.add(agent.agent_id);
    }
    else if (frame.type === "error") view.chat = true;
    render(false);
  }

  function onSnapshot(frame) {
    link.gotSnapshot = true;
    link.attempt = 0;
    state.me = frame.me || null;
    if (state.me && (!state.prefs || state.prefs.agentId !== state.me.agent_id)) {
      state.prefs = Object.assign(alerts.preferences(state.me.agent_id), { agentId: state.me.agent_id });
      applyPreferences();
      loadCrmPreferences(state.me.agent_id);
    }
    state.agents = new Map((frame.agents || []).map((a) => [a.agent_id, a]));
    state.visitors = new Map((frame.visitors || []).map((v) => [v.visitor_id, v]));
    state.incoming = new Map((frame.incoming || []).map((c) => [c.conversation_id, c]));
    state.waiting = new Map((frame.waiting || []).map((c) => [c.conversation_id, c]));
    state.topics = Array.isArray(frame.topics) ? frame.topics : [];
    state.labels = Array.isArray(frame.labels) ? frame.labels : [];
    // The snapshot replaces the state; messages already held are kept and merged by seq.
    const previous = state.chats;
    state.chats = new Map();
    for (const chat of frame.chats || []) {
      state.chats.set(chat.conversation_id, mergeChat(previous.get(chat.conversation_id), chat));
    }
    // Chats that vanished while we were away have ended; keep open tabs readable.
    for (const [id, old] of previous) {
      if (!state.chats.has(id) && state.tabs.includes(id)) {
        old.state = "ended";
        state.chats.set(id, old);
      }
    }
    for (const chat of state.chats.values()) {
      if (chat.state !== "ended") {
        send({ type: "chat.resync", conversation_id: chat.conversation_id, since_seq: contiguousSeq(chat) });
      }
      // Open chats and those waiting for my disposition (wrap-up) get a tab; postponed
      // ones wait in their list.
      const wanted = (chat.state !== "ended" || chat.wrapup_until) && !chat.postponed_until;
      if (wanted && state.tabs.indexOf(chat.conversation_id) < 0) state.tabs.push(chat.conversation_id);
    }
    if (!state.active && state.tabs.length) state.active = state.tabs[0];
    // Unsent messages go again with the same client_id: the server stores each once.
    sender.inFlight = null;
    pump();
    const status = $("status");
    status.disabled = false;
    setConnection("online", "Connected");
    if (state.incoming.size) notifyIncoming();
    $("supervisor-panel").hidden = !(state.me && state.me.supervisor);
  }

  function mergeChat(old, chat) {
    const merged = Object.assign({}, chat);
    merged.messages = new Map();
    for (const m of (old && old.messages ? old.messages.values() : [])) merged.messages.set(m.seq, m);
    for (const m of chat.messages || []) merged.messages.set(m.seq, m);
    merged.version = ((old && old.version) || 0) + 1;
    // A chat object without the key keeps the link; an explicit null (unpaired) clears it.
    if (old && old.regarding && !("regarding" in chat)) merged.regarding = old.regarding;
    if (old && old.leftReason) {
      merged.leftReason = old.leftReason;
      merged.state = "ended";
    }
    if (old && old.endedBy) merged.endedBy = old.endedBy;
    merged.waitingSince = "waiting_since" in chat ? parseTime(chat.waiting_since)
      : old ? old.waitingSince : computeWaiting(merged);
    return merged;
  }

  // Waiting starts at the visitor's first message after the last agent answer.
  function computeWaiting(chat) {
    let since = null;
    for (const m of sortedMessages(chat)) {
      const kind = m.sender && m.sender.kind;
      if (kind === "agent") since = null;
      else if (kind === "visitor" && since === null) since = parseTime(m.sent_at);
    }
    return since;
  }

  function contiguousSeq(chat) {
    let seq = 0;
    while (chat.messages.has(seq + 1)) seq += 1;
    return seq;
  }

  function sortedMessages(chat) {
    return [...chat.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  function onAgent(agent) {
    if (!agent || !agent.agent_id) return;
    state.agents.set(agent.agent_id, agent);
    if (state.me && agent.agent_id === state.me.agent_id) {
      notePause(state.me.status, agent.status);
      state.me = Object.assign({}, state.me, agent);
    }
  }

  // ---- routing: waiting chats, the ring moving on, the automatic pause (issue 11) --------
  // A chat entered a queue I serve: listed under Waiting chats, to pick up with Accept.
  function onWaiting(chat) {
    if (!chat || !chat.conversation_id || state.chats.has(chat.conversation_id)) return;
    state.waiting.set(chat.conversation_id, chat);
  }

  // The offer rang for someone else now (I rejected nothing): it stays under Waiting chats.
  function onUnoffered(conversationId) {
    const chat = state.incoming.get(conversationId);
    state.incoming.delete(conversationId);
    if (chat && !state.waiting.has(conversationId)) state.waiting.set(conversationId, chat);
  }

  function notePause(before, after) {
    if (after === "paused" && before !== "paused") {
      toast("Paused — missed chat: an offer rang too long. Choose Available to get chats again.", "bad");
    }
  }

  function waitingItem(chat) {
    return el("li", {
      class: "item", "data-testid": "waiting-chat", "data-conversation-id": chat.conversation_id,
    },
    el("div", { class: "item-main" },
      el("span", { class: "name", text: visitorName(chat.visitor) }),
      el("span", { class: "meta" },
        chat.channel ? channelBadge(chat.channel) : el("span", { text: (chat.widget && chat.widget.name) || "" }),
        counter(chat.waiting_since || chat.started_at, "waiting-waited", "Waiting")),
      el("span", { class: "chips" }, ...topicChips(chat.topics))),
    el("button", {
      type: "button", class: "btn small", "data-testid": "pick-button",
      "data-conversation-id": chat.conversation_id, text: "Accept",
      title: "Take this chat yourself", onclick: () => accept(chat.conversation_id),
    }));
  }

  // The queues of the transfer menu (every topic but the one the chat is in now) and of the
  // invite menu (every topic: its routing picks a free agent to join, maybe a colleague).
  function queueItems(chat, menu, action) {
    const current = new Set(action === "transfer" && (chat.topics || []).length === 1 ? [chat.topics[0].id] : []);
    return (chat.kind === "visitor" ? state.topics : []).filter((t) => !current.has(t.id)).map((topic) =>
      el("li", {}, el("button", {
        type: "button", class: "menu-item", "data-testid": action + "-queue", "data-topic-id": topic.id,
        onclick: () => {
          send({ type: "chat." + action, conversation_id: chat.conversation_id, topic_id: topic.id });
          menu.hidden = true;
          toast((action === "invite" ? "Asking the " + topic.name + " queue to join."
            : "Transferring to the " + topic.name + " queue."), "ok");
        },
      }, "Queue: " + topic.name)));
  }

  function onVisitor(visitor) {
    if (!visitor || !visitor.visitor_id) return;
    state.visitors.set(visitor.visitor_id, visitor);
    for (const chat of [...state.chats.values(), ...state.incoming.values()]) {
      if (chat.visitor && chat.visitor.visitor_id === visitor.visitor_id) {
        chat.visitor = Object.assign({}, chat.visitor, {
          page: visitor.page !== undefined ? visitor.page : chat.visitor.page,
          connected: visitor.connected !== undefined ? visitor.connected : chat.visitor.connected,
        });
        if (visitor.name && visitor.name !== "Visitor") chat.visitor.name = visitor.name;
      }
    }
  }

  function onVisitorLeft(visitorId) {
    state.visitors.delete(visitorId);
    for (const chat of [...state.chats.values(), ...state.incoming.values()]) {
      if (chat.visitor && chat.visitor.visitor_id === visitorId) {
        chat.visitor = Object.assign({}, chat.visitor, { connected: false });
      }
    }
  }

  function onOffered(chat) {
    if (!chat || !chat.conversation_id || state.chats.has(chat.conversation_id)) return;
    state.incoming.set(chat.conversation_id, chat);
    notifyIncoming();
    notifyOffered(chat);
  }

  // An offer taken by someone else, or a chat of mine I transferred to another agent.
  function onWithdrawn(conversationId) {
    state.incoming.delete(conversationId);
    state.waiting.delete(conversationId);
    const chat = state.chats.get(conversationId);
    if (chat && chat.state !== "ended") {
      chat.state = "ended";
      chat.leftReason = "You transferred this chat.";
      chat.waitingSince = null;
      chat.version = (chat.version || 0) + 1;
    }
  }

  function onAccepted(chat) {
    if (!chat || !chat.conversation_id) return;
    const id = chat.conversation_id;
    state.incoming.delete(id);
    state.waiting.delete(id);
    state.chats.set(id, mergeChat(state.chats.get(id), chat));
    if (!state.tabs.includes(id)) state.tabs.push(id);
    // Focus chats I asked for (accept, agent chat); others (invites, transfers) open as a
    // tab without taking the agent away from the chat in front of them.
    const other = chat.consult_of ? "consult:" + chat.consult_of.conversation_id
      : chat.kind === "agent" ? "agent:" + agentOther(chat) : null;
    const asked = state.wantFocus.delete(id) || (other !== null && state.wantFocus.delete(other));
    if (asked || !state.active) {
      state.active = id;
    } else if (state.active !== id) {
      // Invited or transferred to me while I am in another chat: flag the tab and say so.
      state.flagged.add(id);
      toast("New chat for you: " + chatName(state.chats.get(id)) + ". Open its flagged tab.", "ok");
    }
  }

  function agentOther(chat) {
    const other = (chat.participants || []).find(
      (p) => p.kind === "agent" && state.me && p.id !== state.me.agent_id);
    return other ? other.id : "";
  }

  function onChatUpdated(chat) {
    if (!chat || !chat.conversation_id) return;
    const id = chat.conversation_id;
    if (state.incoming.has(id) && !state.chats.has(id)) {
      state.incoming.set(id, Object.assign({}, state.incoming.get(id), chat));
      if (state.waiting.has(id)) state.waiting.set(id, Object.assign({}, state.waiting.get(id), chat));
      return;
    }
    if (state.waiting.has(id) && !state.chats.has(id)) {
      state.waiting.set(id, Object.assign({}, state.waiting.get(id), chat));
      return;
    }
    const old = state.chats.get(id);
    const merged = mergeChat(old, chat);
    notePostponed(old, merged);
    // Transferred away: I am no longer a participant. Keep the tab readable, read-only.
    const agents = (merged.participants || []).filter((p) => p.kind === "agent");
    if (state.me && agents.length && !agents.some((p) => p.id === state.me.agent_id)) {
      merged.state = "ended";
      merged.leftReason = "This chat was transferred.";
    }
    state.chats.set(id, merged);
  }

  // Postponed (docs/agent-workspace.md, "Postpone"): the chat leaves its tab for the
  // Postponed list; back (the customer wrote, or its time came), it opens a flagged tab.
  function notePostponed(old, chat) {
    const id = chat.conversation_id;
    const was = Boolean(old && old.postponed_until);
    if (chat.postponed_until && !was) {
      state.tabs = state.tabs.filter((tab) => tab !== id);
      if (state.active === id) state.active = state.tabs[state.tabs.length - 1] || null;
    } else if (was && !chat.postponed_until && chat.state !== "ended") {
      if (!state.tabs.includes(id)) state.tabs.push(id);
      if (state.active !== id) state.flagged.add(id);
      toast(chatName(chat) + " is back from Postponed.", "ok");
    }
  }

  function onMessage(message) {
    const chat = state.chats.get(message.conversation_id);
    if (message.client_id && state.pending.delete(message.client_id)) state.pendingVersion += 1;
    if (message.client_id && message.client_id === sender.inFlight) {
      sender.inFlight = null;
      setTimeout(pump, 0);
    }
    if (!chat || typeof message.seq !== "number") return;
    if (chat.messages.has(message.seq)) return;   // duplicate (resync, resend)
    const gap = message.seq > contiguousSeq(chat) + 1;
    chat.messages.set(message.seq, message);
    chat.version = (chat.version || 0) + 1;
    const kind = message.sender && message.sender.kind;
    if (kind === "agent") chat.waitingSince = null;
    else if (kind === "visitor") {
      if (chat.waitingSince === null || chat.waitingSince === undefined) chat.waitingSince = parseTime(message.sent_at) || Date.now();
      chat.last_visitor_message_at = message.sent_at;
      if (chat.visitor && chat.visitor.connected === false) chat.visitor.connected = true;
    }
    if (kind !== "agent" || !isMine(message)) {
      if (state.active !== message.conversation_id || document.hidden) {
        state.unread.set(message.conversation_id, (state.unread.get(message.conversation_id) || 0) + 1);
      }
      state.typing.delete(message.conversation_id);
      if (kind === "visitor" && chat.state !== "ended") notifyMessage(chat, message);
    }
    if (!state.tabs.includes(message.conversation_id) && chat.state !== "ended") state.tabs.push(message.conversation_id);
    if (gap) send({ type: "chat.resync", conversation_id: chat.conversation_id, since_seq: contiguousSeq(chat) });
  }

  function isMine(message) {
    if (message.client_id && state.ownClientIds.has(message.client_id)) return true;
    return Boolean(state.me && message.sender && message.sender.kind === "agent" && message.sender.name === state.me.name);
  }

  function onTyping(frame) {
    if (!frame.conversation_id) return;
    if (frame.on) state.typing.set(frame.conversation_id, { name: frame.name || "Visitor", until: Date.now() + 10000 });
    else state.typing.delete(frame.conversation_id);
  }

  function onRated(conversationId, rating) {
    const chat = state.chats.get(conversationId);
    if (!chat || typeof rating !== "number") return;
    chat.rating = rating;
    chat.version = (chat.version || 0) + 1;
  }

  // The visitor's rating as stars, e.g. "★★★★☆"; "" when there is none.
  function ratingStars(rating) {
    const n = Math.max(0, Math.min(5, Math.round(Number(rating) || 0)));
    return n ? "★".repeat(n) + "☆".repeat(5 - n) : "";
  }
  function ratingBadge(chat, testid) {
    if (!chat.rating) return null;
    return el("span", {
      class: "rating", "data-testid": testid, "data-rating": String(chat.rating),
      title: "Visitor's rating: " + chat.rating + " of 5", text: ratingStars(chat.rating),
    });
  }

  function onEnded(conversationId, by) {
    state.incoming.delete(conversationId);
    const chat = state.chats.get(conversationId);
    if (!chat) return;
    chat.state = "ended";
    chat.endedBy = by;
    chat.waitingSince = null;
    chat.version = (chat.version || 0) + 1;
    for (const item of state.pending.values()) {
      if (item.conversation_id === conversationId && !item.failed) {
        item.failed = "the chat has ended";
        state.pendingVersion += 1;
      }
    }
  }

  function onError(frame) {
    const ref = frame.ref || "";
    if (frame.code === "not_signed_in") {
      link.needSignIn = true;
      return;   // the server closes the socket; reconnect signs in again
    }
    // Refusals that retrying cannot fix: no role or profile, or an unsubscribed organisation.
    if ((frame.code === "forbidden" || frame.code === "unsubscribed") && !link.gotSnapshot) {
      link.refused = frame.message || "You are not allowed to use the agent console.";
      return;   // the server closes the socket
    }
    const item = state.pending.get(ref);
    if (item) {
      if (frame.code === "rate_limited") {
        slowDown(frame.retry_after_ms);
        return;
      }
      // Shown on the message itself, with a Retry link.
      item.failed = frame.message || frame.code;
      state.pendingVersion += 1;
      if (sender.inFlight === ref) {
        sender.inFlight = null;
        setTimeout(pump, 0);
      }
      return;
    }
    if (ref === "chat.accept" && state.acceptPending) {
      // Too late (another agent won), or the visitor gave up: the offer is gone.
      state.incoming.delete(state.acceptPending);
      touchChat(state.acceptPending);
      state.wantFocus.delete(state.acceptPending);
      state.acceptPending = null;
    }
    toast(frame.message || frame.code || "Something went wrong.", "bad");
  }

  function resend(clientId) {
    const item = state.pending.get(clientId);
    if (!item) return;
    item.failed = null;
    state.pendingVersion += 1;
    pump();
    render();
  }

  // Messages leave one at a time, in the order typed (across all chats: the service's rate
  // limit is per connection): the next goes when the service stored the one before. Sending
  // each at once let the limit refuse some while later ones got through, out of order.
  const sender = { inFlight: null, slowTimer: 0 };
  function pump() {
    if (sender.inFlight || sender.slowTimer) return;
    for (const [clientId, item] of state.pending) {
      if (item.failed) continue;
      if (send({ type: "message.send", conversation_id: item.conversation_id, client_id: clientId, text: item.text })) {
        sender.inFlight = clientId;
      }
      return;
    }
  }
  function slowDown(ms) {
    sender.inFlight = null;
    clearTimeout(sender.slowTimer);
    sender.slowTimer = setTimeout(() => {
      sender.slowTimer = 0;
      $("slowed").hidden = true;
      pump();
    }, Math.max(250, ms || 1000));
    $("slowed").hidden = false;
  }

  // ---- notifications ---------------------------------------------------------------------
  // Inside the model-driven app the browser tab shows the app's title, not this frame's:
  // flash that one too when the frame may reach it (same origin inside Dataverse).
  function titleDocuments() {
    const docs = [document];
    try {
      if (window.top !== window && window.top.document) docs.push(window.top.document);
    } catch (error) { /* another origin: only our own title */ }
    return docs;
  }

  let flashTimer = null;

  // Unread customer messages count while the console is hidden (the agent cannot see
  // them); incoming chats always.
  function unreadTotal() {
    let total = 0;
    for (const count of state.unread.values()) total += count;
    return total;
  }

  function attentionCount() {
    return state.incoming.size + (document.hidden ? unreadTotal() : 0);
  }

  function flashTitle() {
    if (flashTimer) return;
    const docs = titleDocuments().map((doc) => ({ doc, title: doc.title }));
    let on = false;
    flashTimer = setInterval(() => {
      const count = attentionCount();
      on = !on && count > 0;
      const what = state.incoming.size ? "New chat" : "New message";
      for (const { doc, title } of docs) doc.title = on ? "(" + count + ") " + what + " · " + title : title;
      if (!count) {
        clearInterval(flashTimer);
        flashTimer = null;
      }
    }, TITLE_FLASH_MS);
  }

  function ring() {
    if (state.prefs && state.prefs.sound) alerts.beep();
  }

  function notifyIncoming() {
    flashTitle();
    ring();
  }

  // A chat offered while the console is hidden also reaches the desktop.
  function notifyOffered(chat) {
    const topics = (chat.topics || []).map((t) => t.name).join(", ");
    alerts.desktop("New chat: " + visitorName(chat.visitor),
      [topics, (chat.widget && chat.widget.name) || ""].filter(Boolean).join(" · "),
      "offer:" + chat.conversation_id, () => openOfferFocus(chat.conversation_id));
  }

  function openOfferFocus(conversationId) {
    const card = state.offerCards.get(conversationId);
    const button = card && card.node.querySelector("[data-testid=offer-accept]");
    if (button) button.focus();
  }

  // A customer message in one of my chats: sound, badge and title when the agent is not
  // looking at that chat; a toast (and a desktop notification when hidden) for every one
  // of them if the agent chose so; otherwise `remindWaiting` toasts once they have waited.
  function notifyMessage(chat, message) {
    const sent = parseTime(message.sent_at);
    if (sent !== null && Date.now() - sent > ALERT_FRESH_MS) return;
    const looking = state.active === chat.conversation_id && !document.hidden;
    if (looking) return;
    ring();
    flashTitle();
    if (state.prefs && state.prefs.mode === "every") {
      const text = String(message.text || "").slice(0, MESSAGE_TOAST_CHARS);
      messageToast(chat, chatName(chat) + ": " + text);
      alerts.desktop(chatName(chat), text, "chat:" + chat.conversation_id, () => openChat(chat.conversation_id));
    }
  }

  function remindWaiting(now) {
    if (!state.prefs || state.prefs.mode !== "delay") return;
    const limit = state.prefs.delaySecs * 1000;
    for (const chat of state.chats.values()) {
      const since = chat.waitingSince;
      if (chat.kind !== "visitor" || chat.state === "ended" || !since || now - since < limit) continue;
      if (state.reminded.get(chat.conversation_id) === since) continue;
      state.reminded.set(chat.conversation_id, since);
      const text = chatName(chat) + " has waited " + formatDuration(now - since) + " for an answer.";
      messageToast(chat, text);
      alerts.desktop(chatName(chat), text, "chat:" + chat.conversation_id, () => openChat(chat.conversation_id));
      ring();
      flashTitle();
    }
  }

  function messageToast(chat, text) {
    const node = el("button", {
      type: "button", class: "toast message", "data-testid": "message-toast",
      "data-conversation-id": chat.conversation_id, text,
      onclick: () => { node.remove(); openChat(chat.conversation_id); },
    });
    $("toasts").append(node);
    setTimeout(() => node.remove(), TOAST_MS);
  }

  // The offer's toast: who (a link to their CRM contact when one is known), the topic,
  // how long they have waited and how long the toast has been up, and Accept. It stays
  // until the chat is accepted (here or by a colleague) or withdrawn.
  function offerCard(chat, shownAt) {
    const name = visitorName(chat.visitor);
    const contact = chat.contact && chat.contact.id ? chat.contact : null;
    const who = contact
      ? el("a", {
        href: "#", class: "offer-name", "data-testid": "offer-contact", "data-id": contact.id, text: name,
        title: "Open the contact in CRM",
        onclick: (event) => {
          event.preventDefault();
          openRegarding({ table: "contact", id: contact.id, name: contact.name });
        },
      })
      : el("span", { class: "offer-name", "data-testid": "offer-name", text: name });
    return el("div", {
      class: "offer-toast", role: "alert", "data-testid": "offer-toast", "data-conversation-id": chat.conversation_id,
    },
    who,
    el("span", { class: "chips", "data-testid": "offer-topics" }, ...topicChips(chat.topics),
      el("span", { class: "muted", text: (chat.widget && chat.widget.name) || "" })),
    el("span", { class: "offer-times" },
      el("span", {}, "Waiting ", counter(chat.started_at, "offer-waited", "Waiting since the chat started")),
      el("span", {}, "Shown ", counter(shownAt, "offer-shown", "Since this notification appeared"))),
    el("span", { class: "offer-buttons" },
      el("button", {
        type: "button", class: "btn primary small", "data-testid": "offer-accept", text: "Accept",
        onclick: () => accept(chat.conversation_id),
      }),
      el("button", {
        type: "button", class: "btn small", "data-testid": "offer-reject", text: "Reject",
        title: "Leave this chat to the other agents", onclick: () => reject(chat.conversation_id),
      }),
      offerLink(chat)));
  }

  // An offer updated while it rings (its contact found, say) is redrawn in place.
  function syncOfferToasts() {
    const shown = [...state.incoming.keys()].slice(0, MAX_OFFER_TOASTS);
    for (const [id, card] of state.offerCards) {
      if (!shown.includes(id)) {
        card.node.remove();
        state.offerCards.delete(id);
      }
    }
    for (const id of shown) {
      const chat = state.incoming.get(id);
      const card = state.offerCards.get(id);
      if (card && card.chat === chat) continue;
      const shownAt = card ? card.shownAt : Date.now();
      const node = offerCard(chat, shownAt);
      if (card) card.node.replaceWith(node);
      else $("offer-toasts").append(node);
      state.offerCards.set(id, { node, chat, shownAt });
    }
    const more = state.incoming.size - shown.length;
    let line = $("offer-more");
    if (more > 0) {
      if (!line) line = el("p", { id: "offer-more", class: "offer-more", "data-testid": "offer-more" });
      const text = "+" + more + " more in Incoming chats";
      if (line.textContent !== text) line.textContent = text;
      if (line.parentNode !== $("offer-toasts") || line.nextSibling) $("offer-toasts").append(line);
    } else if (line) {
      line.remove();
    }
  }

  function applyPreferences() {
    const prefs = state.prefs;
    $("sound").checked = prefs.sound;
    $("alert-mode").value = prefs.mode;
    $("alert-delay").value = String(prefs.delaySecs);
    $("alert-delay").hidden = prefs.mode !== "delay";
    for (const id of ["sound", "alert-mode", "alert-delay"]) $(id).disabled = false;
  }

  async function savePreferences() {
    if (!state.me || !state.prefs) return;
    const agentId = state.me.agent_id;
    const saved = alerts.savePreferences(agentId, {
      sound: $("sound").checked,
      mode: $("alert-mode").value,
      delaySecs: $("alert-delay").value,
    });
    state.prefs = Object.assign({}, saved, { agentId });
    applyPreferences();
    // Kept on the agent's record too, so they follow the agent to another browser; the
    // agent owns their profile (Basic write on crmchat_agent).
    if (!xrm || !xrm.WebApi) return;
    try {
      await xrm.WebApi.updateRecord("crmchat_agent", agentId, { crmchat_preferences: JSON.stringify(saved) });
    } catch (error) {
      toast("Your preferences are kept in this browser only: " + error.message, "bad");
    }
  }

  // The agent record's preferences, when it has some, win over this browser's copy.
  async function loadCrmPreferences(agentId) {
    if (!xrm || !xrm.WebApi) return;
    try {
      const row = await xrm.WebApi.retrieveRecord("crmchat_agent", agentId, "?$select=crmchat_preferences");
      if (!row.crmchat_preferences || !state.me || state.me.agent_id !== agentId) return;
      const saved = alerts.savePreferences(agentId, alerts.fromSaved(JSON.parse(row.crmchat_preferences)));
      state.prefs = Object.assign({}, saved, { agentId });
      applyPreferences();
    } catch (error) { /* unreadable or garbled: this browser's copy stays */ }
  }

  // ---- actions -----------------------------------------------------------------------
  function accept(conversationId) {
    state.acceptPending = conversationId;
    state.wantFocus.add(conversationId);
    if (!send({ type: "chat.accept", conversation_id: conversationId })) toast("Not connected.", "bad");
  }

  // This agent declines: the service offers the chat to the others and withdraws it here.
  function reject(conversationId) {
    if (!send({ type: "chat.reject", conversation_id: conversationId })) toast("Not connected.", "bad");
  }

  // Read receipts (connector/chat/actions/reads.py): the visitor read up to frame.seq.
  function onRead(frame) {
    const chat = state.chats.get(frame.conversation_id);
    if (!chat || !(frame.seq > (chat.visitor_read_seq || 0))) return;
    chat.visitor_read_seq = frame.seq;
    chat.version = (chat.version || 0) + 1;
  }

  // The agent has this web chat open on a visible page: tell its visitor what was read,
  // once per new message (the service ignores a seq it already has).
  function markRead(chat) {
    if (document.hidden || chat.kind !== "visitor" || chat.channel || chat.state !== "active") return;
    const seq = contiguousSeq(chat);
    if (seq > (chat.readSent || 0)) {
      chat.readSent = seq;
      send({ type: "message.read", conversation_id: chat.conversation_id, seq });
    }
  }

  function openChat(conversationId) {
    if (!state.tabs.includes(conversationId)) state.tabs.push(conversationId);
    state.active = conversationId;
    state.unread.delete(conversationId);
    state.flagged.delete(conversationId);
    touchChat(conversationId);
    render();
    $("input").focus();
  }

  // The service's bounds of chat.postpone (connector/chat/actions/postpone.py).
  const POSTPONE_MIN_MS = 60 * 1000;
  const POSTPONE_MAX_MS = 24 * 3600 * 1000;

  // A time as a datetime-local input's value ("2026-12-02T15:30"), in the browser's zone.
  function localInputValue(ms) {
    const at = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate())
      + "T" + pad(at.getHours()) + ":" + pad(at.getMinutes());
  }

  function closeTab(conversationId) {
    touchChat(conversationId);
    state.tabs = state.tabs.filter((id) => id !== conversationId);
    const chat = state.chats.get(conversationId);
    if (chat && chat.state === "ended" && !chat.wrapup_until) state.chats.delete(conversationId);
    if (state.active === conversationId) state.active = state.tabs[state.tabs.length - 1] || null;
    render();
  }

  function sendMessage() {
    const chat = state.chats.get(state.active);
    const input = $("input");
    const text = input.value.trim();
    if (!chat || chat.state === "ended" || !text) return;
    if (text.length > MAX_TEXT_CHARS) {
      toast("A message may have at most " + MAX_TEXT_CHARS + " characters.", "bad");
      return;
    }
    const clientId = randomId();
    state.pending.set(clientId, { conversation_id: chat.conversation_id, text, at: Date.now(), failed: null });
    state.ownClientIds.add(clientId);
    state.pendingVersion += 1;
    pump();
    input.value = "";
    state.drafts.delete(chat.conversation_id);
    stopTyping();
    chat.version = (chat.version || 0) + 1;
    render();
  }

  let typingOn = null;
  let typingTimer = null;

  function typed() {
    const id = state.active;
    if (!id) return;
    if (typingOn !== id) {
      stopTyping();
      typingOn = id;
      send({ type: "typing", conversation_id: id, on: true });
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingOn) send({ type: "typing", conversation_id: typingOn, on: false });
    typingOn = null;
  }

  function insertAtCursor(text) {
    const input = $("input");
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.setRangeText(text, start, end, "end");
    input.focus();
    state.drafts.set(state.active, input.value);
  }

  async function createRecord(kind, button) {
    const id = state.active;
    button.disabled = true;
    button.dataset.busy = "true";
    try {
      const answer = await agentCall("POST", "/api/agent/chats/" + encodeURIComponent(id) + "/crm", { kind });
      const chat = state.chats.get(id);
      if (chat) chat.regarding = answer.regarding;
      toast((REGARDING_LABELS[answer.regarding.table] || "Record") + " created: " + answer.regarding.name, "ok");
    } catch (error) {
      toast("Could not create the " + (kind === "case" ? "case" : kind) + ": " + error.message, "bad");
    } finally {
      button.dataset.busy = "false";
      button.disabled = false;
      render();
    }
  }

  // ---- a channel's person linked to an existing contact or lead ------------------------
  async function searchContacts(event) {
    event.preventDefault();
    const id = state.active;
    const query = $("link-query").value.trim();
    const results = $("link-results");
    if (!id || query.length < 2) return;
    try {
      const path = "/api/agent/chats/" + encodeURIComponent(id) + "/contacts?q=" + encodeURIComponent(query);
      const answer = await agentCall("GET", path);
      const found = [
        ...answer.contacts.map((c) => ({ ...c, table: "contact" })),
        ...(answer.leads || []).map((c) => ({ ...c, table: "lead" })),
      ];
      results.replaceChildren(...(found.length ? found.map((c) => el("li", { "data-testid": "link-result", "data-table": c.table },
        el("span", { text: REGARDING_LABELS[c.table] + ": " + c.name + (c.email ? " · " + c.email : "") }),
        el("button", { type: "button", class: "link", "data-testid": "link-choose", text: "Link", onclick: () => linkChannelPerson(id, c.table, c.id) }),
      )) : [el("li", { text: "No active contact or open lead matches." })]));
    } catch (error) {
      toast("Could not search contacts and leads: " + error.message, "bad");
    }
  }

  async function linkChannelPerson(id, table, recordId) {
    try {
      const body = table === "lead" ? { lead_id: recordId } : { contact_id: recordId };
      const answer = await agentCall("POST", "/api/agent/chats/" + encodeURIComponent(id) + "/link", body);
      const chat = state.chats.get(id);
      if (chat) chat.regarding = answer.regarding;
      toast("Linked to " + answer.regarding.name, "ok");
    } catch (error) {
      toast("Could not link the " + table + ": " + error.message, "bad");
    } finally {
      render();
    }
  }

  // ---- "send a new message": a conversation with someone who wrote on a channel --------
  const CHANNEL_NAMES = { messenger: "Messenger", instagram: "Instagram", whatsapp: "WhatsApp", viber: "Viber" };
  async function searchOutbound(event) {
    event.preventDefault();
    const query = $("outbound-query").value.trim();
    if (query.length < 2) return;
    try {
      showOutbound(await agentCall("GET", "/api/agent/outbound?q=" + encodeURIComponent(query)));
    } catch (error) {
      toast("Could not search contacts: " + error.message, "bad");
    }
  }

  // The people found and the accounts each wrote to; `answer.case`: the conversation will
  // regard that case (its contact is the one messaged).
  function showOutbound(answer) {
    const caseId = answer.case ? answer.case.id : null;
    $("outbound-results").replaceChildren(...(answer.people.length ? answer.people.flatMap((person) => person.channels.map((c) =>
      el("li", { "data-testid": "outbound-result", "data-channel": c.channel },
        el("span", { text: person.name + " · " + CHANNEL_NAMES[c.channel] + " (" + c.account_name + ")"
          + (answer.case ? " · regarding " + answer.case.name : "") }),
        el("button", {
          type: "button", class: "link", "data-testid": "outbound-start", text: "Message",
          onclick: () => startOutbound(person.id, c.account_id, caseId),
        })))) : [el("li", { "data-testid": "outbound-none", text: "No contact who wrote to us on a channel matches." })]));
  }

  // Opened by a contact's or a case's "Send a new message" (crmchat_/ribbon/records.js):
  // data "message|contact|<id>" or "message|incident|<id>" sets the panel to that record.
  async function presetOutbound() {
    const data = new URLSearchParams(location.search).get("data") || "";
    const found = /^message\|(contact|incident)\|([0-9a-f-]{36})$/.exec(data);
    if (!found) return;
    const key = found[1] === "contact" ? "contact_id" : "case_id";
    try {
      showOutbound(await agentCall("GET", "/api/agent/outbound?" + key + "=" + found[2]));
      $("outbound-results").scrollIntoView({ block: "nearest" });
    } catch (error) {
      toast("Could not read the record to message: " + error.message, "bad");
    }
  }

  async function startOutbound(contactId, accountId, caseId) {
    try {
      const body = caseId ? { case_id: caseId, account_id: accountId } : { contact_id: contactId, account_id: accountId };
      const answer = await agentCall("POST", "/api/agent/outbound", body);
      // The chat arrives as chat.accepted (maybe before this answer): open it either way.
      if (state.chats.has(answer.conversation_id)) {
        state.active = answer.conversation_id;
        render();
      } else {
        state.wantFocus.add(answer.conversation_id);
      }
      $("outbound-results").replaceChildren();
    } catch (error) {
      toast("Could not start the conversation: " + error.message, "bad");
    }
  }

  function openRegarding(regarding) {
    if (xrm && xrm.Navigation && xrm.Navigation.openForm) {
      xrm.Navigation.openForm({ entityName: regarding.table, entityId: regarding.id, openInNewWindow: true });
    }
  }

  async function loadSnippets() {
    if (state.snippets) return state.snippets;
    const list = await agentCall("GET", "/api/agent/snippets");
    state.snippets = Array.isArray(list) ? list : [];
    return state.snippets;
  }

  // ---- menus -------------------------------------------------------------------------------
  function closeMenus(except) {
    for (const id of ["invite-menu", "transfer-menu", "consult-menu", "snippet-picker", "emoji-picker", "labels-menu", "template-picker"]) {
      if (id !== except) $(id).hidden = true;
    }
    if (except !== "end-confirm") $("end-confirm").hidden = true;
    $("postpone-box").hidden = true;
  }

  function toggle(id) {
    const menu = $(id);
    const opening = menu.hidden;
    closeMenus(id);
    menu.hidden = !opening;
    return opening;
  }

  function agentMenu(menuId, action) {
    const chat = state.chats.get(state.active);
    if (!chat || !toggle(menuId)) return;
    // Offer only whom the service accepts: online, not me; for an invite not in the chat
    // already (a transfer may go to an agent already in it); for a visitor chat, an agent
    // of one of its topics.
    const taken = new Set((chat.participants || []).filter((p) => p.kind === "agent").map((p) => p.id));
    const topics = new Set((chat.topics || []).map((t) => t.id));
    // A consult may ask anyone online: the expert need not serve the chat's topics.
    const serves = (a) => chat.kind !== "visitor" || action === "consult" ||
      (a.topic_ids || []).some((t) => topics.has(t));
    const choices = [...state.agents.values()].filter((a) =>
      a.online !== false && !(state.me && a.agent_id === state.me.agent_id) &&
      (action !== "invite" || !taken.has(a.agent_id)) && serves(a));
    const menu = $(menuId);
    menu.replaceChildren(...(choices.length ? choices.map((agent) => el("li", {},
      el("button", {
        type: "button", class: "menu-item", "data-testid": action + "-agent", "data-agent-id": agent.agent_id,
        onclick: () => {
          menu.hidden = true;
          if (action === "consult") {
            state.wantFocus.add("consult:" + chat.conversation_id);
            send({ type: "consult.start", conversation_id: chat.conversation_id, agent_id: agent.agent_id });
            return;
          }
          send({ type: "chat." + action, conversation_id: chat.conversation_id, agent_id: agent.agent_id });
          toast((action === "invite" ? "Invited " : "Transferring to ") + agent.name + ".", "ok");
        },
      }, el("span", { class: "dot " + (agent.status || "offline") }), agent.name,
      el("span", { class: "muted", text: STATUS_LABELS[agent.status] || "" }))))
      : [el("li", { class: "menu-empty", text: chat.kind === "visitor" && action !== "consult"
        ? "No other agent of this chat's topics is online." : "No other agent is online." })]));
    if (action !== "consult") menu.append(...queueItems(chat, menu, action));
  }

  function renderSnippetList() {
    const filter = $("snippet-filter").value.trim().toLowerCase();
    const list = (state.snippets || []).filter((s) =>
      !filter || s.name.toLowerCase().includes(filter) || s.text.toLowerCase().includes(filter));
    $("snippet-list").replaceChildren(...(list.length ? list.map((snippet) => el("li", {},
      el("button", {
        type: "button", class: "menu-item snippet", "data-testid": "snippet-item", "data-snippet-name": snippet.name,
        onclick: () => { $("snippet-picker").hidden = true; insertAtCursor(snippet.text); },
      }, el("strong", { text: "#" + snippet.name + "#" }), el("span", { class: "muted", text: snippet.text }))))
      : [el("li", { class: "menu-empty", text: state.snippets ? "No snippets." : "Loading…" })]));
  }

  // ---- rendering -----------------------------------------------------------------------------
  let renderQueued = false;

  // In the app's side pane (console/sidepane.js) the pane's badge counts incoming chats.
  function updatePaneBadge() {
    try {
      const panes = xrm && xrm.App && xrm.App.sidePanes;
      const pane = panes && panes.getPane(window.CRMChat.CONSOLE_PANE_ID);
      if (pane) pane.badge = state.incoming.size + unreadTotal() || false;
    } catch (error) { /* a host without side panes */ }
  }

  // Draws, on the next frame, the rows marked changed; `chatToo` (every caller but a frame
  // from the service, which marks what it concerns) also redraws the chat window.
  function render(chatToo = true) {
    if (chatToo) view.chat = true;
    updatePaneBadge();
    syncOfferToasts();
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderNow();
    });
  }

  // ---- keyed lists ---------------------------------------------------------------------------
  // Each list keeps one row per key (conversation, visitor or agent id) and rebuilds only the
  // rows an event marked, so an event costs the same at 5 rows or 500: redrawing every list
  // on every event cost 75 ms of CPU per event at 200 visitors and 50 chats (issue 14).
  // `keys()` gives the list's order, `get(key)` the item to show or null (not in this list).
  function keyedList(listId, countId, keys, get, build) {
    return { listId, countId, keys, get, build, rows: new Map(), dirty: new Set(), all: true, empty: null };
  }

  const view = { chat: true, active: undefined };
  const lists = {
    incoming: keyedList("incoming", "incoming-count", () => state.incoming.keys(),
      (id) => state.incoming.get(id), incomingItem),
    // Waiting chats I may pick up, but not those ringing for me (Incoming) or mine.
    waiting: keyedList("waiting", "waiting-count", () => state.waiting.keys(),
      (id) => (state.incoming.has(id) || state.chats.has(id) ? null : state.waiting.get(id)), waitingItem),
    visitorChats: keyedList("visitor-chats", "visitor-chats-count", () => state.chats.keys(),
      (id) => { const chat = liveChat(id, "visitor"); return chat && !chat.postponed_until ? chat : null; },
      (chat) => chatItem(chat, "visitor-chat-item")),
    postponed: keyedList("postponed", "postponed-count", () => state.chats.keys(),
      (id) => { const chat = liveChat(id, "visitor"); return chat && chat.postponed_until ? chat : null; },
      postponedItem),
    agentChats: keyedList("agent-chats", "agent-chats-count", () => state.chats.keys(),
      (id) => liveChat(id, "agent"), (chat) => chatItem(chat, "agent-chat-item")),
    visitors: keyedList("visitors", "visitors-count", () => state.visitors.keys(),
      (id) => state.visitors.get(id), visitorItem),
    agents: keyedList("agents", "agents-count", () => state.agents.keys(), shownAgent, agentItem),
    tabs: keyedList("tabs", null, () => state.tabs,
      (id) => (state.tabs.includes(id) ? state.chats.get(id) : null), tabItem),
  };

  // Open, or ended and waiting for my disposition (wrap-up).
  function liveChat(id, kind) {
    const chat = state.chats.get(id);
    return chat && (chat.state !== "ended" || chat.wrapup_until) && chat.kind === kind ? chat : null;
  }

  // A chat changed: its rows in every list, its visitor's row (unless `visitorRow` is false:
  // the change cannot show there), the window if it is shown.
  function touchChat(id, visitorRow = true) {
    if (!id) return;
    for (const list of [lists.incoming, lists.waiting, lists.visitorChats, lists.postponed, lists.agentChats, lists.tabs]) list.dirty.add(id);
    const chat = visitorRow && (state.chats.get(id) || state.incoming.get(id));
    if (chat && chat.visitor && chat.visitor.visitor_id) lists.visitors.dirty.add(chat.visitor.visitor_id);
    if (id === state.active) view.chat = true;
  }

  function touchVisitor(visitorId) {
    if (!visitorId) return;
    lists.visitors.dirty.add(visitorId);
    for (const chat of [...state.chats.values(), ...state.incoming.values()]) {
      if (chat.visitor && chat.visitor.visitor_id === visitorId) touchChat(chat.conversation_id);
    }
  }

  function touchAll() {
    for (const list of Object.values(lists)) list.all = true;
    view.chat = true;
  }

  function drawList(list) {
    if (!list.all && !list.dirty.size) return;
    const container = $(list.listId);
    if (list.all) {
      list.rows.clear();
      const nodes = [];
      for (const key of list.keys()) {
        const item = list.get(key);
        if (!item) continue;
        const node = list.build(item);
        list.rows.set(key, node);
        nodes.push(node);
      }
      container.replaceChildren(...nodes);
    } else {
      for (const key of list.dirty) {
        const old = list.rows.get(key);
        const item = list.get(key);
        if (!item) {
          if (old) old.remove();
          list.rows.delete(key);
          continue;
        }
        const node = list.build(item);
        list.rows.set(key, node);
        if (old) old.replaceWith(node);
        else container.insertBefore(node, rowAfter(list, key));
      }
    }
    list.all = false;
    list.dirty.clear();
    if (container.dataset.empty !== undefined) {
      if (!list.empty) list.empty = el("li", { class: "list-empty", text: container.dataset.empty });
      if (list.rows.size) list.empty.remove();
      else container.append(list.empty);
    }
    if (list.countId) $(list.countId).textContent = String(list.rows.size);
  }

  // Where a new row goes: before the row of the next key shown, in the list's order. Only
  // an arrival walks the keys (no DOM work); an update replaces its row in place.
  function rowAfter(list, key) {
    let seen = false;
    for (const other of list.keys()) {
      if (seen) {
        const node = list.rows.get(other);
        if (node) return node;
      } else if (other === key) {
        seen = true;
      }
    }
    return null;
  }

  function renderNow() {
    state.tabs = state.tabs.filter((id) => state.chats.has(id));
    if (state.active && !state.chats.has(state.active)) state.active = state.tabs[0] || null;
    if (view.active !== state.active) {
      // The selected item moves: the old one and the new one change.
      touchChat(view.active);
      touchChat(state.active);
      view.active = state.active;
      view.chat = true;
    }
    if (state.active && !document.hidden && state.unread.delete(state.active)) touchChat(state.active);
    renderStatus();
    for (const list of Object.values(lists)) drawList(list);
    if (view.chat) {
      view.chat = false;
      renderChat();
    }
  }

  function renderStatus() {
    const me = state.me;
    $("me-name").textContent = me ? me.name : "";
    const status = (me && me.status) || "offline";
    const select = $("status");
    if (document.activeElement !== select && STATUS_LABELS[status] && status !== "offline") select.value = status;
    select.dataset.status = status;
    $("status-dot").className = "dot " + status;
  }

  // A messaging channel's chat (issue 10): its platform and account, instead of a widget.
  function channelBadge(channel) {
    return el("span", {
      class: "channel channel-" + channel.type, "data-testid": "chat-channel", "data-channel": channel.type,
      title: channel.label + ": " + channel.account_name, text: channel.label + " · " + channel.account_name,
    });
  }

  // The platform's reply rule in force now and the next one, from the windows the person's
  // last message opened (the service enforces them; this only says which applies).
  const RULE_TEXT = {
    free: "Replies allowed",
    human_agent_tag: "Only a human agent's reply",
    template_only: "Only approved templates (the 24-hour window has closed)",
    closed: "No replies allowed now",
  };
  function channelRule(channel, now) {
    const rules = channel.rules || [];
    const at = rules.findIndex((r) => !r.until || now < parseTime(r.until));
    if (at < 0) return "";
    const until = (r) => (r.until ? " until " + formatDate(parseTime(r.until)) : "");
    let text = RULE_TEXT[rules[at].mode] + until(rules[at]);
    const next = rules[at + 1];
    if (next) text += "; then " + RULE_TEXT[next.mode].toLowerCase() + until(next);
    return channel.label + ": " + text + ".";
  }

  // The reply mode in force now ("free", "template_only", …), from the same windows.
  function ruleModeNow(channel, now) {
    const rule = (channel.rules || []).find((r) => !r.until || now < parseTime(r.until));
    return rule ? rule.mode : "free";
  }

  // ---- WhatsApp templates: pick one, fill its body parameters, preview, send -----------
  async function openTemplatePicker() {
    const id = state.active;
    if (!id || !toggle("template-picker")) return;
    const choice = $("template-choice");
    choice.replaceChildren(el("option", { value: "", text: "Loading…" }));
    try {
      const answer = await agentCall("GET", "/api/agent/chats/" + encodeURIComponent(id) + "/templates");
      state.templates = answer.templates;
      choice.replaceChildren(...(answer.templates.length
        ? answer.templates.map((t) => el("option", { value: t.id, text: t.name + " (" + t.language + ")" }))
        : [el("option", { value: "", text: "No approved templates: an administrator syncs them on Channel setup." })]));
    } catch (error) {
      state.templates = [];
      choice.replaceChildren();
      toast("Could not load templates: " + error.message, "bad");
    }
    renderTemplateForm();
  }

  function chosenTemplate() {
    return (state.templates || []).find((t) => t.id === $("template-choice").value) || null;
  }

  // One field per parameter the template asks for, in the send's order: the header's
  // variable (or its media's https link), the body's variables, each URL button's suffix.
  const FIELD_LABELS = { header: "Header", body: "Body", button: "Button" };
  function renderTemplateForm() {
    const template = chosenTemplate();
    $("template-params").replaceChildren(...(template ? template.fields.map((field) => {
      const media = field.kind !== "text";
      const label = FIELD_LABELS[field.slot] + (media ? " " + field.kind + " link (https)" : " {{" + field.name + "}}");
      return el("input", {
        type: media ? "url" : "text", maxlength: "1024", placeholder: media ? "https://…" : "{{" + field.name + "}}",
        "aria-label": label, "data-testid": "template-param", "data-slot": field.slot, "data-name": field.name,
        oninput: renderTemplatePreview,
      });
    }) : []));
    $("template-send").disabled = !template;
    renderTemplatePreview();
  }

  function renderTemplatePreview() {
    const template = chosenTemplate();
    if (!template) { $("template-preview").textContent = ""; return; }
    const values = { header: {}, body: {}, button: {} };
    for (const input of $("template-params").querySelectorAll("input")) values[input.dataset.slot][input.dataset.name] = input.value;
    const fill = (text, slot) => text.replace(/\{\{\s*(\w+)\s*\}\}/g, (all, name) => values[slot][name] || all);
    const media = template.header_format && template.header_format !== "TEXT"
      ? "[" + template.header_format.toLowerCase() + "] " + (values.header[template.header_format.toLowerCase()] || "") : "";
    const buttons = (template.buttons || []).map((b) => "[" + b.text + "]" + (b.url ? " " + fill(b.url, "button") : "")).join(" ");
    $("template-preview").textContent = [media || fill(template.header, "header"), fill(template.body, "body"), template.footer, buttons]
      .filter(Boolean).join("\n\n");
  }

  async function sendTemplate() {
    const id = state.active;
    const template = chosenTemplate();
    if (!id || !template) return;
    const parameters = [...$("template-params").querySelectorAll("input")].map((input) => input.value.trim());
    if (parameters.some((value) => !value)) { toast("Fill in every parameter.", "bad"); return; }
    const button = $("template-send");
    button.disabled = true;
    try {
      await agentCall("POST", "/api/agent/chats/" + encodeURIComponent(id) + "/template", {
        template_id: template.id, parameters, client_id: "t-" + randomId(),
      });
      $("template-picker").hidden = true;
    } catch (error) {
      toast("Could not send the template: " + error.message, "bad");
    } finally {
      button.disabled = false;
    }
  }

  function incomingItem(chat) {
    return el("li", {
      class: "item incoming", "data-testid": "incoming-chat", "data-conversation-id": chat.conversation_id,
    },
    el("div", { class: "item-main" },
      el("span", { class: "name", text: visitorName(chat.visitor) }),
      el("span", { class: "meta" },
        chat.channel ? channelBadge(chat.channel) : el("span", { text: (chat.widget && chat.widget.name) || "" }),
        counter(chat.waiting_since || chat.started_at, "incoming-waiting", "Waiting")),
      el("span", { class: "chips" }, ...topicChips(chat.topics))),
    el("button", {
      type: "button", class: "btn primary small", "data-testid": "accept-button",
      "data-conversation-id": chat.conversation_id, text: "Accept",
      onclick: () => accept(chat.conversation_id),
    }),
    el("button", {
      type: "button", class: "btn small", "data-testid": "reject-button",
      "data-conversation-id": chat.conversation_id, text: "Reject",
      title: "Leave this chat to the other agents", onclick: () => reject(chat.conversation_id),
    }),
    offerLink(chat));
  }

  // The star of a chat an agent marked important (connector/chat/actions/important.py).
  function importantStar(chat, testid) {
    return chat.important
      ? el("span", { class: "important-star", "data-testid": testid, title: "Marked important", text: "★" })
      : null;
  }

  function chatItem(chat, testid) {
    const unread = state.unread.get(chat.conversation_id) || 0;
    const item = el("li", {
      class: "item clickable" + (state.active === chat.conversation_id ? " selected" : ""),
      "data-testid": testid, "data-conversation-id": chat.conversation_id,
      tabindex: "0", onclick: () => openChat(chat.conversation_id),
      onkeydown: (event) => { if (event.key === "Enter") openChat(chat.conversation_id); },
    });
    if (chat.kind === "visitor") {
      const connected = !(chat.visitor && chat.visitor.connected === false);
      item.append(el("span", {
        class: "presence", "data-testid": "visitor-connected", "data-connected": String(connected),
        title: connected ? "Visitor is on the site" : "Visitor has left",
      }));
    }
    const main = el("div", { class: "item-main" },
      el("span", { class: "name" }, importantStar(chat, "chat-item-important"), chatName(chat)),
      el("span", { class: "meta" }, el("span", { text: chat.kind === "visitor" ? pageText(chat.visitor && chat.visitor.page) : "Agent chat" })));
    item.append(main);
    if (chat.kind === "visitor") {
      const waiting = counter(chat.waitingSince, "waiting-counter", "Waiting for an answer");
      waiting.classList.add("waiting");
      item.append(waiting);
    }
    const rated = ratingBadge(chat, "chat-item-rating");
    if (rated) item.append(rated);
    if (unread) item.append(el("span", { class: "badge", text: String(unread) }));
    return item;
  }

  function postponedItem(chat) {
    const item = chatItem(chat, "postponed-chat-item");
    const until = parseTime(chat.postponed_until);
    item.append(el("span", {
      class: "meta", "data-testid": "postponed-until", text: until === null ? "" : "until " + formatClock(until),
    }));
    return item;
  }

  // visitor.left drops a visitor; one still in an open chat stays, marked as gone (red).
  // ---- supervisor (docs/agent-workspace.md, "Supervisor") -------------------------------
  // The service pushes the whole board (supervisor.board) when the console connects, then
  // only the rows that changed (supervisor.board_changed), at most once a second; the chat
  // being read is fetched again when its last seq moved.
  const board = { data: null, reading: null, readMessages: [], readSeq: -1 };
  const BOARD_KEYS = { chats: "conversation_id", queues: "topic_id", agents: "agent_id" };

  // Rows changed or added replace theirs by key, removed keys go; then the board's order
  // again (chats by start, queues and agents by name), as the service sorts the whole one.
  function onBoardChanged(frame) {
    if (!board.data) return; // the whole board comes first, at connect
    const next = {};
    for (const [part, key] of Object.entries(BOARD_KEYS)) {
      const rows = new Map((board.data[part] || []).map((row) => [row[key], row]));
      for (const gone of (frame.removed && frame.removed[part]) || []) rows.delete(gone);
      for (const row of (frame.changed && frame.changed[part]) || []) rows.set(row[key], row);
      next[part] = [...rows.values()];
    }
    const by = (pick) => (a, b) => { const x = pick(a), y = pick(b); return x < y ? -1 : x > y ? 1 : 0; };
    next.chats.sort(by((c) => String(c.started_at)));
    next.queues.sort(by((q) => String(q.name).toLowerCase()));
    next.agents.sort(by((a) => String(a.name).toLowerCase()));
    onBoard(next);
  }

  function onBoard(data) {
    if (!(state.me && state.me.supervisor) || !data) return;
    board.data = data;
    const read = board.reading && (data.chats || []).find((c) => c.conversation_id === board.reading);
    if (read && read.last_seq !== board.readSeq) readBoardChat();
    renderBoard();
  }

  async function readBoardChat() {
    const id = board.reading;
    if (!id) return;
    const row = ((board.data && board.data.chats) || []).find((c) => c.conversation_id === id);
    board.readSeq = row ? row.last_seq : -1;
    try {
      const body = await agentCall("GET", "/api/agent/supervisor/chats/" + id);
      if (board.reading === id) board.readMessages = body.messages || [];
    } catch (error) {
      toast("Could not read the chat: " + error.message, "bad");
    }
    renderBoard();
  }

  function renderBoard() {
    const data = board.data || { queues: [], chats: [] };
    $("board-queues").replaceChildren(...data.queues.map((q) => el("li", {
      class: "item", "data-testid": "board-queue", "data-topic-id": q.topic_id,
    }, el("div", { class: "item-main" },
      el("span", { class: "name", text: q.name }),
      el("span", { class: "meta", text: q.waiting + " waiting · " + q.active + " active · " +
        q.agents_available + " of " + q.agents_online + " online agents available" }),
      q.oldest_waiting_since ? el("span", { class: "meta" }, "Longest wait ",
        counter(q.oldest_waiting_since, "board-queue-wait", "Longest wait")) : null))));
    $("board-count").textContent = String(data.chats.length);
    $("board-chats").replaceChildren(...(data.chats.length ? data.chats.map(boardChatItem)
      : [el("li", { class: "list-empty", text: "No open chats." })]));
  }

  function boardChatItem(c) {
    const mine = state.chats.has(c.conversation_id) && state.chats.get(c.conversation_id).state !== "ended";
    const reading = board.reading === c.conversation_id;
    return el("li", { class: "item board-chat", "data-testid": "board-chat", "data-conversation-id": c.conversation_id, "data-state": c.state },
      el("div", { class: "item-main" },
        el("span", { class: "name", text: (c.visitor_name || "Visitor") + " · " + (c.state === "waiting" ? "Waiting" : "Active") }),
        el("span", { class: "meta", "data-testid": "board-chat-agents", text: [c.widget, (c.agents || []).map((a) => a.name).join(", ") || "no agent yet"].join(" · ") }),
        el("span", { class: "meta" }, c.state === "waiting" ? "Waiting " : "For ",
          counter(c.state === "waiting" ? c.started_at : c.accepted_at || c.started_at, "board-chat-time", "Time"))),
      el("div", { class: "board-actions" },
        el("button", { type: "button", class: "btn small", "data-testid": "board-read", "aria-expanded": String(reading),
          text: reading ? "Close" : "Read",
          onclick: () => {
            board.reading = reading ? null : c.conversation_id;
            board.readMessages = [];
            renderBoard();
            readBoardChat();
          } }),
        c.state === "active" && !mine ? el("button", { type: "button", class: "btn small", "data-testid": "board-join", text: "Join",
          onclick: () => {
            state.wantFocus.add(c.conversation_id);
            if (!send({ type: "supervisor.join", conversation_id: c.conversation_id })) toast("Not connected.", "bad");
          } }) : null,
        ...(c.state === "active" ? (c.agents || []).filter((a) => !(state.me && a.agent_id === state.me.agent_id)).map((a) =>
          el("button", { type: "button", class: "btn small", "data-testid": "board-message-agent", "data-agent-id": a.agent_id,
            text: "Message " + a.name,
            onclick: () => {
              state.wantFocus.add("consult:" + c.conversation_id);
              send({ type: "consult.start", conversation_id: c.conversation_id, agent_id: a.agent_id });
            } })) : [])),
      reading ? el("ol", { class: "messages board-read", "data-testid": "board-transcript" },
        ...board.readMessages.map((m) => messageItem(m, false))) : null);
  }

  function visitorItem(visitor) {
    const chat = [...state.chats.values()].find((c) => c.visitor && c.visitor.visitor_id === visitor.visitor_id && c.state !== "ended");
    const url = pageUrl(visitor.page);
    return el("li", {
      class: "item visitor" + (chat ? " clickable" : ""), "data-testid": "visitor-item",
      "data-visitor-id": visitor.visitor_id, "data-chatting": String(Boolean(visitor.chatting)),
      onclick: chat ? () => openChat(chat.conversation_id) : undefined,
    },
    el("span", {
      class: "presence", "data-connected": String(visitor.connected !== false),
      title: visitor.connected !== false ? "On the site" : "Has left the site",
    }),
    el("div", { class: "item-main" },
      el("span", { class: "name-row" },
        el("span", { class: "name", text: visitorName(visitor) }),
        visitor.chatting ? el("span", { class: "tag", "data-testid": "visitor-chatting", text: "Chatting" }) : null),
      el("span", { class: "meta page", title: url, text: pageText(visitor.page) }),
      el("span", { class: "meta" },
        el("span", { "data-testid": "visitor-ip", text: visitor.ip || "" }),
        el("span", { text: visitor.widget_name || widgetName(visitor.widget_id) }),
        counter(visitor.first_seen, "visitor-time", "Time on site"))));
  }

  function shownAgent(agentId) {
    const agent = state.agents.get(agentId);
    return agent && agent.online !== false && !(state.me && agent.agent_id === state.me.agent_id) ? agent : null;
  }

  function agentItem(agent) {
    return el("li", {
        class: "item", "data-testid": "agent-item", "data-agent-id": agent.agent_id, "data-status": agent.status || "",
      },
      el("span", { class: "dot " + (agent.status || "offline"), title: STATUS_LABELS[agent.status] || "" }),
      el("div", { class: "item-main" },
        el("span", { class: "name", text: agent.name }),
        el("span", { class: "meta", text: STATUS_LABELS[agent.status] || agent.status || "" })),
      el("button", {
        type: "button", class: "btn small", "data-testid": "agent-chat-button", "data-agent-id": agent.agent_id,
        text: "Chat", onclick: () => startAgentChat(agent.agent_id),
      }));
  }

  function startAgentChat(agentId) {
    const existing = [...state.chats.values()].find((c) => c.kind === "agent" && !c.consult_of && c.state !== "ended" &&
      (c.participants || []).length === 2 && c.participants.some((p) => p.kind === "agent" && p.id === agentId));
    if (existing) { openChat(existing.conversation_id); return; }
    state.wantFocus.add("agent:" + agentId);
    if (!send({ type: "agentchat.start", agent_id: agentId })) toast("Not connected.", "bad");
  }

  function tabItem(chat) {
    const id = chat.conversation_id;
    const unread = state.unread.get(id) || 0;
    const selected = id === state.active;
    return el("div", {
      class: "tab" + (selected ? " selected" : "") + (chat.state === "ended" ? " ended" : ""),
      role: "tab", "aria-selected": String(selected), tabindex: "0",
      "data-testid": "chat-tab", "data-conversation-id": id, "data-state": chat.state || "",
      onclick: () => openChat(id),
      // Delete closes the tab (the WAI-ARIA tabs pattern): its × is for the mouse only, as a
      // tab may hold no other control, not even an unfocusable one (axe's nested-interactive).
      onkeydown: (event) => {
        if (event.key === "Enter") openChat(id);
        else if (event.key === "Delete") closeTab(id);
      },
    },
    chat.kind === "visitor" ? el("span", {
      class: "presence", "data-connected": String(!(chat.visitor && chat.visitor.connected === false)),
    }) : null,
    importantStar(chat, "chat-tab-important"),
    el("span", { class: "tab-name", text: chatName(chat) }),
    state.flagged.has(id) ? el("span", { class: "badge new", "data-testid": "chat-tab-new", text: "New" }) : null,
    ratingBadge(chat, "chat-tab-rating"),
    unread ? el("span", { class: "badge", text: String(unread) }) : null,
    el("span", {
      class: "tab-close", "aria-hidden": "true", title: "Close tab (Delete)",
      "data-testid": "chat-tab-close", text: "×",
      onclick: (event) => { event.stopPropagation(); closeTab(id); },
    }));
  }

  let shownChat = null;
  let shownVersion = -1;
  let shownPending = -1;

  function renderChat() {
    const chat = state.active ? state.chats.get(state.active) : null;
    $("chat").hidden = !chat;
    $("empty").hidden = Boolean(chat);
    if (!chat) { shownChat = null; return; }
    const id = chat.conversation_id;
    const switched = shownChat !== id;
    if (switched) {
      if (shownChat !== null) state.drafts.set(shownChat, $("input").value);
      $("input").value = state.drafts.get(id) || "";
      closeMenus();
      stopTyping();
    }
    const ended = chat.state === "ended";
    const isVisitor = chat.kind === "visitor";
    const connected = !(chat.visitor && chat.visitor.connected === false);

    $("chat-name").textContent = chatName(chat);
    const rule = $("chat-rule");
    rule.textContent = chat.channel ? channelRule(chat.channel, Date.now()) : "";
    rule.hidden = !chat.channel;
    // WhatsApp outside the 24-hour window takes only templates (Meta's rule, 131047).
    const whatsapp = Boolean(chat.channel && chat.channel.type === "whatsapp");
    const templatesOnly = whatsapp && ruleModeNow(chat.channel, Date.now()) === "template_only";
    $("template-button").hidden = !whatsapp || ended;
    $("input").placeholder = templatesOnly ? "The 24-hour window has closed: send an approved template." : "Type a message";
    const rating = $("chat-rating");
    rating.hidden = !chat.rating;
    rating.textContent = chat.rating ? "Rated " + ratingStars(chat.rating) + " (" + chat.rating + " of 5)" : "";
    const presence = $("chat-connected");
    presence.hidden = !isVisitor;
    presence.dataset.connected = String(connected);
    presence.title = connected ? "Visitor is on the site" : "Visitor has left";
    const wrapup = ended && Boolean(chat.wrapup_until);
    const postponed = !ended && Boolean(chat.postponed_until);
    $("chat-state").textContent = wrapup ? "Wrap-up" : ended ? "Ended" : postponed ? "Postponed"
      : chat.state === "waiting" ? "Waiting" : isVisitor ? "Active" : chat.consult_of ? "Consult" : "Agent chat";
    const duration = $("chat-duration");
    if (ended) {
      delete duration.dataset.since;
    } else {
      setSince(duration, chat.accepted_at || chat.started_at);
    }
    $("attach-button").hidden = !(chat.attachments && chat.attachments.enabled);
    for (const id2 of ["attach-button", "invite", "transfer", "consult", "postpone", "end", "input", "send", "snippet-button", "emoji-button"]) {
      $(id2).disabled = ended;
    }
    // Wrap-up: the chat has ended but its End (now Close) still takes the disposition.
    $("end").disabled = ended && !wrapup;
    $("end").textContent = wrapup ? "Close" : "End";
    $("postpone").hidden = !isVisitor || chat.state !== "active";
    // Markable until the activity is written: open, or ended and still in wrap-up.
    $("important").hidden = !isVisitor || Boolean(chat.consult_of);
    $("important").disabled = ended && !wrapup;
    $("important").setAttribute("aria-pressed", String(Boolean(chat.important)));
    $("important").textContent = chat.important ? "★ Important" : "Mark important";
    // The chat moved on (ended, its wrap-up closed): its boxes no longer apply.
    if ($("end").disabled) $("end-confirm").hidden = true;
    if ($("postpone").hidden || ended) $("postpone-box").hidden = true;
    if (templatesOnly) {
      $("input").disabled = true;
      $("send").disabled = true;
    }
    $("transfer").hidden = !isVisitor;
    $("consult").hidden = !isVisitor;
    // A consult has no End of its own: it ends with the customer's chat.
    $("end").hidden = Boolean(chat.consult_of);
    $("invite").hidden = Boolean(chat.consult_of);
    const banner = $("chat-banner");
    let bannerText = "";
    const wrapupEnd = parseTime(chat.wrapup_until);
    const postponedEnd = parseTime(chat.postponed_until);
    if (wrapup) {
      bannerText = "The chat has ended. Choose its disposition and close it (Close); at "
        + (wrapupEnd === null ? "its time limit" : formatClock(wrapupEnd)) + " it closes without one.";
    } else if (ended) {
      bannerText = chat.leftReason || (chat.endedBy === "visitor" ? "The visitor ended this chat."
        : chat.endedBy === "agent" ? "This chat has ended." : "This chat has ended.");
    } else if (postponed) {
      bannerText = "Postponed until " + (postponedEnd === null ? "later" : formatClock(postponedEnd))
        + ": it comes back then, or as soon as the customer writes.";
    } else if (chat.consult_of) {
      bannerText = "Private: the customer never sees this thread. It is kept as an internal note on the chat.";
    } else if (isVisitor && !connected) {
      bannerText = "The visitor has left the site. They see your messages if they come back.";
    }
    banner.textContent = bannerText;
    banner.hidden = !bannerText;

    if (switched || shownVersion !== chat.version || shownPending !== state.pendingVersion) {
      renderMessages(chat, switched);
      shownVersion = chat.version;
      shownPending = state.pendingVersion;
    }
    const typing = state.typing.get(id);
    $("typing").textContent = typing && typing.until > Date.now() ? typing.name + " is typing…" : "";
    renderInfo(chat);
    markRead(chat);
    shownChat = id;
  }

  // The shown chat's message rows by key: a new message adds its row, the others stay.
  let messageRows = new Map();

  function renderMessages(chat, jump) {
    const list = $("messages");
    const atBottom = jump || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    peerSide = chat.kind === "agent";
    if (jump) {
      messageRows = new Map();
      list.replaceChildren();
    }
    // A channel chat's delivery states by seq: a row is redrawn when its state moves.
    receiptsShown = (chat.channel && chat.channel.receipts) || {};
    const sorted = sortedMessages(chat);
    // A web chat's "Seen": under the last agent message the visitor has read.
    seenSeq = 0;
    for (const m of sorted) {
      if (m.seq <= (chat.visitor_read_seq || 0) && m.sender && m.sender.kind === "agent") seenSeq = m.seq;
    }
    const wanted = sorted.map((m) => [
      "seq:" + m.seq + (receiptsShown[m.seq] ? ":" + receiptsShown[m.seq] : "") + (m.seq === seenSeq ? ":seen" : ""),
      () => messageItem(m, false),
    ]);
    const canRetry = chat.state !== "ended";
    for (const [clientId, p] of state.pending) {
      if (p.conversation_id !== chat.conversation_id) continue;
      // A pending row changes with its state (sending, failed, retry offered).
      wanted.push(["pending:" + clientId + ":" + (p.failed || "") + ":" + canRetry, () => messageItem({
        client_id: clientId, text: p.text, sent_at: new Date(p.at).toISOString(),
        sender: { kind: "agent", name: state.me ? state.me.name : "" },
      }, true, p.failed, canRetry)]);
    }
    const rows = new Map();
    let cursor = list.firstChild;
    for (const [key, make] of wanted) {
      const node = messageRows.get(key) || make();
      rows.set(key, node);
      if (node === cursor) cursor = cursor.nextSibling;
      else list.insertBefore(node, cursor);
    }
    while (cursor) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    messageRows = rows;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  let peerSide = false; // the chat being drawn is between agents
  let receiptsShown = {}; // the chat being drawn: channel delivery states by seq
  let seenSeq = 0; // the chat being drawn: the agent message shown "Seen"
  const RECEIPT_TEXT = { sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not delivered" };
  function messageItem(m, pending, failed, canRetry) {
    const kind = (m.sender && m.sender.kind) || "system";
    const own = kind === "agent" && (pending || isMine(m));
    // In a chat between agents the other agent is the other side, on the left.
    const peer = kind === "agent" && !own && peerSide;
    const at = parseTime(m.sent_at);
    const item = el("li", {
      class: "msg " + kind + (own ? " own" : "") + (peer ? " peer" : "") + (pending ? " pending" : ""),
      "data-testid": "message", "data-sender-kind": kind,
      "data-seq": m.seq !== undefined ? String(m.seq) : undefined,
      "data-client-id": m.client_id || undefined, "data-pending": pending ? "true" : undefined,
    });
    if (kind !== "system") {
      item.append(el("div", { class: "msg-head" },
        el("span", { class: "msg-name", text: (m.sender && m.sender.name) || (kind === "visitor" ? "Visitor" : "") }),
        el("time", { datetime: m.sent_at || "", "data-testid": "message-time", text: at === null ? "" : formatClock(at) })));
    }
    item.append(m.attachment ? attachmentView(m) : el("div", { class: "msg-text", "data-testid": "message-text", text: m.text }));
    if (kind === "system" && at !== null) {
      item.append(el("time", { datetime: m.sent_at, "data-testid": "message-time", text: formatClock(at) }));
    }
    const receipt = !pending && kind === "agent" ? receiptsShown[m.seq] : undefined;
    if (receipt && RECEIPT_TEXT[receipt]) {
      item.append(el("div", { class: "msg-state msg-receipt", "data-testid": "message-receipt",
        "data-state": receipt, text: RECEIPT_TEXT[receipt] }));
    }
    if (!pending && m.seq === seenSeq) {
      item.append(el("div", { class: "msg-state msg-receipt", "data-testid": "message-seen", text: "Seen" }));
    }
    if (pending) {
      item.append(el("div", { class: "msg-state" },
        failed ? el("span", {}, "Not sent: " + failed + " ",
          canRetry ? el("button", {
            type: "button", class: "link", "data-testid": "message-retry", text: "Retry", onclick: () => resend(m.client_id),
          }) : null)
          : "Sending…"));
    }
    return item;
  }

  // ---- files (docs/agent-workspace.md, "Attachments") -----------------------------------
  const PREVIEW_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];
  const fileUrls = new Map(); // attachment id -> blob: URL, read once

  function formatSize(bytes) {
    return bytes < 1024 ? bytes + " B" : bytes < 1048576 ? Math.ceil(bytes / 1024) + " KB"
      : (bytes / 1048576).toFixed(1) + " MB";
  }

  // Why the chat will not take `file`, or "" (the service checks the same again).
  function fileProblem(chat, file) {
    const rules = chat && chat.attachments;
    if (!rules || !rules.enabled) return "This chat does not take files.";
    const dot = file.name.lastIndexOf(".");
    const extension = dot > 0 ? file.name.slice(dot + 1).toLowerCase() : "";
    if (!(rules.types || []).includes(extension)) return "Only these files can be sent: " + (rules.types || []).join(", ") + ".";
    if (!file.size) return "The file is empty.";
    if (file.size > rules.max_kb * 1024) return "The file is larger than " + rules.max_kb + " KB.";
    return "";
  }

  async function sendFile(file) {
    const chat = state.active ? state.chats.get(state.active) : null;
    if (!chat || chat.state === "ended" || !file) return;
    const problem = fileProblem(chat, file);
    if (problem) { toast(file.name + ": " + problem, "bad"); return; }
    const form = new FormData();
    form.append("client_id", randomId());
    form.append("file", file, file.name);
    toast("Sending " + file.name + "…", "ok");
    try {
      if (!tokenFresh()) await state.session.signIn();
      const response = await fetch(state.session.base + "/api/agent/chats/" + chat.conversation_id + "/files", {
        method: "POST", headers: { Authorization: "Bearer " + state.session.token() }, body: form,
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    } catch (error) {
      toast(file.name + " was not sent: " + error.message, "bad");
    }
  }

  async function fileBlob(conversationId, attachment) {
    if (fileUrls.has(attachment.id)) return fileUrls.get(attachment.id);
    if (!tokenFresh()) await state.session.signIn();
    const response = await fetch(state.session.base + "/api/agent/chats/" + conversationId + "/files/" + attachment.id, {
      headers: { Authorization: "Bearer " + state.session.token() },
    });
    if (!response.ok) throw new Error("The file could not be read.");
    const url = URL.createObjectURL(await response.blob());
    fileUrls.set(attachment.id, url);
    return url;
  }

  // A file in the log: its name and size to download it, and an image shown small.
  function attachmentView(m) {
    const attachment = m.attachment;
    const box = el("div", { class: "attachment", "data-testid": "message-attachment", "data-name": attachment.name });
    box.append(el("button", {
      type: "button", class: "link", "data-testid": "attachment-download",
      text: "📎 " + attachment.name + " (" + formatSize(attachment.size || 0) + ")",
      onclick: async () => {
        try {
          const a = el("a", { href: await fileBlob(m.conversation_id, attachment), download: attachment.name });
          a.click();
        } catch (error) {
          toast(error.message, "bad");
        }
      },
    }));
    if (PREVIEW_TYPES.includes(attachment.type)) {
      const img = el("img", { alt: attachment.name, "data-testid": "attachment-preview" });
      fileBlob(m.conversation_id, attachment).then((url) => { img.src = url; }, () => img.remove());
      box.append(img);
    }
    return box;
  }

  function fact(list, label, value, extra) {
    if (value === undefined || value === null || value === "") return;
    list.append(el("dt", { text: label }), el("dd", extra || {}, value));
  }

  // A note in a <dl> ("None", "No contact linked."): a <dl> holds only dt/dd groups
  // (axe-core's definition-list), so the note answers a term only screen readers see.
  function factNote(list, term, text) {
    list.append(el("div", null, el("dt", { class: "visually-hidden", text: term }),
      el("dd", { class: "muted", text })));
  }

  const IDENTITY_SOURCES = { site: "signed in on the site", crm: "CRM user" };

  function renderIdentity(chat) {
    const identity = chat.identity;
    const box = $("identity");
    if (identity && identity.verified) {
      const who = [identity.name, identity.email].filter(Boolean).join(" · ");
      box.replaceChildren(el("span", {
        class: "id-badge verified", "data-testid": "identity-badge", "data-verified": "true",
        "data-source": identity.source || "", title: "The service checked who this is",
        text: "Verified · " + (IDENTITY_SOURCES[identity.source] || identity.source || ""),
      }), el("span", { class: "identity-name", "data-testid": "identity-name", text: who }));
    } else {
      box.replaceChildren(el("span", {
        class: "id-badge", "data-testid": "identity-badge", "data-verified": "false",
        text: "Not verified",
      }));
    }
    const contact = chat.contact;
    const line = $("contact");
    if (contact && contact.id) {
      const target = { table: "contact", id: contact.id, name: contact.name };
      line.replaceChildren("Contact: ", el("a", {
        href: "#", "data-testid": "contact-link", "data-id": contact.id, text: contact.name || contact.id,
        onclick: (event) => { event.preventDefault(); openRegarding(target); },
      }));
      // Found from what the page claimed (context, pre-chat form): a suggestion only.
      if (contact.verified === false) {
        line.append(" ", el("span", {
          class: "id-badge", "data-testid": "contact-unverified", "data-verified": "false",
          text: "Unverified: from the page's claim",
        }));
      }
    } else {
      line.replaceChildren(el("span", { class: "muted", text: "No contact found for this visitor." }));
    }
  }

  function renderDetails(chat) {
    const list = $("additional-details");
    const items = (Array.isArray(chat.context) ? chat.context : []).map((item) =>
      el("div", { class: "fact", "data-testid": "context-item", "data-name": String(item.name) },
        el("dt", { text: String(item.name), title: String(item.name) }),
        el("dd", { text: item.value === null || item.value === undefined ? "" : String(item.value) })));
    list.replaceChildren(...items);
    if (!items.length) factNote(list, "Additional details", "None");
  }

  // ---- which side panels, in which order --------------------------------------------
  // The admin's choice: Settings' "Console side panels", e.g. "case, contact". Empty or
  // unreadable: every panel, in this order. Unknown names are ignored.
  const PANELS = ["contact", "account", "case", "knowledge", "activities", "page"];
  // The admin's pages (crmchat_settings): the Page panel's and the offer button's.
  const pages = { panel: null, panelBad: false, offer: null, offerLabel: "Open page", kb: "", kbBad: false };
  let panelsShown = PANELS.slice();

  function parsePanels(text) {
    const names = String(text || "").toLowerCase().split(/[\s,;]+/).filter((name) => PANELS.includes(name));
    return names.length ? [...new Set(names)] : PANELS.slice();
  }

  function panelOn(name) {
    return panelsShown.includes(name) && tablePresent(PANEL_TABLES[name]);
  }

  // Dynamics 365 tables this organization may lack (a plain Dataverse environment has no
  // Sales / Customer Service): the service says which exist (GET /api/agent/crm, cached
  // there); until it answers, all count as present. Each hides what needs it.
  const PANEL_TABLES = { case: "incident", knowledge: "knowledgearticle" };
  const KIND_TABLES = { lead: "lead", case: "incident" };
  let crmTables = null;

  function tablePresent(table) {
    return !table || !crmTables || crmTables[table] !== false;
  }

  async function loadCrmTables() {
    try {
      crmTables = (await agentCall("GET", "/api/agent/crm")).tables || null;
    } catch (error) {
      crmTables = null;   // unknown: keep every button; creating then says why it failed
    }
    for (const button of document.querySelectorAll(".crm-buttons button")) {
      button.hidden = !tablePresent(KIND_TABLES[button.dataset.kind]);
    }
    for (const card of document.querySelectorAll("[data-panel]")) {
      card.classList.toggle("panel-off", !panelOn(card.dataset.panel));
    }
    render();
  }

  async function loadPanelSettings() {
    if (!xrm || !xrm.WebApi) return;
    try {
      const found = await xrm.WebApi.retrieveMultipleRecords("crmchat_settings",
        "?$select=crmchat_consolepanels,crmchat_pageurl,crmchat_offerurl,crmchat_offerlabel,crmchat_kburl&$top=1");
      const row = (found.entities || [])[0] || {};
      panelsShown = parsePanels(row.crmchat_consolepanels);
      pages.panel = httpsUrl(row.crmchat_pageurl);
      pages.panelBad = Boolean(row.crmchat_pageurl) && !pages.panel;
      pages.offer = httpsUrl(row.crmchat_offerurl);
      pages.offerLabel = String(row.crmchat_offerlabel || "").trim().slice(0, 40) || "Open page";
      pages.kb = kbTemplate(row.crmchat_kburl);
      pages.kbBad = Boolean(row.crmchat_kburl) && !pages.kb;
    } catch (error) {
      panelsShown = PANELS.slice();   // the panels still work; only the admin's order is lost
    }
    let after = $("crm-card");
    for (const name of panelsShown) {
      const card = document.querySelector('[data-panel="' + name + '"]');
      after.after(card);
      after = card;
    }
    for (const card of document.querySelectorAll("[data-panel]")) {
      card.classList.toggle("panel-off", !panelOn(card.dataset.panel));
    }
    render();
  }

  // An admin's address, only when it is an absolute https:// URL (no javascript:, data:,
  // http: or relative address reaches an iframe or a link).
  function httpsUrl(text) {
    try {
      const url = new URL(String(text || "").trim());
      return url.protocol === "https:" && url.hostname ? url : null;
    } catch (error) {
      return null;
    }
  }

  // The admin's page with the chat in its query; the page's own query is kept.
  // The admin's knowledge base address (crmchat_settings.crmchat_kburl), kept only when it
  // names where the article goes ({number} or {id}) and is an https:// address with a host
  // once filled in; "" otherwise, so no javascript: or http: link reaches a customer.
  function kbTemplate(text) {
    const template = String(text || "").trim();
    if (!/\{(number|id)\}/.test(template)) return "";
    return httpsUrl(template.replace(/\{(number|id)\}/g, "KA-00000")) ? template : "";
  }

  // The article's public address: each placeholder becomes its value, URL-encoded, so an
  // article number cannot add a path, a query or a host to the address.
  function articleLink(article) {
    if (!pages.kb) return "";
    const values = { number: article.number, id: article.id };
    let missing = false;
    const link = pages.kb.replace(/\{(number|id)\}/g, (_, name) => {
      if (!values[name]) missing = true;
      return encodeURIComponent(values[name] || "");
    });
    return missing ? "" : link;
  }

  function contextUrl(base, chat) {
    const url = new URL(base.href);
    const contact = chatContact(chat);
    const context = {
      conversation_id: chat.conversation_id,
      contact_id: contact ? contact.id : "",
      email: chatEmail(chat) || "",
      name: visitorName(chat.visitor),
      topic: ((chat.topics || [])[0] || {}).name || "",
    };
    for (const [key, value] of Object.entries(context)) url.searchParams.set(key, value);
    return url.href;
  }

  function renderPagePanel(chat) {
    const card = $("page-panel");
    card.hidden = !pages.panel && !pages.panelBad;
    $("page-note").hidden = !pages.panelBad;
    $("page-note").textContent = pages.panelBad ? "The Page panel's address must be an https:// address." : "";
    const frame = $("page-frame");
    frame.hidden = !pages.panel;
    const src = pages.panel ? contextUrl(pages.panel, chat) : "about:blank";
    if (frame.getAttribute("src") !== src) frame.setAttribute("src", src);
  }

  function offerLink(chat) {
    return pages.offer ? el("a", {
      class: "btn small", "data-testid": "offer-url-button", target: "_blank", rel: "noopener noreferrer",
      href: contextUrl(pages.offer, chat), text: pages.offerLabel,
    }) : null;
  }

  // ---- the Contact panel -------------------------------------------------------------
  // Read with the agent's own permissions (Xrm.WebApi); linking and unpairing go to the
  // service, which links only an active contact with the visitor's email.
  const contactPanel = { key: null, record: null, matches: [], note: "" };

  // An OData string literal: quotes doubled, as the Web API's grammar wants.
  function odataString(value) {
    return "'" + String(value).replace(/'/g, "''") + "'";
  }

  function chatContact(chat) {
    if (chat.contact) return chat.contact;
    return chat.regarding && chat.regarding.table === "contact" ? chat.regarding : null;
  }

  function chatEmail(chat) {
    const fromContext = (chat.context || []).find((item) => String(item.name).toLowerCase() === "email");
    return String((chat.identity && chat.identity.email) || (fromContext && fromContext.value)
      || ((chat.visitor || {}).fields || {}).email || "").trim();
  }

  async function loadContactPanel(chat) {
    const contact = chatContact(chat);
    const email = chatEmail(chat);
    const key = [chat.conversation_id, contact ? contact.id : "", email].join("|");
    if (contactPanel.key === key) return;
    Object.assign(contactPanel, { key, record: null, matches: [], note: contact ? "Loading…" : "" });
    if (!xrm || !xrm.WebApi) return;
    try {
      const [record, matches] = await Promise.all([
        contact ? xrm.WebApi.retrieveRecord("contact", contact.id,
          "?$select=fullname,firstname,lastname,emailaddress1,telephone1,mobilephone,_parentcustomerid_value") : null,
        email ? xrm.WebApi.retrieveMultipleRecords("contact", "?$select=contactid,fullname,emailaddress1"
          + "&$filter=" + encodeURIComponent("statecode eq 0 and emailaddress1 eq " + odataString(email))
          + "&$orderby=fullname&$top=20") : { entities: [] },
      ]);
      if (contactPanel.key !== key) return;
      contactPanel.record = record;
      contactPanel.matches = matches.entities || [];
      contactPanel.note = "";
    } catch (error) {
      if (contactPanel.key === key) contactPanel.note = "Could not read the contact: " + error.message;
    }
    render();
  }

  function renderContactPanel(chat) {
    const contact = chatContact(chat);
    const facts = $("contact-facts");
    facts.replaceChildren();
    const record = contactPanel.record;
    if (contact) {
      fact(facts, "Name", (record && record.fullname) || contact.name, { "data-testid": "contact-name" });
      if (record) {
        fact(facts, "Email", record.emailaddress1 || "");
        fact(facts, "Phone", record.telephone1 || record.mobilephone || "");
        fact(facts, "Company", record["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] || "");
      }
    }
    if (contactPanel.note || !contact) {
      factNote(facts, "Contact", contactPanel.note || "No contact linked.");
    }
    $("contact-open").hidden = !contact;
    $("contact-edit").hidden = !record;
    if (!record) $("contact-form").hidden = true;
    $("contact-unpair").hidden = !contact;
    $("contact-unpair").disabled = Boolean(chat.leftReason);
    const others = contactPanel.matches.filter((row) => !contact || row.contactid !== contact.id);
    $("contact-matches-heading").hidden = !others.length;
    $("contact-matches").replaceChildren(...others.map((row) => el("li", { "data-testid": "contact-match" },
      el("span", { text: row.fullname || "(no name)" }), " ",
      el("button", {
        type: "button", class: "btn small", "data-testid": "contact-link", text: "Link",
        disabled: Boolean(chat.leftReason),
        onclick: () => linkContact(chat.conversation_id, row.contactid),
      }))));
  }

  async function linkContact(conversationId, contactId) {
    try {
      await agentCall("PUT", "/api/agent/chats/" + conversationId + "/contact", { contact_id: contactId });
    } catch (error) {
      toast("Could not link the contact: " + error.message, "bad");
    }
  }

  async function unpairContact() {
    if (!state.active) return;
    try {
      await agentCall("DELETE", "/api/agent/chats/" + state.active + "/contact");
    } catch (error) {
      toast("Could not unpair the contact: " + error.message, "bad");
    }
  }

  // ---- the Account panel -------------------------------------------------------------
  // The contact's company (parentcustomerid, when it is an account), read with the agent's
  // own permissions once the Contact panel's record is in.
  const accountPanel = { key: null, record: null, note: "" };
  const LOOKUP_TABLE = "@Microsoft.Dynamics.CRM.lookuplogicalname";

  function contactAccountId() {
    const record = contactPanel.record;
    if (!record || !record._parentcustomerid_value) return null;
    const table = record["_parentcustomerid_value" + LOOKUP_TABLE];
    return table && table !== "account" ? null : record._parentcustomerid_value;
  }

  async function loadAccount() {
    const accountId = contactAccountId();
    const key = accountId || "";
    if (accountPanel.key === key) return;
    Object.assign(accountPanel, { key, record: null, note: accountId ? "Loading…" : "No account." });
    if (!accountId || !xrm || !xrm.WebApi) return;
    try {
      const record = await xrm.WebApi.retrieveRecord("account", accountId, "?$select=name,emailaddress1,telephone1");
      if (accountPanel.key !== key) return;
      Object.assign(accountPanel, { record, note: "" });
    } catch (error) {
      if (accountPanel.key === key) accountPanel.note = "Could not read the account: " + error.message;
    }
    render();
  }

  function renderAccountPanel() {
    const facts = $("account-facts");
    facts.replaceChildren();
    const record = accountPanel.record;
    if (record) {
      fact(facts, "Name", record.name || "", { "data-testid": "account-name" });
      fact(facts, "Email", record.emailaddress1 || "");
      fact(facts, "Phone", record.telephone1 || "");
    }
    if (accountPanel.note) factNote(facts, "Account", accountPanel.note);
    $("account-open").hidden = !record;
    $("account-edit").hidden = !record;
    if (!record) $("account-form").hidden = true;
  }

  // ---- editing the contact and the account ---------------------------------------------
  // With the agent's own permissions (Xrm.WebApi.updateRecord), as the panels read: a
  // column or record their roles do not let them write is refused by CRM, and its message
  // shown. The limits are the standard columns' lengths; the checks here say what is wrong
  // before anything is sent.
  const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  const PHONE_PATTERN = /^[0-9+()\-.\/ ]*$/;
  const EDITORS = {
    contact: {
      table: "contact", panel: () => contactPanel, id: () => { const c = chatContact(state.chats.get(state.active) || {}); return c ? c.id : ""; },
      fields: [
        { column: "firstname", input: "contact-firstname", label: "First name", max: 50 },
        { column: "lastname", input: "contact-lastname", label: "Last name", max: 50, required: true },
        { column: "emailaddress1", input: "contact-email", label: "Email", max: 100, email: true },
        { column: "telephone1", input: "contact-phone", label: "Phone", max: 50, phone: true },
      ],
    },
    account: {
      table: "account", panel: () => accountPanel, id: contactAccountId,
      fields: [
        { column: "name", input: "account-name-input", label: "Name", max: 160, required: true },
        { column: "emailaddress1", input: "account-email", label: "Email", max: 100, email: true },
        { column: "telephone1", input: "account-phone", label: "Phone", max: 50, phone: true },
      ],
    },
  };

  function openEditor(kind) {
    const editor = EDITORS[kind];
    const record = editor.panel().record || {};
    for (const field of editor.fields) $(field.input).value = record[field.column] || "";
    $(kind + "-form-error").hidden = true;
    $(kind + "-form").hidden = false;
    $(editor.fields[0].input).focus();
  }

  function editProblem(field, value) {
    if (field.required && !value) return field.label + " is required.";
    if (value.length > field.max) return field.label + " may be at most " + field.max + " characters.";
    if (field.email && value && !EMAIL_PATTERN.test(value)) return "Enter an email address like name@example.com.";
    if (field.phone && !PHONE_PATTERN.test(value)) return "A phone number may hold only digits, spaces and + ( ) - . /";
    return "";
  }

  async function saveEditor(kind) {
    const editor = EDITORS[kind];
    const id = editor.id();
    const error = $(kind + "-form-error");
    const showError = (text) => { error.textContent = text; error.hidden = false; };
    const changes = {};
    for (const field of editor.fields) {
      const value = $(field.input).value.trim();
      const problem = editProblem(field, value);
      if (problem) {
        showError(problem);
        $(field.input).focus();
        return;
      }
      changes[field.column] = value || null;
    }
    if (!id || !xrm || !xrm.WebApi) {
      showError("The record cannot be reached from here.");
      return;
    }
    try {
      await xrm.WebApi.updateRecord(editor.table, id, changes);
    } catch (failure) {
      showError("CRM did not save it: " + (failure.message || "refused") + ".");
      return;
    }
    $(kind + "-form").hidden = true;
    editor.panel().key = null;   // read it again, as CRM now has it
    toast((kind === "contact" ? "Contact" : "Account") + " saved.", "ok");
    render();
  }

  // ---- the Case panel ----------------------------------------------------------------
  // Searched with the agent's own permissions; the service assigns only a case of the
  // agent's, the chat contact's or that contact's account's (the three filters).
  const casePanel = { key: null, rows: [], note: "" };
  const SEARCH_DELAY_MS = 300;   // one query per pause in typing, not per key

  function caseFilter(chat) {
    const which = $("case-filter").value;
    const contact = chatContact(chat);
    const record = contactPanel.record;
    if (which === "mine") return state.session && state.session.user ? "_ownerid_value eq " + state.session.user.id : null;
    if (which === "contact") return contact ? "_customerid_value eq " + contact.id : null;
    const account = record && record._parentcustomerid_value;
    return account ? "_customerid_value eq " + account : null;
  }

  async function loadCases(chat) {
    const filter = caseFilter(chat);
    const text = $("case-text").value.trim();
    // A case made or assigned meanwhile shows up: the regarding is part of the key.
    const key = [chat.conversation_id, filter, text, (chat.regarding || {}).id].join("|");
    if (casePanel.key === key) return;
    Object.assign(casePanel, { key, rows: [], note: filter ? "Searching…" : "Nothing to search by." });
    if (!filter || !xrm || !xrm.WebApi) return;
    const clauses = ["statecode eq 0", filter];
    if (text) clauses.push("contains(title," + odataString(text) + ")");
    try {
      const found = await xrm.WebApi.retrieveMultipleRecords("incident", "?$select=incidentid,title,ticketnumber"
        + "&$filter=" + encodeURIComponent(clauses.join(" and ")) + "&$orderby=title&$top=20");
      if (casePanel.key !== key) return;
      casePanel.rows = found.entities || [];
      casePanel.note = casePanel.rows.length ? "" : "No open cases.";
    } catch (error) {
      if (casePanel.key === key) casePanel.note = "Could not search cases: " + error.message;
    }
    render();
  }

  function renderCasePanel(chat) {
    const regarding = chat.regarding || {};
    const items = casePanel.rows.map((row) => {
      const assigned = regarding.table === "incident" && regarding.id === row.incidentid;
      return el("li", { "data-testid": "case-item" },
        el("span", { text: (row.title || "(no title)") + (row.ticketnumber ? " · " + row.ticketnumber : "") }), " ",
        assigned ? el("span", { class: "muted", "data-testid": "case-assigned", text: "Assigned" })
          : el("button", {
            type: "button", class: "btn small", "data-testid": "case-assign", text: "Assign",
            disabled: Boolean(chat.leftReason), onclick: () => assignCase(chat.conversation_id, row.incidentid),
          }));
    });
    if (casePanel.note) items.push(el("li", { class: "muted", text: casePanel.note }));
    $("case-results").replaceChildren(...items);
    $("case-new").disabled = $("case-new").dataset.busy === "true" || Boolean(chat.leftReason);
  }

  async function assignCase(conversationId, caseId) {
    try {
      await agentCall("PUT", "/api/agent/chats/" + conversationId + "/case", { case_id: caseId });
    } catch (error) {
      toast("Could not assign the case: " + error.message, "bad");
    }
  }

  // The Case and Knowledge searches: one query per pause in typing.
  let searchTimer = null;
  function searchSoon() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => render(), SEARCH_DELAY_MS);
  }

  // ---- the Knowledge panel -----------------------------------------------------------
  // Published articles (statecode 3), read with the agent's own permissions. An article's
  // content is HTML written in CRM: only its text is shown and sent, never its markup.
  const kbPanel = { key: null, rows: [], note: "", article: null };
  const KB_PUBLISHED = 3;
  const KB_MIN_SEARCH_CHARS = 2;   // one letter matches nearly every article

  function htmlText(html) {
    // DOMParser builds an inert document: no script runs, no image loads.
    const doc = new DOMParser().parseFromString(String(html || ""), "text/html");
    for (const block of doc.body.querySelectorAll("p, div, li, br, h1, h2, h3, h4, tr")) block.append("\n");
    return doc.body.textContent.replace(/\n{3,}/g, "\n\n").trim();
  }

  async function loadArticles() {
    const text = $("kb-text").value.trim();
    const key = text.length >= KB_MIN_SEARCH_CHARS ? text : "";
    if (kbPanel.key === key) return;
    Object.assign(kbPanel, { key, rows: [], note: key ? "Searching…" : "" });
    if (!key || !xrm || !xrm.WebApi) return;
    const literal = odataString(key);
    const filter = "statecode eq " + KB_PUBLISHED + " and (contains(title," + literal + ") or contains(keywords," + literal + "))";
    try {
      const found = await xrm.WebApi.retrieveMultipleRecords("knowledgearticle",
        "?$select=knowledgearticleid,title,articlepublicnumber&$filter=" + encodeURIComponent(filter)
        + "&$orderby=title&$top=10");
      if (kbPanel.key !== key) return;
      kbPanel.rows = found.entities || [];
      kbPanel.note = kbPanel.rows.length ? "" : "No published article matches.";
    } catch (error) {
      if (kbPanel.key === key) kbPanel.note = "Could not search articles: " + error.message;
    }
    render();
  }

  async function openArticle(articleId) {
    try {
      const row = await xrm.WebApi.retrieveRecord("knowledgearticle", articleId,
        "?$select=title,content,description,articlepublicnumber");
      kbPanel.article = {
        id: articleId, number: row.articlepublicnumber || "", title: row.title || "",
        text: htmlText(row.content) || row.description || "",
      };
    } catch (error) {
      toast("Could not read the article: " + error.message, "bad");
    }
    render();
  }

  function renderKnowledgePanel(chat) {
    const items = kbPanel.rows.map((row) => el("li", { "data-testid": "kb-item" },
      el("button", {
        type: "button", class: "link", text: row.title || "(no title)",
        onclick: () => openArticle(row.knowledgearticleid),
      }),
      row.articlepublicnumber ? el("span", { class: "muted", text: " " + row.articlepublicnumber }) : null));
    if (kbPanel.note) items.push(el("li", { class: "muted", text: kbPanel.note }));
    $("kb-results").replaceChildren(...items);
    const article = kbPanel.article;
    $("kb-article").hidden = !article;
    if (article) {
      $("kb-title").textContent = article.title;
      $("kb-body").textContent = article.text;
    }
    $("kb-send").disabled = chat.state === "ended";
    // Send link: only with the admin's address, and an article it can name.
    const link = article ? articleLink(article) : "";
    $("kb-send-link").hidden = !pages.kb;
    $("kb-send-link").disabled = chat.state === "ended" || !link;
    const note = pages.kbBad ? "The knowledge base address must be an https:// address with {number} or {id} in it."
      : article && pages.kb && !link ? "This article has no number for the knowledge base address." : "";
    $("kb-link-note").textContent = note;
    $("kb-link-note").hidden = !note;
  }

  // The article's title and its public address, at the cursor, for the agent to send.
  function sendArticleLink() {
    const article = kbPanel.article;
    const link = article ? articleLink(article) : "";
    if (!link) return;
    insertAtCursor(article.title + ": " + link);
    $("input").focus();
  }

  function sendArticleText() {
    const article = kbPanel.article;
    if (!article) return;
    // A message holds at most MAX_TEXT_CHARS: a longer article is cut, the rest marked.
    const text = article.title + "\n" + article.text;
    insertAtCursor(text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS - 1) + "…" : text);
    $("input").focus();
  }

  // ---- the contact's past activities ------------------------------------------------
  // The newest activities regarding the chat's contact (any table, through
  // activitypointer), read with the agent's own permissions.
  const activityPanel = { key: null, rows: [], note: "" };
  const ACTIVITIES_SHOWN = 10;
  const FORMATTED = "@OData.Community.Display.V1.FormattedValue";

  async function loadActivities(chat) {
    const contact = chatContact(chat);
    const key = chat.conversation_id + "|" + (contact ? contact.id : "");
    if (activityPanel.key === key) return;
    Object.assign(activityPanel, { key, rows: [], note: contact ? "Loading…" : "No contact linked." });
    if (!contact || !xrm || !xrm.WebApi) return;
    try {
      const found = await xrm.WebApi.retrieveMultipleRecords("activitypointer",
        "?$select=activityid,subject,activitytypecode,createdon&$filter="
        + encodeURIComponent("_regardingobjectid_value eq " + contact.id)
        + "&$orderby=createdon desc&$top=" + ACTIVITIES_SHOWN);
      if (activityPanel.key !== key) return;
      activityPanel.rows = found.entities || [];
      activityPanel.note = activityPanel.rows.length ? "" : "No activities yet.";
    } catch (error) {
      if (activityPanel.key === key) activityPanel.note = "Could not read the activities: " + error.message;
    }
    render();
  }

  function renderActivities() {
    const items = activityPanel.rows.map((row) => {
      const when = parseTime(row.createdon);
      return el("li", { "data-testid": "activity-item" },
        el("span", { text: row.subject || "(no subject)" }), " ",
        el("span", { class: "muted", text: [row["activitytypecode" + FORMATTED] || row.activitytypecode,
          when === null ? "" : formatDate(when)].filter(Boolean).join(" · ") }));
    });
    if (activityPanel.note) items.push(el("li", { class: "muted", text: activityPanel.note }));
    $("activity-list").replaceChildren(...items);
  }

  // ---- earlier chats with this contact, from CRM ---------------------------------------
  // On demand ("Earlier chats from CRM"): the contact's chat activities (regarding it, or
  // with it as a party, as the activity is written), newest first, CRM_CHATS_PAGE at a
  // time, read with the agent's own permissions as the Activities panel reads; each opens
  // its readable transcript. Paged by start time (the Web API has no $skip): the next page
  // starts before the oldest shown.
  const crmChats = { key: null, rows: [], more: false, done: false, note: "", open: null, loading: false };
  const CRM_CHATS_PAGE = 5;
  const GUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const ODATA_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

  function crmChatsKey(chat) {
    const contact = chatContact(chat);
    return contact && GUID_TEXT.test(contact.id) ? chat.conversation_id + "|" + contact.id : null;
  }

  async function loadCrmChats(chat) {
    const key = crmChatsKey(chat);
    if (!key || !xrm || !xrm.WebApi || crmChats.loading) return;
    if (crmChats.key !== key) Object.assign(crmChats, { key, rows: [], more: false, done: false, note: "", open: null });
    const contactId = key.split("|")[1];
    const oldest = crmChats.rows.length ? crmChats.rows[crmChats.rows.length - 1].actualstart : null;
    let filter = "(_regardingobjectid_value eq " + contactId
      + " or crmchat_chat_activity_parties/any(p:p/_partyid_value eq " + contactId + "))";
    if (oldest && ODATA_TIME.test(oldest)) filter += " and actualstart lt " + oldest;
    crmChats.loading = true;
    crmChats.note = "Loading…";
    render();
    try {
      const found = await xrm.WebApi.retrieveMultipleRecords("crmchat_chat",
        "?$select=activityid,subject,actualstart,crmchat_participantnames,crmchat_transcript&$filter="
        + encodeURIComponent(filter) + "&$orderby=actualstart desc&$top=" + (CRM_CHATS_PAGE + 1));
      if (crmChats.key === key) {
        const page = found.entities || [];
        crmChats.rows = crmChats.rows.concat(page.slice(0, CRM_CHATS_PAGE));
        crmChats.more = page.length > CRM_CHATS_PAGE;
        crmChats.done = !crmChats.more;
        crmChats.note = crmChats.rows.length ? "" : "No earlier chats in CRM.";
      }
    } catch (error) {
      if (crmChats.key === key) crmChats.note = "Could not read the earlier chats: " + error.message;
    }
    crmChats.loading = false;
    render();
  }

  function renderCrmChats(chat) {
    const key = crmChatsKey(chat);
    const shown = key !== null && crmChats.key === key;
    const items = shown ? crmChats.rows.map((row) => {
      const when = parseTime(row.actualstart);
      const open = crmChats.open === row.activityid;
      return el("li", { "data-testid": "crm-chat-item" },
        el("button", {
          type: "button", class: "link history-open", "aria-expanded": String(open),
          onclick: () => { crmChats.open = open ? null : row.activityid; render(); },
        },
        el("span", { text: when === null ? "" : formatDate(when) }), " ",
        el("span", { class: "muted", text: [row.subject, row.crmchat_participantnames].filter(Boolean).join(" · ") })),
        open ? el("pre", { class: "transcript", "data-testid": "crm-chat-transcript",
          text: row.crmchat_transcript || "(no transcript)" }) : null);
    }) : [];
    if (shown && crmChats.note) items.push(el("li", { class: "muted", text: crmChats.note }));
    $("crm-chats").replaceChildren(...items);
    const button = $("crm-chats-load");
    button.hidden = key === null || !xrm || (shown && crmChats.done);
    button.disabled = crmChats.loading;
    button.textContent = shown && crmChats.rows.length ? "More earlier chats" : "Earlier chats from CRM";
  }

  // The closing choices of the chat's topics (the service checks the same list).
  function chatDispositions(chat) {
    const names = [];
    for (const topic of chat.topics || []) {
      for (const name of topic.dispositions || []) if (!names.includes(name)) names.push(name);
    }
    return names;
  }

  function chatLabelIds(chat) {
    return new Set((chat.labels || []).map((label) => label.id));
  }

  function renderLabels(chat) {
    // By name, so the chips keep their places whichever order the service sends.
    const sorted = (chat.labels || []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const chips = sorted.map((label) => {
      const color = safeColor(label.color);
      return el("span", {
        class: "chip", "data-testid": "label-chip", "data-label-id": label.id,
        style: "background:" + color + ";color:" + textOn(color), text: label.name,
      });
    });
    $("labels").replaceChildren(...(chips.length ? chips : [el("span", { class: "muted", text: "None" })]));
    $("labels-button").disabled = !state.labels.length || chat.state === "ended";
    if (!$("labels-menu").hidden) renderLabelMenu(chat);
  }

  function renderLabelMenu(chat) {
    const chosen = chatLabelIds(chat);
    const options = state.labels.map((label) => {
      const box = el("input", { type: "checkbox", value: label.id });
      box.checked = chosen.has(label.id);
      box.addEventListener("change", () => setLabels(chat.conversation_id));
      const color = safeColor(label.color);
      return el("label", { class: "menu-item", "data-testid": "label-option", "data-label-id": label.id },
        box, el("span", { class: "chip", style: "background:" + color + ";color:" + textOn(color), text: label.name }));
    });
    $("labels-menu").replaceChildren(...(options.length ? options : [el("p", { class: "menu-empty", text: "No labels yet." })]));
  }

  function setLabels(conversationId) {
    const chat = state.chats.get(conversationId);
    if (!chat) return;
    const ids = [...$("labels-menu").querySelectorAll("input:checked")].map((box) => box.value);
    // Shown at once; the service's chat.updated confirms (or corrects) it.
    chat.labels = state.labels.filter((label) => ids.includes(label.id));
    send({ type: "chat.labels", conversation_id: conversationId, label_ids: ids });
    render();
  }

  function renderInfo(chat) {
    const isVisitor = chat.kind === "visitor";
    $("crm-card").hidden = !isVisitor;
    for (const button of document.querySelectorAll(".crm-buttons button")) {
      // Allowed after the end too, while the service still holds the chat (rating time).
      button.disabled = button.dataset.busy === "true" || Boolean(chat.leftReason);
    }
    for (const card of document.querySelectorAll(".visitor-only")) card.hidden = !isVisitor;
    $("people-heading").textContent = isVisitor ? "Visitor" : "Participants";
    const regarding = $("regarding");
    if (chat.regarding) {
      const label = (REGARDING_LABELS[chat.regarding.table] || chat.regarding.table) + ": ";
      regarding.replaceChildren(label, el("a", {
        href: "#", "data-table": chat.regarding.table, "data-id": chat.regarding.id, text: chat.regarding.name,
        onclick: (event) => { event.preventDefault(); openRegarding(chat.regarding); },
      }));
      regarding.dataset.table = chat.regarding.table;
      regarding.dataset.id = chat.regarding.id;
    } else {
      regarding.textContent = "None yet";
      delete regarding.dataset.table;
      delete regarding.dataset.id;
    }
    // A channel's person not linked yet: offer the contacts the agent can search.
    const linkForm = $("link-contact");
    const linkable = Boolean(chat.channel) && !chat.regarding && !chat.leftReason;
    if (linkForm.hidden !== !linkable) {
      linkForm.hidden = !linkable;
      $("link-results").replaceChildren();
    }
    const visitor = chat.visitor || {};
    const facts = $("visitor-info");
    facts.replaceChildren();
    if (isVisitor) {
      fact(facts, "Name", visitorName(visitor));
      const url = pageUrl(visitor.page);
      fact(facts, "Page", pageText(visitor.page), { title: url, "data-testid": "info-page" });
      fact(facts, "Location", visitor.ip ? "IP " + visitor.ip : "", { "data-testid": "info-ip" });
      fact(facts, "Widget", (chat.widget && chat.widget.name) || "", { "data-testid": "info-widget" });
      if (chat.channel) fact(facts, "Channel", chat.channel.label + " · " + chat.channel.account_name, { "data-testid": "info-channel" });
      fact(facts, "Started", parseTime(chat.started_at) !== null ? formatDate(parseTime(chat.started_at)) : "");
    }
    fact(facts, "With", (chat.participants || []).filter((p) => p.kind !== "visitor").map((p) => p.name).join(", "));
    $("chat-topics").replaceChildren(...topicChips(chat.topics));
    if (isVisitor) {
      // The Case panel's account filter and the Account panel read the contact record.
      if (panelOn("contact") || panelOn("case") || panelOn("account")) loadContactPanel(chat);
      if (panelOn("contact")) renderContactPanel(chat);
      if (panelOn("account")) {
        loadAccount();
        renderAccountPanel();
      }
      if (panelOn("case")) {
        loadCases(chat);
        renderCasePanel(chat);
      }
      if (panelOn("knowledge")) {
        loadArticles();
        renderKnowledgePanel(chat);
      }
      if (panelOn("activities")) {
        loadActivities(chat);
        renderActivities();
      }
      if (panelOn("page")) renderPagePanel(chat);
      renderIdentity(chat);
      renderDetails(chat);
      renderLabels(chat);
    }
    const input = $("visitor-input");
    input.replaceChildren();
    const labels = visitor.field_labels || {};
    for (const [name, value] of Object.entries(visitor.fields || {})) fact(input, labels[name] || name, String(value));
    if (!input.childNodes.length) input.append(el("dd", { class: "muted", text: "None" }));
    const history = (chat.history || []).map((h) => {
      const started = parseTime(h.started_at);
      const agent = typeof h.agent === "string" ? h.agent : (h.agent && h.agent.name) || "";
      const open = state.earlier && state.earlier.id === h.conversation_id;
      return el("li", { "data-testid": "history-item", "data-conversation-id": h.conversation_id },
        el("button", {
          type: "button", class: "link history-open", "aria-expanded": String(Boolean(open)),
          onclick: () => showEarlier(chat.conversation_id, h.conversation_id),
        },
        el("span", { text: started === null ? "" : formatDate(started) }), " ",
        el("span", { class: "muted", text: [agent, (h.message_count || 0) + " messages"].filter(Boolean).join(" · ") })),
        open ? el("ol", { class: "messages earlier", "data-testid": "history-transcript" },
          ...(state.earlier.messages === null ? [el("li", { class: "muted", text: "Loading…" })]
            : state.earlier.messages.map((m) => messageItem(m, false)))) : null);
    });
    $("history").replaceChildren(...(history.length ? history : [el("li", { class: "muted", text: "No earlier chats." })]));
    renderCrmChats(chat);
  }

  // An earlier chat of this visitor, opened in the History card (a second click closes it).
  async function showEarlier(conversationId, earlierId) {
    if (state.earlier && state.earlier.id === earlierId) {
      state.earlier = null;
      render();
      return;
    }
    state.earlier = { id: earlierId, messages: null };
    render();
    try {
      const body = await agentCall("GET", "/api/agent/chats/" + conversationId + "/history/" + earlierId);
      if (state.earlier && state.earlier.id === earlierId) state.earlier.messages = body.messages || [];
    } catch (error) {
      state.earlier = null;
      toast(error.message || "The earlier chat could not be read.", "bad");
    }
    render();
  }

  function tick() {
    const now = Date.now();
    for (const node of counters.watched) {
      if (!node.isConnected) {
        counters.watched.delete(node);
        counters.shown.delete(node);
        if (counters.watch) counters.watch.unobserve(node);
      }
    }
    for (const node of counters.watch ? counters.shown : counters.watched) writeSince(node, now);
    writeSince($("chat-duration"), now);
    for (const [id, t] of state.typing) {
      if (t.until < now) { state.typing.delete(id); render(); }
    }
    watchLine();
    remindWaiting(now);
  }

  // ---- wiring ----------------------------------------------------------------------------
  function wire() {
    $("status").addEventListener("change", (event) => {
      const status = event.target.value;
      if (state.me) state.me.status = status;
      send({ type: "status.set", status });
      render();
    });
    // Each agent's own, from the snapshot on (applyPreferences).
    for (const id of ["sound", "alert-mode", "alert-delay"]) $(id).addEventListener("change", savePreferences);
    // Browsers ask for notification permission only from a user gesture: the first one.
    for (const gesture of ["click", "keydown"]) {
      document.addEventListener(gesture, () => alerts.askPermission(), { once: true });
    }
    $("composer").addEventListener("submit", (event) => { event.preventDefault(); sendMessage(); });
    $("input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendMessage();
      }
    });
    $("input").addEventListener("input", () => {
      if (state.active) state.drafts.set(state.active, $("input").value);
      typed();
    });
    $("invite").addEventListener("click", () => agentMenu("invite-menu", "invite"));
    $("transfer").addEventListener("click", () => agentMenu("transfer-menu", "transfer"));
    $("consult").addEventListener("click", () => agentMenu("consult-menu", "consult"));
    $("end").addEventListener("click", () => {
      closeMenus("end-confirm");
      const chat = state.active ? state.chats.get(state.active) : null;
      const choices = chat ? chatDispositions(chat) : [];
      $("disposition").replaceChildren(el("option", { value: "", text: "Choose…" }),
        ...choices.map((name) => el("option", { value: name, text: name })));
      $("disposition-wrap").hidden = !choices.length;
      $("disposition-hint").hidden = true;
      const wrapup = Boolean(chat && chat.state === "ended" && chat.wrapup_until);
      $("end-confirm-text").textContent = wrapup ? "Close this chat?" : "End this chat?";
      $("end-yes").textContent = wrapup ? "Close chat" : "End chat";
      $("end-confirm").hidden = false;
      (choices.length ? $("disposition") : $("end-yes")).focus();
    });
    $("end-no").addEventListener("click", () => { $("end-confirm").hidden = true; });
    $("crm-chats-load").addEventListener("click", () => {
      const chat = state.active && state.chats.get(state.active);
      if (chat) loadCrmChats(chat);
    });
    $("important").addEventListener("click", () => {
      const chat = state.active && state.chats.get(state.active);
      if (chat) send({ type: "chat.important", conversation_id: chat.conversation_id, important: !chat.important });
    });
    $("postpone").addEventListener("click", () => {
      const box = $("postpone-box");
      const open = !box.hidden;
      closeMenus();
      if (open) return;
      box.hidden = false;
      // In an hour by default; the service takes one minute to one day from now.
      const input = $("postpone-until");
      input.min = localInputValue(Date.now() + POSTPONE_MIN_MS);
      input.max = localInputValue(Date.now() + POSTPONE_MAX_MS);
      input.value = localInputValue(Date.now() + 3600 * 1000);
      $("postpone-hint").hidden = true;
      input.focus();
    });
    $("postpone-no").addEventListener("click", () => { $("postpone-box").hidden = true; });
    $("postpone-box").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!state.active) return;
      const until = new Date($("postpone-until").value).getTime();   // local time, as typed
      const left = until - Date.now();
      const problem = Number.isNaN(until) ? "Choose a date and time."
        : left < POSTPONE_MIN_MS ? "Choose a time at least a minute from now."
          : left > POSTPONE_MAX_MS ? "A chat can be postponed by at most a day." : "";
      if (problem) {
        $("postpone-hint").textContent = problem;
        $("postpone-hint").hidden = false;
        return;
      }
      $("postpone-box").hidden = true;
      send({ type: "chat.postpone", conversation_id: state.active, until: new Date(until).toISOString() });
    });
    $("disposition").addEventListener("change", () => { $("disposition-hint").hidden = true; });
    $("end-yes").addEventListener("click", () => {
      if (!state.active) return;
      const frame = { type: "chat.end", conversation_id: state.active };
      if (!$("disposition-wrap").hidden) {
        // The service refuses it too (disposition_required); asking here saves a round trip.
        if (!$("disposition").value) {
          $("disposition-hint").hidden = false;
          $("disposition").focus();
          return;
        }
        frame.disposition = $("disposition").value;
      }
      $("end-confirm").hidden = true;
      send(frame);
    });
    $("snippet-button").addEventListener("click", async () => {
      if (!toggle("snippet-picker")) return;
      $("snippet-filter").value = "";
      renderSnippetList();
      $("snippet-filter").focus();
      try {
        await loadSnippets();
      } catch (error) {
        toast("Could not load snippets: " + error.message, "bad");
      }
      renderSnippetList();
    });
    $("template-button").addEventListener("click", openTemplatePicker);
    $("template-choice").addEventListener("change", renderTemplateForm);
    $("template-send").addEventListener("click", sendTemplate);
    $("snippet-filter").addEventListener("input", renderSnippetList);
    $("snippet-filter").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        const first = $("snippet-list").querySelector("button");
        if (first) first.click();
      }
    });
    $("emoji-picker").replaceChildren(...EMOJI.map((emoji) => el("button", {
      type: "button", class: "emoji", "data-testid": "emoji-item", text: emoji, "aria-label": emoji,
      onclick: () => { $("emoji-picker").hidden = true; insertAtCursor(emoji); },
    })));
    $("emoji-button").addEventListener("click", () => toggle("emoji-picker"));
    $("attach-button").addEventListener("click", () => $("file-input").click());
    $("file-input").addEventListener("change", () => {
      const file = $("file-input").files[0];
      $("file-input").value = "";
      sendFile(file);
    });
    // Dropping a file on the chat sends it, as the attach button does.
    $("messages").addEventListener("dragover", (event) => {
      if (![...event.dataTransfer.types].includes("Files")) return;
      event.preventDefault();
      $("messages").classList.add("dropping");
    });
    $("messages").addEventListener("dragleave", () => $("messages").classList.remove("dropping"));
    $("messages").addEventListener("drop", (event) => {
      event.preventDefault();
      $("messages").classList.remove("dropping");
      sendFile(event.dataTransfer.files[0]);
    });
    $("contact-unpair").addEventListener("click", unpairContact);
    $("account-open").addEventListener("click", () => {
      const accountId = contactAccountId();
      if (accountId) openRegarding({ table: "account", id: accountId });
    });
    $("case-filter").addEventListener("change", () => render());
    $("case-text").addEventListener("input", searchSoon);
    $("case-new").addEventListener("click", () => createRecord("case", $("case-new")));
    $("kb-text").addEventListener("input", searchSoon);
    $("kb-send").addEventListener("click", sendArticleText);
    $("kb-send-link").addEventListener("click", sendArticleLink);
    for (const kind of Object.keys(EDITORS)) {
      $(kind + "-edit").addEventListener("click", () => openEditor(kind));
      $(kind + "-cancel").addEventListener("click", () => { $(kind + "-form").hidden = true; });
      $(kind + "-form").addEventListener("submit", (event) => { event.preventDefault(); saveEditor(kind); });
    }
    $("contact-open").addEventListener("click", () => {
      const chat = state.active ? state.chats.get(state.active) : null;
      const contact = chat && chatContact(chat);
      if (contact) openRegarding({ table: "contact", id: contact.id });
    });
    $("labels-button").addEventListener("click", () => {
      const chat = state.active ? state.chats.get(state.active) : null;
      if (chat && toggle("labels-menu")) renderLabelMenu(chat);
    });
    for (const button of document.querySelectorAll(".crm-buttons button")) {
      button.addEventListener("click", () => createRecord(button.dataset.kind, button));
    }
    $("link-contact").addEventListener("submit", searchContacts);
    $("outbound-form").addEventListener("submit", searchOutbound);
    document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeMenus(); });
    document.addEventListener("click", (event) => {
      const boxes = "#end-confirm, #postpone-box, #end, #postpone";
      if (!event.target.closest(".menu-wrap") && !event.target.closest(boxes)) closeMenus();
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) render(); });
    setInterval(tick, 1000);
  }

  async function start() {
    wire();
    try {
      state.session = await window.CRMChatSignIn.open();
    } catch (error) {
      // Status 0: no Xrm, so the message says where to open the page.
      setConnection("offline", error.status === 0 ? error.message
        : "Could not read the CRM Chat settings: " + error.message);
      return;
    }
    loadPanelSettings();
    loadCrmTables();
    connect();
    presetOutbound();
  }

  start();
}());
