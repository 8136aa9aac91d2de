"""Values the store returns: ingest outcomes, entry views, pages and cursors."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import LocalUsageError
from ..protocol.entries import Entry
from ..protocol.identity import identity_to_text

__all__ = [
    "EntryView",
    "MapPage",
    "Outcome",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "json_payload",
    "json_payload_in_place",
]

#: Kinds whose ``target`` names an author rather than an entry.
AUTHOR_TARGET_KINDS = frozenset({"follow", "unfollow", "block", "unblock"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :meth:`Store.ingest` did with one item.

    ``status`` is ``stored`` (something new was kept: an entry, or the payload
    of an entry already held), ``duplicate`` (nothing new) or ``rejected``.
    ``reason`` is the protocol error's ``reason`` for a rejection (e.g.
    ``bad_envelope``, ``mismatch``, ``payload_hash``, ``from_future``,
    ``fork``, ``forked``, ``no_prev``); for a stored entry whose payload was
    refused by local policy it is ``blocked`` or ``deleted``. ``id``,
    ``author`` and ``seq`` are None only when the envelope could not be decoded.
    """

    status: Literal["stored", "duplicate", "rejected"]
    reason: str | None = None
    id: bytes | None = None
    author: bytes | None = None
    seq: int | None = None
    #: The decoded entry, for ``stored`` outcomes: callers need not decode
    #: the bytes again (they were decoded and checked on the way in).
    entry: Entry | None = field(default=None, compare=False, repr=False)


_PLAIN = frozenset({str, int, bool, float, type(None)})


def _jsonable(value: Any) -> Any:
    # Exact types first: payloads are plain msgpack values, and this runs for
    # every field of every entry on every page the API serves.
    t = type(value)
    if t in _PLAIN:
        return value
    if t is bytes:
        return value.hex()
    if t is dict:
        return {k: _jsonable(v) for k, v in value.items()}
    if t is list:
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def json_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A decoded payload with its bytes (at any depth) as hex: a new map."""
    return {k: v if type(v) in _PLAIN else _jsonable(v) for k, v in payload.items()}


def json_payload_in_place(payload: dict[str, Any]) -> dict[str, Any]:
    """:func:`json_payload` for a payload no one else holds: changes and returns it.

    For a freshly decoded payload, which needs no copy; its fields that are
    plain values (a post's text, mostly) are left as they are.
    """
    for k, v in payload.items():
        if type(v) not in _PLAIN:
            payload[k] = _jsonable(v)
    return payload


@dataclass(slots=True)
class EntryView:
    """One entry as queries show it.

    ``payload_state`` is ``present``, ``absent`` (envelope only, payload not
    received yet), ``deleted`` (its author deleted it) or ``dropped`` (local
    policy: block or drop). ``text`` is None unless the entry is a post whose
    payload is present. ``depth`` is set by :meth:`Store.thread` only (root 0).
    """

    id: bytes
    author: bytes
    seq: int
    kind: str
    timestamp: int
    payload_state: str = "present"
    text: str | None = None
    reply_root: bytes | None = None
    reply_parent: bytes | None = None
    mentions: list[bytes] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    target: bytes | None = None
    emoji: str | None = None
    payload: dict[str, Any] | None = None
    reactions: dict[str, int] = field(default_factory=dict)
    reposts: int = 0
    replies: int = 0
    depth: int = 0

    @property
    def deleted(self) -> bool:
        """True when the author deleted this entry (the envelope remains)."""
        return self.payload_state == "deleted"

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict: ids and bytes as hex, identities in text form."""
        # Every page the API serves calls this once per entry: locals, and the
        # common empty fields without a comprehension or a copy call.
        kind = self.kind
        target: Any = self.target
        if target is not None:
            target = identity_to_text(target) if kind in AUTHOR_TARGET_KINDS else target.hex()
        payload = self.payload
        if payload is not None:
            payload = json_payload(payload)
        mentions = self.mentions
        reply_root = self.reply_root
        reply_parent = self.reply_parent
        state = self.payload_state
        return {
            "id": self.id.hex(),
            "author": identity_to_text(self.author),
            "seq": self.seq,
            "kind": kind,
            "timestamp": self.timestamp,
            "payload_state": state,
            "deleted": state == "deleted",
            "text": self.text,
            "reply_root": reply_root.hex() if reply_root else None,
            "reply_parent": reply_parent.hex() if reply_parent else None,
            "mentions": [identity_to_text(m) for m in mentions] if mentions else [],
            "tags": list(self.tags) if self.tags else [],
            "target": target,
            "emoji": self.emoji,
            "payload": payload,
            "reactions": dict(self.reactions) if self.reactions else {},
            "reposts": self.reposts,
            "replies": self.replies,
            "depth": self.depth,
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a paginated query; pass ``next_cursor`` as ``before`` for the next.

    ``forks`` maps each author among ``items`` whose feed is forked to its fork
    seq, read in the same transaction as the items (so a page needs no second
    query to say so); None when the page was made without it.
    """

    items: list[EntryView]
    next_cursor: str | None
    forks: dict[bytes, int] | None = None


@dataclass(frozen=True, slots=True)
class MapPage:
    """A :class:`Page` whose items are already the local API's entry maps.

    Each item is what ``p2psocial.node.render.view_json`` makes of the
    entry's :class:`EntryView` (its author's fork state included), built
    straight from the row: the API's pages skip the view objects.
    """

    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(primary: int, id_: bytes) -> str:
    """An opaque cursor for the position just after (older than) ``(primary, id_)``."""
    raw = primary.to_bytes(8, "big") + id_
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, bytes]:
    """Parse a cursor made by :func:`encode_cursor`.

    Raises:
        LocalUsageError: the cursor is not one of ours.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, TypeError):
        raise LocalUsageError("malformed pagination cursor", reason="bad_cursor") from None
    if len(raw) != 40:
        raise LocalUsageError("malformed pagination cursor", reason="bad_cursor")
    return int.from_bytes(raw[:8], "big"), raw[8:]
