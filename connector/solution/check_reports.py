"""Check the solution's reporting parts: system charts and dashboards.

`report_problems` returns human-readable problems (empty: fine), as `check.check_solution`
does for the rest. It checks:

- each system chart's `datadescription` against Microsoft's VisualizationDataDescription.xsd
  (the XSD leaves its content open), its FetchXML naming its own table and existing
  columns, an aggregate FetchXML (`aggregate="true"`), a `dategrouping` on every grouped
  datetime, and each `measure` naming an aggregated alias;
- each dashboard chart control (`VisualizationId`) naming a chart of its
  `TargetEntityType` and a view (`ViewId`) of that table, since a chart on a dashboard
  draws the records of a view.

Field security profiles are checked by `reader.load_schema` (a profile on a column that is
not secured fails the import there, as on the platform).

Sources: Microsoft Learn, "Visualization data description schema" and "Sample charts"
(model-driven apps), "Aggregate data using FetchXml" (`dategrouping`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import xmlschema

from connector.solution.model import ColumnType, Schema

__all__ = ["VISUALIZATION_XSD", "dashboard_ids", "report_problems"]

VISUALIZATION_XSD = "VisualizationDataDescription.xsd"
# classid of the grid/chart control that dashboards place (Microsoft's, as exports write it)
_GRID_CONTROL = "{e7a81278-8635-4d9e-8d4d-59480b391c5b}"


def _guid(text: str | None) -> str:
    return (text or "").strip().strip("{}").lower()


def _name(element: ET.Element) -> str:
    """The English LocalizedName of a chart or dashboard, else ''."""
    for name in element.iterfind("LocalizedNames/LocalizedName"):
        if name.get("languagecode") == "1033":
            return name.get("description", "")
    return ""


@lru_cache(maxsize=2)
def _xsd(path: str) -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(path)


def dashboard_ids(customizations: ET.Element) -> set[str]:
    """The FormId of every dashboard (lower case, no braces)."""
    return {_guid(d.findtext("FormId")) for d in customizations.iterfind("Dashboards/Dashboard")}


def _chart_problems(
    entity: ET.Element, table: str, schema: Schema | None, xsd: xmlschema.XMLSchema10 | None
) -> list[str]:
    problems: list[str] = []
    columns = schema.tables[table].columns if schema is not None and table in schema.tables else {}
    for chart in entity.iterfind("Visualizations/visualization"):
        label = f"chart {_name(chart) or _guid(chart.findtext('savedqueryvisualizationid'))}"
        label += f" ({table})"
        definition = chart.find("datadescription/datadefinition")
        if definition is None:
            problems.append(f"{label}: no datadescription/datadefinition")
            continue
        if xsd is not None:
            for error in xsd.iter_errors(ET.tostring(definition, encoding="unicode")):
                problems.append(f"{label}: {VISUALIZATION_XSD}: {error.reason or error.message}")
        aliases: set[str] = set()
        for fetch in definition.iterfind("fetchcollection/fetch"):
            if fetch.get("aggregate") != "true":
                problems.append(f'{label}: the fetch is not aggregate="true"')
            for found in fetch.iterfind("entity"):
                if found.get("name") != table:
                    problems.append(f"{label}: fetch entity {found.get('name')} is not {table}")
                for attribute in found.iterfind("attribute"):
                    column = columns.get(attribute.get("name", ""))
                    if schema is not None and column is None:
                        problems.append(
                            f"{label}: attribute {attribute.get('name')} is not a column"
                        )
                    grouped = attribute.get("groupby") == "true"
                    if grouped and column is not None and column.type == ColumnType.DATETIME:
                        if not attribute.get("dategrouping"):
                            problems.append(
                                f"{label}: grouping by datetime {column.logical_name} "
                                "needs a dategrouping"
                            )
                    if attribute.get("aggregate"):
                        aliases.add(attribute.get("alias", ""))
        for measure in definition.iterfind("categorycollection/category/measurecollection/measure"):
            if measure.get("alias") not in aliases:
                problems.append(f"{label}: measure {measure.get('alias')} is not an aggregate")
        if chart.find("presentationdescription/Chart") is None:
            problems.append(f"{label}: no presentationdescription/Chart")
    return problems


def _dashboard_problems(customizations: ET.Element) -> list[str]:
    charts: dict[str, set[str]] = {}
    views: dict[str, set[str]] = {}
    for entity in customizations.iterfind("Entities/Entity"):
        table = (entity.findtext("Name") or "").strip().lower()
        charts[table] = {
            _guid(v.findtext("savedqueryvisualizationid"))
            for v in entity.iterfind("Visualizations/visualization")
        }
        views[table] = {
            _guid(v.findtext("savedqueryid"))
            for v in entity.iterfind("SavedQueries/savedqueries/savedquery")
        }
    problems: list[str] = []
    for dashboard in customizations.iterfind("Dashboards/Dashboard"):
        label = f"dashboard {_name(dashboard) or _guid(dashboard.findtext('FormId'))}"
        controls = [
            c for c in dashboard.iter("control") if _guid(c.get("classid")) == _guid(_GRID_CONTROL)
        ]
        if not controls:
            problems.append(f"{label}: no chart controls")
        for control in controls:
            target = (control.findtext("parameters/TargetEntityType") or "").strip().lower()
            chart = _guid(control.findtext("parameters/VisualizationId"))
            view = _guid(control.findtext("parameters/ViewId"))
            where = f"{label}: control {control.get('id')}"
            if target not in charts:
                problems.append(f"{where}: TargetEntityType {target} is not a solution table")
                continue
            if chart and chart not in charts[target]:
                problems.append(f"{where}: VisualizationId {chart} is not a chart of {target}")
            if view not in views[target]:
                problems.append(f"{where}: ViewId {view} is not a view of {target}")
    return problems


def report_problems(
    customizations: ET.Element, schema: Schema | None, schemas_dir: Path
) -> list[str]:
    """Problems in the system charts and dashboards (module docstring)."""
    xsd_path = schemas_dir / VISUALIZATION_XSD
    problems: list[str] = []
    xsd: xmlschema.XMLSchema10 | None = None
    if xsd_path.is_file():
        xsd = _xsd(str(xsd_path.resolve()))
    elif schemas_dir.is_dir():  # a missing folder is reported once, by the main XSD check
        problems.append(f"schemas: {xsd_path} not found (the chart XSD check was skipped)")
    for entity in customizations.iterfind("Entities/Entity"):
        table = (entity.findtext("Name") or "").strip().lower()
        problems += _chart_problems(entity, table, schema, xsd)
    problems += _dashboard_problems(customizations)
    return problems
