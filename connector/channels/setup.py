"""The channel setup page's API: what to paste into each platform, and "test connection".

Routes (CRM Chat administrators; JSON errors as everywhere)::

    GET  /api/admin/channels              [{"id","name","channel","platform_id","enabled",
                                            "webhook_url"}]
    POST /api/admin/channels/<id>/test    {"ok": true, "name"} | {"ok": false,
                                            "error": {"code", "message"}}
    POST /api/admin/channels/<id>/templates/sync   WhatsApp: the templates from Meta into
                                            crmchat_whatsapptemplate -> {"ok": true,
                                            "synced", "removed"} | {"ok": false, "error"}

The verify token is not served here: the page reads it through Xrm.WebApi, so column
security decides who sees it (an administrator without the CRM Chat Secrets profile reads
null, as in Dataverse). "Test connection" calls the platform with the account's token (a
Page / Instagram / phone-number node read, Viber's get_account_info; the simulator on the
embedded default) and reports what the platform said; a refusal is a result (200), not
an error of this call.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from connector.dataverse import DataverseError
from connector.services import services_of
from connector.web.auth import ADMIN_ROLES, require_roles
from connector.web.errors import CrmError, InvalidInput, NotFound

from .errors import ChannelError
from .model import ChannelAccount, ChannelType
from .shared import channels_of
from .templates import do_sync_templates
from .webhooks import webhook_path

__all__ = ["bp"]

bp = Blueprint("channel_setup", __name__, url_prefix="/api/admin/channels")


def _view(account: ChannelAccount) -> dict[str, Any]:
    base = services_of(current_app).settings.base_url
    return {
        "id": account.key,
        "name": account.name,
        "channel": account.channel.value,
        "platform_id": account.platform_id,
        "enabled": account.enabled,
        "webhook_url": base + webhook_path(account),
    }


@bp.get("")
@require_roles(ADMIN_ROLES)
def list_accounts() -> dict[str, Any]:
    accounts = sorted(channels_of(current_app).accounts.all(), key=lambda a: a.name.casefold())
    return {"accounts": [_view(a) for a in accounts]}


def _known(key: str) -> ChannelAccount:
    account = channels_of(current_app).accounts.get(key) if len(key) <= 64 else None
    if account is None:
        raise NotFound("No such channel account.", code="unknown_account")
    return account


@bp.post("/<key>/test")
@require_roles(ADMIN_ROLES)
def test_connection(key: str) -> dict[str, Any]:
    channels = channels_of(current_app)
    account = _known(key)
    client = channels.clients.meta if account.channel.is_meta else channels.clients.viber
    try:
        name = client.check_account(account)
    except ChannelError as error:
        return {"ok": False, "error": {"code": error.api_code, "message": error.message}}
    return {"ok": True, "name": name}


@bp.post("/<key>/templates/sync")
@require_roles(ADMIN_ROLES)
def sync_templates(key: str) -> dict[str, Any]:
    """Copy the WhatsApp Business Account's templates into CRM (as the service user)."""
    account = _known(key)
    if account.channel is not ChannelType.WHATSAPP:
        raise InvalidInput("Only a WhatsApp account has message templates.")
    client = services_of(current_app).dataverse
    try:
        counts = do_sync_templates(client, channels_of(current_app).clients.meta, account)
    except ChannelError as error:
        return {"ok": False, "error": {"code": error.api_code, "message": error.message}}
    except DataverseError as error:
        raise CrmError.from_dataverse(error, doing="the templates") from error
    return {"ok": True, **counts}
