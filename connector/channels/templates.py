"""WhatsApp message templates in CRM (`crmchat_whatsapptemplate`), synced from Meta.

Outside the 24-hour customer service window WhatsApp takes only approved templates
(error 131047 "Re-engagement message" otherwise), so the console offers them then. The
rows are a copy of the WhatsApp Business Management API's list
(GET /<WABA id>/message_templates: name, language, status, category, components), one
per account, name and language (the alternate key); `do_sync_templates` makes the copy
match Meta's list, run by an administrator from the setup page. Read and written with the
service's application user.

An agent fills in each parameter an approved template asks for (`_fields`): a text
header's variable or a media header's https link (IMAGE, DOCUMENT, VIDEO), the body's
variables (`{{1}}` or `{{first_name}}`), and the suffix of each URL button with a
variable. A template asking for anything else (a location header) is not offered.

`TemplateSync` re-reads every WhatsApp account's templates periodically (the setup
page's button does it on demand): with several processes one claim per account and
period (`claim_once`) makes one process do each sync.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from typing import Any

from pydantic import ValidationError

from connector.chat.state import LivePrimitives
from connector.dataverse.errors import DataverseError
from connector.dataverse.odata import and_, eq, guid

from .accounts import ACCOUNTS_SET, ChannelAccounts
from .errors import ChannelError
from .model import ChannelAccount, ChannelType, WhatsAppTemplate
from .send import MetaSendClient

__all__ = [
    "TEMPLATES_SET",
    "TemplateRefused",
    "TemplateSync",
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


# A media header's link: WhatsApp fetches it, so only an https address (no other scheme).
_MEDIA_LINK = re.compile(r"^https://[^\s]{1,2000}$")
_MEDIA_FORMATS = ("IMAGE", "DOCUMENT", "VIDEO")


def _fields(components: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """What the agent fills in, in the order of the send's components: the header's
    variable or its media link, the body's variables, each URL button's variable; None
    when the template asks for something the console cannot give (a location header,
    a button parameter of another kind)."""
    fields: list[dict[str, Any]] = []
    for header in _of_type(components, "HEADER"):
        kind = str(header.get("format") or "TEXT").upper()
        if kind == "TEXT":
            fields += [
                {"slot": "header", "name": name, "kind": "text"}
                for name in _parameter_names(str(header.get("text") or ""))
            ]
        elif kind in _MEDIA_FORMATS:
            fields.append({"slot": "header", "name": kind.lower(), "kind": kind.lower()})
        else:
            return None
    fields += [
        {"slot": "body", "name": name, "kind": "text"}
        for name in _parameter_names(_body(components))
    ]
    for buttons in _of_type(components, "BUTTONS"):
        for index, button in enumerate(buttons.get("buttons") or []):
            if not isinstance(button, dict):
                continue
            names = _parameter_names(str(button.get("url") or ""))
            if names and str(button.get("type") or "").upper() != "URL":
                return None
            fields += [
                {"slot": "button", "name": name, "kind": "text", "index": index} for name in names
            ]
    return fields


def _choice(row: dict[str, Any]) -> dict[str, Any] | None:
    """An approved template as the console's picker shows it; else None."""
    components = _components(row)
    fields = _fields(components)
    if row.get("crmchat_status") != APPROVED or fields is None:
        return None
    body = _body(components)
    headers = _of_type(components, "HEADER")
    header = " ".join(str(c.get("text") or "") for c in headers)
    footer = " ".join(str(c.get("text") or "") for c in _of_type(components, "FOOTER"))
    buttons = [
        {"text": str(b.get("text") or ""), "url": str(b.get("url") or "")}
        for c in _of_type(components, "BUTTONS")
        for b in c.get("buttons") or []
        if isinstance(b, dict)
    ]
    return {
        "id": str(row["crmchat_whatsapptemplateid"]).lower(),
        "name": row.get("crmchat_name") or "",
        "language": row.get("crmchat_language") or "",
        "category": row.get("crmchat_category") or "",
        "header_format": str(headers[0].get("format") or "TEXT").upper() if headers else None,
        "header": header,
        "body": body,
        "footer": footer,
        "buttons": buttons,
        "parameters": _parameter_names(body),
        "fields": fields,
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

    `values` are the choice's `fields` in order (the header's, the body's, the buttons').
    Raises TemplateRefused: a value missing or too many, or one WhatsApp refuses."""
    fields: list[dict[str, Any]] = choice["fields"]
    if len(values) != len(fields):
        raise TemplateRefused(
            f"The template takes {len(fields)} parameter(s), {len(values)} given."
        )
    cleaned = [value.strip() for value in values]
    by_slot: dict[str, list[tuple[dict[str, Any], str]]] = {"header": [], "body": [], "button": []}
    for field, value in zip(fields, cleaned, strict=True):
        by_slot[field["slot"]].append((field, value))
    for field, value in by_slot["header"]:
        if field["kind"] != "text" and not _MEDIA_LINK.fullmatch(value):
            raise TemplateRefused(f"The {field['kind']} of the header needs an https link.")
    body_names = [f["name"] for f, _ in by_slot["body"]]
    header_names = [f["name"] for f, _ in by_slot["header"] if f["kind"] == "text"]
    positional = all(name.isdigit() for name in body_names + header_names)
    try:
        template = WhatsAppTemplate(
            name=choice["name"],
            language=choice["language"],
            parameters=tuple(v for _, v in by_slot["body"]),
            parameter_names=() if positional else tuple(body_names),
            header_format=choice.get("header_format") if by_slot["header"] else None,
            header_parameters=tuple(v for _, v in by_slot["header"]),
            header_names=() if positional else tuple(header_names),
            button_parameters=tuple((int(f["index"]), v) for f, v in by_slot["button"]),
        )
    except ValidationError:
        raise TemplateRefused("Each parameter needs 1 to 1,024 characters.") from None
    filled = {f["name"]: v for f, v in by_slot["body"]}
    body = _PLACEHOLDER.sub(lambda m: filled.get(m.group(1), m.group(0)), choice["body"])
    text = f"[Template {choice['name']}] {body}".strip()
    extras = [v for f, v in by_slot["header"] + by_slot["button"]]
    if extras:
        text += " (" + ", ".join(extras) + ")"
    return template, text


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


# The first periodic sync waits this long after the start (the platform and Dataverse
# settle, and a restart loop does not turn into a sync loop).
FIRST_SYNC_DELAY_SECS = 30.0


class TemplateSync:
    """Every `interval_secs` each enabled WhatsApp account with a business account id
    has its templates synced (`do_sync_templates`), as the setup page's button does.

    Each account and period is a one-shot claim on the live state every process shares
    (`whatsapp-templates:<account>:<period>`), so one process syncs it per period. A
    refusal or an unreachable Meta or Dataverse is logged and tried next period."""

    def __init__(
        self,
        client: Any,
        meta: MetaSendClient,
        accounts: ChannelAccounts,
        *,
        claims: LivePrimitives,
        interval_secs: float,
        clock: Any = time.time,
    ) -> None:
        self.client = client
        self.meta = meta
        self.accounts = accounts
        self.claims = claims
        self.interval_secs = interval_secs
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, dict[str, int]]:
        """Sync the accounts this process claims for the current period: their results."""
        period = int(self.clock() // self.interval_secs)
        done: dict[str, dict[str, int]] = {}
        for account in self.accounts.all():
            if (
                account.channel is not ChannelType.WHATSAPP
                or not account.enabled
                or not account.business_account_id
            ):
                continue
            key = f"whatsapp-templates:{account.key}:{period}"
            if not self.claims.claim_once(key, self.interval_secs):
                continue  # another process has this period's sync
            try:
                done[account.key] = do_sync_templates(self.client, self.meta, account)
            except (ChannelError, DataverseError) as error:
                log.warning("WhatsApp template sync of %s failed: %s", account.key, error)
                continue
            log.info(
                "WhatsApp templates synced", extra={"account": account.key, **done[account.key]}
            )
        return done

    def start(self) -> None:
        if self.interval_secs <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="crmchat-template-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        wait = min(FIRST_SYNC_DELAY_SECS, self.interval_secs)
        while not self._stop.wait(wait):
            try:
                self.run_once()
            except Exception:  # never let the thread die: the next period tries again
                log.exception("WhatsApp template sync failed")
            wait = self.interval_secs
