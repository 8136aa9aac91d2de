"""Bench: a daemon's memory over 10,000 local API calls on a 1M-entry store.

A real ``p2psocial daemon`` serves bench/storage.py's store (the one
bench/api.py uses: ``--entries`` entries from ``--authors`` authors,
``--followed`` of them followed by the owner). One blocking client, as the
CLI and the TUI use, makes ``--calls`` calls drawn from a seeded mix of what
a person does: timeline pages at random depths, author feeds, searches,
threads, profiles, explanations, mentions, notifications, status and
statistics, and an own post now and then. Authors and entry ids come from
the pages already read, as a client that follows what it shows.

The daemon's resident set (VmRSS) is sampled every ``--every`` calls; the
reference, measured in the same run, is the same daemon idle before the first
call. Goal: at most 100 MiB after 10,000 calls.

Prints progress on stderr and one JSON object as the last stdout line:
``{"bench": "memory", "calls", "rss_idle_mib", "rss_after_mib", "rss_peak_mib",
"samples": [[calls, MiB], ...], "per_method": {...}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import prepare, start, stop_quietly  # bench/api.py: the same data dir and daemon
from storage import VOCAB, add_store_arguments, big_store, positive

from p2psocial import connect
from p2psocial.client import DaemonProcess

#: The mix of calls, with their weights.
MIX = (
    ("timeline", 30),
    ("feed", 14),
    ("search", 14),
    ("thread", 10),
    ("profile", 10),
    ("explain", 5),
    ("mentions", 4),
    ("notifications", 4),
    ("status", 4),
    ("statistics", 3),
    ("post", 2),
)


def vm_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


class Workload:
    """Seeded calls that follow what earlier pages showed."""

    def __init__(self, client: Any, rng: random.Random) -> None:
        self.client, self.rng = client, rng
        self.cursors: list[str | None] = [None]
        self.authors: list[str] = []
        self.ids: list[str] = []
        names = [m for m, _ in MIX]
        weights = [w for _, w in MIX]
        self._pick = lambda: rng.choices(names, weights)[0]
        self.posts = 0

    def _seen(self, page: Any) -> None:
        """Remember cursors, authors and ids of a page (bounded, like a client's history)."""
        for item in page.get("items", [])[:5]:
            self.authors.append(item["author"])
            self.ids.append(item["id"])
        if page.get("next") is not None:
            self.cursors.append(page["next"])
        for seen in (self.authors, self.ids, self.cursors):
            del seen[:-500]

    def one(self) -> str:
        c, rng = self.client, self.rng
        method = self._pick()
        if not self.ids and method in ("thread", "explain", "feed", "profile"):
            method = "timeline"
        if method == "timeline":
            self._seen(c.timeline(limit=50, before=rng.choice(self.cursors)))
        elif method == "feed":
            self._seen(c.feed(rng.choice(self.authors), limit=50))
        elif method == "search":
            self._seen(c.call("search", query=rng.choice(VOCAB), limit=20))
        elif method == "thread":
            c.thread(rng.choice(self.ids))
        elif method == "profile":
            c.profile(rng.choice(self.authors))
        elif method == "explain":
            c.explain(rng.choice(self.ids))
        elif method == "mentions":
            c.mentions(limit=20)
        elif method == "notifications":
            c.call("notifications", limit=20)
        elif method == "status":
            c.status()
        elif method == "statistics":
            c.statistics()
        else:
            self.posts += 1
            c.call("post", text=f"memory bench post {self.posts} {rng.choice(VOCAB)}")
        return method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_store_arguments(ap)
    ap.add_argument("--entries", type=positive, default=1_000_000, help="entries in the store")
    ap.add_argument("--calls", type=positive, default=10_000, help="API calls in all")
    ap.add_argument("--every", type=positive, default=1_000, help="sample RSS every N calls")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds idle before the first call")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    root = Path(tempfile.mkdtemp(prefix="p2ps-bench-mem-"))
    proc: DaemonProcess | None = None
    try:
        db = big_store(args.cache_dir or str(root), args.entries, args.authors, args.followed, log)
        data_dir = root / "node"
        prepare(data_dir, db)
        proc = start(data_dir, None)
        pid = proc.proc.pid
        time.sleep(args.idle)
        idle = vm_kib(pid, "VmRSS") / 1024
        log(f"daemon idle: {idle:.1f} MiB")
        samples: list[tuple[int, float]] = [(0, round(idle, 1))]
        per_method: Counter[str] = Counter()
        t = time.perf_counter()
        with connect(api=proc.info["api"]) as client:
            work = Workload(client, random.Random(args.seed))
            for i in range(1, args.calls + 1):
                per_method[work.one()] += 1
                if i % args.every == 0 or i == args.calls:
                    rss = vm_kib(pid, "VmRSS") / 1024
                    samples.append((i, round(rss, 1)))
                    log(f"{i} calls: {rss:.1f} MiB")
        seconds = time.perf_counter() - t
        peak = vm_kib(pid, "VmHWM") / 1024
        after = samples[-1][1]
        half = samples[len(samples) // 2][1]
        out = {
            "bench": "memory",
            "entries": args.entries,
            "calls": args.calls,
            "rss_idle_mib": round(idle, 1),
            "rss_after_mib": after,
            "rss_peak_mib": round(peak, 1),
            "rss_second_half_growth_mib": round(after - half, 1),
            "goal_mib": 100,
            "calls_per_s": round(args.calls / seconds, 1),
            "samples": samples,
            "per_method": dict(per_method),
        }
        print(
            f"{args.calls} API calls on {args.entries} entries: RSS {idle:.1f} MiB idle -> "
            f"{after} MiB after (peak {peak:.1f}; the second half added "
            f"{out['rss_second_half_growth_mib']} MiB)"
        )
        print(json.dumps(out))
    finally:
        stop_quietly(proc, log)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
