"""The simulator's scenarios: each builds a population, runs it, returns figures.

Every figure comes with the same run with one defence switched off, so the
effect of the defence shows (``bench/simulate.py`` prints them).
"""

from __future__ import annotations

import statistics
from typing import Any

from .dht import NetModel, SimDHT, SimNode
from .gossip import GossipModel, GossipSim

__all__ = [
    "availability",
    "build",
    "churn_lookups",
    "eclipse_gets",
    "post_propagation",
    "sybil_share",
]


def build(
    n: int,
    seed: int,
    model: NetModel | None = None,
    *,
    kinds: dict[str, int] | None = None,
    block: tuple[int, int] | None = (203, 0),
    honest_bootstrap: bool = False,
) -> SimDHT:
    """``n`` honest nodes (plus ``kinds``: adversaries by kind, those in one /16
    ``block``, or spread over the whole space like the honest with None),
    each joining through a random node that joined before it
    (with ``honest_bootstrap``, a random honest one: the address a user
    gives their node is one they trust)."""
    sim = SimDHT(seed, model)
    order: list[SimNode] = [sim.add_node() for _ in range(n)]
    for kind, count in (kinds or {}).items():
        order.extend(sim.add_node(kind, block) for _ in range(count))
    sim.rng.shuffle(order)
    if honest_bootstrap:
        # The first to join is honest: everyone after has an honest node to join through.
        first = next(i for i, x in enumerate(order) if x.kind == "honest")
        order.insert(0, order.pop(first))
    vias: list[SimNode] = order[:1]
    for node in order[1:]:
        sim.join(node, vias[sim.rng.randrange(len(vias))])
        if not honest_bootstrap or node.kind == "honest":
            vias.append(node)
    return sim


def _keys(sim: SimDHT, count: int) -> list[bytes]:
    return [sim.rng.randbytes(20) for _ in range(count)]


def churn_lookups(
    sim: SimDHT, *, records: int = 200, gets: int = 300, churn: float = 0.3
) -> dict[str, Any]:
    """Put ``records``, take ``churn`` of the nodes offline at once, then get
    them from random survivors; also the hops of node lookups before churn."""
    honest = sim.online_nodes("honest")
    keys = _keys(sim, records)
    stored = [sim.put(sim.rng.choice(honest), key, 1) for key in keys]
    hops = [sim.find_node(sim.rng.choice(honest), sim.rng.randbytes(20)).hops for _ in range(gets)]
    for node in sim.rng.sample(list(sim.nodes.values()), int(churn * len(sim.nodes))):
        node.online = False
    alive = sim.online_nodes("honest")
    ok, secs, queries = 0, [], []
    for _ in range(gets):
        value, res = sim.get(sim.rng.choice(alive), sim.rng.choice(keys))
        ok += value == 1
        secs.append(res.seconds)
        queries.append(res.queries)
    return {
        "stored_on_min": min(stored),
        "median_hops": statistics.median(hops),
        "lookup_success_after_churn": round(ok / gets, 4),
        "get_s_p50": round(statistics.median(secs), 3),
        "get_queries_p50": statistics.median(queries),
    }


def sybil_share(sim: SimDHT, *, victims: int = 50, lookups: int = 100) -> dict[str, Any]:
    """The share of honest victims' tables, and of the k closest sets their
    lookups return, held by sybils."""
    honest = sim.online_nodes("honest")
    sample = sim.rng.sample(honest, min(victims, len(honest)))
    tables = statistics.mean(sim.table_share(v, "sybil") for v in sample)
    hits = total = 0
    for _ in range(lookups):
        res = sim.find_node(sim.rng.choice(sample), sim.rng.randbytes(20))
        hits += sum(1 for c in res.closest if sim.nodes[c.node_id].kind == "sybil")
        total += len(res.closest)
    population = sum(1 for x in sim.nodes.values() if x.kind == "sybil") / len(sim.nodes)
    return {
        "population_share": round(population, 3),
        "table_share": round(tables, 3),
        "closest_share": round(hits / max(total, 1), 3),
    }


def availability(
    sim: SimDHT,
    *,
    records: int = 100,
    hours: int = 24,
    republish: bool = True,
    offline_per_hour: float = 0.2,
    online_per_hour: float = 0.4,
    depart_per_hour: float = 0.05,
    gets_per_hour: int = 50,
) -> dict[str, Any]:
    """Records over ``hours`` of churn, republished hourly by one online
    holder each (spec/dht.md §9) or not at all; the fraction of hourly gets
    that find them.

    Each hour a node goes offline with ``offline_per_hour`` and comes back
    with ``online_per_hour`` (about two thirds are online), and leaves for
    good with ``depart_per_hour``, replaced by a newcomer with an empty
    store, so the closest nodes to a key drift away from its first holders.
    """
    honest = sim.online_nodes("honest")
    keys = _keys(sim, records)
    for key in keys:
        sim.put(sim.rng.choice(honest), key, 1)
    ok = total = 0
    worst = 1.0
    for _hour in range(hours):
        leaving = [
            x
            for x in sim.nodes.values()
            if x.kind == "honest" and sim.rng.random() < depart_per_hour
        ]
        back: list[SimNode] = []
        for node in list(sim.nodes.values()):
            if node.online and sim.rng.random() < offline_per_hour:
                node.online = False
            elif not node.online and sim.rng.random() < online_per_hour:
                node.online = True
                back.append(node)
        for node in leaving:
            node.online = False
            node.records.clear()
            del sim.nodes[node.node_id]
        alive = sim.online_nodes()
        for _ in leaving:
            sim.join(sim.add_node(), sim.rng.choice(alive))
        for node in back:
            # A restarted node looks itself up again (the real node's join
            # from its saved contacts), so the others learn it is back.
            if node.node_id in sim.nodes:
                sim.find_node(node, node.node_id)
        if republish:
            # Each key's online holders, in creation order (one pass over the
            # stores; a put changes only its own key's holders).
            holding: dict[bytes, list[SimNode]] = {key: [] for key in keys}
            for x in sim.online_nodes():
                for key in x.records:
                    if key in holding:
                        holding[key].append(x)
            for key in keys:
                holders = holding[key]
                if holders:
                    sim.put(sim.rng.choice(holders), key, 1)
        alive = sim.online_nodes("honest")
        hour_ok = 0
        for _ in range(gets_per_hour):
            value, _res = sim.get(sim.rng.choice(alive), sim.rng.choice(keys))
            hour_ok += value == 1
        ok += hour_ok
        total += gets_per_hour
        worst = min(worst, hour_ok / gets_per_hour)
    return {"availability": round(ok / total, 4), "worst_hour": round(worst, 4)}


def eclipse_gets(sim: SimDHT, *, records: int = 200, gets: int = 300) -> dict[str, Any]:
    """Records put by honest nodes, then got by honest nodes, with the eclipse
    nodes of the population answering every lookup with each other only."""
    honest = sim.online_nodes("honest")
    keys = _keys(sim, records)
    for key in keys:
        sim.put(sim.rng.choice(honest), key, 1)
    ok = sum(sim.get(sim.rng.choice(honest), sim.rng.choice(keys))[0] == 1 for _ in range(gets))
    share = sum(1 for x in sim.nodes.values() if x.kind == "eclipse") / len(sim.nodes)
    return {"eclipse_share": round(share, 3), "record_get_success": round(ok / gets, 4)}


def post_propagation(
    n: int, seed: int, *, ebt: bool = True, invalid: float = 0.0, **model: Any
) -> dict[str, Any]:
    """Posts of sampled authors spreading to their followers over gossip links
    (:mod:`.gossip`), with sender selection (capability ebt) on or off, and a
    share ``invalid`` of nodes serving invalid entries; ``model`` sets any
    other :class:`~.gossip.GossipModel` field."""
    return GossipSim(n, seed, GossipModel(ebt=ebt, invalid=invalid, **model)).run()
