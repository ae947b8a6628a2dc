"""The settings API the settings web resource uses: region and secret word.

GET  /api/admin/settings              admins: region, the regions, whether a word is set
PUT  /api/admin/settings/region       admins: {"region": "westeurope"}
PUT  /api/admin/settings/chat         admins: {"enabled": false} turns chat off everywhere
PUT  /api/admin/settings/masking      admins: {"rules": ["\\b(?:\\d[ -]?){13,19}\\b"]} masking
                                      rules for every widget and channel (400
                                      invalid_masking_rule names the rule RE2 refuses)
PUT  /api/admin/secret-word           admins: {"word": "..."}
POST /api/support/secret-word/check   agents and admins: {"word": "..."} -> {"match": bool}
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from connector.chat.actions import conversations
from connector.crm import org_settings
from connector.crm.masking import MAX_RULES, MaskingError
from connector.crm.secret_word import MAX_LENGTH, SecretWordError, TooManyGuesses
from connector.regions import all_regions, find_region
from connector.services import services_of
from connector.web.auth import ADMIN_ROLES, AGENT_ROLES, current_user, require_roles
from connector.web.errors import InvalidInput, RateLimited, json_body

__all__ = ["bp"]

bp = Blueprint("admin", __name__, url_prefix="/api")


class RegionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = Field(min_length=1, max_length=40)


class ChatSwitchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscribed: StrictBool


class MaskingRulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Each rule's length and syntax are checked by connector/crm/masking.py, which names it.
    rules: list[StrictStr] = Field(max_length=MAX_RULES)


class SecretWordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Longer than MAX_LENGTH so spacing can be normalised before the rule is applied.
    word: str = Field(min_length=1, max_length=4 * MAX_LENGTH)


def _client() -> Any:
    return services_of(current_app).dataverse


def _data_dir() -> Any:
    return services_of(current_app).settings.data_dir


def _parked_count() -> int:
    outbox = services_of(current_app).outbox
    counter = getattr(outbox, "parked_count", None)  # tests may run a fake outbox
    return int(counter()) if callable(counter) else 0


def _settings_body() -> dict[str, Any]:
    current = org_settings.read_org_settings(_client())
    settings = services_of(current_app).settings
    # On the embedded default every region is served by this very service.
    local_url = settings.base_url if settings.embedded else None
    regions = [find_region(r.code, local_url=local_url) or r for r in all_regions()]
    return {
        "region": current.region,
        "has_secret_word": current.has_secret_word,
        "chat_enabled": current.chat_enabled,
        "subscribed": current.subscribed,
        "masking_rules": list(current.masking_rules),
        # Chat activities the outbox could not write for good: an admin must act on them.
        "parked_writes": _parked_count(),
        "regions": [
            {"code": r.code, "name": r.name, "service_url": r.service_url} for r in regions
        ],
    }


@bp.get("/admin/settings")
@require_roles(ADMIN_ROLES)
def get_settings() -> dict[str, Any]:
    return _settings_body()


@bp.put("/admin/settings/region")
@require_roles(ADMIN_ROLES)
def put_region() -> dict[str, Any]:
    body = RegionIn.model_validate(json_body())
    try:
        org_settings.save_region(_client(), body.region)
    except ValueError as error:
        raise InvalidInput(str(error), code="unknown_region") from error
    return _settings_body()


@bp.put("/admin/settings/chat")
@require_roles(ADMIN_ROLES)
def put_chat_switch() -> dict[str, Any]:
    body = ChatSwitchIn.model_validate(json_body())
    org_settings.save_chat_enabled(_client(), body.enabled)
    _refresh_directory()
    return _settings_body()


@bp.put("/admin/settings/masking")
@require_roles(ADMIN_ROLES)
def put_masking_rules() -> dict[str, Any]:
    body = MaskingRulesIn.model_validate(json_body())
    try:
        org_settings.save_masking_rules(_client(), body.rules)
    except MaskingError as error:
        message = str(error)
        raise InvalidInput(
            message[:1].upper() + message[1:] + ".", code="invalid_masking_rule"
        ) from error
    _refresh_directory()  # this process masks with them at once, the others within 30 s
    return _settings_body()


@bp.put("/admin/settings/subscription")
@require_roles(ADMIN_ROLES)
def put_subscription() -> dict[str, Any]:
    body = SubscriptionIn.model_validate(json_body())
    org_settings.save_subscribed(_client(), body.subscribed)
    _refresh_directory()
    return _settings_body()


def _refresh_directory() -> None:
    # Widgets see the change at once on this instance (others within the cache's 30 s).
    directory = services_of(current_app).directory
    invalidate = getattr(directory, "invalidate", None)
    if invalidate is not None:
        invalidate()
    engine = services_of(current_app).engine
    if engine is not None:
        conversations.do_refresh_availability(engine)


@bp.put("/admin/secret-word")
@require_roles(ADMIN_ROLES)
def put_secret_word() -> dict[str, Any]:
    body = SecretWordIn.model_validate(json_body())
    try:
        org_settings.save_secret_word(_client(), body.word, data_dir=_data_dir())
    except SecretWordError as error:
        raise InvalidInput(str(error), code="weak_secret_word") from error
    return _settings_body()


@bp.post("/support/secret-word/check")
@require_roles(AGENT_ROLES)
def check_secret_word() -> dict[str, Any]:
    body = SecretWordIn.model_validate(json_body())
    try:
        result = org_settings.check_secret_word(
            _client(), body.word, data_dir=_data_dir(), guesser=f"user:{current_user().id}"
        )
    except TooManyGuesses as error:
        raise RateLimited(
            "Too many wrong guesses. Try again later.", retry_after_secs=error.retry_after_secs
        ) from error
    if not result.match:
        # Slow a guesser down; the answer itself stays a plain no.
        time.sleep(result.delay_secs)
    return {"match": result.match}
