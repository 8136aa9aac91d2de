"""Who is who on screen: petnames and self-chosen names instead of keys.

The API names the identities of the entries it pages out (``author_name`` and
``names``, spec/client-api.md §5a); watch events carry no names, so the
TUI keeps what pages told it and asks ``profile`` for the rest. The rule for
showing an identity is the CLI's: the owner's petname bare, else the name the
identity chose itself after ``~`` with its short key, else the short key, so
an identity calling itself "alice" never looks like the one you named alice.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Names", "short_identity"]

#: The most of a self-chosen name shown.
NAME_SHOWN = 32
#: Identities whose names are remembered; the least recently used go first.
NAMES_KEPT = 5000
#: Tags remembered for completion.
TAGS_KEPT = 2000


def short_identity(identity: str) -> str:
    """``p2ps1abcde…wxyz``: the first ten and last four characters of an identity."""
    return f"{identity[:10]}…{identity[-4:]}" if len(identity) > 16 else identity


def clean_name(name: str) -> str:
    """A self-chosen name made safe to show: no control or format characters
    (a bidi override would reorder the line), blanks collapsed, truncated."""
    spaced = "".join(" " if ch.isspace() else ch for ch in name)
    kept = " ".join("".join(c for c in spaced if unicodedata.category(c)[0] != "C").split())
    return kept if len(kept) <= NAME_SHOWN else kept[: NAME_SHOWN - 1] + "…"


class Names:
    """The names known for identities, and the tags seen, for display and completion."""

    def __init__(self, me: str = "") -> None:
        self.me = me
        self._known: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._tags: OrderedDict[str, None] = OrderedDict()

    def learn(self, identity: str, petname: str | None, profile: str | None) -> None:
        """Remember an identity's petname and profile name (either may be None)."""
        self._known[identity] = (petname or None, profile or None)
        self._known.move_to_end(identity)
        while len(self._known) > NAMES_KEPT:
            self._known.popitem(last=False)

    def learn_map(self, names: Mapping[str, Any] | None) -> None:
        """Remember a ``names`` map of the API: identity → ``{"petname", "profile"}``."""
        for identity, pair in (names or {}).items():
            if isinstance(identity, str) and isinstance(pair, Mapping):
                petname, profile = pair.get("petname"), pair.get("profile")
                self.learn(
                    identity,
                    petname if isinstance(petname, str) else None,
                    profile if isinstance(profile, str) else None,
                )

    def learn_entry(self, entry: Mapping[str, Any]) -> None:
        """Remember the names and tags an entry of a page carries."""
        self.learn_map(entry.get("names"))
        author, pair = entry.get("author"), entry.get("author_name")
        if isinstance(author, str) and isinstance(pair, Mapping):
            self.learn_map({author: pair})
        for tag in entry.get("tags") or ():
            if isinstance(tag, str):
                self._tags[tag] = None
                self._tags.move_to_end(tag)
        while len(self._tags) > TAGS_KEPT:
            self._tags.popitem(last=False)

    def knows(self, identity: str) -> bool:
        """Whether the names of ``identity`` have been learnt (even as "none")."""
        return identity in self._known

    def show(self, identity: str | None) -> str:
        """How ``identity`` appears on screen (see the module's docstring)."""
        if not identity:
            return "?"
        petname, profile = self._known.get(identity, (None, None))
        if petname:
            return petname
        shown = clean_name(profile) if profile else ""
        if shown:
            return f"~{shown} ({short_identity(identity)})"
        return short_identity(identity)

    def mention_candidates(self, prefix: str) -> list[tuple[str, str]]:
        """``(token, label)`` pairs for an ``@prefix``: petnames first, then the
        identities whose self-chosen name starts so (their token is the full key)."""
        low = prefix.lower()
        pets = sorted(p for p, _ in self._known.values() if p and p.startswith(low))
        out = [(p, f"@{p}") for p in pets]
        for identity, (petname, profile) in self._known.items():
            if not petname and profile and clean_name(profile).lower().startswith(low):
                out.append((identity, f"~{clean_name(profile)} ({short_identity(identity)})"))
        return out

    def tag_candidates(self, prefix: str) -> list[str]:
        """Tags seen that start with ``prefix`` (any case), most recent first."""
        low = prefix.casefold()
        return [t for t in reversed(self._tags) if t.casefold().startswith(low)]

    def petnames(self) -> Iterable[str]:
        """Every petname known."""
        return (p for p, _ in self._known.values() if p)
