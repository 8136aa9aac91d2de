"""Propagation: time from a post until every follower holds it, across real daemons.

Starts N real ``p2psocial daemon`` processes on 127.0.0.1 (default 20), each
with its own data dir, all bootstrapped into one DHT. A seeded random follow
graph is set up through the local API (each node follows ``--follows`` others)
and every follower also dials the authors it follows (``connect``), as a
node does after a swarm lookup. Then several authors publish ``--posts``
posts in total, one every ``--interval`` seconds, through the API.

Every daemon is watched over its API (``watch``); the bench records, on its
own monotonic clock, when each follower reports each post stored. Latency is
post call start -> stored at the follower; a post counts as delivered to a
follower when it arrives before the deadline.

Reference measured beside it: ``loopback_rtt_ms``, the median round trip of a
64-byte message over a TCP connection on 127.0.0.1 in this process.

Redundancy (spec/sync.md §13): ``redundancy`` is the entries of wanted feeds
that peers sent the daemons while the posts went out, duplicates included,
per entry stored (``entries_delivered / entries_stored`` over all daemons:
1.0 means every follower got each post once). ``reference_no_ebt`` repeats
the whole run with EBT-style sender selection off (``P2PSOCIAL_SYNC_EBT=0``:
every link pushes every shared feed) and reports the same figures; skip it
with ``--no-reference``.

Prints progress on stderr and one JSON object as the last stdout line with
the keys bench, daemons, posts, delivered_ratio, p50_ms, p99_ms,
bytes_per_post_per_node, loopback_rtt_ms (plus details).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from p2psocial.client import (
    AsyncClient,
    DaemonProcess,
    DaemonProcessError,
    cli_argv,
    connect_async,
    daemon_env,
    spawn_daemon,
    stop_daemons,
)


class Daemon:
    def __init__(self, index: int, root: Path) -> None:
        self.index = index
        self.data_dir = root / f"d{index:02d}"
        self.log = self.data_dir / "daemon.log"
        self.process: DaemonProcess | None = None
        self.info: dict[str, str] = {}
        self.client: AsyncClient | None = None
        self.arrivals: dict[str, float] = {}

    def start(self, bootstrap: str | None, listen: str, env: dict[str, str]) -> None:
        self.process = spawn_daemon(
            self.data_dir,
            env=daemon_env(**env),
            listen=None if listen == "default" else listen,
            bootstrap=[bootstrap] if bootstrap else [],
            log_level="warning",
            log=self.log,
            wait=False,
        )

    async def wait_ready(self, within: float = 60.0) -> None:
        assert self.process is not None
        try:
            self.info = await trio.to_thread.run_sync(self.process.wait_ready, within)
        except DaemonProcessError as exc:
            raise SystemExit(f"daemon {self.index}: {exc.message}:\n{self.process.log()}") from None

    @property
    def peer_addr(self) -> tuple[str, int]:
        assert self.process is not None
        host, port = self.process.addr("peer").rsplit(":", 1)
        return host, int(port)

    @property
    def dht_addr(self) -> str:
        assert self.process is not None
        return self.process.addr("dht")


def init_all(daemons: list[Daemon]) -> None:
    """``p2psocial init`` every data dir (in parallel processes)."""
    print(f"initialising {len(daemons)} data dirs...", file=sys.stderr)
    procs = [
        subprocess.Popen(
            cli_argv("init", data_dir=d.data_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=daemon_env(),
        )
        for d in daemons
    ]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("p2psocial init failed")


async def loopback_rtt_ms(rounds: int = 200) -> float:
    """Median round trip of 64 bytes over a loopback TCP connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    samples: list[float] = []

    async def echo(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(64):
            await stream.send_all(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, echo, listeners)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        msg = b"x" * 64
        for _ in range(rounds):
            t0 = time.perf_counter()
            await client.send_all(msg)
            got = 0
            while got < len(msg):
                got += len(await client.receive_some(64))
            samples.append((time.perf_counter() - t0) * 1000)
        await client.aclose()
        nursery.cancel_scope.cancel()
    return statistics.median(samples)


class Progress:
    """Wakes the waiting loop whenever any daemon reports a stored post."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def kick(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        await self.event.wait()
        self.event = trio.Event()


async def _watch(d: Daemon, ready: trio.Event, progress: Progress) -> None:
    assert d.client is not None
    gen = await d.client.watch(kinds=["post"])  # subscribed once this returns
    ready.set()
    async for event in gen:
        d.arrivals.setdefault(event["id"], time.monotonic())
        progress.kick()


async def _client(d: Daemon, *, task_status: trio.TaskStatus[None]) -> None:
    async with connect_async(api=d.info["api"]) as client:
        d.client = client
        task_status.started()
        await trio.sleep_forever()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    rnd = random.Random(args.seed)
    rtt = await loopback_rtt_ms()
    daemons = [Daemon(i, root) for i in range(args.daemons)]
    await trio.to_thread.run_sync(init_all, daemons)
    try:
        env = {"P2PSOCIAL_SYNC_EBT": "0"} if args.no_ebt else {}
        daemons[0].start(None, args.listen, env)
        await daemons[0].wait_ready()
        for d in daemons[1:]:
            d.start(daemons[0].dht_addr, args.listen, env)
        for d in daemons[1:]:
            await d.wait_ready()
        print("all daemons ready", file=sys.stderr)
        async with trio.open_nursery() as nursery:
            for d in daemons:
                await nursery.start(_client, d)
            progress = Progress()
            for d in daemons:
                ready = trio.Event()
                nursery.start_soon(_watch, d, ready, progress)
                await ready.wait()
            first = await _first_post_after_follow(daemons, args.first_post_pairs, progress)
            # Follow graph: every node follows `follows` others at random
            # (besides the follows of the first-post phase).
            follows: dict[int, list[int]] = {
                d.index: list(first["follows"].get(d.index, [])) for d in daemons
            }
            for d in daemons:
                others = [
                    x.index for x in daemons if x is not d and x.index not in follows[d.index]
                ]
                follows[d.index] += rnd.sample(others, min(args.follows, len(others)))
            authors = rnd.sample(range(len(daemons)), args.authors)
            for d in daemons:
                assert d.client is not None
                done = set(first["follows"].get(d.index, []))  # followed in the first phase
                for t in follows[d.index]:
                    if t not in done:  # a node refuses to follow twice
                        await d.client.follow(identity=daemons[t].info["identity"])
            for d in daemons:
                assert d.client is not None
                for t in follows[d.index]:
                    host, port = daemons[t].peer_addr
                    await d.client.connect(host=host, port=port)
            # Let follows replicate and links settle before measuring.
            await trio.sleep(args.settle)
            before = await _bytes_out(daemons)
            sent_before = await _deliveries(daemons)
            followers = {a: [d.index for d in daemons if a in follows[d.index]] for a in authors}
            posted: list[tuple[str, int, float]] = []
            print(f"posting {args.posts} posts from {len(authors)} authors...", file=sys.stderr)
            for i in range(args.posts):
                a = authors[i % len(authors)]
                client = daemons[a].client
                assert client is not None
                t0 = time.monotonic()
                res = await client.post(text=f"post {i} from node {a}")
                posted.append((res["id"], a, t0))
                await trio.sleep(args.interval)
            deadline = time.monotonic() + args.deadline
            expected = sum(len(followers[a]) for _, a, _ in posted)

            def delivered() -> int:
                return sum(
                    1 for pid, a, _ in posted for f in followers[a] if pid in daemons[f].arrivals
                )

            with trio.move_on_after(max(0.0, deadline - time.monotonic())):
                while delivered() < expected:
                    await progress.wait()
            after = await _bytes_out(daemons)
            sent_after = await _deliveries(daemons)
            latencies = [
                (daemons[f].arrivals[pid] - t0) * 1000
                for pid, a, t0 in posted
                for f in followers[a]
                if pid in daemons[f].arrivals
            ]
            got = delivered()
            nursery.cancel_scope.cancel()
    finally:
        stop_daemons([d.process for d in daemons if d.process is not None])
    return {
        "bench": "propagation",
        "mode": "daemons",
        "daemons": len(daemons),
        "posts": len(posted),
        "authors": len(authors),
        "follows_per_node": args.follows,
        "deliveries_expected": expected,
        "delivered_ratio": round(got / expected, 4) if expected else 1.0,
        "p50_ms": round(_percentile(latencies, 0.5), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "bytes_per_post_per_node": round((after - before) / (len(posted) * len(daemons)), 1),
        "redundancy": _ratio(sent_after[0] - sent_before[0], sent_after[1] - sent_before[1]),
        "entries_delivered": sent_after[0] - sent_before[0],
        "entries_stored": sent_after[1] - sent_before[1],
        "ebt": not args.no_ebt,
        "ebt_modes_sent": sent_after[2],
        "loopback_rtt_ms": round(rtt, 3),
        "interval_s": args.interval,
        "listen": args.listen,
        "first_post_pairs": len(first["post_ms"]),
        "follow_to_link_p50_ms": _round(_percentile(first["link_ms"], 0.5)),
        "follow_to_link_max_ms": _round(max(first["link_ms"], default=None)),
        "first_post_after_follow_p50_ms": _round(_percentile(first["post_ms"], 0.5)),
        "first_post_after_follow_max_ms": _round(max(first["post_ms"], default=None)),
        "first_post_missed": first["missed"],
    }


def _round(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 1)


async def _first_post_after_follow(
    daemons: list[Daemon], pairs: int, progress: Progress, within: float = 30.0
) -> dict[str, Any]:
    """What a user sees: follow someone (no explicit ``connect``), and time
    until the link is up and until their next post is stored here.

    Uses disjoint pairs of daemons other than the bootstrap node, one pair at
    a time, before any other follow exists.
    """
    link_ms: list[float] = []
    post_ms: list[float] = []
    follows: dict[int, list[int]] = {}
    missed = 0
    pairs = min(pairs, (len(daemons) - 1) // 2)
    for i in range(pairs):
        follower, author = daemons[1 + 2 * i], daemons[2 + 2 * i]
        assert follower.client is not None and author.client is not None
        t0 = time.monotonic()
        await follower.client.follow(identity=author.info["identity"])
        follows[follower.index] = [author.index]
        with trio.move_on_after(within) as scope:
            while True:
                # The API has no link event to wait on: poll it, briefly.
                peers = (await follower.client.peers())["items"]
                if any(p["node_id"] == author.info["node_id"] for p in peers):
                    break
                await trio.sleep(0.01)
        if scope.cancelled_caught:
            missed += 1
            continue
        link_ms.append((time.monotonic() - t0) * 1000)
        res = await author.client.post(text=f"first post after follow, pair {i}")
        with trio.move_on_after(within) as scope:
            while res["id"] not in follower.arrivals:
                await progress.wait()
        if scope.cancelled_caught:
            missed += 1
            continue
        post_ms.append((follower.arrivals[res["id"]] - t0) * 1000)
    print(
        f"first post after follow: {len(post_ms)}/{pairs} pairs, "
        f"max {max(post_ms, default=0):.0f} ms",
        file=sys.stderr,
    )
    return {"link_ms": link_ms, "post_ms": post_ms, "follows": follows, "missed": missed}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


async def _deliveries(daemons: list[Daemon]) -> tuple[int, int, int]:
    """Over all daemons: entries peers sent (duplicates included), entries
    stored from peers, and EBT modes sent."""
    delivered = stored = modes = 0
    for d in daemons:
        assert d.client is not None
        rep = (await d.client.statistics()).get("replication", {})
        delivered += int(rep.get("entries_delivered", 0))
        stored += int(rep.get("entries_stored", 0))
        ebt = rep.get("ebt", {})
        modes += int(ebt.get("mode_standby_sent", 0)) + int(ebt.get("mode_active_sent", 0))
    return delivered, stored, modes


async def _bytes_out(daemons: list[Daemon]) -> int:
    total = 0
    for d in daemons:
        assert d.client is not None
        stats = await d.client.statistics()
        total += int(stats.get("replication", {}).get("bytes_out", 0))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemons", type=int, default=20)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--authors", type=int, default=5)
    parser.add_argument("--follows", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--listen",
        default="127.0.0.1",
        help="the daemons' --listen; 'default' passes none (the wildcard a user gets)",
    )
    parser.add_argument(
        "--first-post-pairs",
        type=int,
        default=5,
        help="pairs timed from follow (no connect) to link and to the author's next post",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dirs (logs)")
    parser.add_argument(
        "--no-ebt", action="store_true", help="internal: the reference run, every link pushing"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the second run with EBT off"
    )
    args = parser.parse_args()
    result = _run_once(args)
    if not (args.no_reference or args.no_ebt):
        print("reference: the same run with EBT off...", file=sys.stderr)
        args.no_ebt = True
        ref = _run_once(args)
        result["reference_no_ebt"] = {
            k: ref[k]
            for k in (
                "delivered_ratio",
                "p50_ms",
                "p99_ms",
                "bytes_per_post_per_node",
                "redundancy",
            )
        }
    print(json.dumps(result))


def _run_once(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="p2ps-bench-prop-"))
    try:
        return trio.run(run, args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"data dirs kept in {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
