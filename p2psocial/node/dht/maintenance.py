"""Maintenance: what keeps a node's view and its publications fresh over time.

* every ``maintenance_interval``: rotate announce tokens, expire the stores
  and "not ours" verdicts, refresh stale buckets, re-announce and republish
  when their intervals are due, and save the contacts;
* the placement loop: when the node (re)joins, place own announces and
  records again among the nodes now closest to their keys, and retry, with
  backoff, announces that no node accepted.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Protocol

import trio

from ...protocol.dht import Contact
from ..activity import LimitedLog
from .common import DHTConfig, DHTError, Stores, log
from .contacts import Contacts
from .plain import PlainKademlia
from .records import RecordClient
from .swarms import SwarmClient

__all__ = ["ContactStore", "Maintenance"]


class ContactStore(Protocol):
    """Where the routing table is saved between runs (the node's SQLite store)."""

    async def save_dht_contacts(self, contacts: list[tuple[bytes, str, int]]) -> None:
        """Replace the saved contacts with ``contacts`` (node_id, host, port)."""
        ...

    async def load_dht_contacts(self) -> list[tuple[bytes, str, int]]:
        """The contacts saved last."""
        ...


class Maintenance:
    """The periodic and join-triggered work of one node.

    Args:
        config: the intervals.
        stores: expired and rotated here.
        contacts: refreshed, expired, saved and reloaded here.
        plain, records, swarms: the clients whose publications are kept placed.
        contact_store: None, or where contacts are saved and reloaded.
    """

    def __init__(
        self,
        config: DHTConfig,
        stores: Stores,
        contacts: Contacts,
        plain: PlainKademlia,
        records: RecordClient,
        swarms: SwarmClient,
        contact_store: ContactStore | None,
    ) -> None:
        self._config = config
        self._stores = stores
        self._contacts = contacts
        self._plain = plain
        self._records = records
        self._swarms = swarms
        self.contact_store = contact_store
        self._stats: Counter[str] = Counter()
        # Announce retries back off from one second: without a limit, a node
        # with no contacts would say so at INFO every few seconds.
        self._events = LimitedLog(log)

    def start(self, nursery: trio.Nursery) -> None:
        """Run the maintenance and placement loops in ``nursery`` (the node's)
        until it is cancelled."""
        nursery.start_soon(self._maintenance_loop)
        nursery.start_soon(self._placement_loop)

    # -- contacts across runs -------------------------------------------------------

    async def load_contacts(self) -> None:
        """Fill the routing table from the contact store (if any)."""
        if self.contact_store is None:
            return
        try:
            saved: Any = await self.contact_store.load_dht_contacts()
        except Exception as exc:  # the store is another team's; a failure must not stop the DHT
            log.warning("could not load DHT contacts: %s", exc)
            return
        now = trio.current_time()
        table = self._contacts.table
        for item in saved or []:
            try:
                nid, host, port = item
            except (TypeError, ValueError):
                continue
            if (
                type(nid) is bytes
                and len(nid) == 20
                and isinstance(host, str)
                and isinstance(port, int)
            ):
                table.add(Contact(nid, host, port), now)
        self._stats["contacts_loaded"] += len(saved or [])

    async def save_contacts(self) -> None:
        """Save the routing table to the contact store (if any)."""
        if self.contact_store is None:
            return
        contacts = [(c.node_id, c.host, c.port) for c in self._contacts.table.contacts()]
        try:
            await self.contact_store.save_dht_contacts(contacts)
        except Exception as exc:  # see load_contacts
            log.warning("could not save DHT contacts: %s", exc)

    # -- the periodic loop ---------------------------------------------------------

    async def _maintenance_loop(self) -> None:
        cfg = self._config
        stores = self._stores
        start = trio.current_time()
        last_republish = last_announce = last_save = start
        while True:
            await trio.sleep(cfg.maintenance_interval)
            now = trio.current_time()
            if stores.tokens.needs_rotation(now):
                stores.tokens.rotate(os.urandom(32), now)
            stores.records.expire(now)
            stores.swarms.expire(now)
            stores.values.expire(now)
            self._contacts.expire(now)
            try:
                await self._refresh(now)
                if now - last_announce >= cfg.announce_interval:
                    last_announce = now
                    await self._swarms.reannounce_all()
                if now - last_republish >= cfg.republish_interval:
                    last_republish = now
                    await self._republish(now)
            except DHTError as exc:
                self._events.info("maintenance", now, "DHT maintenance: %s", exc)
            if self.contact_store is not None and now - last_save >= cfg.contact_save_interval:
                last_save = now
                await self.save_contacts()

    async def _refresh(self, now: float) -> None:
        """Look up a random id in every bucket not refreshed for refresh_interval."""
        table = self._contacts.table
        if not len(table):
            return
        for lo, hi in table.stale_buckets(now, self._config.refresh_interval)[:8]:
            target = (lo + int.from_bytes(os.urandom(20), "big") % (hi - lo)).to_bytes(20, "big")
            self._stats["bucket_refreshes"] += 1
            await self._plain.find_node(target)

    async def _republish(self, now: float) -> None:
        """Re-put our own records and values, and records we hold for others."""
        await self._records.republish_own(now)
        await self._plain.republish()
        await self._records.republish_held(now)
        self._stats["republish_rounds"] += 1

    # -- placement -------------------------------------------------------------------

    async def _placement_loop(self) -> None:
        """Re-place own announces and records when the node joins, and retry
        announces that no node accepted, with backoff."""
        while True:
            with trio.move_on_at(self._swarms.next_retry()):
                await self._contacts.joined.wait()
            now = trio.current_time()
            if self._contacts.take_joined():
                self._records.forget_closest()
                authors = self._swarms.own_authors()
                records = self._records.own_records()
                self._stats["placements_after_join"] += 1
            else:
                authors = self._swarms.due_retries(now)
                records = []
            for author in authors:
                try:
                    await self._swarms.reannounce(author)
                except DHTError as exc:
                    self._events.info("reannounce", now, "re-announce failed: %s", exc)
            for (kind, key), data in records:
                try:
                    await self._records.place(kind, key, data)
                except DHTError as exc:
                    self._events.info("republish", now, "re-publish after joining failed: %s", exc)

    def statistics(self) -> dict[str, int]:
        """Counters: contacts reloaded, buckets refreshed, republish rounds, rejoins."""
        return dict(self._stats)
