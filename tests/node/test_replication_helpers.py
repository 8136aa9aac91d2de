"""A small real test network for replication: stores in tmp_path, real TCP.

``open_testnet(tmp_path, n)`` starts n :class:`Replicator` nodes on 127.0.0.1
(port 0), each with its own SQLite store, inside one nursery. Tests connect
them explicitly with ``connect()``. Waiting is event-driven: every node's
``on_stored`` callback wakes :func:`TestNet.wait_for`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.node.replication import Replicator
from p2psocial.protocol.entries import Entry, create_entry
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage.aio import AsyncStore, open_async_store


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class TNode:
    """One node of the test network."""

    name: str
    key: SigningKey
    node_key: SigningKey
    store: AsyncStore
    rep: Replicator
    net: TestNet
    addr: tuple[str, int] = ("", 0)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def identity(self) -> bytes:
        return self.key.public_key

    async def publish(self, kind: str, payload: dict[str, Any]) -> Entry:
        entry = await self.store.append_local(self.key, kind, payload, now_ms=now_ms())
        rows = await self.store.entries_after(entry.author, entry.seq - 1, 1)
        self.rep.notify_local(entry, rows[0][1])
        return entry

    async def post(self, text: str, **extra: Any) -> Entry:
        return await self.publish("post", {"text": text, **extra})

    async def follow(self, *others: TNode | bytes) -> None:
        for other in others:
            target = other.identity if isinstance(other, TNode) else other
            await self.publish("follow", {"target": target})
        await self.rep.refresh()

    async def connect(self, other: TNode) -> None:
        assert await self.rep.connect(*other.addr)

    async def seq_of(self, author: TNode | bytes) -> int:
        a = author.identity if isinstance(author, TNode) else author
        head = await self.store.head(a)
        return head[0] if head else 0

    def stop(self) -> None:
        self.scope.cancel()


class TestNet:
    """Nodes plus a progress event for waiting."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.nodes: list[TNode] = []
        self.nursery: trio.Nursery | None = None
        self._progress = trio.Event()

    def stored(self, _entries: list[Entry]) -> None:
        self._progress.set()

    async def wait_for(self, cond: Callable[[], Awaitable[bool]], *, poll: float = 0.25) -> None:
        """Return once ``cond()`` holds; re-check whenever any node stores entries.

        The short poll is only a fallback for conditions that change without
        a store event (e.g. a fork proof freezing a feed).
        """
        while not await cond():
            with trio.move_on_after(poll):
                await self._progress.wait()
            self._progress = trio.Event()

    async def converged(self, follows: dict[TNode, list[TNode]]) -> bool:
        for follower, authors in follows.items():
            for a in authors:
                if await follower.seq_of(a) != await a.seq_of(a):
                    return False
        return True


@asynccontextmanager
async def open_testnet(
    tmp_path: Path, n: int, *, with_dht: bool = False, **replicator_kw: Any
) -> AsyncIterator[TestNet]:
    """Start ``n`` replication nodes (and DHT nodes if asked); stop them all on exit."""
    net = TestNet()
    kw: dict[str, Any] = {"refresh_interval": 0.5, "handshake_timeout": 5.0}
    kw.update(replicator_kw)
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(open_async_store(tmp_path / f"n{i}.db"))
            for i in range(n)
        ]
        async with trio.open_nursery() as nursery:
            net.nursery = nursery
            dhts: list[DHTNode | None] = [None] * n
            # One node key per node for its DHT node and its links, as a daemon
            # has: swarm dials then pin the node id the DHT named.
            node_keys = [SigningKey.generate() for _ in range(n)]
            if with_dht:
                cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=3)
                dhts = [DHTNode(k, "127.0.0.1", 0, config=cfg) for k in node_keys]
                for d in dhts:
                    assert d is not None
                    await nursery.start(d.run)
                for d in dhts[1:]:
                    assert d is not None and dhts[0] is not None
                    await d.bootstrap([dhts[0].address])
            for i, store in enumerate(stores):
                key, node_key = SigningKey.generate(), node_keys[i]
                await store.set_interest(key.public_key, "self")
                rep = Replicator(
                    store,
                    node_key,
                    dht=dhts[i],
                    identity=key.public_key,
                    on_stored=net.stored,
                    **kw,
                )
                node = TNode(f"n{i}", key, node_key, store, rep, net)
                node.addr = await nursery.start(_run_node, node)
                net.nodes.append(node)
            try:
                yield net
            finally:
                nursery.cancel_scope.cancel()


async def _run_node(node: TNode, *, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
    with node.scope:
        await node.rep.run(task_status=task_status)


def make_feed(
    key: SigningKey, n: int, *, start: int = 1, prev: bytes | None = None, text: str = "p"
) -> list[tuple[bytes, bytes]]:
    """n signed posts of ``key`` from seq ``start`` (prev = id of start-1)."""
    items: list[tuple[bytes, bytes]] = []
    ts = now_ms() - 60_000
    for seq in range(start, start + n):
        entry, payload = create_entry(
            key,
            seq=seq,
            prev=prev,
            timestamp=ts + seq,
            kind="post",
            payload={"text": f"{text} {seq}"},
        )
        items.append((entry.to_bytes(), payload))
        prev = entry.id
    return items


async def load_feed(store: AsyncStore, items: list[tuple[bytes, bytes]]) -> None:
    for i in range(0, len(items), 1000):
        outs = await store.ingest(items[i : i + 1000], now_ms=now_ms())
        assert all(o.status == "stored" for o in outs), {o.reason for o in outs}
