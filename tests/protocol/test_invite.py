"""Invites (spec/invite.md): tables of refusals, a seeded round-trip property,
vector replay, and mutated invites refused."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.bech32 import CHARSET
from p2psocial.protocol.errors import InvalidSignature, LocalUsageError
from p2psocial.protocol.identity import SigningKey, identity_from_text
from p2psocial.protocol.invite import (
    CHECKSUM_TAG,
    INVITE_PREFIX,
    INVITE_REASONS,
    INVITE_TAG,
    Invite,
    InviteError,
    InviteLimits,
    decode_invite_untrusted,
    looks_like_invite,
    make_invite,
)

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "invite.json"
KEY = SigningKey.from_seed(b"\x11" * 32)
OTHER = SigningKey.from_seed(b"\x22" * 32)
FRIENDS = [SigningKey.from_seed(bytes([0x30 + i]) * 32).public_key for i in range(9)]
T = 1_700_000_000_000
LOOP = [("127.0.0.1", 4001)]


def _encode_body(body: bytes) -> str:
    """The text form of any body, written independently of the library (spec §2)."""
    data = body + hashlib.sha256(CHECKSUM_TAG + body).digest()[:5]
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return INVITE_PREFIX + "".join(CHARSET[int(bits[i : i + 5], 2)] for i in range(0, len(bits), 5))


def _signed_body(key: SigningKey, unsigned: bytes) -> bytes:
    return unsigned + key.sign(INVITE_TAG + unsigned)


def _unsigned(*records: bytes, version: int = 1, identity: bytes = KEY.public_key) -> bytes:
    return bytes([version]) + identity + b"".join(records)


def _rec(typ: int, value: bytes) -> bytes:
    return bytes([typ, len(value)]) + value


V4 = bytes([127, 0, 0, 1]) + (4001).to_bytes(2, "big")


def test_round_trip_with_everything() -> None:
    text = make_invite(
        KEY,
        peer_addrs=[("127.0.0.1", 4001), ("::1", 4002), ("127.0.0.1", 4001)],
        dht_addrs=[("10.0.0.7", 4003)],
        expires_ms=T,
        recommended=FRIENDS[:3],
    )
    assert text.startswith(INVITE_PREFIX) and text == text.lower()
    inv = decode_invite_untrusted(text, now_ms=T - 1)
    assert inv.identity == KEY.public_key
    assert inv.peer_addrs == (("127.0.0.1", 4001), ("::1", 4002))  # the duplicate dropped
    assert inv.dht_addrs == (("10.0.0.7", 4003),)
    assert inv.expires_ms == T and inv.recommended == tuple(FRIENDS[:3])
    assert inv.text() == text
    # Upper case (a QR code's alphanumeric mode) and surrounding white space are fine.
    assert decode_invite_untrusted(f"  {text.upper()}\n", now_ms=None) == inv
    assert looks_like_invite(text.upper()) and not looks_like_invite("p2ps1qqq")


def test_expiry_is_checked_against_the_callers_clock() -> None:
    text = make_invite(KEY, peer_addrs=LOOP, dht_addrs=LOOP, expires_ms=T)
    assert decode_invite_untrusted(text, now_ms=T - 1).expires_ms == T
    with pytest.raises(InviteError) as info:
        decode_invite_untrusted(text, now_ms=T)
    assert info.value.reason == "expired"
    assert decode_invite_untrusted(text, now_ms=None).expires_ms == T  # None: show it anyway


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"peer_addrs": [("example.org", 1)]}, "local_usage"),
        ({"peer_addrs": [("127.0.0.1", 0)]}, "local_usage"),
        ({"peer_addrs": [("10.0.0.1", p) for p in range(1, 10)]}, "local_usage"),
        ({"recommended": FRIENDS}, "local_usage"),
        ({"recommended": [KEY.public_key]}, "self"),
        ({"recommended": [b"\x00" * 32]}, "local_usage"),
        ({"expires_ms": -1}, "local_usage"),
    ],
)
def test_make_invite_refuses(kwargs: dict[str, Any], reason: str) -> None:
    args: dict[str, Any] = {"peer_addrs": LOOP, "dht_addrs": LOOP, **kwargs}
    with pytest.raises(LocalUsageError) as info:
        make_invite(KEY, **args)
    assert info.value.reason == reason


GOOD = _signed_body(KEY, _unsigned(_rec(1, V4), _rec(2, V4)))

# (name, text, reason): one row per rule of spec/invite.md §3.
REFUSED: list[tuple[str, Any, str]] = [
    ("not_text", b"p2psinv1", "bad_invite"),
    ("too_long", INVITE_PREFIX + "q" * 1400, "bad_invite"),
    ("non_ascii", INVITE_PREFIX + "qqé", "bad_invite"),
    ("mixed_case", _encode_body(GOOD).replace("q", "Q", 1), "bad_invite"),
    ("wrong_prefix", _encode_body(GOOD).replace("p2psinv1", "p2psinx1"), "bad_invite"),
    ("identity_not_invite", "p2ps1" + "q" * 58, "bad_invite"),
    ("bad_character", _encode_body(GOOD)[:20] + "b" + _encode_body(GOOD)[21:], "bad_invite"),
    ("cut_off", _encode_body(GOOD)[:-3], "bad_checksum"),
    ("too_short", _encode_body(b"\x01" * 40), "bad_checksum"),
    (
        "one_char_changed",
        _encode_body(GOOD)[:30]
        + ("q" if _encode_body(GOOD)[30] != "q" else "p")
        + _encode_body(GOOD)[31:],
        "bad_checksum",
    ),
    ("version_2", _encode_body(_signed_body(KEY, _unsigned(version=2))), "unsupported_version"),
    (
        "identity_small_order",
        _encode_body(_unsigned(identity=b"\x01" + b"\x00" * 31) + b"\x00" * 64),
        "bad_invite",
    ),
    ("record_cut_off", _encode_body(_signed_body(KEY, _unsigned(b"\x01\x06\x7f"))), "bad_invite"),
    ("header_cut_off", _encode_body(_signed_body(KEY, _unsigned(b"\x01"))), "bad_invite"),
    (
        "out_of_order",
        _encode_body(_signed_body(KEY, _unsigned(_rec(2, V4), _rec(1, V4)))),
        "bad_invite",
    ),
    ("port_0", _encode_body(_signed_body(KEY, _unsigned(_rec(1, V4[:4] + b"\0\0")))), "bad_invite"),
    ("addr_5_bytes", _encode_body(_signed_body(KEY, _unsigned(_rec(1, V4[:5])))), "bad_invite"),
    (
        "v4_mapped",
        _encode_body(_signed_body(KEY, _unsigned(_rec(1, b"\0" * 10 + b"\xff\xff" + V4)))),
        "bad_invite",
    ),
    (
        "repeated_addr",
        _encode_body(_signed_body(KEY, _unsigned(_rec(1, V4), _rec(1, V4)))),
        "bad_invite",
    ),
    (
        "nine_addrs",
        _encode_body(
            _signed_body(KEY, _unsigned(*(_rec(1, V4[:4] + bytes([0, p])) for p in range(1, 10))))
        ),
        "bad_invite",
    ),
    (
        "two_expiries",
        _encode_body(_signed_body(KEY, _unsigned(_rec(3, bytes(8)), _rec(3, bytes(8))))),
        "bad_invite",
    ),
    ("expiry_4_bytes", _encode_body(_signed_body(KEY, _unsigned(_rec(3, bytes(4))))), "bad_invite"),
    (
        "recommend_self",
        _encode_body(_signed_body(KEY, _unsigned(_rec(4, KEY.public_key)))),
        "bad_invite",
    ),
    (
        "recommend_twice",
        _encode_body(_signed_body(KEY, _unsigned(_rec(4, FRIENDS[0]), _rec(4, FRIENDS[0])))),
        "bad_invite",
    ),
    (
        "recommend_nine",
        _encode_body(_signed_body(KEY, _unsigned(*(_rec(4, f) for f in FRIENDS)))),
        "bad_invite",
    ),
    (
        "recommend_bad_key",
        _encode_body(_signed_body(KEY, _unsigned(_rec(4, b"\x00" * 32)))),
        "bad_invite",
    ),
    (
        "unknown_critical",
        _encode_body(_signed_body(KEY, _unsigned(_rec(0x05, b"x")))),
        "bad_invite",
    ),
    (
        "too_many_records",
        _encode_body(_signed_body(KEY, _unsigned(*(_rec(0x90, b"") for _ in range(33))))),
        "bad_invite",
    ),
    ("signed_by_other", _encode_body(_signed_body(OTHER, _unsigned(_rec(1, V4)))), "bad_signature"),
    (
        "entry_tag_signature",
        _encode_body(_unsigned() + KEY.sign(b"p2psocial/entry/v1\x00" + _unsigned())),
        "bad_signature",
    ),
]


@pytest.mark.parametrize("name, text, reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(name: str, text: Any, reason: str) -> None:
    assert reason in INVITE_REASONS
    with pytest.raises((InviteError, InvalidSignature)) as info:
        decode_invite_untrusted(text, now_ms=T)
    assert info.value.reason == reason, info.value.message
    assert _RULE[name] in info.value.message, info.value.message


# Which rule each row breaks, as its message says (a row must not pass by breaking another).
_RULE = {
    "not_text": "expected text",
    "too_long": "longer than",
    "non_ascii": "outside ASCII",
    "mixed_case": "mixes upper and lower",
    "wrong_prefix": "does not start with",
    "identity_not_invite": "does not start with",
    "bad_character": "position 21",
    "cut_off": "cut off",
    "too_short": "too short",
    "one_char_changed": "checksum does not match",
    "version_2": "version 2",
    "identity_small_order": "small_order_key",
    "record_cut_off": "0x01 is cut off",
    "header_cut_off": "header is cut off",
    "out_of_order": "type order",
    "port_0": "port 0",
    "addr_5_bytes": "4 or 16",
    "v4_mapped": "IPv6 form",
    "repeated_addr": "address is repeated",
    "nine_addrs": "more than 8 addresses",
    "two_expiries": "expiry is repeated",
    "expiry_4_bytes": "not 8 bytes",
    "recommend_self": "inviter's own",
    "recommend_twice": "is repeated",
    "recommend_nine": "more than 8 recommended",
    "recommend_bad_key": "not a usable key",
    "unknown_critical": "must be understood",
    "too_many_records": "more than 32 records",
    "signed_by_other": "does not verify",
    "entry_tag_signature": "does not verify",
}


def test_unknown_optional_records_are_skipped_and_still_signed() -> None:
    relay = _rec(0x80, b"\x07future relay format")
    body = _signed_body(KEY, _unsigned(_rec(1, V4), relay, _rec(0xFE, b"")))
    inv = decode_invite_untrusted(_encode_body(body), now_ms=T)
    assert inv.peer_addrs == (("127.0.0.1", 4001),)
    assert inv.skipped == ((0x80, b"\x07future relay format"), (0xFE, b""))
    assert inv.body() == body
    # Dropping the skipped record breaks the signature: it is covered.
    stripped = body[: -64 - len(relay) - 2] + body[-64:]
    with pytest.raises(InvalidSignature):
        decode_invite_untrusted(_encode_body(stripped.replace(relay, b"")), now_ms=T)


def test_limits_are_arguments() -> None:
    text = make_invite(KEY, peer_addrs=LOOP, dht_addrs=LOOP, recommended=FRIENDS[:2])
    with pytest.raises(InviteError):
        decode_invite_untrusted(text, now_ms=None, limits=InviteLimits(max_recommended=1))
    with pytest.raises(InviteError):
        decode_invite_untrusted(text, now_ms=None, limits=InviteLimits(max_chars=100))


def test_mutated_invites_are_refused() -> None:
    """Every single-character change, deletion and insertion is refused (seeded sample)."""
    text = make_invite(KEY, peer_addrs=LOOP, dht_addrs=LOOP, expires_ms=T, recommended=FRIENDS[:1])
    rng = random.Random(19)
    data_start = len(INVITE_PREFIX)
    for _ in range(600):
        i = rng.randrange(data_start, len(text))
        op = rng.choice(("sub", "del", "ins"))
        c = rng.choice(CHARSET)
        if op == "sub":
            if c == text[i]:
                continue
            mutated = text[:i] + c + text[i + 1 :]
        elif op == "del":
            mutated = text[:i] + text[i + 1 :]
        else:
            mutated = text[:i] + c + text[i:]
        with pytest.raises((InviteError, InvalidSignature)):
            decode_invite_untrusted(mutated, now_ms=None)


def test_a_forged_body_with_a_fresh_checksum_fails_the_signature() -> None:
    """Changing a port and recomputing the checksum, as an attacker can, is still caught."""
    body = bytearray(GOOD)
    body[33 + 2 + 5] ^= 1  # low byte of the first record's port
    with pytest.raises(InvalidSignature) as info:
        decode_invite_untrusted(_encode_body(bytes(body)), now_ms=None)
    assert info.value.reason == "bad_signature"


_ipv4 = st.tuples(
    st.integers(1, 223), st.integers(0, 255), st.integers(0, 255), st.integers(1, 254)
)
_addr = st.one_of(
    _ipv4.map(lambda t: ".".join(map(str, t))),
    st.binary(min_size=16, max_size=16)
    .filter(lambda b: b[:12] != b"\0" * 10 + b"\xff\xff")
    .map(lambda b: str(__import__("ipaddress").IPv6Address(b))),
)
_addrs = st.lists(st.tuples(_addr, st.integers(1, 65535)), max_size=8, unique_by=lambda a: a)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    peers=_addrs,
    dhts=_addrs,
    expires=st.none() | st.integers(0, 2**64 - 1),
    recs=st.lists(st.sampled_from(FRIENDS[:8]), max_size=8, unique=True),
)
def test_round_trip_property(
    peers: list[tuple[str, int]],
    dhts: list[tuple[str, int]],
    expires: int | None,
    recs: list[bytes],
) -> None:
    text = make_invite(KEY, peer_addrs=peers, dht_addrs=dhts, expires_ms=expires, recommended=recs)
    inv = decode_invite_untrusted(text, now_ms=None)
    assert (inv.peer_addrs, inv.dht_addrs) == (tuple(peers), tuple(dhts))
    assert inv.expires_ms == expires and inv.recommended == tuple(recs)
    assert inv.text() == text and _encode_body(inv.body()) == text
    assert len(text) <= InviteLimits().max_chars


# ------------------------------------------------------------ vectors


def test_vectors_do_not_drift() -> None:
    """spec/vectors/invite.json is exactly what spec/generate_vectors.py writes."""
    spec = importlib.util.spec_from_file_location(
        "generate_vectors", VECTORS.parents[1] / "generate_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.render(gen.build_invite()) == VECTORS.read_text(encoding="utf-8")


def _vectors() -> dict[str, Any]:
    return dict(json.loads(VECTORS.read_text(encoding="utf-8")))


@pytest.mark.parametrize("index", range(len(_vectors()["valid"])))
def test_valid_vector(index: int) -> None:
    v = _vectors()["valid"][index]
    inv = decode_invite_untrusted(v["text"], now_ms=v["now_ms"])
    assert inv.identity == identity_from_text(v["identity"])
    assert [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in inv.peer_addrs] == v["peer"]
    assert [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in inv.dht_addrs] == v["dht"]
    assert inv.expires_ms == v["expires_ms"]
    assert [identity_from_text(r) for r in v["recommended"]] == list(inv.recommended)
    assert inv.body().hex() == v["body"]
    # The signature verified above; check it again with the raw message of the vector.
    assert (INVITE_TAG + bytes.fromhex(v["body"])[:-64]).hex() == v["signed"]
    assert _encode_body(bytes.fromhex(v["body"])) == v["text"]


@pytest.mark.parametrize("index", range(len(_vectors()["invalid"])))
def test_invalid_vector(index: int) -> None:
    v = _vectors()["invalid"][index]
    with pytest.raises((InviteError, InvalidSignature)) as info:
        decode_invite_untrusted(v["text"], now_ms=v["now_ms"])
    assert info.value.reason == v["reason"], v["name"]


def test_invite_dataclass_is_frozen() -> None:
    inv = decode_invite_untrusted(_encode_body(GOOD), now_ms=None)
    assert isinstance(inv, Invite)
    with pytest.raises(AttributeError):
        inv.identity = b""  # type: ignore[misc]
