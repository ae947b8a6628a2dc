"""The organisation's CRM Chat settings record: hosting region, the secret word's hash, and
the organisation-wide chat switch (`crmchat_chatenabled`, on by default) and the subscription
state (`crmchat_subscribed`, on by default: unsubscribing stops chat everywhere and deletes
nothing).

There is exactly one settings record. It lives at a fixed GUID and is written by upsert, so
two admins saving at once, or a retried save, can never create a second one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connector.crm import tables
from connector.crm.masking import check_rules, stored_rules
from connector.crm.secret_word import (
    GuessLimiter,
    hash_secret_word,
    verify_secret_word,
)
from connector.dataverse import DataverseClient, NotFound
from connector.regions import Region, find_region

__all__ = [
    "SETTINGS_ID",
    "CheckResult",
    "OrgSettings",
    "check_secret_word",
    "read_org_settings",
    "save_chat_enabled",
    "save_masking_rules",
    "save_region",
    "save_secret_word",
    "save_subscribed",
]

SETTINGS_SET = tables.SETTINGS
SETTINGS_ID = tables.SETTINGS_ID
SETTINGS_NAME = "CRM Chat settings"
DEFAULT_REGION = "centralus"
# The limiter's subject prefix (one secret word per organisation), then who is guessing.
SECRET_WORD_SUBJECT = "org-secret-word"


@dataclass(frozen=True)
class OrgSettings:
    region: str
    has_secret_word: bool
    secret_word_hash: str | None = None
    chat_enabled: bool = True
    subscribed: bool = True
    # Masking rules for every widget and channel (connector/crm/masking.py).
    masking_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    match: bool
    # How long to hold a "no" back: wrong guesses get slower the more there are.
    delay_secs: float = 0.0


def _limiter(data_dir: Path) -> GuessLimiter:
    return GuessLimiter(data_dir / "guesses.sqlite")


def read_org_settings(client: DataverseClient) -> OrgSettings:
    """The settings record, or the defaults when none was saved yet."""
    try:
        record = client.retrieve(
            SETTINGS_SET,
            SETTINGS_ID,
            select=[
                "crmchat_region",
                "crmchat_secretwordhash",
                "crmchat_chatenabled",
                "crmchat_subscribed",
                "crmchat_maskingrules",
            ],
        )
    except NotFound:
        return OrgSettings(region=DEFAULT_REGION, has_secret_word=False)
    stored_hash = record.get("crmchat_secretwordhash") or None
    return OrgSettings(
        region=record.get("crmchat_region") or DEFAULT_REGION,
        has_secret_word=stored_hash is not None,
        secret_word_hash=stored_hash,
        chat_enabled=record.get("crmchat_chatenabled") is not False,
        subscribed=record.get("crmchat_subscribed") is not False,
        masking_rules=stored_rules(record.get("crmchat_maskingrules")),
    )


def _save(client: DataverseClient, fields: dict[str, object]) -> None:
    client.upsert(SETTINGS_SET, SETTINGS_ID, {"crmchat_name": SETTINGS_NAME, **fields})


def save_region(client: DataverseClient, code: str) -> Region:
    """Choose the hosting region. Raises ValueError for a code that is not one of the four."""
    region = find_region(code)
    if region is None:
        raise ValueError(f"unknown region {code!r}; see `crmchat region list`")
    _save(client, {"crmchat_region": region.code})
    return region


def save_chat_enabled(client: DataverseClient, enabled: bool) -> None:
    """Turn chat on or off for every widget of the organisation."""
    _save(client, {"crmchat_chatenabled": bool(enabled)})


def save_subscribed(client: DataverseClient, subscribed: bool) -> None:
    """Subscribe or unsubscribe the organisation. Only this flag changes: every record stays."""
    _save(client, {"crmchat_subscribed": bool(subscribed)})


def save_masking_rules(client: DataverseClient, rules: Sequence[str]) -> tuple[str, ...]:
    """Set the organisation's masking rules (an empty list: none). Raises MaskingError
    (a ValueError naming the rule) for a rule RE2 refuses or one too many; nothing is saved
    then."""
    checked = check_rules(rules)
    _save(client, {"crmchat_maskingrules": json.dumps(list(checked))})
    return checked


def save_secret_word(client: DataverseClient, word: str, *, data_dir: Path) -> None:
    """Store a new secret word as a salted slow hash; forgets earlier wrong guesses.

    Raises SecretWordError when the word breaks the rules (nothing is saved then).
    """
    _save(client, {"crmchat_secretwordhash": hash_secret_word(word)})
    _limiter(data_dir).clear()


def check_secret_word(
    client: DataverseClient, word: str, *, data_dir: Path, guesser: str
) -> CheckResult:
    """Does `word` match the organisation's secret word? Only yes or no.

    `guesser` names who is guessing (`"user:<systemuserid>"`, `"cli:<account>"`): wrong
    guesses lock that guesser only. The guess takes its place in the window before the
    word is checked, so parallel guesses cannot slip past the limit. With no word set,
    every answer is no. Raises TooManyGuesses while locked.
    """
    limiter = _limiter(data_dir)
    subject = f"{SECRET_WORD_SUBJECT}:{guesser}"
    guess = limiter.begin(subject)
    try:
        stored = read_org_settings(client).secret_word_hash
        matched = stored is not None and verify_secret_word(word, stored)
    except BaseException:
        limiter.forgive(guess)  # not checked: a Dataverse failure is no wrong guess
        raise
    if matched:
        limiter.forgive(guess)
        return CheckResult(match=True)
    return CheckResult(match=False, delay_secs=limiter.record_wrong(subject, guess))
