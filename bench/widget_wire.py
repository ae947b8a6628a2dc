"""What Chromium really downloads for the widget before a visitor can send a message.

Starts the service (embedded Dataverse, demo records) on a free port, opens the demo shop
(`/demo/`, carrying the Sales chat widget) in headless Chromium through Playwright and
counts, with the DevTools protocol (`Network.loadingFinished.encodedDataLength`: bytes on
the wire, headers included, after compression), every response of the widget's own
requests (`/widget/…`, `/api/widgets/…`) until widget.js has fired `lcw:ready`, the moment
the visitor could write. The demo page itself is the customer's site and is not counted.

- first visit:      a fresh browser profile;
- returning visit:  the same profile opening the page again seconds later (the loader and
                    the config are still fresh too);
- later visit:      the same profile once the config's 30 s lifetime is over (the
                    loader's five minutes are not): only the config comes again.
What comes from the network is listed per request, with its Content-Encoding.

Prints one line per request and per figure and, last, one JSON object
{"first_visit_bytes", "returning_visit_bytes", "later_visit_bytes", "*_requests",
"widget_js_wire_bytes", "widget_js_raw_bytes"}.
Usage: python bench/widget_wire.py   (needs Debian's chromium; CRMCHAT_CHROMIUM overrides)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from connector.app import create_app, stop_app
from connector.solution.paths import WEBRESOURCES_DIR
from connector.web.widget_api import CONFIG_MAX_AGE_SECS

CHROMIUM = os.environ.get("CRMCHAT_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 20_000
WIDGET_PATHS = ("/widget/", "/api/widgets/")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _visit(context: Any, url: str, label: str) -> tuple[int, int, dict[str, int]]:
    """(wire bytes, network requests, bytes per path) of the widget's requests on one visit."""
    page = context.new_page()
    page.add_init_script(
        "window.addEventListener('lcw:ready', function () { window.__crmchatReady = true; });"
    )
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    encodings: dict[str, str] = {}
    sizes: dict[str, int] = {}
    cached: set[str] = set()

    def on_response(event: dict[str, Any]) -> None:
        urls[event["requestId"]] = event["response"]["url"]
        headers = {k.lower(): v for k, v in event["response"]["headers"].items()}
        encodings[event["requestId"]] = headers.get("content-encoding", "identity")
        if event["response"].get("fromDiskCache"):
            cached.add(event["requestId"])

    def on_finished(event: dict[str, Any]) -> None:
        sizes[event["requestId"]] = int(event["encodedDataLength"])

    def on_cache(event: dict[str, Any]) -> None:
        cached.add(event["requestId"])

    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.loadingFinished", on_finished)
    cdp.on("Network.requestServedFromCache", on_cache)
    page.goto(url)
    page.wait_for_function("window.__crmchatReady === true", timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)  # let the last loadingFinished events arrive
    per_path: dict[str, int] = {}
    total = requests = 0
    for request_id, address in urls.items():
        path = address.split("://", 1)[-1].split("/", 1)[-1]
        path = "/" + path.split("?", 1)[0]
        if not path.startswith(WIDGET_PATHS):
            continue
        wire = 0 if request_id in cached else sizes.get(request_id, 0)
        # Nothing on the wire and no loadingFinished: Chromium's memory cache answered.
        source = f"network, {encodings.get(request_id)}" if wire else "cache"
        print(f"  {label:<10} {path:<64} {wire:>7,} B  ({source})", flush=True)
        per_path[path] = wire
        total += wire
        requests += 1 if wire else 0
    page.close()
    return total, requests, per_path


def main() -> int:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not executable:
        print("chromium is missing: apt-get install chromium", file=sys.stderr)
        return 2
    os.environ["CRMCHAT_DEMO"] = "1"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        port = _free_port()
        app = create_app({"data_dir": Path(folder), "port": port, "log_level": "WARNING"})
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
                )
                context = browser.new_context()
                url = f"http://127.0.0.1:{port}/demo/"
                first, first_requests, first_paths = _visit(context, url, "first")
                again, again_requests, _ = _visit(context, url, "returning")
                # The config's 30 s lifetime over (the loader's 300 s is not): what a
                # visitor coming back later downloads, while the loader is fresh.
                time.sleep(CONFIG_MAX_AGE_SECS + 1)
                later, later_requests, _ = _visit(context, url, "later")
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            stop_app(app)
    widget_js = sum(size for path, size in first_paths.items() if path.endswith("/widget.js"))
    raw = (WEBRESOURCES_DIR / "widget" / "widget.js").stat().st_size
    figures = {
        "first_visit_bytes": first,
        "returning_visit_bytes": again,
        "first_visit_requests": first_requests,
        "returning_visit_requests": again_requests,
        "later_visit_bytes": later,
        "later_visit_requests": later_requests,
        "widget_js_wire_bytes": widget_js,
        "widget_js_raw_bytes": raw,
    }
    print(f"first visit       {first:>8,} B on the wire in {first_requests} requests")
    print(f"returning visit   {again:>8,} B on the wire in {again_requests} requests")
    print(f"later visit       {later:>8,} B on the wire in {later_requests} requests")
    print(f"widget.js         {widget_js:>8,} B on the wire ({raw:,} B on disk)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
