"""Token buckets keyed by who asks, kept across connections.

A limit kept per link is reset by reconnecting, and a node key costs nothing
to make; so limits on what peers may make us do are kept per remote node key
*and* per address, in a bounded table that outlives the links.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["RateTable"]


class RateTable:
    """One token bucket per key, in a table of bounded size.

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
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, key: Hashable, now: float) -> bool:
        """Take one token for ``key`` at time ``now``; False if it has none."""
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
        # A key idle long enough to have refilled is the same as an unknown
        # one: forget it, so the table holds only the recently active.
        refill = self.burst / self.rate if self.rate > 0 else float("inf")
        while self._buckets:
            first = next(iter(self._buckets.values()))
            if now - first[1] < refill and len(self._buckets) <= self.max_keys:
                break
            self._buckets.popitem(last=False)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)
