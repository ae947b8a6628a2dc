"""Main-thread CPU of the agent console in Chromium, at 20 / 100 / 200 visitors.

The console (webresources/console/) runs in headless Chromium with its WebSocket replaced
by a stub that feeds it frames shaped as docs/protocol.md says the service sends them: a
snapshot with N visitors, N/4 open visitor chats (each with a tab and 5 messages), 4 other
agents and 2 incoming chats; then, at --rate events a second for --seconds, a mix of
`message.created` (a visitor writes in one of the chats), `visitor.updated` (a visitor
changes page), `typing` and `agents.updated` (another agent's status). The same run first
measures an idle window of the same length (no events: the once-a-second counters only).

Main-thread CPU comes from the Chrome DevTools Protocol's `Performance.getMetrics`
(`TaskDuration`: everything the renderer's main thread ran: script, style, layout, paint
set-up), read before and after each window. Printed per window: ms of main-thread CPU per
second, and ms per event ((busy - idle) / events), which should not grow with N.

`before` is the console (console.js and console.css) as of --before (a git revision; default:
the last console that redrew every list on every event), read with `git show`, so both run
in the same process on the same machine; `after` is the working tree's.

The last line printed is one JSON object with every figure.
Usage: python bench/console_cpu.py [--visitors 20 100 200] [--rate 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "webresources"
CONSOLE_FILES = ("console/console.js", "console/console.css")
# The console before issue 14's keyed rows: every event rebuilt every list.
BEFORE_REV = "4958f9c"
ORIGIN = "http://console.test"
CHROMIUM = os.environ.get("CRMCHAT_CHROMIUM", "/usr/bin/chromium")

# Replaces common/signin.js: a signed-in session without a service behind it.
SIGNIN_STUB = """
window.CRMChatSignIn = {
  xrm: () => null,
  open: async () => ({
    base: location.origin, user: null, token: () => "token", fresh: () => true,
    reachable: async () => true, signIn: async () => {}, call: async () => [],
  }),
};
"""

# Replaces the browser's WebSocket before the console loads: window.__feed(frame) delivers
# a frame as the service would (a text message the console parses).
SOCKET_STUB = """
(() => {
  class StubSocket {
    constructor(url) {
      this.url = url; this.readyState = 1; this.listeners = {}; this.sent = [];
      window.__socket = this;
      setTimeout(() => this.emit("open", {}), 0);
    }
    addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
    emit(type, event) { for (const fn of this.listeners[type] || []) fn(event); }
    send(data) { this.sent.push(data); }
    close() { this.readyState = 3; }
  }
  StubSocket.OPEN = 1;
  window.WebSocket = StubSocket;
  window.__feed = (frame) => window.__socket.emit("message", { data: JSON.stringify(frame) });
  window.__play = (frames, everyMs) => new Promise((done) => {
    let i = 0;
    const timer = setInterval(() => {
      if (i >= frames.length) { clearInterval(timer); done(i); return; }
      window.__feed(frames[i++]);
    }, everyMs);
  });
})();
"""


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _visitor(index: int, now: datetime) -> dict[str, Any]:
    return {
        "visitor_id": f"v{index:04d}",
        "name": f"Visitor {index}",
        "page": {"url": f"https://shop.example/p/{index}", "title": f"Product {index}"},
        "ip": f"10.0.{index // 250}.{index % 250}",
        "widget_id": "w1",
        "widget_name": "Sales chat",
        "first_seen": _iso(now - timedelta(seconds=30 + index)),
        "connected": True,
        "chatting": False,
    }


def _message(conversation_id: str, seq: int, now: datetime, kind: str) -> dict[str, Any]:
    return {
        "type": "message.created",
        "conversation_id": conversation_id,
        "seq": seq,
        "sent_at": _iso(now),
        "text": f"Message {seq} in {conversation_id}",
        "sender": {"kind": kind, "name": "Sam" if kind == "agent" else "Visitor"},
    }


def _chat(index: int, visitor: dict[str, Any], now: datetime) -> dict[str, Any]:
    conversation_id = f"c{index:04d}"
    messages = [
        {k: v for k, v in _message(conversation_id, seq, now, kind).items() if k != "type"}
        for seq, kind in enumerate(["visitor", "agent", "visitor", "agent", "visitor"], 1)
    ]
    return {
        "conversation_id": conversation_id,
        "kind": "visitor",
        "state": "active",
        "widget": {"id": "w1", "name": "Sales chat"},
        "topics": [{"id": "t1", "name": "Sales", "color": "#0f6cbd"}],
        "visitor": {k: visitor[k] for k in ("visitor_id", "name", "page", "ip", "connected")},
        "participants": [{"kind": "agent", "id": "me", "name": "Sam"}],
        "started_at": _iso(now - timedelta(minutes=3)),
        "accepted_at": _iso(now - timedelta(minutes=2)),
        "waiting_since": None,
        "regarding": None,
        "rating": None,
        "messages": messages,
        "history": [],
    }


def frames(visitors: int, events: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The snapshot and `events` frames after it (deterministic: the same for each run)."""
    now = datetime.now(UTC)
    people = [_visitor(i, now) for i in range(visitors)]
    chats = [_chat(i, people[i], now) for i in range(visitors // 4)]
    for person in people[: len(chats)]:
        person["chatting"] = True
    incoming = [
        dict(_chat(9000 + i, people[-1 - i], now), state="waiting", participants=[])
        for i in range(2)
    ]
    agents = [
        {"agent_id": f"a{i}", "name": f"Agent {i}", "status": "available", "online": True}
        for i in range(4)
    ]
    snapshot = {
        "type": "snapshot",
        "me": {"agent_id": "me", "name": "Sam", "status": "available"},
        "agents": [{"agent_id": "me", "name": "Sam", "status": "available", "online": True}]
        + agents,
        "visitors": people,
        "incoming": incoming,
        "chats": chats,
        "labels": [],
    }
    seqs = {chat["conversation_id"]: 5 for chat in chats}
    out: list[dict[str, Any]] = []
    for i in range(events):
        kind = i % 4
        chat = chats[(i * 7) % len(chats)]
        conversation_id = chat["conversation_id"]
        if kind == 0:
            seqs[conversation_id] += 1
            out.append(_message(conversation_id, seqs[conversation_id], now, "visitor"))
        elif kind == 1:
            person = dict(people[(i * 13) % visitors])
            person["page"] = {"url": f"https://shop.example/q/{i}", "title": f"Page {i}"}
            out.append({"type": "visitor.updated", "visitor": person})
        elif kind == 2:
            out.append(
                {"type": "typing", "conversation_id": conversation_id, "on": True, "name": "V"}
            )
        else:
            agent = dict(agents[i % len(agents)], status="busy" if i % 8 == 3 else "available")
            out.append({"type": "agents.updated", "agents": [agent]})
    return snapshot, out


PARTS = ("TaskDuration", "ScriptDuration", "RecalcStyleDuration", "LayoutDuration")


def task_ms(cdp: Any) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {part: float(metrics[part]) * 1000.0 for part in PARTS}


def since(start: dict[str, float], cdp: Any) -> dict[str, float]:
    now = task_ms(cdp)
    return {part: now[part] - start[part] for part in PARTS}


def measure(
    browser: Any, files: dict[str, str], visitors: int, rate: float, seconds: float
) -> dict[str, float]:
    events = int(rate * seconds)
    snapshot, feed = frames(visitors, events)
    context = browser.new_context()

    def serve(route: Any) -> None:
        path = route.request.url[len(ORIGIN) :].split("?")[0]
        if path == "/common/signin.js":
            route.fulfill(body=SIGNIN_STUB, content_type="text/javascript")
        elif path.lstrip("/") in files:
            kind = "text/css" if path.endswith(".css") else "text/javascript"
            route.fulfill(body=files[path.lstrip("/")], content_type=kind)
        elif (WEB / path.lstrip("/")).is_file():
            route.fulfill(path=str(WEB / path.lstrip("/")))
        else:
            route.fulfill(status=404, body="")

    context.route(f"{ORIGIN}/**", serve)
    context.add_init_script(SOCKET_STUB)
    page = context.new_page()
    page.goto(f"{ORIGIN}/console/index.html")
    page.wait_for_function("() => window.__socket && window.__socket.readyState === 1")
    page.wait_for_timeout(200)
    page.evaluate("frame => window.__feed(frame)", snapshot)
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=visitor-item]').length === {visitors}"
    )
    page.wait_for_timeout(1000)
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
    start = task_ms(cdp)
    began = time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    idle_parts = since(start, cdp)
    idle_wall = time.monotonic() - began
    start = task_ms(cdp)
    began = time.monotonic()
    played = page.evaluate(
        "([frames, everyMs]) => window.__play(frames, everyMs)", [feed, 1000.0 / rate]
    )
    page.wait_for_timeout(300)  # the last frame's redraw
    busy_parts = since(start, cdp)
    wall = time.monotonic() - began
    idle = idle_parts["TaskDuration"] / idle_wall
    busy = busy_parts["TaskDuration"] / wall
    shown = page.evaluate("() => document.querySelectorAll('[data-testid=visitor-item]').length")
    context.close()
    if shown != visitors:
        raise SystemExit(f"the console shows {shown} visitors, not {visitors}")
    return {
        "idle_ms_per_s": round(idle, 2),
        "busy_ms_per_s": round(busy, 2),
        "ms_per_event": round(max(0.0, busy - idle) * wall / max(1, played), 3),
        "script_ms_per_s": round(busy_parts["ScriptDuration"] / wall, 2),
        "style_ms_per_s": round(busy_parts["RecalcStyleDuration"] / wall, 2),
        "layout_ms_per_s": round(busy_parts["LayoutDuration"] / wall, 2),
        "events": float(played),
        "seconds": round(wall, 2),
    }


def files_at(rev: str) -> dict[str, str] | None:
    if shutil.which("git") is None:
        return None
    files = {}
    for name in CONSOLE_FILES:
        done = subprocess.run(
            ["git", "show", f"{rev}:webresources/{name}"], cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            return None
        files[name] = done.stdout
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, nargs="+", default=[20, 100, 200])
    parser.add_argument("--rate", type=float, default=4.0, help="events a second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--before", default=BEFORE_REV, help="git revision to compare with")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    versions = {"after": {name: (WEB / name).read_text(encoding="utf-8") for name in CONSOLE_FILES}}
    old = files_at(args.before)
    if old is None:
        print(f"no console at {args.before}: measuring the working tree only")
    else:
        versions = {"before": old, **versions}
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    results: dict[str, dict[str, dict[str, float]]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        for visitors in args.visitors:
            for name, files in versions.items():
                got = measure(browser, files, visitors, args.rate, args.seconds)
                results.setdefault(name, {})[str(visitors)] = got
                print(
                    f"{name:6} {visitors:4} visitors, {visitors // 4:3} chats: "
                    f"{got['busy_ms_per_s']:7.2f} ms CPU/s at {args.rate:g} events/s "
                    f"(idle {got['idle_ms_per_s']:.2f} ms/s), {got['ms_per_event']:.3f} ms/event; "
                    f"script {got['script_ms_per_s']:.2f}, style {got['style_ms_per_s']:.2f}, "
                    f"layout {got['layout_ms_per_s']:.2f} ms/s over {got['seconds']:.1f} s",
                    flush=True,
                )
        browser.close()
    print(json.dumps({"rate": args.rate, "seconds": args.seconds, **results}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
