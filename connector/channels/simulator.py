"""A local simulator of Messenger, Instagram, WhatsApp and Viber (embedded default only).

It plays both sides the platforms play for the service, in their wire formats:

- a person writing: `/simulator/` is a page where one writes as a Messenger, Instagram,
  WhatsApp or Viber user; the simulator builds the platform's webhook body (`wire`),
  signs it with the account's secret and POSTs it to the service's webhook URL, as the
  platform would;
- the send APIs the service calls (`GRAPH_PATH`, `VIBER_PATH`): it checks the token, the
  window and a rate limit as the platform does, records what was sent (the page shows
  it), answers with the platform's success or error body, and then sends the delivery
  receipt (or WhatsApp's failed status) webhook.

It holds every account's secrets, so it is mounted only on the embedded default, like
the model-driven app stand-in, and only answers requests addressed to this machine.

Routes::

    GET  /simulator/                          the page
    GET  /simulator/static/<file>             its script and style
    GET  /simulator/api/accounts              [{"key","channel","name","webhook_url"}]
    GET  /simulator/api/conversation          ?account=&person= -> {"lines": [...]}
    POST /simulator/api/person-message        {"account","person_id","person_name",
                                              "text" | "image_url" | "file_url",
                                              "file_name" | "sticker_id"}
    POST /simulator/api/person-event          {"account","person_id","person_name","event":
                                              "subscribed"|"conversation_started"|"read"}
    POST /simulator/api/age                   {"account","person_id","hours"}: the person's
                                              last message is that much older
    POST /simulator/api/rate-limit            {"account","sends_left"}: then rate-limited
    GET  /simulator/graph/<version>/<id>?fields=    the account's own node (test connection)
    POST /simulator/graph/<version>/<id>/messages   Graph API send
    GET  /simulator/graph/<version>/<WABA id>/message_templates   WhatsApp templates
    GET  /simulator/graph/<version>/<media id>      WhatsApp media: its download URL
    GET  /simulator/media/<sample>                  a picture (sample.png), a document
                                                    (sample.pdf), a sticker (sticker.webp)
    POST /simulator/viber/pa/get_account_info       Viber get_account_info (test connection)
    POST /simulator/viber/pa/send_message           Viber send_message
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import requests
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    request,
)
from pydantic import BaseModel, Field

from connector.solution.paths import WEBRESOURCES_DIR
from connector.web.addresses import is_loopback_host
from connector.web.errors import InvalidInput, NotFound, json_body

from .accounts import ChannelAccounts
from .model import ACCOUNT_KEY_PATTERN, ChannelAccount, ChannelType
from .rules import HUMAN_AGENT_WINDOW, STANDARD_WINDOW
from .webhooks import webhook_path
from .wire import (
    meta_message_body,
    meta_status_body,
    signed_request,
    viber_event_body,
    viber_message_body,
)

__all__ = ["GRAPH_PATH", "SIMULATOR_DIR", "VIBER_PATH", "bp", "init_app"]

log = logging.getLogger(__name__)

bp = Blueprint("channel_simulator", __name__)

GRAPH_PATH = "/simulator/graph"
VIBER_PATH = "/simulator/viber"
SIMULATOR_DIR = WEBRESOURCES_DIR / "standin" / "simulator"
# How long the simulator waits for the service's webhook answer (the platforms give a
# few seconds before they count a delivery as failed).
DELIVERY_TIMEOUT_SECS = 10.0
LINES_MAX = 500
# WhatsApp media ids this simulator hands out start here (Meta's are long numbers).
MEDIA_ID_BASE = 1_560_000_000_000_000
SAMPLE_IMAGE_PATH = "/simulator/media/sample.png"
SAMPLE_FILE_PATH = "/simulator/media/sample.pdf"
SAMPLE_STICKER_PATH = "/simulator/media/sticker.webp"
SAMPLE_FILE_NAME = "order-1042.pdf"
# A 1x1 PNG: the smallest picture every browser and CRM shows.
SAMPLE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
# A one-page PDF with no content, and a 1x1 lossless WebP (WhatsApp's sticker format).
SAMPLE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
SAMPLE_WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
# The files a person can send from the page: path -> (bytes, content type).
SAMPLES: dict[str, tuple[bytes, str]] = {
    SAMPLE_IMAGE_PATH: (SAMPLE_PNG, "image/png"),
    SAMPLE_FILE_PATH: (SAMPLE_PDF, "application/pdf"),
    SAMPLE_STICKER_PATH: (SAMPLE_WEBP, "image/webp"),
}

# The WhatsApp Business Account's templates, in the WhatsApp Business Management API's
# shape (developers.facebook.com/documentation/business-messaging/whatsapp/templates/
# template-management): one per kind the service must tell apart.
TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "id": "594425479261596",
        "name": "order_update",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} has shipped.",
                "example": {"body_text": [["Pat", "1042"]]},
            },
            {"type": "FOOTER", "text": "Contoso"},
        ],
    },
    {
        "id": "594425479261597",
        "name": "follow_up",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {
                "type": "BODY",
                "text": "Hello {{first_name}}, we have news about your question. "
                "Reply to carry on.",
                "example": {
                    "body_text_named_params": [{"param_name": "first_name", "example": "Pat"}]
                },
            }
        ],
    },
    {
        "id": "594425479261598",
        "name": "spring_sale",
        "language": "en_US",
        "status": "PENDING",
        "category": "MARKETING",
        "parameter_format": "POSITIONAL",
        "components": [{"type": "BODY", "text": "Our spring sale starts today."}],
    },
    {
        "id": "594425479261599",
        "name": "receipt_photo",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "HEADER",
                "format": "IMAGE",
                "example": {"header_handle": ["https://scontent.example/receipt.png"]},
            },
            {"type": "BODY", "text": "Here is your receipt."},
        ],
    },
    {
        "id": "594425479261600",
        "name": "delivery_slot",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Delivery for {{1}}",
                "example": {"header_text": ["Pat"]},
            },
            {
                "type": "BODY",
                "text": "Your parcel arrives on {{1}}.",
                "example": {"body_text": [["Friday"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {
                        "type": "URL",
                        "text": "Track it",
                        "url": "https://contoso.example/track/{{1}}",
                        "example": ["https://contoso.example/track/1042"],
                    },
                    {"type": "QUICK_REPLY", "text": "Call me"},
                ],
            },
        ],
    },
)


@dataclass
class _Line:
    sender: Literal["person", "business"]
    text: str
    at: datetime
    message_id: str
    status: str = ""  # the webhook's answer, or the send's outcome
    # A picture or file the business sent: where the platform fetched it from, its kind.
    media_url: str | None = None
    media_kind: str | None = None


@dataclass
class _Person:
    name: str = ""
    last_message_at: datetime | None = None
    subscribed: bool = False
    lines: list[_Line] = field(default_factory=list)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.people: dict[tuple[str, str], _Person] = {}
        self.sends_left: dict[str, int] = {}
        self.ids = itertools.count(1)
        # WhatsApp media ids the simulator handed out -> the image URL behind each.
        self.media: dict[str, str] = {}

    def person(self, account: str, person_id: str) -> _Person:
        return self.people.setdefault((account, person_id), _Person())


class PersonMessage(BaseModel):
    account: str = Field(pattern=ACCOUNT_KEY_PATTERN)
    person_id: str = Field(pattern=r"^[A-Za-z0-9+=_-]{1,64}$")
    person_name: str = Field(default="", max_length=100)
    text: str | None = Field(default=None, min_length=1, max_length=2000)
    image_url: str | None = Field(default=None, pattern=r"^https?://", max_length=1000)
    # A document (Messenger/Instagram `file`, WhatsApp `document`, Viber `file`).
    file_url: str | None = Field(default=None, pattern=r"^https?://", max_length=1000)
    file_name: str | None = Field(default=None, min_length=1, max_length=200)
    sticker_id: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")


class PersonEvent(BaseModel):
    account: str = Field(pattern=ACCOUNT_KEY_PATTERN)
    person_id: str = Field(pattern=r"^[A-Za-z0-9+=_-]{1,64}$")
    person_name: str = Field(default="", max_length=100)
    event: Literal["subscribed", "conversation_started", "read"]


class Age(BaseModel):
    account: str = Field(pattern=ACCOUNT_KEY_PATTERN)
    person_id: str = Field(pattern=r"^[A-Za-z0-9+=_-]{1,64}$")
    hours: float = Field(gt=0, le=24 * 365)


class RateLimit(BaseModel):
    account: str = Field(pattern=ACCOUNT_KEY_PATTERN)
    sends_left: int = Field(ge=0, le=1_000_000)


def init_app(app: Flask, *, service_url: str, accounts: ChannelAccounts) -> None:
    """Mount the simulator on `app`: the service's own on the embedded default, or an app
    of its own in front of several service processes (tests/test_scale_out_channels.py)."""
    # The simulated platforms' own state (not the service's): who wrote, what was sent.
    # The accounts and their secrets are the service's, as an admin has copied them
    # between the platform's console and CRM.
    app.extensions["crmchat.simulator"] = {
        "state": _State(),
        "service_url": service_url,
        "accounts": accounts,
    }
    app.register_blueprint(bp)


@bp.before_request
def _local_only() -> None:
    # It signs webhooks with every account's secrets: never for another machine.
    if not is_loopback_host(request.host):
        abort(404)


def _ext() -> dict[str, Any]:
    ext: dict[str, Any] = current_app.extensions["crmchat.simulator"]
    return ext


def _accounts() -> ChannelAccounts:
    accounts: ChannelAccounts = _ext()["accounts"]
    return accounts


def _account(key: str) -> ChannelAccount:
    account = _accounts().get(key)
    if account is None:
        raise NotFound("No such channel account.", code="unknown_account")
    return account


def _now() -> datetime:
    return datetime.now(UTC)


# ----- the page -------------------------------------------------------------------------


# The page's files, sent as bytes (no open file left to a client that never reads it).
_FILES = {
    "index.html": "text/html",
    "simulator.js": "text/javascript",
    "simulator.css": "text/css",
}


def _file(name: str) -> Response:
    mimetype = _FILES.get(name)
    if mimetype is None:
        raise NotFound("No such file.")
    response = Response((SIMULATOR_DIR / name).read_bytes(), mimetype=mimetype)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/simulator/")
def page() -> Response:
    return _file("index.html")


@bp.get("/simulator/static/<name>")
def static_file(name: str) -> Response:
    return _file(name)


@bp.get("/simulator/api/accounts")
def list_accounts() -> Response:
    accounts = _accounts()
    base = _ext()["service_url"]
    return jsonify(
        [
            {
                "key": a.key,
                "channel": a.channel.value,
                "name": a.name,
                "webhook_url": base + webhook_path(a),
            }
            for a in accounts.all()
        ]
    )


@bp.get("/simulator/api/conversation")
def conversation() -> Response:
    key = request.args.get("account", "")
    person_id = request.args.get("person", "")
    _account(key)
    state: _State = _ext()["state"]
    with state.lock:
        person = state.people.get((key, person_id)) or _Person()
        lines = [
            {
                "sender": line.sender,
                "text": line.text,
                "at": line.at.isoformat(),
                "message_id": line.message_id,
                "status": line.status,
                "media_url": line.media_url,
                "media_kind": line.media_kind,
            }
            for line in person.lines
        ]
        subscribed = person.subscribed
    return jsonify({"lines": lines, "subscribed": subscribed})


# ----- the person's side: webhooks to the service ---------------------------------------


def _deliver(account: ChannelAccount, body: dict[str, Any]) -> tuple[int, Any]:
    """POST the signed webhook to the service, as the platform does."""
    raw, headers = signed_request(account, body)
    url = _ext()["service_url"] + webhook_path(account)
    try:
        answer = requests.post(url, data=raw, headers=headers, timeout=DELIVERY_TIMEOUT_SECS)
    except requests.RequestException as error:
        log.warning("simulator could not reach the service: %s", error)
        return 0, None
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, None


def _deliver_later(app: Flask, account: ChannelAccount, body: dict[str, Any]) -> None:
    """A receipt after the send call's answer, as the platforms send it."""

    def run() -> None:
        with app.app_context():
            _deliver(account, body)

    threading.Thread(target=run, name="crmchat-simulator-receipt", daemon=True).start()


def _add_line(account: ChannelAccount, person_id: str, line: _Line) -> None:
    state: _State = _ext()["state"]
    with state.lock:
        lines = state.person(account.key, person_id).lines
        lines.append(line)
        del lines[:-LINES_MAX]


@bp.post("/simulator/api/person-message")
def person_message() -> Response:
    form = PersonMessage.model_validate(json_body())
    if not (form.text or form.image_url or form.file_url or form.sticker_id):
        raise InvalidInput("Write a text, or send an image, a file or a sticker.")
    account = _account(form.account)
    state: _State = _ext()["state"]
    now = _now()
    number = next(state.ids)
    base = _ext()["service_url"]
    file_name = form.file_name or (SAMPLE_FILE_NAME if form.file_url else None)
    with state.lock:
        person = state.person(account.key, form.person_id)
        person.name = form.person_name or person.name
        person.last_message_at = now
        if account.channel is ChannelType.VIBER:
            person.subscribed = True  # a message subscribes the person to the bot
    if account.channel is ChannelType.VIBER:
        body = viber_message_body(
            person_id=form.person_id,
            person_name=person.name,
            message_token=5_000_000 + number,
            at=now,
            text=form.text,
            image_url=form.image_url,
            sticker_id=form.sticker_id,
            file_url=form.file_url,
            file_name=file_name,
            file_size=len(_sample(form.file_url)[0]) if form.file_url else 0,
        )
        message_id = str(5_000_000 + number)
    else:
        prefix = "wamid.SIM" if account.channel is ChannelType.WHATSAPP else "m_SIM"
        message_id = f"{prefix}{number:08d}"
        image, document, sticker = form.image_url, form.file_url, form.sticker_id
        sticker_url = base + SAMPLE_STICKER_PATH if sticker else None
        mime = _sample(image or document or "")[1]
        if account.channel is ChannelType.WHATSAPP:
            # WhatsApp sends a media id; GET /<version>/<media id> then gives its URL.
            media_id = str(MEDIA_ID_BASE + number)
            with state.lock:
                state.media[media_id] = image or document or str(sticker_url)
            if image is not None:
                image = media_id
            elif document is not None:
                document = media_id
            elif sticker is not None:
                sticker = media_id
        body = meta_message_body(
            account,
            person_id=form.person_id,
            person_name=person.name,
            message_id=message_id,
            at=now,
            text=form.text,
            image_url=image,
            sticker_id=sticker,
            sticker_url=sticker_url,
            file_url=document,
            file_name=file_name,
            mime_type=mime,
        )
    status, answer = _deliver(account, body)
    if form.image_url:
        shown = f"[image] {form.image_url}"
    elif form.file_url:
        shown = f"[file] {file_name}"
    elif form.sticker_id:
        shown = f"[sticker {form.sticker_id}]"
    else:
        shown = str(form.text)
    if form.text and shown != form.text:
        shown = f"{form.text}\n{shown}"
    _add_line(account, form.person_id, _Line("person", shown, now, message_id, str(status)))
    return jsonify({"webhook_status": status, "webhook_answer": answer, "message_id": message_id})


def _sample(url: str) -> tuple[bytes, str]:
    """The simulator's sample behind `url` (bytes, type); an address of elsewhere is
    announced as a JPEG picture, as the platforms announce what they took."""
    for path, sample in SAMPLES.items():
        if url.endswith(path):
            return sample
    return b"", "image/jpeg"


@bp.post("/simulator/api/person-event")
def person_event() -> Response:
    form = PersonEvent.model_validate(json_body())
    account = _account(form.account)
    state: _State = _ext()["state"]
    now = _now()
    number = next(state.ids)
    with state.lock:
        person = state.person(account.key, form.person_id)
        person.name = form.person_name or person.name
        last_business = next((x for x in reversed(person.lines) if x.sender == "business"), None)
        if form.event == "subscribed":
            person.subscribed = True
    if form.event == "read":
        if last_business is None:
            raise InvalidInput("Nothing from the business to read yet.")
        if account.channel is ChannelType.VIBER:
            body = viber_event_body(
                "seen",
                person_id=form.person_id,
                person_name=person.name,
                message_token=int(last_business.message_id),
                at=now,
            )
        else:
            body = meta_status_body(
                account,
                person_id=form.person_id,
                message_id=last_business.message_id,
                status="read",
                at=now,
            )
    else:
        if account.channel is not ChannelType.VIBER:
            raise InvalidInput(f"{form.event} is a Viber event.")
        body = viber_event_body(
            form.event,
            person_id=form.person_id,
            person_name=person.name,
            message_token=5_000_000 + number,
            at=now,
        )
    status, answer = _deliver(account, body)
    if form.event == "conversation_started" and status == 200 and _is_welcome(answer):
        # Viber shows the answer's message in the chat the person just opened.
        line = _Line("business", str(answer["text"]), now, str(5_000_000 + number), "welcome")
        _add_line(account, form.person_id, line)
    return jsonify({"webhook_status": status, "webhook_answer": answer})


def _is_welcome(answer: Any) -> bool:
    """A conversation_started answer that is a message (Viber's welcome message)."""
    return (
        isinstance(answer, dict)
        and answer.get("type") == "text"
        and isinstance(answer.get("text"), str)
        and isinstance(answer.get("sender"), dict)
    )


@bp.post("/simulator/api/age")
def age() -> Response:
    form = Age.model_validate(json_body())
    _account(form.account)
    state: _State = _ext()["state"]
    with state.lock:
        person = state.person(form.account, form.person_id)
        if person.last_message_at is None:
            raise InvalidInput("The person has not written yet.")
        person.last_message_at -= timedelta(hours=form.hours)
    return jsonify({"last_message_at": person.last_message_at.isoformat()})


@bp.post("/simulator/api/rate-limit")
def rate_limit() -> Response:
    form = RateLimit.model_validate(json_body())
    _account(form.account)
    state: _State = _ext()["state"]
    with state.lock:
        state.sends_left[form.account] = form.sends_left
    return jsonify({"sends_left": form.sends_left})


# ----- the platforms' send APIs ---------------------------------------------------------


def _graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdSimulator",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    response = jsonify({"error": error})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _take_send(state: _State, key: str) -> bool:
    """False when the account is rate-limited (no sends left)."""
    left = state.sends_left.get(key)
    if left is None:
        return True
    if left <= 0:
        return False
    state.sends_left[key] = left - 1
    return True


def _graph_account(node_id: str, verb: str) -> ChannelAccount | Response:
    """The Meta account whose node this is, called with its token; else Graph's error."""
    accounts = _accounts()
    account = next(
        (a for a in accounts.all() if a.channel.is_meta and a.platform_id == node_id), None
    )
    if account is None:
        return _graph_error(
            400,
            100,
            f"Unsupported {verb} request. Object with ID '{node_id}' does not exist.",
            subcode=33,
        )
    bearer = request.headers.get("Authorization", "")
    token = account.access_token.get_secret_value() if account.access_token else None
    if token is None or bearer != f"Bearer {token}":
        return _graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
    return account


@bp.get(f"{GRAPH_PATH}/<version>/<node_id>")
def graph_node(version: str, node_id: str) -> Response:
    """The account's own node, as "test connection" reads it (the fields it asked for),
    or a WhatsApp media node (a media id from a webhook)."""
    state: _State = _ext()["state"]
    with state.lock:
        media_url = state.media.get(node_id)
    if media_url is not None:
        return _media_node(node_id, media_url)
    profile = _person_node(node_id)
    if profile is not None:
        return profile
    account = _graph_account(node_id, "get")
    if isinstance(account, Response):
        return account
    known: dict[str, str] = {"id": account.platform_id}
    if account.channel is ChannelType.MESSENGER:
        known["name"] = account.name
    elif account.channel is ChannelType.INSTAGRAM:
        known["username"] = account.name.lstrip("@")
    else:
        known["display_phone_number"] = "+1 555-0100"
        known["verified_name"] = account.name
        known["quality_rating"] = "GREEN"
    asked = (request.args.get("fields") or "id").split(",")
    return jsonify({field: known[field] for field in asked if field in known})


@bp.get(f"{GRAPH_PATH}/<version>/<waba_id>/message_templates")
def graph_templates(version: str, waba_id: str) -> Response:
    """GET /<WABA id>/message_templates: `data` with the asked `fields`, cursor paging
    (`limit`, `after`; `paging.next` only while there is a next page), as Graph pages."""
    account = next(
        (
            a
            for a in _accounts().all()
            if a.channel is ChannelType.WHATSAPP and a.business_account_id == waba_id
        ),
        None,
    )
    if account is None:
        return _graph_error(
            400,
            100,
            f"Unsupported get request. Object with ID '{waba_id}' does not exist.",
            subcode=33,
        )
    token = account.access_token.get_secret_value() if account.access_token else None
    if token is None or request.headers.get("Authorization", "") != f"Bearer {token}":
        return _graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
    fields = (request.args.get("fields") or "id,name,language,status,category").split(",")
    limit = min(max(request.args.get("limit", 25, type=int) or 25, 1), 100)
    after = request.args.get("after", "")
    start = int(after) if after.isdigit() else 0  # this simulator's cursors: an offset
    page = TEMPLATES[start : start + limit]
    body: dict[str, Any] = {
        "data": [{f: item[f] for f in fields if f in item} for item in page],
        "paging": {"cursors": {"before": str(start), "after": str(start + len(page))}},
    }
    if start + len(page) < len(TEMPLATES):
        body["paging"]["next"] = request.base_url + f"?limit={limit}&after={start + len(page)}"
    return jsonify(body)


def _person_node(person_id: str) -> Response | None:
    """A person who wrote to a Messenger page or Instagram account, read with that
    account's token: Messenger's User Profile API (`first_name`, `last_name`), Instagram's
    (`name`, `username`), the fields asked for. None: not a person this simulator knows."""
    state: _State = _ext()["state"]
    bearer = request.headers.get("Authorization", "")
    for account in _accounts().all():
        if account.channel not in (ChannelType.MESSENGER, ChannelType.INSTAGRAM):
            continue
        with state.lock:
            person = state.people.get((account.key, person_id))
        if person is None:
            continue
        token = account.access_token.get_secret_value() if account.access_token else None
        if token is None or bearer != f"Bearer {token}":
            return _graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        first, _, last = person.name.rpartition(" ")
        known = {
            "id": person_id,
            "first_name": first or person.name,
            "last_name": last if first else "",
            "name": person.name,
            "username": person.name.lower().replace(" ", "_"),
        }
        asked = (request.args.get("fields") or "first_name,last_name").split(",")
        return jsonify({f: known[f] for f in ["id", *asked] if f in known and known[f]})
    return None


def _media_node(media_id: str, url: str) -> Response:
    """GET /<media id>: where to download it for the next 5 minutes, as the Cloud API
    answers (the token is checked as for any Graph call)."""
    bearer = request.headers.get("Authorization", "")
    tokens = {
        f"Bearer {a.access_token.get_secret_value()}"
        for a in _accounts().all()
        if a.channel is ChannelType.WHATSAPP and a.access_token is not None
    }
    if bearer not in tokens:
        return _graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
    data, mime = _sample(url)
    return jsonify(
        {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": mime,
            "sha256": hashlib.sha256(data).hexdigest() if data else "",
            "file_size": str(len(data)),
            "id": media_id,
        }
    )


@bp.get("/simulator/media/<name>")
def sample_media(name: str) -> Response:
    """The picture, document and sticker a person can send (the page offers them)."""
    sample = SAMPLES.get(f"/simulator/media/{name}")
    if sample is None:
        raise NotFound("No such file.")
    response = Response(sample[0], mimetype=sample[1])
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post(f"{GRAPH_PATH}/<version>/<node_id>/messages")
def graph_send(version: str, node_id: str) -> Response:
    account = _graph_account(node_id, "post")
    if isinstance(account, Response):
        return account
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _graph_error(400, 100, "(#100) Param message must be a JSON object")
    if account.channel is ChannelType.WHATSAPP:
        return _whatsapp_send(account, payload)
    return _messenger_send(account, payload)


@dataclass(frozen=True)
class _Media:
    kind: str
    name: str
    url: str


@dataclass(frozen=True)
class _Takes:
    """What a platform takes from a business for one media type (its own limits, kept
    apart from the service's so a test can catch the service sending what it refuses)."""

    types: frozenset[str]  # content types; empty: any but programs
    max_bytes: int


_MB = 1024 * 1024
_IMAGES = frozenset({"image/jpeg", "image/png", "image/gif"})
_MESSENGER_MEDIA = {"image": _Takes(_IMAGES, 25 * _MB), "file": _Takes(frozenset(), 25 * _MB)}
_INSTAGRAM_MEDIA = {
    "image": _Takes(_IMAGES, 8 * _MB),
    "file": _Takes(frozenset({"application/pdf"}), 25 * _MB),
}
_WHATSAPP_MEDIA = {
    "image": _Takes(frozenset({"image/jpeg", "image/png"}), 5 * _MB),
    "document": _Takes(
        frozenset(
            {
                "application/pdf",
                "text/plain",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
        100 * _MB,
    ),
}
_VIBER_MEDIA = {"picture": _Takes(_IMAGES, 1 * _MB), "file": _Takes(frozenset(), 50 * _MB)}
# Viber refuses these as files whatever their content (its list is longer; these matter).
_VIBER_FORBIDDEN = frozenset({"exe", "bat", "cmd", "com", "js", "msi", "scr", "vbs", "apk"})


def _url_name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "file"


def _fetch_media(url: str, kind: str, takes: _Takes, *, name: str = "") -> _Media | str:
    """Download what the business sent, as the platform does; why it is refused else."""
    if name and name.rsplit(".", 1)[-1].lower() in _VIBER_FORBIDDEN and kind == "file":
        return "forbidden file type"
    try:
        answer = requests.get(url, timeout=DELIVERY_TIMEOUT_SECS)
    except requests.RequestException:
        return "could not fetch the file"
    if answer.status_code != 200:
        return f"the file's server answered {answer.status_code}"
    content_type = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if takes.types and content_type not in takes.types:
        return f"{content_type or 'unknown'} is not supported for {kind}"
    if len(answer.content) > takes.max_bytes:
        return f"larger than {takes.max_bytes // _MB} MB"
    return _Media(kind, name or _url_name(url), url)


def _meta_attachment(account: ChannelAccount, attachment: dict[str, Any]) -> _Media | Response:
    """Messenger/Instagram fetch an attachment's `payload.url` during the send call and
    refuse it then: 2018008 when it cannot be fetched, 2018047 when it is not taken."""
    kind = str(attachment.get("type"))
    url = str((attachment.get("payload") or {}).get("url") or "")
    media = _INSTAGRAM_MEDIA if account.channel is ChannelType.INSTAGRAM else _MESSENGER_MEDIA
    if kind not in media:
        return _graph_error(400, 100, "(#100) Upload attachment failure.", subcode=2018047)
    fetched = _fetch_media(url, kind, media[kind])
    if isinstance(fetched, str) and fetched.startswith(("could not", "the file's server")):
        return _graph_error(
            400, 100, "(#100) Failed to fetch the file from the url", subcode=2018008
        )
    if isinstance(fetched, str):
        return _graph_error(400, 100, "(#100) Upload attachment failure.", subcode=2018047)
    return fetched


def _messenger_send(account: ChannelAccount, payload: dict[str, Any]) -> Response:
    state: _State = _ext()["state"]
    recipient = (payload.get("recipient") or {}).get("id")
    message = payload.get("message") or {}
    text = str(message.get("text") or "")
    attachment = message.get("attachment")
    media: _Media | None = None
    if isinstance(attachment, dict):
        fetched = _meta_attachment(account, attachment)
        if isinstance(fetched, Response):
            return fetched
        media = fetched
        text = f"[{media.kind}] {media.name}"
    now = _now()
    with state.lock:
        person = state.people.get((account.key, str(recipient)))
        last = person.last_message_at if person else None
        allowed = _take_send(state, account.key)
    if person is None or last is None:
        return _graph_error(400, 100, "(#100) No matching user found", subcode=2018001)
    if not allowed:
        # Meta names the wait in minutes in this header (Retry-After is not sent).
        usage = json.dumps(
            {
                account.platform_id: [
                    {
                        "type": "messenger",
                        "call_count": 100,
                        "total_cputime": 10,
                        "total_time": 10,
                        "estimated_time_to_regain_access": 1,
                    }
                ]
            }
        )
        return _graph_error(
            400,
            613,
            "(#613) Calls to this api have exceeded the rate limit.",
            headers={"X-Business-Use-Case-Usage": usage},
        )
    tagged = payload.get("messaging_type") == "MESSAGE_TAG" and payload.get("tag") == "HUMAN_AGENT"
    limit = HUMAN_AGENT_WINDOW if tagged else STANDARD_WINDOW
    if now - last >= limit:
        return _graph_error(
            400, 10, "(#10) This message is sent outside of allowed window.", subcode=2018278
        )
    number = next(state.ids)
    message_id = f"m_SIMOUT{number:08d}"
    _add_line(
        account,
        str(recipient),
        _Line(
            "business",
            text,
            now,
            message_id,
            "sent (HUMAN_AGENT)" if tagged else "sent",
            media_url=media.url if media else None,
            media_kind=media.kind if media else None,
        ),
    )
    _deliver_later(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        account,
        meta_status_body(
            account, person_id=str(recipient), message_id=message_id, status="delivered", at=now
        ),
    )
    return jsonify({"recipient_id": recipient, "message_id": message_id})


def _whatsapp_send(account: ChannelAccount, payload: dict[str, Any]) -> Response:
    state: _State = _ext()["state"]
    to = str(payload.get("to") or "")
    kind = payload.get("type")
    now = _now()
    if payload.get("messaging_product") != "whatsapp":
        return _graph_error(400, 100, "(#100) The parameter messaging_product is required.")
    if kind == "text":
        text = str((payload.get("text") or {}).get("body") or "")
    elif kind == "template":
        template = payload.get("template") or {}
        params = [
            p.get("text") or f"{p.get('type')}:{(p.get(str(p.get('type'))) or {}).get('link', '')}"
            for c in template.get("components") or []
            for p in c.get("parameters") or []
        ]
        refused = _template_refused(template, params)
        if refused is not None:
            return refused
        text = f"[template {template.get('name')} ({(template.get('language') or {}).get('code')})]"
        if params:
            text += " " + " | ".join(str(p) for p in params)
    elif kind in ("image", "document"):
        media_field = payload.get(kind) or {}
        if not isinstance(media_field, dict) or not media_field.get("link"):
            return _graph_error(400, 100, f"(#100) Param {kind}['link'] is required")
        link = str(media_field["link"])
        name = str(media_field.get("filename") or _url_name(link))
        text = f"[{kind}] {name}"
    else:
        return _graph_error(400, 100, f"(#100) Unsupported message type {kind!r}")
    with state.lock:
        person = state.people.get((account.key, to))
        last = person.last_message_at if person else None
        allowed = _take_send(state, account.key)
    if not allowed:
        return _graph_error(400, 130429, "(#130429) Rate limit hit")
    number = next(state.ids)
    message_id = f"wamid.SIMOUT{number:08d}"
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    outside = kind != "template" and (last is None or now - last >= STANDARD_WINDOW)
    # The Cloud API takes the call and reports what went wrong asynchronously, as a
    # failed status: 131047 (Re-engagement message) for the closed window, 131053
    # (Media upload error) for media it could not fetch or does not take.
    failure: tuple[int, str] | None = (131047, "Re-engagement message") if outside else None
    shown: _Media | None = None
    if kind in ("image", "document") and failure is None:
        fetched = _fetch_media(link, kind, _WHATSAPP_MEDIA[kind])
        if isinstance(fetched, str):
            failure = (131053, f"Media upload error: {fetched}")
        else:
            shown = fetched
    if failure is not None:
        receipt = meta_status_body(
            account, person_id=to, message_id=message_id, status="failed", at=now, error=failure
        )
    else:
        receipt = meta_status_body(
            account, person_id=to, message_id=message_id, status="delivered", at=now
        )
    _add_line(
        account,
        to,
        _Line(
            "business",
            text,
            now,
            message_id,
            f"failed ({failure[0]})" if failure else "sent",
            media_url=shown.url if shown else None,
            media_kind=shown.kind if shown else None,
        ),
    )
    _deliver_later(app, account, receipt)
    return jsonify(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": message_id}],
        }
    )


def _template_refused(template: dict[str, Any], params: list[Any]) -> Response | None:
    """The Cloud API's refusals of a template send: 132001 for a template that does not
    exist (or is not approved) in that language, 132000 for a wrong parameter count in
    any component, 132012 for a parameter of the wrong format (a media header without
    its link)."""
    language = (template.get("language") or {}).get("code")
    known = next(
        (
            t
            for t in TEMPLATES
            if t["name"] == template.get("name")
            and t["language"] == language
            and t["status"] == "APPROVED"
        ),
        None,
    )
    if known is None:
        return _graph_error(
            400, 132001, "(#132001) Template name does not exist in the translation"
        )
    sent = {
        (str(c.get("type")).upper(), str(c.get("index", ""))): c.get("parameters") or []
        for c in template.get("components") or []
        if isinstance(c, dict)
    }
    expected: dict[tuple[str, str], int] = {}
    media: str | None = None
    for component in known["components"]:
        kind = component["type"]
        if kind == "HEADER" and component.get("format", "TEXT") != "TEXT":
            media = component["format"].lower()
            expected[("HEADER", "")] = 1
        elif kind in ("HEADER", "BODY"):
            count = len(set(re.findall(r"\{\{\s*(\w+)\s*\}\}", component.get("text", ""))))
            if count:
                expected[(kind, "")] = count
        elif kind == "BUTTONS":
            for index, button in enumerate(component["buttons"]):
                if "{{" in str(button.get("url", "")):
                    expected[("BUTTON", str(index))] = 1
    if {k: len(v) for k, v in sent.items() if v} != expected:
        return _graph_error(
            400,
            132000,
            "(#132000) Number of parameters does not match the expected number of params",
        )
    if media is not None:
        (header,) = sent[("HEADER", "")]
        link = str((header.get(media) or {}).get("link") or "") if isinstance(header, dict) else ""
        if header.get("type") != media or not link.startswith("https://"):
            return _graph_error(
                400,
                132012,
                "(#132012) Parameter format does not match format in the created template",
            )
    return None


def _viber_account() -> ChannelAccount | None:
    """The Viber bot whose token the call carries."""
    accounts = _accounts()
    token = request.headers.get("X-Viber-Auth-Token", "")
    return next(
        (
            a
            for a in accounts.all()
            if a.channel is ChannelType.VIBER
            and a.auth_token is not None
            and a.auth_token.get_secret_value() == token
        ),
        None,
    )


@bp.post(f"{VIBER_PATH}/pa/get_account_info")
def viber_account_info() -> Response:
    account = _viber_account()
    if account is None:
        return jsonify({"status": 2, "status_message": "invalidAuthToken"})
    return jsonify(
        {
            "status": 0,
            "status_message": "ok",
            "id": f"pa:{account.key}",
            "name": account.name,
            "uri": account.platform_id.lower(),
            "category": "Companies",
            "subscribers_count": 0,
        }
    )


@bp.post(f"{VIBER_PATH}/pa/send_message")
def viber_send() -> Response:
    account = _viber_account()
    state: _State = _ext()["state"]
    number = next(state.ids)
    message_token = 6_000_000 + number
    token_field = {"message_token": message_token, "chat_hostname": "SN-CHAT-01_"}
    if account is None:
        return jsonify({"status": 2, "status_message": "invalidAuthToken", **token_field})
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not payload.get("receiver"):
        return jsonify({"status": 4, "status_message": "missingData", **token_field})
    receiver = str(payload["receiver"])
    now = _now()
    with state.lock:
        person = state.people.get((account.key, receiver))
        subscribed = bool(person and person.subscribed)
        allowed = _take_send(state, account.key)
    if not subscribed:
        return jsonify({"status": 6, "status_message": "receiverNotSubscribed", **token_field})
    if not allowed:
        return jsonify({"status": 12, "status_message": "Too many requests", **token_field})
    text = str(payload.get("text") or "")
    shown: _Media | None = None
    kind = payload.get("type")
    if kind in ("picture", "file"):
        if not payload.get("media") or (
            kind == "file" and not (payload.get("size") and payload.get("file_name"))
        ):
            return jsonify({"status": 4, "status_message": "missingData", **token_field})
        name = str(payload.get("file_name") or _url_name(str(payload["media"])))
        fetched = _fetch_media(str(payload["media"]), kind, _VIBER_MEDIA[kind], name=name)
        if isinstance(fetched, str):
            return jsonify({"status": 3, "status_message": "badData", **token_field})
        shown = fetched
        text = f"[{kind}] {name}"
    _add_line(
        account,
        receiver,
        _Line(
            "business",
            text,
            now,
            str(message_token),
            "sent",
            media_url=shown.url if shown else None,
            media_kind=shown.kind if shown else None,
        ),
    )
    _deliver_later(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        account,
        viber_event_body(
            "delivered",
            person_id=receiver,
            person_name=person.name if person else "",
            message_token=message_token,
            at=now,
        ),
    )
    return jsonify({"status": 0, "status_message": "ok", **token_field})
