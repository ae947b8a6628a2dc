"""WhatsApp message templates in CRM (`crmchat_whatsapptemplate`), synced from Meta.

Outside the 24-hour customer service window WhatsApp takes only approved templates
(error 131047 "Re-engagement message" otherwise), so the console offers them then. The
rows are a copy of the WhatsApp Business Management API's list
(GET /<WABA id>/message_templates: name, language, status, category, components), one
per account, name and language (the alternate key); `do_sync_templates` makes the copy
match Meta's list, run by an administrator from the setup page. Read and written with the
service's application user.

An agent can send a template whose only parameters are in its body (`{{1}}` or
`{{first_name}}`): a header with media or a variable, or a button with a variable URL,
needs parameters the console does not ask for, so such a template is not offered.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from pydantic import ValidationError

from connector.dataverse.odata import and_, eq, guid

from .accounts import ACCOUNTS_SET
from .model import ChannelAccount, ChannelType, WhatsAppTemplate
from .send import MetaSendClient

__all__ = [
    "TEMPLATES_SET",
    "TemplateRefused",
    "approved_templates",
    "do_sync_templates",
    "find_template",
    "template_message",
]

log = logging.getLogger(__name__)

TEMPLATES_SET = "crmchat_whatsapptemplates"
# The components column holds this much JSON (its MaxLength in the solution).
COMPONENTS_MAX_CHARS = 100_000
APPROVED = "APPROVED"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,100})\s*\}\}")
_SELECT = [
    "crmchat_whatsapptemplateid",
    "crmchat_name",
    "crmchat_language",
    "crmchat_status",
    "crmchat_category",
    "crmchat_components",
]


class TemplateRefused(Exception):
    """The template cannot be sent as asked (wrong parameters, not approved)."""


def _account_id(account: ChannelAccount) -> uuid.UUID | None:
    """The WhatsApp account's row id (a GUID literal in filters); None otherwise."""
    if account.channel is not ChannelType.WHATSAPP:
        return None
    try:
        return uuid.UUID(guid(account.key))
    except ValueError:
        return None


def _components(row: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(row.get("crmchat_components") or "[]")
    except ValueError:
        return []
    return [c for c in parsed if isinstance(c, dict)] if isinstance(parsed, list) else []


def _of_type(components: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for c in components if str(c.get("type") or "").upper() == kind]


def _body(components: list[dict[str, Any]]) -> str:
    return "".join(str(c.get("text") or "") for c in _of_type(components, "BODY"))


def _parameter_names(body: str) -> list[str]:
    """The body's placeholders in order of first appearance (`1`, `2` or names)."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(body):
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


def _body_only(components: list[dict[str, Any]]) -> bool:
    """True when nothing outside the body asks for a parameter."""
    for header in _of_type(components, "HEADER"):
        if str(header.get("format") or "TEXT").upper() != "TEXT":
            return False
        if _PLACEHOLDER.search(str(header.get("text") or "")):
            return False
    for buttons in _of_type(components, "BUTTONS"):
        for button in buttons.get("buttons") or []:
            if isinstance(button, dict) and _PLACEHOLDER.search(str(button.get("url") or "")):
                return False
    return True


def _choice(row: dict[str, Any]) -> dict[str, Any] | None:
    """An approved, body-only template as the console's picker shows it; else None."""
    components = _components(row)
    if row.get("crmchat_status") != APPROVED or not _body_only(components):
        return None
    body = _body(components)
    header = " ".join(str(c.get("text") or "") for c in _of_type(components, "HEADER"))
    footer = " ".join(str(c.get("text") or "") for c in _of_type(components, "FOOTER"))
    return {
        "id": str(row["crmchat_whatsapptemplateid"]).lower(),
        "name": row.get("crmchat_name") or "",
        "language": row.get("crmchat_language") or "",
        "category": row.get("crmchat_category") or "",
        "header": header,
        "body": body,
        "footer": footer,
        "parameters": _parameter_names(body),
    }


def approved_templates(client: Any, account: ChannelAccount) -> list[dict[str, Any]]:
    """The account's templates an agent can send, by name (DataverseError passes)."""
    account_id = _account_id(account)
    if account_id is None:
        return []
    rows = client.list(
        TEMPLATES_SET,
        select=_SELECT,
        filter=and_(
            eq("_crmchat_channelaccountid_value", account_id),
            eq("crmchat_status", APPROVED),
            eq("statecode", 0),
        ),
        orderby="crmchat_name",
    )
    return [choice for row in rows if (choice := _choice(row)) is not None]


def find_template(client: Any, account: ChannelAccount, template_id: str) -> dict[str, Any] | None:
    """One of `approved_templates` by its row id; None for any other id."""
    return next((t for t in approved_templates(client, account) if t["id"] == template_id), None)


def template_message(choice: dict[str, Any], values: list[str]) -> tuple[WhatsAppTemplate, str]:
    """What goes to WhatsApp and the text the chat shows ("[name] body" filled in).

    Raises TemplateRefused: a value missing or too many, or one WhatsApp refuses."""
    names: list[str] = choice["parameters"]
    if len(values) != len(names):
        raise TemplateRefused(f"The template takes {len(names)} parameter(s), {len(values)} given.")
    positional = all(name.isdigit() for name in names)
    try:
        template = WhatsAppTemplate(
            name=choice["name"],
            language=choice["language"],
            parameters=tuple(value.strip() for value in values),
            parameter_names=() if positional else tuple(names),
        )
    except ValidationError:
        raise TemplateRefused("Each parameter needs 1 to 1,024 characters.") from None
    filled = dict(zip(names, template.parameters, strict=True))
    body = _PLACEHOLDER.sub(lambda m: filled.get(m.group(1), m.group(0)), choice["body"])
    return template, f"[Template {choice['name']}] {body}".strip()


def do_sync_templates(client: Any, meta: MetaSendClient, account: ChannelAccount) -> dict[str, int]:
    """Make the account's template rows match Meta's list: `{"synced", "removed"}`.

    Raises ChannelError (Meta refused or could not be reached: nothing changed) and
    DataverseError (part may be written; the next sync finishes it)."""
    account_id = _account_id(account)
    if account_id is None:
        raise ValueError("templates are a WhatsApp account's")
    listed = meta.list_templates(account)
    existing = {
        (row.get("crmchat_name"), row.get("crmchat_language")): row["crmchat_whatsapptemplateid"]
        for row in client.list(
            TEMPLATES_SET,
            select=["crmchat_whatsapptemplateid", "crmchat_name", "crmchat_language"],
            filter=eq("_crmchat_channelaccountid_value", account_id),
        )
    }
    synced: set[tuple[str, str]] = set()
    for item in listed:
        row = _row(item)
        if row is None:
            log.warning("WhatsApp template of account %s skipped: not Meta's shape", account.key)
            continue
        key = (row["crmchat_name"], row["crmchat_language"])
        if key in synced:
            continue
        synced.add(key)
        if key in existing:
            client.update(TEMPLATES_SET, existing[key], row)
        else:
            bind = f"/{ACCOUNTS_SET}({account_id})"
            client.create(TEMPLATES_SET, {**row, "crmchat_ChannelAccountId@odata.bind": bind})
    removed = 0
    for key, row_id in existing.items():
        if key not in synced:  # deleted on Meta's side: no longer sendable
            client.delete(TEMPLATES_SET, row_id)
            removed += 1
    return {"synced": len(synced), "removed": removed}


def _row(item: dict[str, Any]) -> dict[str, Any] | None:
    """A template of Meta's list as the row's columns; None when it is not Meta's shape."""
    name, language = item.get("name"), item.get("language")
    components = item.get("components") if isinstance(item.get("components"), list) else []
    text = json.dumps(components, ensure_ascii=False, separators=(",", ":"))
    try:
        WhatsAppTemplate(name=str(name), language=str(language))
    except ValidationError:
        return None
    if len(text) > COMPONENTS_MAX_CHARS:
        return None
    return {
        "crmchat_name": name,
        "crmchat_language": language,
        "crmchat_status": str(item.get("status") or "")[:40],
        "crmchat_category": str(item.get("category") or "")[:40],
        "crmchat_components": text,
        "crmchat_metatemplateid": str(item.get("id") or "")[:100],
    }
