"""Catch-up sync: a new follower copies a 100,000-entry feed from one peer.

Two real :class:`Replicator` nodes, each with its own SQLite store in a
temporary directory, joined by TCP on 127.0.0.1. The holder runs in a child
process (as two daemons would); ``--same-process`` runs both in one trio loop.
The holder is loaded first (not timed); the clock runs from the follower's
``connect()`` until its store holds the whole feed.

References measured beside it, same run: ``local_ingest_per_s``, the
store's batch-verified ingest rate for the same entries (no network), i.e. the
ceiling sync can approach; and ``raw_sqlite_insert_per_s``, plain sqlite3
writing the very rows that ingest stored (the ``entries`` and ``post_fts``
rows and the feed's counters) into a database of the same schema, on a
connection set up as the store's, in transactions of the same batch size:
the SQLite bound, with no decoding, verification or bookkeeping. The ratios
``ingest_vs_raw_sqlite`` and ``sync_vs_raw_sqlite`` compare against it.

Modes, in the same run (``--modes``): ``noise``, the real links (spec/sync.md
§10), and ``plain``, the same nodes with the link layer swapped for plaintext
frames and the hello only. Plaintext is not a mode of the node (there is no
fallback); this bench patches it in to measure what encryption costs. Per
mode: entries/s and CPU seconds per MiB received (follower, and the holder
process). Also: handshake latency p50/p99 on loopback (preamble, Noise XX and
the hello, as a dialler sees it).

Prints progress to stderr and one JSON object as its last stdout line:
``{"bench": "sync", "entries", "entries_per_s", "local_ingest_per_s",
"raw_sqlite_insert_per_s", "ingest_vs_raw_sqlite", "sync_vs_raw_sqlite",
"modes": {...}, "encrypted_vs_plain", "handshake_ms": {...}, ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from p2psocial.node.replication import Replicator, TCPFramedStream, handshake, pool
from p2psocial.node.replication.transport import open_secure_link
from p2psocial.protocol.entries import create_entry, decode_entry_untrusted
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage.aio import AsyncStore, open_async_store
from p2psocial.storage.connection import close_connection, connect_writer
from p2psocial.storage.derived import decode_stored_payload


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


async def load(
    store: AsyncStore, items: list[tuple[bytes, bytes]], batch: int = 500, depth: int = 2
) -> tuple[float, float]:
    """Ingest one author's ``items`` in batches; return (entries/s, CPU seconds).

    ``depth`` batches are in flight at once, as a sync link can keep them: the
    next one is decoded and verified while the last one is written (the store
    writes one feed's batches in call order).
    """
    now = int(time.time() * 1000)
    author = decode_entry_untrusted(items[0][0]).author
    slots = trio.Semaphore(depth)

    async def one(chunk: list[tuple[bytes, bytes]]) -> None:
        try:
            outs = await store.ingest(chunk, now_ms=now, author=author)
        finally:
            slots.release()
        bad = [o for o in outs if o.status != "stored"]
        if bad:
            raise SystemExit(f"load failed: {bad[0]}")

    t0, cpu0 = time.perf_counter(), time.process_time()
    async with trio.open_nursery() as nursery:
        for i in range(0, len(items), batch):
            await slots.acquire()
            nursery.start_soon(one, items[i : i + batch])
    return len(items) / (time.perf_counter() - t0), time.process_time() - cpu0


def raw_sqlite_insert(source: Path, target: Path, batch: int) -> tuple[float, float]:
    """Rows/s and CPU seconds of plain sqlite3 writing the rows ingest stored in ``source``.

    The reference. The rows are read and prepared first (not timed): every
    ``entries`` row as stored, the ``post_fts`` row of each post (under its
    search key, with its ``search_keys`` row, where the schema has them), and
    one feed counter update per batch. The timed part is only the SQL, one
    transaction per batch, executemany per table.
    """
    src = sqlite3.connect(source)
    rows = src.execute(
        "SELECT eid, fid, seq, id, ts, kind, raw, pstate, payload, target, root, aux, tl "
        "FROM entries ORDER BY eid"
    ).fetchall()
    feeds = src.execute("SELECT fid, author FROM feeds ORDER BY fid").fetchall()
    keyed = src.execute("SELECT count(*) FROM sqlite_master WHERE name = 'search_keys'").fetchone()[
        0
    ]
    keys = dict(src.execute("SELECT eid, sk FROM search_keys").fetchall()) if keyed else {}
    src.close()
    fts = [
        (keys.get(r[0], r[0]), decode_stored_payload(r[8])["text"])
        if r[5] == "post" and r[8]
        else None
        for r in rows
    ]
    conn = connect_writer(str(target))
    try:
        conn.executemany("INSERT INTO feeds(fid, author) VALUES (?, ?)", feeds)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO entries(eid, fid, seq, id, ts, kind, raw, pstate, payload, "
                "target, root, aux, tl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk,
            )
            if keys:
                conn.executemany(
                    "INSERT INTO search_keys(sk, eid) VALUES (?, ?)",
                    [(keys[r[0]], r[0]) for r in chunk if r[0] in keys],
                )
            conn.executemany(
                "INSERT INTO post_fts(rowid, text) VALUES (?, ?)",
                [f for f in fts[i : i + batch] if f is not None],
            )
            top = chunk[-1]
            conn.execute(
                "UPDATE feeds SET n_entries = n_entries + ?, max_seq = ?, head_seq = ?, "
                "head_id = ? WHERE fid = ?",
                (len(chunk), top[2], top[2], top[3], top[1]),
            )
            conn.execute("COMMIT")
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        close_connection(conn)
    return len(rows) / elapsed, cpu


async def follow(store: AsyncStore, key: SigningKey, target: bytes) -> None:
    await store.append_local(key, "follow", {"target": target}, now_ms=int(time.time() * 1000))


@contextlib.contextmanager
def plaintext_links(on: bool) -> Iterator[None]:
    """With ``on``, the pool builds plaintext framed streams and runs the bare hello."""
    if not on:
        yield
        return
    saved = pool.NoiseFramedStream, pool.secure_handshake
    pool.NoiseFramedStream = lambda stream, link: TCPFramedStream(stream, link.limits)  # type: ignore[assignment,misc]
    pool.secure_handshake = handshake  # type: ignore[assignment]
    try:
        yield
    finally:
        pool.NoiseFramedStream, pool.secure_handshake = saved  # type: ignore[misc]


async def handshake_latency(count: int) -> dict[str, float]:
    """Dial-side time of ``count`` link set-ups (TCP connect excluded) on loopback."""
    server_key, client_key = SigningKey.generate(), SigningKey.generate()

    async def accept(stream: trio.SocketStream) -> None:
        with contextlib.suppress(Exception):
            await open_secure_link(stream, server_key, 1, initiator=False)
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, accept, listeners)
        for _ in range(count):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            t0 = time.perf_counter()
            await open_secure_link(stream, client_key, 0)
            times.append((time.perf_counter() - t0) * 1000)
            await stream.aclose()
        nursery.cancel_scope.cancel()
    times.sort()
    return {
        "count": count,
        "p50": round(statistics.median(times), 3),
        "p99": round(times[min(len(times) - 1, int(0.99 * len(times)))], 3),
    }


async def serve(db: Path, identity_seed: bytes, plain: bool) -> None:
    """Child process: serve ``db`` on a Replicator; print the port; stop on stdin EOF."""
    with plaintext_links(plain):
        await _serve(db, identity_seed)


async def _serve(db: Path, identity_seed: bytes) -> None:
    key = SigningKey.from_seed(identity_seed)
    async with open_async_store(db) as store:
        rep = Replicator(store, SigningKey.generate(), identity=key.public_key)
        async with trio.open_nursery() as nursery:
            _host, port = await nursery.start(rep.run)
            print(port, flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)
            nursery.cancel_scope.cancel()


async def run(
    n: int,
    batch: int,
    workdir: Path,
    same_process: bool,
    modes: list[str],
    handshakes: int,
    depth: int = 2,
) -> dict[str, Any]:
    author = SigningKey.generate()
    print(f"signing {n} entries...", file=sys.stderr)
    items = make_feed(author, n)
    holder_seed = b"h" * 32
    hk = SigningKey.from_seed(holder_seed)
    async with open_async_store(workdir / "reference.db") as ref_store:
        print("reference: local batch-verified ingest...", file=sys.stderr)
        local_rate, local_cpu = await load(ref_store, items, batch, depth)
        print(f"  {local_rate:,.0f} entries/s, {local_cpu:.2f} s CPU", file=sys.stderr)
    print("reference: raw sqlite3 insert of the same rows...", file=sys.stderr)
    raw_rate, raw_cpu = raw_sqlite_insert(workdir / "reference.db", workdir / "raw.db", batch)
    print(
        f"  {raw_rate:,.0f} rows/s, {raw_cpu:.2f} s CPU (ingest at {local_rate / raw_rate:.2f} x that)",
        file=sys.stderr,
    )
    async with open_async_store(workdir / "holder.db") as holder_store:
        await load(holder_store, items, batch, depth)
        await follow(holder_store, hk, author.public_key)
    results: dict[str, Any] = {}
    for mode in modes:
        print(f"sync over {mode} links...", file=sys.stderr)
        with plaintext_links(mode == "plain"):
            results[mode] = await sync_once(
                n, batch, workdir / f"follower-{mode}.db", author, holder_seed, same_process, mode
            )
        print(f"  {results[mode]['entries_per_s']:,} entries/s", file=sys.stderr)
    print(f"handshake latency ({handshakes} links)...", file=sys.stderr)
    latency = await handshake_latency(handshakes)
    first = results[modes[0]]
    out: dict[str, Any] = {
        "bench": "sync",
        "entries": n,
        "entries_per_s": first["entries_per_s"],
        "local_ingest_per_s": round(local_rate),
        "raw_sqlite_insert_per_s": round(raw_rate),
        "ingest_vs_raw_sqlite": round(local_rate / raw_rate, 3),
        "local_ingest_cpu_s": round(local_cpu, 3),
        "raw_sqlite_cpu_s": round(raw_cpu, 3),
        "depth": depth,
        "sync_vs_raw_sqlite": round(first["entries_per_s"] / raw_rate, 3),
        "mode": "same process" if same_process else "holder in a child process",
        "batch": batch,
        "modes": results,
        "handshake_ms": latency,
    }
    if "plain" in results and "noise" in results:
        out["encrypted_vs_plain"] = round(
            results["noise"]["entries_per_s"] / results["plain"]["entries_per_s"], 3
        )
    return out


async def sync_once(
    n: int,
    batch: int,
    db: Path,
    author: SigningKey,
    holder_seed: bytes,
    same_process: bool,
    mode: str,
) -> dict[str, Any]:
    """One follower catches up from the holder; rate, traffic and CPU per MiB."""
    workdir = db.parent
    hk, fk = SigningKey.from_seed(holder_seed), SigningKey.generate()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    async with open_async_store(db) as follower_store:
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
                        mode,
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
            t0, cpu0 = time.perf_counter(), time.process_time()
            assert await follower.connect(*addr)
            while True:
                head = await follower_store.head(author.public_key)
                if head is not None and head[0] == n:
                    break
                await trio.sleep(0.02)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            stats = follower.statistics()
            if proc is not None:
                assert proc.stdin is not None
                await proc.stdin.aclose()
                await proc.wait()
            else:
                await holder_cm.__aexit__(None, None, None)
            nursery.cancel_scope.cancel()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    holder_cpu = (children1.ru_utime + children1.ru_stime) - (
        children0.ru_utime + children0.ru_stime
    )
    mib = stats["bytes_in"] / 2**20
    result = {
        "entries_per_s": round(n / elapsed),
        "seconds": round(elapsed, 3),
        "bytes_in": stats["bytes_in"],
        "bytes_per_entry": round(stats["bytes_in"] / n, 1),
        "frames_in": stats["frames_in"],
        # Both include storing and verifying: the whole cost of a MiB synced.
        "follower_cpu_s_per_mib": round(cpu / mib, 4),
        "follower_cpu_s": round(cpu, 3),
    }
    if not same_process:
        result["holder_cpu_s_per_mib"] = round(holder_cpu / mib, 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--same-process", action="store_true", help="run both nodes in one trio loop"
    )
    parser.add_argument(
        "--modes", default="plain,noise", help="comma-separated: plain, noise (default both)"
    )
    parser.add_argument("--handshakes", type=int, default=200, help="links timed for latency")
    parser.add_argument(
        "--depth", type=int, default=2, help="batches in flight in the local ingest reference"
    )
    parser.add_argument("--serve", nargs=3, metavar=("DB", "SEED", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, Path(args.serve[0]), bytes.fromhex(args.serve[1]), args.serve[2] == "plain")
        return
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - {"plain", "noise"}:
        parser.error("--modes takes plain and/or noise")
    with tempfile.TemporaryDirectory(prefix="p2ps-bench-sync-") as tmp:
        result = trio.run(
            run,
            args.entries,
            args.batch,
            Path(tmp),
            args.same_process,
            modes,
            args.handshakes,
            max(1, args.depth),
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
