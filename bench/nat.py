"""Delivery across NATs: a home NAT type x home NAT type matrix on the testbed.

Builds the NAT testbed of tests/nat (tests/nat/README.md; needs Linux and
root) with two homes of each NAT kind and three public hosts, and runs a real
``p2psocial daemon`` in each. Once the homes have settled (their
reachability known, and relay reservations held where they need them), it
fills one cell per (author's kind, follower's kind): the follower (the
kind's second home) follows the author (the kind's first home), waits for
the link, and the author posts ``--posts`` times, one every ``--interval``
seconds, through the local API; then the follower unfollows, so that later
cells' followers get the author's posts from the author itself. Every follower is watched over its API; a
post's delivery time is post call start -> stored at the follower, on this
process's monotonic clock, and a post counts as delivered when it arrives
within ``--deadline`` seconds of the last post of its cell.

Then the relay's cost: an author behind a symmetric NAT posts about
``--relay-mib`` MiB of text to its follower in the other symmetric home (a
relayed link), and the bench reads every dialable node's ``bytes_forwarded``
counter (public hosts and full-cone homes relay alike) and, for the nodes
that forwarded this leg, their daemons' CPU time (user + system, from
/proc) before and after.

Prints progress on stderr and one JSON object as the last stdout line:
bench, cells (``"author_kind->follower_kind"`` -> delivered, p50_ms,
max_ms, path: the follower's link to the author, None if there was none;
link_s: follow -> that link up; first_path: that link's path when it came up;
punch_ms: a relayed link up -> the direct link replacing it up, as the
daemons measured it (statistics' punch_latency_s, the follower's else the
author's); direct_ratio: the cell's posts sent while the link was not
relayed), all_delivered, worst_max_ms, direct_cells, direct_link_ratio
(mean of the cells'), median_punch_ms, relay_cost (of a link asserted to be
relayed before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout

from p2psocial.client import AsyncClient, connect_async
from tests.nat import netlab
from tests.nat.conftest import NsDaemon, start_daemons

PUBLIC = ("pub1", "pub2", "pub3")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Node:
    """A daemon of the testbed, its API client and the posts it saw arrive."""

    def __init__(self, name: str, daemon: NsDaemon) -> None:
        self.name = name
        self.daemon = daemon
        self.client: AsyncClient | None = None
        self.node_id = ""
        self.arrivals: dict[str, float] = {}
        self.arrived = trio.Event()

    async def wait_for_all(self, ids: list[str], within: float) -> None:
        """Return once every post of ``ids`` arrived here, or after ``within`` seconds."""
        with trio.move_on_after(within):
            while not all(pid in self.arrivals for pid in ids):
                await self.arrived.wait()
                self.arrived = trio.Event()

    @property
    def api(self) -> AsyncClient:
        assert self.client is not None
        return self.client

    def cpu_seconds(self) -> float:
        """User + system CPU time of the daemon process so far."""
        assert self.daemon.process is not None
        fields = Path(f"/proc/{self.daemon.process.proc.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


async def _client(node: Node, *, task_status: trio.TaskStatus[None]) -> None:
    async with connect_async(node.daemon.data_dir) as client:
        node.client = client
        node.node_id = str((await client.status())["node_id"])
        task_status.started()
        await trio.sleep_forever()


async def _watch(node: Node, *, task_status: trio.TaskStatus[None]) -> None:
    events = await node.api.watch(kinds=["post"])
    task_status.started()
    async for event in events:
        node.arrivals.setdefault(str(event["id"]), time.monotonic())
        node.arrived.set()


async def _settle(nodes: dict[str, Node], homes: list[str], within: float) -> dict[str, Any]:
    """Wait until each home knows its reachability and, behind a NAT, holds a relay."""
    start = time.monotonic()
    state: dict[str, Any] = {}
    with trio.move_on_after(within):
        while True:
            for name in homes:
                st: dict[str, Any] = dict(await nodes[name].api.status())
                state[name] = {
                    "reachability": st.get("reachability"),
                    "reachable": st.get("reachable"),
                    "relays": len(st.get("relays", [])),
                }
            # A home is settled once it is dialable (a public address or a
            # forward, like the full cone) or holds a relay.
            if all(
                s["reachability"] == "public"
                or s["reachable"] == "yes"
                or (s["reachability"] == "behind_nat" and s["relays"])
                for s in state.values()
            ):
                break
            await trio.sleep(1.0)
    log(f"settled in {time.monotonic() - start:.0f} s: {state}")
    return state


async def _link_path(follower: Node, author: Node, within: float) -> tuple[str | None, float]:
    """The path of the follower's link to the author once it is up, and how long it took."""
    start = time.monotonic()
    with trio.move_on_after(within):
        while True:
            for p in (await follower.api.peers())["items"]:
                if p.get("node_id") == author.node_id:
                    return str(p.get("path", "direct")), time.monotonic() - start
            await trio.sleep(0.2)
    return None, time.monotonic() - start


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))], 1)


async def _current_path(follower: Node, author: Node) -> str | None:
    for p in (await follower.api.peers())["items"]:
        if p.get("node_id") == author.node_id:
            return str(p.get("path", "direct"))
    return None


async def _settle_path(
    follower: Node, author: Node, within: float
) -> tuple[str | None, float | None]:
    """Wait up to ``within`` s for a relayed link to turn direct; (path, seconds it took)."""
    start = time.monotonic()
    path = await _current_path(follower, author)
    with trio.move_on_after(within):
        while path in (None, "relayed"):
            await trio.sleep(0.1)
            path = await _current_path(follower, author)
    took = time.monotonic() - start if path not in (None, "relayed") else None
    return path, took


async def _punch_latencies(node: Node) -> list[float]:
    stats = dict(await node.api.statistics())
    return [float(x) for x in stats["replication"].get("punch", {}).get("punch_latency_s", [])]


async def _cell(author: Node, follower: Node, args: argparse.Namespace) -> dict[str, Any]:
    before = [await _punch_latencies(n) for n in (follower, author)]
    await follower.api.follow(author.daemon.identity)
    first, link_s = await _link_path(follower, author, args.link_timeout)
    punch_s = None
    path = first
    if first == "relayed":
        # Relayed link up -> direct link up, if the routers allow it (spec/sync.md §12).
        path, punch_s = await _settle_path(follower, author, args.punch_wait)
    if path in ("punched", "reversed"):
        # The daemons' own measure: the relayed link up -> the direct link up
        # (the follower's, else the author's: a reversal's responder may not count it).
        for node, had in zip((follower, author), before, strict=True):
            now = await _punch_latencies(node)
            if now != had and now:
                punch_s = now[-1]
                break
    sent: dict[str, float] = {}
    paths: list[str | None] = []
    for i in range(args.posts):
        t0 = time.monotonic()
        res = await author.api.post(f"{author.name} to {follower.name}, post {i}")
        sent[res["id"]] = t0
        paths.append(await _current_path(follower, author))
        await trio.sleep(args.interval)
    await follower.wait_for_all(list(sent), args.deadline)
    delays = [
        (follower.arrivals[p] - t0) * 1000 for p, t0 in sent.items() if p in follower.arrivals
    ]
    if path is None:  # the link came up only while posting, if at all
        path, _ = await _link_path(follower, author, 0.5)
    # The next cells' followers must get the author's posts from the author,
    # not from this follower (a swarm member that still wants the feed).
    await follower.api.unfollow(author.daemon.identity)
    return {
        "delivered": round(len(delays) / len(sent), 3),
        "p50_ms": _pct(delays, 0.5),
        "max_ms": round(max(delays), 1) if delays else None,
        "path": path,
        "first_path": first,
        # Posts sent while the follower's link to the author was not relayed.
        "direct_ratio": round(sum(1 for p in paths if p not in (None, "relayed")) / len(paths), 3),
        "punch_ms": round(punch_s * 1000) if punch_s is not None else None,
        "link_s": round(link_s, 1),
    }


async def _relay_cost(nodes: dict[str, Node], args: argparse.Namespace) -> dict[str, Any]:
    """Bytes and CPU the relays spend per relayed MiB of posts."""
    # Two symmetric homes: no punch can make their link direct (spec/sync.md
    # §12), so every byte of this leg crosses a relay.
    author, follower = nodes["symmetric"], nodes["symmetric_2"]
    await follower.api.follow(author.daemon.identity)
    path, _ = await _link_path(follower, author, args.link_timeout)
    if path != "relayed":
        raise SystemExit(f"bench/nat.py: the relay-cost link is {path}, not relayed")

    # Any dialable node relays: the public hosts, and the full-cone homes too.
    relays = [n for n in nodes if n not in ("symmetric", "symmetric_2")]

    async def relayed() -> dict[str, tuple[int, float]]:
        out = {}
        for name in relays:
            stats = dict(await nodes[name].api.statistics())
            done = int(stats["replication"]["relay"].get("bytes_forwarded", 0))
            out[name] = (done, nodes[name].cpu_seconds())
        return out

    text = "r" * 1900
    count = max(1, int(args.relay_mib * 1024 * 1024 / len(text)))
    at0 = await relayed()
    start = time.monotonic()
    ids = []
    for i in range(count):
        ids.append((await author.api.post(f"{i:05} {text}"))["id"])
    await follower.wait_for_all(ids, args.relay_timeout)
    took = time.monotonic() - start
    at1 = await relayed()
    # The nodes that relayed this leg: their bytes and their whole CPU time.
    used = [n for n in relays if at1[n][0] > at0[n][0]]
    bytes0, bytes1 = (sum(at[n][0] for n in used) for at in (at0, at1))
    cpu0, cpu1 = (sum(at[n][1] for n in used) for at in (at0, at1))
    path_after = await _current_path(follower, author)
    if path_after != "relayed":
        raise SystemExit(f"bench/nat.py: the relay-cost link became {path_after}")
    got = sum(1 for pid in ids if pid in follower.arrivals)
    payload_mib = got * (len(text) + 6) / (1024 * 1024)
    forwarded_mib = (bytes1 - bytes0) / (1024 * 1024)
    return {
        "path": path,
        "relays": used,
        "posts": count,
        "delivered": got,
        "payload_mib": round(payload_mib, 3),
        "forwarded_mib": round(forwarded_mib, 3),
        "forwarded_per_payload_mib": round(forwarded_mib / payload_mib, 3) if payload_mib else None,
        "relay_cpu_s": round(cpu1 - cpu0, 3),
        "relay_cpu_s_per_forwarded_mib": (
            round((cpu1 - cpu0) / forwarded_mib, 3) if forwarded_mib else None
        ),
        "seconds": round(took, 1),
    }


async def run(args: argparse.Namespace, daemons: dict[str, NsDaemon]) -> dict[str, Any]:
    nodes = {name: Node(name, d) for name, d in daemons.items()}
    firsts = list(netlab.KINDS)
    seconds = [f"{k}_2" for k in netlab.KINDS]
    async with trio.open_nursery() as nursery:
        for node in nodes.values():
            await nursery.start(_client, node)
        for name in seconds:
            await nursery.start(_watch, nodes[name])
        settled = await _settle(nodes, firsts + seconds, args.settle_timeout)
        cells: dict[str, Any] = {}
        for a_kind in firsts if args.matrix else ():
            for b_kind in netlab.KINDS:
                cell = await _cell(nodes[a_kind], nodes[f"{b_kind}_2"], args)
                cells[f"{a_kind}->{b_kind}"] = cell
                log(f"{a_kind} -> {b_kind}: {cell}")
        cost = await _relay_cost(nodes, args) if args.relay_mib > 0 else None
        log(f"relay cost: {cost}")
        nursery.cancel_scope.cancel()
    maxima = [c["max_ms"] for c in cells.values() if c["max_ms"] is not None]
    return {
        "bench": "nat",
        "posts_per_cell": args.posts,
        "cells": cells,
        "all_delivered": all(c["delivered"] == 1.0 for c in cells.values()) if cells else None,
        "worst_max_ms": max(maxima) if maxima else None,
        "median_p50_ms": (
            round(statistics.median(c["p50_ms"] for c in cells.values() if c["p50_ms"]), 1)
            if maxima
            else None
        ),
        "direct_cells": sum(1 for c in cells.values() if c["path"] not in (None, "relayed")),
        "direct_link_ratio": (
            round(sum(c["direct_ratio"] for c in cells.values()) / len(cells), 3) if cells else None
        ),
        "median_punch_ms": (
            statistics.median(c["punch_ms"] for c in cells.values() if c["punch_ms"] is not None)
            if any(c["punch_ms"] is not None for c in cells.values())
            else None
        ),
        "settled": settled,
        "relay_cost": cost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--deadline", type=float, default=10.0)
    parser.add_argument("--link-timeout", type=float, default=60.0)
    parser.add_argument("--settle-timeout", type=float, default=120.0)
    parser.add_argument(
        "--punch-wait", type=float, default=20.0, help="seconds for a relayed link to turn direct"
    )
    parser.add_argument("--relay-mib", type=float, default=1.0)
    parser.add_argument("--relay-timeout", type=float, default=120.0)
    parser.add_argument(
        "--no-matrix", dest="matrix", action="store_false", help="measure the relay's cost only"
    )
    args = parser.parse_args()
    reason = netlab.unavailable_reason()
    if reason is not None:
        sys.exit(f"bench/nat.py: {reason}")
    started: dict[str, NsDaemon] = {}
    with (
        tempfile.TemporaryDirectory(prefix="p2psocial-nat-") as tmp,
        netlab.Lab(kinds=netlab.KINDS * 2) as lab,
    ):
        try:
            log("starting 11 daemons in the testbed ...")
            start_daemons(lab, Path(tmp), started)
            result = trio.run(run, args, started)
        finally:
            for d in started.values():
                d.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
