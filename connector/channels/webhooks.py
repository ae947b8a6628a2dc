"""The platforms' webhooks: one URL per channel account.

Routes::

    GET  /channels/<key>/webhook   Meta's verification handshake: hub.mode=subscribe,
                                   hub.verify_token, hub.challenge -> 200 the challenge
    POST /channels/<key>/webhook   Meta (X-Hub-Signature-256) or Viber
                                   (X-Viber-Content-Signature) events -> 200 {"accepted"}
                                   (Viber conversation_started: the welcome message)
    GET  /channels/files/<token>/<name>   an agent's file, fetched by the platform from
                                   the signed link the send call named (files.py)

Refusals (JSON `{"error": {"code", "message"}}`, each logged with the account key and the
caller's address, never the body or the secrets)::

    401 missing_signature / bad_signature    unsigned or wrongly signed
    403 bad_verify_token                     handshake with the wrong verify token
    404 unknown_account                      no enabled account with that key
    411 length_required / 413 body_too_large the body is capped per platform
    400 invalid_input                        not JSON, or not the platform's shape
    503 busy                                 the queue is full: the platform retries

The view checks and parses; the work is done after the answer (`ChannelIntake`).
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, jsonify, request

from connector import json_input
from connector.chat.actions.attachments import access_linked_file
from connector.chat.errors import ChatError
from connector.services import services_of
from connector.web.attachments import file_response
from connector.web.errors import ApiError, Forbidden, InvalidInput, NotFound

from .files import InvalidFileLink
from .intake import QueueFull
from .meta_payloads import PayloadError, parse_meta_webhook
from .model import ChannelAccount, ChannelType, InboundEvent
from .shared import channels_of
from .signatures import (
    META_SIGNATURE_HEADER,
    VIBER_SIGNATURE_HEADER,
    check_meta_signature,
    check_verify_token,
    check_viber_signature,
)
from .viber_payloads import parse_viber_callback, welcome_answer

__all__ = ["META_MAX_BODY_BYTES", "VIBER_MAX_BODY_BYTES", "bp", "webhook_path"]

log = logging.getLogger(__name__)

bp = Blueprint("channel_webhooks", __name__)

# Meta batches up to 1,000 updates per call; a few hundred bytes each stays well inside.
META_MAX_BODY_BYTES = 512 * 1024
# Viber caps its JSON at 30 KB; twice that leaves room and refuses anything else.
VIBER_MAX_BODY_BYTES = 60 * 1024
# Meta's challenge is a number; anything else is not Meta and is not echoed back.
_CHALLENGE = re.compile(r"^[0-9A-Za-z_-]{1,128}$")


class BadSignature(ApiError):
    code = "bad_signature"
    http_status = 401


class LengthRequired(ApiError):
    code = "length_required"
    http_status = 411


class BodyTooLarge(ApiError):
    code = "body_too_large"
    http_status = 413


class Busy(ApiError):
    code = "busy"
    http_status = 503


def webhook_path(account: ChannelAccount) -> str:
    """The path to paste into the platform's console (after the service's address)."""
    return f"/channels/{account.key}/webhook"


def _account(key: str) -> ChannelAccount:
    account = channels_of(current_app).accounts.get(key) if len(key) <= 64 else None
    if account is None or not account.enabled:
        raise NotFound("No such channel account.", code="unknown_account")
    return account


def _refuse(account: ChannelAccount, error: ApiError) -> ApiError:
    log.warning(
        "channel webhook refused: %s",
        error.code,
        extra={
            "account": account.key,
            "channel": account.channel.value,
            "remote": request.remote_addr,
        },
    )
    return error


@bp.get("/channels/<key>/webhook")
def verify(key: str) -> Response:
    account = _account(key)
    if not account.channel.is_meta:
        raise NotFound("Viber has no verification handshake.")
    token = account.verify_token.get_secret_value() if account.verify_token else ""
    mode = request.args.get("hub.mode")
    challenge = request.args.get("hub.challenge", "")
    if mode != "subscribe" or not _CHALLENGE.match(challenge):
        raise InvalidInput("hub.mode must be subscribe, with a hub.challenge.")
    if not check_verify_token(token, request.args.get("hub.verify_token")):
        raise _refuse(account, Forbidden("Wrong verify token.", code="bad_verify_token"))
    return Response(challenge, mimetype="text/plain")


@bp.post("/channels/<key>/webhook")
def receive(key: str) -> Response:
    account = _account(key)
    limit = META_MAX_BODY_BYTES if account.channel.is_meta else VIBER_MAX_BODY_BYTES
    length = request.content_length
    if length is None:
        raise LengthRequired("Send a Content-Length.")
    if length > limit:
        raise _refuse(account, BodyTooLarge(f"Bodies are limited to {limit} bytes."))
    body = request.get_data(cache=False)
    if account.channel.is_meta:
        secret = account.app_secret.get_secret_value() if account.app_secret else ""
        header = request.headers.get(META_SIGNATURE_HEADER)
        signed = check_meta_signature(secret, body, header)
    else:
        secret = account.auth_token.get_secret_value() if account.auth_token else ""
        header = request.headers.get(VIBER_SIGNATURE_HEADER)
        signed = check_viber_signature(secret, body, header)
    if not header:
        raise _refuse(account, BadSignature("The call is not signed.", code="missing_signature"))
    if not signed:
        raise _refuse(account, BadSignature("The signature does not match the body."))
    events = _parse(account, body)
    try:
        accepted = channels_of(current_app).intake.do_accept(account, events)
    except QueueFull:
        raise Busy("Too much waiting; call again shortly.") from None
    welcome = welcome_answer(account, events)
    if welcome is not None:
        # Viber reads the answer's body as the message to show the person.
        return jsonify(welcome)
    return jsonify({"accepted": accepted, "events": len(events)})


def _parse(account: ChannelAccount, body: bytes) -> list[InboundEvent]:
    try:
        payload = json_input.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The body is not valid JSON.") from None
    try:
        if account.channel is ChannelType.VIBER:
            return parse_viber_callback(account, payload)
        return parse_meta_webhook(account, payload)
    except PayloadError as error:
        raise InvalidInput(f"Not a {account.channel} webhook: {error}") from None


@bp.get("/channels/files/<token>/<name>")
def linked_file(token: str, name: str) -> Response:
    """The platform fetches an agent's file: the signed, short-lived link is the only
    credential (no record id is); 404 for anything else, as for a file that is gone."""
    channels = channels_of(current_app)
    try:
        conversation_id, attachment_id = channels.bridge.file_links.read(token)
    except InvalidFileLink:
        raise NotFound("There is no such file.") from None
    try:
        stored = access_linked_file(
            services_of(current_app).engine,
            conversation_id=conversation_id,
            attachment_id=attachment_id,
        )
    except ChatError:
        raise NotFound("There is no such file.") from None
    return file_response(stored)
