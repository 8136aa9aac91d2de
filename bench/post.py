"""Acknowledged posts per second through a real daemon's API, with and without group commit.

A fresh ``p2psocial daemon`` on 127.0.0.1 (no peers) is posted to through its
local API by blocking clients:

* *sequential*: one client, one post at a time (``--sequential`` posts);
  reported as posts/s and the p50/p99 latency of one acknowledged post;
* *concurrent*: ``--clients`` threads (default 8), each with its own client,
  posting ``--posts`` posts in all as fast as they are acknowledged.

Reference, same run: the same two measurements on a daemon whose store runs
every own act in a commit of its own (group commit off: the store's
``local_group`` is 1, set in the daemon process before it starts). Rounds
alternate between the two daemons (``--rounds``), so that load on the machine
hits both alike; the figures are medians over rounds.

Prints progress on stderr, human lines on stdout, and one JSON object as the
last stdout line: ``{"bench": "post", "clients", "grouped": {...},
"reference": {...}, ...}``.

    python bench/post.py --posts 4000 --sequential 500 --clients 8
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from p2psocial.client import DaemonProcess, DaemonProcessError, cli_argv, connect, daemon_env
from p2psocial.client.spawn import daemon_argv

# Runs ``p2psocial`` with the store's group size fixed first; the daemon opens
# its store with the module default, read when the store opens.
_LAUNCH = (
    "import sys; import p2psocial.storage.local as local; "
    "local.DEFAULT_GROUP = int(sys.argv.pop(1)); "
    "from p2psocial.cli.main import main; main()"
)


def start(data_dir: Path, group: int | None) -> DaemonProcess:
    """A daemon for ``data_dir``; ``group`` (if given) caps its own-act groups."""
    argv = daemon_argv(data_dir, log_level="warning")
    if group is not None:
        assert argv[1:3] == ["-m", "p2psocial"], argv
        argv = [argv[0], "-c", _LAUNCH, str(group), *argv[3:]]
    log = data_dir.parent / f"{data_dir.name}.log"
    with log.open("ab") as out:
        offset = out.tell()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=daemon_env()
        )
    daemon = DaemonProcess(proc, log, offset)
    try:
        daemon.wait_ready(60)
    except DaemonProcessError as exc:
        daemon.kill()
        raise SystemExit(f"{exc.message}:\n{log.read_text(errors='replace')}") from None
    return daemon


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


def sequential(api: str, n: int, tag: str) -> list[float]:
    """Latencies (ms) of ``n`` posts one after another on one client."""
    out = []
    with connect(api=api) as client:
        for i in range(n):
            t0 = time.perf_counter()
            client.post(f"{tag} sequential post {i} with a few words of text")
            out.append((time.perf_counter() - t0) * 1000)
    return out


def concurrent(api: str, clients: int, n: int, tag: str) -> float:
    """Seconds for ``clients`` threads to have ``n`` posts acknowledged in all."""
    share = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    ready = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with connect(api=api) as client:
                ready.wait(30)
                for j in range(share[i]):
                    client.post(f"{tag} client {i} post {j} with a few words of text")
        except BaseException as exc:
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait(30)
    t0 = time.perf_counter()
    for t in threads:
        t.join(600)
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed


def local_counts(api: str) -> tuple[int, int]:
    with connect(api=api) as client:
        store = client.statistics()["store"]
    return int(store["local_commits"]), int(store["local_acts"])


def measure(api: str, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    c0, a0 = local_counts(api)
    lat = sequential(api, args.sequential, tag)
    c1, a1 = local_counts(api)
    secs = concurrent(api, args.clients, args.posts, tag)
    c2, a2 = local_counts(api)
    assert a1 - a0 == args.sequential and a2 - a1 == args.posts, (a0, a1, a2)
    return {
        "seq_per_s": len(lat) / (sum(lat) / 1000),
        "seq_p50_ms": percentile(lat, 0.5),
        "seq_p99_ms": percentile(lat, 0.99),
        "seq_commits": c1 - c0,
        "conc_per_s": args.posts / secs,
        "conc_commits": c2 - c1,
        "conc_acts_per_commit": args.posts / max(1, c2 - c1),
    }


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: round(statistics.median(r[k] for r in rounds), 2) for k in rounds[0]}


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    dirs = {"grouped": root / "grouped", "reference": root / "reference"}
    for d in dirs.values():
        init = cli_argv("init", data_dir=d)
        subprocess.run(
            init, check=True, capture_output=True, stdin=subprocess.DEVNULL, env=daemon_env()
        )
    daemons: dict[str, DaemonProcess] = {}
    try:
        daemons["grouped"] = start(dirs["grouped"], args.group)
        daemons["reference"] = start(dirs["reference"], 1)
        apis = {name: d.info["api"] for name, d in daemons.items()}
        for api in apis.values():  # warm up: imports, caches, the WAL
            sequential(api, 20, "warm-up")
            concurrent(api, args.clients, 4 * args.clients, "warm-up")
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in apis}
        for r in range(args.rounds):
            for name in ("reference", "grouped") if r % 2 else ("grouped", "reference"):
                got = measure(apis[name], args, f"round {r}")
                results[name].append(got)
                print(
                    f"round {r} {name}: sequential {got['seq_per_s']:.0f}/s "
                    f"(p50 {got['seq_p50_ms']:.2f} ms), {args.clients} clients "
                    f"{got['conc_per_s']:.0f}/s ({got['conc_acts_per_commit']:.1f} posts/commit)",
                    file=sys.stderr,
                )
    finally:
        for d in daemons.values():
            d.stop()
    return {
        "bench": "post",
        "clients": args.clients,
        "posts": args.posts,
        "sequential": args.sequential,
        "rounds": args.rounds,
        "group": args.group,
        "grouped": median_of(results["grouped"]),
        "reference": median_of(results["reference"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--posts", type=int, default=4000, help="posts of the concurrent run")
    p.add_argument("--sequential", type=int, default=500, help="posts of the sequential run")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per daemon, alternating")
    p.add_argument(
        "--group", type=int, default=None, help="own acts per commit (default: the store's)"
    )
    args = p.parse_args()
    if min(args.posts, args.sequential, args.clients, args.rounds) < 1 or args.posts < args.clients:
        p.error("--posts, --sequential, --clients and --rounds must be >= 1, --posts >= --clients")
    if args.group is not None and args.group < 1:
        p.error("--group must be >= 1")
    root = Path(tempfile.mkdtemp(prefix="p2ps-bench-post-"))
    try:
        out = run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    g, ref = out["grouped"], out["reference"]
    print(
        f"{args.clients} clients: {g['conc_per_s']:.0f} posts/s with group commit, "
        f"{ref['conc_per_s']:.0f}/s without ({g['conc_acts_per_commit']:.1f} vs "
        f"{ref['conc_acts_per_commit']:.1f} posts per commit)"
    )
    print(
        f"sequential: p50 {g['seq_p50_ms']:.2f} ms with group commit, "
        f"{ref['seq_p50_ms']:.2f} ms without ({g['seq_per_s']:.0f}/s vs {ref['seq_per_s']:.0f}/s)"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
