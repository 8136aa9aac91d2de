"""A fork reaches two real daemons by replication, and their users are told.

Daemons publish only as their own identity, so the forking author's two
histories are written into each node's database before it starts (as if each
had replicated one of them earlier). From then on it is all real: both follow
the author through the CLI, link, and the fork is found, proved and shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.forks import make_fork, seed
from tests.daemons import Daemon, cli_json, run_cli, wait_for

pytestmark = pytest.mark.slow


def forked(d: Daemon) -> list[dict[str, Any]]:
    [st] = cli_json(d.data_dir, "status")
    return list(st["forks"]) if st["forked_feeds"] else []


def test_a_fork_found_by_replication_is_shown_to_the_user(tmp_path: Path) -> None:
    fork = make_fork()
    a = Daemon(tmp_path / "a")
    a.init()
    seed(a.data_dir / "node.db", fork.common + fork.x)
    with a:
        a.start()
        b = Daemon(tmp_path / "b", bootstrap=[a.info["dht"]])
        b.init()
        seed(b.data_dir / "node.db", fork.common + fork.y)
        with b:
            b.start()
            for d in (a, b):
                assert forked(d) == []
                cli_json(d.data_dir, "follow", fork.identity)
            cli_json(a.data_dir, "connect", b.addr("peer"))
            expected = [{"identity": fork.identity, "fork_seq": 3}]
            for d in (a, b):
                wait_for(lambda d=d: forked(d) == expected, timeout=20, what="the fork on both")

            # Each node keeps what it held, and takes nothing at or above the
            # fork from the other: a's seq 3 is x, b's are y (y 4 it held before).
            records = cli_json(a.data_dir, "feed", fork.identity)
            assert [r["id"] for r in records] == [*fork.common_ids, *fork.x_ids][::-1]
            assert all(r["author_forked"] and r["author_fork_seq"] == 3 for r in records)
            shown = run_cli(b.data_dir, "feed", fork.identity)
            assert "signed two different entries at seq 3" in shown.stderr
            assert all(i in shown.stdout for i in fork.y_ids) and fork.x_ids[0] not in shown.stdout
            [why] = cli_json(b.data_dir, "explain", fork.common_ids[0])
            assert why["author_forked"] is True
            assert any("frozen at seq 3" in w for w in why["why"])
            [why] = cli_json(b.data_dir, "explain", fork.y_ids[1])
            assert any("above the fork" in w for w in why["why"])
            assert "forked    1" in run_cli(a.data_dir, "status").stdout
