"""Bench: a page of the local API against the same page in-process.

A real ``p2psocial daemon`` serves a data dir holding bench/storage.py's store
(``--entries`` entries from ``--authors`` authors, ``--followed`` of them
followed by the owner, whose identity the data dir is given). The bench asks
it for ``timeline`` pages of ``--limit`` through the blocking client over the
Unix socket, as the CLI does: first pages and pages at random depths,
alternately.

Reference, measured in the same run on the same database file and the same
cursors: the same page from the store in this process, ``Store.timeline`` on
a read-only connection (as the daemon's reader runs it), which gives the
entries as ``EntryView`` objects. The API method itself now calls
``Store.timeline_maps``, which builds the API's maps straight from the rows;
that call is timed too (``inproc_maps_p50_ms``, ``api_vs_inproc_maps_p50``),
so the API's own overhead shows against either.

Prints human lines, then one JSON object as the last stdout line:
``{"bench": "api", "api_p50_ms", "api_p99_ms", "inproc_p50_ms",
"inproc_p99_ms", "api_vs_inproc_p50", "api_vs_inproc_p99", ...}``; the
daemon's CPU per page is also split into its store call (the thread CPU its
reader counts, ``read_query_cpu_s`` of ``statistics().store``) and the rest
(``api_daemon_store_cpu_ms_per_page``, ``api_daemon_other_cpu_ms_per_page``). Goal:
``api_vs_inproc_p50 <= 2``. Once the daemon has stopped, the same pages from
``Node.timeline`` in this process on its data dir (the entries rendered with
their names, no frame or socket) split the overhead in two:
``node_inproc_cpu_ms_per_page``, ``node_vs_store_cpu`` and ``api_vs_node_cpu``.

Run: ``python bench/api.py [--entries N] [--cache-dir DIR] [--pages N]``.
With ``--profile FILE`` the daemon runs under cProfile and writes its profile
there when it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from storage import (  # bench/storage.py: the same store, cursors and percentiles
    ME,
    add_store_arguments,
    big_store,
    percentile,
    positive,
    timeline_cursors,
    timeline_page_size,
)

from p2psocial import connect
from p2psocial.client import DaemonProcess, DaemonProcessError, spawn_daemon
from p2psocial.client.spawn import cli_argv, daemon_argv, daemon_env
from p2psocial.node.config import NodeConfig
from p2psocial.node.node import open_node
from p2psocial.paths import DB_FILE, IDENTITY_FILE
from p2psocial.storage import Store
from p2psocial.storage.keyfile import write_key_file


def prepare(data_dir: Path, db: str) -> None:
    """An initialised data dir whose identity is the store's owner and whose store is ``db``."""
    subprocess.run(
        cli_argv("init", data_dir=data_dir),
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env=daemon_env(),
    )
    write_key_file(data_dir / IDENTITY_FILE, ME, None, overwrite=True)
    target = data_dir / DB_FILE
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    shutil.copyfile(db, target)


def start(data_dir: Path, profile: str | None) -> DaemonProcess:
    log = data_dir.parent / f"{data_dir.name}.log"
    try:
        if not profile:
            return spawn_daemon(data_dir, log_level="warning", log=log, ready_timeout=120)
        # The daemon's own command line, run under cProfile, which writes the
        # profile when the daemon exits (a SIGTERM stop is a clean exit).
        argv = daemon_argv(data_dir, log_level="warning")
        assert argv[1:3] == ["-m", "p2psocial"], argv
        argv[1:1] = ["-m", "cProfile", "-o", profile]
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=daemon_env()
            )
        daemon = DaemonProcess(popen, log, 0)
        daemon.wait_ready(120)
        return daemon
    except DaemonProcessError as exc:
        raise SystemExit(f"{exc.message}:\n{log.read_text(errors='replace')}") from None


def stop_quietly(proc: DaemonProcess | None, log: Callable[[str], None]) -> None:
    """Stop the bench's daemon, if it runs; a failure to stop is logged, not raised."""
    if proc is None:
        return
    try:
        proc.stop(timeout=60)
    except DaemonProcessError as exc:
        log(exc.message)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CPU:
    """CPU seconds spent by this process and the daemon between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.own = self.daemon = self.wall = 0.0

    def __enter__(self) -> CPU:
        self._own0, self._daemon0 = time.process_time(), process_cpu_s(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.own += time.process_time() - self._own0
        self.daemon += process_cpu_s(self.pid) - self._daemon0


def api_pages(api: str, cursors: list[str | None], limit: int, size: int, cpu: CPU) -> list[float]:
    times = []
    with connect(api=api) as client:
        # One untimed pass: a running node has seen these authors (its
        # identity and name caches are warm), as it is for the in-process reader.
        for before in cursors:
            client.timeline(limit=limit, before=before)
        before_stats = client.statistics()["store"]
        with cpu:
            wall = time.perf_counter()
            _api_loop(client, cursors, limit, size, times)
            cpu.wall = time.perf_counter() - wall
        after = client.statistics()["store"]
    # The daemon's own count of the CPU its reader thread spent in page
    # queries: the store call's part of the daemon's CPU per page.
    daemon_reads[0] += after["read_queries"] - before_stats["read_queries"]
    daemon_reads[1] += after["read_query_cpu_s"] - before_stats["read_query_cpu_s"]
    return times


#: Page queries the daemon's reader ran while timed, and their thread CPU seconds.
daemon_reads: list[float] = [0, 0.0]


def _api_loop(
    client: Any, cursors: list[str | None], limit: int, size: int, times: list[float]
) -> None:
    for before in cursors:
        t = time.perf_counter()
        page = client.timeline(limit=limit, before=before)
        times.append((time.perf_counter() - t) * 1000)
        assert len(page["items"]) == size, (len(page["items"]), size)


def inproc_pages(db: Path, cursors: list[str | None], limit: int, size: int) -> list[float]:
    times = []
    reader = Store.open_reader(db)
    try:
        for before in cursors[:20]:
            reader.timeline(ME.public_key, limit=limit, before=before)
        cpu = time.process_time()
        for before in cursors:
            t = time.perf_counter()
            page = reader.timeline(ME.public_key, limit=limit, before=before)
            times.append((time.perf_counter() - t) * 1000)
            assert len(page.items) == size, (len(page.items), size)
        inproc_cpu.append(time.process_time() - cpu)
        cpu = time.process_time()
        for before in cursors:
            t = time.perf_counter()
            maps = reader.timeline_maps(ME.public_key, limit=limit, before=before)
            inproc_maps_t.append((time.perf_counter() - t) * 1000)
            assert len(maps.items) == size, (len(maps.items), size)
        inproc_maps_cpu.append(time.process_time() - cpu)
    finally:
        reader.close()
    return times


#: CPU seconds of each in-process round.
inproc_cpu: list[float] = []
#: The same pages from ``Store.timeline_maps`` (the call the API method makes):
#: times (ms) and CPU seconds of each round.
inproc_maps_t: list[float] = []
inproc_maps_cpu: list[float] = []


def node_pages(
    data_dir: Path, cursors: list[str | None], limit: int, size: int
) -> tuple[list[float], float]:
    """Times (ms) and CPU seconds of ``Node.timeline`` in this process, on the stopped daemon's data dir.

    The same method the API server calls, with its rendering and names, and
    no frame or socket: what the page costs before the API carries it. The
    node listens on 127.0.0.1 only and has no bootstrap or peers.
    """
    config = NodeConfig.load(data_dir)
    config.listen, config.port, config.dht_port = "127.0.0.1", 0, 0
    config.bootstrap, config.peers = [], []
    times: list[float] = []
    spent: list[float] = []

    async def run() -> None:
        async with open_node(config) as node:
            for before in cursors:
                await node.timeline(limit=limit, before=before)
            cpu = time.process_time()
            for before in cursors:
                t = time.perf_counter()
                page = await node.timeline(limit=limit, before=before)
                times.append((time.perf_counter() - t) * 1000)
                assert len(page["items"]) == size, (len(page["items"]), size)
            spent.append(time.process_time() - cpu)

    trio.run(run)
    return times, spent[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_store_arguments(ap)
    for name, default, text in (
        ("--entries", 1_000_000, "entries in the store"),
        ("--limit", 50, "page size (at most 50)"),
        ("--pages", 300, "pages per figure and round"),
        ("--rounds", 2, "rounds of API and in-process pages, alternately"),
    ):
        ap.add_argument(name, type=positive, default=default, help=text)
    ap.add_argument(
        "--idle", type=float, default=3.0, help="seconds to measure the idle daemon's CPU"
    )
    ap.add_argument("--profile", default=None, help="profile the daemon (cProfile) into FILE")
    args = ap.parse_args()
    if args.limit > 50:
        ap.error("--limit is at most 50 (the page sizes bench/storage.py checks)")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    root = Path(tempfile.mkdtemp(prefix="p2ps-bench-api-"))
    proc: DaemonProcess | None = None
    try:
        db = big_store(args.cache_dir or str(root), args.entries, args.authors, args.followed, log)
        data_dir = root / "node"
        prepare(data_dir, db)
        with Store.open(data_dir / DB_FILE) as store:
            cursors = timeline_cursors(store, ME.public_key, args.pages, random.Random(7))
            size = min(args.limit, timeline_page_size(store, ME.public_key))
        proc = start(data_dir, args.profile)
        api = proc.info["api"]
        pid = proc.proc.pid
        # What the daemon spends with no request (its own background work),
        # to subtract from its CPU time while serving pages.
        idle0, t0 = process_cpu_s(pid), time.perf_counter()
        time.sleep(args.idle)
        idle_rate = (process_cpu_s(pid) - idle0) / (time.perf_counter() - t0)
        api_t: list[float] = []
        inproc_t: list[float] = []
        cpu = CPU(pid)
        api_wall = 0.0
        # Alternate, so that load on a shared machine falls on both alike.
        for _ in range(args.rounds):
            api_t += api_pages(api, cursors, args.limit, size, cpu)
            api_wall += cpu.wall
            inproc_t += inproc_pages(data_dir / DB_FILE, cursors, args.limit, size)
        # The page as Node.timeline gives it in this process (rendering and
        # names, no frame or socket), on the same data dir once the daemon
        # has stopped: how the overhead splits between the two.
        proc.stop(timeout=60)
        proc = None
        node_t, node_cpu = node_pages(data_dir, cursors, args.limit, size)
        n = len(api_t)
        # The daemon's background work (swarm lookups of followed feeds) goes
        # on while it serves: its CPU is shown whole and with the idle rate
        # subtracted, a lower and an upper bound of what the pages cost it.
        daemon_cpu = max(0.0, cpu.daemon - idle_rate * api_wall)
        out: dict[str, Any] = {
            "bench": "api",
            "entries": args.entries,
            "limit": args.limit,
            "pages": len(api_t),
            "api_p50_ms": round(percentile(api_t, 50), 3),
            "api_p99_ms": round(percentile(api_t, 99), 3),
            "inproc_p50_ms": round(percentile(inproc_t, 50), 3),
            "inproc_p99_ms": round(percentile(inproc_t, 99), 3),
        }
        out["api_vs_inproc_p50"] = round(out["api_p50_ms"] / out["inproc_p50_ms"], 2)
        out["api_vs_inproc_p99"] = round(out["api_p99_ms"] / out["inproc_p99_ms"], 2)
        out["inproc_maps_p50_ms"] = round(percentile(inproc_maps_t, 50), 3)
        out["api_vs_inproc_maps_p50"] = round(out["api_p50_ms"] / out["inproc_maps_p50_ms"], 2)
        out["inproc_maps_cpu_ms_per_page"] = round(
            sum(inproc_maps_cpu) * 1000 / len(inproc_maps_t), 3
        )
        # CPU per page does not count the time spent waiting for a core, so
        # it shows the cost on a loaded machine better than wall time does.
        out["api_cpu_ms_per_page"] = round((daemon_cpu + cpu.own) * 1000 / n, 3)
        out["api_daemon_cpu_ms_per_page"] = round(daemon_cpu * 1000 / n, 3)
        out["api_client_cpu_ms_per_page"] = round(cpu.own * 1000 / n, 3)
        out["api_daemon_cpu_ms_per_page_with_background"] = round(cpu.daemon * 1000 / n, 3)
        # The daemon's CPU split: its reader thread in the store call (as
        # the daemon counts it), and the rest (the API server, rendering
        # the page, encoding it, the socket and the thread hop).
        out["api_daemon_store_cpu_ms_per_page"] = round(daemon_reads[1] * 1000 / n, 3)
        out["api_daemon_other_cpu_ms_per_page"] = round(
            max(0.0, daemon_cpu - daemon_reads[1]) * 1000 / n, 3
        )
        out["api_daemon_reads"] = int(daemon_reads[0])
        out["inproc_cpu_ms_per_page"] = round(sum(inproc_cpu) * 1000 / len(inproc_t), 3)
        out["api_vs_inproc_cpu"] = round(
            out["api_cpu_ms_per_page"] / out["inproc_cpu_ms_per_page"], 2
        )
        out["node_inproc_p50_ms"] = round(percentile(node_t, 50), 3)
        out["node_inproc_cpu_ms_per_page"] = round(node_cpu * 1000 / len(node_t), 3)
        out["node_vs_store_cpu"] = round(
            out["node_inproc_cpu_ms_per_page"] / out["inproc_cpu_ms_per_page"], 2
        )
        out["api_vs_node_cpu"] = round(
            out["api_cpu_ms_per_page"] / out["node_inproc_cpu_ms_per_page"], 2
        )
        out["daemon_idle_cpu_share"] = round(idle_rate, 3)
        out["cpus"] = os.cpu_count()
        print(
            f"timeline page of {args.limit} at {args.entries} entries: API p50 "
            f"{out['api_p50_ms']} ms p99 {out['api_p99_ms']} ms; in-process (same store call, "
            f"same run) p50 {out['inproc_p50_ms']} ms p99 {out['inproc_p99_ms']} ms; "
            f"x{out['api_vs_inproc_p50']} at p50; against Store.timeline_maps (the call the API "
            f"makes) p50 {out['inproc_maps_p50_ms']} ms: x{out['api_vs_inproc_maps_p50']}"
        )
        print(
            f"CPU per page: API {out['api_cpu_ms_per_page']} ms (daemon "
            f"{out['api_daemon_cpu_ms_per_page']}, or "
            f"{out['api_daemon_cpu_ms_per_page_with_background']} with its background work; "
            f"client {out['api_client_cpu_ms_per_page']}; idle daemon "
            f"{out['daemon_idle_cpu_share']:.0%} of a core), in-process "
            f"{out['inproc_cpu_ms_per_page']} ms: x{out['api_vs_inproc_cpu']}"
        )
        print(
            f"daemon CPU per page: the store call {out['api_daemon_store_cpu_ms_per_page']} ms "
            f"(its reader thread, {out['api_daemon_reads']} queries for {n} pages), the rest "
            f"{out['api_daemon_other_cpu_ms_per_page']} ms"
        )
        print(
            f"Node.timeline in this process (rendering and names, no API): p50 "
            f"{out['node_inproc_p50_ms']} ms, CPU {out['node_inproc_cpu_ms_per_page']} ms per "
            f"page: x{out['node_vs_store_cpu']} the store call; the API page's CPU is "
            f"x{out['api_vs_node_cpu']} that"
        )
        print(json.dumps(out))
    finally:
        stop_quietly(proc, log)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
