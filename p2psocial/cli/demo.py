"""``p2psocial demo``: a real network of daemons on 127.0.0.1, end to end.

Each node is a real ``p2psocial daemon`` process with its own data dir in a
temporary folder. They find each other through the DHT (every node bootstraps
from the first), follow each other, post, reply and react through the local
API, and the demo measures how long each post takes to reach every follower.
Everything is shut down and removed at the end, also after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ..client import (
    Client,
    DaemonProcess,
    DaemonProcessError,
    cli_argv,
    connect,
    daemon_env,
    spawn_daemon,
    stop_daemons,
)

__all__ = ["run_demo"]

NAMES = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "oscar",
]
READY_TIMEOUT = 20.0
PROPAGATION_TIMEOUT = 15.0


@dataclass
class DemoNode:
    name: str
    data_dir: Path
    daemon: DaemonProcess | None = None
    info: dict[str, str] = field(default_factory=dict)
    client: Client | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "daemon.log"

    @property
    def api(self) -> Client:
        assert self.client is not None
        return self.client


def _start(node: DemoNode, bootstrap: str | None) -> None:
    subprocess.run(
        cli_argv("init", data_dir=node.data_dir),
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env=daemon_env(),
    )
    node.daemon = spawn_daemon(
        node.data_dir, bootstrap=[bootstrap] if bootstrap else [], log=node.log_path, wait=False
    )


def _wait_ready(node: DemoNode) -> None:
    assert node.daemon is not None
    try:
        node.info = node.daemon.wait_ready(READY_TIMEOUT)
    except DaemonProcessError as exc:
        if exc.reason == "exited":
            raise RuntimeError(f"{node.name}'s daemon exited early:\n{node.daemon.log()}") from None
        raise RuntimeError(
            f"{node.name}'s daemon did not become ready in {READY_TIMEOUT:.0f} s"
        ) from None
    node.client = connect(api=node.info["api"], wait=5)


def _holds(node: DemoNode, author: DemoNode, entry_id: str) -> bool:
    items = node.api.feed(identity=author.info["identity"], limit=20, kinds=["*"])["items"]
    return any(e["id"] == entry_id and e["payload_state"] == "present" for e in items)


def _propagate(nodes: list[DemoNode], author: DemoNode, entry_id: str, t0: float) -> list[float]:
    """Wait until every other node holds ``entry_id``; return their delays in ms."""
    pending = {n.name: n for n in nodes if n is not author}
    delays: list[float] = []
    deadline = t0 + PROPAGATION_TIMEOUT
    while pending and time.monotonic() < deadline:
        for name, node in list(pending.items()):
            if _holds(node, author, entry_id):
                delays.append((time.monotonic() - t0) * 1000)
                del pending[name]
        time.sleep(0.01)
    if pending:
        raise RuntimeError(
            f"post {entry_id[:12]} did not reach {', '.join(pending)} in {PROPAGATION_TIMEOUT:.0f} s"
        )
    return delays


def _stop(nodes: list[DemoNode]) -> None:
    for n in nodes:
        if n.client is not None:
            with contextlib.suppress(OSError):
                n.client.close()
    stop_daemons([n.daemon for n in nodes if n.daemon is not None], timeout=5)


def run_demo(*, nodes: int = 4, keep: bool = False, color: bool = True, verbose: int = 0) -> int:
    """Run the demo; returns the process exit code."""
    con = Console(no_color=not color, highlight=False, soft_wrap=True)
    tmp = Path(tempfile.mkdtemp(prefix="p2psocial-demo-"))
    net = [DemoNode(NAMES[i], tmp / NAMES[i]) for i in range(nodes)]
    t_start = time.monotonic()
    try:
        con.print(f"[bold]Starting {nodes} daemons on 127.0.0.1[/] (data in {tmp})")
        _start(net[0], None)
        _wait_ready(net[0])
        for n in net[1:]:
            _start(n, net[0].info["dht"])
        for n in net[1:]:
            _wait_ready(n)
        for n in net:
            con.print(
                f"  {n.name:<6} {n.info['identity'][:20]}…  dht {n.info['dht']}  peers {n.info['peer']}"
            )
            n.api.set_profile(name=n.name)

        con.print("\n[bold]Everyone follows everyone[/] (peers are found through the DHT)")
        for n in net:
            for m in net:
                if m is not n:
                    n.api.follow(identity=m.info["identity"])

        all_delays: list[float] = []

        def publish(author: DemoNode, label: str, call: Any) -> str:
            t0 = time.monotonic()
            result = call()
            delays = _propagate(net, author, result["id"], t0)
            all_delays.extend(delays)
            con.print(
                f"  {author.name:<6} {label:<40} reached {len(delays)} followers in "
                f"[green]{max(delays):.0f} ms[/] (median {statistics.median(delays):.0f} ms)"
            )
            return str(result["id"])

        con.print("\n[bold]Posting[/]")
        first = publish(
            net[0],
            "posts 'hello, decentralized world'",
            lambda: net[0].api.post(text="hello, decentralized world"),
        )
        publish(
            net[1],
            "replies to alice",
            lambda: net[1].api.post(text=f"hi {net[0].name}! no server in sight", reply_to=first),
        )
        publish(
            net[2], "reacts 🎉 to alice's post", lambda: net[2].api.react(target=first, emoji="🎉")
        )
        for n in net[3:]:
            publish(
                n,
                "posts with #p2p",
                lambda n=n: n.api.post(text=f"{n.name} here, running my own node", tags=["p2p"]),
            )

        con.print("\n[bold]Each node's timeline[/]")
        counts = []
        for n in net:
            items = n.api.timeline(limit=100)["items"]
            posts = [e for e in items if e["kind"] == "post"]
            counts.append(len(posts))
            con.print(
                f"  {n.name:<6} holds {len(items):>3} entries, {len(posts)} posts; newest: {posts[0]['text'][:50]!r}"
            )
        thread = net[3 % nodes].api.thread(id=first)["items"]
        con.print(f"\n[bold]The thread on {net[3 % nodes].name}'s node[/]:")
        for e in thread:
            reacts = " ".join(f"{k}{v}" for k, v in (e.get("reactions") or {}).items())
            con.print(
                f"  {'  ' * e.get('depth', 0)}{NAMES[[x.info['identity'] for x in net].index(e['author'])]}: {e['text']} {reacts}"
            )
        converged = len(set(counts)) == 1
        con.print(
            f"\n[bold]{'Converged' if converged else 'NOT converged'}[/]: {len(all_delays)} deliveries, "
            f"propagation median {statistics.median(all_delays):.0f} ms, max {max(all_delays):.0f} ms; "
            f"total {time.monotonic() - t_start:.1f} s"
        )
        return 0 if converged else 1
    except KeyboardInterrupt:
        con.print("\ninterrupted; shutting the daemons down")
        return 130
    except Exception as exc:
        con.print(f"[red]demo failed:[/] {exc}")
        if verbose:
            for n in net:
                if n.log_path.exists():
                    con.print(
                        f"--- {n.name} log ---\n{n.log_path.read_text(errors='replace')[-3000:]}"
                    )
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave daemons
        # or data behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _stop(net)
            if keep:
                con.print(f"data kept in {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous)
