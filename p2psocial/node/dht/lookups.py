"""Running lookups: the pure :class:`~p2psocial.protocol.dht.Lookup` driven
with α queries in flight.

The caller says how to ask one contact (an :data:`Ask`); the runner decides
whom to ask and when to stop, and reports answers and silences to
:class:`.Contacts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ...protocol.dht import Contact, DisjointLookup, Finished, Lookup, Query
from ...protocol.errors import ProtocolError
from .common import Addr, DHTConfig, DHTError
from .contacts import Contacts

__all__ = ["Ask", "LookupRunner"]

#: Asks one contact: returns (closer nodes, whether it had the value, the value).
Ask = Callable[[Contact], Awaitable[tuple[list[Contact], bool, Any]]]


class _Wake:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = trio.Event()


class LookupRunner:
    """Drives iterative lookups over the network.

    Args:
        config: tunables (k, α, call timeouts and retries, lookup patience).
        contacts: seeds come from its table; answers and silences go to it.
    """

    def __init__(
        self,
        config: DHTConfig,
        contacts: Contacts,
        rto: Callable[[Addr], float] | None = None,
        is_silent: Callable[[Addr, float], bool] | None = None,
        mark_silent: Callable[[Addr, float], None] | None = None,
    ) -> None:
        self._config = config
        self._contacts = contacts
        self._rto = rto
        self._is_silent = is_silent
        self._mark_silent = mark_silent
        self._stats: Counter[str] = Counter()

    def _patience(self, contact: Contact) -> float:
        """How long ``contact`` holds an α slot: its first ``lookup_patience`` attempts.

        A silent contact (its last call went unanswered past its first
        attempt, and nothing was heard from it since) holds none: it is
        still asked, but the lookup asks the next candidates at once. A walk
        to the k closest still awaits it if it stays among them; a get goes
        past it.
        """
        if self._is_silent is not None and self._is_silent(contact.addr, trio.current_time()):
            self._stats["lookup_skipped_silent"] += 1
            return 0.0
        return self._attempts(contact)

    def _attempts(self, contact: Contact) -> float:
        """The time ``contact``'s first ``lookup_patience`` attempts take."""
        cfg = self._config
        first = cfg.rpc_timeout if self._rto is None else self._rto(contact.addr)
        return sum(first * cfg.rpc_backoff**i for i in range(cfg.lookup_patience))

    def _timeouts(self) -> tuple[float, float]:
        """(slow_after, timeout) for lookups.

        After its first ``lookup_patience`` attempts went unanswered a contact
        stops holding one of the α slots and counting among the closest (the
        lookup asks the next candidates; a dead contact must not stall it);
        each contact's attempts follow its measured round trip (``rto``). The
        hard timeout is only a backstop (a record query may need a hello first,
        hence twice the retry budget).
        """
        cfg = self._config
        steps = [cfg.rpc_timeout * cfg.rpc_backoff**i for i in range(cfg.rpc_attempts)]
        return sum(steps[: cfg.lookup_patience]), 2 * sum(steps) + 1.0

    def new(
        self,
        target: bytes,
        seeds: list[Contact],
        quorum: int | None,
        k: int | None = None,
        *,
        paths: int | None = None,
    ) -> Lookup | DisjointLookup:
        """A lookup for ``target`` from ``seeds`` (and mark its bucket refreshed).

        Args:
            paths: disjoint paths (default: the config's ``lookup_paths``, for
                node lookups; record and peer lookups pass ``record_paths``).
            quorum: stop after this many contacts had the value (None: walk to
                the k closest).
            k: how many closest nodes to find (default: the config's k). A
                walk to the config's k closest (before a store) is exact and
                awaits slow contacts among them; a shorter one (a get, which
                needs a few answers) goes past them.
        """
        table = self._contacts.table
        table.touch(target, trio.current_time())
        slow_after, timeout = self._timeouts()
        args: dict[str, Any] = {
            "k": k or self._config.k,
            "alpha": self._config.alpha,
            "timeout": timeout,
            "slow_after": slow_after,
            "patience": self._patience,
            "await_slow": (k or self._config.k) >= self._config.k,
            "quorum": quorum,
            "groups": table.groups_of if self._config.lookup_diversity else None,
            "group_limit": table.table_group_limit,
        }
        paths = self._config.lookup_paths if paths is None else paths
        if paths > 1:
            # A get ends with the first path that found the value, and runs
            # the nearest path alone until it meets a setback (spec/dht.md §8).
            first = not args["await_slow"]
            hedge = self._config.get_hedge
            if first and hedge is not None and seeds:
                t = int.from_bytes(target, "big")
                nearest = min(seeds, key=lambda c: c.n ^ t)
                args["hedge_after"] = hedge * self._attempts(nearest)
                args["hedge_setbacks"] = self._config.get_hedge_setbacks
            return DisjointLookup(
                self._contacts.node_id, target, seeds, paths=paths, first_with_value=first, **args
            )
        return Lookup(self._contacts.node_id, target, seeds, **args)

    async def iterate(self, lookup: Lookup | DisjointLookup, ask: Ask) -> Finished:
        """Drive ``lookup`` to its end, asking up to α contacts at once with ``ask``.

        A contact whose ``ask`` raises DHTError or ProtocolError counts as
        failed for this lookup (and is evicted if it timed out). A contact
        that answers joins the routing table only if its answer was
        informative (it named a contact the lookup had not heard of;
        spec/dht.md §8); one already there is refreshed either way.
        """
        admit_all = not self._config.informative_admission
        wake = _Wake()
        contacts = self._contacts
        cfg = self._config
        #: Contacts asked and not yet answered, with when their patience ends.
        asked: dict[bytes, tuple[Contact, float]] = {}

        async def query(contact: Contact) -> None:
            now = trio.current_time()
            if contacts.graylisted(contact.node_id, contact.host, now):
                self._stats["lookup_skipped_graylisted"] += 1
                lookup.on_failure(contact.node_id)
                wake.event.set()
                return
            if contacts.known_dead(contact, now):
                # Its last call timed out: no wait on it while others remain.
                self._stats["lookup_skipped_dead"] += 1
                lookup.on_failure(contact.node_id)
                wake.event.set()
                return
            first = cfg.rpc_timeout if self._rto is None else self._rto(contact.addr)
            asked[contact.node_id] = (contact, now + first)
            try:
                nodes, has_value, value = await ask(contact)
            except (DHTError, ProtocolError) as exc:
                self._stats[f"lookup_failure_{exc.reason}"] += 1
                lookup.on_failure(contact.node_id)
                if exc.reason == "timeout":
                    contacts.failed(contact, trio.current_time())
            else:
                new = lookup.on_response(contact.node_id, nodes, value=value, has_value=has_value)
                contacts.saw(contact, trio.current_time(), admit=new or admit_all)
            finally:
                asked.pop(contact.node_id, None)
            wake.event.set()

        async with trio.open_nursery() as nursery:
            while True:
                action = lookup.next(trio.current_time())
                if isinstance(action, Finished):
                    # Ending cancels the calls still out. One unanswered past
                    # its patience is silent (spec/dht.md 8): the lookups
                    # that follow give it no slot, though its call had not
                    # reached its own timeout. A late answer ends that.
                    now = trio.current_time()
                    for contact, due in asked.values():
                        if due <= now and self._mark_silent is not None:
                            self._mark_silent(contact.addr, now)
                            self._stats["lookup_left_silent"] += 1
                    nursery.cancel_scope.cancel()
                    self._stats["lookups"] += 1
                    self._stats["lookup_queries"] += lookup.queries
                    self._stats["lookup_refused_by_group"] += lookup.refused
                    if isinstance(lookup, DisjointLookup) and lookup.hedged:
                        self._stats["lookup_hedged"] += 1
                    return action
                if isinstance(action, Query):
                    nursery.start_soon(query, action.contact)
                    continue
                with trio.move_on_at(action.until):
                    await wake.event.wait()
                wake.event = trio.Event()

    def statistics(self) -> dict[str, int]:
        """Counters: lookups, queries sent, failures by reason."""
        return dict(self._stats)
