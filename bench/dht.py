"""DHT bench: 200 DHTNodes on 127.0.0.1 in one process (one trio run, real UDP).

1. Start the nodes; each joins through a random node that already joined,
   then every node looks itself up once more (its first refresh).
   ``bootstrap_s`` is the wall time of all that.
2. ``authors`` authors each publish seq 1, 2 and 3 as their feed head from
   their home node, one put at a time (``put_p50_ms``/``put_p95_ms`` over all
   puts; ``put_cold_p50_ms`` for seq 1, the home node's first record lookup;
   ``put_warm_p50_ms`` for seq 2-3).
3. ``gets`` lookups of random heads from random nodes, one at a time
   (``get_p50_ms``/``get_p95_ms``); ``success_ratio`` counts gets that
   returned the latest (seq 3) record. The same gets are then repeated
   (``get_warm_*``): the askers have proven their contacts' keys by then.
4. 30 % of the nodes are killed without warning (their tasks are cancelled;
   they send nothing more), and the survivors are split in two halves that
   have not yet met the loss. From one half, ``--churn-sequential`` gets
   (default 50) run one at a time: ``churn_seq_get_p50_ms``/``p99``, a lone
   lookup's latency past dead contacts. From the other half, the plan's gets
   run 50 at once (``--churn-concurrency``): ``churn_success_ratio``,
   ``churn_get_p50_ms``/``p99``, which in one process measure CPU queueing
   of 50 lookups (both ends of every query run here) as much as waiting.
   ``reference_fixed_timeouts``: a second run of this script with every first
   attempt waiting the fixed 0.5 s, gets awaiting slow contacts and no
   dead-contact skipping (``--fixed-timeouts``), for comparison.
5. ``reference_kademlia``: the stock ``kademlia`` package joined and used the
   same way, in a subprocess (``bench/dht_kademlia.py``): bootstrap, put and
   get p50 at the same N.
6. ``rss_mib``: a separate run of this script (``--rss-only``) starts and
   bootstraps the same number of nodes, publishes the same heads, and reports
   its resident set size (VmRSS), with ``rss_baseline_mib``, the interpreter
   with everything imported before any node starts.

``--gc tuned`` (the default): once the nodes are started, the process's
objects are frozen out of the cyclic collector (``gc.freeze``) and its first
threshold raised to 20,000, in this run and in the ``kademlia`` reference
alike. A network of N nodes in one process is one heap N nodes large, which
no real node has: every full collection scans all of it, and the number of
them during a bootstrap grows with N as well, so with CPython's defaults
(``--gc default``) collection alone grows with the square of N (at 500
nodes it was over half the bootstrap's CPU). ``gc_s`` is the time spent in
collections during the bootstrap.

``--nodes 50,200,500`` runs the whole bench once per size (each in its own
process) and adds ``growth``: each size's bootstrap time and RSS per node,
ours and the package's, relative to the smallest size.

Prints progress to stderr and one JSON object as its last stdout line.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class GcTimer:
    """Seconds spent in cyclic garbage collection while :attr:`on`."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.on:
            self.seconds += time.perf_counter() - self._start


def tune_gc(mode: str) -> None:
    """``tuned``: freeze what exists now and collect the young generation
    less often (see the module docstring); ``default``: leave CPython's."""
    if mode == "tuned":
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)


async def start_network(
    n: int,
    rng: random.Random,
    nursery: trio.Nursery,
    cfg: DHTConfig,
    gc_mode: str = "default",
    gc_timer: GcTimer | None = None,
) -> tuple[list[DHTNode], dict[int, trio.CancelScope], float]:
    nodes = [
        DHTNode(SigningKey.from_seed(rng.randbytes(32)), "127.0.0.1", 0, config=cfg)
        for _ in range(n)
    ]
    scopes: dict[int, trio.CancelScope] = {}

    async def run_one(i: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as cs:
            scopes[i] = cs
            await nodes[i].run(task_status=task_status)

    for i in range(n):
        await nursery.start(run_one, i)
    tune_gc(gc_mode)
    if gc_timer is not None:
        gc_timer.on = True
    t0 = time.perf_counter()
    await nodes[1].bootstrap([nodes[0].address])
    joined = 2
    while joined < n:
        wave = list(range(joined, min(n, joined * 2)))
        async with trio.open_nursery() as boot:
            for i in wave:
                boot.start_soon(nodes[i].bootstrap, [nodes[rng.randrange(joined)].address])
        joined += len(wave)
    async with trio.open_nursery() as boot:
        for x in nodes:
            boot.start_soon(x.find_node, x.node_id)
    if gc_timer is not None:
        gc_timer.on = False
    return nodes, scopes, time.perf_counter() - t0


SEQS = 3


def make_heads(rng: random.Random, count: int) -> list[tuple[SigningKey, list[bytes]]]:
    """``count`` authors, each with a chain of SEQS entries."""
    now = int(time.time() * 1000)
    out = []
    for _ in range(count):
        key = SigningKey.from_seed(rng.randbytes(32))
        chain: list[bytes] = []
        prev = None
        for seq in range(1, SEQS + 1):
            e, _ = create_entry(
                key, seq=seq, prev=prev, timestamp=now, kind="post", payload={"text": str(seq)}
            )
            chain.append(e.to_bytes())
            prev = e.id
        out.append((key, chain))
    return out


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    cfg = DHTConfig()
    if args.fixed_timeouts:
        # The reference: every first attempt waits rpc_timeout, as before
        # round trips were measured, and gets await slow contacts.
        cfg.rpc_timeout_min = cfg.rpc_timeout_max = cfg.rpc_timeout
        cfg.lookup_patience = 2
        cfg.dead_ttl = 0.0
        cfg.silent_ttl = 0.0
    result: dict[str, Any] = {"bench": "dht", "nodes": args.nodes}
    with trio.fail_after(args.time_limit):
        async with trio.open_nursery() as nursery:
            base_rss = rss_mib()
            timer = GcTimer()
            cpu = time.process_time()
            nodes, scopes, boot_s = await start_network(
                args.nodes, rng, nursery, cfg, args.gc, timer
            )
            result["bootstrap_s"] = round(boot_s, 3)
            result["bootstrap_cpu_s"] = round(time.process_time() - cpu, 3)
            result["gc"] = args.gc
            result["gc_s"] = round(timer.seconds, 3)
            result["fixed_timeouts"] = args.fixed_timeouts
            log(f"bootstrapped {args.nodes} nodes in {boot_s:.2f}s")
            # Let the background hellos (key proofs of new contacts) finish,
            # so the figures below are the steady state.
            t = time.perf_counter()
            while sum(x.statistics()["hello_backlog"] for x in nodes):  # noqa: ASYNC110
                await trio.sleep(0.05)
            result["settle_s"] = round(time.perf_counter() - t, 3)
            heads = make_heads(rng, args.authors)
            # Each author publishes from its home node, as an author's node
            # does on every post: seq 1 is a cold start, seq 2.. are warm.
            homes = rng.sample(nodes, len(heads))
            put_ms: dict[int, list[float]] = {}
            stored: list[int] = []
            for seq in range(1, SEQS + 1):
                for home, (_key, chain) in zip(homes, heads, strict=True):
                    t = time.perf_counter()
                    stored.append(await home.put_head(chain[seq - 1]))
                    put_ms.setdefault(seq, []).append((time.perf_counter() - t) * 1000)
            all_puts = [ms for v in put_ms.values() for ms in v]
            log(
                f"{len(all_puts)} puts, p50 {pct(all_puts, 0.5):.2f} ms, stored on min {min(stored)}"
            )
            if args.rss_only:
                result = {"rss_mib": round(rss_mib(), 1), "rss_baseline_mib": round(base_rss, 1)}
                nursery.cancel_scope.cancel()
                return result
            plan = [(rng.choice(nodes), rng.choice(heads)) for _ in range(args.gets)]
            get_ms: list[float] = []
            warm_ms: list[float] = []
            ok = 0
            for x, (key, chain) in plan:
                t = time.perf_counter()
                got = await x.get_head(key.public_key)
                get_ms.append((time.perf_counter() - t) * 1000)
                ok += got == chain[-1]
            # The same gets again: the askers have proven their contacts now.
            for x, (key, _chain) in plan:
                t = time.perf_counter()
                await x.get_head(key.public_key)
                warm_ms.append((time.perf_counter() - t) * 1000)
            log(
                f"{len(get_ms)} gets, p50 {pct(get_ms, 0.5):.2f} ms (warm {pct(warm_ms, 0.5):.2f}), ok {ok}"
            )
            victims = set(rng.sample(range(args.nodes), int(0.3 * args.nodes)))
            for i in victims:
                scopes[i].cancel()
            await trio.lowlevel.checkpoint()
            survivors = [x for i, x in enumerate(nodes) if i not in victims]
            rng.shuffle(survivors)
            # Each half learns of the dead on its own: neither phase gains
            # from what the other's lookups found out.
            alone, together = survivors[::2], survivors[1::2]
            seq_ok = 0
            seq_ms: list[float] = []
            for _, (key, chain) in plan[: args.churn_sequential]:
                x = rng.choice(alone)
                t = time.perf_counter()
                got = await x.get_head(key.public_key)
                seq_ms.append((time.perf_counter() - t) * 1000)
                seq_ok += got == chain[-1]
            if seq_ms:
                log(
                    f"churn, one at a time: ok {seq_ok}/{len(seq_ms)}, p50 {pct(seq_ms, 0.5):.1f} ms"
                )
            churn_ok = 0
            churn_ms: list[float] = []
            limiter = trio.CapacityLimiter(args.churn_concurrency)

            async def churn_get(key: SigningKey, chain: list[bytes]) -> None:
                nonlocal churn_ok
                async with limiter:
                    x = rng.choice(together)
                    t = time.perf_counter()
                    got = await x.get_head(key.public_key)
                    churn_ms.append((time.perf_counter() - t) * 1000)
                    churn_ok += got == chain[-1]

            async with trio.open_nursery() as gets:
                for _, (key, chain) in plan:
                    gets.start_soon(churn_get, key, chain)
            log(f"churn: ok {churn_ok}/{len(plan)}, p50 {pct(churn_ms, 0.5):.1f} ms")
            nursery.cancel_scope.cancel()
    result.update(
        {
            "put_p50_ms": round(pct(all_puts, 0.5), 2),
            "put_p95_ms": round(pct(all_puts, 0.95), 2),
            "put_cold_p50_ms": round(pct(put_ms[1], 0.5), 2),
            "put_warm_p50_ms": round(
                pct([m for s, v in put_ms.items() if s > 1 for m in v], 0.5), 2
            ),
            "get_p50_ms": round(pct(get_ms, 0.5), 2),
            "get_p95_ms": round(pct(get_ms, 0.95), 2),
            "get_warm_p50_ms": round(pct(warm_ms, 0.5), 2),
            "get_warm_p95_ms": round(pct(warm_ms, 0.95), 2),
            "success_ratio": round(ok / len(plan), 4),
            "churn_success_ratio": round(churn_ok / len(plan), 4),
            "churn_get_p50_ms": round(pct(churn_ms, 0.5), 1),
            "churn_get_p99_ms": round(pct(churn_ms, 0.99), 1),
            "churn_seq_success_ratio": round(seq_ok / max(1, len(seq_ms)), 4),
            "churn_seq_get_p50_ms": round(pct(seq_ms, 0.5), 1) if seq_ms else None,
            "churn_seq_get_p99_ms": round(pct(seq_ms, 0.99), 1) if seq_ms else None,
            "rpc": {
                k: sum(int(x.statistics().get(k, 0)) for x in nodes)
                for k in (
                    "rpc_retries",
                    "rpc_timeouts",
                    "rpc_late_answers",
                    "contacts_evicted",
                    "lookup_skipped_dead",
                    "lookup_skipped_silent",
                    "get_widened",
                )
            },
            "put_stored_on_min": min(stored),
            "put_stored_on_mean": round(statistics.mean(stored), 1),
            "gets": len(plan),
            "authors": args.authors,
        }
    )
    return result


def growth(args: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    """The bench at each size, each in its own process, and how it grows."""
    runs: dict[str, Any] = {}
    for n in sizes:
        log(f"== {n} nodes")
        cmd = [sys.executable, __file__, "--nodes", str(n), "--seed", str(args.seed)]
        cmd += ["--authors", str(args.authors), "--gets", str(args.gets)]
        cmd += ["--time-limit", str(args.time_limit), "--gc", args.gc]
        if args.no_reference:
            cmd.append("--no-reference")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[str(n)] = json.loads(out.stdout.strip().splitlines()[-1])
        log(json.dumps(runs[str(n)]))
    base = runs[str(sizes[0])]

    def per_node(r: dict[str, Any]) -> float:
        return round((r["rss_mib"] - r["rss_baseline_mib"]) * 1024 / r["nodes"], 1)

    rows = {}
    for n in sizes:
        r = runs[str(n)]
        row = {
            "nodes_ratio": round(n / sizes[0], 2),
            "bootstrap_s": r["bootstrap_s"],
            "bootstrap_ratio": round(r["bootstrap_s"] / base["bootstrap_s"], 2),
            "bootstrap_cpu_s": r["bootstrap_cpu_s"],
            "rss_kib_per_node": per_node(r),
        }
        kad, kad0 = r.get("reference_kademlia"), base.get("reference_kademlia")
        if kad and kad0:
            row["kademlia_bootstrap_s"] = kad["bootstrap_s"]
            row["kademlia_bootstrap_cpu_s"] = kad["bootstrap_cpu_s"]
            row["kademlia_bootstrap_ratio"] = round(kad["bootstrap_s"] / kad0["bootstrap_s"], 2)
        rows[str(n)] = row
    return {"bench": "dht_growth", "sizes": runs, "growth": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", default="200", help="N, or comma-separated sizes for the growth")
    p.add_argument("--authors", type=int, default=50)
    p.add_argument("--gets", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--churn-concurrency", type=int, default=50)
    p.add_argument(
        "--churn-sequential", type=int, default=50, help="gets run one at a time after the kill"
    )
    p.add_argument(
        "--fixed-timeouts",
        action="store_true",
        help="the reference: fixed 0.5 s first attempts, no dead-contact skipping",
    )
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the second run with --fixed-timeouts (the churn reference)",
    )
    p.add_argument("--time-limit", type=float, default=300)
    p.add_argument(
        "--gc",
        choices=("tuned", "default"),
        default="tuned",
        help="garbage collection once the nodes run, here and in the kademlia reference",
    )
    p.add_argument("--rss-only", action="store_true", help="internal: the memory run")
    args = p.parse_args()
    sizes = [int(x) for x in str(args.nodes).split(",")]
    if len(sizes) > 1:
        print(json.dumps(growth(args, sizes)))
        return
    args.nodes = sizes[0]
    result = trio.run(bench, args)
    if args.rss_only or args.fixed_timeouts:
        print(json.dumps(result))
        return
    if not args.no_reference:
        # The same network and plan with the timeouts of before: what the
        # measured round trips and dead-contact skipping buy under churn.
        ref = subprocess.run(
            [
                sys.executable,
                __file__,
                "--fixed-timeouts",
                *("--nodes", str(args.nodes), "--authors", str(args.authors)),
                *("--gets", str(args.gets), "--seed", str(args.seed)),
                *("--churn-concurrency", str(args.churn_concurrency)),
                *("--churn-sequential", str(args.churn_sequential)),
                *("--gc", args.gc),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(ref.stdout.strip().splitlines()[-1])
        result["reference_fixed_timeouts"] = {
            k: r[k]
            for k in (
                "bootstrap_s",
                "get_p50_ms",
                "success_ratio",
                "churn_success_ratio",
                "churn_get_p50_ms",
                "churn_get_p99_ms",
                "churn_seq_get_p50_ms",
                "churn_seq_get_p99_ms",
                "rpc",
            )
        }
    # The stock package, joined and used the same way.
    kad = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("dht_kademlia.py")),
            *("--nodes", str(args.nodes), "--authors", str(args.authors)),
            *("--gets", str(args.gets), "--seed", str(args.seed)),
            *("--gc", args.gc),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result["reference_kademlia"] = json.loads(kad.stdout.strip().splitlines()[-1])
    # Memory is measured in a separate process, so the latency run's garbage
    # does not count against it.
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--rss-only",
            "--nodes",
            str(args.nodes),
            "--authors",
            str(args.authors),
            "--seed",
            str(args.seed),
            "--gc",
            args.gc,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(mem)
    # What the nodes cost beyond the interpreter and its imports.
    result["rss_kib_per_node"] = round(
        (mem["rss_mib"] - mem["rss_baseline_mib"]) * 1024 / args.nodes, 1
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
