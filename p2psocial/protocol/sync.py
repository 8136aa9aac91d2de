"""The replication state machine of one peer link (sans-IO).

Theory (spec/sync.md §5). After the hello, each side sends a :class:`Clock`:
for every feed it wants, the seq (and id) of its head. From then on, for each
feed *both* sides want, the side with more sends (epidemic broadcast, as SSB's
EBT): on a peer's clock, or whenever our head for a feed moves past what the
peer is known to hold, we *serve* the missing range. The serve starts one entry
below the peer's head (an overlap of one), so that a peer holding a different
entry at that seq - an equivocating author - learns it in the same round; two
equal seqs with different head ids trigger the same one-entry exchange.

The receiver checks every batch against what it holds: a batch that leaves a
gap is dropped and the gap asked for with :class:`Want`; a batch for a feed
it never asked about is a protocol violation. ``Want`` is otherwise used for
*peeks* (a one-shot read of a feed the asker does not follow), and every want
spends a token from a small bucket, so an endless stream of wants ends the
link instead of the node's patience.

A feed we want but hold nothing of (a new follow) is caught up *newest-first*
(spec/sync.md §5.6): it stays out of our clock, so the peer serves nothing of
it by itself; we peek its newest ``recent`` entries, which also tells us the
peer's head, then ask one-shot ranges downwards until the store holds the feed
contiguously, and only then announce it at that head. A long feed (more than
``catch_up_below`` missing under the recent part) is announced right after its
recent part instead, so the unpaced classic serve fills it from the bottom. The store keeps the
ranges as detached runs (each authenticated by its top entry's signature and
its hash links), so the recent part is readable long before the feed is whole.
Those are the peeks and one-shot wants every version-1 peer already serves.

The machine never does I/O. Inputs are decoded messages, local head changes
and ``now`` (seconds, any monotonic origin); outputs are :data:`Action` values
the caller performs in order: send a message, serve a range from the store,
ingest a batch into the store, store a fork proof, report a finished peek, or
close. Its states, per session and per feed, are described below and held
as data in two tables.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .errors import LocalUsageError, ProtocolError
from .ratelimit import TokenBucket
from .wire import (
    DEFAULT_WIRE_LIMITS,
    Bye,
    Clock,
    Entries,
    ForkProofMessage,
    Have,
    Item,
    Message,
    Mode,
    Push,
    Want,
    WireLimits,
)

# Theory of the states (spec/sync.md §5)
# ---------------------------------------
#
# A session is in one of three states:
#
#   new      created; start() sends our first clock and opens it. Nothing is
#            accepted yet (the node starts a session before it reads).
#   open     every message but hello/auth (the link's business, done before)
#            is taken, each by its handler in _SESSION_TABLE.
#   closed   after close() (we said bye) or the peer's bye. Nothing more is
#            accepted; local calls raise LocalUsageError, close() does nothing.
#
#   new --start()--> open --bye received, or close()--> closed
#   new --close()--> closed
#
# A message with no entry for the state in _SESSION_TABLE is a violation:
# ProtocolError ``bad_state``, naming the state and the message.
#
# Every feed a session deals in has one _Feed record. Its ``state`` is our
# interest in the feed, and says what a batch or a push of it means
# (_FEED_TABLE):
#
#   unknown    not wanted, never was. A push is an unsolicited entry (paid for
#              from the inbound bucket); a batch answers our peek of the feed,
#              or else was never asked for (``unsolicited``).
#   wanted     in our clock. A batch or push that continues our head goes to
#              the store; one that leaves a gap is dropped, and the gap asked
#              for with a want, which makes the feed
#   filling    wanted, with that gap-repair want outstanding (one per feed:
#              later gaps are only counted). An empty batch, a batch reaching
#              the sender's head, or our own head reaching what the peer holds
#              (the gap was filled through another link) makes it wanted again.
#   withdrawn  dropped from our interest. Batches and pushes still in flight
#              for it are ignored and counted; batches still answer a peek.
#   catching   wanted, held from nothing up, newest-first (its _CatchUp says
#              how far). Not in our clock yet. Every batch goes to the store as
#              a detached run; the answer that completes our request (empty, or
#              reaching what we asked or the sender's head) sends the next
#              request below the lowest seq received, paced by our own bucket
#              (a due request waits for poll()). A push is unsolicited (the
#              peer does not know we want the feed) but kept.
#
#   unknown, withdrawn --set_interest adds it--> wanted, or catching if we
#              hold nothing, newest_first is on and fewer than max_catch_up
#              feeds of this session are catching (start() does the same)
#   wanted --gap--> filling --filled--> wanted
#   wanted, filling, catching --set_interest drops it--> withdrawn
#   catching --our contiguous head reaches the lowest seq received, nothing
#              asked (local_update); an empty answer; or neither an answer
#              nor a head move for catch_up_stall seconds (poll)--> wanted,
#              announced in a clock delta at our head (the classic path then
#              serves whatever is still missing)
#
# Two facts of a feed are independent of that state. ``peeking``: a peek of
# ours is unanswered, until a batch of a feed we do not want comes back empty
# or reaching the sender's head (a wanted feed's batches take the wanted path).
# ``theirs``: None while the peer does not want the feed, else what it is known
# to hold, set by its clock (seq -1 clears it) and raised by what it sends us;
# with ``sent`` it keeps us from echoing. Wanted (or filling) feeds with
# ``theirs`` set are shared: we serve them (_maybe_serve). A record that is
# unknown, not peeking and not wanted by the peer is dropped, so records are
# bounded by our interest and withdrawals, max_feeds and max_peeks.

__all__ = [
    "Action",
    "Ahead",
    "Close",
    "Duplicate",
    "Head",
    "Ingest",
    "PeekDone",
    "Send",
    "Serve",
    "StoreForkProof",
    "SyncLimits",
    "SyncSession",
]

#: A feed head as this node holds it: (seq, id of the entry at seq). seq 0 and
#: id None mean "wanted, nothing held".
Head: TypeAlias = tuple[int, bytes | None]

Origin: TypeAlias = Literal["sync", "push", "peek", "inbound"]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to the peer."""

    message: Message


@dataclass(frozen=True, slots=True)
class Serve:
    """Read ``author``'s entries ``from_seq..to_seq`` from the store and send them.

    ``to_seq`` None means "up to whatever the store holds"; ``limit`` bounds the
    count (peeks; ``from_seq`` 0 then means "the latest ``limit``"). ``live``
    marks a single new entry, best sent as a :class:`Push`. The range is sent
    as :class:`Entries` batches, an empty one if nothing is held.
    """

    author: bytes
    from_seq: int
    to_seq: int | None
    limit: int | None = None
    live: bool = False

    def span(self, head: int) -> tuple[int, int]:
        """The seqs ``first..last`` this asks for of a feed held up to ``head``
        (``first > last``: none of them is held)."""
        first, last = self.from_seq, head if self.to_seq is None else min(self.to_seq, head)
        if self.limit is not None:
            if first == 0:
                first = max(1, head - self.limit + 1)
            last = min(last, first + self.limit - 1)
        return max(first, 1), last


@dataclass(frozen=True, slots=True)
class Ingest:
    """Hand received items to the store; they claim seqs ``start``, ``start+1``, ...

    ``origin`` says why they are acceptable: ``sync``/``push`` for a feed we
    want, ``peek`` for an answered peek, ``inbound`` for an unsolicited push of
    a feed we do not want (keep it only if local policy says so, e.g. it
    mentions us). After storing, the caller reports new heads with
    :meth:`SyncSession.local_update` (on every session).
    """

    author: bytes
    start: int
    items: tuple[Item, ...]
    origin: Origin


@dataclass(frozen=True, slots=True)
class StoreForkProof:
    """Verify and keep a fork proof the peer sent (bytes still untrusted)."""

    proof: bytes


@dataclass(frozen=True, slots=True)
class PeekDone:
    """The peer has sent everything it will for a peek of ``author``."""

    author: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The peer said bye; close the link."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ahead:
    """Capability ``ebt``: the peer holds ``author``'s feed up to ``seq``,
    past our head, by its :class:`~.wire.Have` (it stands by for that feed
    or did until lately). Whom to take the feed from is the caller's call."""

    author: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The peer pushed an entry of ``author``'s feed that we already hold
    (another link was faster). Nothing to store; who sends a feed live is
    the caller's call (capability ``ebt``)."""

    author: bytes


Action: TypeAlias = Send | Serve | Ingest | StoreForkProof | PeekDone | Close | Ahead | Duplicate


@dataclass(frozen=True, slots=True)
class SyncLimits:
    """Per-peer bounds of the machine.

    ``want_burst``/``want_rate``: a token bucket on wants (peeks and gap
    repairs are rare; 32 at once and 4 per second more leave room for a burst
    of peeks while an endless want loop is cut within a second or two).
    ``inbound_burst``/``inbound_rate``: the same for unsolicited pushes
    (mentions and replies of strangers). ``clock_burst``/``clock_rate``: clock
    messages (a node's first clock takes one message per 4,096 feeds; later
    ones follow interest changes, which are rare). A clock that moves a feed
    *back* below what the peer already holds asks for a re-send, so it also
    spends a want token: re-stating "seq 0" in a loop would otherwise make us
    serve a whole feed again and again. ``max_feeds``: feeds a peer may name
    across all its clocks. ``max_peeks``: our own outstanding peeks.

    Newest-first catch-up (spec/sync.md §5.6): ``newest_first`` turns it on;
    ``recent`` entries are asked first (the newest, what a timeline shows);
    at most ``max_catch_up`` feeds of one session catch up so at once (more
    take the classic path). Our requests spend tokens of a bucket of our own
    (``catch_up_burst``, ``catch_up_rate``), kept below the peer's want bucket
    (32, 4/s by default) so that we never trip its ``want_flood``. A request
    unanswered for ``catch_up_stall`` seconds hands the feed to the classic path.
    Those paced requests fetch at most ``catch_up_below`` seqs below the recent
    part: a longer feed ends its catch-up after the recent part, and the
    classic serve, which is not paced, fills it from our contiguous head up
    (one token per 1,000 entries at 3/s would cap a long feed near 3,000/s).

    Capability ``ebt`` (spec/sync.md §13): ``mode_burst``/``mode_rate`` bound
    the feed entries of the peer's ``mode`` messages (each at most a flag flip
    and a serve of what the peer lacks), ``have_burst``/``have_rate`` its
    ``have`` messages; we send ours at most every ``have_interval`` seconds.
    """

    want_burst: float = 32.0
    want_rate: float = 4.0
    inbound_burst: float = 32.0
    inbound_rate: float = 4.0
    clock_burst: float = 64.0
    clock_rate: float = 1.0
    max_feeds: int = 65536
    max_peeks: int = 16
    wire: WireLimits = DEFAULT_WIRE_LIMITS
    newest_first: bool = True
    recent: int = 50
    max_catch_up: int = 4
    catch_up_burst: float = 8.0
    catch_up_rate: float = 3.0
    catch_up_stall: float = 5.0
    catch_up_below: int = 4_000
    mode_burst: float = 1024.0
    mode_rate: float = 64.0
    have_burst: float = 16.0
    have_rate: float = 4.0
    have_interval: float = 0.5


#: feeds remembered per session as asked for by the peer (peer_asked)
_PEER_ASKED_MAX = 256


def _violation(msg: str, reason: str) -> ProtocolError:
    return ProtocolError(msg, reason=reason)


SessionState: TypeAlias = Literal["new", "open", "closed"]
FeedState: TypeAlias = Literal["unknown", "wanted", "filling", "withdrawn", "catching"]


@dataclass(slots=True)
class _CatchUp:
    """How far a catching feed has got over this session (spec/sync.md §5.6)."""

    #: the last request covers lo..hi; lo 0 is the first one, the peek of the newest
    lo: int = 0
    hi: int = 0
    #: that request is unanswered
    asked: bool = True
    #: the next request waits for a token of our catch-up bucket (poll)
    due: bool = False
    #: the peer's head as its answers state it (0: not known yet)
    top: int = 0
    #: the lowest seq received (0: none yet); what lies above it was asked for
    floor: int = 0
    #: when we last asked or heard; None until the session first learns the time
    since: float | None = None


@dataclass(slots=True)
class _Feed:
    """What one session knows of one feed (see the theory above)."""

    state: FeedState = "unknown"
    #: our head; meaningful while the feed is wanted or filling
    ours: Head = (0, None)
    #: what the peer is known to hold; None while the peer does not want it
    theirs: int | None = None
    #: the head id the peer stated in its clock, with ``theirs``
    their_id: bytes | None = None
    #: the highest seq we have sent or scheduled to send
    sent: int = 0
    #: a peek of ours is unanswered
    peeking: bool = False
    #: set while the feed is catching
    catch: _CatchUp | None = None
    #: capability ebt: the peer asked us not to push this feed (we send haves)
    standby: bool = False
    #: capability ebt: we asked the peer not to push this feed
    quiet: bool = False

    @property
    def wanted(self) -> bool:
        """Whether the feed is in our interest (wanted, filling or catching)."""
        return self.state != "unknown" and self.state != "withdrawn"

    @property
    def announced(self) -> bool:
        """Whether our clock names the feed (wanted or filling)."""
        return self.state == "wanted" or self.state == "filling"


class SyncSession:
    """Replication of the feeds two nodes both want, over one link.

    Args:
        interest: our wanted feeds and their heads (author -> (seq, id)).
        limits: per-peer bounds.

    Usage: send the actions of :meth:`start`; feed each decoded message to
    :meth:`receive` and perform the returned actions in order; report every
    local head change (own posts and ingests from any link) with
    :meth:`local_update`, and interest changes with :meth:`set_interest`.
    """

    def __init__(self, interest: Mapping[bytes, Head], *, limits: SyncLimits | None = None) -> None:
        self.limits = limits or SyncLimits()
        self.state: SessionState = "new"
        #: every feed we want, withdrew or peek, or the peer wants; wanted ones
        #: in the order we came to want them (_want), which our clocks keep
        self._feeds: dict[bytes, _Feed] = {a: _Feed("wanted", h) for a, h in interest.items()}
        #: records whose ``theirs`` is set (bounded by max_feeds)
        self._peer_feeds = 0
        #: records whose ``peeking`` is set (bounded by max_peeks)
        self._peeks = 0
        self._want_bucket = TokenBucket(self.limits.want_burst, self.limits.want_rate)
        self._inbound_bucket = TokenBucket(self.limits.inbound_burst, self.limits.inbound_rate)
        self._clock_bucket = TokenBucket(self.limits.clock_burst, self.limits.clock_rate)
        self._catch_bucket = TokenBucket(self.limits.catch_up_burst, self.limits.catch_up_rate)
        self._mode_bucket = TokenBucket(self.limits.mode_burst, self.limits.mode_rate)
        self._have_bucket = TokenBucket(self.limits.have_burst, self.limits.have_rate)
        # Our own modes stay under the peer's mode bucket: half of it for
        # standby requests, half for making a link the sender.
        self._mode_out = {
            flag: TokenBucket(self.limits.mode_burst / 2, self.limits.mode_rate / 2)
            for flag in (False, True)
        }
        #: capability ebt: both sides listed it (enable_ebt)
        self.ebt = False
        #: heads of standby feeds not yet sent in a have, and when we last sent one
        self._haves: dict[bytes, int] = {}
        self._have_sent: float | None = None
        #: feeds in state catching (at most max_catch_up)
        self._catching: set[bytes] = set()
        #: feeds the peer sent wants for, most recent last (bounded)
        self._peer_asked: OrderedDict[bytes, None] = OrderedDict()
        #: the latest time the caller gave us (start, set_interest, receive, poll)
        self._now: float | None = None
        #: counters for statistics()
        self.duplicates = 0
        self.gaps = 0
        self.ignored = 0
        self.catch_ups = 0
        self.catch_ups_stalled = 0
        self.haves_sent = 0
        #: entries of wanted feeds the peer sent us, duplicates included
        self.entries_delivered = 0

    # --- queries -------------------------------------------------------

    def peer_feeds(self) -> dict[bytes, int]:
        """The feeds the peer wants, with the seq it is known to hold."""
        return {a: f.theirs for a, f in self._feeds.items() if f.theirs is not None}

    def peer_wants(self, author: bytes) -> bool:
        """Whether the peer has said it wants ``author``'s feed."""
        feed = self._feeds.get(author)
        return feed is not None and feed.theirs is not None

    def peer_asked(self, author: bytes) -> bool:
        """Whether the peer has sent a want for ``author``'s feed (a peek, or a
        newest-first catch-up, which keeps the feed out of its clock for a
        while, spec/sync.md 5.6). Among the last 256 feeds it asked for."""
        return author in self._peer_asked

    def outstanding_wants(self) -> int:
        """Our gap-repair wants, catch-up requests and peeks the peer has not completed."""
        asked = sum(1 for a in self._catching if (c := self._feeds[a].catch) and c.asked)
        return sum(1 for f in self._feeds.values() if f.state == "filling") + self._peeks + asked

    def peer_head(self, author: bytes) -> int:
        """The highest seq of ``author`` the peer is known to hold (0 if none known)."""
        feed = self._feeds.get(author)
        if feed is None:
            return 0
        top = feed.catch.top if feed.catch is not None else 0
        return max(top, feed.theirs or 0, feed.sent if feed.theirs is not None else 0)

    def catching(self) -> dict[bytes, tuple[int, int]]:
        """Feeds being caught up newest-first: author -> (peer's head, lowest seq received)."""
        out: dict[bytes, tuple[int, int]] = {}
        for a in self._catching:
            c = self._feeds[a].catch
            if c is not None:
                out[a] = (c.top, c.floor)
        return out

    # --- records -------------------------------------------------------

    def _want(self, author: bytes, head: Head) -> _Feed:
        """Make ``author`` wanted at ``head``, its record moved last."""
        feed = self._feeds.pop(author, None)
        if feed is None:
            feed = _Feed()
        feed.state = "wanted"
        feed.ours = head
        feed.catch = None
        # Our clock names it again: active both ways (§13).
        self._reset_modes(author, feed)
        self._feeds[author] = feed
        return feed

    def _forget_if_idle(self, author: bytes, feed: _Feed) -> None:
        if feed.state == "unknown" and feed.theirs is None and not feed.peeking:
            self._feeds.pop(author, None)

    # --- local events --------------------------------------------------

    def _require_open(self, what: str) -> None:
        if self.state == "closed":
            raise LocalUsageError(f"{what} on a closed sync session")

    def start(self, now: float | None = None) -> list[Action]:
        """Open the session: announce our interest (our whole clock).

        Feeds held from nothing up are left out of the clock and caught up
        newest-first instead (their first requests follow the clock).
        """
        if self.state != "new":
            raise LocalUsageError(f"start() in state {self.state}")
        self.state = "open"
        self._tick(now)
        catch: list[Action] = []
        for a, f in self._feeds.items():
            catch.extend(self._begin_catch_up(a, f))
        feeds = [(a, f.ours[0], f.ours[1]) for a, f in self._feeds.items() if f.announced]
        return (self._clock_messages(feeds) or [Send(Clock(()))]) + catch

    def _clock_messages(self, feeds: list[tuple[bytes, int, bytes | None]]) -> list[Action]:
        step = self.limits.wire.max_clock
        return [Send(Clock(tuple(feeds[i : i + step]))) for i in range(0, len(feeds), step)]

    def set_interest(
        self, interest: Mapping[bytes, Head], now: float | None = None
    ) -> list[Action]:
        """Replace our wanted feeds; announce the difference and serve as needed."""
        self._require_open("set_interest")
        self._tick(now)
        delta: list[tuple[bytes, int, bytes | None]] = []
        for author, feed in self._feeds.items():
            if feed.wanted and author not in interest:
                if feed.announced:  # a catching feed was never announced
                    delta.append((author, -1, None))
                self._end_catch_up(author, feed)
                feed.state = "withdrawn"
                feed.ours = (0, None)
                self._reset_modes(author, feed)
        actions: list[Action] = []
        for author, head in interest.items():
            known = self._feeds.get(author)
            if known is None or not known.wanted:
                feed = self._want(author, head)
                catch = self._begin_catch_up(author, feed)
                if catch:
                    actions.extend(catch)
                    continue
                delta.append((author, head[0], head[1]))
                actions.extend(self._maybe_serve(author, feed, overlap=True))
            elif head[0] > known.ours[0]:
                actions.extend(self.local_update(author, head))
        return self._clock_messages(delta) + actions

    def local_update(self, author: bytes, head: Head) -> list[Action]:
        """Our store now holds ``author`` up to ``head``: push to the peer if behind."""
        self._require_open("local_update")
        feed = self._feeds.get(author)
        if feed is None or not feed.wanted or head[0] <= feed.ours[0]:
            return []
        feed.ours = head
        if feed.state == "catching":
            if feed.catch is not None and self._now is not None:
                feed.catch.since = self._now  # progress: not stalled
            done = self._maybe_finish(author, feed)
            if done:
                return done
        if feed.state == "filling" and head[0] >= (feed.theirs or 0):
            # Filled through another peer; the answer still arriving is harmless.
            feed.state = "wanted"
        if feed.standby and feed.theirs is not None:
            # The peer takes this feed from another link: note, don't push.
            self._haves[author] = head[0]
            return self._flush_haves(self._now, force=False)
        return self._maybe_serve(author, feed, overlap=False)

    # --- capability ebt (spec/sync.md 13) --------------------------------

    def _reset_modes(self, author: bytes, feed: _Feed) -> None:
        """A clock change of the feed, from either side: active both ways (§13)."""
        feed.standby = feed.quiet = False
        self._haves.pop(author, None)

    def enable_ebt(self) -> None:
        """Both sides listed capability ``ebt``: ``mode`` and ``have`` may flow."""
        self.ebt = True

    def set_mode(self, author: bytes, active: bool) -> list[Action]:
        """Ask the peer to push ``author``'s feed live (``active``) or to stand by.

        Only for a feed both sides want and we announced, over an ``ebt`` link;
        anything else, or no change, sends nothing. Standby and active
        requests are each paced at half the peer's mode bucket (one refused
        so sends nothing).
        """
        self._require_open("set_mode")
        feed = self._feeds.get(author)
        if (
            not self.ebt
            or feed is None
            or not feed.announced
            or feed.theirs is None
            or feed.quiet == (not active)
        ):
            return []
        if not self._mode_out[active].take(self._now or 0.0):
            return []  # paced: the caller asks again later
        feed.quiet = not active
        return [Send(Mode(((author, feed.ours[0], active),)))]

    def standing_by(self, author: bytes) -> bool:
        """Whether we asked the peer not to push ``author``'s feed."""
        feed = self._feeds.get(author)
        return feed is not None and feed.quiet

    def _flush_haves(self, now: float | None, *, force: bool) -> list[Action]:
        """Send the pending haves if one is due (at most every ``have_interval``)."""
        if not self._haves or now is None:
            return []
        last = self._have_sent
        if not force and last is not None and now - last < self.limits.have_interval:
            return []
        self._have_sent = now
        notes = list(self._haves.items())
        self._haves.clear()
        self.haves_sent += 1
        step = self.limits.wire.max_clock
        return [Send(Have(tuple(notes[i : i + step]))) for i in range(0, len(notes), step)]

    def peek(self, author: bytes, limit: int) -> list[Action]:
        """Ask the peer for the latest ``limit`` entries of ``author``'s feed."""
        self._require_open("peek")
        if self._peeks >= self.limits.max_peeks:
            raise LocalUsageError("too many peeks outstanding on this link")
        limit = max(1, min(limit, self.limits.wire.max_peek))
        feed = self._feeds.get(author)
        if feed is None:
            feed = self._feeds[author] = _Feed()
        if not feed.peeking:
            feed.peeking = True
            self._peeks += 1
        return [Send(Want(author, 0, limit))]

    def send_fork_proof(self, author: bytes, proof: bytes) -> list[Action]:
        """Gossip a verified fork proof of ``author`` if the peer wants that feed."""
        self._require_open("send_fork_proof")
        if not self.peer_wants(author):
            return []
        return [Send(ForkProofMessage(proof))]

    def close(self, reason: str) -> list[Action]:
        """Say bye; nothing more will be accepted."""
        if self.state == "closed":
            return []
        self.state = "closed"
        return [Send(Bye(reason[:64]))]

    # --- newest-first catch-up (spec/sync.md 5.6) ------------------------

    def _tick(self, now: float | None) -> None:
        if now is not None and (self._now is None or now > self._now):
            self._now = now

    def _begin_catch_up(self, author: bytes, feed: _Feed) -> list[Action]:
        """Make a wanted feed held from nothing catching, if the limits allow: peek its newest."""
        lim = self.limits
        if (
            not lim.newest_first
            or feed.state != "wanted"
            or feed.ours[0] != 0
            or len(self._catching) >= lim.max_catch_up
            or not self._catch_bucket.take(self._now or 0.0)
        ):
            return []
        feed.state = "catching"
        feed.catch = _CatchUp(since=self._now)
        self._catching.add(author)
        self.catch_ups += 1
        return [Send(Want(author, 0, max(1, min(lim.recent, lim.wire.max_peek))))]

    def _end_catch_up(self, author: bytes, feed: _Feed) -> None:
        feed.catch = None
        self._catching.discard(author)

    def _finish_catch_up(self, author: bytes, feed: _Feed) -> list[Action]:
        """Hand a catching feed to the classic path: announce it at our head."""
        self._end_catch_up(author, feed)
        feed.state = "wanted"
        self._reset_modes(author, feed)
        seq, hid = feed.ours
        clock: list[Action] = [Send(Clock(((author, seq, hid if seq >= 1 else None),)))]
        return clock + self._maybe_serve(author, feed, overlap=True)

    def _maybe_finish(self, author: bytes, feed: _Feed) -> list[Action]:
        """Finish once nothing is asked and our head reaches the lowest seq received
        (the store then joins the runs above it: the head is their top)."""
        c = feed.catch
        if c is None or c.asked or c.floor == 0 or feed.ours[0] < c.floor:
            return []
        return self._finish_catch_up(author, feed)

    def _next_request(self, author: bytes, feed: _Feed, now: float) -> list[Action]:
        """Ask for the range just below the lowest seq received, if any is left."""
        c = feed.catch
        if c is None:
            return []
        hi, low = c.floor - 1, feed.ours[0] + 1
        if hi < low:
            c.due = False
            return self._maybe_finish(author, feed)
        if hi - low + 1 > self.limits.catch_up_below:
            return self._finish_catch_up(author, feed)
        if not self._catch_bucket.take(now):
            c.due = True
            return []
        wire = self.limits.wire
        c.due, c.asked, c.since = False, True, now
        if hi - low + 1 >= wire.max_batch:
            # A want without limit of a feed outside the shared set is
            # answered once, with up to max_batch entries (§5.3): one token
            # for twice what a limited want may ask.
            c.lo, c.hi = hi - wire.max_batch + 1, hi
            return [Send(Want(author, c.lo))]
        c.lo, c.hi = max(low, hi - wire.max_peek + 1), hi
        return [Send(Want(author, c.lo, c.hi - c.lo + 1))]

    def poll(self, now: float) -> list[Action]:
        """Timers of catching feeds: send requests that waited for a token,
        and hand a feed whose request went unanswered for ``catch_up_stall``
        seconds to the classic path. Call it at :meth:`next_poll`."""
        if self.state != "open":
            return []
        self._tick(now)
        actions: list[Action] = self._flush_haves(now, force=False)
        for author in list(self._catching):
            feed = self._feeds[author]
            c = feed.catch
            if c is None:
                continue
            if c.since is None:
                c.since = now
            elif c.due:
                actions.extend(self._next_request(author, feed, now))
            elif now - c.since >= self.limits.catch_up_stall:
                self.catch_ups_stalled += 1
                actions.extend(self._finish_catch_up(author, feed))
        return actions

    def next_poll(self) -> float | None:
        """When :meth:`poll` may next have work; None while nothing waits
        (no feed catching, no have pending)."""
        now = self._now or 0.0
        have_at = None
        if self._haves:
            have_at = (self._have_sent or now) + self.limits.have_interval
        if not self._catching:
            return have_at
        at = now + self.limits.catch_up_stall
        if have_at is not None:
            at = min(at, have_at)
        for author in self._catching:
            c = self._feeds[author].catch
            if c is None:
                continue
            if c.since is None:
                return now
            if c.due:
                at = min(at, now + 1.0 / max(self.limits.catch_up_rate, 1e-3))
            else:
                at = min(at, c.since + self.limits.catch_up_stall)
        return at

    # --- serving -------------------------------------------------------

    def _maybe_serve(self, author: bytes, feed: _Feed, *, overlap: bool) -> list[Action]:
        """Serve what the peer lacks of a feed both sides want."""
        theirs = feed.theirs
        if theirs is None or not feed.wanted:
            return []
        ours_seq, ours_id = feed.ours
        known = max(theirs, feed.sent)
        if ours_seq > known:
            # Overlap one entry on a fresh clock so that a diverging history
            # (equivocation) meets ours at the peer's store in this round.
            first = theirs if overlap and theirs >= 1 and known == theirs else known + 1
            feed.sent = ours_seq
            live = first == ours_seq and not overlap
            return [Serve(author, first, ours_seq, live=live)]
        if overlap and ours_seq >= 1 and ours_seq == theirs:
            their_id = feed.their_id
            if their_id is not None and ours_id is not None and their_id != ours_id:
                return [Serve(author, ours_seq, ours_seq)]
        return []

    # --- peer messages: the session ------------------------------------

    def receive(self, msg: Message, now: float) -> list[Action]:
        """Process one message from the peer.

        Args:
            msg: a decoded message (``wire.decode_message_untrusted``).
            now: seconds on a monotonic clock, for the rate limits.

        Returns:
            Actions to perform in order.

        Raises:
            ProtocolError: the peer broke the protocol (reason names the rule:
                ``bad_state``, ``unsolicited``, ``want_flood``,
                ``inbound_flood``, ``clock_flood``, ``too_many_feeds``).
                Close the link.
        """
        step = _SESSION_TABLE.get((self.state, type(msg)))
        if step is None:
            raise _violation(
                f"{type(msg).__name__} received in state {self.state}", reason="bad_state"
            )
        handler, after = step
        self._tick(now)
        actions = handler(self, msg, now)
        self.state = after
        return actions

    def _on_clock(self, msg: Clock, now: float) -> list[Action]:
        if not self._clock_bucket.take(now):
            raise _violation("peer sends clocks faster than allowed", reason="clock_flood")
        actions: list[Action] = []
        for author, seq, hid in msg.feeds:
            feed = self._feeds.get(author)
            if seq < 0:
                if feed is not None:
                    if feed.theirs is not None:
                        self._peer_feeds -= 1
                    feed.theirs = feed.their_id = None
                    feed.sent = 0
                    # Any clock change of a feed makes it active both ways (§13).
                    self._reset_modes(author, feed)
                    self._forget_if_idle(author, feed)
                continue
            known = None if feed is None else feed.theirs
            if known is None and self._peer_feeds >= self.limits.max_feeds:
                raise _violation("peer names too many feeds", reason="too_many_feeds")
            if known is not None and seq < known and not self._want_bucket.take(now):
                raise _violation("peer rewinds its clock too often", reason="want_flood")
            if feed is None:
                feed = self._feeds[author] = _Feed()
            if known is None:
                self._peer_feeds += 1
                # A feed the peer comes to want starts active both ways (§13).
                self._reset_modes(author, feed)
            feed.theirs = seq
            # A stated clock resets what we assume the peer holds: if it is
            # lower than what we sent, the peer refused some (e.g. from the
            # future) and will want them; re-serving is its call.
            feed.sent = seq
            feed.their_id = hid
            actions.extend(self._maybe_serve(author, feed, overlap=True))
        return actions

    def _on_want(self, msg: Want, now: float) -> list[Action]:
        if not self._want_bucket.take(now):
            raise _violation("peer sends wants faster than allowed", reason="want_flood")
        self._peer_asked[msg.author] = None
        self._peer_asked.move_to_end(msg.author)
        while len(self._peer_asked) > _PEER_ASKED_MAX:
            self._peer_asked.popitem(last=False)
        if msg.limit is not None:
            return [Serve(msg.author, msg.from_seq, None, limit=msg.limit)]
        feed = self._feeds.get(msg.author)
        if feed is not None and feed.wanted and feed.theirs is not None:
            # Gap repair of a shared feed: serve it and keep pushing after.
            feed.theirs = max(0, min(feed.theirs, msg.from_seq - 1))
            feed.sent = max(feed.ours[0], msg.from_seq - 1)
            return [Serve(msg.author, msg.from_seq, feed.ours[0])]
        return [Serve(msg.author, msg.from_seq, None, limit=self.limits.wire.max_batch)]

    def _on_feed_message(self, msg: Entries | Push, now: float) -> list[Action]:
        # A feed the session has no record of is unknown; a fresh record
        # stands in for it and is not kept (no unknown-feed handler keeps one).
        feed = self._feeds.get(msg.author)
        if feed is None:
            feed = _Feed()
        return _FEED_TABLE[feed.state, type(msg)](self, feed, msg, now)

    def _on_mode(self, msg: Mode, now: float) -> list[Action]:
        if not self.ebt:
            raise _violation("mode without the ebt capability", reason="unknown_message")
        if not self._mode_bucket.take(now, len(msg.feeds)):
            raise _violation("peer flips feed modes faster than allowed", reason="mode_flood")
        actions: list[Action] = []
        for author, seq, active in msg.feeds:
            feed = self._feeds.get(author)
            if feed is None or feed.theirs is None:
                # The peer names only feeds its clock announced (the stream is
                # ordered, so its own withdrawal cannot cross this).
                raise _violation("mode for a feed the peer does not want", reason="bad_state")
            if not active:
                feed.standby = True
                self._note_peer_holds(feed, seq)
                continue
            if seq < feed.theirs and not self._want_bucket.take(now):
                raise _violation("peer rewinds its head too often", reason="want_flood")
            feed.standby = False
            self._haves.pop(author, None)
            # As a clock: the peer holds seq; serve it what it lacks from there.
            feed.theirs = feed.sent = seq
            actions.extend(self._maybe_serve(author, feed, overlap=False))
        return actions

    def _on_have(self, msg: Have, now: float) -> list[Action]:
        if not self.ebt:
            raise _violation("have without the ebt capability", reason="unknown_message")
        if not self._have_bucket.take(now):
            raise _violation("peer sends haves faster than allowed", reason="have_flood")
        actions: list[Action] = []
        for author, seq in msg.feeds:
            feed = self._feeds.get(author)
            if feed is None or not feed.wanted:
                # Withdrawn while the note was in flight, or never ours: only information.
                self.ignored += 1
                continue
            self._note_peer_holds(feed, seq)
            if seq > feed.ours[0]:
                actions.append(Ahead(author, seq))
        return actions

    def _on_fork_proof(self, msg: ForkProofMessage, now: float) -> list[Action]:
        return [StoreForkProof(msg.proof)]

    def _on_bye(self, msg: Bye, now: float) -> list[Action]:
        return [Close(msg.reason)]

    # --- peer messages: one feed ---------------------------------------

    def _note_peer_holds(self, feed: _Feed, seq: int) -> None:
        if feed.theirs is not None:
            feed.theirs = max(feed.theirs, seq)
        # Never echo back what this peer holds (it sent it, or says it has it).
        if seq > feed.sent:
            feed.sent = seq

    def _request_gap(self, author: bytes, feed: _Feed) -> list[Action]:
        self.gaps += 1
        if feed.state == "filling":
            return []
        feed.state = "filling"
        return [Send(Want(author, feed.ours[0] + 1))]

    def _batch_of_wanted(self, feed: _Feed, msg: Entries, now: float) -> list[Action]:
        n = len(msg.items)
        self.entries_delivered += n
        if n == 0:
            if feed.state == "filling":
                feed.state = "wanted"
            return []
        if msg.start > feed.ours[0] + 1:
            return self._request_gap(msg.author, feed)
        last = msg.start + n - 1
        self._note_peer_holds(feed, max(last, msg.head))
        if feed.state == "filling" and last >= msg.head:
            feed.state = "wanted"
        if last <= feed.ours[0]:
            self.duplicates += n
        return [Ingest(msg.author, msg.start, msg.items, "sync")]

    def _batch_of_withdrawn(self, feed: _Feed, msg: Entries, now: float) -> list[Action]:
        if feed.peeking:
            return self._peek_answer(feed, msg)
        self.ignored += len(msg.items)
        return []

    def _batch_of_unknown(self, feed: _Feed, msg: Entries, now: float) -> list[Action]:
        if feed.peeking:
            return self._peek_answer(feed, msg)
        raise _violation("entries for a feed we did not ask for", reason="unsolicited")

    def _peek_answer(self, feed: _Feed, msg: Entries) -> list[Action]:
        author = msg.author
        n = len(msg.items)
        actions: list[Action] = []
        if n:
            actions.append(Ingest(author, msg.start, msg.items, "peek"))
        if n == 0 or msg.start + n - 1 >= msg.head:
            feed.peeking = False
            self._peeks -= 1
            self._forget_if_idle(author, feed)
            actions.append(PeekDone(author))
        return actions

    def _push_of_wanted(self, feed: _Feed, msg: Push, now: float) -> list[Action]:
        self.entries_delivered += 1
        ours_seq, ours_id = feed.ours
        self._note_peer_holds(feed, msg.seq)
        if msg.seq <= ours_seq:
            # Already held (another peer was faster). A push at our head is
            # still handed over: a different entry there is a fork to detect.
            self.duplicates += 1
            if msg.seq < ours_seq or hashlib.sha256(msg.item[0]).digest() == ours_id:
                return [Duplicate(msg.author)]
            return [Ingest(msg.author, msg.seq, (msg.item,), "push")]
        if msg.seq > ours_seq + 1:
            return self._request_gap(msg.author, feed)
        return [Ingest(msg.author, msg.seq, (msg.item,), "push")]

    def _batch_of_catching(self, feed: _Feed, msg: Entries, now: float) -> list[Action]:
        c = feed.catch
        if c is None:  # pragma: no cover - catching feeds always have one
            return self._batch_of_wanted(feed, msg, now)
        author, n = msg.author, len(msg.items)
        self.entries_delivered += n
        c.since = now
        actions: list[Action] = []
        last = msg.start + n - 1
        if n:
            self._note_peer_holds(feed, max(last, msg.head))
            c.top = max(c.top, msg.head, last)
            c.floor = msg.start if c.floor == 0 else min(c.floor, msg.start)
            # Kept wherever it lies: the store holds it as a detached run.
            actions.append(Ingest(author, msg.start, msg.items, "sync"))
            if c.asked and (last >= msg.head or (c.lo > 0 and last >= c.hi)):
                c.asked = False
                actions.extend(self._next_request(author, feed, now))
        elif c.asked:
            # The peer holds nothing (more) of what we asked for.
            actions.extend(self._finish_catch_up(author, feed))
        if feed.peeking and (n == 0 or last >= msg.head):
            feed.peeking = False
            self._peeks -= 1
            actions.append(PeekDone(author))
        return actions

    def _push_of_catching(self, feed: _Feed, msg: Push, now: float) -> list[Action]:
        # Not in our clock yet, so the peer pushed it unasked (a mention, say):
        # paid for as unsolicited, but kept as an entry of a feed we want.
        if not self._inbound_bucket.take(now):
            raise _violation("too many unsolicited pushes", reason="inbound_flood")
        self._note_peer_holds(feed, msg.seq)
        return [Ingest(msg.author, msg.seq, (msg.item,), "push")]

    def _push_of_withdrawn(self, feed: _Feed, msg: Push, now: float) -> list[Action]:
        self.ignored += 1
        return []

    def _push_of_unknown(self, feed: _Feed, msg: Push, now: float) -> list[Action]:
        if not self._inbound_bucket.take(now):
            raise _violation("too many unsolicited pushes", reason="inbound_flood")
        return [Ingest(msg.author, msg.seq, (msg.item,), "inbound")]


# The tables. A handler's message argument has the type of its key's message.
_Handler: TypeAlias = Callable[[SyncSession, Any, float], list[Action]]
_FeedHandler: TypeAlias = Callable[[SyncSession, _Feed, Any, float], list[Action]]

#: (session state, message type) -> (handler, session state after it).
#: Only ``open`` takes messages; hello and auth belong to the link, before.
_SESSION_TABLE: dict[tuple[SessionState, type[Message]], tuple[_Handler, SessionState]] = {
    ("open", Clock): (SyncSession._on_clock, "open"),
    ("open", Want): (SyncSession._on_want, "open"),
    ("open", Entries): (SyncSession._on_feed_message, "open"),
    ("open", Push): (SyncSession._on_feed_message, "open"),
    ("open", ForkProofMessage): (SyncSession._on_fork_proof, "open"),
    ("open", Mode): (SyncSession._on_mode, "open"),
    ("open", Have): (SyncSession._on_have, "open"),
    ("open", Bye): (SyncSession._on_bye, "closed"),
}

#: (our interest in the feed, message type) -> handler; complete for both.
_FEED_TABLE: dict[tuple[FeedState, type[Entries] | type[Push]], _FeedHandler] = {
    ("wanted", Entries): SyncSession._batch_of_wanted,
    ("filling", Entries): SyncSession._batch_of_wanted,
    ("withdrawn", Entries): SyncSession._batch_of_withdrawn,
    ("unknown", Entries): SyncSession._batch_of_unknown,
    ("catching", Entries): SyncSession._batch_of_catching,
    ("wanted", Push): SyncSession._push_of_wanted,
    ("filling", Push): SyncSession._push_of_wanted,
    ("withdrawn", Push): SyncSession._push_of_withdrawn,
    ("unknown", Push): SyncSession._push_of_unknown,
    ("catching", Push): SyncSession._push_of_catching,
}


def heads_of(interest: Iterable[bytes], heads: Mapping[bytes, Head]) -> dict[bytes, Head]:
    """Interest map helper: each wanted author with its head, (0, None) if none held."""
    return {a: heads.get(a, (0, None)) for a in interest}
