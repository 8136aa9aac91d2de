"""Two homes behind symmetric NATs, with no direct path between them, exchange
a post through a public relay (spec/sync.md §11).

Each home finds it is behind a NAT (spec/dht.md §4.4), finds the public
nodes in the DHT's relay swarm, holds reservations there and names a relay in
its swarm announces; the follower dials the author through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemons import wait_for

from . import netlab
from .conftest import NsDaemon, require_testbed, start_daemons

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NsDaemon]]:
    require_testbed()
    base: Path = tmp_path_factory.mktemp("nat-relay")
    started: dict[str, NsDaemon] = {}
    lab = netlab.Lab(kinds=("symmetric", "symmetric"))
    with lab:
        try:
            start_daemons(lab, base, started)
            yield started
        finally:
            for d in started.values():
                d.stop()
    assert lab.leftovers() == []


def _has_post(d: NsDaemon, author: str, text: str) -> bool:
    return any(e.get("text") == text for e in d.cli_json("feed", author) if "id" in e)


def test_two_symmetric_homes_exchange_a_post_through_a_public_relay(
    nodes: dict[str, NsDaemon],
) -> None:
    author, follower = nodes["symmetric"], nodes["symmetric_2"]
    publics = {nodes[n].status()["node_id"] for n in ("pub1", "pub2", "pub3")}
    for home in (author, follower):
        wait_for(
            lambda h=home: bool(h.status()["relays"]),
            timeout=90,
            interval=0.5,
            what=f"a relay reservation at {home.ip}",
        )
        assert {r["node_id"] for r in home.status()["relays"]} <= publics
    author.cli("post", "a post that only a relay can carry")
    follower.cli("follow", author.identity)
    wait_for(
        lambda: _has_post(follower, author.identity, "a post that only a relay can carry"),
        timeout=90,
        interval=0.5,
        what="the post at the other symmetric home",
    )
    author_id = author.status()["node_id"]
    [link] = [p for p in follower.cli_json("peers") if p["node_id"] == author_id]
    assert link["path"] == "relayed", link
    assert "relayed" in follower.cli("peers").stdout
    # The relay's side: it spliced a link and forwarded bytes it could not read.
    spliced = 0
    for name in ("pub1", "pub2", "pub3"):
        [stats] = nodes[name].cli_json("statistics")
        spliced += stats["replication"]["relay"].get("links_spliced", 0)
    assert spliced >= 1
