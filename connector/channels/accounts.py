"""Where the service finds its channel accounts by webhook key.

`ChannelAccounts` is the interface. `DataverseAccounts` reads the active rows of
`crmchat_channelaccount` (the credentials are secured columns the service's application
user reads through the CRM Chat Secrets profile); the key in the webhook URL is the row's
id. `StaticAccounts` holds a fixed set, and `demo_accounts()` one account per channel with
fresh secrets (unit tests, the bench); the running service's demo accounts are rows seeded
by `connector.demo`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pydantic import SecretStr, ValidationError

from connector.dataverse.odata import eq

from .model import ChannelAccount, ChannelType

__all__ = [
    "ACCOUNTS_SET",
    "CHANNEL_TYPE_VALUES",
    "ChannelAccounts",
    "DataverseAccounts",
    "StaticAccounts",
    "account_from_row",
    "demo_accounts",
]

log = logging.getLogger(__name__)

ACCOUNTS_SET = "crmchat_channelaccounts"
# The choice values of crmchat_channeltype (solution/customizations.xml).
CHANNEL_TYPE_VALUES: dict[int, ChannelType] = {
    100000000: ChannelType.MESSENGER,
    100000001: ChannelType.INSTAGRAM,
    100000002: ChannelType.WHATSAPP,
    100000003: ChannelType.VIBER,
}
_COLUMNS = (
    "crmchat_channelaccountid",
    "crmchat_name",
    "crmchat_channeltype",
    "crmchat_platformid",
    "crmchat_enabled",
    "_crmchat_topicid_value",
    "crmchat_accesstoken",
    "crmchat_appsecret",
    "crmchat_verifytoken",
    "crmchat_authtoken",
    "crmchat_welcomemessage",
    "crmchat_businessaccountid",
)
# An admin's change (a new account, a rotated token) is seen within this time.
REFRESH_SECS = 30.0
# A webhook for a key not in the snapshot re-reads the table at most this often, so
# calls with made-up keys cannot turn into a Dataverse read each.
MISS_REFRESH_SECS = 5.0


class ChannelAccounts(Protocol):
    def get(self, key: str) -> ChannelAccount | None: ...

    def all(self) -> list[ChannelAccount]: ...


class StaticAccounts:
    def __init__(self, accounts: Iterable[ChannelAccount]) -> None:
        self._by_key = {account.key: account for account in accounts}

    def get(self, key: str) -> ChannelAccount | None:
        return self._by_key.get(key)

    def all(self) -> list[ChannelAccount]:
        return list(self._by_key.values())


def _secret(row: dict[str, Any], column: str) -> SecretStr | None:
    value = row.get(column)
    return SecretStr(value) if isinstance(value, str) and value else None


def account_from_row(row: dict[str, Any]) -> ChannelAccount | None:
    """The account a `crmchat_channelaccount` row describes; None (logged) for a row an
    admin has not finished (no channel type, no platform id)."""
    channel = CHANNEL_TYPE_VALUES.get(row.get("crmchat_channeltype"))  # type: ignore[arg-type]
    key = str(row.get("crmchat_channelaccountid") or "").lower()
    topic = row.get("_crmchat_topicid_value")
    try:
        if channel is None:
            raise ValueError("no channel type")
        return ChannelAccount(
            key=key,
            channel=channel,
            name=str(row.get("crmchat_name") or channel.value),
            platform_id=str(row.get("crmchat_platformid") or ""),
            topic_id=str(topic).lower() if topic else None,
            # The column's default is Yes; an unset value means the admin never said no.
            enabled=row.get("crmchat_enabled") is not False,
            access_token=_secret(row, "crmchat_accesstoken"),
            app_secret=_secret(row, "crmchat_appsecret"),
            verify_token=_secret(row, "crmchat_verifytoken"),
            auth_token=_secret(row, "crmchat_authtoken"),
            welcome_text=str(row.get("crmchat_welcomemessage") or "").strip() or None,
            business_account_id=str(row.get("crmchat_businessaccountid") or "").strip() or None,
        )
    except (ValueError, ValidationError):
        log.warning("channel account %s is incomplete; ignored", key)
        return None


class DataverseAccounts:
    """The active channel accounts in Dataverse, re-read every REFRESH_SECS."""

    def __init__(
        self,
        client: Any,
        *,
        refresh_secs: float = REFRESH_SECS,
        miss_refresh_secs: float = MISS_REFRESH_SECS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._refresh = refresh_secs
        self._miss_refresh = miss_refresh_secs
        self._clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[str, ChannelAccount] = {}
        self._read_at: float | None = None

    def _read(self) -> None:
        rows = self._client.list(ACCOUNTS_SET, select=list(_COLUMNS), filter=eq("statecode", 0))
        found = (account_from_row(row) for row in rows)
        self._by_key = {account.key: account for account in found if account is not None}
        self._read_at = self._clock()

    def _fresh(self, *, max_age: float) -> dict[str, ChannelAccount]:
        with self._lock:
            if self._read_at is None or self._clock() - self._read_at >= max_age:
                self._read()
            return self._by_key

    def get(self, key: str) -> ChannelAccount | None:
        key = key.lower()
        found = self._fresh(max_age=self._refresh).get(key)
        if found is None:
            found = self._fresh(max_age=self._miss_refresh).get(key)
        return found

    def all(self) -> list[ChannelAccount]:
        return list(self._fresh(max_age=self._refresh).values())


def _fresh_secret() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(24))


def demo_accounts() -> StaticAccounts:
    """One account per channel (`demo-messenger`, ...) with fresh secrets, for tests."""
    demo = [
        (ChannelType.MESSENGER, "demo-messenger", "Contoso on Messenger", "110000000000001"),
        (ChannelType.INSTAGRAM, "demo-instagram", "@contoso", "17840000000000001"),
        (ChannelType.WHATSAPP, "demo-whatsapp", "Contoso +1 555 0100", "106540352242922"),
        (ChannelType.VIBER, "demo-viber", "Contoso bot", "Contoso"),
    ]
    accounts = []
    for channel, key, name, platform_id in demo:
        viber = channel is ChannelType.VIBER
        accounts.append(
            ChannelAccount(
                key=key,
                channel=channel,
                name=name,
                platform_id=platform_id,
                auth_token=_fresh_secret() if viber else None,
                access_token=None if viber else _fresh_secret(),
                app_secret=None if viber else _fresh_secret(),
                verify_token=None if viber else _fresh_secret(),
            )
        )
    return StaticAccounts(accounts)
