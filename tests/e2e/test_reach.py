"""Real daemons on 127.0.0.1: ``peers`` shows each link's path, and a daemon
that reaches no one says so at WARNING, once, with the reason (the check
interval shortened through ``P2PSOCIAL_TEST_CONNECTIVITY_INTERVAL``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from p2psocial.node.connectivity import CONNECTIVITY_INTERVAL_ENV
from tests.daemons import Daemon, cli_env, cli_json, run_cli, wait_for

pytestmark = pytest.mark.slow

WARNING = re.compile(r"^\S+ \S+ WARNING p2psocial\.daemon: (?P<msg>.*)$", re.MULTILINE)


def env() -> dict[str, str]:
    return {**cli_env(), CONNECTIVITY_INTERVAL_ENV: "0.2"}


def warnings(d: Daemon) -> list[str]:
    return [m["msg"] for m in WARNING.finditer(d.log())]


def checks(d: Daemon) -> int:
    out = run_cli(d.data_dir, "--json", "statistics").stdout
    return int(json.loads(out)["connectivity"].get("connectivity_checks", 0))


def test_a_lone_daemon_warns_once_then_a_link_clears_it_and_peers_show_the_path(
    tmp_path: Path,
) -> None:
    with Daemon(tmp_path / "a", env=env()) as a:
        a.init()
        a.start()
        wait_for(lambda: warnings(a), 20, 0.1, "a warning in a's log")
        wait_for(lambda: checks(a) >= 15, 20, 0.1, "fifteen checks")
        lone = warnings(a)
        assert len(lone) == 1, lone
        assert "reaching no other node: no bootstrap address is configured" in lone[0]
        with Daemon(tmp_path / "b", peers=[a.addr("peer")], env=env()) as b:
            b.init()
            b.start()
            wait_for(lambda: "connectivity is fine again" in a.log(), 20, 0.1, "the all-clear")
            [b_view] = wait_for(lambda: cli_json(b.data_dir, "peers"), 20, 0.1, "b's link")
            assert (b_view["direction"], b_view["path"]) == ("outbound", "direct")
            [a_view] = cli_json(a.data_dir, "peers")
            assert (a_view["direction"], a_view["path"]) == ("inbound", "direct")
            shown = run_cli(b.data_dir, "peers").stdout
            assert f"  outbound  direct  node {a.info['node_id'][:16]}" in shown, shown
            assert warnings(a) == lone
        # b gone, a is alone again: a new change, so one more line.
        wait_for(lambda: len(warnings(a)) == 2, 20, 0.1, "the second warning")


def test_a_daemon_whose_bootstrap_does_not_answer_says_so(tmp_path: Path) -> None:
    # UDP port 9 on loopback: nothing listens, so the pings meet ICMP errors.
    with Daemon(tmp_path / "c", bootstrap=["127.0.0.1:9"], env=env()) as c:
        c.init()
        c.start()
        wait_for(lambda: warnings(c), 30, 0.1, "a warning in c's log")
        [msg] = warnings(c)
        assert "reaching no other node: no bootstrap or peer address answered" in msg
