"""The DHT at 1,000 to 10,000 nodes: a seeded, deterministic simulation.

Runs the real routing table and lookup iterator (``p2psocial.sim``) over a
simulated network (log-normal round trips, median 80 ms; 1 % loss each way;
the caller's retries) and prints, per size N:

- ``churn``: records put at the k closest, then 30 % of all nodes go offline
  at once; ``lookup_success_after_churn`` (gets from survivors finding the
  record) and ``median_hops`` (of node lookups, against log2(N)/3), and the
  same without the spread-eclipse defences (``churn_without_eclipse_defences``:
  one path, every responder admitted), for their cost;
- ``availability``: 24 simulated hours in which each node goes offline with
  p = 0.2, comes back with p = 0.4 and leaves for good with p = 0.03 every
  hour (a newcomer with an empty store joins for each that leaves), with
  hourly republishing by an online holder, and without (the defence off);
- ``sybils``: as many sybils as honest nodes, all in one /16: their share of
  honest tables and of the k closest sets that lookups return, with the
  routing table's IP-diversity limits and without;
- ``eclipse``: 20 % of nodes, all in one /16, answer every lookup with
  fellow adversaries only and hold no records; every honest node joined
  through an honest one. Record-get success with the lookups' per-group
  admission limit (at most 10 candidates of one /16, spec/dht.md §8), and
  with it off (a network built and used without it);
- ``spread``: the same eclipse nodes spread over the whole address space
  (the group limit cannot tell them apart): record-get success with the
  real node's lookups (a responder joins a table only after an informative
  answer, record gets and puts over three disjoint paths, joins over one;
  spec/dht.md §8), and with neither; ``spread_each`` adds a run with each
  of the two alone (two more tasks, left out by default to keep 10,000
  nodes in the ten-minute budget);
- ``gossip``: post propagation over gossip links (``p2psocial.sim.gossip``:
  real sync sessions per link end, real sender choice, messages passed as
  decoded objects with log-normal link delays). N nodes each follow 20
  authors (80 % in their community of 100), 30 % cannot accept links, 10 %
  are offline; 40 sampled authors post 5 entries each. Per post: the share
  of online followers reached (and of those a path of links joins to the
  author, ``reached_of_reachable``), latency p50/p99, and redundancy
  (entries delivered to followers per entry stored; ``redundancy_later_posts``
  the same for each author's posts after its first, once the senders are
  chosen), with sender selection (capability ebt, spec/sync.md §13) and
  without; a run with 5 % of nodes serving invalid entries (their links
  are dropped and they are graylisted: ``invalid_links_dropped``); and the
  reach without the swarm lookups' island check (spec/sync.md §6) and
  without relays for the nodes that cannot accept links (§11-12), each
  beside the run with both. Every node looks up each wanted feed's swarm
  every 30 s, as the real node does.

The same seed gives the same figures. Prints progress to stderr and one JSON
line last.

The scenarios run as independent tasks, each on a network built from the
seed in a process of its own, ``--jobs`` (2) at once; each size reports its
wall time, the tasks' CPU time and peak RSS, and ``peak_rss_mib_bound`` (the
``jobs`` largest peaks added up: at most that much is in use at once).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from p2psocial.sim import NetModel
from p2psocial.sim.scenarios import (
    availability,
    build,
    churn_lookups,
    eclipse_gets,
    post_propagation,
    sybil_share,
)

#: the availability scenario: 24 h; each hour a node goes offline with p 0.2,
#: comes back with p 0.4, and leaves for good with p 0.03 (a newcomer joins)
DAY: dict[str, Any] = {"records": 50, "gets_per_hour": 25, "depart_per_hour": 0.03}


#: the spread-eclipse runs: the defences of spec/dht.md §8 (tables admit a
#: lookup's responder only after an informative answer; record lookups over
#: three disjoint paths, joins over one), each alone, and neither
SPREAD: dict[str, NetModel] = {
    "spread_both": NetModel(),
    "spread_informative": NetModel(paths=1, get_paths=1),
    "spread_paths": NetModel(informative_only=False),
    "spread_none": NetModel(paths=1, get_paths=1, informative_only=False),
}
#: the lookups without the spread-eclipse defences: one path, tables admit
#: every responder
PLAIN: dict[str, Any] = {"paths": 1, "get_paths": 1, "informative_only": False}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _task(name: str, n: int, seed: int) -> tuple[str, Any, float, float]:
    """One scenario (or two on one build), in a process of its own; returns
    (name, figures, CPU seconds, peak RSS in MiB)."""
    t = time.process_time()
    out: Any
    if name == "availability_on":
        # The same joined network as the others (same seed): republishing on.
        out = availability(build(n, seed), republish=True, **DAY)
    elif name == "churn":
        out = {"churn": churn_lookups(build(n, seed))}
    elif name == "churn_plain":
        out = churn_lookups(build(n, seed, NetModel(**PLAIN)))
    elif name == "churn+availability_off":
        sim = build(n, seed)
        out = {
            "churn": churn_lookups(copy.deepcopy(sim)),
            "availability_off": availability(sim, republish=False, **DAY),
        }
    elif name.startswith("sybils"):
        half = n // 2
        diversity = name == "sybils_on"
        out = sybil_share(
            build(half, seed + 1, NetModel(diversity=diversity), kinds={"sybil": half})
        )
    elif name.startswith("gossip"):
        # gossip_on, gossip_off (no ebt), gossip_invalid, gossip_noislands, gossip_norelays
        out = post_propagation(
            n,
            seed + 4,
            ebt=name != "gossip_off",
            invalid=0.05 if name == "gossip_invalid" else 0.0,
            islands=name != "gossip_noislands",
            relays=name != "gossip_norelays",
        )
    elif name.startswith("spread"):
        bad = n // 5
        model = SPREAD[name]
        sim = build(
            n - bad, seed + 3, model, kinds={"eclipse": bad}, honest_bootstrap=True, block=None
        )
        out = eclipse_gets(sim)
    else:  # eclipse_on, eclipse_off
        bad = n // 5
        # The group limit alone (the spread-eclipse defences would hide the
        # baseline's attack): one path, every lookup responder admitted.
        model = NetModel(
            lookup_diversity=name == "eclipse_on",
            **PLAIN,  # type: ignore[arg-type]
        )
        sim = build(n - bad, seed + 2, model, kinds={"eclipse": bad}, honest_bootstrap=True)
        out = eclipse_gets(sim)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return name, out, time.process_time() - t, peak


def one_size(n: int, seed: int, scenarios: set[str], jobs: int) -> dict[str, Any]:
    """Every scenario at size ``n``, as independent tasks on ``jobs`` processes.

    Each task builds its own network from the seed, so the figures are those
    of one serial run: the availability runs with and without republishing
    and the churn run all start from the same joined network.
    """
    names = []  # longest first
    if "availability" in scenarios:
        names.append("availability_on")
    if scenarios & {"churn", "availability"}:
        names.append("churn+availability_off" if "availability" in scenarios else "churn")
    if "churn" in scenarios:
        names.append("churn_plain")
    if "sybils" in scenarios:
        names += ["sybils_on", "sybils_off"]
    if "eclipse" in scenarios:
        names += ["eclipse_on", "eclipse_off"]
    if scenarios & {"spread", "spread_each"}:
        names += ["spread_both", "spread_none"]
    if "spread_each" in scenarios:
        names += ["spread_informative", "spread_paths"]
    if "gossip" in scenarios:
        names += ["gossip_on", "gossip_off", "gossip_invalid", "gossip_noislands"]
        names += ["gossip_norelays"]
    out: dict[str, Any] = {"log2n_over_3": round(math.log2(n) / 3, 2)}
    t = time.perf_counter()
    done: dict[str, Any] = {}
    cost: dict[str, dict[str, float]] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = [pool.submit(_task, name, n, seed) for name in names]
        for fut in as_completed(futures):
            name, figures, cpu, peak = fut.result()
            done[name] = figures
            cost[name] = {"cpu_s": round(cpu, 1), "peak_rss_mib": round(peak)}
            log(f"N={n} {name} ({cpu:.0f} s CPU, {peak:.0f} MiB): {figures}")
    both = done.get("churn+availability_off") or done.get("churn") or {}
    if "churn" in scenarios:
        out["churn"] = both["churn"]
        out["churn_without_eclipse_defences"] = done["churn_plain"]
    if "availability" in scenarios:
        out["availability"] = {
            "republish": done["availability_on"],
            "no_republish": both["availability_off"],
        }
    if "sybils_on" in done:
        out["sybils"] = {"diversity": done["sybils_on"], "no_diversity": done["sybils_off"]}
    if "spread_none" in done:
        out["eclipse_spread"] = {
            "informative_and_paths_3": done["spread_both"],
            **(
                {"informative_only": done["spread_informative"]}
                if "spread_informative" in done
                else {}
            ),
            **({"paths_3_only": done["spread_paths"]} if "spread_paths" in done else {}),
            "neither": done["spread_none"],
        }
    if "eclipse_on" in done:
        out["eclipse"] = {
            "lookup_limit": done["eclipse_on"],
            "no_lookup_limit": done["eclipse_off"],
        }
    if "gossip_on" in done:
        out["gossip"] = {
            "ebt": done["gossip_on"],
            "no_ebt": done["gossip_off"],
            "invalid_entries": done["gossip_invalid"],
            "no_island_check": done["gossip_noislands"],
            "no_relays": done["gossip_norelays"],
        }
    out["seconds"] = round(time.perf_counter() - t, 1)
    out["cpu_s"] = round(sum(c["cpu_s"] for c in cost.values()), 1)
    # At most ``jobs`` tasks run at once: the largest peaks together bound
    # the memory in use at any time.
    peaks = sorted((c["peak_rss_mib"] for c in cost.values()), reverse=True)
    out["peak_rss_mib_bound"] = round(sum(peaks[:jobs]))
    out["tasks"] = cost
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,3000,10000", help="comma-separated N")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="scenario tasks run at once")
    p.add_argument(
        "--scenarios",
        default="churn,availability,sybils,eclipse,spread,gossip",
        help="comma-separated: churn, availability, sybils, eclipse, spread, spread_each "
        "(spread, and each of its two defences alone), gossip",
    )
    args = p.parse_args()
    scenarios = set(args.scenarios.split(","))
    known = {"churn", "availability", "sybils", "eclipse", "spread", "spread_each", "gossip"}
    if scenarios - known:
        p.error(f"unknown scenarios: {', '.join(sorted(scenarios - known))}")
    started = time.perf_counter()
    result: dict[str, Any] = {"bench": "simulate", "seed": args.seed, "sizes": {}}
    for n in (int(x) for x in args.sizes.split(",")):
        result["sizes"][str(n)] = one_size(n, args.seed, scenarios, args.jobs)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
