"""A first timeline in seconds: follow -> the author's latest 50 posts shown.

Real ``p2psocial daemon`` processes on 127.0.0.1. A holder's data dir is
loaded beforehand with ``--entries`` posts (default 10,000) of one author,
whom it follows. A fresh node (a new user: empty data dir) is linked to the
holder, then follows the author; the clock starts at that ``follow`` call.
The bench polls the new node's timeline (50 entries, as ``p2psocial
timeline`` asks) until it shows the author's latest 50 posts, then polls
``sync_progress`` until the whole feed is held contiguously.

Reference, same run: the same with newest-first catch-up switched off on the
new node (``P2PSOCIAL_SYNC_NEWEST_FIRST=0``: the classic catch-up, oldest
entries first). The runs alternate, ``--rounds`` of each, one fresh node
per run and the same holder for all.

Prints progress on stderr and one JSON object as the last stdout line:
``{"bench": "firstsync", "entries", "latest50_s", "full_s", "ref_latest50_s",
"ref_full_s", ...}`` (medians over the rounds; each run's figures in ``runs``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import p2psocial.client as pc
from p2psocial.protocol.identity import SigningKey, identity_to_text
from p2psocial.storage.aio import open_async_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync import load, make_feed  # bench/sync.py: the same feed builder

RECENT = 50


def start(data_dir: Path, env: dict[str, str]) -> pc.DaemonProcess:
    log = data_dir.parent / f"{data_dir.name}.log"
    try:
        return pc.spawn_daemon(data_dir, log_level="warning", log=log, ready_timeout=60, env=env)
    except pc.DaemonProcessError as exc:
        raise SystemExit(f"{exc.message}:\n{log.read_text(errors='replace')}") from None


async def init(data_dir: Path) -> None:
    await trio.run_process(
        pc.cli_argv("init", data_dir=data_dir),
        check=True,
        stdin=b"",
        stdout=subprocess.DEVNULL,
        env=pc.daemon_env(),
    )


async def latest_shown(client: pc.AsyncClient, author: str, n: int) -> bool:
    """Whether the timeline's first page shows the author's latest ``RECENT`` posts."""
    page = await client.timeline(limit=RECENT)
    seqs = [e["seq"] for e in page["items"] if e["author"] == author]
    return seqs == list(range(n, n - RECENT, -1))


async def one_run(
    args: argparse.Namespace, root: Path, name: str, holder_peer: str, author: str, newest: bool
) -> dict[str, Any]:
    data_dir = root / name
    await init(data_dir)
    env = pc.daemon_env() if newest else pc.daemon_env(P2PSOCIAL_SYNC_NEWEST_FIRST="0")
    proc = await trio.to_thread.run_sync(start, data_dir, env)
    try:
        async with pc.connect_async(api=proc.info["api"]) as client:
            host, port = holder_peer.rsplit(":", 1)
            await client.connect(host=host, port=int(port))
            t0 = time.perf_counter()
            await client.follow(identity=author)
            latest: float | None = None
            full: float | None = None
            with trio.move_on_after(args.deadline):
                while latest is None:
                    if await latest_shown(client, author, args.entries):
                        latest = time.perf_counter() - t0
                        break
                    await trio.sleep(args.interval)
                while full is None:
                    prog = await client.call("sync_progress", identity=author)
                    row = prog["items"][0]
                    if row["contiguous"] >= args.entries:
                        full = time.perf_counter() - t0
                        break
                    await trio.sleep(args.interval)
            stats = (await client.statistics())["replication"]
    finally:
        pc.stop_daemons([proc])
    mode = "newest-first" if newest else "reference (oldest first)"
    print(
        f"{mode}: latest {RECENT} shown after "
        f"{'-' if latest is None else f'{latest:.2f}'} s, whole feed after "
        f"{'-' if full is None else f'{full:.2f}'} s",
        file=sys.stderr,
    )
    return {
        "newest_first": newest,
        "latest50_s": None if latest is None else round(latest, 3),
        "full_s": None if full is None else round(full, 3),
        "entries_stored": stats["entries_stored"],
        "entries_duplicate": stats["entries_duplicate"],
        "catch_ups": stats.get("catch_ups"),
        "catch_ups_stalled": stats.get("catch_ups_stalled"),
        "links_dropped": stats["links_dropped"],
    }


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(statistics.median(got), 3) if len(got) == len(values) and got else None


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    author_key = SigningKey.generate()
    author = identity_to_text(author_key.public_key)
    holder_dir = root / "holder"
    await init(holder_dir)
    print(f"signing {args.entries} entries...", file=sys.stderr)
    async with open_async_store(holder_dir / "node.db") as store:
        await load(store, make_feed(author_key, args.entries))
        await store.set_interest(author_key.public_key, "follow")
    holder = await trio.to_thread.run_sync(start, holder_dir, pc.daemon_env())
    runs: list[dict[str, Any]] = []
    try:
        async with pc.connect_async(api=holder.info["api"]) as hc:
            await hc.follow(identity=author)
        for r in range(args.rounds):
            for newest in (False, True) if r % 2 else (True, False):
                name = f"new{r}{'n' if newest else 'c'}"
                runs.append(await one_run(args, root, name, holder.info["peer"], author, newest))
    finally:
        pc.stop_daemons([holder])
    ours = [x for x in runs if x["newest_first"]]
    ref = [x for x in runs if not x["newest_first"]]
    return {
        "bench": "firstsync",
        "entries": args.entries,
        "rounds": args.rounds,
        "latest50_s": median([x["latest50_s"] for x in ours]),
        "full_s": median([x["full_s"] for x in ours]),
        "ref_latest50_s": median([x["latest50_s"] for x in ref]),
        "ref_full_s": median([x["full_s"] for x in ref]),
        "goal_latest50_s": 10.0,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each mode, alternating")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between polls")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per run at most")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.entries < RECENT:
        parser.error(f"--entries must be at least {RECENT}")
    if args.keep:
        root = Path(tempfile.mkdtemp(prefix="p2ps-bench-firstsync-"))
        print(f"data dirs and daemon logs are kept in {root}", file=sys.stderr)
        result = trio.run(run, args, root)
    else:
        with tempfile.TemporaryDirectory(prefix="p2ps-bench-firstsync-") as tmp:
            result = trio.run(run, args, Path(tmp))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
