"""Values at the node's edge: identities and ids parsed from text, watch filters,
and entries in the JSON-friendly shape the Node, the local API and the CLI share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.methods import PAGE_LIMIT_MAX
from ..protocol.errors import DecodeError, LocalUsageError
from ..protocol.identity import identity_from_text

if TYPE_CHECKING:
    # Types only: importing this module (for WatchFilter) stays light.
    from ..storage import AsyncStore, EntryView

__all__ = [
    "MAX_CANDIDATES",
    "MIN_PREFIX_HEX",
    "WatchFilter",
    "check_limit",
    "fmt_addr",
    "held_entry",
    "parse_entry_id",
    "parse_identity",
    "resolve_entry_id",
]

#: The shortest id prefix accepted. 8 hex digits are 32 bits: with a million
#: entries held, a given prefix is shared with another entry once in ~4,000.
MIN_PREFIX_HEX = 8
#: How many of the matching ids an ambiguous prefix's error lists.
MAX_CANDIDATES = 5


def parse_identity(value: str | bytes) -> bytes:
    """An identity from its text form (or raw 32 bytes).

    Raises:
        LocalUsageError: saying what is wrong with the text.
    """
    if isinstance(value, bytes):
        if len(value) != 32:
            raise LocalUsageError("an identity is 32 bytes")
        return value
    try:
        return identity_from_text(value)
    except DecodeError as exc:
        raise LocalUsageError(exc.message, reason="bad_identity") from None


def _id_hex(value: str) -> str:
    """``value`` as lowercase hex of 8 to 64 digits, or a ``bad_id`` error."""
    text = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]*", text):
        raise LocalUsageError(
            f"not a valid entry id: {value.strip()[:80]!r} is not hex", reason="bad_id"
        )
    if not MIN_PREFIX_HEX <= len(text) <= 64:
        raise LocalUsageError(
            "not a valid entry id: expected 64 hex characters, or a unique prefix of "
            f"at least {MIN_PREFIX_HEX}, got {len(text)} characters",
            reason="bad_id",
        )
    return text


def parse_entry_id(value: str | bytes) -> bytes:
    """An entry id from 64 hex characters (or raw 32 bytes); prefixes need the store.

    Raises:
        LocalUsageError: not a valid id (reason ``bad_id``).
    """
    if isinstance(value, bytes):
        if len(value) != 32:
            raise LocalUsageError("an entry id is 32 bytes")
        return value
    text = _id_hex(value)
    if len(text) != 64:
        raise LocalUsageError(
            f"not a valid entry id: expected 64 hex characters, got {len(text)} characters",
            reason="bad_id",
        )
    return bytes.fromhex(text)


async def resolve_entry_id(store: AsyncStore, value: str | bytes) -> bytes:
    """An entry id from its full form (64 hex, or 32 bytes) or a unique prefix of it.

    A full id is returned as it is, whether or not this node holds the entry
    (a reply or reaction may name an entry held elsewhere). A prefix of
    ``MIN_PREFIX_HEX`` to 63 hex digits, any case, must name exactly one entry
    held here; the lookup is one range seek on the id index.

    Raises:
        LocalUsageError: with reason ``bad_id`` (not hex, or too short),
            ``unknown_id`` (no entry held here starts so) or ``ambiguous_id``
            (several do; the message lists up to ``MAX_CANDIDATES`` of them in full).
    """
    if isinstance(value, bytes):
        return parse_entry_id(value)
    text = _id_hex(value)
    if len(text) == 64:
        return bytes.fromhex(text)
    found = await store.ids_with_prefix(text, limit=MAX_CANDIDATES + 1)
    if not found:
        raise LocalUsageError(
            f"no entry held by this node has an id starting with {text}", reason="unknown_id"
        )
    if len(found) > 1:
        count = f"more than {MAX_CANDIDATES}" if len(found) > MAX_CANDIDATES else str(len(found))
        listed = ", ".join(i.hex() for i in found[:MAX_CANDIDATES])
        raise LocalUsageError(
            f"id prefix {text} is ambiguous: {count} entries start with it "
            f"({listed}); give more digits",
            reason="ambiguous_id",
        )
    return found[0]


async def held_entry(store: AsyncStore, value: str | bytes) -> EntryView:
    """The entry named by ``value`` (see :func:`resolve_entry_id`), which this node must hold.

    Raises:
        LocalUsageError: as :func:`resolve_entry_id`, and ``unknown_id`` for a
            full id this node holds no entry for.
    """
    entry_id = await resolve_entry_id(store, value)
    view = await store.get_entry(entry_id)
    if view is None:
        raise LocalUsageError(f"this node holds no entry {entry_id.hex()}", reason="unknown_id")
    return view


@dataclass
class WatchFilter:
    """Which new entries a watcher wants. Empty sets mean "any"."""

    kinds: set[str] = field(default_factory=set)
    authors: set[bytes] = field(default_factory=set)
    #: Only entries that mention or reply to this node's identity.
    mentions_me: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> WatchFilter:
        kinds = params.get("kinds") or []
        authors = params.get("authors") or []
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise LocalUsageError("kinds must be a list of kind names")
        if not isinstance(authors, list):
            raise LocalUsageError("authors must be a list of identities")
        return cls(
            kinds=set(kinds),
            authors={parse_identity(a) for a in authors},
            mentions_me=bool(params.get("mentions_me", False)),
        )

    def matches(self, view: dict[str, Any], me: str) -> bool:
        if self.kinds and view.get("kind") not in self.kinds:
            return False
        if self.authors and parse_identity(view["author"]) not in self.authors:
            return False
        # A reply always names the parent's author in its mentions (Node.post
        # does so), so this also catches replies to this identity's posts.
        return not self.mentions_me or me in (view.get("mentions") or [])


def check_limit(limit: int) -> int:
    """``limit`` itself, when it is a page size the node serves (1 to ``PAGE_LIMIT_MAX``).

    Raises:
        LocalUsageError: any other value.
    """
    if not isinstance(limit, int) or not 1 <= limit <= PAGE_LIMIT_MAX:
        raise LocalUsageError(f"limit must be between 1 and {PAGE_LIMIT_MAX}")
    return limit


def fmt_addr(addr: tuple[str, int] | None) -> str | None:
    """``host:port``, or None for no address."""
    return None if addr is None else f"{addr[0]}:{addr[1]}"
