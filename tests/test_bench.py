"""The benchmarks under bench/ stay runnable: each module imports (names it uses exist)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
BENCH_MODULES = sorted(BENCH_DIR.glob("*.py"))


def test_there_are_benchmarks() -> None:
    assert len(BENCH_MODULES) >= 3


@pytest.mark.parametrize("path", BENCH_MODULES, ids=lambda p: p.name)
def test_bench_module_imports_and_names_what_it_calls_exist(path: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
