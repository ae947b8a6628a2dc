"""The widget designer's API: read and save a widget's design, name, switch and topics.

GET /api/admin/widgets           admins: [{"id","name","enabled"}], by name
GET /api/admin/widgets/<id>      admins: {"id","name","enabled","design" (every option, with
                                 defaults),"design_error"|null,"topic_ids","all_topics"
                                 [{"id","name","color"}],"script"}
PUT /api/admin/widgets/<id>      admins: {"name"?, "enabled"?, "design"?, "topic_ids"?} ->
                                 the same answer as GET, as saved
GET /api/admin/topics/<id>/related   admins: {"agents":[{"id","name"}],"widgets":[{"id","name"}]}
GET /api/admin/agents/<id>/related   admins: {"topics":[{"id","name"}],"widgets":[{"id","name"}]}
                                     (widgets that share a topic with the agent)

The design is validated with `WidgetDesign` (a bad one is a 400 whose `fields` name the
options, e.g. `design.colors.primary`) and stored as JSON in `crmchat_widget.crmchat_design`,
every option written out. Topics are the N:N `crmchat_widget_topic`, changed by associating
and disassociating only what differs. After a save the Directory is invalidated, so the
next `GET /api/widgets/<id>/config` publishes the new design: every page that carries the
widget's script picks it up on its next load (the config is cached at most 30 s).

Errors::

    InvalidInput (400)   a bad design, name, or an unknown topic id
    NotFound (404)       no such widget
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.crm import tables
from connector.crm.design import DesignError, WidgetDesign, parse_design
from connector.crm.directory import record_color
from connector.dataverse.errors import NotFound as DataverseNotFound
from connector.dataverse.odata import eq, guid
from connector.web.addresses import service_base_url
from connector.web.auth import ADMIN_ROLES, require_roles
from connector.web.errors import InvalidInput, NotFound, json_body

__all__ = ["bp", "embed_script"]

log = logging.getLogger(__name__)
bp = Blueprint("designer_api", __name__, url_prefix="/api/admin")

# crmchat_widget.crmchat_name's length in customizations.xml.
MAX_NAME_CHARS = 100
# More topics than any organisation has; keeps one request from asking thousands of links.
MAX_TOPICS = 200
_WIDGET_COLUMNS = ["crmchat_widgetid", "crmchat_name", "crmchat_enabled", "crmchat_design"]
_ACTIVE = eq("statecode", 0)


class WidgetIn(BaseModel):
    """A save: only the parts given change."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)
    enabled: bool | None = None
    design: dict[str, Any] | None = None
    topic_ids: list[str] | None = Field(default=None, max_length=MAX_TOPICS)


def _client() -> Any:
    return current_app.extensions["crmchat.dataverse"]


def _widget_id(widget_id: str) -> str:
    try:
        return guid(widget_id)
    except ValueError:
        raise NotFound("There is no such widget.") from None


def embed_script(base_url: str, widget_id: str) -> str:
    """The tag a site pastes before `</body>` to carry the widget."""
    return (
        f'<script src="{base_url.rstrip("/")}/widget/loader.js" '
        f'data-widget-id="{guid(widget_id)}" async></script>'
    )


def _topics() -> list[dict[str, str]]:
    rows = _client().list(
        tables.TOPICS, select=["crmchat_topicid", "crmchat_name", "crmchat_color"], filter=_ACTIVE
    )
    topics = [
        {
            "id": str(row["crmchat_topicid"]).lower(),
            "name": str(row.get("crmchat_name") or ""),
            "color": record_color(tables.TOPICS, str(row["crmchat_topicid"]).lower(), row),
        }
        for row in rows
    ]
    return sorted(topics, key=lambda t: (t["name"].casefold(), t["id"]))


def _read_widget(widget_id: str) -> dict[str, Any]:
    try:
        row: dict[str, Any] = _client().retrieve(
            tables.WIDGETS,
            widget_id,
            select=_WIDGET_COLUMNS,
            expand=f"{tables.WIDGET_TOPICS}($select=crmchat_topicid)",
        )
    except DataverseNotFound as error:
        raise NotFound("There is no such widget.") from error
    return row


def _linked_topic_ids(widget_id: str, row: dict[str, Any]) -> set[str]:
    inline = row.get(tables.WIDGET_TOPICS)
    if not isinstance(inline, list) or f"{tables.WIDGET_TOPICS}@odata.nextLink" in row:
        inline = list(
            _client().list_related(
                tables.WIDGETS, widget_id, tables.WIDGET_TOPICS, select=["crmchat_topicid"]
            )
        )
    return {str(r.get("crmchat_topicid") or "").lower() for r in inline} - {""}


def _answer(widget_id: str) -> dict[str, Any]:
    row = _read_widget(widget_id)
    design_error: str | None = None
    raw = row.get("crmchat_design")
    try:
        design = parse_design(raw if isinstance(raw, str) else None)
    except DesignError as error:
        # The designer shows the defaults and says why; saving replaces the broken JSON.
        design, design_error = WidgetDesign(), str(error)
    all_topics = _topics()
    active = {t["id"] for t in all_topics}
    return {
        "id": widget_id,
        "name": str(row.get("crmchat_name") or ""),
        # The column's default is Yes: unset means nobody switched the widget off.
        "enabled": row.get("crmchat_enabled") is not False,
        "design": design.model_dump(mode="json"),
        "design_error": design_error,
        "topic_ids": sorted(_linked_topic_ids(widget_id, row) & active),
        "all_topics": all_topics,
        "script": embed_script(service_base_url(), widget_id),
    }


def _validated_design(data: dict[str, Any]) -> WidgetDesign:
    try:
        return WidgetDesign.model_validate(data)
    except ValidationError as error:
        fields = [
            {
                "field": ".".join(["design", *(str(p) for p in item["loc"])]),
                "message": item["msg"],
            }
            for item in error.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        raise InvalidInput(summary, fields=fields) from None


def _validated_topics(topic_ids: list[str]) -> set[str]:
    known = {t["id"] for t in _topics()}
    wanted: set[str] = set()
    for index, value in enumerate(topic_ids):
        try:
            topic_id = guid(value)
        except ValueError:
            topic_id = ""
        if topic_id not in known:
            raise InvalidInput(
                f"topic_ids.{index}: no such active topic",
                fields=[{"field": f"topic_ids.{index}", "message": "no such active topic"}],
            )
        wanted.add(topic_id)
    return wanted


def _invalidate_directory() -> None:
    directory = current_app.extensions.get("crmchat.directory")
    invalidate = getattr(directory, "invalidate", None)
    if callable(invalidate):
        invalidate()


@bp.get("/widgets")
@require_roles(ADMIN_ROLES)
def list_widgets() -> list[dict[str, Any]]:
    rows = _client().list(
        tables.WIDGETS, select=["crmchat_widgetid", "crmchat_name", "crmchat_enabled"]
    )
    widgets = [
        {
            "id": str(row["crmchat_widgetid"]).lower(),
            "name": str(row.get("crmchat_name") or ""),
            "enabled": row.get("crmchat_enabled") is not False,
        }
        for row in rows
    ]
    return sorted(widgets, key=lambda w: (w["name"].casefold(), w["id"]))


@bp.get("/widgets/<widget_id>")
@require_roles(ADMIN_ROLES)
def get_widget(widget_id: str) -> dict[str, Any]:
    return _answer(_widget_id(widget_id))


@bp.put("/widgets/<widget_id>")
@require_roles(ADMIN_ROLES)
def put_widget(widget_id: str) -> dict[str, Any]:
    key = _widget_id(widget_id)
    body = WidgetIn.model_validate(json_body())
    row = _read_widget(key)  # 404 before anything is written
    changes: dict[str, Any] = {}
    if body.name is not None:
        changes["crmchat_name"] = body.name.strip() or body.name
    if body.enabled is not None:
        changes["crmchat_enabled"] = body.enabled
    if body.design is not None:
        design = _validated_design(body.design)
        changes["crmchat_design"] = json.dumps(design.model_dump(mode="json"), ensure_ascii=False)
    wanted = _validated_topics(body.topic_ids) if body.topic_ids is not None else None

    client = _client()
    if changes:
        client.update(tables.WIDGETS, key, changes)
    if wanted is not None:
        linked = _linked_topic_ids(key, row)
        for topic_id in sorted(wanted - linked):
            client.associate(tables.WIDGETS, key, tables.WIDGET_TOPICS, tables.TOPICS, topic_id)
        for topic_id in sorted(linked - wanted):
            client.disassociate(tables.WIDGETS, key, tables.WIDGET_TOPICS, topic_id)
    _invalidate_directory()
    log.info("widget %s saved (%s)", key, ", ".join(sorted(body.model_fields_set)) or "nothing")
    return _answer(key)


def _names(rows: Any, id_column: str) -> list[dict[str, str]]:
    items = [
        {"id": str(r[id_column]).lower(), "name": str(r.get("crmchat_name") or "")}
        for r in rows
        if r.get("statecode", 0) == 0
    ]
    return sorted(items, key=lambda i: (i["name"].casefold(), i["id"]))


def _related(entity_set: str, record_id: str, navigation: str, id_column: str) -> list[Any]:
    try:
        return list(
            _client().list_related(
                entity_set, record_id, navigation, select=[id_column, "crmchat_name", "statecode"]
            )
        )
    except DataverseNotFound as error:
        raise NotFound("There is no such record.") from error


@bp.get("/topics/<topic_id>/related")
@require_roles(ADMIN_ROLES)
def topic_related(topic_id: str) -> dict[str, Any]:
    try:
        key = guid(topic_id)
    except ValueError:
        raise NotFound("There is no such topic.") from None
    agents = _related(tables.TOPICS, key, tables.AGENT_TOPICS, "crmchat_agentid")
    widgets = _related(tables.TOPICS, key, tables.WIDGET_TOPICS, "crmchat_widgetid")
    return {
        "agents": _names(agents, "crmchat_agentid"),
        "widgets": _names(widgets, "crmchat_widgetid"),
    }


@bp.get("/agents/<agent_id>/related")
@require_roles(ADMIN_ROLES)
def agent_related(agent_id: str) -> dict[str, Any]:
    try:
        key = guid(agent_id)
    except ValueError:
        raise NotFound("There is no such agent.") from None
    topics = _related(tables.AGENTS, key, tables.AGENT_TOPICS, "crmchat_topicid")
    widgets: dict[str, dict[str, str]] = {}
    for topic in topics:
        if topic.get("statecode", 0) != 0:
            continue
        rows = _related(
            tables.TOPICS, str(topic["crmchat_topicid"]), tables.WIDGET_TOPICS, "crmchat_widgetid"
        )
        for item in _names(rows, "crmchat_widgetid"):
            widgets[item["id"]] = item
    return {
        "topics": _names(topics, "crmchat_topicid"),
        "widgets": sorted(widgets.values(), key=lambda i: (i["name"].casefold(), i["id"])),
    }
