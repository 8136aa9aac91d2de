"""Writer process for the durability test: writes until killed.

Usage: python durability_writer.py DB_PATH [--concurrent]

It prints ``C <author hex> <seq> <id hex>`` for every entry only once the
store has acknowledged it (the commit that holds it is done), then flushes
stdout, so everything printed was committed first.

Plain mode ingests batches of four peers' feeds and appends one own post per
batch, on the synchronous store. ``--concurrent`` runs the trio store: one task
ingests the same batches while eight tasks post to two own feeds at once, so
own posts share group commits, and one more task keeps sending posts that
break the schema, so that groups also hold acts that fail (and must leave no
trace); after each batch it prints ``S <local_commits> <local_acts> <local_failed>``.
"""

from __future__ import annotations

import sys

import trio

from p2psocial.errors import LocalUsageError
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage import AsyncStore, Store, open_async_store

NOW = 1_700_000_000_000
AUTHORS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
OWN = SigningKey.from_seed(b"\x77" * 32)
OWN2 = SigningKey.from_seed(b"\x78" * 32)
POSTERS = 8


def _batch(
    heads: dict[bytes, tuple[int, bytes] | None], n: int
) -> tuple[list[tuple[bytes, bytes | None]], list[str]]:
    """The next 25 entries of each peer feed, and their report lines."""
    items: list[tuple[bytes, bytes | None]] = []
    lines = []
    for k in AUTHORS:
        head = heads[k.public_key]
        seq, prev = (head[0] + 1, head[1]) if head else (1, None)
        for _ in range(25):
            entry, data = create_entry(
                k,
                seq=seq,
                prev=prev,
                timestamp=NOW + seq,
                kind="post",
                payload={"text": f"entry {seq} of batch {n} with some words"},
            )
            items.append((entry.to_bytes(), data))
            lines.append(f"C {k.public_key.hex()} {seq} {entry.id.hex()}\n")
            seq, prev = seq + 1, entry.id
    return items, lines


def plain(path: str) -> None:
    store = Store.open(path)
    out = sys.stdout
    n = 0
    while True:
        n += 1
        items, lines = _batch({k.public_key: store.head(k.public_key) for k in AUTHORS}, n)
        outcomes = store.ingest(items, now_ms=NOW)
        assert all(o.status == "stored" for o in outcomes), outcomes
        own = store.append_local(OWN, "post", {"text": f"own post {n}"}, now_ms=NOW + n)
        lines.append(f"C {OWN.public_key.hex()} {own.seq} {own.id.hex()}\n")
        out.write("".join(lines))
        out.flush()


async def concurrent(path: str) -> None:
    out = sys.stdout

    async def ingest(store: AsyncStore) -> None:
        n = 0
        while True:
            n += 1
            heads = {k.public_key: await store.head(k.public_key) for k in AUTHORS}
            items, lines = _batch(heads, n)
            outcomes = await store.ingest(items, now_ms=NOW)
            assert all(o.status == "stored" for o in outcomes), outcomes
            stats = await store.statistics()
            lines.append(
                f"S {stats['local_commits']} {stats['local_acts']} {stats['local_failed']}\n"
            )
            out.write("".join(lines))
            out.flush()

    async def post(store: AsyncStore, i: int) -> None:
        k = OWN if i % 2 else OWN2
        n = 0
        while True:
            n += 1
            e = await store.append_local(k, "post", {"text": f"poster {i} #{n}"}, now_ms=NOW + n)
            out.write(f"C {k.public_key.hex()} {e.seq} {e.id.hex()}\n")
            out.flush()

    async def bad(store: AsyncStore) -> None:
        while True:
            try:
                await store.append_local(OWN, "post", {"text": 5}, now_ms=NOW)
            except LocalUsageError:
                pass
            else:
                raise AssertionError("a post with a number for text was stored")

    async with open_async_store(path) as store, trio.open_nursery() as nursery:
        nursery.start_soon(ingest, store)
        for i in range(POSTERS):
            nursery.start_soon(post, store, i)
        nursery.start_soon(bad, store)


if __name__ == "__main__":
    if sys.argv[2:] == ["--concurrent"]:
        trio.run(concurrent, sys.argv[1])
    else:
        plain(sys.argv[1])
