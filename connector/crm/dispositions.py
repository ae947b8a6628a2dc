"""A topic's dispositions: the list an agent picks one from when closing a chat.

Admins write them on the topic (`crmchat_topic.crmchat_dispositions`, a multiple-lines
text column, one disposition per line), the way labels are plain rows an admin edits: no
option set to republish when the list changes. The chosen one is stored on the chat
activity (`crmchat_chat.crmchat_disposition`, 100 characters).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MAX_DISPOSITION_CHARS", "MAX_DISPOSITIONS", "merged_dispositions", "parse_dispositions"]

# The width of `crmchat_chat.crmchat_disposition` (solution/customizations.xml).
MAX_DISPOSITION_CHARS = 100
# A closing menu longer than this is no longer a choice an agent makes in a second.
MAX_DISPOSITIONS = 50


def parse_dispositions(text: str | None) -> tuple[str, ...]:
    """The topic column's lines, trimmed, blank and repeated lines dropped, in order.

    A line longer than the chat column would hold is cut, so every listed choice can be
    stored as shown; lines past `MAX_DISPOSITIONS` are ignored.
    """
    seen: dict[str, None] = {}
    for line in (text or "").splitlines():
        name = " ".join(line.split())[:MAX_DISPOSITION_CHARS].strip()
        if name:
            seen.setdefault(name, None)
        if len(seen) == MAX_DISPOSITIONS:
            break
    return tuple(seen)


def merged_dispositions(lists: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    """Several topics' lists as one (a chat offered under all its widget's topics)."""
    seen: dict[str, None] = {}
    for names in lists:
        for name in names:
            seen.setdefault(name, None)
    return tuple(seen)[:MAX_DISPOSITIONS]
