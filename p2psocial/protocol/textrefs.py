"""Mentions and tags written in a post's text, and the syntax of petnames.

Theory. A post's text may name people and topics inline: ``@alice`` (a
petname), ``@p2ps1…`` (an identity) and ``#rust`` (a tag). This module finds
those references; it does not resolve them (a petname means something only
on the node that holds it), so its answer is plain strings.

Token rules, exactly:

* A reference starts at ``@`` or ``#`` that begins the text or follows a
  character that is none of: a letter or digit (any script), ``_ . - @ # / &
  : + = ~ \\``. So ``mail@example.com``, ``a#b``, ``https://x.org/#top`` and
  ``&#39;`` hold no reference, while ``(@alice)`` and ``"#rust"`` do.
* A mention is ``@`` then ASCII letters, digits, ``_ . -``; trailing ``_ . -``
  are not part of it (``@alice.`` ends a sentence). Its text is lowercased.
  If it starts with ``p2ps1`` it is an identity candidate; otherwise it must be
  a valid petname (:func:`petname_problem`) or it is not a reference.
* A tag is ``#`` then a letter or digit (any script), then letters, digits,
  combining marks, ``_`` and ``-``; trailing
  ``_ -`` are not part of it. A tag of digits only (``#1``, an issue number)
  or longer than ``MAX_TAG_CHARS`` is not a reference. Tags keep the spelling
  written (NFC-normalised); two tags are the same tag when their casefolds
  are equal, and the first spelling is kept.
* Each kind of reference is deduplicated, in order of first appearance, and
  at most ``max_mentions`` / ``max_tags`` are returned; how many distinct
  ones did not fit is counted, never silently lost.

Any ``str`` is valid input and nothing here raises; the work is linear in the
text's length.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .kinds import MAX_MENTIONS, MAX_TAG_CHARS, MAX_TAGS

__all__ = [
    "IDENTITY_PREFIX",
    "MAX_PETNAME_CHARS",
    "TextRefs",
    "find_text_refs",
    "petname_problem",
    "tag_key",
]

#: The text form of every identity starts so; no petname may.
IDENTITY_PREFIX = "p2ps1"
#: The longest petname.
MAX_PETNAME_CHARS = 32

# 1 to 32 of [a-z0-9_.-], starting and ending with a letter or digit (so an
# inline ``@alice.`` at the end of a sentence still names alice).
_PETNAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,30}[a-z0-9])?\Z")
# A reference may not follow these (besides letters and digits).
_GLUE = frozenset("_.-@#/&:+=~\\")
_MENTION_RE = re.compile(r"[A-Za-z0-9_.-]+")
# The longest mention token looked at: an identity is 63 characters.
_MAX_MENTION_TOKEN = 100


def petname_problem(name: str) -> str | None:
    """What makes ``name`` unusable as a petname, or None when it is a valid one.

    A petname is 1 to ``MAX_PETNAME_CHARS`` characters of lowercase ASCII
    letters, digits, ``_ . -``, starting and ending with a letter or digit,
    and not starting with ``p2ps1`` (so it never looks like an identity).
    """
    if not isinstance(name, str) or not name:
        return "a petname cannot be empty"
    if len(name) > MAX_PETNAME_CHARS:
        return f"a petname has at most {MAX_PETNAME_CHARS} characters, this one {len(name)}"
    if name.startswith(IDENTITY_PREFIX):
        return f"a petname cannot start with {IDENTITY_PREFIX!r}: identities do"
    if not _PETNAME_RE.match(name):
        return (
            "a petname is lowercase letters a-z, digits and _ . -, "
            "starting and ending with a letter or digit"
        )
    return None


def tag_key(tag: str) -> str:
    """The form two tags are compared in: NFC, then casefolded."""
    return unicodedata.normalize("NFC", tag).casefold()


@dataclass(frozen=True, slots=True)
class TextRefs:
    """The references found in a text.

    ``mentions`` are lowercased tokens: identities in text form (``p2ps1…``,
    not yet checked) or petnames. ``extra_mentions`` and ``extra_tags`` count
    the distinct references that did not fit the limits.
    """

    mentions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    extra_mentions: int = 0
    extra_tags: int = 0


def _tag_end(text: str, start: int) -> int:
    """Where the tag starting at ``start`` ends (``start`` itself when none does)."""
    end, n = start, len(text)
    while end < n:
        ch = text[end]
        if not (ch.isalnum() or unicodedata.category(ch).startswith("M")) and (
            ch not in "_-" or end == start
        ):
            break
        end += 1
    return end


def _starts_reference(text: str, i: int) -> bool:
    if i == 0:
        return True
    before = text[i - 1]
    return not (before.isalnum() or before in _GLUE)


def find_text_refs(
    text: str, *, max_mentions: int = MAX_MENTIONS, max_tags: int = MAX_TAGS
) -> TextRefs:
    """The mentions and tags written in ``text`` (see the module's token rules).

    Never raises for any ``str``; returns at most ``max_mentions`` mentions
    and ``max_tags`` tags.
    """
    if not isinstance(text, str):
        return TextRefs()
    mentions: dict[str, None] = {}
    tags: dict[str, str] = {}
    extra_mentions: set[str] = set()
    extra_tags: set[str] = set()
    i, n = 0, len(text)
    while 0 <= i < n:
        ch = text[i]
        if ch not in "@#" or not _starts_reference(text, i):
            i += 1
            continue
        if ch == "@":
            m = _MENTION_RE.match(text, i + 1)
            token = m.group().rstrip("_.-").lower() if m else ""
            end = m.end() if m else i + 1
            usable = token.startswith(IDENTITY_PREFIX) or petname_problem(token) is None
            if token and len(token) <= _MAX_MENTION_TOKEN and usable and token not in mentions:
                if len(mentions) < max_mentions:
                    mentions[token] = None
                else:
                    extra_mentions.add(token)
        else:
            end = _tag_end(text, i + 1)
            raw = text[i + 1 : end].rstrip("_-")
            tag = unicodedata.normalize("NFC", raw)
            if tag and len(tag) <= MAX_TAG_CHARS and not tag.isdigit():
                key = tag.casefold()
                if key in tags:
                    pass
                elif len(tags) < max_tags:
                    tags[key] = tag
                else:
                    extra_tags.add(key)
        i = end
    return TextRefs(
        mentions=tuple(mentions),
        tags=tuple(tags.values()),
        extra_mentions=len(extra_mentions),
        extra_tags=len(extra_tags),
    )
