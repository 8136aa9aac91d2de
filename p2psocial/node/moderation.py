"""The node owner's policy, enforced where entries enter and leave the node.

Two pieces (README "Moderation"; spec/moderation.md):

* :class:`PolicyGate` wraps the store that replication writes into. Before a
  batch from a peer is ingested it applies the owner's limits per author:
  payloads over ``max_payload_bytes``, and payloads beyond the per-author daily
  quota (entries and bytes, counted over a rolling 24 h of arrivals), are
  refused. The envelope is still stored, so the feed stays verifiable and keeps
  syncing; only the payload is refused, with a reason that ``explain`` reports.
  Other authors are unaffected.
* :class:`Blocklists` computes the effective block set: the owner's own
  blocks plus the public ``block`` entries of every identity the owner
  subscribed to, and says whose list each block came from.

Blocked authors' payloads are purged and refused by the store itself, and
replication neither wants nor serves blocked feeds.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from ..protocol.entries import decode_entry_untrusted
from ..protocol.errors import DecodeError
from .config import Policy

__all__ = ["DAY_S", "Blocklists", "PolicyGate"]

DAY_S = 24 * 3600
#: Refusals remembered for ``explain`` (oldest forgotten first).
MAX_REMEMBERED = 10_000
#: Authors whose quota windows are tracked at once.
MAX_TRACKED_AUTHORS = 20_000


class PolicyGate:
    """A store wrapper that applies payload limits before replication ingests.

    Every method but ``ingest`` is the wrapped store's own.
    """

    def __init__(
        self,
        store: Any,
        policy: Policy,
        identity: bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._policy = policy
        self._identity = identity
        self._clock = clock
        self._windows: OrderedDict[bytes, deque[tuple[float, int]]] = OrderedDict()
        self.refused: OrderedDict[bytes, str] = OrderedDict()
        self.stats: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _window(self, author: bytes, now: float) -> deque[tuple[float, int]]:
        win = self._windows.pop(author, None) or deque()
        self._windows[author] = win
        while len(self._windows) > MAX_TRACKED_AUTHORS:
            self._windows.popitem(last=False)
        while win and win[0][0] <= now - DAY_S:
            win.popleft()
        return win

    def _refuse(self, entry_id: bytes, reason: str) -> None:
        self.refused[entry_id] = reason
        self.refused.move_to_end(entry_id)
        while len(self.refused) > MAX_REMEMBERED:
            self.refused.popitem(last=False)
        self.stats[reason] += 1

    def check(
        self, items: Sequence[tuple[bytes, bytes | None]]
    ) -> list[tuple[bytes, bytes | None]]:
        """The items with every payload the policy refuses replaced by None."""
        pol = self._policy
        now = self._clock()
        out: list[tuple[bytes, bytes | None]] = []
        for entry_bytes, payload in items:
            if payload is None:
                out.append((entry_bytes, None))
                continue
            try:
                entry = decode_entry_untrusted(entry_bytes)
            except DecodeError:
                out.append((entry_bytes, payload))  # the store rejects it with its reason
                continue
            if entry.author == self._identity:
                out.append((entry_bytes, payload))
                continue
            if pol.max_payload_bytes and len(payload) > pol.max_payload_bytes:
                self._refuse(entry.id, "too_large")
                out.append((entry_bytes, None))
                continue
            if pol.quota_entries_per_day or pol.quota_bytes_per_day:
                win = self._window(entry.author, now)
                used_bytes = sum(n for _, n in win)
                if pol.quota_entries_per_day and len(win) >= pol.quota_entries_per_day:
                    self._refuse(entry.id, "quota_entries")
                    out.append((entry_bytes, None))
                    continue
                if pol.quota_bytes_per_day and used_bytes + len(payload) > pol.quota_bytes_per_day:
                    self._refuse(entry.id, "quota_bytes")
                    out.append((entry_bytes, None))
                    continue
                win.append((now, len(payload)))
            out.append((entry_bytes, payload))
        return out

    async def ingest(self, items: Sequence[tuple[bytes, bytes | None]], *, now_ms: int) -> Any:
        return await self._store.ingest(self.check(items), now_ms=now_ms)


class Blocklists:
    """Whose blocks apply on this node, and why."""

    def __init__(self) -> None:
        #: blocked identity -> sources: "self" or the list owner (32 bytes).
        self.sources: dict[bytes, set[bytes | str]] = {}

    async def compute(self, store: Any, own: set[bytes], lists: list[bytes]) -> set[bytes]:
        """The effective block set; also records each block's sources."""
        sources: dict[bytes, set[bytes | str]] = {k: {"self"} for k in own}
        for owner in lists:
            for target in await store.blocks_of(owner):
                sources.setdefault(target, set()).add(owner)
        self.sources = sources
        return set(sources)
