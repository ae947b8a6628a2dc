"""Where the service finds its channel accounts by webhook key.

`ChannelAccounts` is the interface; `StaticAccounts` holds a fixed set (tests, and the
demo accounts of the embedded default). Reading them from a Dataverse table is the next
step (docs/channels.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Protocol

from pydantic import SecretStr

from .model import ChannelAccount, ChannelType

__all__ = ["ChannelAccounts", "StaticAccounts", "demo_accounts"]


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


def _secret() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(24))


def demo_accounts() -> StaticAccounts:
    """One account per channel with fresh secrets: the simulator and the service share
    them in one process, so nothing guessable is ever a credential."""
    demo = [
        (ChannelType.MESSENGER, "demo-messenger", "Contoso on Messenger", "110000000000001"),
        (ChannelType.INSTAGRAM, "demo-instagram", "@contoso", "17840000000000001"),
        (ChannelType.WHATSAPP, "demo-whatsapp", "Contoso +1 555 0100", "106540352242922"),
        (ChannelType.VIBER, "demo-viber", "Contoso bot", "Contoso"),
    ]
    accounts = []
    for channel, key, name, platform_id in demo:
        if channel is ChannelType.VIBER:
            accounts.append(
                ChannelAccount(
                    key=key,
                    channel=channel,
                    name=name,
                    platform_id=platform_id,
                    auth_token=_secret(),
                )
            )
        else:
            accounts.append(
                ChannelAccount(
                    key=key,
                    channel=channel,
                    name=name,
                    platform_id=platform_id,
                    access_token=_secret(),
                    app_secret=_secret(),
                    verify_token=_secret(),
                )
            )
    return StaticAccounts(accounts)
