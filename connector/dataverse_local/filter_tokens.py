"""The tokens of an OData `$filter`: names, punctuation and typed literals.

`tokenize(text)` reads `'text'` (quotes doubled inside), GUIDs, dates and datetimes (with
an offset, turned into UTC), integers and decimals, names (`$it`, `a.b` casts) and the
punctuation `( ) , / :`, and ends the list with an `eof` token. A character that starts
no token, an unterminated string or an impossible date raises `query.QueryError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from connector.dataverse_local.query import QueryError

__all__ = ["Token", "tokenize"]

_GUID_RE = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-])"
)
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})?)?"
    r"(?![\w.:-])"
)
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?(?![\w.])")
_IDENT_RE = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its text as written, where it starts and its value."""

    kind: str  # "ident", "string", "int", "decimal", "guid", "datetime", "date", punctuation
    text: str
    pos: int
    value: object = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    end = len(text)
    while i < end:
        char = text[i]
        if char in " \t\r\n":
            i += 1
            continue
        if char == "'":
            parts: list[str] = []
            j = i + 1
            while True:
                close = text.find("'", j)
                if close < 0:
                    raise QueryError(
                        f"There is an unterminated literal at position {end} in '{text}'."
                    )
                parts.append(text[j:close])
                if text.startswith("'", close + 1):
                    parts.append("'")
                    j = close + 2
                    continue
                break
            tokens.append(Token("string", text[i : close + 1], i, "".join(parts)))
            i = close + 1
            continue
        if char in "(),/:":
            tokens.append(Token(char, char, i))
            i += 1
            continue
        match = _GUID_RE.match(text, i)
        if match:
            tokens.append(Token("guid", match.group(), i, match.group().lower()))
            i = match.end()
            continue
        match = _DATETIME_RE.match(text, i)
        if match:
            tokens.append(_datetime_token(match, text))
            i = match.end()
            continue
        match = _NUMBER_RE.match(text, i)
        if match:
            kind = "decimal" if match.group(1) or match.group(2) else "int"
            tokens.append(Token(kind, match.group(), i))
            i = match.end()
            continue
        match = _IDENT_RE.match(text, i)
        if match:
            tokens.append(Token("ident", match.group(), i))
            i = match.end()
            continue
        raise QueryError(
            f"Syntax error: character '{char}' is not valid at position {i} in '{text}'."
        )
    tokens.append(Token("eof", "", end))
    return tokens


def _datetime_token(match: re.Match[str], text: str) -> Token:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    pos = match.start()
    try:
        if hour is None:
            return Token("date", match.group(), pos, date(int(year), int(month), int(day)))
        offset = timedelta()
        if zone and zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=UTC,
        )
        return Token("datetime", match.group(), pos, moment - offset)
    except (ValueError, OverflowError):
        edm = "Edm.Date" if hour is None else "Edm.DateTimeOffset"
        raise QueryError(
            f"Unrecognized '{edm}' literal '{match.group()}' at '{pos}' in '{text}'."
        ) from None
