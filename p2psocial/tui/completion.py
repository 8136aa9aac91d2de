"""Completing ``@names`` and ``#tags`` while a post is typed.

Only the reference being typed at the end of the text is completed. A
reference starts at ``@`` or ``#`` at the start of the text or after a
character that cannot be part of a word or an address (the rule the daemon
reads mentions and tags by, spec/client-api.md §5a), so ``ada@example.org``
offers nothing.
"""

from __future__ import annotations

import re

from textual.suggester import Suggester

from .names import Names

__all__ = ["ReferenceSuggester", "candidates", "reference_at_end"]

#: Characters after which ``@`` or ``#`` does not start a reference.
_GLUE = set("_.-@#/&:+=~\\")
_MENTION = re.compile(r"[A-Za-z0-9_.\-]*")
_TAG = re.compile(r"\w[\w\-]*", re.UNICODE)


def reference_at_end(text: str) -> tuple[str, str] | None:
    """The reference being typed at the end of ``text``: ``("@", "ali")``, ``("#", "gar")``.

    Returns None when the text does not end in one.
    """
    for i in range(len(text) - 1, -1, -1):
        ch = text[i]
        if ch in "@#":
            before = text[i - 1] if i else " "
            if before.isalnum() or before in _GLUE:
                return None
            rest = text[i + 1 :]
            pattern = _MENTION if ch == "@" else _TAG
            if rest and not pattern.fullmatch(rest):
                return None
            return ch, rest
        if ch.isspace():
            return None
    return None


def candidates(text: str, names: Names, limit: int = 8) -> list[tuple[str, str]]:
    """What the end of ``text`` may be completed to: ``(replacement text, label)`` pairs."""
    ref = reference_at_end(text)
    if ref is None:
        return []
    sigil, prefix = ref
    head = text[: len(text) - len(prefix)]
    if sigil == "@":
        found = names.mention_candidates(prefix)
    else:
        found = [(t, f"#{t}") for t in names.tag_candidates(prefix)]
    return [(head + token, label) for token, label in found[:limit] if token != prefix]


class ReferenceSuggester(Suggester):
    """An Input suggester offering the first completion of the reference at the end."""

    def __init__(self, names: Names) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.names = names

    async def get_suggestion(self, value: str) -> str | None:
        """The whole value, its last reference completed; None when there is none."""
        found = candidates(value, self.names, limit=1)
        return found[0][0] if found else None
