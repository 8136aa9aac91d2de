"""Bench: the terminal UI's start, its memory while scrolling, and live latency.

Three figures (issue 18, item 3):

* ``start_p50_s``: from launching ``p2psocial --data-dir DIR tui`` in a real
  terminal (tmux, ``--size``) to the newest timeline entry on its screen,
  against a daemon whose store holds ``--entries`` entries (default
  1,000,000; bench/storage.py's store, built once and kept with
  ``--cache-dir``). p50 of ``--runs`` runs after one unmeasured run that
  compiles the bytecode. Goal: <= 1 s. ``textual_hello_p50_s``, measured the
  same way in the same run, is a bare Textual app that shows one line: the
  part of the start that is Python and Textual themselves.
* ``rss_mb_at``: this process's resident memory while the TUI, run here
  headless against the same daemon, moves its cursor down through
  ``--scroll`` entries (default 10,000) one row at a time, loading pages as
  it nears the end; sampled every 1,000 rows. ``rss_growth_mb`` is the last
  sample minus the first. Goal: flat (the rows kept stay under the window's cap).
* ``latency_p50_s``/``latency_max_s``: two fresh daemons A and B on
  127.0.0.1, A following B; B posts ``--posts`` times, and each figure is
  from B's ``post`` returning (the entry stored on B) to the entry put on
  the screen of A's TUI (run here headless). Goal: <= 1 s.

Run: ``python bench/tui.py [--entries N] [--cache-dir DIR] [--runs N]``.
Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import prepare  # bench/api.py: a data dir whose owner and store are the big store's
from storage import add_store_arguments, big_store, positive
from tui_smoke import tmux_session, tui_env

from p2psocial.client import cli_argv, connect, connect_async, spawn_daemon
from p2psocial.tui import P2PSocialApp
from p2psocial.tui.names import Names
from p2psocial.tui.render import body_of

#: Goals, in seconds.
START_GOAL_S = 1.0
LATENCY_GOAL_S = 1.0


def timed_env(root: Path) -> dict[str, str]:
    """The TUI's environment with its bytecode cached (under ``root``), as an installed
    package runs: without it every run would compile every module again."""
    env = tui_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return env


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_mb() -> float:
    """This process's resident set size, MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def first_line(api: str) -> str:
    """What the TUI shows of the newest timeline entry (its body's first line, cut short)."""
    with connect(api=api) as client:
        [newest] = client.timeline(limit=1)["items"]
    return body_of(newest, Names()).splitlines()[0][:40]


HELLO_APP = """
from textual.app import App
from textual.widgets import Static


class Hello(App):
    def compose(self):
        yield Static("textual-hello-ready")


Hello().run()
"""


def measure_hello(root: Path, runs: int, size: tuple[int, int]) -> list[float]:
    """Seconds from launching a one-line Textual app in tmux to its line on screen, per run."""
    script = root / "hello_app.py"
    script.write_text(HELLO_APP, encoding="utf-8")
    env = timed_env(root)
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        with tmux_session([sys.executable, str(script)], size, env) as tmux:
            tmux.wait_for("textual-hello-ready", 60)
            took = time.perf_counter() - started
        if run:
            times.append(took)
    return times


def measure_start(data_dir: Path, api: str, runs: int, size: tuple[int, int]) -> list[float]:
    """Seconds from launching the TUI in tmux to the newest entry on its screen, per run."""
    needle = first_line(api)
    env = timed_env(data_dir.parent)
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        with tmux_session(cli_argv("tui", data_dir=data_dir), size, env) as tmux:
            tmux.wait_for(needle, 60)
            took = time.perf_counter() - started
            tmux.keys("q")
        if run:  # the first run compiles the bytecode
            times.append(took)
            log(f"start {run}/{runs}: {took:.3f} s")
    return times


async def scroll(api: str, rows: int) -> dict[str, Any]:
    """Move the cursor down ``rows`` entries in a headless TUI; RSS every 1,000 rows."""
    app = P2PSocialApp(lambda: connect_async(api=api))
    samples: list[float] = []
    kept = 0
    async with app.run_test(size=(100, 40)) as pilot:
        started = time.perf_counter()
        while not app.home.entries.window.loaded:
            await pilot.pause(0.005)
        in_process_start = time.perf_counter() - started
        entries = app.home.entries
        passed, last = 0, None
        deadline = time.monotonic() + 600
        while passed < rows and time.monotonic() < deadline:
            entries.action_cursor_down()
            current = entries.entry
            if current is not None and current["id"] != last:
                last = current["id"]
                passed += 1
                if passed % 1000 == 0:
                    samples.append(round(rss_mb(), 1))
                    log(f"scrolled {passed} rows, {len(entries.window)} kept, {samples[-1]} MiB")
            else:
                await pilot.pause(0.005)  # at the end of what is loaded: the next page
            if passed % 50 == 0:
                await pilot.pause()
            kept = max(kept, len(entries.window))
    return {
        "scrolled": passed,
        "rss_mb_at": samples,
        "rows_kept_max": kept,
        "in_process_start_s": round(in_process_start, 3),
    }


async def live_latency(a_api: str, b_api: str, posts: int) -> list[float]:
    """Seconds from B's post stored to A's screen, per post."""
    app = P2PSocialApp(lambda: connect_async(api=a_api))
    out: list[float] = []
    async with app.run_test(size=(100, 40)) as pilot, connect_async(api=b_api) as b:
        while app.connections < 1 or not app.home.entries.window.loaded:
            await pilot.pause(0.01)
        for i in range(posts):
            done = await b.post(f"latency probe {i}")
            stored = time.monotonic()
            for _ in range(30_000):  # up to 30 s
                if done["id"] in app.shown_at:
                    break
                await asyncio.sleep(0.001)
            else:
                raise SystemExit(f"probe {i} did not reach A's screen within 30 s")
            out.append(app.shown_at[done["id"]] - stored)
            await asyncio.sleep(0.2)
    return out


def pair(root: Path) -> tuple[Any, Any]:
    """Two fresh daemons, B linked to A, A following B."""
    dirs = [root / "a", root / "b"]
    for d in dirs:
        subprocess.run(cli_argv("init", data_dir=d), check=True, capture_output=True)
    a = spawn_daemon(dirs[0], log=root / "a.log")
    b = spawn_daemon(dirs[1], log=root / "b.log", bootstrap=[a.addr("dht")], peers=[a.addr("peer")])
    with connect(api=b.info["api"]) as bc:
        b_id = bc.identity
    with connect(api=a.info["api"]) as ac:
        ac.follow(b_id)
    return a, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_store_arguments(ap)
    ap.add_argument("--entries", type=positive, default=1_000_000, help="entries in the store")
    ap.add_argument("--runs", type=positive, default=5, help="measured starts")
    ap.add_argument("--scroll", type=positive, default=10_000, help="rows to scroll through")
    ap.add_argument("--posts", type=positive, default=20, help="live posts timed")
    ap.add_argument("--size", default="100x30", help="COLUMNSxROWS of the terminal")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed")
    size = tuple(int(x) for x in args.size.lower().split("x"))
    root = Path(tempfile.mkdtemp(prefix="p2ps-bench-tui-"))
    out: dict[str, Any] = {"bench": "tui", "entries": args.entries}
    try:
        db = big_store(args.cache_dir or str(root), args.entries, args.authors, args.followed, log)
        data_dir = root / "node"
        prepare(data_dir, db)
        with spawn_daemon(data_dir, log=root / "node.log", ready_timeout=120) as daemon:
            api = daemon.info["api"]
            starts = measure_start(data_dir, api, args.runs, (size[0], size[1]))
            out["start_p50_s"] = round(statistics.median(starts), 3)
            out["start_max_s"] = round(max(starts), 3)
            out["start_goal_met"] = out["start_p50_s"] <= START_GOAL_S
            hello = measure_hello(root, args.runs, (size[0], size[1]))
            out["textual_hello_p50_s"] = round(statistics.median(hello), 3)
            scrolled = asyncio.run(scroll(api, args.scroll))
            out.update(scrolled)
            rss = scrolled["rss_mb_at"]
            out["rss_growth_mb"] = round(rss[-1] - rss[0], 1) if rss else None
        a, b = pair(root)
        with a, b:
            lat = asyncio.run(live_latency(a.info["api"], b.info["api"], args.posts))
        out["latency_p50_s"] = round(statistics.median(lat), 3)
        out["latency_max_s"] = round(max(lat), 3)
        out["latency_goal_met"] = out["latency_max_s"] <= LATENCY_GOAL_S
        out.update(cpus=os.cpu_count(), load_avg_1m=round(os.getloadavg()[0], 2))
        print(
            f"start p50 {out['start_p50_s']} s (max {out['start_max_s']}) against "
            f"{args.entries} entries (a bare Textual app: {out['textual_hello_p50_s']} s); scrolled {out['scrolled']} rows, RSS {rss} MiB; "
            f"live latency p50 {out['latency_p50_s']} s, max {out['latency_max_s']} s"
        )
        print(json.dumps(out))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
