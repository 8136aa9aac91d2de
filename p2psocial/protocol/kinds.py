"""Payload schemas of the v1 entry kinds (spec/protocol.md §5).

A payload is a canonical msgpack map. Each known kind lists its fields with a
checker; a field that is not listed is refused, so that two nodes never
disagree about what a payload means. New fields or meanings come as new kinds,
and kinds this node does not know are stored and relayed without being
interpreted (forward compatibility).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .emoji import MAX_EMOJI_CODE_POINTS, emoji_problem
from .errors import InvalidSignature, SchemaError

__all__ = [
    "KINDS",
    "MAX_MENTIONS",
    "MAX_TAGS",
    "MAX_TEXT_CHARS",
    "validate_kind_name",
    "validate_payload",
]

MAX_TEXT_CHARS = 2000
MAX_MENTIONS = 16
MAX_TAGS = 16
MAX_TAG_CHARS = 64
MAX_NAME_CHARS = 64
MAX_BIO_CHARS = 500
MAX_REASON_CHARS = 280
MAX_EMOJI_CHARS = MAX_EMOJI_CODE_POINTS
MAX_LANG_CHARS = 16

_KIND_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}\Z")

Checker = Callable[[str, Any], None]


def _text(max_chars: int, min_chars: int = 0) -> Checker:
    def check(name: str, v: Any) -> None:
        if type(v) is not str:
            raise SchemaError(f"{name} must be text", reason="bad_field")
        if not min_chars <= len(v) <= max_chars:
            raise SchemaError(
                f"{name} has {len(v)} characters; allowed {min_chars}..{max_chars}",
                reason="too_long" if len(v) > max_chars else "too_short",
            )

    return check


_emoji_text = _text(MAX_EMOJI_CHARS, 1)


def _emoji(name: str, v: Any) -> None:
    # The text rules first (type, then 1..16 code points), so that only short
    # texts reach the matcher and the older reasons keep their meaning.
    _emoji_text(name, v)
    problem = emoji_problem(v)
    if problem is not None:
        raise SchemaError(f"{name} must be exactly one emoji: {problem}", reason="not_emoji")


def _entry_id(name: str, v: Any) -> None:
    if type(v) is not bytes or len(v) != 32:
        raise SchemaError(f"{name} must be a 32-byte entry id", reason="bad_field")


def _author(name: str, v: Any) -> None:
    if type(v) is not bytes or len(v) != 32:
        raise SchemaError(f"{name} must be a 32-byte identity", reason="bad_field")
    # Imported here: the limits above are read by programs that never check a
    # key (the CLI's --help), and identity loads the cryptography library.
    from .identity import check_public_key

    try:
        check_public_key(v)
    except InvalidSignature as exc:
        raise SchemaError(
            f"{name} is not a usable identity: {exc.message}", reason="bad_field"
        ) from None


def _list_of(item: Checker, max_items: int) -> Checker:
    def check(name: str, v: Any) -> None:
        if type(v) is not list:
            raise SchemaError(f"{name} must be a list", reason="bad_field")
        if not 1 <= len(v) <= max_items:
            raise SchemaError(f"{name} must hold 1..{max_items} items", reason="bad_field")
        for i, x in enumerate(v):
            item(f"{name}[{i}]", x)
        if len(set(v)) != len(v):
            raise SchemaError(f"{name} repeats an item", reason="bad_field")

    return check


def _reply(name: str, v: Any) -> None:
    _fields(name, v, {"root": (_entry_id, True), "parent": (_entry_id, True)})


def _fields(where: str, payload: Any, spec: Mapping[str, tuple[Checker, bool]]) -> None:
    if type(payload) is not dict:
        raise SchemaError(f"{where} must be a map", reason="bad_field")
    for key in payload:
        if key not in spec:
            raise SchemaError(f"{where} has unknown field {key!r}", reason="unknown_field")
    for key, (check, required) in spec.items():
        if key in payload:
            check(f"{where}.{key}", payload[key])
        elif required:
            raise SchemaError(f"{where} lacks required field {key!r}", reason="missing_field")


FieldSpec = dict[str, tuple[Checker, bool]]

_TARGET_AUTHOR: FieldSpec = {"target": (_author, True)}
_TARGET_ENTRY: FieldSpec = {"target": (_entry_id, True)}

#: kind name -> {field: (checker, required)}
KINDS: dict[str, FieldSpec] = {
    "post": {
        "text": (_text(MAX_TEXT_CHARS, 1), True),
        "reply": (_reply, False),
        "mentions": (_list_of(_author, MAX_MENTIONS), False),
        "tags": (_list_of(_text(MAX_TAG_CHARS, 1), MAX_TAGS), False),
        "lang": (_text(MAX_LANG_CHARS, 1), False),
    },
    "profile": {
        "name": (_text(MAX_NAME_CHARS), False),
        "bio": (_text(MAX_BIO_CHARS), False),
    },
    "follow": _TARGET_AUTHOR,
    "unfollow": _TARGET_AUTHOR,
    "react": {"target": (_entry_id, True), "emoji": (_emoji, True)},
    "repost": _TARGET_ENTRY,
    "delete": _TARGET_ENTRY,
    "block": {"target": (_author, True), "reason": (_text(MAX_REASON_CHARS), False)},
    "unblock": _TARGET_AUTHOR,
}


def validate_kind_name(kind: Any) -> None:
    """Raise SchemaError unless ``kind`` is a well-formed kind name (known or not)."""
    if type(kind) is not str or not _KIND_RE.match(kind):
        raise SchemaError(f"kind {kind!r} is not a valid kind name", reason="bad_kind")


def validate_payload(kind: str, payload: Any) -> None:
    """Check a decoded payload against its kind's schema.

    Unknown kinds only need a map payload; their fields are not interpreted.

    Raises:
        SchemaError: naming the field and the rule it breaks.
    """
    spec = KINDS.get(kind)
    if spec is None:
        if type(payload) is not dict:
            raise SchemaError("payload must be a map", reason="bad_field")
        return
    _fields(kind, payload, spec)
