"""The iterative Kademlia lookup as a pure state machine.

Theory: the lookup keeps every candidate it has heard of, ordered by XOR
distance to the target, each in one state::

    NOT_CONTACTED --next()--> WAITING --on_response()--> SUCCEEDED
                                |  \\--on_failure() / hard deadline--> FAILED
                       slow_after passed
                                v
                              SLOW --on_response()--> SUCCEEDED
                                  \\--on_failure() / hard deadline--> FAILED

``next(now)`` hands out the closest NOT_CONTACTED candidate among the ``k``
closest non-failed ones while fewer than ``alpha`` requests are in flight. A
new request goes out as soon as any one returns: there are no lockstep rounds
(compare rust-libp2p ``ClosestPeersIter``). A late response from a candidate
already counted as failed is still accepted, since the node did answer.

The lookup is *finished* when the ``k`` closest non-failed candidates have all
answered, when nothing is left to ask and nothing is in flight, or (value
lookups) when ``quorum`` answers carried a value. Its result is the ``k``
closest candidates that answered, nearest first, and the values seen.

A request unanswered after ``slow_after`` seconds (or the ``patience`` the
caller gives for that contact, typically a round trip or two) becomes SLOW:
it stops holding one of the α slots, so the lookup asks the next candidate (a
dead contact must not stall it). It is not failed either: the caller's
retries end in on_response or on_failure. What happens next depends on
``await_slow``:

- True (an exact lookup, before storing at the k closest): a SLOW candidate
  among the k closest is still awaited, which keeps the result exact on lossy
  links while dead contacts cost only their retries.
- False (a get, which needs a few answers, not the exact set): a SLOW
  candidate no longer counts among the k closest, so the lookup may finish
  without it (compare rust-libp2p's "unresponsive" peers); an answer that
  comes while the lookup runs still counts.

``next`` takes ``now`` and fails requests past ``timeout``, so a lost
callback cannot stall a lookup.

Given ``groups`` (the routing table's address groups, spec/dht.md §7.1), a
lookup admits at most ``group_limit`` candidates of one wide group (a /16),
as many as one routing table may hold, and drops the rest of that group
unasked (``refused`` counts them). An honest answer comes from a table under
the same limit; a block of adversaries that answer with each other cannot
fill the candidates, so the lookup goes on through the others (spec/dht.md §8).

``on_response`` says whether an answer was *informative*: it named a
candidate the lookup had not heard of. The caller gives a table slot to a
responder it does not know only after such an answer, so nodes that answer
with the same clique of fellows (an eclipse spread over many address
groups, which the group limit cannot see) earn one slot per lookup, not one
per member asked (spec/dht.md §8).
"""

from __future__ import annotations

import bisect
import enum
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LocalUsageError
from .diversity import Groups
from .routing import Contact

__all__ = ["DisjointLookup", "Finished", "Lookup", "Query", "Waiting"]


class _State(enum.Enum):
    NOT_CONTACTED = 0
    WAITING = 1
    SUCCEEDED = 2
    FAILED = 3
    SLOW = 4


@dataclass(slots=True)
class _Candidate:
    contact: Contact
    dist: int
    state: _State = _State.NOT_CONTACTED
    deadline: float = 0.0
    slow_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Query:
    """Ask ``contact`` now (send the RPC), then report with on_response/on_failure."""

    contact: Contact


@dataclass(frozen=True, slots=True)
class Waiting:
    """Nothing to send; call ``next`` again when a reply comes or at ``until``."""

    until: float


@dataclass(frozen=True, slots=True)
class Finished:
    """The lookup is over."""

    #: Up to k contacts that answered, nearest to the target first.
    closest: list[Contact]
    #: (contact, value) for every answer that carried a value, in arrival order.
    values: list[tuple[Contact, Any]] = field(default_factory=list)


class Lookup:
    """One iterative lookup for ``target`` (see the module docstring).

    Args:
        own_id: our id, never queried.
        target: the 20-byte id or key sought.
        seeds: the contacts to start from (usually the table's k closest).
        k: how many closest nodes the lookup establishes.
        alpha: requests in flight at most.
        timeout: seconds after which an unanswered request counts as failed.
        slow_after: seconds after which it stops holding an α slot and
            counting among the k closest (SLOW); None means never (it holds
            the slot until ``timeout``).
        patience: if given, ``slow_after`` for one contact (say, from its
            measured round-trip time), capped at ``timeout``.
        await_slow: whether SLOW candidates among the k closest are awaited
            (see the module docstring).
        quorum: for value lookups, stop after this many answers with a value;
            None for a node lookup that always runs to completion.
        max_candidates: bound on remembered candidates (the farthest
            not-contacted ones are forgotten first).
        groups: maps a host to its address groups; None admits every candidate.
        group_limit: candidates admitted per wide group, at most.
        small_network: while fewer candidates than this were heard of (a
            network smaller than one bucket), every answer is informative
            (see :meth:`on_response`).
        group_counts: the per-group counts to admit against (default: the
            lookup's own); the paths of a DisjointLookup share one.
    """

    def __init__(
        self,
        own_id: bytes,
        target: bytes,
        seeds: Iterable[Contact],
        *,
        k: int = 20,
        alpha: int = 3,
        timeout: float = 2.0,
        slow_after: float | None = None,
        patience: Callable[[Contact], float] | None = None,
        await_slow: bool = True,
        quorum: int | None = None,
        max_candidates: int = 200,
        groups: Callable[[str], Groups] | None = None,
        group_limit: int = 10,
        small_network: int = 20,
        group_counts: Counter[str] | None = None,
    ) -> None:
        if k < 1 or alpha < 1 or (quorum is not None and quorum < 1):
            raise LocalUsageError("k, alpha and quorum must be positive")
        self.own_id = own_id
        self.target = target
        self._t = int.from_bytes(target, "big")
        self.k = k
        self.alpha = alpha
        self.timeout = timeout
        self.slow_after = timeout if slow_after is None else min(slow_after, timeout)
        self._patience = patience
        self._skip_slow = not await_slow
        self.quorum = quorum
        self.max_candidates = max(max_candidates, k)
        self._groups = groups
        self._group_limit = group_limit
        self.small_network = small_network
        #: Candidates admitted so far per wide address group (shared by the
        #: paths of one DisjointLookup).
        self._per_group: Counter[str] = Counter() if group_counts is None else group_counts
        #: Candidates dropped unasked because their group was full.
        self.refused = 0
        # Candidates by (distance, id), nearest first, in four sorted lists
        # kept in step with the states (bisect keeps each O(log n) to search):
        # every candidate; the "live" ones that count among the k closest (not
        # FAILED, and not SLOW when slow ones are skipped); the live ones not
        # yet SUCCEEDED; and the NOT_CONTACTED ones. ``next`` then needs two
        # bisections instead of a scan of the k closest.
        self._order: list[tuple[int, bytes]] = []
        self._live: list[tuple[int, bytes]] = []
        self._open: list[tuple[int, bytes]] = []
        self._fresh: list[tuple[int, bytes]] = []
        self._cands: dict[bytes, _Candidate] = {}
        self._in_flight = 0
        #: candidates WAITING or SLOW (the only ones whose timers run)
        self._pending: dict[bytes, _Candidate] = {}
        #: no pending timer fires before this (a lower bound)
        self._next_timer = float("inf")
        self._values: list[tuple[Contact, Any]] = []
        self._result: Finished | None = None
        #: Requests handed out so far (a measure of lookup cost).
        self.queries = 0
        #: Requests that went slow or failed (a DisjointLookup's hedge trigger).
        self.setbacks = 0
        self._add_all(seeds)

    # -- candidates ------------------------------------------------------------

    def _add_all(self, contacts: Iterable[Contact]) -> bool:
        """Admit the new ones among ``contacts``; whether any was admitted."""
        added = False
        for c in contacts:
            if c.node_id == self.own_id or c.node_id in self._cands or len(c.node_id) != 20:
                continue
            if self._groups is not None:
                wide = self._groups(c.host)[1]
                if wide is not None:
                    if self._per_group[wide] >= self._group_limit:
                        self.refused += 1
                        continue
                    self._per_group[wide] += 1
            key = (c.n ^ self._t, c.node_id)
            self._cands[c.node_id] = _Candidate(c, key[0])
            for sorted_list in (self._order, self._live, self._open, self._fresh):
                bisect.insort(sorted_list, key)
            added = True
        while len(self._order) > self.max_candidates:
            # Forget the farthest candidate nobody is waiting on.
            for i in range(len(self._order) - 1, -1, -1):
                cand = self._cands[self._order[i][1]]
                if cand.state is not _State.WAITING:
                    self._move(cand, cand.state, _State.FAILED)
                    del self._cands[self._order[i][1]]
                    self._pending.pop(self._order[i][1], None)
                    del self._order[i]
                    break
            else:  # pragma: no cover - needs more than max_candidates in flight
                break
        return added

    def _live_state(self, st: _State) -> bool:
        return st is not _State.FAILED and not (st is _State.SLOW and self._skip_slow)

    def _move(self, cand: _Candidate, old: _State, new: _State) -> None:
        """Keep the sorted lists in step with a state change."""
        key = (cand.dist, cand.contact.node_id)
        was_live, is_live = self._live_state(old), self._live_state(new)
        for sorted_list, was, now in (
            (self._live, was_live, is_live),
            (
                self._open,
                was_live and old is not _State.SUCCEEDED,
                is_live and new is not _State.SUCCEEDED,
            ),
            (self._fresh, old is _State.NOT_CONTACTED, new is _State.NOT_CONTACTED),
        ):
            if was and not now:
                del sorted_list[bisect.bisect_left(sorted_list, key)]
            elif now and not was:
                bisect.insort(sorted_list, key)

    def _set(self, cand: _Candidate, state: _State) -> None:
        if cand.state is _State.WAITING:
            self._in_flight -= 1
            if state is not _State.SUCCEEDED:
                self.setbacks += 1
        if state is _State.WAITING or state is _State.SLOW:
            self._pending[cand.contact.node_id] = cand
        else:
            self._pending.pop(cand.contact.node_id, None)
        self._move(cand, cand.state, state)
        cand.state = state

    # -- the iterator ----------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether ``next`` would return :class:`Finished`."""
        return self._result is not None

    @property
    def in_flight(self) -> int:
        """Requests handed out and not yet answered or failed."""
        return self._in_flight

    def next(self, now: float) -> Query | Waiting | Finished:
        """The next thing to do: ask a contact, wait, or stop.

        Args:
            now: the current time, in the same clock as the timeout.
        """
        if self._result is not None:
            return self._result
        if now >= self._next_timer:
            for cand in list(self._pending.values()):
                if cand.deadline <= now:
                    self._set(cand, _State.FAILED)
                elif cand.state is _State.WAITING and cand.slow_at <= now:
                    self._set(cand, _State.SLOW)
            self._next_timer = self._timer()
        if self.quorum is not None and len(self._values) >= self.quorum:
            return self._finish()
        # The k closest live candidates have all answered when the nearest
        # one still open ranks k-th or later among the live ones.
        live = self._live
        if not self._open or bisect.bisect_left(live, self._open[0]) >= self.k:
            return self._finish()
        fresh = self._fresh
        if fresh and self._in_flight < self.alpha and bisect.bisect_left(live, fresh[0]) < self.k:
            pick = self._cands[fresh[0][1]]
            self._set(pick, _State.WAITING)
            pick.deadline = now + self.timeout
            wait = self.slow_after
            if self._patience is not None:
                wait = min(self._patience(pick.contact), self.timeout)
            pick.slow_at = now + wait
            self._next_timer = min(self._next_timer, pick.slow_at)
            self._in_flight += 1
            self.queries += 1
            return Query(pick.contact)
        if not self._pending:
            return self._finish()
        # A lower bound: waking early only costs the caller one more call.
        return Waiting(self._next_timer)

    def _timer(self) -> float:
        """When the next pending request goes slow or fails (inf if none)."""
        return min(
            (
                c.slow_at if c.state is _State.WAITING else c.deadline
                for c in self._pending.values()
            ),
            default=float("inf"),
        )

    def on_response(
        self,
        node_id: bytes,
        contacts: Iterable[Contact] = (),
        *,
        value: Any = None,
        has_value: bool = False,
    ) -> bool:
        """``node_id`` answered, naming ``contacts`` closer to the target.

        Args:
            has_value: the answer carried ``value`` (value lookups).

        Returns:
            Whether the answer was *informative*: it named a candidate this
            lookup had not heard of (and admitted), or the lookup has heard of
            fewer than ``small_network`` candidates in all (in a network that
            small, one answer names every node, and the table needs each).
            A caller adds a responder it does not know yet to its routing
            table only after an informative answer (spec/dht.md §8): a clique
            that answers with the same members cannot earn a table slot for
            each of them.
        """
        cand = self._cands.get(node_id)
        if cand is None or self._result is not None:
            return False
        self._set(cand, _State.SUCCEEDED)
        if has_value:
            self._values.append((cand.contact, value))
        return self._add_all(contacts) or len(self._cands) < self.small_network

    def on_failure(self, node_id: bytes) -> None:
        """``node_id`` did not answer (or answered garbage)."""
        cand = self._cands.get(node_id)
        if cand is None or self._result is not None or cand.state is _State.SUCCEEDED:
            return
        self._set(cand, _State.FAILED)

    def _finish(self) -> Finished:
        closest = [
            self._cands[nid].contact
            for _, nid in self._order
            if self._cands[nid].state is _State.SUCCEEDED
        ][: self.k]
        self._result = Finished(closest, list(self._values))
        return self._result


class DisjointLookup:
    """``paths`` lookups for one target over disjoint sets of nodes (S/Kademlia).

    The seeds are dealt to the paths in turn, nearest first. Every contact
    belongs to the first path that hears of it: another path that is told of
    it later drops it, so no node is asked by two paths and an adversary met
    on one path cannot steer the others. Each path runs as a :class:`Lookup`
    (same arguments, its own ``alpha``; one count per address group for all
    paths, so a block holds at most ``group_limit`` candidates of the whole
    lookup, as of a plain one); the lookup is finished when every
    path is, or when ``quorum`` answers with a value came in over all paths.
    The result is the ``k`` nearest that answered over all paths, and every
    value seen. With ``first_with_value`` (a get), it is also finished as
    soon as one path has finished with a value: the paths that met the
    adversary end without one, and waiting for a slow path costs a get its
    latency without adding a fresher value (the put reached that path's k
    nearest). With ``paths`` = 1 it is a plain Lookup.

    With ``hedge_after`` (seconds; a get), only path 0 runs at first, and
    the others start (and from then on all run) as soon as path 0 has had
    ``hedge_setbacks`` setbacks (queries of it that went slow or failed),
    ends without a value, or has run ``hedge_after`` seconds since the
    first ``next``: a get whose
    nearest path answers promptly costs one path's queries, and one that
    meets silence or an adversary falls back to every path. None starts
    every path at once.

    It offers Lookup's interface (``next``, ``on_response``, ``on_failure``,
    ``finished``, ``in_flight``, ``queries``, ``refused``), so a driver runs
    either.
    """

    def __init__(
        self,
        own_id: bytes,
        target: bytes,
        seeds: Iterable[Contact],
        *,
        paths: int = 3,
        k: int = 20,
        quorum: int | None = None,
        small_network: int = 20,
        first_with_value: bool = False,
        hedge_after: float | None = None,
        hedge_setbacks: int = 1,
        **lookup_args: Any,
    ) -> None:
        if paths < 1:
            raise LocalUsageError("paths must be positive")
        if hedge_after is not None and hedge_after < 0:
            raise LocalUsageError("hedge_after must not be negative")
        if hedge_setbacks < 1:
            raise LocalUsageError("hedge_setbacks must be positive")
        self._hedge_after = hedge_after
        self._hedge_setbacks = hedge_setbacks
        #: Whether every path runs (always, without ``hedge_after``).
        self.hedged = hedge_after is None or paths == 1
        self._hedge_at = float("inf")
        self._small_network = small_network
        self._first_with_value = first_with_value
        self.target = target
        self.k = k
        self.quorum = quorum
        t = int.from_bytes(target, "big")
        ordered = sorted(
            (c for c in seeds if c.node_id != own_id and len(c.node_id) == 20),
            key=lambda c: c.n ^ t,
        )
        #: The path each contact heard of belongs to.
        self._owner: dict[bytes, int] = {}
        dealt: list[list[Contact]] = [[] for _ in range(paths)]
        for c in ordered:
            if c.node_id not in self._owner:
                self._owner[c.node_id] = len(self._owner) % paths
                dealt[self._owner[c.node_id]].append(c)
        # One group count for all paths: a block of addresses holds at most
        # group_limit candidates of the whole lookup, as of one path.
        shared: Counter[str] = Counter()
        self._paths = [
            Lookup(own_id, target, s, k=k, small_network=0, group_counts=shared, **lookup_args)
            for s in dealt
        ]
        self._next_path = 0
        self._result: Finished | None = None

    @property
    def finished(self) -> bool:
        """Whether ``next`` would return :class:`Finished`."""
        return self._result is not None

    @property
    def in_flight(self) -> int:
        """Requests handed out and not yet answered or failed, over all paths."""
        return sum(p.in_flight for p in self._paths)

    @property
    def queries(self) -> int:
        """Requests handed out so far, over all paths."""
        return sum(p.queries for p in self._paths)

    @property
    def refused(self) -> int:
        """Candidates dropped by the group limit, over all paths."""
        return sum(p.refused for p in self._paths)

    def next(self, now: float) -> Query | Waiting | Finished:
        """The next thing to do, taking the paths in turn."""
        if self._result is not None:
            return self._result
        if self.quorum is not None and self._value_count() >= self.quorum:
            return self._finish()
        if not self.hedged:
            lead = self._lead(now)
            if lead is not None:
                return lead
        until = float("inf")
        running = False
        n = len(self._paths)
        for step in range(n):
            i = (self._next_path + step) % n
            act = self._paths[i].next(now)
            if isinstance(act, Query):
                self._next_path = (i + 1) % n
                return act
            if isinstance(act, Waiting):
                running = True
                until = min(until, act.until)
            elif self._first_with_value and act.values:
                # This path reached the closest nodes it could find and they
                # held the value: a get needs no more (the others cost time).
                return self._finish()
        if not running:
            return self._finish()
        return Waiting(until)

    def _lead(self, now: float) -> Query | Waiting | Finished | None:
        """Path 0's next action while it runs alone; None once every path runs."""
        if self._hedge_after is not None and self._hedge_at == float("inf"):
            self._hedge_at = now + self._hedge_after
        lead = self._paths[0]
        if lead.setbacks < self._hedge_setbacks and now < self._hedge_at:
            act = lead.next(now)
            if isinstance(act, Query):
                return act
            if isinstance(act, Waiting):
                if lead.setbacks < self._hedge_setbacks:
                    return Waiting(min(act.until, self._hedge_at))
            elif self._first_with_value and act.values:
                return self._finish()
        self.hedged = True
        return None

    def _value_count(self) -> int:
        return sum(len(p._values) for p in self._paths)

    def on_response(
        self,
        node_id: bytes,
        contacts: Iterable[Contact] = (),
        *,
        value: Any = None,
        has_value: bool = False,
    ) -> bool:
        """``node_id`` answered: its path takes the contacts no other path holds.

        Returns:
            Whether the answer was informative (see :meth:`Lookup.on_response`):
            it named a contact that no path had heard of, or the paths have
            heard of fewer than ``small_network`` contacts in all.
        """
        i = self._owner.get(node_id)
        if i is None or self._result is not None:
            return False
        mine = [c for c in contacts if self._owner.setdefault(c.node_id, i) == i]
        new = self._paths[i].on_response(node_id, mine, value=value, has_value=has_value)
        return new or len(self._owner) < self._small_network

    def on_failure(self, node_id: bytes) -> None:
        """``node_id`` did not answer."""
        i = self._owner.get(node_id)
        if i is not None and self._result is None:
            self._paths[i].on_failure(node_id)

    def _finish(self) -> Finished:
        results = [p._result or p._finish() for p in self._paths]
        # The paths take turns, each nearest first: a path that met an
        # adversary (whose answers are nearest, being made up) cannot push
        # the others' nodes out of the result.
        closest: list[Contact] = []
        for rank in range(self.k):
            for r in results:
                if rank < len(r.closest) and len(closest) < self.k:
                    closest.append(r.closest[rank])
        values = [v for r in results for v in r.values]
        self._result = Finished(closest, values)
        return self._result
