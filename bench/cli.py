"""Bench: how long a ``p2psocial`` command takes, start-up included.

A person waits for the whole process: interpreter start, imports, the API
round trip, printing. Figures, p50 wall time of ``--runs`` runs each (default
20), every command run as a fresh process:

* ``python_pass_p50_ms``: ``python -c pass``, the same interpreter (and the
  same virtualenv), measured in the same run. The reference.
* ``help_p50_ms``: ``p2psocial --help``.
* ``timeline_p50_ms``: ``p2psocial --json timeline --limit 50``.
* ``post_p50_ms``: ``p2psocial post x``.
* ``*_cpu_p50_ms``: the same runs' CPU time (user + system) of the command
  process, which a loaded machine inflates far less than wall time.

Each command runs with its bytecode cached (under a temporary
``PYTHONPYCACHEPREFIX``), as an installed package runs, after one unmeasured
round that compiles it.

The last two go to one real daemon on 127.0.0.1 whose store holds
``--entries`` entries (default 1,000,000) from ``--authors`` authors, of whom
the daemon's identity follows ``--followed``: the store of bench/storage.py,
built by its own code (``big_store``). Building a million signed entries takes
minutes; ``--cache-dir`` keeps the store and reuses it (the same files as
bench/storage.py's and bench/api.py's ``--cache-dir``; the cached file is
copied, never written).

The runs are interleaved (one of each command, then the next round), so a
load spike on the machine falls on every figure alike. Goal: each command
<= 150 ms, or <= 3x the reference on a slower machine (``*_vs_python``).

Run: ``python bench/cli.py [--entries N] [--runs N] [--cache-dir DIR]``.
Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from storage import ME, big_store  # bench/storage.py: the store and its owner's key

from p2psocial.client import cli_argv, daemon_env, spawn_daemon
from p2psocial.paths import DB_FILE, IDENTITY_FILE, IDENTITY_TEXT_FILE
from p2psocial.protocol.identity import identity_to_text
from p2psocial.storage.keyfile import write_key_file

#: The command's goal, in milliseconds, and its ratio to bare Python on a slower machine.
GOAL_MS = 150.0
GOAL_RATIO = 3.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def p2psocial_argv() -> list[str]:
    """The console script a person runs, from this interpreter's environment.

    Falls back to ``python -m p2psocial`` when the script is not installed
    next to the interpreter.
    """
    script = Path(sys.executable).with_name("p2psocial")
    return [str(script)] if script.exists() else cli_argv()


def store_file(args: argparse.Namespace, work: Path) -> Path:
    """The big store: from the cache when it is there, else built (and cached)."""
    cache = args.cache_dir or str(work)
    return Path(big_store(cache, args.entries, args.authors, args.followed, log))


def make_data_dir(data_dir: Path, db: Path) -> None:
    """``p2psocial init``, then the identity of the store's owner and a copy of the store."""
    subprocess.run([*cli_argv("init", data_dir=data_dir)], check=True, capture_output=True)
    write_key_file(data_dir / IDENTITY_FILE, ME, None, overwrite=True)
    (data_dir / IDENTITY_TEXT_FILE).write_text(identity_to_text(ME.public_key) + "\n")
    shutil.copyfile(db, data_dir / DB_FILE)


def command_env(pycache: Path) -> dict[str, str]:
    """The commands' environment: bytecode cached, as in an installed package.

    pip compiles an installed package's modules; a checkout run with
    PYTHONDONTWRITEBYTECODE (as this one may be) would compile every module
    on every run instead, and the bench would measure the compiler. The
    bytecode goes to ``pycache``, not into the source tree.
    """
    env = daemon_env(PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def wall_ms(argv: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """Run ``argv`` to its end: wall milliseconds, CPU milliseconds, its stdout."""
    cpu, started = cpu_s(), time.perf_counter()
    done = subprocess.run(
        argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    wall = (time.perf_counter() - started) * 1000
    return wall, (cpu_s() - cpu) * 1000, done.stdout


def check_timeline(stdout: bytes, limit: int) -> None:
    """The timeline command printed a full page: ``limit`` entries and its cursor."""
    lines = [json.loads(line) for line in stdout.splitlines()]
    entries = [line for line in lines if "id" in line]
    if len(entries) != limit:
        raise SystemExit(f"timeline printed {len(entries)} entries, expected {limit}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--authors", type=int, default=2000)
    ap.add_argument("--followed", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20, help="runs of each command")
    ap.add_argument("--limit", type=int, default=50, help="the timeline's page size")
    ap.add_argument("--cache-dir", default=None, help="keep/reuse the big store here")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="p2ps-bench-cli-"))
    try:
        db = store_file(args, work)
        data_dir = work / "node"
        make_data_dir(data_dir, db)
        cli = [*p2psocial_argv(), "--data-dir", str(data_dir)]
        commands = {
            "python_pass": [sys.executable, "-c", "pass"],
            "help": [*cli, "--help"],
            "timeline": [*cli, "--json", "timeline", "--limit", str(args.limit)],
            "post": [*cli, "post", "x"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        env = command_env(work / "pycache")
        with spawn_daemon(data_dir, log=work / "daemon.log"):
            # One unmeasured round: compiles the bytecode, warms the daemon's page cache.
            for name, argv in commands.items():
                _, _, stdout = wall_ms(argv, env)
                if name == "timeline":
                    check_timeline(stdout, args.limit)
            for round_ in range(args.runs):
                for name, argv in commands.items():
                    ms, cpu_ms, _ = wall_ms(argv, env)
                    times[name].append(ms)
                    cpu[name].append(cpu_ms)
                if round_ % 5 == 4:
                    log(f"round {round_ + 1}/{args.runs}")
        out: dict[str, object] = {"bench": "cli"}
        p50s = {name: statistics.median(values) for name, values in times.items()}
        reference = p50s["python_pass"]
        for name, values in times.items():
            p50 = p50s[name]
            out[f"{name}_p50_ms"] = round(p50, 1)
            out[f"{name}_cpu_p50_ms"] = round(statistics.median(cpu[name]), 1)
            if name != "python_pass":
                out[f"{name}_vs_python"] = round(p50 / reference, 2)
                print(
                    f"{name:9} p50 {p50:6.1f} ms  ({p50 / reference:.2f}x python -c pass, "
                    f"min {min(values):.1f}, max {max(values):.1f})"
                )
            else:
                print(f"{'python':9} p50 {p50:6.1f} ms  (python -c pass, the reference)")
        goal = max(GOAL_MS, GOAL_RATIO * reference)
        met = all(p50 <= goal for p50 in p50s.values())
        print(f"goal: each <= {goal:.0f} ms (150 ms, or 3x python): {'met' if met else 'not met'}")
        out.update(
            goal_ms=round(goal, 1),
            goal_met=met,
            entries=args.entries,
            runs=args.runs,
            command=Path(commands["help"][0]).name,
            cpus=os.cpu_count(),
            load_avg_1m=round(os.getloadavg()[0], 2),
            python=platform.python_version(),
        )
        print(json.dumps(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
