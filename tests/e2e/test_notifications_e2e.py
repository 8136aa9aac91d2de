"""Notifications, the live view and finding people, across real daemons, through the CLI only."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2psocial.client import cli_argv
from tests.daemons import Daemon, cli_env, cli_json, run_cli, wait_for
from tests.e2e.test_cli_e2e import ident

pytestmark = pytest.mark.slow

#: Seconds a live view has to print a new entry.
WATCH_DEADLINE = 20.0


def _started(data_dir: Path, *, hub: Daemon | None = None) -> Daemon:
    """An initialised, running daemon; joined to ``hub`` (DHT and a peer link) if given."""
    if hub is None:
        d = Daemon(data_dir)
    else:
        d = Daemon(data_dir, bootstrap=[hub.info["dht"]], peers=[hub.addr("peer")])
    d.init()
    d.start()
    return d


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("notify")
    nodes: dict[str, Daemon] = {}
    try:
        nodes["alice"] = _started(root / "alice")
        for name in ("bob", "carol"):
            nodes[name] = _started(root / name, hub=nodes["alice"])
        # Identities with no node: followed, never running.
        quiet = {name: cli_json(root / name, "init")[0]["identity"] for name in ("dave", "erin")}
        yield {"nodes": nodes, "quiet": quiet}
    finally:
        for d in nodes.values():
            d.__exit__(None, None, None)


def notes(d: Daemon, *args: str) -> list[dict[str, Any]]:
    return [r for r in cli_json(d.data_dir, "notifications", *args) if "next" not in r]


def unread(d: Daemon) -> int:
    [st] = cli_json(d.data_dir, "status")
    return int(st["unread_notifications"])


def test_each_kind_then_read(net: dict[str, Any]) -> None:
    a, b, c = (net["nodes"][n] for n in ("alice", "bob", "carol"))
    alice, bob, carol = ident(a), ident(b), ident(c)
    cli_json(a.data_dir, "follow", bob)
    cli_json(a.data_dir, "follow", carol)
    cli_json(c.data_dir, "follow", alice)
    [post] = cli_json(a.data_dir, "post", "alice asks about tomatoes")
    cli_json(b.data_dir, "follow", alice)
    wait_for(
        lambda: any(e["id"] == post["id"] for e in cli_json(b.data_dir, "timeline")),
        timeout=30,
        what="alice's post on bob's node",
    )
    [reply] = cli_json(b.data_dir, "reply", post["id"], "bob says: water them")
    [react] = cli_json(b.data_dir, "react", post["id"], "🍅")
    [repost] = cli_json(b.data_dir, "repost", post["id"])
    want = {reply["id"]: "reply", react["id"]: "react", repost["id"]: "repost"}

    def bobs() -> dict[str, str] | None:
        got = {e["id"]: e["notification"] for e in notes(a, "--keep-unread", "--limit", "100")}
        kinds = set(got.values())
        return got if all(got.get(i) == k for i, k in want.items()) and "follow" in kinds else None

    got = wait_for(bobs, timeout=30, what="bob's acts in alice's notifications")
    items = notes(a, "--keep-unread", "--limit", "100")
    assert {(e["notification"], e["author"]) for e in items} >= {
        ("reply", bob),
        ("react", bob),
        ("repost", bob),
        ("follow", bob),
    }
    assert all(e["unread"] for e in items) and len(got) == len(items)
    assert unread(a) == len(items)
    # --unread lists the same; the default view (text) shows and marks read.
    assert {e["id"] for e in notes(a, "--unread", "--keep-unread")} == set(got)
    shown = run_cli(a.data_dir, "notifications", "--limit", "100").stdout
    assert "replied to you" in shown and "followed you" in shown
    assert unread(a) == 0
    after = notes(a, "--keep-unread", "--limit", "100")
    assert {e["id"] for e in after} == set(got)
    assert not any(e["unread"] for e in after)
    assert notes(a, "--unread") == []
    # mentions is as it was: replies and mentions only.
    assert [e["id"] for e in cli_json(a.data_dir, "mentions")] == [reply["id"]]


def test_contradicting_flags_are_refused(net: dict[str, Any]) -> None:
    a = net["nodes"]["alice"]
    proc = run_cli(a.data_dir, "notifications", "--mark-read", "--keep-unread", check=False)
    assert proc.returncode == 2 and "contradict" in proc.stderr


class Watch:
    """A ``p2psocial watch`` subprocess whose stdout lines are read by one thread."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            cli_argv("--json", "watch", *args, data_dir=data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=cli_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def until(self, act: Any, match: Any) -> dict[str, Any]:
        """Do ``act()`` (at most 5 times: the subscription may not be up yet) until a line matches."""
        for _ in range(5):
            marker = act()
            try:
                while True:
                    rec = json.loads(self.lines.get(timeout=WATCH_DEADLINE / 5))
                    if match(rec, marker):
                        return rec
            except queue.Empty:
                continue
        raise AssertionError(f"watch printed no matching line within {WATCH_DEADLINE} s")

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        return rc, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_watch_timeline_prints_new_posts_and_stops_on_ctrl_c(net: dict[str, Any]) -> None:
    a, b = net["nodes"]["alice"], net["nodes"]["bob"]
    w = Watch(a.data_dir)
    try:
        n = iter(range(100))

        def post() -> str:
            [res] = cli_json(b.data_dir, "post", f"bob live {next(n)}")
            return str(res["id"])

        rec = w.until(post, lambda rec, marker: rec.get("id") == marker)
        assert rec["kind"] == "post" and rec["text"].startswith("bob live")
        rc, err = w.interrupt()
    finally:
        w.kill()
    assert rc == 0
    assert "Traceback" not in err


def test_watch_notifications(net: dict[str, Any]) -> None:
    a, c = net["nodes"]["alice"], net["nodes"]["carol"]
    [target] = cli_json(a.data_dir, "post", "react to this")
    wait_for(
        lambda: any(e["id"] == target["id"] for e in cli_json(c.data_dir, "timeline")),
        timeout=30,
        what="alice's post on carol's node",
    )
    w = Watch(a.data_dir, "--notifications")
    try:
        emojis = iter(["👍", "🎉", "🌱", "🔥", "👀"])

        def react() -> str:
            [res] = cli_json(c.data_dir, "react", target["id"], next(emojis))
            return str(res["id"])

        rec = w.until(react, lambda rec, marker: rec.get("id") == marker)
        assert rec["notification"] == "react" and rec["author"] == ident(c)
        rc, err = w.interrupt()
    finally:
        w.kill()
    assert rc == 0 and "Traceback" not in err


def test_suggest_and_search_people(net: dict[str, Any]) -> None:
    a, b, c = (net["nodes"][n] for n in ("alice", "bob", "carol"))
    dave, erin = net["quiet"]["dave"], net["quiet"]["erin"]
    alice = ident(a)
    cli_json(b.data_dir, "follow", dave)
    cli_json(b.data_dir, "follow", erin)
    cli_json(c.data_dir, "follow", dave)
    cli_json(b.data_dir, "profile", "set", "--name", "Bob Gardener", "--bio", "grows Tomatoes")

    def ranked() -> list[tuple[str, int]] | None:
        got = [(p["identity"], p["followed_by"]) for p in cli_json(a.data_dir, "suggest")]
        return got if got == [(dave, 2), (erin, 1)] else None

    wait_for(ranked, timeout=30, what="dave then erin suggested to alice")
    # Carol follows alice: never suggest alice to herself, nor those she follows.
    assert alice not in {p["identity"] for p in cli_json(a.data_dir, "suggest")}
    cli_json(a.data_dir, "mute", erin)
    assert [p["identity"] for p in cli_json(a.data_dir, "suggest")] == [dave]

    def found() -> list[dict[str, Any]] | None:
        got = cli_json(a.data_dir, "search", "--people", "tomatoes")
        return got or None

    [bob] = wait_for(found, timeout=30, what="bob's profile on alice's node")
    assert bob["identity"] == ident(b) and bob["name"] == "Bob Gardener"
    assert cli_json(a.data_dir, "search", "--people", "nobody-here") == []
    text = run_cli(a.data_dir, "search", "--people", "GARDENER").stdout
    assert '"Bob Gardener" (self-chosen)' in text
