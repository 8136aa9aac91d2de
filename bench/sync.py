"""Catch-up sync: a new follower copies a 100,000-entry feed from one peer.

Two real :class:`Replicator` nodes, each with its own SQLite store in a
temporary directory, joined by TCP on 127.0.0.1. The holder runs in a child
process (as two daemons would); ``--same-process`` runs both in one trio loop.
The holder is loaded first (not timed); the clock runs from the follower's
``connect()`` until its store holds the whole feed.

Reference measured beside it, same run: ``local_ingest_per_s``, the store's
batch-verified ingest rate for the same entries (no network), i.e. the
ceiling sync can approach.

Prints progress to stderr and one JSON object as its last stdout line:
``{"bench": "sync", "entries", "entries_per_s", "local_ingest_per_s", ...}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from p2psocial.node.replication import Replicator
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage.aio import AsyncStore, open_async_store


def make_feed(key: SigningKey, n: int) -> list[tuple[bytes, bytes]]:
    items: list[tuple[bytes, bytes]] = []
    prev: bytes | None = None
    ts = int(time.time() * 1000) - 10 * n
    for seq in range(1, n + 1):
        entry, payload = create_entry(
            key,
            seq=seq,
            prev=prev,
            timestamp=ts + seq,
            kind="post",
            payload={"text": f"entry number {seq} of the benchmark feed"},
        )
        items.append((entry.to_bytes(), payload))
        prev = entry.id
    return items


async def load(store: AsyncStore, items: list[tuple[bytes, bytes]], batch: int = 500) -> float:
    """Ingest ``items`` in batches; return entries per second."""
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    for i in range(0, len(items), batch):
        outs = await store.ingest(items[i : i + batch], now_ms=now)
        bad = [o for o in outs if o.status != "stored"]
        if bad:
            raise SystemExit(f"load failed: {bad[0]}")
    return len(items) / (time.perf_counter() - t0)


async def follow(store: AsyncStore, key: SigningKey, target: bytes) -> None:
    await store.append_local(key, "follow", {"target": target}, now_ms=int(time.time() * 1000))


async def serve(db: Path, identity_seed: bytes) -> None:
    """Child process: serve ``db`` on a Replicator; print the port; stop on stdin EOF."""
    key = SigningKey.from_seed(identity_seed)
    async with open_async_store(db) as store:
        rep = Replicator(store, SigningKey.generate(), identity=key.public_key)
        async with trio.open_nursery() as nursery:
            _host, port = await nursery.start(rep.run)
            print(port, flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)
            nursery.cancel_scope.cancel()


async def run(n: int, batch: int, workdir: Path, same_process: bool) -> dict[str, Any]:
    author = SigningKey.generate()
    print(f"signing {n} entries...", file=sys.stderr)
    items = make_feed(author, n)
    holder_seed = b"h" * 32
    hk, fk = SigningKey.from_seed(holder_seed), SigningKey.generate()
    async with open_async_store(workdir / "reference.db") as ref_store:
        print("reference: local batch-verified ingest...", file=sys.stderr)
        local_rate = await load(ref_store, items, batch)
        print(f"  {local_rate:,.0f} entries/s", file=sys.stderr)
    async with open_async_store(workdir / "holder.db") as holder_store:
        await load(holder_store, items, batch)
        await follow(holder_store, hk, author.public_key)
    async with open_async_store(workdir / "follower.db") as follower_store:
        await follow(follower_store, fk, author.public_key)
        follower = Replicator(
            follower_store, SigningKey.generate(), identity=fk.public_key, batch_size=batch
        )
        async with trio.open_nursery() as nursery:
            if same_process:
                holder_cm = open_async_store(workdir / "holder.db")
                holder_store2 = await holder_cm.__aenter__()
                holder = Replicator(holder_store2, SigningKey.generate(), identity=hk.public_key)
                addr = await nursery.start(holder.run)
                proc = None
            else:
                proc = await trio.lowlevel.open_process(
                    [
                        sys.executable,
                        __file__,
                        "--serve",
                        str(workdir / "holder.db"),
                        holder_seed.hex(),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                assert proc.stdout is not None
                line = b""
                while not line.endswith(b"\n"):
                    chunk = await proc.stdout.receive_some(64)
                    if not chunk:
                        raise SystemExit("holder process died")
                    line += chunk
                addr = ("127.0.0.1", int(line))
            await nursery.start(follower.run)
            t0 = time.perf_counter()
            assert await follower.connect(*addr)
            while True:
                head = await follower_store.head(author.public_key)
                if head is not None and head[0] == n:
                    break
                await trio.sleep(0.02)
            elapsed = time.perf_counter() - t0
            stats = follower.statistics()
            if proc is not None:
                assert proc.stdin is not None
                await proc.stdin.aclose()
                await proc.wait()
            else:
                await holder_cm.__aexit__(None, None, None)
            nursery.cancel_scope.cancel()
    return {
        "bench": "sync",
        "entries": n,
        "entries_per_s": round(n / elapsed),
        "local_ingest_per_s": round(local_rate),
        "mode": "same process" if same_process else "holder in a child process",
        "seconds": round(elapsed, 3),
        "batch": batch,
        "bytes_in": stats["bytes_in"],
        "bytes_per_entry": round(stats["bytes_in"] / n, 1),
        "frames_in": stats["frames_in"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--same-process", action="store_true", help="run both nodes in one trio loop"
    )
    parser.add_argument("--serve", nargs=2, metavar=("DB", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, Path(args.serve[0]), bytes.fromhex(args.serve[1]))
        return
    with tempfile.TemporaryDirectory(prefix="p2ps-bench-sync-") as tmp:
        result = trio.run(run, args.entries, args.batch, Path(tmp), args.same_process)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
