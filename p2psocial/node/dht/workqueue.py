"""Bounded work queues whose workers start when work arrives.

A node's hello and ping workers are idle almost all the time, and an idle
trio task and a memory channel cost a few KiB each: more than a node's
routing table once a process runs hundreds of nodes (bench/dht.py). A
:class:`WorkQueue` keeps what waits in a bounded deque and runs at most
``workers`` tasks, each started in the node's nursery when an item finds no
worker free and ended when nothing is left to do.

It takes what a memory channel of ``queue`` items read by ``workers``
waiting tasks takes: an item goes straight to a free worker, else waits if
fewer than ``queue`` wait, else :meth:`put_nowait` raises ``trio.WouldBlock``.
Items are served first in, first out; while no nursery is attached (the node
is not running) they wait, and workers start for them on :meth:`start`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

__all__ = ["WorkQueue"]

_T = TypeVar("_T")


class WorkQueue(Generic[_T]):
    """Items handed to ``work``, at most ``workers`` at once, ``queue`` more waiting.

    Args:
        work: what a worker does with one item; an exception it raises ends
            the worker and crashes the nursery, as in a worker loop.
        workers: items worked on at once.
        queue: items that may wait for a worker.
    """

    def __init__(self, work: Callable[[_T], Awaitable[None]], *, workers: int, queue: int) -> None:
        self._work = work
        self._workers = workers
        self._queue_size = queue
        #: Made when an item must wait, dropped when none does: an empty
        #: deque holds a block of 64 slots, and idle queues are the rule.
        self._waiting: deque[_T] | None = None
        self._running = 0
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Run workers in ``nursery`` (the node's) from now on, until :meth:`stop`;
        items already waiting get theirs now."""
        self._nursery = nursery
        while self._waiting is not None and self._running < self._workers:
            self._spawn(self._take())

    def stop(self) -> None:
        """Start no more workers (the nursery is closing); items wait again."""
        self._nursery = None

    def put_nowait(self, item: _T) -> None:
        """Hand ``item`` to a free worker, or queue it.

        Raises:
            trio.WouldBlock: every worker is busy and ``queue`` items wait.
        """
        if self._nursery is not None and self._running < self._workers:
            self._spawn(item)
        elif len(self) < self._queue_size:
            if self._waiting is None:
                self._waiting = deque()
            self._waiting.append(item)
        else:
            raise trio.WouldBlock

    def _take(self) -> _T:
        """The first waiting item (one waits)."""
        waiting = self._waiting
        assert waiting is not None
        item = waiting.popleft()
        if not waiting:
            self._waiting = None
        return item

    def _spawn(self, item: _T) -> None:
        assert self._nursery is not None
        self._running += 1
        self._nursery.start_soon(self._worker, item)

    async def _worker(self, item: _T) -> None:
        try:
            while True:
                await self._work(item)
                if self._nursery is None or self._waiting is None:
                    return
                item = self._take()
        finally:
            self._running -= 1

    def __len__(self) -> int:
        """Items waiting (not those being worked on)."""
        return 0 if self._waiting is None else len(self._waiting)
