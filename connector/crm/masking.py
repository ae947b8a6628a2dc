"""Masking rules: regular expressions an admin sets for the whole organisation (the
settings record's `crmchat_maskingrules`, on the settings page; web chats and messaging
channels alike) and per widget (design `privacy.masking_rules`), e.g. card numbers; what
they match is replaced by `MASK_CHAR`s before a visitor's or a channel user's message is
stored (the live state, the transcript in the chat activity) or shown to agents. The
visitor's own bubble shows what they typed.

```python
check_pattern(r"\\b(?:\\d[ -]?){13,19}\\b")           # MaskingError if refused
mask_text(("\\\\d{4}",), "pin 1234")                   # "pin ****"
```

The engine is RE2 (`google-re2`, Google's own binding): it matches in time linear in the
text for every pattern it accepts, so no admin's pattern can stall the service
("catastrophic backtracking", e.g. ``(a+)+$``), and it refuses what cannot be matched
that way (backreferences, lookarounds). The `regex` library's `timeout` would only stop a
runaway match after the fact, and then leave the message unmasked or unsent; RE2 never
starts one. Each pattern is also capped in length and in compiled size
(`MAX_PROGRAM_MEMORY_BYTES`), so a pattern like ``a{1000}{1000}`` is refused when saved.

Errors::

    MaskingError (ValueError)    a pattern is empty, too long, or not accepted by RE2
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import re2

__all__ = [
    "MASK_CHAR",
    "MAX_PATTERN_CHARS",
    "MAX_PROGRAM_MEMORY_BYTES",
    "MAX_RULES",
    "MaskingError",
    "check_pattern",
    "check_rules",
    "mask_text",
    "masked_text",
    "stored_rules",
]

log = logging.getLogger(__name__)

# A match keeps its length (a reader sees that something was there) and nothing else.
MASK_CHAR = "*"
# Enough for a card number, an IBAN or a national id pattern with alternatives; a longer
# pattern is more likely a mistake than a rule.
MAX_PATTERN_CHARS = 500
# Rules per widget: each is one pass over every message.
MAX_RULES = 20
# RE2's budget for one compiled pattern; past it RE2 refuses the pattern at compile time
# (its default is 8 MiB; a card-number rule needs a few KiB).
MAX_PROGRAM_MEMORY_BYTES = 1 << 20


class MaskingError(ValueError):
    """A masking pattern is refused; the message says why."""


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_MEMORY_BYTES
    options.log_errors = False  # a refused pattern is the admin's error, not the log's
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else "refused"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise MaskingError(f"the pattern is not accepted: {reason}") from None


def check_pattern(pattern: str) -> str:
    """`pattern` when it is a masking rule RE2 accepts; raises MaskingError otherwise."""
    if not pattern:
        raise MaskingError("a masking pattern may not be empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise MaskingError(f"a masking pattern has at most {MAX_PATTERN_CHARS} characters")
    compiled = _compiled(pattern)
    if compiled.search("") is not None:
        # A pattern matching nothing at all would "mask" between every character.
        raise MaskingError("a masking pattern must not match empty text")
    return pattern


def _stars(match: Any) -> str:
    return MASK_CHAR * len(match.group(0))


def mask_text(patterns: Sequence[str], text: str) -> str:
    """`text` with every match of each pattern replaced by `MASK_CHAR`s, in order.

    The patterns are the checked ones of a design; raises MaskingError for one that is not.
    """
    for pattern in patterns:
        text = _compiled(check_pattern(pattern)).sub(_stars, text)
    return text


def check_rules(patterns: Sequence[str]) -> tuple[str, ...]:
    """`patterns` as a rule list (each checked, at most MAX_RULES); raises MaskingError
    naming the first refused one by its place (1-based)."""
    if len(patterns) > MAX_RULES:
        raise MaskingError(f"at most {MAX_RULES} masking rules")
    for place, pattern in enumerate(patterns, start=1):
        try:
            check_pattern(pattern)
        except MaskingError as error:
            raise MaskingError(f"rule {place}: {error}") from None
    return tuple(patterns)


def stored_rules(value: Any) -> tuple[str, ...]:
    """The organisation's rules from the settings record's column (a JSON list); a rule
    that no longer passes `check_pattern` (the column edited by hand) is left out, logged."""
    if not isinstance(value, str) or not value.strip():
        return ()
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list):
        log.warning("the organisation's masking rules are not a JSON list; none applied")
        return ()
    rules = []
    for pattern in parsed:
        try:
            rules.append(check_pattern(pattern if isinstance(pattern, str) else ""))
        except MaskingError as error:
            log.warning("an organisation masking rule is left out: %s", error)
    return tuple(rules[:MAX_RULES])


def masked_text(design: Any, text: str, *, org_rules: Sequence[str] = ()) -> str:
    """`text` as agents and the transcript see it: the organisation's rules, then those of
    the widget's `design` (None for a channel message, which has no widget)."""
    privacy = getattr(design, "privacy", None)
    patterns = (*org_rules, *getattr(privacy, "masking_rules", ()))
    return mask_text(patterns, text) if patterns else text
