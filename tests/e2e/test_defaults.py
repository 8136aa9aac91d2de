"""Daemons run the way a user following the README runs them.

The rest of the suite starts daemons with ``--listen 127.0.0.1 --port 0
--dht-port 0`` and ``--data-dir``; users pass none of these. Each place where
the two paths differ gets a test on the user's path here:

* the listen address: the default is the wildcard, 0.0.0.0;
* the ports: unset, so the config's (0, any free port) applies;
* ``--bootstrap``: given on the first start, not on the next;
* the listen address from config.toml, with no ``--listen`` on the command line;
* the data dir: the platform's default, with no ``--data-dir`` and no
  ``P2PSOCIAL_HOME``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2psocial
from p2psocial.client import spawn_daemon
from tests.daemons import READY_PREFIX, Daemon, cli_env, wait_for

pytestmark = pytest.mark.slow

#: The bound the default path must meet (issue: B links to A within 2 s of
#: ``follow``, as it does with an explicit listen address).
FOLLOW_TO_LINK_S = 2.0


def node_id(d: Daemon) -> str:
    return d.info["node_id"]


def linked_to(client: p2psocial.Client, other: Daemon) -> bool:
    return any(p["node_id"] == node_id(other) for p in client.peers()["items"])


@pytest.fixture
def user_net(tmp_path: Path) -> Iterator[dict[str, Daemon]]:
    """A bootstrap node and two users' nodes, all on the default listen address and ports."""
    boot = Daemon(tmp_path / "boot", as_user=True)
    boot.init()
    boot.start()
    nodes = {"boot": boot}
    try:
        for name in ("a", "b"):
            d = Daemon(tmp_path / name, bootstrap=[boot.addr("dht")], as_user=True)
            d.init()
            d.start()
            nodes[name] = d
        yield nodes
    finally:
        for d in nodes.values():
            d.__exit__(None, None, None)


def follow_and_time_link(follower: Daemon, author: Daemon, author_identity: str) -> float:
    with p2psocial.connect(follower.data_dir) as client:
        t0 = time.monotonic()
        client.follow(identity=author_identity)
        wait_for(
            lambda: linked_to(client, author),
            timeout=FOLLOW_TO_LINK_S,
            interval=0.02,
            what=f"{follower.data_dir.name} linked to {author.data_dir.name} after follow",
        )
        return time.monotonic() - t0


def test_wildcard_listen_links_within_bound_after_follow(user_net: dict[str, Daemon]) -> None:
    a, b = user_net["a"], user_net["b"]
    assert a.info["peer"].startswith("0.0.0.0:"), "the default listen address is the wildcard"
    ident_a = a.info["identity"]
    follow_and_time_link(b, a, ident_a)
    # And the link carries A's next post to B's timeline.
    with p2psocial.connect(a.data_dir) as ca, p2psocial.connect(b.data_dir) as cb:
        posted = ca.post(text="first post after being followed")
        wait_for(
            lambda: posted["id"] in {e["id"] for e in cb.timeline(limit=20)["items"]},
            timeout=5,
            what="A's post on B's timeline",
        )


def test_restart_without_bootstrap_rejoins_through_saved_contacts(
    user_net: dict[str, Daemon], tmp_path: Path
) -> None:
    boot, b = user_net["boot"], user_net["b"]
    # B saves its DHT contacts when it stops. Restart it as a user would:
    # `--bootstrap` is not given again.
    before = dict(b.info)
    b.stop()
    b.bootstrap = []
    b.start()
    # The ports the OS chose on the first start were kept for this one, so
    # every address of B that others hold is still right.
    assert (b.info["dht"], b.info["peer"]) == (before["dht"], before["peer"])
    with Daemon(tmp_path / "c", bootstrap=[boot.addr("dht")], as_user=True) as c:
        c.init()
        c.start()
        follow_and_time_link(b, c, c.info["identity"])


def test_explicit_port_zero_is_not_remembered(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "explicit")  # --port 0 --dht-port 0, as the other tests run
    d.init()
    chosen = p2psocial.NodeConfig.load(d.data_dir)  # init picked and saved the ports
    with d:
        d.start()
    saved = p2psocial.NodeConfig.load(d.data_dir)
    assert (saved.port, saved.dht_port) == (chosen.port, chosen.dht_port)


def test_listen_address_from_config_is_used(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "cfg", as_user=True)
    d.init()
    config = d.data_dir / "config.toml"
    config.write_text('[node]\nlisten = "127.0.0.1"\n', encoding="utf-8")
    with d:
        info = d.start()
        assert info["dht"].startswith("127.0.0.1:")
        assert info["peer"].startswith("127.0.0.1:")


def test_default_data_dir_without_any_option(tmp_path: Path) -> None:
    """No --data-dir and no P2PSOCIAL_HOME: the platform's user data dir."""
    env = cli_env()
    env["HOME"] = str(tmp_path / "home")
    env["XDG_DATA_HOME"] = str(tmp_path / "home" / ".local" / "share")
    cmd = [sys.executable, "-m", "p2psocial"]
    out = subprocess.run(
        [*cmd, "--json", "init"], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    identity = json.loads(out.stdout)["identity"]
    expected_dir = tmp_path / "home" / ".local" / "share" / "p2psocial"
    assert (expected_dir / "identity.txt").read_text().strip() == identity
    log_path = tmp_path / "daemon.log"
    # No --data-dir, no --listen, no ports: the command line a user types.
    with spawn_daemon(None, listen=None, port=None, dht_port=None, env=env, log=log_path):
        ready = [ln for ln in log_path.read_text().splitlines() if ln.startswith(READY_PREFIX)]
        assert f"api={expected_dir / 'api.sock'}" in ready[0]
        status = subprocess.run(
            [*cmd, "--json", "status"], env=env, capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["identity"] == identity
