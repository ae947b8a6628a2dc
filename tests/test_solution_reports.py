"""The solution's reports: system charts, the CRM Chat dashboard and the secrets profile,
and what `crmchat solution check` catches in them."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from connector.solution.check import check_solution
from connector.solution.paths import SOLUTION_DIR, WEBRESOURCES_DIR
from connector.solution.reader import load_schema

CHAT_NAMES = {
    "Chats per day",
    "Chats by topic",
    "Chats by agent",
    "Wait before answer by topic (s)",
    "Wait before answer by agent (s)",
    "Duration by topic (s)",
    "Duration by agent (s)",
    "Rating by topic",
    "Rating by agent",
}


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, Path]:
    solution_dir, webresources_dir = tmp_path / "solution", tmp_path / "webresources"
    shutil.copytree(SOLUTION_DIR, solution_dir)
    shutil.copytree(WEBRESOURCES_DIR, webresources_dir)
    return solution_dir, webresources_dir


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _check(source: tuple[Path, Path]) -> list[str]:
    return check_solution(solution_dir=source[0], webresources_dir=source[1])


def test_the_chat_table_ships_the_report_charts_and_the_dashboard_shows_them() -> None:
    root = ET.parse(SOLUTION_DIR / "customizations.xml").getroot()
    chat = next(e for e in root.iterfind("Entities/Entity") if e.findtext("Name") == "crmchat_Chat")
    charts = {
        v.find("LocalizedNames/LocalizedName").get("description"): v  # type: ignore[union-attr]
        for v in chat.iterfind("Visualizations/visualization")
    }
    assert set(charts) == CHAT_NAMES
    columns = load_schema().tables["crmchat_chat"].columns
    for chart in charts.values():
        for attribute in chart.iterfind(".//fetch/entity/attribute"):
            assert attribute.get("name") in columns
    per_day = charts["Chats per day"].find(".//attribute[@groupby='true']")
    assert per_day is not None and per_day.get("dategrouping") == "day"
    ids = {v.findtext("savedqueryvisualizationid") for v in charts.values()}
    dashboard = root.find("Dashboards/Dashboard")
    assert dashboard is not None
    shown = {c.findtext("parameters/VisualizationId") for c in dashboard.iter("control")}
    assert shown == ids  # every chart on the dashboard, nothing else


def test_check_passes_the_shipped_solution() -> None:
    assert check_solution() == []


def test_check_catches_a_chart_over_a_missing_column(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        'name="crmchat_waitseconds" aggregate="avg"',
        'name="crmchat_waitsecs" aggregate="avg"',
    )
    problems = _check(source)
    assert any("crmchat_waitsecs is not a column" in p for p in problems), problems


def test_check_catches_a_datetime_grouped_without_dategrouping(source: tuple[Path, Path]) -> None:
    _edit(source[0] / "customizations.xml", ' dategrouping="day"', "")
    problems = _check(source)
    assert any("needs a dategrouping" in p for p in problems), problems


def test_check_catches_a_measure_that_is_not_aggregated(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        '<measure alias="aggregate_column" />',
        '<measure alias="x" />',
    )
    problems = _check(source)
    assert any("measure x is not an aggregate" in p for p in problems), problems


def test_check_catches_a_broken_data_description(source: tuple[Path, Path]) -> None:
    _edit(source[0] / "customizations.xml", "<categorycollection>", "<categories>")
    _edit(source[0] / "customizations.xml", "</categorycollection>", "</categories>")
    problems = _check(source)
    assert any("VisualizationDataDescription.xsd" in p for p in problems), problems


def test_check_catches_a_dashboard_chart_that_does_not_exist(source: tuple[Path, Path]) -> None:
    text = (source[0] / "customizations.xml").read_text(encoding="utf-8")
    start = text.index("<VisualizationId>") + len("<VisualizationId>")
    chart = text[start : text.index("</VisualizationId>", start)]
    _edit(
        source[0] / "customizations.xml",
        f"<VisualizationId>{chart}",
        "<VisualizationId>{00000000-0000-0000-0000-000000000001}",
    )
    problems = _check(source)
    assert any("is not a chart of crmchat_chat" in p for p in problems), problems


def test_check_catches_an_unlisted_dashboard_and_profile(source: tuple[Path, Path]) -> None:
    manifest = source[0] / "solution.xml"
    text = manifest.read_text(encoding="utf-8")
    kept = [
        line for line in text.splitlines() if 'type="60"' not in line and 'type="70"' not in line
    ]
    manifest.write_text("\n".join(kept), encoding="utf-8")
    problems = _check(source)
    assert any("no RootComponent type 60" in p for p in problems), problems
    assert any("no RootComponent type 70" in p for p in problems), problems


def test_check_catches_a_profile_on_a_column_that_is_not_secured(source: tuple[Path, Path]) -> None:
    _edit(
        source[0] / "customizations.xml",
        "<AttributeName>crmchat_secret</AttributeName>",
        "<AttributeName>crmchat_name</AttributeName>",
    )
    problems = _check(source)
    assert any(
        "CRM Chat Secrets: crmchat_widget.crmchat_name is not secured" in p for p in problems
    ), problems
