"""What a website visitor downloads for the chat widget, raw and gzipped (level 9).

Two figures, against the budgets in ARCHITECTURE.md ("Budgets"):

- loader:        webresources/widget/loader.js, on every page of a site carrying the widget
                 (budget 3,000 bytes gzipped)
- first message: everything before the visitor's first message: the loader, the widget's
                 config (the default design and one topic, as the service publishes them)
                 and the widget's files (widget.js, and widget.css if there is one)
                 (budget 30,000 bytes gzipped). Not counted: extras.js (files, the end
                 screen, the chat window's hand-over), fetched only when first needed.

The loader carries the Omnichannel API's queueing stub (window.Microsoft.Omnichannel.
LiveChatWidget.SDK); widget.js carries the rest of it, the chat options (require login,
topics, proactive invitation, leave a message) and the context checks.

Each file is a separate HTTP response, so each is gzipped on its own and the sizes add up.
Prints one line per file and per figure and, last, one JSON object:
{"loader_gz", "first_message_gz", "loader_raw", "first_message_raw"}.
Usage: python bench/widget_weight.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from connector.crm.design import WidgetDesign

__all__ = ["FIRST_MESSAGE_BUDGET_GZ_BYTES", "LOADER_BUDGET_GZ_BYTES", "measure", "main"]

WIDGET_DIR = Path(__file__).resolve().parent.parent / "webresources" / "widget"
LOADER_BUDGET_GZ_BYTES = 3_000
FIRST_MESSAGE_BUDGET_GZ_BYTES = 30_000
# Files the loader fetches after the config says the widget is enabled.
WIDGET_FILES = ("widget.js", "widget.css")
EXAMPLE_WIDGET_ID = "00000000-0000-0000-0000-000000000001"
# A typical widget offers one topic (docs/protocol.md, "Chat options, identity and context").
EXAMPLE_TOPICS = [
    {"id": "00000000-0000-0000-0000-000000000002", "name": "Sales", "color": "#0f6cbd"}
]


def _gz_size(data: bytes) -> int:
    # mtime=0 keeps the figure reproducible; level 9 matches `gzip -9`.
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _config_body() -> bytes:
    """The config response for a widget with the default design and one topic."""
    config = {
        "widget_id": EXAMPLE_WIDGET_ID,
        "enabled": True,
        "available": True,
        "design": WidgetDesign().model_dump(mode="json"),
        "topics": EXAMPLE_TOPICS,
        "socket_url": "wss://chat.example/ws/visitor",
    }
    return json.dumps(config, separators=(",", ":")).encode()


def measure(widget_dir: Path = WIDGET_DIR) -> dict[str, int]:
    """Raw and gzipped sizes in bytes: {"loader_gz", "first_message_gz", "loader_raw", ...}."""
    parts: dict[str, bytes] = {"loader.js": (widget_dir / "loader.js").read_bytes()}
    parts["config (default design)"] = _config_body()
    for name in WIDGET_FILES:
        path = widget_dir / name
        if path.exists():
            parts[name] = path.read_bytes()
    for name, data in parts.items():
        print(f"{name:<26} {len(data):>7,} B raw {_gz_size(data):>7,} B gzip -9")
    loader = parts["loader.js"]
    return {
        "loader_gz": _gz_size(loader),
        "first_message_gz": sum(_gz_size(data) for data in parts.values()),
        "loader_raw": len(loader),
        "first_message_raw": sum(len(data) for data in parts.values()),
    }


def main() -> None:
    """Print the sizes, each figure against its budget, then the JSON line."""
    sizes = measure()
    for figure, budget in (
        ("loader", LOADER_BUDGET_GZ_BYTES),
        ("first_message", FIRST_MESSAGE_BUDGET_GZ_BYTES),
    ):
        gz = sizes[f"{figure}_gz"]
        verdict = "within" if gz <= budget else "OVER"
        print(
            f"{figure:<26} {sizes[f'{figure}_raw']:>7,} B raw {gz:>7,} B gzip -9"
            f"  ({verdict} budget {budget:,} B)"
        )
    print(json.dumps(sizes))


if __name__ == "__main__":
    main()
