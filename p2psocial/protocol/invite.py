"""Invites: one signed line of text that says "this is me, and here I am" (spec/invite.md).

An invite carries an identity, the addresses its node can be reached at (the
peer-link listener and the DHT), an optional expiry and up to eight identities
the inviter recommends, all signed by the identity. Its text form is
``p2psinv1`` followed by the bech32 alphabet, so it survives being read aloud,
retyped, and put in a QR code in alphanumeric mode (upper case).

The layout, after the 5-bit characters are regrouped into bytes::

    body      = version (1) || identity (32) || records || signature (64)
    record    = type (1) || length (1) || value (length)
    text      = "p2psinv1" || base32(body || checksum (5))
    checksum  = SHA-256(CHECKSUM_TAG || body)[:5]
    signature = Ed25519(identity, INVITE_TAG || version || identity || records)

Record types below 0x80 are *critical*: a reader that does not know one
refuses the invite. Types 0x80 and above are *optional*: a reader that does
not know one skips it (it is still covered by the signature). Relay addresses
will be type 0x80 (:data:`RELAY_RECORD`), versioned by their first value byte,
so that readers of this version still use the direct addresses.

Decoding is :func:`decode_invite_untrusted`; it may raise only
:class:`InviteError` (a :class:`DecodeError`) and :class:`InvalidSignature`;
any other exception is a bug, and bench/fuzz.py's ``invite`` target checks it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from .bech32 import CHARSET
from .errors import DecodeError, InvalidSignature, LocalUsageError
from .identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, public_key_problem, verify_strict

__all__ = [
    "CHECKSUM_TAG",
    "DHT_RECORD",
    "EXPIRES_RECORD",
    "INVITE_PREFIX",
    "INVITE_REASONS",
    "INVITE_TAG",
    "INVITE_VERSION",
    "PEER_RECORD",
    "RECOMMEND_RECORD",
    "RELAY_RECORD",
    "Invite",
    "InviteError",
    "InviteLimits",
    "decode_invite_untrusted",
    "looks_like_invite",
    "make_invite",
]

#: The text form's prefix: the identity's "p2ps" plus "inv", then bech32's separator.
INVITE_PREFIX = "p2psinv1"
INVITE_VERSION = 1
#: What the identity signs: a tag of its own, so that no invite is an entry or a link proof.
INVITE_TAG = b"p2psocial/invite/v1\x00"
#: Domain of the typo checksum (it tells a mistyped or cut-off invite from a forged one).
CHECKSUM_TAG = b"p2psocial/invite-checksum/v1\x00"
CHECKSUM_SIZE = 5

PEER_RECORD = 0x01  # a peer-link (TCP) address: IPv4 (4) or IPv6 (16) bytes, then port (2)
DHT_RECORD = 0x02  # a DHT (UDP) address, the same value layout
EXPIRES_RECORD = 0x03  # expiry: unix time in milliseconds, u64 big-endian; at most one
RECOMMEND_RECORD = 0x04  # a recommended identity: 32 bytes
RELAY_RECORD = 0x80  # reserved for relay addresses: value[0] is the relay format version
_OPTIONAL_FROM = 0x80

#: Every ``reason`` an invite is refused with (signatures: InvalidSignature, ``bad_signature``).
INVITE_REASONS = ("bad_invite", "bad_checksum", "unsupported_version", "expired", "bad_signature")

_CHAR_VALUE = {c: i for i, c in enumerate(CHARSET)}
_HEADER = 1 + PUBLIC_KEY_SIZE


class InviteError(DecodeError):
    """An invite text breaks a rule of spec/invite.md, or has expired (``reason`` says which)."""

    reason = "bad_invite"


@dataclass(frozen=True)
class InviteLimits:
    """Bounds a reader enforces before it allocates.

    The defaults fit eight IPv6 addresses of each kind, eight recommendations
    and an expiry (699 bytes, 1,135 characters: a version 19 QR code); a
    typical invite is about 200 characters (version 7).
    """

    max_chars: int = 1300
    max_addresses: int = 8  # of each kind (peer, DHT)
    max_recommended: int = 8
    max_records: int = 32

    @property
    def max_body(self) -> int:
        """The largest body (checksum excluded) that ``max_chars`` can hold."""
        return (self.max_chars - len(INVITE_PREFIX)) * 5 // 8 - CHECKSUM_SIZE


DEFAULT_LIMITS = InviteLimits()


@dataclass(frozen=True)
class Invite:
    """A decoded, verified invite.

    ``skipped`` holds the optional records this reader does not know, as
    (type, value) pairs, so that :meth:`body` reproduces the signed bytes.
    """

    identity: bytes
    peer_addrs: tuple[tuple[str, int], ...]
    dht_addrs: tuple[tuple[str, int], ...]
    expires_ms: int | None
    recommended: tuple[bytes, ...]
    signature: bytes
    skipped: tuple[tuple[int, bytes], ...] = ()

    def signed_bytes(self) -> bytes:
        """``INVITE_TAG || version || identity || records``: what the signature covers."""
        return INVITE_TAG + _unsigned(self)

    def body(self) -> bytes:
        """The body as encoded (without the checksum)."""
        return _unsigned(self) + self.signature

    def text(self) -> str:
        """The canonical (lower-case) text form."""
        return _to_text(self.body())


def _addr_bytes(host: str, port: int) -> bytes:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise LocalUsageError(f"invite addresses are IP addresses, not {host!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if type(port) is not int or not 0 < port < 65536:
        raise LocalUsageError(f"port must be 1..65535, not {port!r}")
    return ip.packed + port.to_bytes(2, "big")


def _record(typ: int, value: bytes) -> bytes:
    return bytes((typ, len(value))) + value


def _unsigned(inv: Invite) -> bytes:
    parts = [bytes((INVITE_VERSION,)), inv.identity]
    parts += [_record(PEER_RECORD, _addr_bytes(h, p)) for h, p in inv.peer_addrs]
    parts += [_record(DHT_RECORD, _addr_bytes(h, p)) for h, p in inv.dht_addrs]
    if inv.expires_ms is not None:
        parts.append(_record(EXPIRES_RECORD, inv.expires_ms.to_bytes(8, "big")))
    parts += [_record(RECOMMEND_RECORD, r) for r in inv.recommended]
    parts += [_record(t, v) for t, v in inv.skipped]
    return b"".join(parts)


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(CHECKSUM_TAG + body).digest()[:CHECKSUM_SIZE]


def _to_text(body: bytes) -> str:
    data = body + _checksum(body)
    n = int.from_bytes(data, "big") << (-len(data) * 8 % 5)
    count = -(-len(data) * 8 // 5)
    chars = [CHARSET[(n >> (5 * i)) & 31] for i in reversed(range(count))]
    return INVITE_PREFIX + "".join(chars)


def _ordered_unique(items: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    seen: dict[bytes, tuple[str, int]] = {}
    for host, port in items:
        seen.setdefault(_addr_bytes(host, port), (str(ipaddress.ip_address(host)), port))
    return tuple(seen.values())


def make_invite(
    key: SigningKey,
    *,
    peer_addrs: list[tuple[str, int]],
    dht_addrs: list[tuple[str, int]],
    expires_ms: int | None = None,
    recommended: list[bytes] | None = None,
    limits: InviteLimits = DEFAULT_LIMITS,
) -> str:
    """Sign and encode an invite for ``key``'s identity.

    Duplicate addresses and recommendations are dropped (first one kept).

    Args:
        key: the identity key that signs.
        peer_addrs, dht_addrs: (IP address, port) pairs, most preferred first.
        expires_ms: unix time in milliseconds after which readers refuse it.
        recommended: identities (32 bytes each) the inviter recommends.
        limits: the bounds to respect (a reader with the defaults accepts the result).

    Returns:
        The invite's text form.

    Raises:
        LocalUsageError: a host that is not an IP address, a bad port, too many
            addresses or recommendations, recommending oneself or an unusable key,
            or a negative expiry.
    """
    peers, dhts = _ordered_unique(peer_addrs), _ordered_unique(dht_addrs)
    recs = tuple(dict.fromkeys(recommended or ()))
    if max(len(peers), len(dhts)) > limits.max_addresses:
        raise LocalUsageError(f"an invite holds at most {limits.max_addresses} addresses of a kind")
    if len(recs) > limits.max_recommended:
        raise LocalUsageError(f"an invite recommends at most {limits.max_recommended} identities")
    for r in recs:
        if type(r) is not bytes or len(r) != PUBLIC_KEY_SIZE or public_key_problem(r):
            raise LocalUsageError("a recommended identity is not a usable 32-byte key")
        if r == key.public_key:
            raise LocalUsageError("an invite cannot recommend its own identity", reason="self")
    if expires_ms is not None and not 0 <= expires_ms < 2**64:
        raise LocalUsageError("expiry must be a unix time in milliseconds")
    draft = Invite(key.public_key, peers, dhts, expires_ms, recs, b"")
    signature = key.sign(draft.signed_bytes())
    return Invite(key.public_key, peers, dhts, expires_ms, recs, signature).text()


def looks_like_invite(text: str) -> bool:
    """Whether ``text`` is meant as an invite (starts with the prefix, any case)."""
    return isinstance(text, str) and text.strip()[: len(INVITE_PREFIX)].lower() == INVITE_PREFIX


def _bad(message: str, reason: str = "bad_invite") -> InviteError:
    return InviteError(f"not a valid invite: {message}", reason=reason)


def _text_to_body(text: str, limits: InviteLimits) -> bytes:
    if not isinstance(text, str):
        raise _bad("expected text")
    if len(text) > limits.max_chars + 64:  # room for surrounding white space, then strict
        raise _bad(f"longer than {limits.max_chars} characters")
    s = text.strip()
    if len(s) > limits.max_chars:
        raise _bad(f"longer than {limits.max_chars} characters")
    if not s.isascii():
        raise _bad("holds a character outside ASCII")
    if s.lower() != s and s.upper() != s:
        raise _bad("mixes upper and lower case")
    s = s.lower()
    if not s.startswith(INVITE_PREFIX):
        raise _bad(f"does not start with {INVITE_PREFIX!r}")
    data = s[len(INVITE_PREFIX) :]
    n = 0
    for i, c in enumerate(data):
        v = _CHAR_VALUE.get(c)
        if v is None:
            raise _bad(f"character {c!r} at position {len(INVITE_PREFIX) + i + 1} is not allowed")
        n = (n << 5) | v
    nbytes, pad = divmod(len(data) * 5, 8)
    if pad >= 5 or n & ((1 << pad) - 1):
        raise _bad("the last character is not a valid ending (cut off?)", "bad_checksum")
    raw = (n >> pad).to_bytes(nbytes, "big")
    if len(raw) < _HEADER + SIGNATURE_SIZE + CHECKSUM_SIZE:
        raise _bad("too short (cut off?)", "bad_checksum")
    body, check = raw[:-CHECKSUM_SIZE], raw[-CHECKSUM_SIZE:]
    if _checksum(body) != check:
        raise _bad("checksum does not match: a character is mistyped or missing", "bad_checksum")
    return body


def _address_from_record(value: bytes) -> tuple[str, int]:
    if len(value) not in (6, 18):
        raise _bad("an address is not 4 or 16 address bytes and a port")
    ip = ipaddress.ip_address(value[:-2])
    port = int.from_bytes(value[-2:], "big")
    if port == 0:
        raise _bad("an address has port 0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        raise _bad("an IPv4 address is written in IPv6 form")
    return str(ip), port


def decode_invite_untrusted(
    text: str, *, now_ms: int | None, limits: InviteLimits = DEFAULT_LIMITS
) -> Invite:
    """Decode and verify an invite as received (pasted, scanned, sent by a peer).

    The text is checked in this order: length (before anything is allocated),
    case, prefix, alphabet, padding, checksum, version, the identity's key
    rules, each record (order, size, count, content), the signature, and
    last the expiry against ``now_ms``.

    Args:
        text: the invite; surrounding white space is ignored, upper case accepted.
        now_ms: the caller's clock (unix milliseconds), or None to skip the
            expiry check (to show an expired invite's content).
        limits: the bounds; the defaults are spec/invite.md's.

    Returns:
        The verified :class:`Invite`.

    Raises:
        InviteError: ``reason`` ``bad_invite``, ``bad_checksum``,
            ``unsupported_version`` or ``expired``, with a message naming the rule.
        InvalidSignature: ``reason`` ``bad_signature``.
        Any other exception is a bug.
    """
    body = _text_to_body(text, limits)
    if len(body) > limits.max_body:
        raise _bad(f"longer than {limits.max_body} bytes")
    if body[0] != INVITE_VERSION:
        raise _bad(
            f"version {body[0]} is not supported (this reader knows 1)", "unsupported_version"
        )
    identity = body[1:_HEADER]
    problem = public_key_problem(identity)
    if problem is not None:
        raise _bad(f"the identity is not a usable key ({problem})")
    records, signature = body[_HEADER:-SIGNATURE_SIZE], body[-SIGNATURE_SIZE:]
    peers: list[tuple[str, int]] = []
    dhts: list[tuple[str, int]] = []
    recs: list[bytes] = []
    skipped: list[tuple[int, bytes]] = []
    expires: int | None = None
    last_type, pos, count = 0, 0, 0
    while pos < len(records):
        count += 1
        if count > limits.max_records:
            raise _bad(f"more than {limits.max_records} records")
        if pos + 2 > len(records):
            raise _bad("a record header is cut off")
        typ, length = records[pos], records[pos + 1]
        value = records[pos + 2 : pos + 2 + length]
        if len(value) != length:
            raise _bad(f"record type {typ:#04x} is cut off")
        pos += 2 + length
        if typ < last_type:
            raise _bad("records are not in type order")
        last_type = typ
        if typ in (PEER_RECORD, DHT_RECORD):
            addrs = peers if typ == PEER_RECORD else dhts
            if len(addrs) >= limits.max_addresses:
                raise _bad(f"more than {limits.max_addresses} addresses of a kind")
            addr = _address_from_record(value)
            if addr in addrs:
                raise _bad("an address is repeated")
            addrs.append(addr)
        elif typ == EXPIRES_RECORD:
            if expires is not None or length != 8:
                raise _bad("the expiry is repeated or not 8 bytes")
            expires = int.from_bytes(value, "big")
        elif typ == RECOMMEND_RECORD:
            if len(recs) >= limits.max_recommended:
                raise _bad(f"more than {limits.max_recommended} recommended identities")
            if length != PUBLIC_KEY_SIZE or public_key_problem(value) is not None:
                raise _bad("a recommended identity is not a usable key")
            if value in recs or value == identity:
                raise _bad("a recommended identity is repeated or the inviter's own")
            recs.append(value)
        elif typ >= _OPTIONAL_FROM:
            skipped.append((typ, value))
        else:
            raise _bad(f"record type {typ:#04x} is unknown and must be understood")
    invite = Invite(
        identity, tuple(peers), tuple(dhts), expires, tuple(recs), signature, tuple(skipped)
    )
    try:
        verify_strict(identity, signature, invite.signed_bytes())
    except InvalidSignature as exc:
        raise InvalidSignature(
            f"invite signature does not verify ({exc.reason}): altered or forged",
            reason="bad_signature",
        ) from None
    if now_ms is not None and expires is not None and now_ms >= expires:
        raise _bad("it has expired", "expired")
    return invite
