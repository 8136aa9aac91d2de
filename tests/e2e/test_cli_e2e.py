"""Three real daemons, driven only through the ``p2psocial`` command with --json."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemons import Daemon, cli_env, cli_json, run_cli, wait_for

pytestmark = pytest.mark.slow

ENTRY_KEYS = {"id", "author", "seq", "kind", "timestamp", "text", "reply_to", "deleted"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:
    root = tmp_path_factory.mktemp("e2e")
    a = Daemon(root / "alice")
    a.init()
    a.start()
    nodes = {"alice": a}
    try:
        for name in ("bob", "carol"):
            d = Daemon(root / name, bootstrap=[a.info["dht"]])
            d.init()
            d.start()
            nodes[name] = d
        yield nodes
    finally:
        for d in nodes.values():
            d.__exit__(None, None, None)


def ident(d: Daemon) -> str:
    [rec] = cli_json(d.data_dir, "id")
    return str(rec["identity"])


def timeline_ids(d: Daemon) -> set[str]:
    return {e["id"] for e in cli_json(d.data_dir, "timeline", "--limit", "100")}


def test_id_and_status_contracts(net: dict[str, Daemon]) -> None:
    a = net["alice"]
    assert ident(a).startswith("p2ps1")
    [st] = cli_json(a.data_dir, "status")
    assert {"identity", "node_id", "dht_addr", "peer_addr", "api", "peers", "feeds"} <= set(st)
    assert st["identity"] == ident(a)


def test_follow_post_reply_react_and_read(net: dict[str, Daemon]) -> None:
    a, b, c = net["alice"], net["bob"], net["carol"]
    ids = {n: ident(d) for n, d in net.items()}
    for d in net.values():
        for other, text in ids.items():
            if d is not net[other]:
                [res] = cli_json(d.data_dir, "follow", text)
                assert {"id", "seq"} <= set(res)
    assert set(r["identity"] for r in cli_json(a.data_dir, "following")) == {
        ids["bob"],
        ids["carol"],
    }

    [post] = cli_json(a.data_dir, "post", "hello from alice about gardening")
    assert {"id", "seq"} == set(post)
    for d in (b, c):
        wait_for(
            lambda d=d: post["id"] in timeline_ids(d),
            timeout=20,
            what=f"alice's post on {d.data_dir.name}",
        )

    [rep] = cli_json(b.data_dir, "reply", post["id"], "bob replies about tomatoes")
    [react] = cli_json(c.data_dir, "react", post["id"], "🌱")
    assert rep["seq"] >= 1 and react["seq"] >= 1

    def thread_on_c() -> list[dict] | None:
        items = cli_json(c.data_dir, "thread", post["id"])
        return items if len(items) == 2 else None

    items = wait_for(thread_on_c, timeout=20, what="the thread on carol")
    assert items[0]["id"] == post["id"] and items[1]["reply_to"] == post["id"]
    for e in items:
        assert set(e) >= ENTRY_KEYS

    def reaction_on_alice() -> bool:
        [p] = [e for e in cli_json(a.data_dir, "timeline") if e["id"] == post["id"]]
        return p.get("reactions") == {"🌱": 1}

    wait_for(reaction_on_alice, timeout=20, what="carol's reaction on alice")
    mentions = wait_for(
        lambda: cli_json(a.data_dir, "mentions"), timeout=20, what="mentions on alice"
    )
    assert mentions[0]["id"] == rep["id"] and mentions[0]["text"] == "bob replies about tomatoes"
    found = cli_json(c.data_dir, "search", "tomatoes")
    assert [e["id"] for e in found] == [rep["id"]]
    assert (
        cli_json(c.data_dir, "search", '"about gardening"', "--author", ids["alice"])[0]["id"]
        == post["id"]
    )


def test_delete_reaches_every_node(net: dict[str, Daemon]) -> None:
    a, b, c = net["alice"], net["bob"], net["carol"]
    [post] = cli_json(a.data_dir, "post", "a post alice will regret")
    for d in (b, c):
        wait_for(lambda d=d: post["id"] in timeline_ids(d), timeout=20, what="the post to spread")
    cli_json(a.data_dir, "delete", post["id"])
    for d in net.values():

        def deleted(d: Daemon = d) -> bool:
            [e] = [
                e
                for e in cli_json(d.data_dir, "timeline", "--limit", "100")
                if e["id"] == post["id"]
            ]
            return bool(e["deleted"]) and e["text"] is None

        wait_for(deleted, timeout=20, what=f"the delete on {d.data_dir.name}")
        assert cli_json(d.data_dir, "search", "regret") == []
    # The feed still syncs after the delete.
    [later] = cli_json(a.data_dir, "post", "after the delete")
    wait_for(lambda: later["id"] in timeline_ids(c), timeout=20, what="a later post")


def test_block_hides_and_purges(net: dict[str, Daemon]) -> None:
    a, b = net["alice"], net["bob"]
    [post] = cli_json(b.data_dir, "post", "bob says something alice dislikes")
    wait_for(lambda: post["id"] in timeline_ids(a), timeout=20, what="bob's post on alice")
    [res] = cli_json(a.data_dir, "block", ident(b))
    assert res["blocked"] == ident(b)
    held = [
        e for e in cli_json(a.data_dir, "feed", ident(b), "--limit", "100") if e["id"] == post["id"]
    ]
    assert all(e["text"] is None for e in held)
    assert cli_json(a.data_dir, "search", "dislikes") == []
    cli_json(a.data_dir, "unblock", ident(b))


def test_human_errors_are_one_line(net: dict[str, Daemon], tmp_path: Path) -> None:
    a = net["alice"]
    bad = run_cli(a.data_dir, "follow", "p2ps1notanidentity", check=False)
    assert (
        bad.returncode != 0 and bad.stderr.count("\n") == 1 and "not a valid identity" in bad.stderr
    )
    long = run_cli(a.data_dir, "post", "x" * 2001, check=False)
    assert long.returncode != 0 and "2000" in long.stderr
    down = run_cli(tmp_path, "timeline", check=False)
    assert (
        down.returncode != 0
        and str(tmp_path / "api.sock") in down.stderr
        and "daemon" in down.stderr
    )


def test_demo_exits_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "p2psocial", "--no-color", "demo"],
        capture_output=True,
        text=True,
        timeout=90,
        env=cli_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Converged" in proc.stdout


def test_demo_ctrl_c_cleans_up(tmp_path: Path) -> None:
    import signal
    import time

    env = dict(cli_env(), TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2psocial", "--no-color", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Starting 4 daemons" in line:
            break
    time.sleep(0.5)  # daemons are starting: the demo needs well over a second for that
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert not any(p.name.startswith("p2psocial-demo-") for p in tmp_path.iterdir())
    # No daemon of the demo is left running.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps


def test_profile_set_and_show(net: dict[str, Daemon]) -> None:
    a, b = net["alice"], net["bob"]
    [res] = cli_json(a.data_dir, "profile", "set", "--name", "Alice", "--bio", "gardener")
    assert {"id", "seq"} <= set(res)
    [mine] = cli_json(a.data_dir, "profile")
    assert (mine["name"], mine["bio"]) == ("Alice", "gardener")

    def seen_on_b() -> bool:
        [p] = cli_json(b.data_dir, "profile", ident(a))
        return p["name"] == "Alice"

    wait_for(seen_on_b, timeout=20, what="alice's profile on bob")
    bad = run_cli(a.data_dir, "profile", "set", check=False)
    assert bad.returncode != 0 and "--name" in bad.stderr
