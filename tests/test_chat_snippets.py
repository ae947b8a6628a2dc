"""Snippet expansion in agent messages."""

from __future__ import annotations

from connector.chat.snippets import expand_snippets
from connector.crm.directory import SnippetRecord

SNIPPETS = {
    "hello": SnippetRecord("Hello", "Hello! How can I help?"),
    "bye": SnippetRecord("bye", "Goodbye, #hello#"),
}


def test_a_known_name_becomes_its_text_whatever_its_case() -> None:
    assert expand_snippets("#hello#", SNIPPETS) == "Hello! How can I help?"
    assert expand_snippets("Hi. #HeLLo# Ann", SNIPPETS) == "Hi. Hello! How can I help? Ann"


def test_unknown_names_and_plain_hashes_stay_as_typed() -> None:
    assert expand_snippets("#nosuch# and #1 and a#b", SNIPPETS) == "#nosuch# and #1 and a#b"
    assert expand_snippets("# hello #", SNIPPETS) == "# hello #"


def test_several_snippets_expand_but_never_recursively() -> None:
    assert expand_snippets("#hello# #bye#", SNIPPETS) == ("Hello! How can I help? Goodbye, #hello#")
