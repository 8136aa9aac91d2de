"""The node owner's policy, enforced where entries enter and leave the node.

Two pieces (README "Moderation"; spec/moderation.md):

* :class:`PolicyGate` wraps the store that replication writes into. It
  applies the owner's limits per author to each batch from a peer: payloads
  over ``max_payload_bytes``, and payloads beyond the per-author daily quota
  (entries and bytes, counted over a rolling 24 h of payloads this node
  stored), are refused. The envelope is still stored, so the feed stays
  verifiable and keeps syncing; only the payload is refused, with a reason that
  ``explain`` reports. Other authors are unaffected, and so is the author when
  somebody forges entries in their name: what fails verification, and what is
  held already, is not charged.
* :class:`Blocklists` computes the effective block set: the owner's own
  blocks plus the public ``block`` entries of every identity the owner
  subscribed to, and says whose list each block came from.

Blocked authors' payloads are purged and refused by the store itself, and
replication neither wants nor serves blocked feeds.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from ..protocol.entries import decode_entry_untrusted
from ..protocol.errors import DecodeError
from ..storage import AsyncStore, Page
from ..storage.model import Outcome
from .config import Policy

__all__ = ["DAY_S", "Blocklists", "PolicyGate"]

DAY_S = 24 * 3600
#: Refusals remembered for ``explain`` (oldest forgotten first).
MAX_REMEMBERED = 10_000
#: Authors whose quota windows are tracked at once.
MAX_TRACKED_AUTHORS = 20_000


Item = tuple[bytes, bytes | None]

#: Refusal reasons that a quota gives (the payload may fit once the quota frees up).
QUOTA_REASONS = frozenset({"quota_entries", "quota_bytes"})


@dataclass(slots=True)
class _Payload:
    """One payload the gate decided on: whose it is, its size, and why it was held back."""

    index: int
    entry_id: bytes
    author: bytes
    size: int
    #: None when the payload was passed to the store.
    reason: str | None


def _payload_stored(outcome: Outcome) -> bool:
    """Whether the store kept a new payload (a new entry with it, or a missing one filled in)."""
    return outcome.status == "stored" and outcome.reason is None


class PolicyGate:
    """A store wrapper that applies payload limits around replication's ingest.

    A quota is charged only for payloads the store actually kept: a forged or
    otherwise rejected entry, and a re-delivery of an entry held already, cost
    its author nothing. While a batch is in the store its payloads hold
    reservations against the quota (so that concurrent batches cannot overrun
    it); the reservations become charges only for what was stored.

    Replication is handed the gate as its store: ``ingest`` applies the
    policy, and the other methods, the ones replication reads and writes
    (``ReplicationStore`` in :mod:`p2psocial.node.replication`), are the
    wrapped store's own.
    """

    def __init__(
        self,
        store: AsyncStore,
        policy: Policy,
        identity: bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._policy = policy
        self._identity = identity
        self._clock = clock
        self._windows: OrderedDict[bytes, deque[tuple[float, int]]] = OrderedDict()
        #: author -> [entries, bytes] reserved by batches in the store now.
        self._reserved: dict[bytes, list[int]] = {}
        self.refused: OrderedDict[bytes, str] = OrderedDict()
        self.stats: Counter[str] = Counter()

    # -- the wrapped store's own methods, for replication ----------------------

    async def head(self, author: bytes) -> tuple[int, bytes] | None:
        """The store's :meth:`~p2psocial.storage.AsyncStore.head`."""
        return await self._store.head(author)

    async def heads(self, authors: Iterable[bytes] | None = None) -> dict[bytes, int]:
        """The store's :meth:`~p2psocial.storage.AsyncStore.heads`."""
        return await self._store.heads(authors)

    async def entries_after(
        self, author: bytes, seq: int, limit: int
    ) -> list[tuple[bytes, bytes | None]]:
        """The store's :meth:`~p2psocial.storage.AsyncStore.entries_after`."""
        return await self._store.entries_after(author, seq, limit)

    async def get_raw(self, id_: bytes) -> tuple[bytes, bytes | None] | None:
        """The store's :meth:`~p2psocial.storage.AsyncStore.get_raw`."""
        return await self._store.get_raw(id_)

    async def set_interest(self, author: bytes, reason: str) -> None:
        """The store's :meth:`~p2psocial.storage.AsyncStore.set_interest`."""
        await self._store.set_interest(author, reason)

    async def clear_interest(self, author: bytes, reason: str) -> None:
        """The store's :meth:`~p2psocial.storage.AsyncStore.clear_interest`."""
        await self._store.clear_interest(author, reason)

    async def interests(self) -> dict[bytes, set[str]]:
        """The store's :meth:`~p2psocial.storage.AsyncStore.interests`."""
        return await self._store.interests()

    async def feed_status(self, author: bytes) -> str:
        """The store's :meth:`~p2psocial.storage.AsyncStore.feed_status`."""
        return await self._store.feed_status(author)

    async def fork_proofs(self, author: bytes) -> list[bytes]:
        """The store's :meth:`~p2psocial.storage.AsyncStore.fork_proofs`."""
        return await self._store.fork_proofs(author)

    async def feed(
        self, author: bytes, *, limit: int = 50, kinds: Iterable[str] | None = ("post", "repost")
    ) -> Page:
        """The store's :meth:`~p2psocial.storage.AsyncStore.feed`, newest page only."""
        return await self._store.feed(author, limit=limit, kinds=kinds)

    async def following(self, author: bytes) -> list[bytes]:
        """The store's :meth:`~p2psocial.storage.AsyncStore.following`."""
        return await self._store.following(author)

    async def blocked(self) -> set[bytes]:
        """The store's :meth:`~p2psocial.storage.AsyncStore.blocked`."""
        return await self._store.blocked()

    # -- the policy ---------------------------------------------------------------

    def _window(self, author: bytes, now: float) -> deque[tuple[float, int]]:
        win = self._windows.pop(author, None) or deque()
        self._windows[author] = win
        while len(self._windows) > MAX_TRACKED_AUTHORS:
            self._windows.popitem(last=False)
        while win and win[0][0] <= now - DAY_S:
            win.popleft()
        return win

    def _over_quota(self, author: bytes, size: int, now: float) -> str | None:
        """The quota that one more payload of ``size`` would exceed, or None if it fits."""
        pol = self._policy
        win = self._window(author, now)
        entries, nbytes = self._reserved.get(author, (0, 0))
        if pol.quota_entries_per_day and len(win) + entries >= pol.quota_entries_per_day:
            return "quota_entries"
        used = sum(n for _, n in win) + nbytes
        if pol.quota_bytes_per_day and used + size > pol.quota_bytes_per_day:
            return "quota_bytes"
        return None

    def _reserve(self, p: _Payload, sign: int) -> None:
        held = self._reserved.setdefault(p.author, [0, 0])
        held[0] += sign
        held[1] += sign * p.size
        if held[0] == 0:
            del self._reserved[p.author]

    def _refuse(self, entry_id: bytes, reason: str) -> None:
        self.refused[entry_id] = reason
        self.refused.move_to_end(entry_id)
        while len(self.refused) > MAX_REMEMBERED:
            self.refused.popitem(last=False)
        self.stats[reason] += 1

    def _payloads(self, items: Sequence[Item]) -> list[_Payload]:
        """The payloads in ``items`` that policy applies to: others', in entries that decode."""
        out: list[_Payload] = []
        for index, (entry_bytes, payload) in enumerate(items):
            if payload is None:
                continue
            try:
                entry = decode_entry_untrusted(entry_bytes)
            except DecodeError:
                continue  # the store rejects it with its reason
            if entry.author != self._identity:
                out.append(_Payload(index, entry.id, entry.author, len(payload), None))
        return out

    def _plan(
        self, items: list[Item], payloads: list[_Payload], settled: set[bytes], now: float
    ) -> tuple[list[Item], list[_Payload], list[_Payload]]:
        """What to hand to the store, the payloads reserved, and those held back.

        ``settled`` are entries held with their payload (or deleted): passed on
        uncharged, as the store will count them duplicates.
        """
        pol = self._policy
        quota = bool(pol.quota_entries_per_day or pol.quota_bytes_per_day)
        planned = list(items)
        reserved: list[_Payload] = []
        held: list[_Payload] = []
        for p in payloads:
            if pol.max_payload_bytes and p.size > pol.max_payload_bytes:
                p.reason = "too_large"
            elif quota and p.entry_id not in settled:
                p.reason = self._over_quota(p.author, p.size, now)
                if p.reason is None:
                    self._reserve(p, +1)
                    reserved.append(p)
            if p.reason is not None:
                held.append(p)
                planned[p.index] = (items[p.index][0], None)
        return planned, reserved, held

    async def _store_charged(
        self,
        items: list[Item],
        payloads: list[_Payload],
        now: float,
        *,
        now_ms: int,
        author: bytes | None = None,
    ) -> list[Outcome]:
        """Ingest ``items``; charge the reserved ``payloads`` that the store kept."""
        try:
            outcomes: list[Outcome] = await self._store.ingest(items, now_ms=now_ms, author=author)
        finally:
            for p in payloads:
                self._reserve(p, -1)
        for p in payloads:
            if _payload_stored(outcomes[p.index]):
                self._window(p.author, now).append((now, p.size))
                self.refused.pop(p.entry_id, None)  # refused once, held now
        return outcomes

    async def ingest(
        self, items: Sequence[Item], *, now_ms: int, author: bytes | None = None
    ) -> list[Outcome]:
        """The store's ``ingest``, with every payload the policy refuses left out.

        ``author``: the feed the batch claims to be of (see the store's ``ingest``).

        Returns the store's outcomes for ``items``; an entry whose payload was
        refused is stored as an envelope alone (its reason is in ``refused``).
        """
        items = list(items)
        payloads = self._payloads(items)
        settled: set[bytes] = set()
        if payloads and (self._policy.quota_entries_per_day or self._policy.quota_bytes_per_day):
            settled = await self._store.payloads_held(p.entry_id for p in payloads)
        now = self._clock()
        planned, reserved, held = self._plan(items, payloads, settled, now)
        outcomes = await self._store_charged(planned, reserved, now, now_ms=now_ms, author=author)
        # Reservations that were not charged (forgeries, or entries a concurrent
        # batch stored first) may have held back a payload that fits after all.
        retry: list[_Payload] = []
        for p in held:
            if (
                p.reason in QUOTA_REASONS
                and outcomes[p.index].status != "rejected"
                and self._over_quota(p.author, p.size, now) is None
            ):
                self._reserve(p, +1)
                retry.append(p)
        if retry:
            # The envelopes are held now, so this stores only the payloads.
            second = [items[p.index] for p in retry]
            charges = [replace(p, index=i) for i, p in enumerate(retry)]
            await self._store_charged(second, charges, now, now_ms=now_ms, author=author)
            for p in retry:
                p.reason = None  # stored, or not the policy's refusal (a bad payload)
        for p in held:
            if p.reason is not None and outcomes[p.index].status != "rejected":
                self._refuse(p.entry_id, p.reason)
        return outcomes


class Blocklists:
    """Whose blocks apply on this node, and why."""

    def __init__(self) -> None:
        #: blocked identity -> sources: "self" or the list owner (32 bytes).
        self.sources: dict[bytes, set[bytes | str]] = {}

    async def compute(self, store: AsyncStore, own: set[bytes], lists: list[bytes]) -> set[bytes]:
        """The effective block set; also records each block's sources."""
        sources: dict[bytes, set[bytes | str]] = {k: {"self"} for k in own}
        for owner in lists:
            for target in await store.blocks_of(owner):
                sources.setdefault(target, set()).add(owner)
        self.sources = sources
        return set(sources)
