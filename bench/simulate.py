"""The DHT at 1,000 to 10,000 nodes: a seeded, deterministic simulation.

Runs the real routing table and lookup iterator (``p2psocial.sim``) over a
simulated network (log-normal round trips, median 80 ms; 1 % loss each way;
the caller's retries) and prints, per size N:

- ``churn``: records put at the k closest, then 30 % of all nodes go offline
  at once; ``lookup_success_after_churn`` (gets from survivors finding the
  record) and ``median_hops`` (of node lookups, against log2(N)/3);
- ``availability``: 24 simulated hours in which each node goes offline with
  p = 0.2, comes back with p = 0.4 and leaves for good with p = 0.03 every
  hour (a newcomer with an empty store joins for each that leaves), with
  hourly republishing by an online holder, and without (the defence off);
- ``sybils``: as many sybils as honest nodes, all in one /16: their share of
  honest tables and of the k closest sets that lookups return, with the
  routing table's IP-diversity limits and without;
- ``eclipse``: 20 % of nodes answer every lookup with fellow adversaries only
  and hold no records: record-get success (no disjoint-path lookups yet, so
  there is no defence to switch).

The same seed gives the same figures. Prints progress to stderr and one JSON
line last.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from typing import Any

from p2psocial.sim import NetModel
from p2psocial.sim.scenarios import availability, build, churn_lookups, eclipse_gets, sybil_share

#: the availability scenario: 24 h; each hour a node goes offline with p 0.2,
#: comes back with p 0.4, and leaves for good with p 0.03 (a newcomer joins)
DAY: dict[str, Any] = {"records": 50, "gets_per_hour": 25, "depart_per_hour": 0.03}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def one_size(n: int, seed: int, scenarios: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"log2n_over_3": round(math.log2(n) / 3, 2)}
    t = time.perf_counter()
    if scenarios & {"churn", "availability"}:
        sim = build(n, seed)
        log(f"N={n}: built in {time.perf_counter() - t:.1f} s")
        if "churn" in scenarios:
            out["churn"] = churn_lookups(copy.deepcopy(sim) if "availability" in scenarios else sim)
            log(f"  churn {out['churn']}")
        if "availability" in scenarios:
            # Both runs start from the same joined network.
            base = copy.deepcopy(sim) if "churn" in scenarios else sim
            twin = copy.deepcopy(base)
            on = availability(base, republish=True, **DAY)
            off = availability(twin, republish=False, **DAY)
            out["availability"] = {"republish": on, "no_republish": off}
            log(f"  availability {out['availability']}")
    if "sybils" in scenarios:
        half = n // 2
        res = {}
        for diversity in (True, False):
            sim = build(half, seed + 1, NetModel(diversity=diversity), kinds={"sybil": half})
            res["diversity" if diversity else "no_diversity"] = sybil_share(sim)
        out["sybils"] = res
        log(f"  sybils {res}")
    if "eclipse" in scenarios:
        bad = n // 5
        sim = build(n - bad, seed + 2, kinds={"eclipse": bad})
        out["eclipse"] = eclipse_gets(sim)
        log(f"  eclipse {out['eclipse']}")
    out["seconds"] = round(time.perf_counter() - t, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,3000,10000", help="comma-separated N")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--scenarios",
        default="churn,availability,sybils,eclipse",
        help="comma-separated: churn, availability, sybils, eclipse",
    )
    args = p.parse_args()
    scenarios = set(args.scenarios.split(","))
    started = time.perf_counter()
    result: dict[str, Any] = {"bench": "simulate", "seed": args.seed, "sizes": {}}
    for n in (int(x) for x in args.sizes.split(",")):
        result["sizes"][str(n)] = one_size(n, args.seed, scenarios)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
