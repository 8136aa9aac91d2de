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

IP diversity (spec/dht.md §7.1): each contact belongs to a narrow address
group (an IPv4 /24) and a wide one (an IPv4 /16), see :mod:`.diversity`. A
bucket takes at most ``bucket_group_limit`` contacts of one narrow group and
the table at most ``table_group_limit`` of one wide group. A newcomer over a
limit is refused (LIMITED) before anything else happens: it is not cached as
a replacement and causes no ping, so a crowd from one block can neither
displace nor even disturb the contacts already held. Replacements promoted
later pass the same check.

Nothing here does I/O or reads a clock; ``now`` is always an argument.
"""

from __future__ import annotations

import bisect
import enum
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, final

from ..errors import LocalUsageError
from .diversity import Groups, address_groups

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


@final
class Contact:
    """A DHT node as known to us: its id and its UDP address.

    Immutable (its attributes are Final). Equal and hashed by (id, host, port).
    A plain slotted class rather than a frozen dataclass: every node list
    received makes up to 20 of them, and a frozen dataclass's field-by-field
    ``object.__setattr__`` made construction twice as slow.
    """

    __slots__ = ("addr", "host", "n", "node_id", "port")

    def __init__(self, node_id: bytes, host: str, port: int) -> None:
        if type(host) is str:
            # Every datagram and every reply naming a contact brings a fresh
            # copy of its host; contacts kept share one (an interned string
            # is freed with its last holder, so this bounds nothing new).
            host = sys.intern(host)
        self.node_id: Final[bytes] = node_id
        self.host: Final[str] = host
        self.port: Final[int] = port
        #: The id as an integer, computed once (distance sorts are the hot path).
        self.n: Final[int] = int.from_bytes(node_id, "big")
        #: The (host, port) pair to send datagrams to, made once: the tables
        #: keyed by address (the routing table's, proofs, round trips) then
        #: share it instead of holding a tuple each.
        self.addr: Final[tuple[str, int]] = (host, port)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Contact:
            return NotImplemented
        return self.node_id == other.node_id and self.addr == other.addr

    def __hash__(self) -> int:
        return hash((self.node_id, self.host, self.port))

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
    #: The contact's address group is at its limit (in its bucket or in the
    #: table): refused, not remembered.
    LIMITED = "limited"


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
    #: Members per narrow address group (kept by the table; empty when the
    #: diversity limits are off).
    narrow: Counter[str] = field(default_factory=Counter)

    @property
    def depth(self) -> int:
        """Length of the id prefix shared by the whole range."""
        return ID_BITS - ((self.hi - self.lo).bit_length() - 1)

    def covers(self, n: int) -> bool:
        """Whether the integer id ``n`` falls in this bucket's range."""
        return self.lo <= n < self.hi


_IGNORED = AddOutcome(AddResult.IGNORED)
_UPDATED = AddOutcome(AddResult.UPDATED)


class RoutingTable:
    """The k-bucket tree of one node (see the module docstring).

    Args:
        own_id: this node's 20-byte id.
        k: bucket size (20, as in the paper and the ``kademlia`` package).
        split_mod: the paper's ``b``; buckets not containing ``own_id`` still
            split while their depth is not a multiple of it. 1 disables it.
        replacement_size: bound of each bucket's replacement cache.
        bucket_group_limit: contacts of one narrow address group per bucket.
        table_group_limit: contacts of one wide address group in the table.
        groups: maps a host to its (narrow, wide) groups; None turns the
            diversity limits off (a measurement baseline, never a default).
    """

    def __init__(
        self,
        own_id: bytes,
        *,
        k: int = 20,
        split_mod: int = 5,
        replacement_size: int = 20,
        bucket_group_limit: int = 2,
        table_group_limit: int = 10,
        groups: Callable[[str], Groups] | None = address_groups,
    ) -> None:
        if len(own_id) != ID_SIZE:
            raise LocalUsageError("a node id is 20 bytes")
        if k < 1 or split_mod < 1 or replacement_size < 0:
            raise LocalUsageError("k and split_mod must be positive")
        if bucket_group_limit < 1 or table_group_limit < 1:
            raise LocalUsageError("the address-group limits must be positive")
        self.bucket_group_limit = bucket_group_limit
        self.table_group_limit = table_group_limit
        self._groups = groups
        self._group_cache: dict[str, Groups] = {}
        #: Table contacts per wide group.
        self._wide: Counter[str] = Counter()
        self.own_id = own_id
        self._own = int.from_bytes(own_id, "big")
        self.k = k
        self.split_mod = split_mod
        self.replacement_size = replacement_size
        self.buckets: list[Bucket] = [Bucket(0, 1 << ID_BITS)]
        #: Each bucket's ``lo``, in step with ``buckets`` (for bisection).
        self._los: list[int] = [0]
        # One contact per (host, port): one address cannot fill the table by
        # answering under many ids. Maps each table contact's address to its id.
        self._by_addr: dict[tuple[str, int], bytes] = {}

    # -- lookup of buckets -------------------------------------------------

    def _index(self, n: int) -> int:
        # Buckets are kept sorted by range and tile the space: bisect on lo.
        return bisect.bisect_right(self._los, n) - 1

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
            IGNORED for our own id or a bad id; LIMITED when the contact's
            address group is at its limit in the bucket or the table (it is
            neither added nor remembered, and nobody is pinged for it).
        """
        if len(contact.node_id) != ID_SIZE or contact.node_id == self.own_id:
            return _IGNORED
        n = contact.n
        if self._by_addr.get(contact.addr) == contact.node_id:
            # The common case: a table contact seen again at its address.
            b = self.buckets[self._index(n)]
            b.contacts.move_to_end(contact.node_id)
            b.last_changed = now
            return _UPDATED
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
                if not self._fits(b, contact):
                    return AddOutcome(AddResult.LIMITED)
                self._insert(b, contact)
                b.last_changed = now
                return AddOutcome(AddResult.ADDED)
            if b.depth < ID_BITS and (b.covers(self._own) or b.depth % self.split_mod != 0):
                self._split(idx)
                continue
            if not self._fits(b, contact):
                # Over its group's limit: no ping, no place in the cache.
                b.replacements.pop(contact.node_id, None)
                return AddOutcome(AddResult.LIMITED)
            self._remember(b, contact)
            return AddOutcome(AddResult.PING, next(iter(b.contacts.values())))

    # -- address groups -------------------------------------------------------

    def groups_of(self, host: str) -> Groups:
        """The (narrow, wide) address groups of ``host``; (None, None) when off."""
        if self._groups is None:
            return (None, None)
        g = self._group_cache.get(host)
        if g is None:
            if len(self._group_cache) >= 8192:
                self._group_cache.clear()
            g = self._group_cache[host] = self._groups(host)
        return g

    def _fits(self, b: Bucket, contact: Contact, *, ignore: bytes | None = None) -> bool:
        """Whether ``contact`` may join bucket ``b`` under the group limits.

        ``ignore``: a member id not to count (the one being replaced).
        """
        narrow, wide = self.groups_of(contact.host)
        if wide is not None and self._wide[wide] >= self.table_group_limit:
            return False
        if narrow is None:
            return True
        same = b.narrow[narrow]
        if ignore is not None:
            held = b.contacts.get(ignore)
            if held is not None and self.groups_of(held.host)[0] == narrow:
                same -= 1
        return same < self.bucket_group_limit

    def _insert(self, b: Bucket, c: Contact) -> None:
        b.contacts[c.node_id] = c
        self._by_addr[c.addr] = c.node_id
        narrow, wide = self.groups_of(c.host)
        if narrow is not None:
            b.narrow[narrow] += 1
        if wide is not None:
            self._wide[wide] += 1

    def _forget(self, b: Bucket, c: Contact) -> None:
        if self._by_addr.get(c.addr) == c.node_id:
            del self._by_addr[c.addr]
        narrow, wide = self.groups_of(c.host)
        if narrow is not None:
            b.narrow[narrow] -= 1
            if b.narrow[narrow] <= 0:
                del b.narrow[narrow]
        if wide is not None:
            self._wide[wide] -= 1
            if self._wide[wide] <= 0:
                del self._wide[wide]

    def group_counts(self) -> dict[str, int]:
        """Table contacts per wide address group (for statistics and tests)."""
        return dict(self._wide)

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
            side = left if c.n < mid else right
            side.contacts[c.node_id] = c
            narrow = self.groups_of(c.host)[0]
            if narrow is not None:
                side.narrow[narrow] += 1
        for c in b.replacements.values():
            side = left if c.n < mid else right
            # A replacement may be a table contact's id seen at another
            # address: it waits for that contact to fail, never displaces it.
            if (
                len(side.contacts) < self.k
                and c.node_id not in side.contacts
                and c.addr not in self._by_addr
                and self._fits(side, c)
            ):
                self._insert(side, c)
            else:
                side.replacements[c.node_id] = c
        self.buckets[idx : idx + 1] = [left, right]
        self._los.insert(idx + 1, mid)

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
        self._forget(b, gone)
        # The same id seen at a new address waits as a replacement: it wins.
        c = b.replacements.pop(node_id, None)
        if c is not None and (c.addr in self._by_addr or not self._fits(b, c)):
            c = None
        while c is None and b.replacements:
            _, cand = b.replacements.popitem(last=True)
            if cand.addr not in self._by_addr and self._fits(b, cand):
                c = cand
        if c is not None:
            self._insert(b, c)
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
        # Buckets are aligned ranges, so the distances from t to the ids of
        # two buckets lie in disjoint intervals: visiting buckets by their
        # least distance and ranking each bucket's members on its own, the
        # first ``count`` eligible contacts met are the ``count`` closest.
        out: list[Contact] = []
        for b in self._buckets_by_distance(t):
            ranked = sorted(
                (c.n ^ t, c)  # distinct ids: distances never tie
                for c in b.contacts.values()
                if c.node_id not in skip and (accept is None or accept(c))
            )
            out.extend(c for _, c in ranked[: count - len(out)])
            if len(out) >= count:
                break
        return out

    def _buckets_by_distance(self, t: int) -> Iterator[Bucket]:
        """The buckets, nearest to ``t`` first (a walk up the id trie).

        First the bucket holding ``t``; then, for each aligned block around
        it, doubling in size, the buckets of the half it does not cover yet
        (which tile that half exactly: buckets are aligned ranges).
        """
        b = self.buckets[self._index(t)]
        yield b
        los = self._los
        lo, hi = b.lo, b.hi
        while hi - lo < 1 << ID_BITS:
            size = hi - lo
            if lo & size:  # the covered block is an upper half: its sibling is below
                j, end = bisect.bisect_left(los, lo - size), bisect.bisect_left(los, lo)
                lo -= size
            else:
                j, end = bisect.bisect_left(los, hi), bisect.bisect_left(los, hi + size)
                hi += size
            if end - j == 1:
                yield self.buckets[j]
            else:
                yield from sorted(self.buckets[j:end], key=lambda x: (x.lo ^ t) & -(x.hi - x.lo))

    def stale_buckets(self, now: float, max_age: float) -> list[tuple[int, int]]:
        """Ranges ``(lo, hi)`` of buckets unchanged for ``max_age``; refresh them
        by looking up a random id inside each."""
        return [(b.lo, b.hi) for b in self.buckets if now - b.last_changed >= max_age]

    def touch(self, target: bytes, now: float) -> None:
        """Note that a lookup for ``target`` just ran (its bucket is fresh)."""
        self.bucket_for(target).last_changed = now
