"""Acknowledged posts per second through a real daemon's API, with and without group commit.

A fresh ``p2psocial daemon`` on 127.0.0.1 (no peers) is posted to through its
local API by blocking clients:

* *sequential*: one client per daemon, one post at a time (``--sequential``
  posts each), the two daemons taking turns post by post; reported as
  posts/s and the p50/p99 latency of one acknowledged post;
* *concurrent*: ``--clients`` threads (default 8), each with its own client,
  posting ``--posts`` posts in all as fast as they are acknowledged.

Reference, same run: the same two measurements on a daemon whose store runs
every own act in a commit of its own (group commit off: the store's
``local_group`` is 1, set in the daemon process before it starts); with
``--reference no-linger``, a daemon that groups acts but whose leaders never
wait for the last group's writers (``LINGER`` 0). Rounds
alternate between the two daemons (``--rounds``), so that load on the machine
hits both alike; the figures are medians over rounds. Also per round: the
CPU per post of the daemon and of the clients in the concurrent run, and the
p50 of a bare one-row ``synchronous=FULL`` commit on the same disk, which
bounds the rate: ``clients`` posts per such commit at best.

Prints progress on stderr, human lines on stdout, and one JSON object as the
last stdout line: ``{"bench": "post", "clients", "grouped": {...},
"reference": {...}, ...}``.

    python bench/post.py --posts 4000 --sequential 500 --clients 8

With ``--dir /dev/shm`` the data dirs are on a tmpfs, where a FULL commit
costs no fsync: the rate is then what the daemon's CPU allows, which tells
a disk-bound figure from a CPU-bound one on a machine whose disk is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
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
from p2psocial.storage.local import DEFAULT_GROUP

# Runs ``p2psocial`` with the store's group size (and the leaders' linger)
# fixed first; the daemon opens its store with the module default, read when
# the store opens, and reads the linger at each group.
_LAUNCH = (
    "import sys; import p2psocial.storage.local as local; "
    "local.DEFAULT_GROUP = int(sys.argv.pop(1)); "
    "linger = float(sys.argv.pop(1)); "
    "local.LINGER = linger if linger >= 0 else local.LINGER; "
    "from p2psocial.cli.main import main; main()"
)


def start(data_dir: Path, group: int | None, linger: float | None = None) -> DaemonProcess:
    """A daemon for ``data_dir``; ``group`` (if given) caps its own-act groups,
    ``linger`` (if given) replaces ``p2psocial.storage.local.LINGER``."""
    argv = daemon_argv(data_dir, log_level="warning")
    if group is not None or linger is not None:
        assert argv[1:3] == ["-m", "p2psocial"], argv
        fixed = [str(group or DEFAULT_GROUP), str(-1.0 if linger is None else linger)]
        argv = [argv[0], "-c", _LAUNCH, *fixed, *argv[3:]]
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


def sequential(apis: dict[str, str], n: int, tag: str) -> dict[str, list[float]]:
    """Latencies (ms) of ``n`` posts one after another to each daemon of ``apis``.

    The daemons take turns, one post each: only one post is ever in flight,
    and a burst of load on the machine (or the disk) hits them alike.
    """
    out: dict[str, list[float]] = {name: [] for name in apis}
    clients = {name: connect(api=api) for name, api in apis.items()}
    try:
        for i in range(n):
            for name, client in clients.items():
                t0 = time.perf_counter()
                client.post(f"{tag} sequential post {i} with a few words of text")
                out[name].append((time.perf_counter() - t0) * 1000)
    finally:
        for client in clients.values():
            client.close()
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


def local_stats(api: str) -> tuple[int, int, float, float]:
    """The daemon's own-act counters: commits, acts, seconds in acts, in commits."""
    with connect(api=api) as client:
        store = client.statistics()["store"]
    return (
        int(store["local_commits"]),
        int(store["local_acts"]),
        float(store.get("local_acts_s", "nan")),
        float(store.get("local_commit_s", "nan")),
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_sequential(
    daemons: dict[str, DaemonProcess], args: argparse.Namespace, tag: str
) -> dict[str, dict[str, Any]]:
    apis = {name: d.info["api"] for name, d in daemons.items()}
    before = {name: local_stats(api) for name, api in apis.items()}
    lats = sequential(apis, args.sequential, tag)
    out: dict[str, dict[str, Any]] = {}
    for name, api in apis.items():
        c0, a0, _, f0 = before[name]
        c1, a1, _, f1 = local_stats(api)
        assert a1 - a0 == args.sequential, (name, a0, a1)
        lat = lats[name]
        out[name] = {
            "seq_per_s": len(lat) / (sum(lat) / 1000),
            "seq_p50_ms": percentile(lat, 0.5),
            "seq_p99_ms": percentile(lat, 0.99),
            "seq_commits": c1 - c0,
            "seq_commit_ms": (f1 - f0) * 1000 / max(1, c1 - c0),
        }
    return out


def measure_concurrent(daemon: DaemonProcess, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    api = daemon.info["api"]
    c1, a1, x1, f1 = local_stats(api)
    d0, b0 = cpu_seconds(daemon.proc.pid), time.process_time()
    secs = concurrent(api, args.clients, args.posts, tag)
    d1, b1 = cpu_seconds(daemon.proc.pid), time.process_time()
    c2, a2, x2, f2 = local_stats(api)
    assert a2 - a1 == args.posts, (a1, a2)
    return {
        "conc_per_s": args.posts / secs,
        "conc_commits": c2 - c1,
        "conc_acts_per_commit": args.posts / max(1, c2 - c1),
        # CPU per acknowledged post in the concurrent run: the daemon's, and
        # this process's (the clients'); their sum over elapsed time is how
        # much of the machine's cores the run got.
        "conc_daemon_cpu_ms": (d1 - d0) * 1000 / args.posts,
        "conc_client_cpu_ms": (b1 - b0) * 1000 / args.posts,
        # Wall time per commit in the daemon's store thread: running the
        # group's acts, then the commit itself (mostly the fsync).
        "conc_acts_ms_per_commit": (x2 - x1) * 1000 / max(1, c2 - c1),
        "conc_commit_ms": (f2 - f1) * 1000 / max(1, c2 - c1),
    }


def full_commit_ms(path: Path, n: int = 50) -> float:
    """p50 wall time (ms) of a one-row ``synchronous=FULL`` commit in WAL mode at ``path``.

    The disk's part of every acknowledged post: with ``c`` clients, each with
    one post in flight, no server acknowledges more than ``c`` posts per
    such commit time, however little CPU it spends.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS t(x BLOB)")
        times = []
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(200),))
            t0 = time.perf_counter()
            conn.execute("COMMIT")
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    return percentile(times, 0.5)


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: round(statistics.median(r[k] for r in rounds), 2) for k in rounds[0]}


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    dirs = {"grouped": root / "grouped", "reference": root / "reference"}
    for data_dir in dirs.values():
        init = cli_argv("init", data_dir=data_dir)
        subprocess.run(
            init, check=True, capture_output=True, stdin=subprocess.DEVNULL, env=daemon_env()
        )
    daemons: dict[str, DaemonProcess] = {}
    try:
        daemons["grouped"] = start(dirs["grouped"], args.group)
        if args.reference == "no-linger":
            # Grouped as the store groups, but a leader never waits for company.
            daemons["reference"] = start(dirs["reference"], args.group, 0.0)
        else:
            daemons["reference"] = start(dirs["reference"], 1)
        sequential({name: d.info["api"] for name, d in daemons.items()}, 20, "warm-up")
        for d in daemons.values():  # warm up: imports, caches, the WAL
            concurrent(d.info["api"], args.clients, 4 * args.clients, "warm-up")
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in daemons}
        commits: list[float] = []
        for r in range(args.rounds):
            commits.append(full_commit_ms(root / "commit.db"))
            seq = measure_sequential(daemons, args, f"round {r}")
            for name in ("reference", "grouped") if r % 2 else ("grouped", "reference"):
                got = {**seq[name], **measure_concurrent(daemons[name], args, f"round {r}")}
                got["wal_mb"] = sum(f.stat().st_size for f in dirs[name].rglob("*-wal")) / 1e6
                results[name].append(got)
                print(
                    f"round {r} {name}: sequential {got['seq_per_s']:.0f}/s "
                    f"(p50 {got['seq_p50_ms']:.2f} ms), {args.clients} clients "
                    f"{got['conc_per_s']:.0f}/s ({got['conc_acts_per_commit']:.1f} posts/commit, "
                    f"CPU per post: daemon {got['conc_daemon_cpu_ms']:.2f} ms, "
                    f"clients {got['conc_client_cpu_ms']:.2f} ms; per commit: acts "
                    f"{got['conc_acts_ms_per_commit']:.2f} ms, commit {got['conc_commit_ms']:.2f} ms; "
                    f"sequential commit {got['seq_commit_ms']:.2f} ms; WAL {got['wal_mb']:.1f} MB)",
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
        "reference_kind": args.reference,
        "grouped": median_of(results["grouped"]),
        "reference": median_of(results["reference"]),
        # The disk's bound, same run: one bare FULL commit, and what
        # ``clients`` posts per such commit would give.
        "full_commit_p50_ms": round(statistics.median(commits), 3),
        "disk_bound_per_s": round(args.clients * 1000 / statistics.median(commits)),
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
    p.add_argument(
        "--reference",
        choices=("single", "no-linger"),
        default="single",
        help="the reference daemon: every act in a commit of its own (single), or "
        "grouped with leaders that never linger for the last group's writers (no-linger)",
    )
    p.add_argument(
        "--dir",
        default=None,
        help="make the daemons' data dirs under DIR (default: the system's temp dir); "
        "a tmpfs such as /dev/shm makes fsync free, leaving the CPU's part of the rate",
    )
    args = p.parse_args()
    if min(args.posts, args.sequential, args.clients, args.rounds) < 1 or args.posts < args.clients:
        p.error("--posts, --sequential, --clients and --rounds must be >= 1, --posts >= --clients")
    if args.group is not None and args.group < 1:
        p.error("--group must be >= 1")
    root = Path(tempfile.mkdtemp(prefix="p2ps-bench-post-", dir=args.dir))
    try:
        out = run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    g, ref = out["grouped"], out["reference"]
    without = "without" if args.reference == "single" else "without the linger"
    print(
        f"{args.clients} clients: {g['conc_per_s']:.0f} posts/s with group commit, "
        f"{ref['conc_per_s']:.0f}/s {without} ({g['conc_acts_per_commit']:.1f} vs "
        f"{ref['conc_acts_per_commit']:.1f} posts per commit)"
    )
    print(
        f"disk: a bare FULL commit takes {out['full_commit_p50_ms']:.2f} ms (p50), so "
        f"{args.clients} clients get at most {out['disk_bound_per_s']}/s"
    )
    print(
        f"CPU per post, daemon: {g['conc_daemon_cpu_ms']:.2f} ms with group commit, "
        f"{ref['conc_daemon_cpu_ms']:.2f} ms {without}; a grouped commit took "
        f"{g['conc_acts_ms_per_commit']:.2f} ms of acts + {g['conc_commit_ms']:.2f} ms of commit"
    )
    print(
        f"sequential: p50 {g['seq_p50_ms']:.2f} ms with group commit, "
        f"{ref['seq_p50_ms']:.2f} ms {without} ({g['seq_per_s']:.0f}/s vs {ref['seq_per_s']:.0f}/s)"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
