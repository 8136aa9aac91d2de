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

What the peer is known to hold is tracked per feed (``theirs``, raised by its
clock, by what it sends us, and by what we send it), which is what suppresses
echoes and most duplicates.

The machine never does I/O. Inputs are decoded messages, local head changes
and ``now`` (seconds, any monotonic origin); outputs are :data:`Action` values
the caller performs in order: send a message, serve a range from the store,
ingest a batch into the store, store a fork proof, report a finished peek, or
close. Session states are ``new`` (before :meth:`SyncSession.start`),
``open`` and ``closed`` (after a ``bye`` either way): a message in any state
but ``open`` raises :class:`ProtocolError` naming the state and the event;
local calls after close raise :class:`LocalUsageError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from .errors import LocalUsageError, ProtocolError
from .ratelimit import TokenBucket
from .wire import (
    DEFAULT_WIRE_LIMITS,
    Auth,
    Bye,
    Clock,
    Entries,
    ForkProofMessage,
    Hello,
    Item,
    Message,
    Push,
    Want,
    WireLimits,
)

__all__ = [
    "Action",
    "Close",
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


Action: TypeAlias = Send | Serve | Ingest | StoreForkProof | PeekDone | Close


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


def _violation(msg: str, reason: str) -> ProtocolError:
    return ProtocolError(msg, reason=reason)


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
        self.state: Literal["new", "open", "closed"] = "new"
        #: our wanted feeds -> our head
        self._ours: dict[bytes, Head] = dict(interest)
        #: peer's wanted feeds -> what the peer is known to hold (seq)
        self._theirs: dict[bytes, int] = {}
        #: head ids the peer stated in its clock
        self._their_ids: dict[bytes, bytes] = {}
        #: highest seq we have sent or scheduled to send, per feed
        self._sent: dict[bytes, int] = {}
        #: outstanding gap-repair wants: author -> from_seq
        self._wants: dict[bytes, int] = {}
        #: outstanding peeks: author -> limit
        self._peeks: dict[bytes, int] = {}
        #: feeds we stopped wanting; batches still in flight for them are ignored
        self._withdrawn: set[bytes] = set()
        self._want_bucket = TokenBucket(self.limits.want_burst, self.limits.want_rate)
        self._inbound_bucket = TokenBucket(self.limits.inbound_burst, self.limits.inbound_rate)
        self._clock_bucket = TokenBucket(self.limits.clock_burst, self.limits.clock_rate)
        #: counters for statistics()
        self.duplicates = 0
        self.gaps = 0
        self.ignored = 0

    # --- queries -------------------------------------------------------

    def peer_feeds(self) -> dict[bytes, int]:
        """The feeds the peer wants, with the seq it is known to hold."""
        return dict(self._theirs)

    def peer_wants(self, author: bytes) -> bool:
        """Whether the peer has said it wants ``author``'s feed."""
        return author in self._theirs

    def outstanding_wants(self) -> int:
        """Our gap-repair wants and peeks the peer has not completed."""
        return len(self._wants) + len(self._peeks)

    # --- local events --------------------------------------------------

    def _require_open(self, what: str) -> None:
        if self.state == "closed":
            raise LocalUsageError(f"{what} on a closed sync session")

    def start(self) -> list[Action]:
        """Open the session: announce our interest (our whole clock)."""
        if self.state != "new":
            raise LocalUsageError(f"start() in state {self.state}")
        self.state = "open"
        feeds = [(a, s, i) for a, (s, i) in self._ours.items()]
        return self._clock_messages(feeds) or [Send(Clock(()))]

    def _clock_messages(self, feeds: list[tuple[bytes, int, bytes | None]]) -> list[Action]:
        step = self.limits.wire.max_clock
        return [Send(Clock(tuple(feeds[i : i + step]))) for i in range(0, len(feeds), step)]

    def set_interest(self, interest: Mapping[bytes, Head]) -> list[Action]:
        """Replace our wanted feeds; announce the difference and serve as needed."""
        self._require_open("set_interest")
        delta: list[tuple[bytes, int, bytes | None]] = []
        for author in list(self._ours):
            if author not in interest:
                del self._ours[author]
                self._wants.pop(author, None)
                self._withdrawn.add(author)
                delta.append((author, -1, None))
        actions: list[Action] = []
        for author, head in interest.items():
            if author not in self._ours:
                self._ours[author] = head
                self._withdrawn.discard(author)
                delta.append((author, head[0], head[1]))
                actions.extend(self._maybe_serve(author, overlap=True))
            elif head[0] > self._ours[author][0]:
                actions.extend(self.local_update(author, head))
        return self._clock_messages(delta) + actions

    def local_update(self, author: bytes, head: Head) -> list[Action]:
        """Our store now holds ``author`` up to ``head``: push to the peer if behind."""
        self._require_open("local_update")
        if author not in self._ours or head[0] <= self._ours[author][0]:
            return []
        self._ours[author] = head
        want = self._wants.get(author)
        if want is not None and head[0] >= self._theirs.get(author, 0):
            # Filled through another peer; the answer still arriving is harmless.
            del self._wants[author]
        return self._maybe_serve(author, overlap=False)

    def peek(self, author: bytes, limit: int) -> list[Action]:
        """Ask the peer for the latest ``limit`` entries of ``author``'s feed."""
        self._require_open("peek")
        if len(self._peeks) >= self.limits.max_peeks:
            raise LocalUsageError("too many peeks outstanding on this link")
        limit = max(1, min(limit, self.limits.wire.max_peek))
        self._peeks[author] = limit
        return [Send(Want(author, 0, limit))]

    def send_fork_proof(self, author: bytes, proof: bytes) -> list[Action]:
        """Gossip a verified fork proof of ``author`` if the peer wants that feed."""
        self._require_open("send_fork_proof")
        if author not in self._theirs:
            return []
        return [Send(ForkProofMessage(proof))]

    def close(self, reason: str) -> list[Action]:
        """Say bye; nothing more will be accepted."""
        if self.state == "closed":
            return []
        self.state = "closed"
        return [Send(Bye(reason[:64]))]

    # --- serving -------------------------------------------------------

    def _maybe_serve(self, author: bytes, *, overlap: bool) -> list[Action]:
        """Serve what the peer lacks of a feed both sides want."""
        if author not in self._ours or author not in self._theirs:
            return []
        ours_seq, ours_id = self._ours[author]
        theirs = self._theirs[author]
        known = max(theirs, self._sent.get(author, 0))
        if ours_seq > known:
            # Overlap one entry on a fresh clock so that a diverging history
            # (equivocation) meets ours at the peer's store in this round.
            first = theirs if overlap and theirs >= 1 and known == theirs else known + 1
            self._sent[author] = ours_seq
            live = first == ours_seq and not overlap
            return [Serve(author, first, ours_seq, live=live)]
        if overlap and ours_seq >= 1 and ours_seq == theirs:
            their_id = self._their_ids.get(author)
            if their_id is not None and ours_id is not None and their_id != ours_id:
                return [Serve(author, ours_seq, ours_seq)]
        return []

    # --- peer messages -------------------------------------------------

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
                ``inbound_flood``, ``too_many_feeds``). Close the link.
        """
        if self.state != "open":
            raise _violation(
                f"{type(msg).__name__} received in state {self.state}", reason="bad_state"
            )
        if isinstance(msg, Entries):
            return self._on_entries(msg)
        if isinstance(msg, Push):
            return self._on_push(msg, now)
        if isinstance(msg, Clock):
            if not self._clock_bucket.take(now):
                raise _violation("peer sends clocks faster than allowed", reason="clock_flood")
            return self._on_clock(msg, now)
        if isinstance(msg, Want):
            return self._on_want(msg, now)
        if isinstance(msg, ForkProofMessage):
            return [StoreForkProof(msg.proof)]
        if isinstance(msg, Bye):
            self.state = "closed"
            return [Close(msg.reason)]
        assert isinstance(msg, (Hello, Auth))
        raise _violation(f"{type(msg).__name__} received in state open", reason="bad_state")

    def _on_clock(self, msg: Clock, now: float) -> list[Action]:
        actions: list[Action] = []
        for author, seq, hid in msg.feeds:
            if seq < 0:
                self._theirs.pop(author, None)
                self._their_ids.pop(author, None)
                self._sent.pop(author, None)
                continue
            if author not in self._theirs and len(self._theirs) >= self.limits.max_feeds:
                raise _violation("peer names too many feeds", reason="too_many_feeds")
            known = self._theirs.get(author)
            if known is not None and seq < known and not self._want_bucket.take(now):
                raise _violation("peer rewinds its clock too often", reason="want_flood")
            self._theirs[author] = seq
            # A stated clock resets what we assume the peer holds: if it is
            # lower than what we sent, the peer refused some (e.g. from the
            # future) and will want them; re-serving is its call.
            self._sent[author] = seq
            if hid is None:
                self._their_ids.pop(author, None)
            else:
                self._their_ids[author] = hid
            actions.extend(self._maybe_serve(author, overlap=True))
        return actions

    def _on_want(self, msg: Want, now: float) -> list[Action]:
        if not self._want_bucket.take(now):
            raise _violation("peer sends wants faster than allowed", reason="want_flood")
        if msg.limit is not None:
            return [Serve(msg.author, msg.from_seq, None, limit=msg.limit)]
        ours = self._ours.get(msg.author)
        if ours is not None and msg.author in self._theirs:
            # Gap repair of a shared feed: serve it and keep pushing after.
            self._theirs[msg.author] = max(0, min(self._theirs[msg.author], msg.from_seq - 1))
            self._sent[msg.author] = max(ours[0], msg.from_seq - 1)
            return [Serve(msg.author, msg.from_seq, ours[0])]
        return [Serve(msg.author, msg.from_seq, None, limit=self.limits.wire.max_batch)]

    def _note_peer_holds(self, author: bytes, seq: int) -> None:
        if author in self._theirs:
            self._theirs[author] = max(self._theirs[author], seq)
        # Never echo back what this peer holds (it sent it, or says it has it).
        if seq > self._sent.get(author, 0):
            self._sent[author] = seq

    def _request_gap(self, author: bytes) -> list[Action]:
        self.gaps += 1
        if author in self._wants:
            return []
        first = self._ours[author][0] + 1
        self._wants[author] = first
        return [Send(Want(author, first))]

    def _on_entries(self, msg: Entries) -> list[Action]:
        author = msg.author
        n = len(msg.items)
        last = msg.start + n - 1
        if author in self._ours:
            if n == 0:
                self._wants.pop(author, None)
                return []
            if msg.start > self._ours[author][0] + 1:
                return self._request_gap(author)
            self._note_peer_holds(author, max(last, msg.head))
            want = self._wants.get(author)
            if want is not None and last >= msg.head:
                del self._wants[author]
            if last <= self._ours[author][0]:
                self.duplicates += n
            return [Ingest(author, msg.start, msg.items, "sync")]
        if author in self._peeks:
            actions: list[Action] = []
            if n:
                actions.append(Ingest(author, msg.start, msg.items, "peek"))
            if n == 0 or last >= msg.head:
                del self._peeks[author]
                actions.append(PeekDone(author))
            return actions
        if author in self._withdrawn:
            self.ignored += n
            return []
        raise _violation("entries for a feed we did not ask for", reason="unsolicited")

    def _on_push(self, msg: Push, now: float) -> list[Action]:
        author = msg.author
        ours = self._ours.get(author)
        if ours is None:
            if author in self._withdrawn:
                self.ignored += 1
                return []
            if not self._inbound_bucket.take(now):
                raise _violation("too many unsolicited pushes", reason="inbound_flood")
            return [Ingest(author, msg.seq, (msg.item,), "inbound")]
        self._note_peer_holds(author, msg.seq)
        if msg.seq <= ours[0]:
            # Already held (another peer was faster). A push at our head is
            # still handed over: a different entry there is a fork to detect.
            self.duplicates += 1
            if msg.seq < ours[0] or hashlib.sha256(msg.item[0]).digest() == ours[1]:
                return []
            return [Ingest(author, msg.seq, (msg.item,), "push")]
        if msg.seq > ours[0] + 1:
            return self._request_gap(author)
        return [Ingest(author, msg.seq, (msg.item,), "push")]


def heads_of(interest: Iterable[bytes], heads: Mapping[bytes, Head]) -> dict[bytes, Head]:
    """Interest map helper: each wanted author with its head, (0, None) if none held."""
    return {a: heads.get(a, (0, None)) for a in interest}
