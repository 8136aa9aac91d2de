"""A seeded, lossy in-memory datagram network for DHT tests and simulations.

Datagrams are dropped, duplicated and delayed deterministically (one
``random.Random(seed)`` for the whole network), and delivered in the order of
their delivery times. Nothing here spawns tasks: each socket keeps a bounded
heap of arriving datagrams and ``recvfrom`` sleeps until the earliest is due,
so it runs unchanged under ``trio.testing.MockClock(autojump_threshold=0)``
(compare trio's ``test_dtls.py::test_handshake_over_terrible_network``).
"""

from __future__ import annotations

import heapq
import itertools
import random

import trio

from .common import Addr

__all__ = ["MemoryNetwork", "MemorySocket"]


class MemorySocket:
    """One endpoint of a :class:`MemoryNetwork` (the DHT's DatagramSocket)."""

    def __init__(self, net: MemoryNetwork, addr: Addr) -> None:
        self._net = net
        self._addr = addr
        self._heap: list[tuple[float, int, bytes, Addr]] = []
        self._wake = trio.Event()
        self.closed = False

    def getsockname(self) -> Addr:
        return self._addr

    async def sendto(self, data: bytes, addr: Addr) -> None:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise OSError("socket is closed")
        self._net._route(self._addr, data, addr)

    def _deliver(self, at: float, data: bytes, src: Addr) -> None:
        if len(self._heap) >= self._net.queue_limit:
            self._net.stats["overflow"] += 1
            return
        heapq.heappush(self._heap, (at, next(self._net._seq), data, src))
        self._wake.set()

    async def recvfrom(self) -> tuple[bytes, Addr]:
        while True:
            if self.closed:
                raise trio.ClosedResourceError
            now = trio.current_time()
            if self._heap and self._heap[0][0] <= now:
                _, _, data, src = heapq.heappop(self._heap)
                await trio.lowlevel.checkpoint()
                return data, src
            self._wake = trio.Event()
            if self._heap:
                with trio.move_on_at(self._heap[0][0]):
                    await self._wake.wait()
            else:
                await self._wake.wait()

    def close(self) -> None:
        self.closed = True
        self._net._sockets.pop(self._addr, None)
        self._wake.set()


class MemoryNetwork:
    """The network: bind sockets with :meth:`socket_factory`.

    Args:
        seed: seeds every random decision.
        loss: probability that a datagram is dropped.
        duplicate: probability that it is delivered twice.
        delay: (min, max) one-way latency in seconds, uniform.
        queue_limit: datagrams waiting per socket before more are dropped.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.001, 0.010),
        queue_limit: int = 1024,
    ) -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.queue_limit = queue_limit
        self._sockets: dict[Addr, MemorySocket] = {}
        self._next_port = 10000
        self._seq = itertools.count()
        self.stats: dict[str, int] = {
            "sent": 0,
            "lost": 0,
            "duplicated": 0,
            "overflow": 0,
            "unroutable": 0,
        }

    async def socket_factory(self, host: str, port: int) -> MemorySocket:
        """Bind a socket (port 0 = the next free one)."""
        await trio.lowlevel.checkpoint()
        if port == 0:
            while (host, self._next_port) in self._sockets:
                self._next_port += 1
            port = self._next_port
            self._next_port += 1
        addr = (host, port)
        if addr in self._sockets:
            raise OSError(f"address {host}:{port} in use")
        sock = MemorySocket(self, addr)
        self._sockets[addr] = sock
        return sock

    def _route(self, src: Addr, data: bytes, dst: Addr) -> None:
        self.stats["sent"] += 1
        target = self._sockets.get(dst)
        if target is None:
            self.stats["unroutable"] += 1
            return
        rng = self.rng
        if rng.random() < self.loss:
            self.stats["lost"] += 1
            return
        copies = 2 if rng.random() < self.duplicate else 1
        if copies == 2:
            self.stats["duplicated"] += 1
        now = trio.current_time()
        for _ in range(copies):
            target._deliver(now + rng.uniform(*self.delay), data, src)
