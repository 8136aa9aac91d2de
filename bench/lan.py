"""LAN discovery on the testbed: how soon two nodes on one link meet, with no bootstrap.

Builds the one-link lab of tests/nat/lanlab.py (needs Linux and root) ``--rounds``
times and runs two real ``p2psocial daemon`` processes in it, in two modes:

- ``lan``: LAN discovery on (spec/dht.md §12), no bootstrap address;
- ``reference``: LAN discovery off, the second daemon bootstrapping from the
  first's DHT address (the way nodes meet without it), in the same run.

Per round and mode it measures ``meet_s``: the second daemon spawned -> each has
the other in its DHT routing table (``statistics`` dht ``contacts`` >= 1, and
for ``lan`` also ``status`` ``lan_peers`` 1), next to ``ready_s``: the second
daemon spawned -> its ready line read (``init`` and start-up, which dominate:
the two usually meet before the ready line is read); and ``post_ms``: after each has
followed the other, a post call at one -> the post in the other's feed. Times
are this process's monotonic clock, polled through the local API every 20 ms,
so they include up to one poll interval.

Prints progress on stderr and one JSON object as the last stdout line: bench,
rounds, and for ``lan`` and ``reference`` the lists ``meet_s``, ``ready_s`` and
``post_ms``, with the medians of ``meet_s`` and ``post_ms``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout

from p2psocial.client import Client, connect
from p2psocial.client.spawn import daemon_env
from tests.daemons import cli_env
from tests.nat.conftest import NsDaemon
from tests.nat.lanlab import LanLab

POLL = 0.02


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def until(pred: Callable[[], bool], within: float, what: str) -> float:
    """Poll ``pred``; returns the monotonic time it first held."""
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(POLL)
    return time.monotonic()


def one_round(base: Path, mode: str) -> dict[str, float]:
    with LanLab() as lab:
        daemons: list[NsDaemon] = []
        try:
            env = (
                daemon_env(NO_COLOR="1", P2PSOCIAL_PORTMAP_GATEWAY="none")
                if mode == "lan"
                else cli_env()
            )
            for role in ("a", "b"):
                ns, ip = lab.hosts[role]
                boot = [daemons[0].addr("dht_addr")] if mode == "reference" and daemons else []
                # The clock starts as the second daemon is spawned (its ready line
                # may come after it has already met the first).
                spawned = time.monotonic()
                daemons.append(NsDaemon(lab, ns, ip, base / f"{mode}-{role}").start(boot, env=env))
            ready = time.monotonic()
            clients: list[Client] = [connect(d.data_dir) for d in daemons]

            def met(c: Client) -> bool:
                if c.statistics()["dht"]["contacts"] < 1:
                    return False
                return mode != "lan" or c.status()["lan_peers"] == 1

            met_at = max(until(lambda c=c: met(c), 60, f"{mode}: meeting") for c in clients)
            ids = [str(c.status()["identity"]) for c in clients]
            clients[0].follow(ids[1])
            clients[1].follow(ids[0])
            posts = []
            for author, reader in ((0, 1), (1, 0)):
                text = f"{mode} post from {author} at {time.time()}"
                start = time.monotonic()
                clients[author].post(text)

                def arrived(r: int = reader, a: int = author, t: str = text) -> bool:
                    page = clients[r].feed(ids[a])
                    return any(e.get("text") == t for e in page["items"])

                posts.append((until(arrived, 60, f"{mode}: post") - start) * 1000)
            for c in clients:
                c.close()
            return {
                "meet_s": met_at - spawned,
                "ready_s": ready - spawned,
                "post_ms": max(posts),
            }
        finally:
            for d in daemons:
                d.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        m: {"meet_s": [], "ready_s": [], "post_ms": []} for m in ("lan", "reference")
    }
    with tempfile.TemporaryDirectory(prefix="p2psocial-bench-lan-") as tmp:
        for i in range(args.rounds):
            for mode in ("lan", "reference"):
                r = one_round(Path(tmp) / str(i), mode)
                log(f"round {i} {mode}: meet {r['meet_s']:.2f} s, post {r['post_ms']:.0f} ms")
                for k, v in r.items():
                    results[mode][k].append(round(v, 3))
    out: dict[str, Any] = {"bench": "lan", "rounds": args.rounds}
    for mode, r in results.items():
        out[mode] = {
            **r,
            "meet_s_p50": round(statistics.median(r["meet_s"]), 3),
            "post_ms_p50": round(statistics.median(r["post_ms"]), 1),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
