"""The owner first: remote work steps aside while a local API request runs.

A node is one process with one interpreter lock. While a peer floods it with
a long feed, the ingest thread holds that lock most of the time, and an API
request that arrives in the middle waits for it at every step (parse, query,
encode). :class:`Foreground` lets work done for peers wait while an API
request is in flight: each received peer frame before it is handled, and
each chunk of a batch before it is stored (a batch is stored in chunks only
while the API has been in use within the last second; otherwise whole, at
full speed). Each wait is capped, so a client that keeps the API busy cannot
stop replication: it only slows it down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import trio

__all__ = ["Foreground"]


class Foreground:
    """Counts the API requests in flight; background work yields to them.

    Args:
        max_wait: the longest one :meth:`yield_to_requests` call waits, in
            seconds, however busy the API stays.
        recent: how long after the last request the API counts as in use
            (:meth:`recently_busy`), in seconds.
    """

    def __init__(self, max_wait: float = 0.05, recent: float = 1.0) -> None:
        self.max_wait = max_wait
        self.recent = recent
        self._busy = 0
        self._last_end = -float("inf")
        self._idle = trio.Event()
        self._idle.set()
        #: Times background work waited for a request, and for how long in all.
        self.yields = 0
        self.yield_seconds = 0.0

    @property
    def busy(self) -> bool:
        """Whether an API request is in flight."""
        return self._busy > 0

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Mark one API request in flight for the duration of the block."""
        if self._busy == 0:
            self._idle = trio.Event()
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()
                self._last_end = trio.current_time()

    def recently_busy(self) -> bool:
        """Whether a request is in flight or ended less than ``recent`` s ago."""
        return self._busy > 0 or trio.current_time() - self._last_end < self.recent

    async def yield_to_requests(self) -> None:
        """Wait until no API request is in flight, or ``max_wait`` has passed.

        Always a checkpoint, so a caller in a loop lets the API run.
        """
        if self._busy == 0:
            await trio.lowlevel.checkpoint()
            return
        self.yields += 1
        start = trio.current_time()
        with trio.move_on_after(self.max_wait):
            await self._idle.wait()
        self.yield_seconds += trio.current_time() - start
