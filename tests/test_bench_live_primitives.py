"""bench/live_primitives.py runs end to end (its figures are printed by `make bench`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_primitives_bench_measures_every_figure(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # its spawned workers import it by name
    bench = importlib.import_module("live_primitives")
    figures = bench.measure(redis_url, 200, tmp_path)
    assert set(figures) == {
        "append (redis, 1 process)",
        "append (redis, 2 processes)",
        "append (sqlite, 1 process)",
        "claim_accept (redis)",
        "lease acquire+release (redis)",
        "bus publish->deliver (2 processes)",
    }
    assert all(0 < f["p50_us"] <= f["p99_us"] for f in figures.values())
