"""A local stand-in for the model-driven app, and a demo website (embedded Dataverse only).

`init_app(app, dataverse_app)` registers this blueprint only on the embedded default: it
lets anyone who can reach the service sign in as any system user, which is only sane for
a local Dataverse on one's own machine. Listing the users and signing in are further
refused to requests that do not come from this machine (loopback addresses).

Routes::

    GET  /app/                 sign-in page: pick one of the system users
    GET  /app/main             the shell: the solution's sitemap as navigation, table
                               lists, web resources in an iframe, and `window.Xrm`
    GET  /app/static/<file>    the shell's scripts and styles (webresources/standin/)
    GET  /app/api/users        [{"id","name","email","roles":[{"id","name"}]}]
    POST /app/api/session      {"user_id"} -> {"token","expires_in","user":{...}}
    DELETE /app/api/session    sign out: forget the session cookie
    GET  /WebResources/ClientGlobalContext.js.aspx   GetGlobalContext() for the session
                               cookie's user (`standin_context`); 401 without one
    GET  /demo/                demo website with the Sales widget
    GET  /demo/pricing         its second page (the chat carries on across pages)
    GET  /demo/support         a page with the Support widget
    GET  /demo/omnichannel     a page written as for Omnichannel (context provider, lcw:ready)
    GET  /demo/proactive       a proactive invitation after a few seconds
    GET  /demo/message         the ticket fallback ("leave a message")

The shell page carries the app as JSON (`app_description`): areas, groups and subareas
from `AppModuleSiteMaps` in customizations.xml, and every table's entity set and keys (so
`Xrm.WebApi` can map logical names to entity sets), its main form and its public view's
list (`standin_forms`), and its command-bar buttons.
"""

from __future__ import annotations

import ipaddress
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from uuid import UUID

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory
from pydantic import BaseModel, ConfigDict

from connector.crm.connection import SERVICE_USER_ID
from connector.dataverse_local import issue_token
from connector.dataverse_local.environment_variables import set_value_when_missing
from connector.dataverse_local.users import SYSTEM_ADMINISTRATOR_ROLE_ID, user_roles
from connector.demo import (
    MESSAGE_WIDGET_ID,
    PROACTIVE_WIDGET_ID,
    SALES_WIDGET_ID,
    SUPPORT_WIDGET_ID,
    seed_demo,
)
from connector.services import services_of
from connector.solution.environment_variables import SERVICE_URL_VARIABLE
from connector.solution.layouts import QueryType
from connector.solution.model import ColumnType, Role, Schema, Table
from connector.solution.paths import (
    CUSTOMIZATIONS_XML,
    DYNAMICS365_SOLUTION_DIR,
    WEBRESOURCES_DIR,
)
from connector.solution.privileges import PRIVILEGE_ACTIONS, privilege_name
from connector.solution.ribbon import read_commands
from connector.web.addresses import is_loopback_host, service_base_url
from connector.web.errors import Forbidden, NotFound, NotSignedIn, json_body
from connector.web.standin_context import (
    CLIENT_GLOBAL_CONTEXT_PATH,
    SESSION_COOKIE,
    WEBRESOURCES_PATH,
    client_global_context_script,
    set_session_cookie,
    signed_in_user_id,
)
from connector.web.standin_forms import describe_form, describe_view, wire_name

__all__ = [
    "STANDIN_DIR",
    "app_description",
    "bp",
    "init_app",
    "read_sitemap",
]

bp = Blueprint("standin", __name__)

STANDIN_DIR = WEBRESOURCES_DIR / "standin"
# A working day, like the service's own tokens: one sign-in per session of play.
SESSION_TOKEN_LIFETIME_SECS = 8 * 60 * 60
LIST_COLUMNS_MAX = 4
# Longer text (transcripts, pictures) does not belong in a list; a snippet's text does.
LIST_MEMO_MAX_CHARS = 20000
LANGUAGE = "1033"

_APP_MARKER = "{{crmchat-app}}"
_WIDGET_MARKER = "<!-- crmchat:widget -->"
# Columns a list never shows: the server sets them or a list has no room for them.
_LIST_SKIPPED_TYPES = {
    ColumnType.UNIQUEIDENTIFIER,
    ColumnType.STATE,
    ColumnType.STATUS,
    ColumnType.OWNER,
}
_LIST_SKIPPED_NAMES = {
    "scheduledstart",
    "scheduledend",
    "scheduleddurationminutes",
    "prioritycode",
    "actualend",
    "actualdurationminutes",
}


def init_app(app: Flask, dataverse_app: Any, *, demo: bool) -> None:
    """Register the stand-in on `app`, backed by the embedded Dataverse `dataverse_app`.

    With `demo` (the `CRMCHAT_DEMO` setting) the demo records are created first. The
    service address (`crmchat_ServiceUrl`) gets this service's address as its value unless
    an admin has set one.
    """
    if demo:
        seed_demo(dataverse_app)
    # As the admin types at import: the service address is this service. The web
    # resources read it back through the Web API, as they do in a tenant.
    set_value_when_missing(
        dataverse_app.store, SERVICE_URL_VARIABLE, services_of(app).settings.base_url
    )
    services_of(app).standin = dataverse_app
    app.register_blueprint(bp)


# ----- the sitemap ----------------------------------------------------------------------


def _title(element: ET.Element) -> str:
    for title in element.iterfind("Titles/Title"):
        if title.get("LCID") == LANGUAGE and title.get("Title"):
            return str(title.get("Title"))
    return ""


def _collection_names(root: ET.Element) -> dict[str, str]:
    names: dict[str, str] = {}
    for entity in root.iterfind("Entities/Entity"):
        logical = (entity.findtext("Name") or "").strip().lower()
        for name in entity.iterfind(".//LocalizedCollectionNames/LocalizedCollectionName"):
            if name.get("languagecode") == LANGUAGE and logical:
                names[logical] = str(name.get("description") or "")
    return names


def _webresource_url(url: str) -> str:
    """`$webresource:crmchat_/settings/index.html` -> `/WebResources/crmchat_/settings/index.html`,
    the address an organization serves it at (`connector.web.pages`)."""
    if not url.startswith("$webresource:"):
        return url
    return WEBRESOURCES_PATH + url.removeprefix("$webresource:")


def read_sitemap(
    schema: Schema, customizations_xml: Path = CUSTOMIZATIONS_XML
) -> list[dict[str, Any]]:
    """The app's navigation: areas -> groups -> subareas, as the shell draws it.

    A subarea is `{"id","title","entity"|"url","icon","readPrivilege"?,
    "privilege":{"entity","action","name"}|None}`, privilege names spelled as Dataverse
    spells them; entity subareas whose table the schema lacks are left out.
    """
    root = ET.parse(customizations_xml).getroot()
    collections = _collection_names(root)
    areas: list[dict[str, Any]] = []
    for sitemap in root.iterfind("AppModuleSiteMaps/AppModuleSiteMap/SiteMap"):
        for area in sitemap.iterfind("Area"):
            groups = []
            for group in area.iterfind("Group"):
                subareas = []
                for sub in group.iterfind("SubArea"):
                    entity = (sub.get("Entity") or "").lower()
                    table = schema.tables.get(entity) if entity else None
                    title = _title(sub)
                    if table is not None:
                        title = title or collections.get(entity) or table.display_name or entity
                    item: dict[str, Any] = {"id": sub.get("Id") or "", "title": title}
                    if table is not None:
                        item["entity"] = entity
                        item["readPrivilege"] = privilege_name("Read", table)
                    elif sub.get("Url"):
                        item["url"] = _webresource_url(str(sub.get("Url")))
                        item["title"] = title or item["id"]
                    else:
                        continue
                    icon = sub.get("Icon")
                    item["icon"] = _webresource_url(icon) if icon else None
                    item["privilege"] = _subarea_privilege(schema, sub.find("Privilege"))
                    subareas.append(item)
                groups.append(
                    {"id": group.get("Id") or "", "title": _title(group), "subareas": subareas}
                )
            areas.append({"id": area.get("Id") or "", "title": _title(area), "groups": groups})
    return areas


def _subarea_privilege(schema: Schema, privilege: ET.Element | None) -> dict[str, str] | None:
    """A subarea's `<Privilege Entity Privilege>` with the privilege's real name."""
    if privilege is None:
        return None
    entity = (privilege.get("Entity") or "").lower()
    action = privilege.get("Privilege") or "Read"
    table = schema.tables.get(entity)
    # A privilege on a table this organization lacks is one nobody holds.
    name = (
        privilege_name(action, table) if table is not None and action in PRIVILEGE_ACTIONS else ""
    )
    return {"entity": entity, "action": action, "name": name}


def _list_columns(table: Table) -> list[dict[str, str]]:
    """The primary name, a few of the table's own columns, the owner and the last change."""
    candidates = [
        column
        for column in table.columns.values()
        if column.valid_for_create
        and column.type not in _LIST_SKIPPED_TYPES
        and column.logical_name not in (table.primary_id, table.primary_name)
        and column.logical_name not in _LIST_SKIPPED_NAMES
        and "secret" not in column.logical_name
        and (column.type != ColumnType.MEMO or (column.max_length or 0) <= LIST_MEMO_MAX_CHARS)
    ]
    if table.is_activity:
        # What an activity is about and when it happened matter more than the rest.
        first = ("regardingobjectid", "actualstart")
        candidates.sort(key=lambda c: first.index(c.logical_name) if c.logical_name in first else 2)
    names = [table.primary_name] if table.primary_name in table.columns else []
    names += [c.logical_name for c in candidates[:LIST_COLUMNS_MAX]]
    names += [n for n in ("ownerid", "modifiedon") if n in table.columns]
    return [
        {
            "name": name,
            "wire": wire_name(table, name),
            "label": table.columns[name].display_name or name,
        }
        for name in names
    ]


def app_description(schema: Schema) -> dict[str, Any]:
    """What the shell page needs: the navigation, every table's names and list, and the
    command-bar buttons of its form (from the solution's RibbonDiffXml)."""
    areas = read_sitemap(schema)
    # The Dynamics 365 layer's ribbons too (the case form's): they show only where its
    # tables are, which is where that layer is imported (connector.solution.reader).
    commands = read_commands(ET.parse(CUSTOMIZATIONS_XML).getroot())
    for layer_table, buttons in read_commands(
        ET.parse(DYNAMICS365_SOLUTION_DIR / "customizations.xml").getroot()
    ).items():
        commands[layer_table] = commands.get(layer_table, []) + buttons
    listed = {
        sub["entity"]
        for area in areas
        for group in area["groups"]
        for sub in group["subareas"]
        if "entity" in sub
    }
    entities: dict[str, Any] = {}
    for name, table in schema.tables.items():
        entity: dict[str, Any] = {
            "set": table.entity_set,
            "id": table.primary_id,
            "name": table.primary_name,
            "displayName": table.display_name or name,
        }
        public_view = schema.view_of(name, QueryType.PUBLIC)
        if public_view is not None:
            # The list a tenant shows: the public view's columns, filter and order.
            view = describe_view(schema, public_view)
            entity["columns"] = view["columns"]
            entity["list"] = {"filter": view["filter"], "orderby": view["orderby"]}
        elif name in listed:
            entity["columns"] = _list_columns(table)
        main_form = schema.main_form(name)
        if main_form is not None:
            entity["form"] = describe_form(schema, main_form)
        if name in commands:
            entity["commands"] = [
                {
                    "id": command.id,
                    "label": command.label,
                    "function": command.function,
                    "library": _webresource_url("$webresource:" + command.library),
                    # Loaded in this order before the function runs (the isNaN idiom).
                    "libraries": [
                        _webresource_url("$webresource:" + name) for name in command.libraries
                    ],
                    "hiddenOnCreate": command.hidden_on_create,
                }
                for command in commands[name]
            ]
        if table.has_activities:
            # Its form carries a timeline: the activities regarding the record.
            entity["timeline"] = True
        entities[name] = entity
    return {"name": "CRM Chat", "areas": areas, "entities": entities}


# ----- users and sessions ---------------------------------------------------------------


def _dataverse() -> Any:
    return services_of(current_app).standin


def _users() -> list[dict[str, Any]]:
    """Enabled people (not the service's application user), with their role names."""
    store = _dataverse().store
    rows = store.query(
        'SELECT "systemuserid", "fullname", "domainname", "isdisabled" FROM "systemuser" '
        'ORDER BY "fullname"'
    )
    users = []
    for row in rows:
        if row["isdisabled"] or str(row["systemuserid"]) == SERVICE_USER_ID:
            continue
        roles = user_roles(store, str(row["systemuserid"]))
        users.append(
            {
                "id": str(row["systemuserid"]),
                "name": str(row["fullname"] or row["domainname"]),
                "email": str(row["domainname"] or ""),
                "roles": [{"id": role.id, "name": role.name} for role in roles],
                "privileges": _privileges(roles),
            }
        )
    return users


def _privileges(roles: list[Role]) -> list[str]:
    """The privilege names the roles grant; `["*"]` for a System Administrator."""
    if any(role.id == SYSTEM_ADMINISTRATOR_ROLE_ID for role in roles):
        return ["*"]
    return sorted({name for role in roles for name in role.privileges})


def _is_local(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: UUID


def _require_local() -> None:
    if not _is_local(request.remote_addr):
        raise Forbidden("The local app stand-in signs in only from this machine.")


@bp.before_request
def _require_loopback_host() -> None:
    # DNS rebinding: a foreign site's name pointed at 127.0.0.1 reaches this machine with
    # its own Host. Only a loopback name or address is this machine's stand-in.
    if not is_loopback_host(request.host):
        raise Forbidden("The local app stand-in answers only on localhost.", code="bad_host")


def _require_same_site() -> None:
    # A form or `fetch(..., {mode: "no-cors"})` from another site may POST text/plain
    # without a preflight; a JSON body and a same-origin Origin cannot be sent that way.
    origin = request.headers.get("Origin")
    if request.mimetype != "application/json" or (
        origin is not None and origin != request.host_url.rstrip("/")
    ):
        raise Forbidden("Sign in from the stand-in's own page.", code="cross_site")


@bp.get("/app/api/users")
def users() -> Response:
    _require_local()
    return jsonify([{k: v for k, v in u.items() if k != "privileges"} for u in _users()])


@bp.post("/app/api/session")
def session() -> Response:
    _require_local()
    _require_same_site()
    wanted = str(SessionIn.model_validate(json_body()).user_id)
    user = next((u for u in _users() if u["id"] == wanted), None)
    if user is None:
        raise NotFound("No such user.")
    token = issue_token(
        _dataverse().store.signing_secret,
        user_id=user["id"],
        lifetime_secs=SESSION_TOKEN_LIFETIME_SECS,
    )
    response = jsonify({"token": token, "expires_in": SESSION_TOKEN_LIFETIME_SECS, "user": user})
    # Pages opened outside the shell (no parent Xrm) sign in as a tenant's do: by cookie.
    set_session_cookie(response, token, lifetime_secs=SESSION_TOKEN_LIFETIME_SECS)
    return response


@bp.delete("/app/api/session")
def sign_out() -> Response:
    _require_same_site()
    response = Response(status=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@bp.get(CLIENT_GLOBAL_CONTEXT_PATH)
def client_global_context() -> Response:
    store = _dataverse().store
    user_id = signed_in_user_id(store.signing_secret)
    user = next((u for u in _users() if u["id"] == user_id), None)
    if user is None:
        raise NotSignedIn("The signed-in user is no longer an enabled user: sign in again.")
    return client_global_context_script(user, store.organization_id)


# ----- pages ----------------------------------------------------------------------------


def _page(html: str) -> Response:
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _read(name: str) -> str:
    return (STANDIN_DIR / name).read_text(encoding="utf-8")


@bp.get("/app")
@bp.get("/app/")
def signin_page() -> Response:
    return _page(_read("signin.html"))


@bp.get("/app/main")
def shell_page() -> Response:
    # "<" is escaped so no text in the description can close the script element.
    data = json.dumps(app_description(_dataverse().store.schema)).replace("<", "\\u003c")
    return _page(_read("shell.html").replace(_APP_MARKER, data))


@bp.get("/app/static/<path:name>")
def static_file(name: str) -> Response:
    response = send_from_directory(STANDIN_DIR, name, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _demo_page(name: str, widget_id: str) -> Response:
    base = service_base_url()
    tag = f'<script src="{base}/widget/loader.js" data-widget-id="{widget_id}" async></script>'
    html = _read(f"demo/{name}.html").replace(_WIDGET_MARKER, tag)
    # A page written as for Omnichannel carries its own script tag with these placeholders.
    html = html.replace("{{crmchat-service}}", base).replace("{{crmchat-widget-id}}", widget_id)
    return _page(html)


@bp.get("/demo")
@bp.get("/demo/")
def demo_home() -> Response:
    return _demo_page("index", SALES_WIDGET_ID)


@bp.get("/demo/pricing")
def demo_pricing() -> Response:
    return _demo_page("pricing", SALES_WIDGET_ID)


@bp.get("/demo/support")
def demo_support() -> Response:
    return _demo_page("support", SUPPORT_WIDGET_ID)


@bp.get("/demo/omnichannel")
def demo_omnichannel() -> Response:
    return _demo_page("omnichannel", SALES_WIDGET_ID)


@bp.get("/demo/proactive")
def demo_proactive() -> Response:
    return _demo_page("proactive", PROACTIVE_WIDGET_ID)


@bp.get("/demo/message")
def demo_message() -> Response:
    return _demo_page("message", MESSAGE_WIDGET_ID)


@bp.get("/demo/static/<path:name>")
def demo_static(name: str) -> Response:
    response = send_from_directory(STANDIN_DIR / "demo", name, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
