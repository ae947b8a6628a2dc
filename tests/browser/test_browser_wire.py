"""What Chromium downloads for the widget: compressed, within 30 KB, widget.js kept a year.

The figures (first, returning and later visits) are in bench/widget_wire.py; this checks
the facts a visitor's browser depends on, as Chromium sees them on the demo shop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import Service

FIRST_MESSAGE_BUDGET_BYTES = 30_000
WIDGET_PATHS = ("/widget/", "/api/widgets/")


def test_the_widget_arrives_compressed_and_its_script_is_cached_for_a_year(
    service: Service, new_page: Callable[[], Any]
) -> None:
    page = new_page()
    page.add_init_script(
        "window.addEventListener('lcw:ready', function () { window.__ready = true; });"
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    seen: dict[str, dict[str, Any]] = {}
    wire: dict[str, int] = {}
    cdp.on(
        "Network.responseReceived",
        lambda e: seen.__setitem__(e["requestId"], e["response"]),
    )
    cdp.on(
        "Network.loadingFinished",
        lambda e: wire.__setitem__(e["requestId"], int(e["encodedDataLength"])),
    )
    page.goto(f"{service.url}/demo/")
    page.wait_for_function("window.__ready === true")
    page.wait_for_timeout(300)

    widget = {
        rid: response
        for rid, response in seen.items()
        if response["url"].removeprefix(service.url).startswith(WIDGET_PATHS)
    }
    total = sum(wire.get(rid, 0) for rid in widget)
    assert 0 < total <= FIRST_MESSAGE_BUDGET_BYTES
    scripts = [r for r in widget.values() if r["url"].endswith("/widget.js")]
    assert len(scripts) == 1
    script = scripts[0]
    headers = {name.lower(): value for name, value in script["headers"].items()}
    assert "/widget/v/" in script["url"]
    assert headers["content-encoding"] in ("br", "gzip")
    assert "immutable" in headers["cache-control"]
    assert "max-age=31536000" in headers["cache-control"]

    # Back on the shop: the browser takes widget.js from its cache, asking nobody.
    again = page.context.new_page()
    again.add_init_script(
        "window.addEventListener('lcw:ready', function () { window.__ready = true; });"
    )
    again.goto(f"{service.url}/demo/")
    again.wait_for_function("window.__ready === true")
    # transferSize 0: served from the browser's cache.
    timing = again.evaluate(
        "performance.getEntriesByType('resource')"
        ".filter(e => e.name.endsWith('/widget.js')).map(e => e.transferSize)"
    )
    assert timing == [0]
