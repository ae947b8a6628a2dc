"""Snippets: `#name#` in an agent's message becomes the snippet's text.

Names match case-insensitively; an unknown `#name#` stays as typed, so a message with a
literal `#hashtag#` is not mangled. The expansion is done once, on the server, before the
message is stored: the visitor, the transcript and the activity all see the same text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from connector.chat.ports import SnippetLike

__all__ = ["expand_snippets"]

# A snippet name: no spaces and no '#', at most 100 characters (the column's length).
_SNIPPET_REF = re.compile(r"#([^#\s]{1,100})#")


def expand_snippets(text: str, snippets: Mapping[str, SnippetLike]) -> str:
    """`text` with every `#name#` of a known snippet replaced by the snippet's text.

    `snippets` is keyed by lower-case name (as `Directory.snippets()` returns it). The
    replacement text is not scanned again, so snippets cannot expand recursively.
    """
    if "#" not in text or not snippets:
        return text

    def replace(match: re.Match[str]) -> str:
        snippet = snippets.get(match.group(1).lower())
        return snippet.text if snippet is not None else match.group(0)

    return _SNIPPET_REF.sub(replace, text)
