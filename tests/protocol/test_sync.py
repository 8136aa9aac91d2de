"""The sans-IO sync machine: two sessions joined by a fake link.

The pair helper runs two :class:`SyncSession` machines, each with a tiny
in-memory feed store, and carries every message through the real wire codec
(encode, frame, decode) in per-direction FIFO order, as TCP would. Tests choose
which direction delivers next, so interleavings are explicit.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.errors import LocalUsageError, ProtocolError
from p2psocial.protocol.sync import (
    Action,
    Ahead,
    Close,
    Head,
    Ingest,
    PeekDone,
    Send,
    Serve,
    StoreForkProof,
    SyncLimits,
    SyncSession,
)
from p2psocial.protocol.wire import (
    Bye,
    Clock,
    Entries,
    FrameDecoder,
    Hello,
    Push,
    Want,
    WireLimits,
    decode_message_untrusted,
    encode_frame,
    encode_message,
)

BATCH = 3  # small batches exercise the batching paths


def author(n: int) -> bytes:
    return bytes([n]) * 32


def entry(a: bytes, seq: int, branch: int = 0) -> bytes:
    """A fake entry: only its bytes (and so its id) matter to the machine."""
    return b"E" + a[:1] + seq.to_bytes(4, "big") + bytes([branch])


def eid(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass
class FakeStore:
    """Feeds as lists of entry bytes; detects forks like the real store.

    ``feeds`` holds each feed contiguously from seq 1; with ``segments`` on,
    entries above a gap are kept in ``detached`` (as the real store keeps
    detached runs) and join the chain when the gap fills. ``order`` logs
    every stored (author, seq) in the order it arrived.
    """

    feeds: dict[bytes, list[bytes]] = field(default_factory=dict)
    forks: set[bytes] = field(default_factory=set)
    inbound: list[bytes] = field(default_factory=list)
    peeked: dict[bytes, list[tuple[int, bytes]]] = field(default_factory=dict)
    segments: bool = True
    batch: int = 3
    detached: dict[bytes, dict[int, bytes]] = field(default_factory=dict)
    order: list[tuple[bytes, int]] = field(default_factory=list)

    def head(self, a: bytes) -> Head:
        chain = self.feeds.get(a, [])
        return (len(chain), eid(chain[-1]) if chain else None)

    def serve(self, s: Serve) -> list[Entries | Push]:
        chain = self.feeds.get(s.author, [])
        head = len(chain)
        first, last = s.span(head)
        if s.live and first == last and last <= head:
            return [Push(s.author, last, (chain[last - 1], None))]
        if first > last:
            return [Entries(s.author, first if head else 0, head, ())]
        out: list[Entries | Push] = []
        for lo in range(first, last + 1, self.batch):
            hi = min(lo + self.batch - 1, last)
            items = tuple((chain[i - 1], None) for i in range(lo, hi + 1))
            out.append(Entries(s.author, lo, head, items))
        return out

    def ingest(self, a: bytes, start: int, items: tuple[tuple[bytes, bytes | None], ...]) -> bool:
        """Store items; True if the contiguous head moved. Gaps only with ``segments``."""
        if a in self.forks:
            return False
        chain = self.feeds.setdefault(a, [])
        above = self.detached.setdefault(a, {})
        moved = False
        for i, (data, _payload) in enumerate(items):
            seq = start + i
            held = chain[seq - 1] if seq <= len(chain) else above.get(seq)
            if held is not None:
                if held != data:
                    self.forks.add(a)
                    return moved
                continue
            self.order.append((a, seq))
            if seq == len(chain) + 1:
                chain.append(data)
                while len(chain) + 1 in above:
                    chain.append(above.pop(len(chain) + 1))
                moved = True
            else:
                assert self.segments, "machine handed the store a gap"
                above[seq] = data
        return moved

    def held(self, a: bytes) -> set[int]:
        """Every seq of ``a`` held, contiguous or detached."""
        return set(range(1, len(self.feeds.get(a, [])) + 1)) | set(self.detached.get(a, {}))


@dataclass
class Side:
    name: str
    store: FakeStore
    interest: set[bytes]
    limits: SyncLimits = field(default_factory=SyncLimits)
    machine: SyncSession = field(init=False)
    outbox: deque[bytes] = field(default_factory=deque)
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    closed: str | None = None
    peeks_done: list[bytes] = field(default_factory=list)
    #: capability ebt: the Ahead actions, (author, seq)
    aheads: list[tuple[bytes, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store.segments = self.limits.newest_first
        self.machine = SyncSession(
            {a: self.store.head(a) for a in self.interest}, limits=self.limits
        )


class Pair:
    """Two machines and a fake link. ``now`` is a shared fake clock."""

    def __init__(self, a: Side, b: Side) -> None:
        self.a, self.b = a, b
        self.now = 0.0
        self.perform(a, a.machine.start())
        self.perform(b, b.machine.start())

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    def perform(self, side: Side, actions: list[Action]) -> None:
        for act in actions:
            if isinstance(act, Send):
                self.send(side, act.message)
            elif isinstance(act, Serve):
                for msg in side.store.serve(act):
                    self.send(side, msg)
            elif isinstance(act, Ingest):
                if act.origin == "inbound":
                    side.store.inbound.append(act.items[0][0])
                    continue
                if act.origin == "peek":
                    got = side.store.peeked.setdefault(act.author, [])
                    got += [(act.start + i, it[0]) for i, it in enumerate(act.items)]
                    continue
                if side.store.ingest(act.author, act.start, act.items):
                    self.local_update(side, act.author)
                elif act.author in side.store.forks:
                    self.perform(side, side.machine.send_fork_proof(act.author, b"proof"))
            elif isinstance(act, StoreForkProof):
                pass  # the fake store has nothing to verify it against
            elif isinstance(act, PeekDone):
                side.peeks_done.append(act.author)
            elif isinstance(act, Close):
                side.closed = act.reason
            elif isinstance(act, Ahead):
                side.aheads.append((act.author, act.seq))

    def send(self, side: Side, msg: object) -> None:
        side.outbox.append(encode_frame(encode_message(msg)))  # type: ignore[arg-type]

    def local_update(self, side: Side, a: bytes) -> None:
        if a in side.store.forks:
            return
        self.perform(side, side.machine.local_update(a, side.store.head(a)))

    def post(self, side: Side, a: bytes) -> None:
        chain = side.store.feeds.setdefault(a, [])
        chain.append(entry(a, len(chain) + 1))
        self.local_update(side, a)

    def deliver(self, src: Side, split: bool = False) -> bool:
        """Deliver the next frame from ``src``; optionally one byte at a time."""
        if not src.outbox:
            return False
        dst = self.other(src)
        frame = src.outbox.popleft()
        chunks = [frame[i : i + 1] for i in range(len(frame))] if split else [frame]
        for chunk in chunks:
            for body in dst.decoder.feed(chunk):
                self.now += 0.01
                self.perform(dst, dst.machine.receive(decode_message_untrusted(body), self.now))
        return True

    def drain(self, limit: int = 10_000) -> int:
        n = 0
        while self.deliver(self.a) | self.deliver(self.b):
            n += 1
            assert n < limit, "the pair does not quiesce"
        return n

    def poll(self, side: Side) -> None:
        self.perform(side, side.machine.poll(self.now))

    def settle(self, rounds: int = 1_000) -> None:
        """Drain, and run the catch-up timers when due, until nothing is left."""
        for _ in range(rounds):
            self.drain()
            due = [t for t in (self.a.machine.next_poll(), self.b.machine.next_poll()) if t]
            if not due:
                return
            self.now = max(self.now, min(due))
            self.poll(self.a)
            self.poll(self.b)
        raise AssertionError("the catch-up timers never settle")


def make_pair(
    a_feeds: dict[bytes, list[bytes]],
    b_feeds: dict[bytes, list[bytes]],
    a_interest: set[bytes],
    b_interest: set[bytes],
    limits: SyncLimits | None = None,
    batch: int = BATCH,
    b_limits: SyncLimits | None = None,
) -> Pair:
    lim = limits or SyncLimits()
    return Pair(
        Side(
            "a",
            FakeStore({k: list(v) for k, v in a_feeds.items()}, batch=batch),
            set(a_interest),
            lim,
        ),
        Side(
            "b",
            FakeStore({k: list(v) for k, v in b_feeds.items()}, batch=batch),
            set(b_interest),
            b_limits or lim,
        ),
    )


def chain(a: bytes, n: int, branch_from: int | None = None) -> list[bytes]:
    return [
        entry(a, s, 1 if branch_from is not None and s >= branch_from else 0)
        for s in range(1, n + 1)
    ]


A, B, C, D = author(1), author(2), author(3), author(4)

# --- tables ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_len", "b_len"),
    [(0, 0), (0, 1), (1, 0), (5, 5), (0, 10), (10, 3), (3, 10), (7, 8)],
)
def test_catch_up_one_shared_feed(a_len: int, b_len: int) -> None:
    pair = make_pair({C: chain(C, a_len)}, {C: chain(C, b_len)}, {C}, {C})
    pair.drain()
    assert (
        pair.a.store.feeds.get(C, [])
        == pair.b.store.feeds.get(C, [])
        == chain(C, max(a_len, b_len))
    )


def test_only_feeds_both_want_are_replicated() -> None:
    pair = make_pair({C: chain(C, 4), D: chain(D, 4)}, {}, {C, D}, {C})
    pair.drain()
    assert pair.b.store.feeds.get(C) == chain(C, 4)
    assert D not in pair.b.store.feeds


def test_live_posts_are_pushed_one_by_one() -> None:
    pair = make_pair({}, {}, {A}, {A})
    pair.drain()
    pair.post(pair.a, A)
    assert len(pair.a.outbox) == 1
    msg = decode_message_untrusted(pair.a.outbox[0][4:])
    assert isinstance(msg, Push) and msg.seq == 1
    pair.drain()
    for _ in range(5):
        pair.post(pair.a, A)
    pair.drain()
    assert pair.b.store.feeds[A] == pair.a.store.feeds[A]
    assert len(pair.b.store.feeds[A]) == 6


def test_no_echo_back_to_the_sender() -> None:
    pair = make_pair({}, {}, {A}, {A})
    pair.drain()
    pair.post(pair.a, A)
    pair.deliver(pair.a)
    # b stored it; it must not send it back to a.
    assert not pair.b.outbox


def test_catch_up_overlaps_one_entry() -> None:
    pair = make_pair({C: chain(C, 2)}, {C: chain(C, 9)}, {C}, {C})
    pair.deliver(pair.a)  # a's clock reaches b
    served = [decode_message_untrusted(f[4:]) for f in pair.b.outbox]
    batches = [m for m in served if isinstance(m, Entries)]
    assert batches[0].start == 2, "serve starts at the peer's head, to catch forks"
    assert sum(len(m.items) for m in batches) == 8


def test_equal_heads_with_different_ids_reveal_a_fork() -> None:
    pair = make_pair({C: chain(C, 5)}, {C: chain(C, 5, branch_from=4)}, {C}, {C})
    pair.drain()
    assert C in pair.a.store.forks and C in pair.b.store.forks


def test_longer_diverging_history_reveals_the_fork_in_one_round() -> None:
    pair = make_pair({C: chain(C, 5)}, {C: chain(C, 8, branch_from=3)}, {C}, {C})
    pair.drain()
    assert C in pair.a.store.forks
    assert pair.a.store.feeds[C] == chain(C, 5)  # frozen: nothing past the fork


def test_gap_in_push_is_repaired_with_want() -> None:
    pair = make_pair({A: chain(A, 3)}, {A: chain(A, 3)}, {A}, {A})
    pair.drain()
    pair.a.store.feeds[A] += [entry(A, 4), entry(A, 5)]
    # a learns of 4 and 5 but only 5 is pushed (simulating a lost push).
    pair.a.machine.local_update(A, pair.a.store.head(A))
    pair.a.outbox.clear()
    pair.perform(pair.b, pair.b.machine.receive(Push(A, 5, (entry(A, 5), None)), 1.0))
    msg = decode_message_untrusted(pair.b.outbox[0][4:])
    assert msg == Want(A, 4)
    pair.drain()
    assert pair.b.store.feeds[A] == chain(A, 5)


def test_interest_added_later_starts_sync_and_removal_stops_it() -> None:
    pair = make_pair({C: chain(C, 4)}, {}, {C}, set())
    pair.drain()
    assert C not in pair.b.store.feeds
    pair.perform(pair.b, pair.b.machine.set_interest({C: (0, None)}))
    pair.drain()
    assert pair.b.store.feeds[C] == chain(C, 4)
    pair.perform(pair.b, pair.b.machine.set_interest({}))
    pair.drain()
    pair.post(pair.a, C)
    assert not pair.a.outbox, "no pushes for a feed the peer withdrew"


def test_batches_in_flight_for_a_withdrawn_feed_are_ignored() -> None:
    pair = make_pair({C: chain(C, 6)}, {}, {C}, {C})
    pair.deliver(pair.b)  # b's clock: a serves 6 entries in 2 batches
    pair.perform(pair.b, pair.b.machine.set_interest({}))
    pair.drain()
    assert pair.b.closed is None
    assert pair.b.machine.ignored == 6


def test_peek_reads_the_latest_entries_once() -> None:
    pair = make_pair({D: chain(D, 20)}, {}, set(), set())
    pair.drain()
    pair.perform(pair.b, pair.b.machine.peek(D, 5))
    pair.drain()
    assert pair.b.peeks_done == [D]
    assert pair.b.store.peeked[D] == [(s, entry(D, s)) for s in range(16, 21)]
    assert D not in pair.b.store.feeds


def test_peek_of_unknown_feed_finishes_empty() -> None:
    pair = make_pair({}, {}, set(), set())
    pair.drain()
    pair.perform(pair.b, pair.b.machine.peek(D, 5))
    pair.drain()
    assert pair.b.peeks_done == [D]


def test_frames_split_byte_by_byte_decode_the_same() -> None:
    pair = make_pair({C: chain(C, 7)}, {}, {C}, {C})
    while pair.deliver(pair.a, split=True) | pair.deliver(pair.b, split=True):
        pass
    assert pair.b.store.feeds[C] == chain(C, 7)


def test_bye_closes_and_later_messages_are_violations() -> None:
    pair = make_pair({}, {}, set(), set())
    pair.drain()
    pair.perform(pair.a, pair.a.machine.close("shutdown"))
    pair.drain()
    assert pair.b.closed == "shutdown"
    with pytest.raises(ProtocolError) as exc:
        pair.b.machine.receive(Clock(()), 0.0)
    assert exc.value.reason == "bad_state"
    with pytest.raises(LocalUsageError):
        pair.a.machine.local_update(A, (1, None))


# --- violations --------------------------------------------------------------


def open_session(interest: set[bytes] | None = None, **limits: float) -> SyncSession:
    s = SyncSession({a: (0, None) for a in interest or set()}, limits=SyncLimits(**limits))  # type: ignore[arg-type]
    s.start()
    return s


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([Entries(C, 1, 1, ((b"x", None),))], "unsolicited"),
        ([Hello(A, bytes(32), 1)], "bad_state"),
        ([Want(C, 1)] * 40, "want_flood"),
        ([Push(D, n + 1, (b"x", None)) for n in range(40)], "inbound_flood"),
        ([Clock(tuple((author(10 + i), 0, None) for i in range(5)))], "too_many_feeds"),
        ([Clock(())] * 100, "clock_flood"),
    ],
)
def test_violations_raise_protocol_error(messages: list[object], reason: str) -> None:
    s = open_session(max_feeds=4)
    with pytest.raises(ProtocolError) as exc:
        for m in messages:
            s.receive(m, 0.0)  # type: ignore[arg-type]
    assert exc.value.reason == reason


def test_clock_rewinds_spend_want_tokens() -> None:
    """Re-stating "seq 0" would make us re-serve whole feeds: it is rate limited."""
    s = open_session()
    feeds = [author(10 + i) for i in range(40)]
    s.receive(Clock(tuple((f, 5, None) for f in feeds)), 0.0)
    with pytest.raises(ProtocolError) as exc:
        s.receive(Clock(tuple((f, 0, None) for f in feeds)), 0.0)
    assert exc.value.reason == "want_flood"


def test_want_bucket_refills_with_time() -> None:
    s = open_session(want_burst=2, want_rate=1)
    s.receive(Want(C, 1), 0.0)
    s.receive(Want(C, 1), 0.0)
    with pytest.raises(ProtocolError):
        s.receive(Want(C, 1), 0.5)
    s2 = open_session(want_burst=2, want_rate=1)
    for t in range(10):
        s2.receive(Want(C, 1), float(t))


def test_receive_before_start_is_bad_state() -> None:
    s = SyncSession({})
    with pytest.raises(ProtocolError) as exc:
        s.receive(Clock(()), 0.0)
    assert exc.value.reason == "bad_state"


def test_peek_limit_is_bounded_locally() -> None:
    s = open_session()
    actions = s.peek(D, 10_000)
    assert actions == [Send(Want(D, 0, WireLimits().max_peek))]
    with pytest.raises(LocalUsageError):
        for i in range(SyncLimits().max_peeks + 1):
            s.peek(author(10 + i), 1)


def test_bye_from_peer_yields_close() -> None:
    s = open_session()
    assert s.receive(Bye("done"), 0.0) == [Close("done")]


# --- convergence property -----------------------------------------------------

FEEDS = [A, B, C, D]

step = st.one_of(
    st.tuples(st.just("post"), st.sampled_from("ab"), st.sampled_from(FEEDS)),
    st.tuples(st.just("deliver"), st.sampled_from("ab"), st.booleans()),
    st.tuples(st.just("toggle"), st.sampled_from("ab"), st.sampled_from(FEEDS)),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    a_lens=st.fixed_dictionaries({f: st.integers(0, 8) for f in FEEDS}),
    b_lens=st.fixed_dictionaries({f: st.integers(0, 8) for f in FEEDS}),
    a_interest=st.sets(st.sampled_from(FEEDS)),
    b_interest=st.sets(st.sampled_from(FEEDS)),
    steps=st.lists(step, max_size=60),
    newest_first=st.booleans(),
    recent=st.integers(1, 6),
)
def test_pairs_converge_for_shared_feeds(
    a_lens: dict[bytes, int],
    b_lens: dict[bytes, int],
    a_interest: set[bytes],
    b_interest: set[bytes],
    steps: list[tuple[str, str, object]],
    newest_first: bool,
    recent: int,
) -> None:
    """Any local posts and any interleaving: shared feeds end with equal heads.

    Both sides start with prefixes of one true history per feed (no forks);
    only the side that holds a feed's longest prefix may post to it, so
    histories never diverge.
    """
    pair = make_pair(
        {f: chain(f, n) for f, n in a_lens.items()},
        {f: chain(f, n) for f, n in b_lens.items()},
        a_interest,
        b_interest,
        SyncLimits(newest_first=newest_first, recent=recent, max_catch_up=2),
    )
    for kind, who, arg in steps:
        side = pair.a if who == "a" else pair.b
        if kind == "deliver":
            pair.deliver(side, split=bool(arg))
        elif kind == "post":
            f = arg
            assert isinstance(f, bytes)
            other = pair.other(side)
            if len(side.store.feeds.get(f, [])) >= len(other.store.feeds.get(f, [])):
                pair.post(side, f)
        else:
            f = arg
            assert isinstance(f, bytes)
            if f in side.interest:
                side.interest.discard(f)
            else:
                side.interest.add(f)
            pair.perform(
                side, side.machine.set_interest({x: side.store.head(x) for x in side.interest})
            )
    pair.settle()
    assert pair.a.closed is None and pair.b.closed is None
    assert not pair.a.store.forks and not pair.b.store.forks
    for f in pair.a.interest & pair.b.interest:
        assert pair.a.store.head(f) == pair.b.store.head(f), f.hex()[:4]
        n = len(pair.a.store.feeds.get(f, []))
        assert pair.a.store.feeds.get(f, []) == chain(f, n)


def test_token_bucket_ignores_a_clock_that_goes_back() -> None:
    from p2psocial.protocol.ratelimit import TokenBucket

    bucket = TokenBucket(2.0, 1.0)
    assert bucket.take(10.0) and bucket.take(10.0)
    assert not bucket.take(9.0)  # earlier time: nothing refilled, nothing lost
    assert not bucket.take(10.5)
    assert bucket.take(11.0)
    assert not bucket.take(11.0)


# --- newest-first catch-up (spec/sync.md 5.6) ----------------------------------


def items(a: bytes, first: int, last: int) -> tuple[tuple[bytes, bytes | None], ...]:
    return tuple((entry(a, s), None) for s in range(first, last + 1))


def head_of(a: bytes, seq: int) -> Head:
    return (seq, eid(entry(a, seq)))


CLOCK_C0 = Send(Clock(((C, 0, None),)))

#: (limits, events, the actions of the last event). Events run on a session
#: that wants C, held from nothing; "start" is its first event (at time 0).
CATCH_UP_TABLE: list[tuple[str, dict[str, object], list[tuple[object, ...]], list[Action]]] = [
    (
        "start: C stays out of the clock, its newest are peeked",
        {},
        [("start",)],
        [Send(Clock(())), Send(Want(C, 0, 50))],
    ),
    (
        "newest_first off: the classic clock",
        {"newest_first": False},
        [("start",)],
        [CLOCK_C0],
    ),
    (
        "peek answer below 1,000: a limited want of the 500 below",
        {},
        [("start",), ("recv", Entries(C, 951, 1000, items(C, 951, 1000)))],
        [Ingest(C, 951, items(C, 951, 1000), "sync"), Send(Want(C, 451, 500))],
    ),
    (
        "peek answer far from 1: a want of max_batch, one token",
        {},
        [("start",), ("recv", Entries(C, 2951, 3000, items(C, 2951, 3000)))],
        [Ingest(C, 2951, items(C, 2951, 3000), "sync"), Send(Want(C, 1951))],
    ),
    (
        "more than catch_up_below missing below the recent part: the classic clock",
        {},
        [("start",), ("recv", Entries(C, 9951, 10000, items(C, 9951, 10000)))],
        [Ingest(C, 9951, items(C, 9951, 10000), "sync"), CLOCK_C0],
    ),
    (
        "950 missing, catch_up_below 400: the classic clock",
        {"catch_up_below": 400},
        [("start",), ("recv", Entries(C, 951, 1000, items(C, 951, 1000)))],
        [Ingest(C, 951, items(C, 951, 1000), "sync"), CLOCK_C0],
    ),
    (
        "a batch that does not reach what was asked asks nothing yet",
        {},
        [
            ("start",),
            ("recv", Entries(C, 2951, 3000, items(C, 2951, 3000))),
            ("recv", Entries(C, 1951, 3000, items(C, 1951, 1953))),
        ],
        [Ingest(C, 1951, items(C, 1951, 1953), "sync")],
    ),
    (
        "the last range reaches seq 1: nothing more to ask",
        {},
        [
            ("start",),
            ("recv", Entries(C, 951, 1000, items(C, 951, 1000))),
            ("recv", Entries(C, 451, 1000, items(C, 451, 950))),
            ("recv", Entries(C, 1, 1000, items(C, 1, 450))),
        ],
        [Ingest(C, 1, items(C, 1, 450), "sync")],
    ),
    (
        "our head reaches the lowest seq received: announced at that head",
        {},
        [
            ("start",),
            ("recv", Entries(C, 1, 20, items(C, 1, 20))),
            ("local", head_of(C, 20)),
        ],
        [Send(Clock(((C, 20, eid(entry(C, 20))),)))],
    ),
    (
        "a head below the lowest seq received is not enough",
        {},
        [
            ("start",),
            ("recv", Entries(C, 951, 1000, items(C, 951, 1000))),
            ("local", head_of(C, 10)),
        ],
        [],
    ),
    (
        "the peer holds nothing: the classic clock",
        {},
        [("start",), ("recv", Entries(C, 0, 0, ()))],
        [CLOCK_C0],
    ),
    (
        "an empty answer to a range: the classic clock at our head",
        {},
        [
            ("start",),
            ("recv", Entries(C, 951, 1000, items(C, 951, 1000))),
            ("recv", Entries(C, 451, 1000, ())),
        ],
        [CLOCK_C0],
    ),
    (
        "a push while catching is kept (the peer does not know we want C)",
        {},
        [("start",), ("recv", Push(C, 7, (entry(C, 7), None)))],
        [Ingest(C, 7, ((entry(C, 7), None),), "push")],
    ),
    (
        "withdrawn while catching: no clock delta, it was never announced",
        {},
        [("start",), ("interest", {})],
        [],
    ),
    (
        "no answer for catch_up_stall seconds: the classic clock",
        {},
        [("start",), ("poll", 4.9), ("poll", 5.0)],
        [CLOCK_C0],
    ),
    (
        "a request waits for a token of our bucket ...",
        {"catch_up_burst": 1.0, "catch_up_rate": 2.0},
        [("start",), ("recv", Entries(C, 951, 1000, items(C, 951, 1000)))],
        [Ingest(C, 951, items(C, 951, 1000), "sync")],
    ),
    (
        "... and poll sends it once the bucket refills",
        {"catch_up_burst": 1.0, "catch_up_rate": 2.0},
        [("start",), ("recv", Entries(C, 951, 1000, items(C, 951, 1000))), ("poll", 0.6)],
        [Send(Want(C, 451, 500))],
    ),
    (
        "a feed held in part takes the classic path",
        {},
        [("start", head_of(C, 5))],
        [Send(Clock(((C, 5, eid(entry(C, 5))),)))],
    ),
]


@pytest.mark.parametrize(
    ("limits", "events", "expected"),
    [row[1:] for row in CATCH_UP_TABLE],
    ids=[row[0] for row in CATCH_UP_TABLE],
)
def test_catch_up_transitions(
    limits: dict[str, object], events: list[tuple[object, ...]], expected: list[Action]
) -> None:
    s: SyncSession | None = None
    out: list[Action] = []
    for ev in events:
        kind = ev[0]
        if kind == "start":
            head = ev[1] if len(ev) > 1 else (0, None)
            s = SyncSession({C: head}, limits=SyncLimits(**limits))  # type: ignore[arg-type, dict-item]
            out = s.start(0.0)
            continue
        assert s is not None
        if kind == "recv":
            out = s.receive(ev[1], 0.1)  # type: ignore[arg-type]
        elif kind == "local":
            out = s.local_update(C, ev[1])  # type: ignore[arg-type]
        elif kind == "poll":
            out = s.poll(float(ev[1]))  # type: ignore[arg-type]
        else:
            out = s.set_interest(ev[1])  # type: ignore[arg-type]
    assert out == expected


def test_at_most_max_catch_up_feeds_catch_up_at_once() -> None:
    feeds = [author(10 + i) for i in range(6)]
    s = SyncSession({f: (0, None) for f in feeds}, limits=SyncLimits(max_catch_up=4))
    out = s.start(0.0)
    assert out[0] == Send(Clock(tuple((f, 0, None) for f in feeds[4:])))
    assert out[1:] == [Send(Want(f, 0, 50)) for f in feeds[:4]]
    assert set(s.catching()) == set(feeds[:4])


def test_catch_up_peer_head_and_progress() -> None:
    s = SyncSession({C: (0, None)})
    s.start(0.0)
    s.receive(Entries(C, 951, 1000, items(C, 951, 1000)), 0.1)
    assert s.catching() == {C: (1000, 951)}
    assert s.peer_head(C) == 1000
    assert s.outstanding_wants() == 1


def stored_order(pair: Pair, a: bytes) -> list[int]:
    return [seq for who, seq in pair.b.store.order if who == a]


@pytest.mark.parametrize("old_peer", [False, True])
def test_long_feed_arrives_newest_first_then_whole(old_peer: bool) -> None:
    """The latest 50 are stored before seq 1, ranges go downwards, and an
    old peer (classic limits, the same serving code) serves them the same."""
    n = 2_600
    pair = make_pair(
        {C: chain(C, n)},
        {},
        {C},
        {C},
        SyncLimits(newest_first=not old_peer),
        batch=100,
        b_limits=SyncLimits(),
    )
    pair.settle()
    order = stored_order(pair, C)
    assert sorted(order) == list(range(1, n + 1)), "every entry once"
    assert set(order[:50]) == set(range(n - 49, n + 1)), "the recent part first"
    firsts = [order[0]] + [s for prev, s in itertools.pairwise(order) if s != prev + 1]
    assert firsts == sorted(firsts, reverse=True), "then filled in downwards"
    assert pair.b.store.feeds[C] == chain(C, n) and not pair.b.store.detached[C]
    assert pair.b.store.head(C) == pair.a.store.head(C)
    # Announced once whole: live posts are pushed as usual.
    pair.post(pair.a, C)
    pair.settle()
    assert pair.b.store.feeds[C] == pair.a.store.feeds[C]


catch_step = st.one_of(
    st.tuples(st.just("deliver"), st.sampled_from("ab"), st.booleans()),
    st.tuples(st.just("post"), st.just("a"), st.booleans()),
    st.tuples(st.just("wait"), st.sampled_from("ab"), st.floats(0.0, 6.0)),
    st.tuples(st.just("head"), st.just("b"), st.booleans()),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    n=st.integers(0, 2_300),
    held=st.integers(0, 3),
    recent=st.integers(1, 80),
    batch=st.integers(1, 400),
    steps=st.lists(catch_step, max_size=120),
)
def test_any_interleaving_ends_with_the_whole_feed(
    n: int, held: int, recent: int, batch: int, steps: list[tuple[str, str, object]]
) -> None:
    """Whatever arrives in whatever order (deliveries from either side, posts
    during the catch-up, waits past the stall timeout, the head reaching the
    segments from below through "another link"), b ends holding a's whole
    feed contiguously, and its head is a's (the id of the true entry at it)."""
    pair = make_pair(
        {C: chain(C, n)},
        {C: chain(C, min(held, n))} if held and n else {},
        {C},
        {C},
        SyncLimits(recent=recent),
        batch=batch,
    )
    for kind, who, arg in steps:
        side = pair.a if who == "a" else pair.b
        if kind == "deliver":
            pair.deliver(side, split=bool(arg) and len(side.outbox) < 50)
        elif kind == "post":
            pair.post(pair.a, C)
        elif kind == "wait":
            pair.now += float(arg)  # type: ignore[arg-type]
            pair.poll(side)
        else:
            # Another link brought the next entries: the head moves by itself.
            have = len(pair.b.store.feeds.get(C, []))
            if have < len(pair.a.store.feeds[C]) if C in pair.a.store.feeds else False:
                pair.b.store.ingest(C, have + 1, ((pair.a.store.feeds[C][have], None),))
                pair.local_update(pair.b, C)
    pair.settle()
    assert pair.a.closed is None and pair.b.closed is None
    assert not pair.b.store.forks
    want = pair.a.store.feeds.get(C, [])
    assert pair.b.store.feeds.get(C, []) == want
    assert pair.b.store.head(C) == pair.a.store.head(C)
    assert not pair.b.store.detached.get(C), "no segment left over"


def test_peer_asked_remembers_wants_even_for_feeds_out_of_the_shared_set() -> None:
    s = SyncSession({})
    s.start(0.0)
    assert not s.peer_asked(C)
    s.receive(Want(C, 0, 50), 0.1)
    assert s.peer_asked(C) and not s.peer_wants(C)
    for i in range(300):
        s.receive(Want(bytes([1, i % 256, i // 256]) + bytes(29), 0, 1), 100.0 + i)
    assert not s.peer_asked(C), "bounded: the oldest are forgotten"
