"""The visitor widget stays within its byte budgets and never turns strings into HTML."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDGET_DIR = ROOT / "webresources" / "widget"
LOADER_BUDGET_GZ_BYTES = 3_000
FIRST_MESSAGE_BUDGET_GZ_BYTES = 30_000
# Every way a script can turn a string into markup or code.
HTML_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\b"
    r"|createContextualFragment|srcdoc"
)


def _bench() -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "widget_weight.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    last = result.stdout.strip().splitlines()[-1]
    sizes: dict[str, int] = json.loads(last)
    return sizes


def test_every_page_pays_at_most_3_kb_and_the_first_message_at_most_30_kb() -> None:
    sizes = _bench()
    assert set(sizes) == {"loader_gz", "first_message_gz", "loader_raw", "first_message_raw"}
    assert 0 < sizes["loader_gz"] <= LOADER_BUDGET_GZ_BYTES
    assert sizes["loader_gz"] < sizes["first_message_gz"] <= FIRST_MESSAGE_BUDGET_GZ_BYTES
    # The bench measured the files on disk, not something else.
    assert sizes["loader_raw"] == (WIDGET_DIR / "loader.js").stat().st_size
    assert (
        sizes["first_message_raw"] > sizes["loader_raw"] + (WIDGET_DIR / "widget.js").stat().st_size
    )


def test_widget_scripts_never_turn_text_into_html() -> None:
    scripts = sorted(WIDGET_DIR.glob("*.js"))
    assert {p.name for p in scripts} >= {"loader.js", "widget.js"}
    for script in scripts:
        found = HTML_SINKS.findall(script.read_text(encoding="utf-8"))
        assert found == [], f"{script.name} uses {found}"
