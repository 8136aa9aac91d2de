"""Capability ebt (spec/sync.md §13) against hostile peers and awkward
timing: the real Senders over real SyncSessions, with links that record what
is sent to them, under trio's mock clock. Each test began as a hostile
review's reproduction of a way to starve a feed, trip a peer's limits, or
leave nobody pushing."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from p2psocial.node.replication.senders import Senders
from p2psocial.protocol.errors import DecodeError
from p2psocial.protocol.sync import Send, SyncLimits, SyncSession
from p2psocial.protocol.wire import Clock, Mode, decode_message_untrusted, encode_message

F = b"F" * 32
H = b"h" * 32


class FakeLink:
    def __init__(self, name: str, session: SyncSession) -> None:
        self.name = name
        self.session = session
        self.reason: str | None = None
        self.sent: list[Any] = []

    def __repr__(self) -> str:
        return self.name

    def is_open(self) -> bool:
        return self.reason is None and self.session.state == "open"

    def perform_local(self, actions: list[Any]) -> None:
        self.sent.extend(a.message for a in actions if isinstance(a, Send))

    def modes(self, author: bytes = F) -> list[bool]:
        return [on for m in self.sent if isinstance(m, Mode) for a, _, on in m.feeds if a == author]

    def quiet(self) -> bool:
        """What the peer believes: told standby last (and not active since)."""
        m = self.modes()
        return bool(m) and m[-1] is False


def a_session(feeds: dict[bytes, tuple[int, bytes | None]], now: float = 0.0) -> SyncSession:
    s = SyncSession(feeds, limits=SyncLimits(newest_first=False))
    s.start(now)
    s.enable_ebt()
    s.receive(Clock(tuple((a, h[0], h[1]) for a, h in feeds.items())), now)
    return s


async def test_a_lying_standby_peer_cannot_keep_a_feed_from_its_honest_holder(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A liar can delay a feed, never stop it (spec/sync.md §13 rule 3).
    The attack, which starved the feed before promises: L (hostile) and X (honest) both hold F. L lies in haves, and whenever it
    is made the sender it pushes one old entry (a duplicate): rule 2 then
    makes X 'active' in Senders without sending X mode active, and L is on
    standby again with a fresh lie whose _ahead entry is older than X's.
    Every promotion of L wipes X's pending _ahead entry, so X never takes
    the feed back, and our head never moves."""
    heads = {F: 5}
    s = Senders(lambda a: heads.get(a, 0))
    X = FakeLink("X", a_session({F: (5, H)}))
    L = FakeLink("L", a_session({F: (5, H)}))
    x_head = 5
    heads[F] = 6
    x_head = 6
    s.delivered(X, F, new=True, live=True)  # X first: active
    s.delivered(L, F, new=False, live=True)  # L pushes the same entry: standby
    assert L.quiet()
    s.ahead(L, F, 2**53 - 1)  # the lie
    next_post = trio.current_time() + 2.0
    l_active_seen = 0
    for _ in range(int(60 / 0.25)):
        await trio.sleep(0.25)
        now = trio.current_time()
        if now >= next_post:
            next_post = now + 2.0
            x_head += 1  # the author posts; X gets it
            if not X.quiet():
                heads[F] = x_head  # X pushes it, we store it
                s.delivered(X, F, new=True, live=True)
            else:
                s.ahead(X, F, x_head)  # X stands by: it sends a have
        s.tick()
        # L reacts to every mode active it is sent: one duplicate push and a new lie.
        if len(L.modes()) > l_active_seen and L.modes()[-1] is True:
            l_active_seen = len(L.modes())
            s.delivered(L, F, new=False, live=True)
            s.ahead(L, F, 2**53 - 1)
    # 30 posts in 60 s: an honest holder was linked the whole time.
    assert heads[F] >= x_head - 2, (heads[F], x_head, X.modes(), s.statistics())


async def test_two_lying_peers_cannot_keep_a_feed_from_its_honest_holder(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two liars take turns and still cannot stop the feed. The attack, as it
    worked before promises: two liars L1, L2 (two node keys cost nothing) take turns: each
    promotion of one deletes every _ahead entry of the feed, including the
    honest X's, while the other liar already has an older entry pending."""
    heads = {F: 6}
    s = Senders(lambda a: heads.get(a, 0))
    X = FakeLink("X", a_session({F: (6, H)}))
    L1 = FakeLink("L1", a_session({F: (6, H)}))
    L2 = FakeLink("L2", a_session({F: (6, H)}))
    s.delivered(X, F, new=True, live=True)
    s.delivered(L1, F, new=False, live=True)
    s.delivered(L2, F, new=False, live=True)
    assert L1.quiet() and L2.quiet()
    s.ahead(L1, F, 2**53 - 1)
    await trio.sleep(0.1)
    s.ahead(L2, F, 2**53 - 1)
    x_head = 6
    next_post = trio.current_time() + 2.0
    for _ in range(int(60 / 0.25)):
        await trio.sleep(0.25)
        now = trio.current_time()
        if now >= next_post:
            next_post = now + 2.0
            x_head += 1
            if not X.quiet():
                heads[F] = x_head
                s.delivered(X, F, new=True, live=True)
            else:
                s.ahead(X, F, x_head)
        s.tick()
        for liar in (L1, L2):
            # A liar on standby repeats its lie every 0.25 s (its have
            # bucket allows 4/s); a repeat keeps the first 'since'.
            if liar.quiet():
                s.ahead(liar, F, 2**53 - 1)
    assert heads[F] >= x_head - 2, (heads[F], x_head, X.modes())


async def test_a_switch_by_rule_2_tells_the_new_sender_to_push(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Somebody always pushes after a rule-2 switch. The honest race that left
    nobody pushing before: Y was put on standby, but a range Y had queued before it
    read the mode arrives first (a catch-up batch: new). Then X's (active)
    live push of that entry is a duplicate: rule 2 puts X on standby and
    makes Y active in Senders, but Y is never sent mode active."""
    heads = {F: 5}
    s = Senders(lambda a: heads.get(a, 0))
    X = FakeLink("X", a_session({F: (5, H)}))
    Y = FakeLink("Y", a_session({F: (5, H)}))
    heads[F] = 6
    s.delivered(X, F, new=True, live=True)
    s.delivered(Y, F, new=False, live=True)
    assert Y.quiet()
    heads[F] = 7
    s.delivered(Y, F, new=True, live=False)  # Y's batch, queued before standby
    s.delivered(X, F, new=False, live=True)  # X's push of 7: duplicate
    assert not (X.quiet() and Y.quiet()), (X.modes(), Y.modes(), s.statistics())


async def test_link_gone_promotes_many_feeds_within_the_peers_mode_bucket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """1,500 followed feeds, X active for all, Y on standby for all. X's link
    ends: the mode actives to Y are paced under Y's mode bucket (1,024, 64/s),
    so Y never drops us for mode_flood, and every feed gets Y as its sender."""
    feeds = {bytes([i % 256, i // 256]) * 16: (3, H) for i in range(1500)}
    heads = {a: 3 for a in feeds}
    s = Senders(lambda a: heads.get(a, 0))
    X = FakeLink("X", a_session(feeds))
    Y = FakeLink("Y", a_session(feeds))
    # Y's own session (the standby side), to receive what we send it as sent.
    y_side = SyncSession(feeds, limits=SyncLimits(newest_first=False))
    y_side.start(0.0)
    y_side.enable_ebt()
    y_side.receive(Clock(tuple((a, 3, H) for a in feeds)), 0.0)

    def forward() -> None:
        for m in Y.sent:
            y_side.receive(m, trio.current_time())  # raises mode_flood if we overran it
        Y.sent.clear()

    for a in feeds:
        s.delivered(X, a, new=True, live=True)
    for a in feeds:
        while True:
            s.delivered(Y, a, new=False, live=True)
            forward()
            if Y.session.standing_by(a):
                break
            await trio.sleep(0.1)  # paced at half the peer's rate: wait for a token
            Y.session.poll(trio.current_time())  # as the pool's pacer does
    await trio.sleep(30)  # Y's bucket is full again
    Y.session.poll(trio.current_time())
    X.reason = "eof"
    s.link_gone(X)
    forward()
    for _ in range(400):
        if not any(Y.session.standing_by(a) for a in feeds):
            break
        await trio.sleep(0.25)
        Y.session.poll(trio.current_time())
        s.tick()
        forward()
    assert not any(Y.session.standing_by(a) for a in feeds)
    assert s.statistics()["feeds_with_sender"] == len(feeds)


async def test_a_withdrawal_by_the_standby_side_ends_its_standby(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Any clock change of a feed makes it active both ways (spec/sync.md §13),
    so no link stays on standby unseen. The case that lost a feed before:
    Y stands by for F; Y's owner unfollows F for a moment (its clock says
    -1), and meanwhile X, the sender, goes. link_gone 'promotes' Y: set_mode
    sends nothing (Y does not want F now) but Y is removed from _standby and
    recorded as the active link. Y follows F again: its record keeps
    standby=True (its own withdrawal does not end it), so it sends haves and
    never pushes; our Senders ignores those haves (Y is not in _standby)."""
    heads = {F: 6}
    s = Senders(lambda a: heads.get(a, 0))
    X = FakeLink("X", a_session({F: (6, H)}))
    a_y = a_session({F: (6, H)})
    Y = FakeLink("Y", a_y)
    y_side = SyncSession({F: (6, H)}, limits=SyncLimits(newest_first=False))
    y_side.start(0.0)
    y_side.enable_ebt()
    y_side.receive(Clock(((F, 6, H),)), 0.0)
    s.delivered(X, F, new=True, live=True)
    s.delivered(Y, F, new=False, live=True)
    for m in Y.sent:
        y_side.receive(m, 0.0)
    Y.sent.clear()
    # Y unfollows F: its clock delta reaches us.
    for act in y_side.set_interest({}, 1.0):
        if isinstance(act, Send):
            a_y.receive(act.message, 1.0)
    X.reason = "eof"
    s.link_gone(X)
    # Y follows F again.
    for act in y_side.set_interest({F: (6, H)}, 2.0):
        if isinstance(act, Send):
            a_y.receive(act.message, 2.0)
    # The author posts 7, 8: Y gets them.
    out = y_side.local_update(F, (7, b"7" * 32)) + y_side.local_update(F, (8, b"8" * 32))
    pushed = [a for a in out if not isinstance(a, Send)]
    haves = [a.message for a in out if isinstance(a, Send)]
    for m in haves:
        for act in a_y.receive(m, 2.0):
            s.ahead(Y, F, act.seq)  # type: ignore[union-attr]
    await trio.sleep(5)
    s.tick()
    # Someone must now push F to us: Y is our only holder.
    assert pushed or (Y.sent and Y.modes()[-1] is True), (pushed, haves, Y.sent, s.statistics())


def test_a_mode_longer_than_the_peers_bucket_is_refused_by_the_decoder() -> None:
    """The mode bucket holds 1,024 feed entries, so a mode may list at most
    1,024 (spec/sync.md §13): a longer one is bad_message when decoded, not a
    message every receiver would then drop as a flood."""
    feeds = [bytes([i % 256, i // 256]) * 16 for i in range(1025)]
    with pytest.raises(DecodeError) as info:
        decode_message_untrusted(encode_message(Mode(tuple((a, 3, False) for a in feeds))))
    assert info.value.reason == "bad_message"
    ok = Mode(tuple((a, 3, False) for a in feeds[:1024]))
    assert decode_message_untrusted(encode_message(ok)) == ok


def test_our_unfollow_and_refollow_makes_the_feed_active_both_ways() -> None:
    """We put the peer on standby, unfollow F and follow it again: the peer's
    record starts active and pushes, and ours agrees, so a later duplicate
    can put it on standby again (before, our session still said standing_by
    and never asked again)."""
    a = a_session({F: (3, H)})
    b = SyncSession({F: (3, H)}, limits=SyncLimits(newest_first=False))
    b.start(0.0)
    b.enable_ebt()
    b.receive(Clock(((F, 3, H),)), 0.0)
    for act in a.set_mode(F, False):
        b.receive(act.message, 0.0)  # type: ignore[union-attr]
    for act in a.set_interest({}, 1.0) + a.set_interest({F: (3, H)}, 2.0):
        if isinstance(act, Send):
            b.receive(act.message, 2.0)
    pushes = b.local_update(F, (4, b"4" * 32))
    assert any(not isinstance(x, Send) for x in pushes)  # b pushes again
    assert a.set_mode(F, False), "a duplicate can never put the peer on standby again"
