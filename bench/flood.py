"""API latency while one peer floods the node with a followed feed.

Two real ``p2psocial daemon`` processes on 127.0.0.1. The holder's data dir
is loaded beforehand with ``--entries`` entries (default 100,000) of one
author, whom it follows. The victim follows the same author and is linked to
the holder, so it catches up the whole feed as fast as the holder sends it.
Meanwhile the bench asks the victim's local API for a timeline page, as a
client would, at most every ``--interval`` seconds, and records each call's
latency.

Reference measured beside it, same run: the same API call on the same victim
while idle, just before the follow.

Prints progress on stderr and one JSON object as the last stdout line:
``{"bench": "flood", "entries", "idle_p50_ms", "idle_p99_ms", "flood_p50_ms",
"flood_p99_ms", "flood_calls", "ingest_per_s", ...}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from p2psocial.client import (
    AsyncClient,
    DaemonProcess,
    DaemonProcessError,
    cli_argv,
    connect_async,
    daemon_env,
    spawn_daemon,
    stop_daemons,
)
from p2psocial.protocol.identity import SigningKey, identity_to_text
from p2psocial.storage.aio import open_async_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync import load, make_feed  # bench/sync.py: the same feed builder


def start(data_dir: Path) -> DaemonProcess:
    log = data_dir.parent / f"{data_dir.name}.log"
    try:
        return spawn_daemon(data_dir, log_level="warning", log=log, ready_timeout=60)
    except DaemonProcessError as exc:
        raise SystemExit(f"{exc.message}:\n{log.read_text(errors='replace')}") from None


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


async def sample(client: AsyncClient, count: int, interval: float) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        await client.timeline(limit=50)
        out.append((time.perf_counter() - t0) * 1000)
        await trio.sleep(interval)
    return out


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    author = SigningKey.generate()
    holder_dir, victim_dir = root / "holder", root / "victim"
    for d in (holder_dir, victim_dir):
        await trio.run_process(
            cli_argv("init", data_dir=d),
            check=True,
            stdin=b"",
            stdout=subprocess.DEVNULL,
            env=daemon_env(),
        )
    print(f"signing {args.entries} entries...", file=sys.stderr)
    items = make_feed(author, args.entries)
    async with open_async_store(holder_dir / "node.db") as store:
        await load(store, items)
        await store.set_interest(author.public_key, "follow")
    procs: list[DaemonProcess] = []
    try:
        procs.append(await trio.to_thread.run_sync(start, holder_dir))
        procs.append(await trio.to_thread.run_sync(start, victim_dir))
        hinfo, vinfo = procs[0].info, procs[1].info
        async with (
            connect_async(api=hinfo["api"]) as holder,
            connect_async(api=vinfo["api"]) as victim,
        ):
            await holder.follow(identity=identity_to_text(author.public_key))
            idle = await sample(victim, args.calls, args.interval)
            print(f"idle: p50 {percentile(idle, 0.5):.2f} ms", file=sys.stderr)
            await victim.follow(identity=identity_to_text(author.public_key))
            host, port = hinfo["peer"].rsplit(":", 1)
            t0 = time.perf_counter()
            await victim.connect(host=host, port=int(port))
            flood: list[float] = []
            done_at: float | None = None
            with trio.move_on_after(args.deadline):
                while True:
                    flood += await sample(victim, 10, args.interval)
                    feed = await victim.feed(identity=identity_to_text(author.public_key), limit=1)
                    top = feed["items"][0]["seq"] if feed["items"] else 0
                    if top >= args.entries:
                        # The newest is held; wait until the whole run is in.
                        stats = await victim.statistics()
                        if stats["replication"]["entries_stored"] >= args.entries:
                            done_at = time.perf_counter()
                            break
            elapsed = (done_at or time.perf_counter()) - t0
            stats = await victim.statistics()
            stored = stats["replication"]["entries_stored"]
    finally:
        stop_daemons(procs)
    return {
        "bench": "flood",
        "entries": args.entries,
        "stored": stored,
        "complete": done_at is not None,
        "seconds": round(elapsed, 2),
        "ingest_per_s": round(stored / elapsed) if elapsed else None,
        "flood_calls": len(flood),
        "flood_p50_ms": round(percentile(flood, 0.5), 2),
        "flood_p99_ms": round(percentile(flood, 0.99), 2),
        "flood_max_ms": round(max(flood), 2) if flood else None,
        "idle_calls": len(idle),
        "idle_p50_ms": round(percentile(idle, 0.5), 2),
        "idle_p99_ms": round(percentile(idle, 0.99), 2),
        "idle_mean_ms": round(statistics.fmean(idle), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200, help="idle API calls (the reference)")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between calls")
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="p2ps-bench-flood-"))
    try:
        result = trio.run(run, args, root)
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
