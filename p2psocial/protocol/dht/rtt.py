"""Round-trip time estimates and retransmission timeouts per contact.

A fixed first timeout has to suit the slowest network a node may meet, so on
a fast one every dead contact costs far more than it needs to (0.5 s, then
retries: about 5 s before a lookup learns it is dead). Instead each address
gets the classic smoothed estimate of TCP (RFC 6298): a smoothed RTT and its
mean deviation, and a timeout of ``srtt + 4 * rttvar``, clamped. An address
never measured gets the estimate over all addresses, and before any sample
the configured initial timeout.

Samples follow Karn's rule: the caller reports a round trip only when the
answer came to the first attempt (a retry reuses the message id, so a later
answer cannot be matched to one send), and a first attempt that timed out
doubles that address's timeout until the next sample. Pure: times are given,
never read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from ..errors import LocalUsageError

__all__ = ["RttEstimator"]


@dataclass(slots=True)
class _Estimate:
    srtt: float
    rttvar: float
    #: doubled on each timeout, back to 1 on the next sample (RFC 6298 5.5)
    backoff: float = 1.0
    #: the lowest recent round trip: the lowest sample, drifting up by 1/64
    #: of the distance to each later one (so an old low fades)
    low: float = float("inf")

    def add(self, rtt: float) -> None:
        # RFC 6298 2.3, with its alpha = 1/8 and beta = 1/4.
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
        self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.backoff = 1.0
        self.low = rtt if rtt < self.low else self.low + (rtt - self.low) / 64

    def rto(self) -> float:
        return (self.srtt + 4.0 * self.rttvar) * self.backoff

    def patience(self) -> float:
        return min(self.srtt + 4.0 * self.rttvar, PATIENCE_LOWS * self.low)


#: A lookup's patience with an address is at most this many times its lowest
#: recent round trip (see :meth:`RttEstimator.patience`).
PATIENCE_LOWS = 4.0


class RttEstimator:
    """Smoothed round-trip times per key (an address), and the timeouts they give.

    Args:
        initial: the first attempt's timeout before any sample at all.
        minimum: the smallest timeout given (a scheduler hiccup on a fast
            link must not make a live contact look dead).
        maximum: the largest first-attempt timeout given.
        max_keys: addresses remembered; the least recently sampled go first.

    Raises:
        LocalUsageError: the bounds are not ``0 < minimum <= maximum`` or
            ``max_keys < 1``.
    """

    def __init__(
        self,
        *,
        initial: float = 0.5,
        minimum: float = 0.03,
        maximum: float = 2.0,
        max_keys: int = 8192,
    ) -> None:
        if not 0 < minimum <= maximum or max_keys < 1 or initial <= 0:
            raise LocalUsageError("need 0 < minimum <= maximum, initial > 0 and max_keys >= 1")
        self.initial = initial
        self.minimum = minimum
        self.maximum = maximum
        self.max_keys = max_keys
        self._per_key: OrderedDict[Hashable, _Estimate] = OrderedDict()
        self._all: _Estimate | None = None
        #: Samples taken so far.
        self.samples = 0

    def sample(self, key: Hashable, rtt: float) -> None:
        """Record one measured round trip (seconds) to ``key``; negative ones are ignored."""
        if rtt < 0:
            return
        self.samples += 1
        for est in (self._per_key.get(key), self._all):
            if est is not None:
                est.add(rtt)
        if self._all is None:
            self._all = _Estimate(rtt, rtt / 2, low=rtt)
        if key in self._per_key:
            self._per_key.move_to_end(key)
            return
        self._per_key[key] = _Estimate(rtt, rtt / 2, low=rtt)
        while len(self._per_key) > self.max_keys:
            self._per_key.popitem(last=False)

    def timed_out(self, key: Hashable) -> None:
        """A call to ``key`` went unanswered on its first attempt: keep its
        timeout doubled (up to ``maximum``) until a fresh sample, so that a
        slow or overloaded peer is not sent a burst of retries on every call."""
        est = self._per_key.get(key)
        if est is not None and est.rto() < self.maximum:
            est.backoff *= 2.0

    def rto(self, key: Hashable) -> float:
        """The first attempt's timeout for ``key``: its own estimate, else all keys', else initial."""
        est = self._per_key.get(key) or self._all
        if est is None:
            return self.initial
        return min(self.maximum, max(self.minimum, est.rto()))

    def patience(self, key: Hashable) -> float:
        """How long a lookup waits for ``key``'s answer before it asks another
        contact as well (the answer still counts when it comes): the
        timeout without its backoff, but at most ``PATIENCE_LOWS`` times the
        lowest recent round trip, clamped. Smoothed estimates remember busy
        spells for long (a node that measured its round trips while its
        event loop was saturated kept timeouts of half a second for contacts
        that answer in a millisecond), and a dead contact then held a
        lookup for all of that; the low bound is what the path can do."""
        est = self._per_key.get(key) or self._all
        if est is None:
            return self.initial
        return min(self.maximum, max(self.minimum, est.patience()))

    def srtt(self, key: Hashable) -> float | None:
        """The smoothed round trip to ``key``, or None if it was never measured."""
        est = self._per_key.get(key)
        return None if est is None else est.srtt

    def __len__(self) -> int:
        return len(self._per_key)
