"""Capability ``ebt`` of the sync machine (spec/sync.md §13): ``mode`` puts a
feed on standby or back to live pushes, ``have`` notes the standby side's
head. Tables over a pair of machines joined by the real wire codec, and a
seeded property: any interleaving of posts, mode flips and deliveries ends
with equal heads once every feed is active again."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from p2psocial.protocol.encoding import encode
from p2psocial.protocol.errors import DecodeError, ProtocolError
from p2psocial.protocol.sync import SyncLimits, SyncSession
from p2psocial.protocol.wire import (
    Clock,
    Have,
    Mode,
    WireLimits,
    decode_message_untrusted,
    encode_message,
)

from .test_sync import A, B, C, D, Pair, chain, make_pair


def ebt_pair(a_len: int, b_len: int, **limits: Any) -> Pair:
    """a and b both want feed C; a holds ``a_len`` entries, b ``b_len``; both speak ebt."""
    pair = make_pair({C: chain(C, a_len)}, {C: chain(C, b_len)}, {C}, {C}, SyncLimits(**limits))
    pair.a.machine.enable_ebt()
    pair.b.machine.enable_ebt()
    pair.drain()
    return pair


def test_standby_stops_pushes_and_sends_haves_and_active_serves_the_rest() -> None:
    pair = ebt_pair(3, 0)
    assert pair.b.store.head(C)[0] == 3
    pair.perform(pair.b, pair.b.machine.set_mode(C, False))
    assert pair.b.machine.standing_by(C)
    pair.drain()
    pair.post(pair.a, C)  # the first have goes at once
    pair.drain()
    assert pair.b.store.head(C)[0] == 3  # not pushed
    assert pair.b.aheads == [(C, 4)]
    pair.post(pair.a, C)
    pair.post(pair.a, C)
    pair.drain()
    assert pair.b.aheads == [(C, 4)]  # the next ones wait for have_interval
    pair.now += SyncLimits().have_interval
    pair.poll(pair.a)
    pair.drain()
    assert pair.b.aheads == [(C, 4), (C, 6)]  # coalesced: one note, the latest head
    assert pair.a.machine.haves_sent == 2
    pair.perform(pair.b, pair.b.machine.set_mode(C, True))
    pair.drain()
    assert pair.b.store.feeds[C] == chain(C, 6)
    pair.post(pair.a, C)
    pair.drain()
    assert pair.b.store.head(C)[0] == 7  # pushed live again


def test_have_at_or_below_our_head_is_no_ahead() -> None:
    pair = ebt_pair(3, 3)
    pair.perform(pair.b, pair.b.machine.set_mode(C, False))
    pair.drain()
    actions = pair.b.machine.receive(Have(((C, 3),)), pair.now)
    assert actions == []
    actions = pair.b.machine.receive(Have(((D, 9),)), pair.now)  # not wanted: ignored
    assert actions == [] and pair.b.machine.ignored == 1


@pytest.mark.parametrize(
    ("ebt", "announced", "peer_wants", "repeat", "sends"),
    [
        (True, True, True, False, True),
        (False, True, True, False, False),  # the peer did not list ebt
        (True, False, True, False, False),  # catching or not wanted: never in our clock
        (True, True, False, False, False),  # the peer does not want it: it never pushes it
        (True, True, True, True, False),  # no change, nothing sent
    ],
)
def test_set_mode_sends_only_what_the_peer_may_receive(
    ebt: bool, announced: bool, peer_wants: bool, repeat: bool, sends: bool
) -> None:
    s = SyncSession({C: (2, b"i" * 32)} if announced else {}, limits=SyncLimits())
    if ebt:
        s.enable_ebt()
    s.start(0.0)
    if peer_wants:
        s.receive(Clock(((C, 2, None),)), 0.0)
    if repeat:
        s.set_mode(C, False)
    out = s.set_mode(C, False)
    assert bool(out) is sends
    if sends:
        assert [a.message for a in out] == [Mode(((C, 2, False),))]  # type: ignore[union-attr]


def _open(ebt: bool = True, **limits: Any) -> SyncSession:
    s = SyncSession({C: (0, None)}, limits=SyncLimits(newest_first=False, **limits))
    if ebt:
        s.enable_ebt()
    s.start(0.0)
    return s


@pytest.mark.parametrize(
    ("ebt", "clock", "messages", "reason"),
    [
        (False, True, [Mode(((C, 0, False),))], "unknown_message"),
        (False, True, [Have(((C, 1),))], "unknown_message"),
        (True, False, [Mode(((C, 0, False),))], "bad_state"),  # the peer never wanted C
        (True, True, [Mode(((D, 0, False),))], "bad_state"),
        (True, True, [Mode(((C, 5, False),))] * 1100, "mode_flood"),
        (True, True, [Have(((C, 1),))] * 20, "have_flood"),
        # Going active below what the peer was known to hold asks for a re-send.
        (True, True, [Mode(((C, 5, True),)), Mode(((C, 0, True),))] * 40, "want_flood"),
    ],
)
def test_ebt_violations(ebt: bool, clock: bool, messages: list[Any], reason: str) -> None:
    s = _open(ebt)
    if clock:
        s.receive(Clock(((C, 5, None),)), 0.0)
    with pytest.raises(ProtocolError) as info:
        for m in messages:
            s.receive(m, 0.0)
    assert info.value.reason == reason


def test_a_feed_the_peer_comes_to_want_again_starts_active() -> None:
    s = _open()
    s.receive(Clock(((C, 1, None),)), 0.0)
    s.receive(Mode(((C, 1, False),)), 0.0)
    assert s.local_update(C, (2, b"x" * 32)) != []  # a have, not a serve
    s.receive(Clock(((C, -1, None),)), 0.0)
    s.receive(Clock(((C, 2, None),)), 0.0)
    out = s.local_update(C, (3, b"y" * 32))
    assert [type(a).__name__ for a in out] == ["Serve"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"t": "mode", "feeds": []}, "bad_message"),
        ({"t": "mode", "feeds": [[C, 1]]}, "bad_message"),
        ({"t": "mode", "feeds": [[C, 1, 1]]}, "bad_message"),
        ({"t": "mode", "feeds": [[C, -1, True]]}, "bad_message"),
        ({"t": "mode", "feeds": [[C[:31], 1, True]]}, "bad_message"),
        ({"t": "mode", "feeds": [[C, 1, True], [C, 2, False]]}, "bad_message"),
        ({"t": "mode", "feeds": [[C, 1, True]], "x": 1}, "bad_message"),
        ({"t": "have", "feeds": [[C, 0]]}, "bad_message"),
        ({"t": "have", "feeds": [[C, 2**53]]}, "bad_message"),
        ({"t": "have", "feeds": [[C, 1, True]]}, "bad_message"),
        ({"t": "have", "feeds": [[C, 1], [C, 1]]}, "bad_message"),
        ({"t": "have", "feeds": [C, 1]}, "bad_message"),
        ({"t": "have"}, "bad_message"),
    ],
)
def test_invalid_ebt_messages_raise_decode_error(value: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_message_untrusted(encode(value))
    assert info.value.reason == reason


def test_ebt_lists_are_bounded_by_max_clock() -> None:
    limits = WireLimits(max_clock=2)
    three = tuple((bytes([i]) * 32, 1) for i in range(3))
    with pytest.raises(DecodeError) as info:
        decode_message_untrusted(encode_message(Have(three)), limits)
    assert info.value.reason == "bad_message"


_feeds = st.lists(
    st.tuples(st.binary(min_size=32, max_size=32), st.integers(1, 2**53 - 1)),
    min_size=1,
    max_size=8,
    unique_by=lambda f: f[0],
)


@seed(1302)
@settings(max_examples=200, deadline=None)
@given(feeds=_feeds, flags=st.lists(st.booleans(), min_size=8, max_size=8))
def test_ebt_messages_round_trip(feeds: list[tuple[bytes, int]], flags: list[bool]) -> None:
    have = Have(tuple(feeds))
    mode = Mode(tuple((a, s - 1, flags[i]) for i, (a, s) in enumerate(feeds)))
    for msg in (have, mode):
        assert decode_message_untrusted(encode_message(msg)) == msg


ebt_step = st.one_of(
    st.tuples(st.just("post"), st.sampled_from("ab"), st.sampled_from([A, B])),
    st.tuples(st.just("deliver"), st.sampled_from("ab"), st.booleans()),
    st.tuples(st.just("mode"), st.sampled_from("ab"), st.sampled_from([A, B]), st.booleans()),
    st.tuples(st.just("poll"), st.sampled_from("ab"), st.floats(0.0, 1.0)),
)


@seed(1303)
@settings(max_examples=200, deadline=None)
@given(
    a_lens=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    b_lens=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    steps=st.lists(ebt_step, max_size=60),
)
def test_any_mode_flips_converge_once_every_feed_is_active(
    a_lens: tuple[int, int], b_lens: tuple[int, int], steps: list[tuple[Any, ...]]
) -> None:
    """Posts, deliveries, timers and mode flips in any order; no link is
    dropped, no fork appears, and once both sides set every feed active
    again and the link quiesces, both hold the same heads."""
    pair = make_pair(
        {A: chain(A, a_lens[0]), B: chain(B, a_lens[1])},
        {A: chain(A, b_lens[0]), B: chain(B, b_lens[1])},
        {A, B},
        {A, B},
        SyncLimits(newest_first=False),
    )
    pair.a.machine.enable_ebt()
    pair.b.machine.enable_ebt()
    for kind, who, *args in steps:
        side = pair.a if who == "a" else pair.b
        if kind == "deliver":
            pair.deliver(side, split=bool(args[0]))
        elif kind == "post":
            f = args[0]
            if len(side.store.feeds.get(f, [])) >= len(pair.other(side).store.feeds.get(f, [])):
                pair.post(side, f)
        elif kind == "mode":
            pair.perform(side, side.machine.set_mode(args[0], args[1]))
        else:
            pair.now += args[0]
            pair.poll(side)
    for side in (pair.a, pair.b):
        for f in (A, B):
            pair.perform(side, side.machine.set_mode(f, True))
    pair.settle()
    assert pair.a.closed is None and pair.b.closed is None
    assert not pair.a.store.forks and not pair.b.store.forks
    for f in (A, B):
        assert pair.a.store.head(f) == pair.b.store.head(f), f.hex()[:4]


def test_standby_modes_are_paced_under_the_peers_bucket() -> None:
    """A burst of duplicates over many feeds asks for standby at most
    mode_burst / 2 times at once, so the peer's mode bucket never runs out."""
    feeds = [bytes([i % 256, i // 256]) * 16 for i in range(40)]
    s = SyncSession({f: (1, None) for f in feeds}, limits=SyncLimits(mode_burst=16, mode_rate=2))
    s.enable_ebt()
    s.start(0.0)
    s.receive(Clock(tuple((f, 1, None) for f in feeds)), 0.0)
    sent = [f for f in feeds if s.set_mode(f, False)]
    assert len(sent) == 8
    peer = SyncSession({f: (1, None) for f in feeds}, limits=SyncLimits(mode_burst=16, mode_rate=2))
    peer.enable_ebt()
    peer.start(0.0)
    peer.receive(Clock(tuple((f, 1, None) for f in feeds)), 0.0)
    for f in sent:
        peer.receive(Mode(((f, 1, False),)), 0.0)  # within its bucket
    s.receive(Clock(()), 10.0)  # time passes: our bucket refills
    assert s.set_mode(feeds[-1], False)
