"""A small, fast slice of the gossip simulator (bench/simulate.py runs it at
1,000-10,000 nodes): the same seed gives the same figures, sender selection
(capability ebt) cuts the redundancy against the same run without it, every
follower a path of links joins to the author is reached, and peers serving
invalid entries are dropped without stopping the posts; the swarm lookups' island
check and relays reach every online follower."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import p2psocial
from p2psocial.sim import GossipModel, GossipSim
from p2psocial.sim.scenarios import post_propagation

N = 300
SMALL: dict[str, Any] = {"authors": 15, "posts_per_author": 4}


def test_the_same_seed_gives_the_same_figures() -> None:
    a = post_propagation(N, 3, **SMALL)
    assert a == post_propagation(N, 3, **SMALL)
    assert a != post_propagation(N, 4, **SMALL), "another seed, another network"


def test_the_figures_do_not_depend_on_the_hash_seed() -> None:
    """bench/simulate.py runs each scenario in a process of its own: nothing
    may follow the hash order of byte strings."""
    code = (
        "from p2psocial.sim.scenarios import post_propagation;"
        "print(post_propagation(120, 5, authors=5, posts_per_author=3))"
    )
    root = str(Path(p2psocial.__file__).parent.parent)
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": h, "PYTHONPATH": root},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for h in ("1", "2")
    }
    assert len(outs) == 1, outs


def test_ebt_cuts_redundancy_and_every_reachable_follower_is_reached() -> None:
    on = post_propagation(N, 1, ebt=True, **SMALL)
    off = post_propagation(N, 1, ebt=False, **SMALL)
    for figures in (on, off):
        assert figures["reached_of_reachable"] == 1.0, figures
        assert figures["reached"] == figures["reachable"] >= 0.95
        assert figures["events_left"] == 0
        assert figures["latency_s_p99"] < 1.0
    assert on["redundancy"] <= 3.0
    # Once the first post has chosen the senders, about one copy each.
    assert on["redundancy_later_posts"] < min(on["redundancy"], 1.3)
    assert on["redundancy"] < off["redundancy"] - 0.5, (on, off)
    assert on["ebt"]["mode_standby_sent"] > 0 == off["ebt"]["mode_standby_sent"]


def test_the_sessions_count_every_delivery() -> None:
    """Redundancy comes from SyncSession.entries_delivered; the simulator's
    own count of entries sent to followers must agree with it."""
    sim = GossipSim(N, 2, GossipModel(**SMALL))
    figures = sim.run()
    counted = sum(e.session.entries_delivered for e in sim.ends)
    assert counted == figures["deliveries_counted"] > 0
    assert figures["redundancy"] == round(counted / sim.stats["stored"], 2)


def test_peers_serving_invalid_entries_are_dropped_and_posts_still_spread() -> None:
    sim = GossipSim(N, 1, GossipModel(invalid=0.1, **SMALL))
    figures = sim.run()
    assert figures["bad_nodes"] > 0
    assert figures["invalid_links_dropped"] > 0
    assert figures["reached_of_reachable"] == 1.0
    assert figures["reached"] >= 0.95
    # No honest node keeps a link to a peer that sent it an invalid entry,
    # and none is linked to a graylisted peer.
    for x in sim.nodes:
        if not x.bad:
            assert not (x.gray & x.linked), x.index
            assert all(sim.nodes[i].bad for i in x.gray)


def test_the_island_check_reaches_every_online_follower() -> None:
    """Followers whose linked holders link only among themselves never see the
    author's posts; the swarm lookups' check of the feed's head record
    (spec/sync.md §6, "Islands") dials out of such an island. Seed 3 at 600
    nodes builds a network with islands: without the check some followers
    are left out."""
    small = {"authors": 20, "posts_per_author": 3}
    on = post_propagation(600, 3, **small)
    off = post_propagation(600, 3, islands=False, **small)
    assert on["reached"] == 1.0 and on["swarm_islands"] > 0, on
    assert off["reached"] < 1.0 and off["swarm_islands"] == 0, off
    # Nodes that take no links are reached through relays: by reversal from a
    # dialler that takes links, by a punch, or over the relay itself.
    paths = on["links_by_path"]
    assert min(paths.values()) > 0, paths
    assert sum(paths.values()) == on["links"]


def test_without_relays_every_link_is_direct() -> None:
    figures = post_propagation(N, 1, relays=False, **SMALL)
    paths = figures["links_by_path"]
    assert paths["direct"] == figures["links"] > 0
    assert paths["reversed"] == paths["punched"] == paths["relayed"] == 0


def test_island_rounds_back_off_as_the_node_does() -> None:
    """The simulated swarm lookups follow the node's island rules (spec/sync.md
    §6): while a node's head of a feed stands still below the head record,
    its island rounds come 30, 60, 120 s ... apart, not at every lookup."""
    sim = GossipSim(200, 5, GossipModel(max_links=1000))
    x, feed = next(
        (x, f)
        for x in sim.nodes
        if x.online
        for f in x.wants[1:]
        if len(x.by_feed.get(f, ())) >= 2 and sim.by_key[f].online
    )
    sim.by_key[feed].head[feed] = 99  # a head record nobody linked to x can serve
    rounds = []
    for t in range(0, 240, 30):
        sim.now = float(t)
        before = sim.stats["swarm_islands"]
        sim._swarm_round(x)
        if sim.stats["swarm_islands"] > before:
            rounds.append(t)
    assert rounds == [0, 30, 90, 210]
