"""The reference for ``bench/dht.py``: the stock ``kademlia`` package (asyncio,
rpcudp) on 127.0.0.1 in one process, joined and used the way bench/dht.py
joins and uses its own nodes.

1. N servers join in waves, each through a random server that joined
   before it; ``Server.bootstrap`` looks up the joiner's own id, as our join
   does. Then every server looks its own id up once more, as every node does
   in bench/dht.py (its first refresh). ``bootstrap_s`` is the wall time of
   all that; ``join_s`` of the waves alone (the figure reported before
   2026-12-04, when the second lookup was not made here).
2. ``authors`` values are set, one at a time (``put_p50_ms``), and ``gets``
   random ones are read from random servers (``get_p50_ms``).

``--gc``: as in bench/dht.py, applied once the servers listen.

Plain values, not signed records: the package has no record validation or
key proofs, so this is a floor for what a Kademlia round trip costs here.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import statistics
import time

from kademlia.crawling import NodeSpiderCrawl
from kademlia.network import Server


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    servers = [Server() for _ in range(args.nodes)]
    ports = []
    for s in servers:
        await s.listen(0, interface="127.0.0.1")
        assert s.transport is not None
        ports.append(s.transport.get_extra_info("sockname")[1])
    if args.gc == "tuned":
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
    t0 = time.perf_counter()
    cpu = time.process_time()
    await servers[1].bootstrap([("127.0.0.1", ports[0])])
    joined = 2
    while joined < args.nodes:
        wave = range(joined, min(args.nodes, joined * 2))
        await asyncio.gather(
            *(servers[i].bootstrap([("127.0.0.1", ports[rng.randrange(joined)])]) for i in wave)
        )
        joined += len(wave)
    join_s = time.perf_counter() - t0

    async def look_up_self(s: Server) -> None:
        assert s.protocol is not None and s.node is not None
        nearest = s.protocol.router.find_neighbors(s.node)
        await NodeSpiderCrawl(s.protocol, s.node, nearest, s.ksize, s.alpha).find()

    await asyncio.gather(*(look_up_self(s) for s in servers))
    boot_s = time.perf_counter() - t0
    boot_cpu_s = time.process_time() - cpu
    keys = [rng.randbytes(16).hex() for _ in range(args.authors)]
    put_ms = []
    for key in keys:
        t = time.perf_counter()
        await rng.choice(servers).set(key, "v")
        put_ms.append((time.perf_counter() - t) * 1000)
    get_ms = []
    ok = 0
    for _ in range(args.gets):
        t = time.perf_counter()
        ok += await rng.choice(servers).get(rng.choice(keys)) == "v"
        get_ms.append((time.perf_counter() - t) * 1000)
    for s in servers:
        s.stop()
    return {
        "bench": "dht_kademlia",
        "nodes": args.nodes,
        "bootstrap_s": round(boot_s, 3),
        "bootstrap_cpu_s": round(boot_cpu_s, 3),
        "join_s": round(join_s, 3),
        "gc": args.gc,
        "put_p50_ms": round(statistics.median(put_ms), 2),
        "get_p50_ms": round(pct(get_ms, 0.5), 2),
        "success_ratio": round(ok / args.gets, 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--authors", type=int, default=50)
    p.add_argument("--gets", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gc", choices=("tuned", "default"), default="tuned")
    args = p.parse_args()
    logging.disable(logging.CRITICAL)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
