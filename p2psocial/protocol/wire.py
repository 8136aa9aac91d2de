"""Peer-link wire format: frames and the messages of the sync protocol.

Theory (spec/sync.md §2-§4). A peer link is a byte stream cut into *frames*::

    frame = length (u32, big-endian) || body (length bytes)

A length above the link's maximum (1 MiB by default) ends the link before a
single body byte is buffered, so a hostile peer cannot make us allocate. Each
body is one canonical msgpack map with a ``t`` field naming the message type;
the other fields depend on the type and are all required unless marked
optional. Unknown types and unknown or missing fields are refused: two
implementations must never disagree about what a message means.

Entries travel as opaque bytes here. This layer checks only their sizes; the
store decodes and verifies them (batch-verified runs), so no entry is decoded
twice on the catch-up hot path.

Everything here is pure: bytes in, values out. :func:`decode_message_untrusted`
and :meth:`FrameDecoder.feed` may raise only :class:`DecodeError`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from . import encoding
from .encoding import Limits
from .entries import MAX_ENTRY_SIZE, MAX_PAYLOAD_SIZE
from .errors import DecodeError, InvalidSignature, LocalUsageError
from .framing import DEFAULT_WIRE_LIMITS, FrameDecoder, WireLimits, encode_frame
from .identity import check_public_key

__all__ = [
    "DEFAULT_WIRE_LIMITS",
    "EXT_MARKER",
    "HELLO_TAG",
    "MAX_CAPS",
    "MAX_MAPPING_LEN",
    "MAX_MODE_FEEDS",
    "MAX_PUNCH_ADDRS",
    "NONCE_SIZE",
    "WIRE_VERSION",
    "Auth",
    "Bye",
    "Caps",
    "Clock",
    "Entries",
    "ForkProofMessage",
    "FrameDecoder",
    "Have",
    "Hello",
    "Item",
    "Message",
    "Mode",
    "PunchAnswer",
    "PunchGo",
    "PunchOffer",
    "Push",
    "Want",
    "WireLimits",
    "decode_message_untrusted",
    "encode_frame",
    "encode_message",
    "hello_signed_bytes",
]

WIRE_VERSION = 1
NONCE_SIZE = 32
#: Domain tag of the hello proof: a node signs HELLO_TAG || peer nonce || own key.
HELLO_TAG = b"p2psocial/hello/v1\x00"
_MAX_SEQ = 2**53 - 1
_MAX_REASON = 64
#: The last bytes of a hello nonce of a node that follows spec/sync.md §9.
EXT_MARKER = b"p2p/ext1"
#: Capability names in a ``caps`` at most, and each name's length.
MAX_CAPS = 32
_MAX_CAP_NAME = 32
#: Feeds in one ``mode`` at most (capability ebt, spec/sync.md §13): the
#: receiver's mode bucket holds 1,024.
MAX_MODE_FEEDS = 1024
#: Addresses in a punch offer or answer at most (spec/sync.md §12.2).
MAX_PUNCH_ADDRS = 4
#: Characters of a punch ``mapping`` at most (capability ``punch_spray``, §12.9).
MAX_MAPPING_LEN = 16


#: One replicated item: entry bytes and the payload bytes, or None when the
#: payload was deleted or dropped (the envelope alone keeps the chain valid).
Item: TypeAlias = tuple[bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class Hello:
    """First message each side sends: its node key, a fresh nonce, its listen port."""

    key: bytes
    nonce: bytes
    port: int
    version: int = WIRE_VERSION


@dataclass(frozen=True, slots=True)
class Auth:
    """Second message: Ed25519 over ``hello_signed_bytes(peer_nonce, own_key)``."""

    sig: bytes


@dataclass(frozen=True, slots=True)
class Clock:
    """Heads of the feeds the sender wants: ``(author, seq, head id or None)``.

    ``seq`` 0 means "wanted, nothing held"; -1 withdraws interest. The first
    clock states the sender's whole interest; later ones are deltas.
    """

    feeds: tuple[tuple[bytes, int, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class Want:
    """Ask for ``author``'s entries from seq ``from_seq`` (inclusive).

    With ``limit`` it is a one-shot *peek*: ``from_seq`` 0 asks for the latest
    ``limit`` entries; otherwise at most ``limit`` entries from ``from_seq``.
    """

    author: bytes
    from_seq: int
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Entries:
    """A batch of consecutive entries of one feed, oldest first.

    ``start`` is the seq of the first item; ``head`` the sender's head for the
    feed when it sent the batch (a receiver knows it is complete when the last
    item reaches it). An empty batch says "nothing (more) to send".
    """

    author: bytes
    start: int
    head: int
    items: tuple[Item, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Push:
    """One new entry, sent live to a peer whose clock is behind."""

    author: bytes
    seq: int
    item: Item


@dataclass(frozen=True, slots=True)
class ForkProofMessage:
    """A fork proof's canonical bytes (``feeds.ForkProof.to_bytes``), gossiped."""

    proof: bytes


@dataclass(frozen=True, slots=True)
class Bye:
    """Polite end of the link, with a short snake_case reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class Caps:
    """The capabilities a node speaks on this link (spec/sync.md §9), sorted."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Mode:
    """Capability ``ebt`` (spec/sync.md §13): whether the receiver should push feeds live.

    Each entry is ``(author, seq, active)``: ``seq`` the sender's contiguous
    head of that feed; ``active`` False asks the receiver to stop pushing the
    feed and send :class:`Have` notes instead, True to push it again from
    ``seq`` on.
    """

    feeds: tuple[tuple[bytes, int, bool], ...]


@dataclass(frozen=True, slots=True)
class Have:
    """Capability ``ebt``: the sender's contiguous heads ``(author, seq)`` of
    feeds the receiver put on standby with :class:`Mode`."""

    feeds: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True, slots=True)
class PunchOffer:
    """Capability ``punch`` (spec/sync.md §12): the initiator's addresses for a direct link.

    ``addrs`` are ``(ip, port)`` pairs where the sender expects the other
    side's connect to reach it; ``dialable`` is the sender's dial-back verdict.
    """

    addrs: tuple[tuple[str, int], ...]
    dialable: bool
    #: The sender's NAT mapping behaviour (``consistent``, ``varying``,
    #: ``unknown``), sent only to a peer that listed ``punch_spray`` (§12.9).
    mapping: str | None = None


@dataclass(frozen=True, slots=True)
class PunchAnswer:
    """Capability ``punch``: the responder's addresses, answering a :class:`PunchOffer`."""

    addrs: tuple[tuple[str, int], ...]
    dialable: bool
    #: As :attr:`PunchOffer.mapping`.
    mapping: str | None = None


@dataclass(frozen=True, slots=True)
class PunchGo:
    """Capability ``punch``: "connect now" from the initiator to the responder."""


Message: TypeAlias = (
    Hello
    | Auth
    | Clock
    | Want
    | Entries
    | Push
    | ForkProofMessage
    | Bye
    | Caps
    | Mode
    | Have
    | PunchOffer
    | PunchAnswer
    | PunchGo
)


def hello_signed_bytes(peer_nonce: bytes, own_key: bytes) -> bytes:
    """The bytes a node signs to prove its key on a link (tag || nonce || key)."""
    return HELLO_TAG + peer_nonce + own_key


def _item_value(item: Item) -> list[bytes]:
    entry, payload = item
    return [entry] if payload is None else [entry, payload]


def _message_value(msg: Message) -> dict[str, Any]:
    if isinstance(msg, Entries):
        return {
            "t": "entries",
            "author": msg.author,
            "start": msg.start,
            "head": msg.head,
            "items": [_item_value(i) for i in msg.items],
        }
    if isinstance(msg, Push):
        return {"t": "push", "author": msg.author, "seq": msg.seq, "item": _item_value(msg.item)}
    if isinstance(msg, Clock):
        feeds = [[a, s] if i is None else [a, s, i] for a, s, i in msg.feeds]
        return {"t": "clock", "feeds": feeds}
    if isinstance(msg, Want):
        v: dict[str, Any] = {"t": "want", "author": msg.author, "from_seq": msg.from_seq}
        if msg.limit is not None:
            v["limit"] = msg.limit
        return v
    if isinstance(msg, Hello):
        return {
            "t": "hello",
            "v": msg.version,
            "key": msg.key,
            "nonce": msg.nonce,
            "port": msg.port,
        }
    if isinstance(msg, Auth):
        return {"t": "auth", "sig": msg.sig}
    if isinstance(msg, ForkProofMessage):
        return {"t": "fork_proof", "proof": msg.proof}
    if isinstance(msg, Bye):
        return {"t": "bye", "reason": msg.reason}
    if isinstance(msg, Caps):
        return {"t": "caps", "names": list(msg.names)}
    if isinstance(msg, Mode):
        return {"t": "mode", "feeds": [[a, s, on] for a, s, on in msg.feeds]}
    if isinstance(msg, Have):
        return {"t": "have", "feeds": [[a, s] for a, s in msg.feeds]}
    if isinstance(msg, (PunchOffer, PunchAnswer)):
        t = "punch_offer" if isinstance(msg, PunchOffer) else "punch_answer"
        out: dict[str, Any] = {
            "t": t,
            "addrs": [[h, p] for h, p in msg.addrs],
            "dialable": msg.dialable,
        }
        if msg.mapping is not None:
            out["mapping"] = msg.mapping
        return out
    if isinstance(msg, PunchGo):
        return {"t": "punch_go"}
    raise LocalUsageError(f"not a wire message: {type(msg).__name__}")


def encode_message(msg: Message) -> bytes:
    """Encode a message as a canonical msgpack body (no length prefix).

    Raises:
        LocalUsageError: ``msg`` is not a message or holds out-of-profile values.
    """
    return encoding.encode(_message_value(msg))


# --- decoding -------------------------------------------------------------


def _bad(msg: str, reason: str = "bad_message") -> DecodeError:
    return DecodeError(msg, reason=reason)


def _fields(
    v: dict[str, Any], t: str, required: set[str], optional: frozenset[str] = frozenset()
) -> None:
    keys = set(v) - {"t"}
    missing = required - keys
    extra = keys - required - optional
    if missing or extra:
        raise _bad(f"{t}: missing fields {sorted(missing)}, unknown fields {sorted(extra)}")


def _bytes(v: Any, name: str, size: int | None = None, max_size: int | None = None) -> bytes:
    if type(v) is not bytes:
        raise _bad(f"{name} must be bytes")
    if size is not None and len(v) != size:
        raise _bad(f"{name} must be {size} bytes")
    if max_size is not None and len(v) > max_size:
        raise _bad(f"{name} is {len(v)} bytes, over {max_size}", reason="too_large")
    return v


def _int(v: Any, name: str, lo: int, hi: int = _MAX_SEQ) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(f"{name} must be an integer in {lo}..{hi}")
    return v


def _item(v: Any) -> Item:
    if type(v) is not list or not 1 <= len(v) <= 2:
        raise _bad("an item must be [entry] or [entry, payload]")
    entry = _bytes(v[0], "entry", max_size=MAX_ENTRY_SIZE)
    payload = _bytes(v[1], "payload", max_size=MAX_PAYLOAD_SIZE) if len(v) == 2 else None
    return (entry, payload)


def _decode_value(v: Any, limits: WireLimits) -> Message:
    if type(v) is not dict or type(v.get("t")) is not str:
        raise _bad("a message must be a map with a text field 't'")
    t = v["t"]
    if t == "entries":
        _fields(v, t, {"author", "start", "head", "items"})
        items = v["items"]
        if type(items) is not list:
            raise _bad("entries.items must be a list")
        if len(items) > limits.max_batch:
            raise _bad(
                f"batch of {len(items)} exceeds {limits.max_batch}", reason="batch_too_large"
            )
        start = _int(v["start"], "start", 0)
        if items and start == 0:
            raise _bad("a non-empty batch starts at seq 1 or later")
        if start + len(items) - 1 > _MAX_SEQ:
            raise _bad("batch runs past the largest seq")
        return Entries(
            author=_bytes(v["author"], "author", 32),
            start=start,
            head=_int(v["head"], "head", 0),
            items=tuple(_item(i) for i in items),
        )
    if t == "push":
        _fields(v, t, {"author", "seq", "item"})
        return Push(_bytes(v["author"], "author", 32), _int(v["seq"], "seq", 1), _item(v["item"]))
    if t == "clock":
        _fields(v, t, {"feeds"})
        feeds = v["feeds"]
        if type(feeds) is not list:
            raise _bad("clock.feeds must be a list")
        if len(feeds) > limits.max_clock:
            raise _bad(
                f"clock of {len(feeds)} feeds exceeds {limits.max_clock}", reason="clock_too_large"
            )
        out: list[tuple[bytes, int, bytes | None]] = []
        seen: set[bytes] = set()
        for f in feeds:
            if type(f) is not list or not 2 <= len(f) <= 3:
                raise _bad("a clock entry must be [author, seq] or [author, seq, head id]")
            author = _bytes(f[0], "author", 32)
            if author in seen:
                raise _bad("a clock names a feed twice")
            seen.add(author)
            seq = _int(f[1], "seq", -1)
            hid = _bytes(f[2], "head id", 32) if len(f) == 3 else None
            if hid is not None and seq < 1:
                raise _bad("a head id needs a seq of 1 or more")
            out.append((author, seq, hid))
        return Clock(tuple(out))
    if t == "want":
        _fields(v, t, {"author", "from_seq"}, frozenset({"limit"}))
        limit = _int(v["limit"], "limit", 1, limits.max_peek) if "limit" in v else None
        from_seq = _int(v["from_seq"], "from_seq", 0 if limit is not None else 1)
        return Want(_bytes(v["author"], "author", 32), from_seq, limit)
    if t == "hello":
        _fields(v, t, {"v", "key", "nonce", "port"})
        version = _int(v["v"], "v", 0, 2**16)
        if version != WIRE_VERSION:
            raise _bad(f"wire version {version} is not supported", reason="bad_version")
        hello = Hello(
            key=_bytes(v["key"], "key", 32),
            nonce=_bytes(v["nonce"], "nonce", NONCE_SIZE),
            port=_int(v["port"], "port", 0, 65535),
            version=version,
        )
        # Last, after the cheap shape checks. spec/sync.md §3 names one reason
        # for every key rule; the message keeps which one.
        try:
            check_public_key(hello.key)
        except InvalidSignature as exc:
            raise _bad(f"hello.key: {exc.message} ({exc.reason})", reason="bad_key") from None
        return hello
    if t == "auth":
        _fields(v, t, {"sig"})
        return Auth(_bytes(v["sig"], "sig", 64))
    if t == "fork_proof":
        _fields(v, t, {"proof"})
        return ForkProofMessage(_bytes(v["proof"], "proof", max_size=2 * MAX_ENTRY_SIZE + 16))
    if t == "bye":
        _fields(v, t, {"reason"})
        reason = v["reason"]
        if type(reason) is not str or len(reason) > _MAX_REASON:
            raise _bad(f"bye.reason must be text of at most {_MAX_REASON} characters")
        return Bye(reason)
    if t == "caps":
        _fields(v, t, {"names"})
        return Caps(_cap_names(v["names"]))
    if t == "mode":
        _fields(v, t, {"feeds"})
        modes: list[tuple[bytes, int, bool]] = []
        for author, f in _feed_list(v["feeds"], t, 3, min(limits.max_clock, MAX_MODE_FEEDS)):
            if type(f[2]) is not bool:
                raise _bad("a mode entry's third element is a boolean")
            modes.append((author, _int(f[1], "seq", 0), f[2]))
        return Mode(tuple(modes))
    if t == "have":
        _fields(v, t, {"feeds"})
        return Have(
            tuple(
                (a, _int(f[1], "seq", 1)) for a, f in _feed_list(v["feeds"], t, 2, limits.max_clock)
            )
        )
    if t in ("punch_offer", "punch_answer"):
        _fields(v, t, {"addrs", "dialable"}, frozenset({"mapping"}))
        if type(v["dialable"]) is not bool:
            raise _bad(f"{t}.dialable must be a boolean")
        addrs = _punch_addrs(v["addrs"])
        mapping = _mapping(v["mapping"]) if "mapping" in v else None
        if t == "punch_offer":
            return PunchOffer(addrs, v["dialable"], mapping)
        return PunchAnswer(addrs, v["dialable"], mapping)
    if t == "punch_go":
        _fields(v, t, set())
        return PunchGo()
    raise _bad(f"unknown message type {t[:32]!r}", reason="unknown_message")


def _feed_list(v: Any, t: str, width: int, most: int) -> list[tuple[bytes, list[Any]]]:
    """The per-feed lists of a ``mode`` or ``have``: 1..``most`` of them,
    each ``width`` long and naming a distinct author first."""
    if type(v) is not list or not 1 <= len(v) <= most:
        raise _bad(f"{t}.feeds must be a list of 1..{most} feeds")
    out: list[tuple[bytes, list[Any]]] = []
    seen: set[bytes] = set()
    for f in v:
        if type(f) is not list or len(f) != width:
            raise _bad(f"a {t} entry must be a list of {width}")
        author = _bytes(f[0], "author", 32)
        if author in seen:
            raise _bad(f"a {t} names a feed twice")
        seen.add(author)
        out.append((author, f))
    return out


def _cap_names(v: Any) -> tuple[str, ...]:
    if type(v) is not list or len(v) > MAX_CAPS:
        raise _bad(f"caps.names must be a list of at most {MAX_CAPS} names")
    for name in v:
        if (
            type(name) is not str
            or not 1 <= len(name) <= _MAX_CAP_NAME
            or not all(c in _CAP_CHARS for c in name)
        ):
            raise _bad("a capability name is 1..32 characters of [a-z0-9_]")
    if v != sorted(set(v)):
        raise _bad("caps.names must be sorted and distinct")
    return tuple(v)


_CAP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _mapping(v: Any) -> str:
    # Any short name of [a-z_] is taken: a receiver treats a name it does not
    # know as "unknown" (spec/sync.md §12.9), so later names need no new version.
    if (
        type(v) is not str
        or not 1 <= len(v) <= MAX_MAPPING_LEN
        or not all(c in _MAPPING_CHARS for c in v)
    ):
        raise _bad(f"a punch mapping is 1..{MAX_MAPPING_LEN} characters of [a-z_]")
    return v


_MAPPING_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")


def _punch_addrs(v: Any) -> tuple[tuple[str, int], ...]:
    if type(v) is not list or len(v) > MAX_PUNCH_ADDRS:
        raise _bad(f"punch addrs must be a list of at most {MAX_PUNCH_ADDRS} addresses")
    out = []
    for a in v:
        if type(a) is not list or len(a) != 2 or type(a[0]) is not str or len(a[0]) > 45:
            raise _bad("a punch address is [ip text, port]")
        try:
            ip = ipaddress.ip_address(a[0])
        except ValueError:
            raise _bad("a punch address must name an IP literal") from None
        if str(ip) != a[0]:
            raise _bad("a punch address must be in canonical text form")
        out.append((a[0], _int(a[1], "port", 1, 65535)))
    return tuple(out)


def decode_message_untrusted(body: bytes, limits: WireLimits = DEFAULT_WIRE_LIMITS) -> Message:
    """Decode one frame body received from a peer.

    Args:
        body: the exact frame body (without the length prefix).
        limits: the link's bounds.

    Returns:
        The message; its fields have the types, sizes and ranges spec/sync.md
        gives, and a hello's node key passes the key rules of
        spec/protocol.md §3. Entry and payload bytes are only size-checked.

    Raises:
        DecodeError: for every invalid input (reason ``bad_key`` for a hello
            whose key fails the key rules). Any other exception is a bug.
    """
    value = encoding.decode_untrusted(
        body,
        Limits(
            max_size=limits.max_frame,
            max_depth=3,
            max_container_len=max(limits.max_batch, limits.max_clock, 8),
            max_str_len=256,
            max_bin_len=max(MAX_PAYLOAD_SIZE, 2 * MAX_ENTRY_SIZE + 16),
        ),
    )
    return _decode_value(value, limits)
