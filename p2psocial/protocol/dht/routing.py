"""Kademlia routing table: k-buckets that answer, never act.

Theory (Maymounkov & Mazières 2002, §2.2 and §4.2): the 160-bit id space is
cut into buckets, each covering a contiguous range ``[lo, hi)`` whose size is
a power of two, so a bucket's *depth* (the length of the id prefix its members
share) is ``160 - log2(hi - lo)``. It is computed from the range, never from
the members (the ``kademlia`` package derives it from the members' common
prefix, which is wrong when a bucket holds few contacts).

A full bucket splits when its range contains our own id, or when its depth is
not a multiple of ``split_mod`` (the paper's relaxation ``d ≢ 0 (mod b)``,
which keeps more contacts for distant ranges and shortens lookups). Otherwise
the newcomer goes to the bucket's replacement cache, and :meth:`add` answers
"full: ping this (least recently seen) contact first". The caller does the
ping: on failure it calls :meth:`remove`, which promotes the most recently
seen replacement; on success it calls :meth:`add` again for the old contact,
which moves it to the tail.

Nothing here does I/O or reads a clock; ``now`` is always an argument.
"""

from __future__ import annotations

import enum
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import LocalUsageError

__all__ = [
    "ID_BITS",
    "ID_SIZE",
    "AddOutcome",
    "AddResult",
    "Bucket",
    "Contact",
    "RoutingTable",
    "distance",
]

ID_SIZE = 20
ID_BITS = 160


def distance(a: bytes, b: bytes) -> int:
    """The XOR distance between two 160-bit ids, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


@dataclass(frozen=True, slots=True)
class Contact:
    """A DHT node as known to us: its id and its UDP address."""

    node_id: bytes
    host: str
    port: int
    #: The id as an integer, computed once (distance sorts are the hot path).
    n: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", int.from_bytes(self.node_id, "big"))

    @property
    def addr(self) -> tuple[str, int]:
        """The (host, port) pair to send datagrams to."""
        return (self.host, self.port)

    def __repr__(self) -> str:
        return f"Contact({self.node_id.hex()[:10]}, {self.host}:{self.port})"


class AddResult(enum.Enum):
    """What :meth:`RoutingTable.add` did."""

    ADDED = "added"
    UPDATED = "updated"
    #: The bucket is full (or the id is known at another address): the
    #: newcomer waits in the replacement cache; ping ``AddOutcome.ping``.
    PING = "ping"
    #: Our own id, or an invalid one: ignored.
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class AddOutcome:
    """The answer of :meth:`RoutingTable.add`."""

    result: AddResult
    #: For ``PING``: the contact to ping before anyone is evicted.
    ping: Contact | None = None


@dataclass(slots=True)
class Bucket:
    """One k-bucket: contacts ordered least recently seen first."""

    lo: int
    hi: int
    contacts: OrderedDict[bytes, Contact] = field(default_factory=OrderedDict)
    replacements: OrderedDict[bytes, Contact] = field(default_factory=OrderedDict)
    last_changed: float = 0.0

    @property
    def depth(self) -> int:
        """Length of the id prefix shared by the whole range."""
        return ID_BITS - ((self.hi - self.lo).bit_length() - 1)

    def covers(self, n: int) -> bool:
        """Whether the integer id ``n`` falls in this bucket's range."""
        return self.lo <= n < self.hi


class RoutingTable:
    """The k-bucket tree of one node (see the module docstring).

    Args:
        own_id: this node's 20-byte id.
        k: bucket size (20, as in the paper and the ``kademlia`` package).
        split_mod: the paper's ``b``; buckets not containing ``own_id`` still
            split while their depth is not a multiple of it. 1 disables it.
        replacement_size: bound of each bucket's replacement cache.
    """

    def __init__(
        self, own_id: bytes, *, k: int = 20, split_mod: int = 5, replacement_size: int = 20
    ) -> None:
        if len(own_id) != ID_SIZE:
            raise LocalUsageError("a node id is 20 bytes")
        if k < 1 or split_mod < 1 or replacement_size < 0:
            raise LocalUsageError("k and split_mod must be positive")
        self.own_id = own_id
        self._own = int.from_bytes(own_id, "big")
        self.k = k
        self.split_mod = split_mod
        self.replacement_size = replacement_size
        self.buckets: list[Bucket] = [Bucket(0, 1 << ID_BITS)]
        # One contact per (host, port): one address cannot fill the table by
        # answering under many ids. Maps each table contact's address to its id.
        self._by_addr: dict[tuple[str, int], bytes] = {}

    # -- lookup of buckets -------------------------------------------------

    def _index(self, n: int) -> int:
        # Buckets are kept sorted by range and tile the space: bisect on lo.
        lo, hi = 0, len(self.buckets)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.buckets[mid].lo <= n:
                lo = mid
            else:
                hi = mid
        return lo

    def bucket_for(self, node_id: bytes) -> Bucket:
        """The bucket whose range holds ``node_id``."""
        return self.buckets[self._index(int.from_bytes(node_id, "big"))]

    # -- mutation -----------------------------------------------------------

    def add(self, contact: Contact, now: float) -> AddOutcome:
        """Record that ``contact`` was seen alive just now.

        Returns:
            ADDED or UPDATED (moved to the tail of its bucket); PING with the
            contact to ping first when the bucket is full or when the id is
            already known at a different address (the newcomer then waits in
            the replacement cache); PING with the contact that already holds
            this address under another id (the newcomer is not kept: if the
            old one stops answering, the newcomer gets in when next seen);
            IGNORED for our own id or a bad id.
        """
        if len(contact.node_id) != ID_SIZE or contact.node_id == self.own_id:
            return AddOutcome(AddResult.IGNORED)
        n = int.from_bytes(contact.node_id, "big")
        while True:
            # Asked again after every split: a split may promote a replacement
            # that holds this address.
            holder = self._by_addr.get(contact.addr)
            if holder is not None and holder != contact.node_id:
                held = self.get(holder)
                if held is not None:
                    return AddOutcome(AddResult.PING, held)
            idx = self._index(n)
            b = self.buckets[idx]
            old = b.contacts.get(contact.node_id)
            if old is not None:
                if old.addr != contact.addr:
                    # Somebody claims a known id from elsewhere: keep the
                    # proven-alive one unless it stops answering.
                    self._remember(b, contact)
                    return AddOutcome(AddResult.PING, old)
                b.contacts.move_to_end(contact.node_id)
                b.last_changed = now
                return AddOutcome(AddResult.UPDATED)
            if len(b.contacts) < self.k:
                b.replacements.pop(contact.node_id, None)
                b.contacts[contact.node_id] = contact
                self._by_addr[contact.addr] = contact.node_id
                b.last_changed = now
                return AddOutcome(AddResult.ADDED)
            if b.depth < ID_BITS and (b.covers(self._own) or b.depth % self.split_mod != 0):
                self._split(idx)
                continue
            self._remember(b, contact)
            return AddOutcome(AddResult.PING, next(iter(b.contacts.values())))

    def _remember(self, b: Bucket, contact: Contact) -> None:
        if self.replacement_size == 0:
            return
        b.replacements.pop(contact.node_id, None)
        b.replacements[contact.node_id] = contact
        while len(b.replacements) > self.replacement_size:
            b.replacements.popitem(last=False)

    def _split(self, idx: int) -> None:
        b = self.buckets[idx]
        mid = b.lo + (b.hi - b.lo) // 2
        left = Bucket(b.lo, mid, last_changed=b.last_changed)
        right = Bucket(mid, b.hi, last_changed=b.last_changed)
        for c in b.contacts.values():
            side = left if int.from_bytes(c.node_id, "big") < mid else right
            side.contacts[c.node_id] = c
        for c in b.replacements.values():
            side = left if int.from_bytes(c.node_id, "big") < mid else right
            # A replacement may be a table contact's id seen at another
            # address: it waits for that contact to fail, never displaces it.
            if (
                len(side.contacts) < self.k
                and c.node_id not in side.contacts
                and c.addr not in self._by_addr
            ):
                side.contacts[c.node_id] = c
                self._by_addr[c.addr] = c.node_id
            else:
                side.replacements[c.node_id] = c
        self.buckets[idx : idx + 1] = [left, right]

    def remove(self, node_id: bytes) -> bool:
        """Drop a contact (it failed to answer); promote the newest replacement.

        Returns:
            True if the contact was in the table (not merely a replacement).
        """
        b = self.bucket_for(node_id)
        gone = b.contacts.pop(node_id, None)
        if gone is None:
            b.replacements.pop(node_id, None)
            return False
        if self._by_addr.get(gone.addr) == node_id:
            del self._by_addr[gone.addr]
        # The same id seen at a new address waits as a replacement: it wins.
        c = b.replacements.pop(node_id, None)
        if c is not None and c.addr in self._by_addr:
            c = None
        while c is None and b.replacements:
            _, cand = b.replacements.popitem(last=True)
            if cand.addr not in self._by_addr:
                c = cand
        if c is not None:
            b.contacts[c.node_id] = c
            self._by_addr[c.addr] = c.node_id
        return True

    # -- queries -------------------------------------------------------------

    def get(self, node_id: bytes) -> Contact | None:
        """The contact with this id, if it is in the table."""
        return self.bucket_for(node_id).contacts.get(node_id)

    def contacts(self) -> list[Contact]:
        """Every contact in the table (not the replacement caches)."""
        return [c for b in self.buckets for c in b.contacts.values()]

    def __len__(self) -> int:
        return sum(len(b.contacts) for b in self.buckets)

    def closest(
        self,
        target: bytes,
        n: int | None = None,
        *,
        exclude: Iterable[bytes] = (),
        accept: Callable[[Contact], bool] | None = None,
    ) -> list[Contact]:
        """The ``n`` (default k) known contacts closest to ``target``, nearest first.

        Args:
            exclude: ids to leave out (typically the requester's).
            accept: an optional filter (e.g. "has proven its key").
        """
        count = self.k if n is None else n
        t = int.from_bytes(target, "big")
        skip = set(exclude)
        pool = [
            c
            for b in self.buckets
            for c in b.contacts.values()
            if c.node_id not in skip and (accept is None or accept(c))
        ]
        if len(pool) > count:
            return heapq.nsmallest(count, pool, key=lambda c: c.n ^ t)
        pool.sort(key=lambda c: c.n ^ t)
        return pool

    def stale_buckets(self, now: float, max_age: float) -> list[tuple[int, int]]:
        """Ranges ``(lo, hi)`` of buckets unchanged for ``max_age``; refresh them
        by looking up a random id inside each."""
        return [(b.lo, b.hi) for b in self.buckets if now - b.last_changed >= max_age]

    def touch(self, target: bytes, now: float) -> None:
        """Note that a lookup for ``target`` just ran (its bucket is fresh)."""
        self.bucket_for(target).last_changed = now
