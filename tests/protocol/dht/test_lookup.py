"""The lookup iterator against a simulated network: α in flight, no rounds, true k closest."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.dht import (
    Contact,
    DisjointLookup,
    Finished,
    Lookup,
    Query,
    RoutingTable,
    Waiting,
    distance,
)
from p2psocial.protocol.errors import LocalUsageError


def make_net(rng: random.Random, n: int) -> dict[bytes, RoutingTable]:
    """Every node is offered every other node, in random order, and keeps what
    its k-buckets hold: each node then knows its whole neighbourhood, which is
    what makes "the true k closest" a property Kademlia promises. (With tables
    filled from a random sample, a node near the target may simply not know
    the 11th closest, and no lookup could find it.)"""
    ids = [rng.randbytes(20) for _ in range(n)]
    port = {j: 1 + x for x, j in enumerate(ids)}  # one address per node
    tables = {i: RoutingTable(i, k=20) for i in ids}
    for i in ids:
        for j in rng.sample(ids, n):
            tables[i].add(Contact(j, "127.0.0.1", port[j]), 0.0)
    return tables


def run(
    lookup: Lookup, tables: dict[bytes, RoutingTable], dead: set[bytes], rng: random.Random
) -> Finished:
    """Answer queries in random order, several outstanding at a time."""
    in_flight: list[Contact] = []
    now = 0.0
    max_seen = 0
    while True:
        act = lookup.next(now)
        if isinstance(act, Finished):
            return act
        if isinstance(act, Query):
            in_flight.append(act.contact)
            max_seen = max(max_seen, len(in_flight))
            assert lookup.in_flight <= lookup.alpha
            continue
        assert isinstance(act, Waiting)
        assert in_flight, "waiting with nothing in flight"
        c = in_flight.pop(rng.randrange(len(in_flight)))
        if c.node_id in dead:
            lookup.on_failure(c.node_id)
        else:
            lookup.on_response(c.node_id, tables[c.node_id].closest(lookup.target))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(25, 200))
def test_lookup_finds_true_k_closest(seed: int, n: int) -> None:
    rng = random.Random(seed)
    tables = make_net(rng, n)
    ids = list(tables)
    me = ids[0]
    target = rng.randbytes(20)
    lookup = Lookup(me, target, tables[me].closest(target), k=20, alpha=3)
    res = run(lookup, tables, set(), rng)
    others = [i for i in ids if i != me]
    expect = sorted(others, key=lambda i: distance(i, target))[:20]
    assert [c.node_id for c in res.closest] == expect


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32))
def test_dead_nodes_are_skipped_and_lookup_terminates(seed: int) -> None:
    rng = random.Random(seed)
    tables = make_net(rng, 120)
    ids = list(tables)
    dead = set(rng.sample(ids[1:], 36))
    target = rng.randbytes(20)
    lookup = Lookup(ids[0], target, tables[ids[0]].closest(target))
    res = run(lookup, tables, dead, rng)
    got = [c.node_id for c in res.closest]
    ranked = sorted(ids[1:], key=lambda i: distance(i, target))
    alive = [i for i in ranked if i not in dead]
    # No dead node is reported, and no live node closer than a reported one
    # is missed. Every answer names the k closest its table holds, dead ones
    # included, so a live node can be learnt of only if fewer than k nodes
    # (live or dead) are closer: the live ones among the global k closest
    # must all be found.
    assert got == alive[: len(got)]
    assert set(ranked[:20]) - dead <= set(got)


def test_alpha_in_flight_without_rounds() -> None:
    seeds = [Contact(bytes([i]) * 20, "h", i + 1) for i in range(1, 10)]
    lookup = Lookup(bytes(20), bytes(20), seeds, k=5, alpha=3)
    asked = [lookup.next(0.0) for _ in range(3)]
    assert all(isinstance(a, Query) for a in asked)
    assert isinstance(lookup.next(0.0), Waiting)
    # One answer frees one slot at once: no waiting for the others (no lockstep).
    first = asked[0]
    assert isinstance(first, Query)
    lookup.on_response(first.contact.node_id)
    assert isinstance(lookup.next(0.0), Query)


def test_deadline_counts_as_failure() -> None:
    seeds = [Contact(bytes([1]) * 20, "h", 1)]
    lookup = Lookup(bytes(20), bytes(20), seeds, timeout=2.0)
    assert isinstance(lookup.next(0.0), Query)
    w = lookup.next(1.0)
    assert isinstance(w, Waiting) and w.until == 2.0
    res = lookup.next(2.0)
    assert isinstance(res, Finished) and res.closest == []


def test_value_lookup_stops_at_quorum() -> None:
    seeds = [Contact(bytes([i]) * 20, "h", i) for i in range(1, 30)]
    lookup = Lookup(bytes(20), bytes(20), seeds, quorum=1)
    q = lookup.next(0.0)
    assert isinstance(q, Query)
    lookup.on_response(q.contact.node_id, value=b"v", has_value=True)
    res = lookup.next(0.0)
    assert isinstance(res, Finished) and res.values == [(q.contact, b"v")]


def test_no_seeds_finishes_empty() -> None:
    res = Lookup(bytes(20), bytes(20), []).next(0.0)
    assert isinstance(res, Finished) and res.closest == []


def test_bad_parameters() -> None:
    from p2psocial.protocol.errors import LocalUsageError

    with pytest.raises(LocalUsageError):
        Lookup(bytes(20), bytes(20), [], alpha=0)


def test_slow_contact_frees_its_slot_but_is_still_awaited() -> None:
    seeds = [Contact(bytes([i]) * 20, "h", i) for i in range(1, 6)]
    lookup = Lookup(bytes(20), bytes(20), seeds, k=3, alpha=1, timeout=10.0, slow_after=1.0)
    first = lookup.next(0.0)
    assert isinstance(first, Query) and first.contact == seeds[0]
    assert isinstance(lookup.next(0.5), Waiting)
    # Past slow_after the next candidate is asked although seeds[0] is silent.
    second = lookup.next(1.0)
    assert isinstance(second, Query) and second.contact == seeds[1]
    lookup.on_response(second.contact.node_id)
    third = lookup.next(1.0)
    assert isinstance(third, Query) and third.contact == seeds[2]
    lookup.on_response(third.contact.node_id)
    # seeds[0] is among the 3 closest: the exact lookup waits for its verdict...
    w = lookup.next(2.0)
    assert isinstance(w, Waiting) and w.until == 10.0
    # ...and a late answer counts.
    lookup.on_response(seeds[0].node_id)
    res = lookup.next(3.0)
    assert isinstance(res, Finished)
    assert res.closest == seeds[:3]


def test_slow_contact_that_fails_is_replaced_in_the_result() -> None:
    seeds = [Contact(bytes([i]) * 20, "h", i) for i in range(1, 6)]
    lookup = Lookup(bytes(20), bytes(20), seeds, k=2, alpha=1, timeout=10.0, slow_after=1.0)
    assert isinstance(lookup.next(0.0), Query)
    q = lookup.next(5.0)  # seeds[0] went slow: seeds[1] is asked
    assert isinstance(q, Query) and q.contact == seeds[1]
    lookup.on_response(q.contact.node_id)
    # The window (k = 2) is seeds[0] (slow) and seeds[1] (done): wait.
    assert isinstance(lookup.next(5.0), Waiting)
    lookup.on_failure(seeds[0].node_id)
    q = lookup.next(6.0)
    assert isinstance(q, Query) and q.contact == seeds[2]
    lookup.on_response(q.contact.node_id)
    res = lookup.next(6.0)
    assert isinstance(res, Finished) and res.closest == seeds[1:3]


def test_a_get_goes_past_a_slow_contact() -> None:
    seeds = [Contact(bytes([i]) * 20, "h", i) for i in range(1, 6)]
    lookup = Lookup(
        bytes(20), bytes(20), seeds, k=3, alpha=1, timeout=10.0, slow_after=1.0, await_slow=False
    )
    first = lookup.next(0.0)
    assert isinstance(first, Query) and first.contact == seeds[0]
    assert isinstance(lookup.next(0.5), Waiting)
    # Past slow_after the next candidate is asked although seeds[0] is silent,
    # and seeds[0] no longer counts among the k closest.
    asked = []
    for now in (1.0, 1.1, 1.2):
        q = lookup.next(now)
        assert isinstance(q, Query)
        asked.append(q.contact)
        lookup.on_response(q.contact.node_id)
    assert asked == seeds[1:4]
    res = lookup.next(1.3)
    assert isinstance(res, Finished) and res.closest == seeds[1:4], "not waiting for seeds[0]"
    assert lookup.in_flight == 0


def test_a_get_counts_a_slow_contact_that_answers_while_it_runs() -> None:
    seeds = [Contact(bytes([i]) * 20, "h", i) for i in range(1, 6)]
    lookup = Lookup(
        bytes(20), bytes(20), seeds, k=2, alpha=1, timeout=10.0, slow_after=1.0, await_slow=False
    )
    assert isinstance(lookup.next(0.0), Query)
    q = lookup.next(5.0)  # seeds[0] went slow: seeds[1] is asked
    assert isinstance(q, Query) and q.contact == seeds[1]
    lookup.on_response(seeds[0].node_id)  # the late answer
    lookup.on_response(q.contact.node_id)
    res = lookup.next(5.1)
    assert isinstance(res, Finished) and res.closest == seeds[:2]


def test_patience_sets_each_contacts_slow_time() -> None:
    seeds = [Contact(bytes([i]) * 20, "h", i) for i in range(1, 4)]
    waits = {seeds[0].node_id: 0.05, seeds[1].node_id: 30.0}
    lookup = Lookup(
        bytes(20),
        bytes(20),
        seeds,
        k=3,
        alpha=1,
        timeout=10.0,
        slow_after=1.0,
        patience=lambda c: waits.get(c.node_id, 1.0),
    )
    assert isinstance(lookup.next(0.0), Query)
    w = lookup.next(0.0)
    assert isinstance(w, Waiting) and w.until == 0.05
    q = lookup.next(0.05)
    assert isinstance(q, Query) and q.contact == seeds[1]
    w = lookup.next(0.05)
    assert isinstance(w, Waiting) and w.until == 10.0, "patience is capped at the timeout"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 8), st.integers(1, 4))
def test_each_decision_matches_the_rule_stated_in_the_docstring(
    seed: int, k: int, alpha: int
) -> None:
    """An oracle that keeps every candidate's state itself: each ``next``
    asks the nearest not-contacted candidate among the k nearest non-failed
    ones while fewer than α are in flight, and finishes once those k have all
    answered (the lookup keeps its sorted lists in step with the states)."""
    rng = random.Random(seed)
    target = rng.randbytes(20)
    t = int.from_bytes(target, "big")
    pool = [Contact(rng.randbytes(20), "127.0.0.1", 1 + i) for i in range(40)]
    seeds = rng.sample(pool, 5)
    lookup = Lookup(b"\0" * 20, target, seeds, k=k, alpha=alpha, max_candidates=1000)
    state = {c.node_id: "new" for c in seeds}
    dist = {c.node_id: c.n ^ t for c in pool}
    waiting: list[bytes] = []
    for _ in range(200):
        window = sorted((i for i in state if state[i] != "failed"), key=dist.__getitem__)[:k]
        fresh = [i for i in window if state[i] == "new"]
        act = lookup.next(0.0)
        if all(state[i] == "done" for i in window) or (not waiting and not fresh):
            assert isinstance(act, Finished)
            want = [i for i in sorted(state, key=dist.__getitem__) if state[i] == "done"][:k]
            assert [c.node_id for c in act.closest] == want
            return
        if fresh and len(waiting) < alpha:
            assert isinstance(act, Query) and act.contact.node_id == fresh[0]
            state[fresh[0]] = "waiting"
            waiting.append(fresh[0])
            continue
        assert isinstance(act, Waiting)
        nid = waiting.pop(rng.randrange(len(waiting)))
        if rng.random() < 0.3:
            lookup.on_failure(nid)
            state[nid] = "failed"
        else:
            named = rng.sample(pool, rng.randrange(6))
            lookup.on_response(nid, named)
            state[nid] = "done"
            for c in named:
                state.setdefault(c.node_id, "new")
    raise AssertionError("the lookup did not finish")


def _wide(host: str) -> tuple[str | None, str | None]:
    return (None, ".".join(host.split(".")[:2]) if host != "10.0.0.1" else None)


def test_at_most_group_limit_candidates_of_one_group_are_admitted() -> None:
    rng = random.Random(9)
    target = rng.randbytes(20)
    block = [Contact(rng.randbytes(20), f"203.0.{i}.1", 4000) for i in range(6)]
    others = [Contact(rng.randbytes(20), f"198.{i}.0.1", 4000) for i in range(4)]
    ungrouped = [Contact(rng.randbytes(20), "10.0.0.1", 4000 + i) for i in range(5)]
    lookup = Lookup(
        bytes(20), target, [block[0], others[0]], k=20, alpha=1, groups=_wide, group_limit=3
    )
    first = lookup.next(0.0)
    assert isinstance(first, Query)
    # An answer naming five more of the block, and more of everyone else.
    lookup.on_response(first.contact.node_id, [*block[1:], *others[1:], *ungrouped])
    asked = {first.contact.node_id}
    while isinstance(act := lookup.next(0.0), Query):
        asked.add(act.contact.node_id)
        lookup.on_response(act.contact.node_id, [])
    assert isinstance(act, Finished)
    in_block = [c for c in act.closest if c.host.startswith("203.0.")]
    # The seed and the first two the answer named, in the order heard of.
    assert in_block and {c.node_id for c in in_block} == {c.node_id for c in block[:3]}
    assert not asked & {c.node_id for c in block[3:]}
    assert lookup.refused == 3
    # Other groups, and addresses with no group, are not held back.
    assert {c.node_id for c in [*others, *ungrouped]} <= {c.node_id for c in act.closest}


def test_without_groups_every_candidate_is_admitted() -> None:
    rng = random.Random(9)
    block = [Contact(rng.randbytes(20), f"203.0.{i}.1", 4000) for i in range(12)]
    lookup = Lookup(bytes(20), rng.randbytes(20), block, k=20, alpha=20)
    while isinstance(act := lookup.next(0.0), Query):
        lookup.on_response(act.contact.node_id, [])
    assert isinstance(act, Finished) and len(act.closest) == 12 and lookup.refused == 0


def _drive(lookup: DisjointLookup, answer: Any, rng: random.Random) -> tuple[Finished, list[bytes]]:
    """Answer a lookup's queries in random order; (result, every node asked).

    ``answer`` gives (nodes, value), or None for a node that does not answer.
    """
    asked: list[bytes] = []
    in_flight: list[Contact] = []
    while True:
        act = lookup.next(0.0)
        if isinstance(act, Finished):
            return act, asked
        if isinstance(act, Query):
            asked.append(act.contact.node_id)
            in_flight.append(act.contact)
            continue
        c = in_flight.pop(rng.randrange(len(in_flight)))
        reply = answer(c)
        if reply is None:
            lookup.on_failure(c.node_id)
            continue
        nodes, value = reply
        lookup.on_response(c.node_id, nodes, value=value, has_value=value is not None)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 4))
def test_disjoint_paths_never_ask_a_node_twice_and_find_what_one_path_finds(
    seed: int, paths: int
) -> None:
    rng = random.Random(seed)
    tables = make_net(rng, 120)
    me = next(iter(tables))
    target = rng.randbytes(20)
    holders = set(sorted(tables, key=lambda i: distance(i, target))[1:8])

    def answer(c: Contact) -> tuple[list[Contact], object]:
        return tables[c.node_id].closest(target), ("v" if c.node_id in holders else None)

    lookup = DisjointLookup(me, target, tables[me].closest(target), paths=paths, k=20, alpha=3)
    res, asked = _drive(lookup, answer, rng)
    assert len(asked) == len(set(asked)) == lookup.queries
    assert len(res.closest) == 20 and len({c.node_id for c in res.closest}) == 20
    assert set(c.node_id for c in res.closest) <= set(asked)
    # Holders near the target answer some path: the values come through.
    assert res.values and {c.node_id for c, _ in res.values} <= holders


def test_a_path_that_meets_an_adversary_does_not_steer_the_others() -> None:
    rng = random.Random(3)
    target = bytes(20)
    # Six seeds, nearest first: paths 0, 1, 2, 0, 1, 2.
    seeds = sorted(
        (Contact(rng.randbytes(20), "127.0.0.1", 5000 + i) for i in range(6)),
        key=lambda c: distance(c.node_id, target),
    )
    fakes = [Contact(bytes(19) + bytes([i]), "127.0.0.1", 6000 + i) for i in range(1, 21)]

    def answer(c: Contact) -> tuple[list[Contact], object]:
        # The nearest seed is an adversary: it names made-up nodes nearer
        # than anyone, and the other paths' seeds.
        if c.node_id == seeds[0].node_id:
            return [*fakes, *seeds[1:]], None
        if c in fakes:
            return fakes, None
        return [], ("v" if c.node_id == seeds[2].node_id else None)

    lookup = DisjointLookup(bytes([255]) * 20, target, seeds, paths=3, k=4, alpha=1)
    res, asked = _drive(lookup, answer, rng)
    assert len(asked) == len(set(asked))
    # The adversary's path is all fakes; the two other paths keep their own
    # nodes and take turns in the result with it.
    assert [c in fakes for c in res.closest] == [True, False, False, True]
    assert [c.node_id for c, _ in res.values] == [seeds[2].node_id]


def test_one_path_is_a_plain_lookup() -> None:
    rng = random.Random(4)
    tables = make_net(rng, 80)
    me = next(iter(tables))
    target = rng.randbytes(20)
    plain = run(Lookup(me, target, tables[me].closest(target)), tables, set(), random.Random(1))
    one = DisjointLookup(me, target, tables[me].closest(target), paths=1)
    got, _ = _drive(one, lambda c: (tables[c.node_id].closest(target), None), random.Random(1))
    assert [c.node_id for c in got.closest] == [c.node_id for c in plain.closest]


# -- informative answers (spec/dht.md §8: who earns a table slot) ------------------


def _c(i: int, host: str | None = None) -> Contact:
    """A contact with id ``i`` repeated, alone in its /16 unless ``host`` is given."""
    return Contact(bytes([i]) * 20, host or f"198.{i}.0.1", 4000)


ME = bytes(20)


@pytest.mark.parametrize(
    ("named", "informative"),
    [
        ([], False),  # named nobody
        ([_c(1), _c(2)], False),  # only seeds
        ([_c(3, "203.0.0.3")], False),  # the responder itself, already a candidate
        ([Contact(ME, "198.0.0.1", 3999)], False),  # only us
        ([Contact(b"\x07" * 19, "198.7.0.1", 1)], False),  # a malformed id
        ([_c(4, "203.0.0.4")], False),  # new, but its /16 (seed 3's) is at its limit
        ([_c(1), _c(5)], True),  # a seed and a new one
        ([_c(4, "203.0.0.4"), _c(6)], True),  # one refused, one admitted
    ],
)
def test_an_answer_is_informative_iff_it_names_a_candidate_not_heard_of(
    named: list[Contact], informative: bool
) -> None:
    seeds = [_c(1), _c(2), _c(3, "203.0.0.3")]
    lookup = Lookup(
        ME, bytes([9]) * 20, seeds, alpha=3, groups=_wide, group_limit=1, small_network=0
    )
    assert isinstance(lookup.next(0.0), Query)
    assert lookup.on_response(_c(3).node_id, named) is informative


def test_in_a_network_smaller_than_a_bucket_every_answer_is_informative() -> None:
    # Six nodes: the first answer names all the others, and the table needs each.
    for cls in (Lookup, DisjointLookup):
        lookup = cls(ME, bytes([9]) * 20, [_c(1)], alpha=1, small_network=20)
        assert isinstance(q := lookup.next(0.0), Query)
        assert lookup.on_response(q.contact.node_id, [_c(i) for i in range(2, 6)]) is True
        while isinstance(q := lookup.next(0.0), Query):
            assert lookup.on_response(q.contact.node_id, [_c(i) for i in range(1, 6)]) is True


def test_an_answer_after_the_end_or_from_a_stranger_is_not_informative() -> None:
    lookup = Lookup(ME, bytes([9]) * 20, [_c(1)], k=1, small_network=0)
    q = lookup.next(0.0)
    assert isinstance(q, Query)
    assert lookup.on_response(_c(8).node_id, [_c(9)]) is False  # never asked
    assert lookup.on_response(_c(1).node_id, []) is False
    assert isinstance(lookup.next(0.0), Finished)
    assert lookup.on_response(_c(1).node_id, [_c(9)]) is False


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 3]))
def test_informative_means_the_candidates_grew(seed: int, paths: int) -> None:
    """Over any run, an answer is informative exactly when it names an id no
    path had heard of (seeds included): a clique answering with the same
    members is informative once, however many of them are asked."""
    rng = random.Random(seed)
    pool = [Contact(rng.randbytes(20), f"198.{i}.0.1", 4000) for i in range(60)]
    clique = pool[:10]
    seeds = rng.sample(pool, 8)
    lookup = DisjointLookup(
        ME, rng.randbytes(20), seeds, paths=paths, k=8, alpha=2, small_network=0
    )
    heard = {c.node_id for c in seeds}
    clique_informative = 0
    while isinstance(act := lookup.next(0.0), Query):
        c = act.contact
        named = clique if c in clique else rng.sample(pool, rng.randrange(6))
        expect = any(x.node_id not in heard for x in named)
        heard |= {x.node_id for x in named}
        got = lookup.on_response(c.node_id, named)
        assert got is expect
        clique_informative += got and c in clique
    assert isinstance(act, Finished)
    assert clique_informative <= 1


def test_disjoint_paths_admit_at_most_group_limit_of_one_group_over_all_paths() -> None:
    rng = random.Random(4)
    block = [Contact(rng.randbytes(20), f"203.0.{i}.1", 4000) for i in range(12)]
    seeds = [Contact(rng.randbytes(20), f"198.{i}.0.1", 4000) for i in range(3)]
    lookup = DisjointLookup(ME, rng.randbytes(20), seeds, paths=3, groups=_wide, group_limit=3)
    while isinstance(act := lookup.next(0.0), Query):
        # Each seed (one per path) names four of the block no other path holds.
        i = seeds.index(act.contact) if act.contact in seeds else None
        lookup.on_response(act.contact.node_id, [] if i is None else block[4 * i : 4 * i + 4])
    assert isinstance(act, Finished)
    # Three of the block over all paths, not three per path.
    assert sum(c.host.startswith("203.0.") for c in act.closest) == 3
    assert lookup.refused == 12 - 3


@pytest.mark.parametrize("first_with_value", [True, False])
def test_a_get_over_paths_ends_with_the_first_path_that_found_the_value(
    first_with_value: bool,
) -> None:
    seeds = [_c(i) for i in (1, 2, 3)]  # one per path
    lookup = DisjointLookup(
        ME, bytes(20), seeds, paths=3, k=1, alpha=1, first_with_value=first_with_value
    )
    asked = [lookup.next(0.0) for _ in range(3)]
    assert all(isinstance(q, Query) for q in asked)
    # Path 0's only node holds the value; the other two paths are slow.
    lookup.on_response(_c(1).node_id, value=b"v", has_value=True)
    act = lookup.next(0.0)
    if first_with_value:
        assert isinstance(act, Finished) and act.values == [(_c(1), b"v")]
    else:
        assert isinstance(act, Waiting)
        lookup.on_response(_c(2).node_id)
        lookup.on_response(_c(3).node_id)
        assert isinstance(lookup.next(0.0), Finished)


def test_a_path_that_ends_without_the_value_does_not_end_a_get() -> None:
    lookup = DisjointLookup(ME, bytes(20), [_c(1), _c(2)], paths=2, k=1, first_with_value=True)
    assert isinstance(lookup.next(0.0), Query) and isinstance(lookup.next(0.0), Query)
    lookup.on_response(_c(1).node_id)  # path 0 ends empty-handed (an eclipse, say)
    assert isinstance(lookup.next(0.0), Waiting)
    lookup.on_response(_c(2).node_id, value=b"v", has_value=True)
    act = lookup.next(0.0)
    assert isinstance(act, Finished) and act.values == [(_c(2), b"v")]


# -- hedged gets (spec/dht.md §8: path 0 first, the others on a setback) -----------


def _hedged(**kw: Any) -> DisjointLookup:
    """Three paths, one seed each (_c(1) path 0, _c(2) path 1, _c(3) path 2)."""
    args: dict[str, Any] = {"paths": 3, "k": 1, "alpha": 1, "first_with_value": True}
    args["hedge_after"] = 1.0
    args.update(kw)
    return DisjointLookup(ME, bytes(20), [_c(i) for i in (1, 2, 3)], **args)


def test_a_hedged_get_that_path_0_answers_asks_no_other_path() -> None:
    lookup = _hedged()
    act = lookup.next(0.0)
    assert isinstance(act, Query) and act.contact == _c(1)
    # Path 0 alone runs: the wait ends at the hedge time at the latest.
    act = lookup.next(0.1)
    assert isinstance(act, Waiting) and act.until == 1.0
    lookup.on_response(_c(1).node_id, value=b"v", has_value=True)
    act = lookup.next(0.2)
    assert isinstance(act, Finished) and act.values == [(_c(1), b"v")]
    assert lookup.queries == 1 and not lookup.hedged


def _setback(lookup: DisjointLookup, how: str) -> float:
    """Give path 0's query the setback ``how``; the time of the next call."""
    if how == "failure":
        lookup.on_failure(_c(1).node_id)
        return 0.1
    if how == "empty":  # path 0 ends without the value (an eclipse, say)
        lookup.on_response(_c(1).node_id)
        return 0.1
    if how == "slow":  # unanswered past its patience (0.5 s here)
        return 0.6
    assert how == "hedge time"  # no setback, but path 0 ran its hedge time
    return 1.0


@pytest.mark.parametrize("how", ["failure", "empty", "slow", "hedge time"])
def test_a_setback_of_path_0_starts_every_other_path(how: str) -> None:
    lookup = _hedged(slow_after=0.5, timeout=5.0)
    assert isinstance(lookup.next(0.0), Query)
    now = _setback(lookup, how)
    second, third = lookup.next(now), lookup.next(now)
    assert isinstance(second, Query) and isinstance(third, Query)
    assert {second.contact, third.contact} == {_c(2), _c(3)}
    assert lookup.hedged and lookup.queries == 3
    lookup.on_response(_c(3).node_id, value=b"v", has_value=True)
    act = lookup.next(now)
    assert isinstance(act, Finished) and act.values == [(_c(3), b"v")]


@pytest.mark.parametrize("setbacks", [1, 2, 3])
def test_path_0_runs_alone_until_hedge_setbacks_of_its_queries_failed(setbacks: int) -> None:
    # Twelve seeds dealt over three paths: path 0 holds 1, 4, 7 and 10.
    lookup = DisjointLookup(
        ME,
        bytes(20),
        [_c(i) for i in range(1, 13)],
        paths=3,
        k=4,
        alpha=1,
        first_with_value=True,
        hedge_after=10.0,
        hedge_setbacks=setbacks,
    )
    for n in range(setbacks):
        assert not lookup.hedged
        act = lookup.next(0.0)
        assert isinstance(act, Query) and act.contact == _c(1 + 3 * n)
        lookup.on_failure(act.contact.node_id)
    # The last setback brings in the other paths, each at its nearest seed.
    acts = [lookup.next(0.0) for _ in range(3)]
    assert all(isinstance(a, Query) for a in acts)
    assert {a.contact for a in acts if isinstance(a, Query)} == {_c(1 + 3 * setbacks), _c(2), _c(3)}
    assert lookup.hedged and lookup.queries == setbacks + 3


def test_hedge_setbacks_must_be_positive() -> None:
    with pytest.raises(LocalUsageError):
        _hedged(hedge_setbacks=0)


def test_without_hedge_after_every_path_starts_at_once() -> None:
    lookup = DisjointLookup(ME, bytes(20), [_c(i) for i in (1, 2, 3)], paths=3, k=1, alpha=1)
    assert lookup.hedged
    assert [a.contact for a in (lookup.next(0.0) for _ in range(3)) if isinstance(a, Query)] == [
        _c(1),
        _c(2),
        _c(3),
    ]


def test_hedge_after_must_not_be_negative() -> None:
    with pytest.raises(LocalUsageError):
        _hedged(hedge_after=-1.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32), st.booleans())
def test_a_hedged_get_finds_what_an_unhedged_one_finds_asking_no_more(
    seed: int, dead_nearest: bool
) -> None:
    rng = random.Random(seed)
    tables = make_net(rng, 120)
    me = next(iter(tables))
    target = rng.randbytes(20)
    near = sorted(tables, key=lambda i: distance(i, target))
    holders = set(near[1:8])
    # Optionally the nearest seed is dead: path 0 fails at once, and the
    # hedge must bring the others in.
    dead = {tables[me].closest(target)[0].node_id} if dead_nearest else set()

    def answer(c: Contact) -> tuple[list[Contact], object] | None:
        if c.node_id in dead:
            return None
        return tables[c.node_id].closest(target), ("v" if c.node_id in holders else None)

    def get(hedge_after: float | None) -> DisjointLookup:
        seeds = tables[me].closest(target)
        return DisjointLookup(
            me, target, seeds, paths=3, k=5, first_with_value=True, hedge_after=hedge_after
        )

    hedged, plain = get(10.0), get(None)
    (res, asked), (res_plain, _) = (
        _drive(hedged, answer, random.Random(seed)),
        _drive(plain, answer, random.Random(seed)),
    )
    assert len(asked) == len(set(asked)) == hedged.queries
    assert res.values and {c.node_id for c, _ in res.values} <= holders
    assert bool(res_plain.values)
    assert hedged.hedged == dead_nearest
    if not dead_nearest:
        # Path 0 alone found it, with a third of the queries or so.
        assert 2 * hedged.queries <= plain.queries
