"""Token buckets, driven by the caller's clock.

One bucket type serves every limit in the node: a :class:`TokenBucket` for a
limit that belongs to one object (a sync session's wants), and a
:class:`RateTable` of buckets keyed by who asks, for limits that must outlive
a connection. A limit kept per link is reset by reconnecting, and a node key
costs nothing to make; so limits on what peers may make us do are kept per
remote node key *and* per address, in a bounded table.

Time is whatever monotonic number the caller passes as ``now``; nothing here
reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["RateTable", "TokenBucket"]


class TokenBucket:
    """``burst`` tokens at the start, refilled at ``rate`` per second.

    A ``now`` earlier than the last one seen adds nothing (it is not an error:
    callers may pass slightly stale times).
    """

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, burst: float, rate: float, now: float | None = None) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = burst
        self.last = now

    def take(self, now: float, count: float = 1.0) -> bool:
        """Take ``count`` tokens at time ``now``; False (and nothing taken) if
        fewer are left."""
        last = self.last
        if last is None or now > last:
            if last is not None:
                self.tokens = min(self.burst, self.tokens + (now - last) * self.rate)
            self.last = now
        if self.tokens < count:
            return False
        self.tokens -= count
        return True


class RateTable:
    """One :class:`TokenBucket` per key, in a table of bounded size.

    Args:
        burst: tokens a new or long-idle key starts with.
        rate: tokens added per second.
        max_keys: keys remembered at most; beyond it the least recently used
            key is forgotten (it then starts again from a full bucket, so the
            bound must exceed the number of keys an attacker can rotate
            through within ``burst / rate`` seconds, or memory is traded
            for leniency).
    """

    def __init__(self, burst: float, rate: float, *, max_keys: int = 4096) -> None:
        self.burst = burst
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable, now: float) -> bool:
        """Take one token for ``key`` at time ``now``; False if it has none."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.burst, self.rate, now)
        ok = bucket.take(now)
        self._buckets[key] = bucket
        # The table is ordered by last use. A key idle long enough to have
        # refilled is the same as an unknown one: forget it, so the table
        # holds only the recently active and memory stays small.
        refill = self.burst / self.rate if self.rate > 0 else float("inf")
        while self._buckets:
            first = next(iter(self._buckets.values()))
            assert first.last is not None
            if now - first.last < refill and len(self._buckets) <= self.max_keys:
                break
            self._buckets.popitem(last=False)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)
