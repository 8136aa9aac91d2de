"""LAN announcements (spec/dht.md §12): decoding tables, round trips, the
listener's decisions, and the published vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from p2psocial.protocol.errors import DecodeError, LocalUsageError
from p2psocial.protocol.lan import (
    LAN_ANNOUNCE_SIZE,
    LAN_MAX_DATAGRAM,
    LanAnnounce,
    LanListener,
    LanVerdict,
    decode_lan_announce_untrusted,
    encode_lan_announce,
)

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "lan.json"
NODE = bytes(range(1, 21))
GOOD = b"p2ps-lan\x01\x00" + NODE + (7000).to_bytes(2, "big") + (7001).to_bytes(2, "big")


def test_layout() -> None:
    assert len(GOOD) == LAN_ANNOUNCE_SIZE == 34
    assert encode_lan_announce(LanAnnounce(NODE, 7000, 7001)) == GOOD
    assert decode_lan_announce_untrusted(GOOD) == LanAnnounce(NODE, 7000, 7001)


DECODE_CASES: list[tuple[str, bytes, str | None]] = [
    ("valid", GOOD, None),
    ("no link port", GOOD[:32] + b"\x00\x00", None),
    ("flags ignored", GOOD[:9] + b"\xff" + GOOD[10:], None),
    ("largest ports", GOOD[:30] + b"\xff\xff\xff\xff", None),
    ("empty", b"", "truncated"),
    ("tag only", b"p2ps-lan", "truncated"),
    ("over the limit", GOOD + bytes(LAN_MAX_DATAGRAM + 1 - len(GOOD)), "too_large"),
    ("limit is checked first", b"x" * (LAN_MAX_DATAGRAM + 1), "too_large"),
    ("wrong tag", b"p2ps-LAN" + GOOD[8:], "bad_tag"),
    ("version 0", GOOD[:8] + b"\x00" + GOOD[9:], "unsupported_version"),
    ("version 2, longer", GOOD[:8] + b"\x02" + GOOD[9:] + bytes(10), "unsupported_version"),
    ("one byte short", GOOD[:-1], "bad_length"),
    ("trailing byte", GOOD + b"\x00", "bad_length"),
    ("header only", GOOD[:9], "bad_length"),
    ("dht port 0", GOOD[:30] + b"\x00\x00" + GOOD[32:], "bad_port"),
]


@pytest.mark.parametrize(("name", "data", "reason"), DECODE_CASES, ids=[c[0] for c in DECODE_CASES])
def test_decode_table(name: str, data: bytes, reason: str | None) -> None:
    if reason is None:
        ann = decode_lan_announce_untrusted(data)
        assert ann.node_id == data[10:30]
        assert encode_lan_announce(ann)[:9] + encode_lan_announce(ann)[10:] == data[:9] + data[10:]
    else:
        with pytest.raises(DecodeError) as info:
            decode_lan_announce_untrusted(data)
        assert info.value.reason == reason


@pytest.mark.parametrize(
    "announce",
    [
        LanAnnounce(NODE[:19], 1, 0),
        LanAnnounce(NODE, 0, 0),
        LanAnnounce(NODE, 65536, 0),
        LanAnnounce(NODE, 1, -1),
        LanAnnounce(NODE, 1, 65536),
        LanAnnounce(NODE, True, 0),
    ],
)
def test_encode_refuses_bad_fields(announce: LanAnnounce) -> None:
    with pytest.raises(LocalUsageError):
        encode_lan_announce(announce)


announces = st.builds(
    LanAnnounce,
    st.binary(min_size=20, max_size=20),
    st.integers(1, 65535),
    st.integers(0, 65535),
)


@seed(16)
@settings(max_examples=300)
@given(announces)
def test_round_trip(announce: LanAnnounce) -> None:
    data = encode_lan_announce(announce)
    assert len(data) == LAN_ANNOUNCE_SIZE
    assert decode_lan_announce_untrusted(data) == announce


@seed(17)
@settings(max_examples=500)
@given(st.binary(max_size=2 * LAN_MAX_DATAGRAM))
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        ann = decode_lan_announce_untrusted(data)
    except DecodeError:
        return
    assert len(data) == LAN_ANNOUNCE_SIZE and ann.dht_port > 0


# ------------------------------------------------------------ the listener

OWN = b"\x00" * 20


def listener(**kw: Any) -> LanListener:
    return LanListener(OWN, **kw)


def test_own_announcement_is_self() -> None:
    assert listener().heard(LanAnnounce(OWN, 1, 0), "192.0.2.1", 0.0) is LanVerdict.SELF


def test_prove_once_then_known_until_recheck() -> None:
    lst = listener(recheck=300.0)
    ann = LanAnnounce(NODE, 7000, 7001)
    assert lst.heard(ann, "192.0.2.7", 0.0) is LanVerdict.PROVE
    # Copies heard while the hello runs, and after it, are known.
    assert lst.heard(ann, "192.0.2.7", 0.5) is LanVerdict.KNOWN
    lst.done(ann, "192.0.2.7", 1.0, proven=True)
    assert lst.found[NODE] == ("192.0.2.7", 7000, 7001)
    assert lst.heard(ann, "192.0.2.7", 300.5) is LanVerdict.KNOWN
    assert lst.heard(ann, "192.0.2.7", 301.0) is LanVerdict.PROVE
    # The same id at another address is another claim: proven on its own.
    assert lst.heard(ann, "192.0.2.8", 301.0) is LanVerdict.PROVE


def test_failed_proof_is_not_found_and_not_retried_soon() -> None:
    lst = listener(recheck=60.0)
    ann = LanAnnounce(NODE, 7000, 0)
    assert lst.heard(ann, "192.0.2.7", 0.0) is LanVerdict.PROVE
    lst.done(ann, "192.0.2.7", 3.0, proven=False)
    assert NODE not in lst.found
    assert lst.heard(ann, "192.0.2.7", 62.9) is LanVerdict.KNOWN
    assert lst.heard(ann, "192.0.2.7", 63.0) is LanVerdict.PROVE


def test_answer_rate() -> None:
    lst = listener(answer_burst=2, answer_rate=1.0)
    verdicts = [
        lst.heard(LanAnnounce(bytes([i + 1]) * 20, 7000, 0), "192.0.2.1", 10.0) for i in range(4)
    ]
    assert verdicts == [LanVerdict.PROVE] * 2 + [LanVerdict.RATE_LIMITED] * 2
    assert lst.heard(LanAnnounce(b"\x09" * 20, 7000, 0), "192.0.2.1", 11.0) is LanVerdict.PROVE


def test_announcers_are_bounded() -> None:
    lst = listener(max_announcers=4, answer_burst=100)
    for i in range(10):
        ann = LanAnnounce(bytes([i + 1]) * 20, 7000, 0)
        assert lst.heard(ann, "192.0.2.1", 0.0) is LanVerdict.PROVE
        lst.done(ann, "192.0.2.1", 0.0, proven=True)
    assert len(lst.found) == 4
    assert len(lst._handled) == 4
    # The first announcer was forgotten, so it is proven again.
    assert lst.heard(LanAnnounce(b"\x01" * 20, 7000, 0), "192.0.2.1", 1.0) is LanVerdict.PROVE


@pytest.mark.parametrize(("unit", "after"), [(0.0, 25.0), (0.5, 30.0), (0.999, 34.99)])
def test_announce_schedule(unit: float, after: float) -> None:
    lst = listener(interval=30.0, jitter=5.0)
    assert lst.next_announce() is None
    assert lst.announced(100.0, unit) == pytest.approx(100.0 + after)
    assert lst.next_announce() == pytest.approx(100.0 + after)


def test_new_peer_brings_the_next_announcement_forward() -> None:
    lst = listener(min_gap=1.0)
    lst.announced(100.0, 0.5)  # next at 130
    ann = LanAnnounce(NODE, 7000, 0)
    lst.heard(ann, "192.0.2.7", 100.2)
    lst.done(ann, "192.0.2.7", 100.3, proven=True)
    assert lst.next_announce() == 101.0
    # A peer already found does not bring it forward again.
    lst.announced(101.0, 0.5)
    lst.heard(ann, "192.0.2.7", 500.0)
    lst.done(ann, "192.0.2.7", 500.1, proven=True)
    assert lst.next_announce() == 131.0


def test_lan_peers_expire_unless_proven_again() -> None:
    lst = listener(recheck=300.0)
    ann = LanAnnounce(NODE, 7000, 0)
    other = LanAnnounce(b"\x07" * 20, 7000, 0)
    for a, t in ((ann, 0.0), (other, 400.0)):
        assert lst.heard(a, "192.0.2.7", t) is LanVerdict.PROVE
        lst.done(a, "192.0.2.7", t, proven=True)
    lst.expire(599.0)
    assert set(lst.found) == {NODE, other.node_id}
    lst.expire(600.0)
    assert set(lst.found) == {other.node_id}
    # Proven again in time, it stays.
    assert lst.heard(other, "192.0.2.7", 700.0) is LanVerdict.PROVE
    lst.done(other, "192.0.2.7", 700.0, proven=True)
    lst.expire(1200.0)
    assert set(lst.found) == {other.node_id}


def test_jitter_must_be_below_interval() -> None:
    with pytest.raises(LocalUsageError):
        LanListener(OWN, interval=5.0, jitter=5.0)


# ------------------------------------------------------------ vectors
# (tests/protocol/test_vectors.py checks lan.json against the generator)


def _vectors() -> dict[str, Any]:
    return dict(json.loads(VECTORS.read_text(encoding="utf-8")))


@pytest.mark.parametrize("index", range(len(_vectors()["valid"])))
def test_valid_vector(index: int) -> None:
    v = _vectors()["valid"][index]
    ann = decode_lan_announce_untrusted(bytes.fromhex(v["datagram"]))
    assert (ann.node_id.hex(), ann.dht_port, ann.link_port) == (
        v["node_id"],
        v["dht_port"],
        v["link_port"],
    )


@pytest.mark.parametrize("index", range(len(_vectors()["invalid"])))
def test_invalid_vector(index: int) -> None:
    v = _vectors()["invalid"][index]
    with pytest.raises(DecodeError) as info:
        decode_lan_announce_untrusted(bytes.fromhex(v["datagram"]))
    assert info.value.reason == v["reason"], v["name"]
