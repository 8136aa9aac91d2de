"""The records client: feed heads and profiles as signed records, put at and
got from the k closest proven nodes.

A get walks until ``get_k`` closest nodes answered, keeps the highest seq
seen, and repairs the replicas that answered with an older record (in the
background, in this client's own nursery).
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import trio

from ...protocol.dht import (
    HEAD,
    PROFILE,
    Contact,
    Finished,
    RecordRejected,
    encode_profile_record,
    head_key,
    profile_key,
    validate_record,
)
from ...protocol.dht.records import MAX_PROFILE_PAYLOAD
from ...protocol.dht.wire import parse_get_record_reply, parse_status_reply
from ...protocol.encoding import Limits, decode_untrusted
from ...protocol.entries import decode_entry_untrusted
from ...protocol.errors import DecodeError, LocalUsageError, ProtocolError
from .common import DHTConfig, DHTError, Stores
from .contacts import Contacts
from .engine import Caller
from .lookups import LookupRunner

__all__ = ["RecordClient"]

#: Rejection reasons of a record no honest node would hand out (spec/dht.md
#: §5.4): its sender is penalized. Not stale, replayed, conflict (a fork is
#: the author's doing) or from_future (clocks differ).
_FORGED = frozenset(
    {"too_large", "malformed", "wrong_key", "wrong_kind", "bad_signature", "bad_payload"}
)

#: A record slot: (kind, key).
Slot = tuple[str, bytes]


class RecordClient:
    """Puts and gets of heads and profiles, and our own records to keep placed.

    Args:
        config: tunables (get_k, closest_cache_ttl).
        caller: sends requests.
        contacts: proofs, failures, record seeds.
        lookups: runs the iterative lookups.
        stores: our own copy of records lives in ``stores.records``.
        now_ms: wall-clock milliseconds, for record timestamps.
    """

    def __init__(
        self,
        config: DHTConfig,
        caller: Caller,
        contacts: Contacts,
        lookups: LookupRunner,
        stores: Stores,
        now_ms: Callable[[], int],
    ) -> None:
        self._config = config
        self._caller = caller
        self._contacts = contacts
        self._lookups = lookups
        self._stores = stores
        self._now_ms = now_ms
        self._verified: OrderedDict[bytes, int] = OrderedDict()
        #: Per own slot: (valid until, the k closest nodes the last lookup found).
        self.closest_cache: dict[Slot, tuple[float, list[Contact]]] = {}
        self._own: dict[Slot, bytes] = {}
        self._nursery: trio.Nursery | None = None
        self._stats: Counter[str] = Counter()

    def start(self, nursery: trio.Nursery) -> None:
        """Run background repairs of stale replicas in ``nursery`` (the
        node's) from now on, until :meth:`stop`."""
        self._nursery = nursery

    def stop(self) -> None:
        """Start no more repairs (the node's nursery is closing)."""
        self._nursery = None

    # -- lookups ---------------------------------------------------------------------

    async def lookup(
        self, kind: str, key: bytes, k: int | None = None
    ) -> tuple[Finished, list[tuple[int, bytes]]]:
        """Look up ``key`` among proven nodes with get_record.

        Returns:
            The lookup result and every valid (seq, record) seen.
        """
        found: list[tuple[int, bytes]] = []
        contacts = self._contacts
        me = contacts.node_id

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            value, nonce = await contacts.proving_call(c, "get_record", [me, key, kind])
            rec, nodes, proof = parse_get_record_reply(value)
            contacts.check_proof(c, nonce, proof)
            if rec is None:
                return nodes, False, None
            seq = self._validate_cached(kind, key, rec, c)
            if seq is None:
                return nodes, False, None
            found.append((seq, rec))
            return nodes, True, rec

        paths = self._config.record_paths
        lookup = self._lookups.new(key, contacts.record_seeds(key), None, k, paths=paths)
        result = await self._lookups.iterate(lookup, ask)
        return result, found

    def _validate_cached(self, kind: str, key: bytes, rec: bytes, sender: Contact) -> int | None:
        """validate_record, remembering records already verified (a get sees
        the same record from several replicas); returns its seq, or None.
        A record no honest node could hold (forged, malformed, in the wrong
        slot) costs ``sender`` a penalty (spec/dht.md §9); one merely stale
        or from a fast clock does not."""
        digest = hashlib.sha256(kind.encode() + b"\x00" + key + rec).digest()
        seq = self._verified.get(digest)
        if seq is not None:
            self._verified.move_to_end(digest)
            return seq
        try:
            entry = validate_record(kind, key, rec, self._now_ms())
        except RecordRejected as exc:
            self._stats[f"record_invalid_{exc.reason}"] += 1
            if exc.reason in _FORGED:
                self._contacts.penalize(
                    sender, f"protocol_record_{exc.reason}", trio.current_time()
                )
            return None
        self._verified[digest] = entry.seq
        if len(self._verified) > 1024:
            self._verified.popitem(last=False)
        return entry.seq

    # -- puts --------------------------------------------------------------------------

    async def _put(self, kind: str, key: bytes, data: bytes) -> int:
        now = trio.current_time()
        try:
            validate_record(kind, key, data, self._now_ms())
        except RecordRejected as exc:
            raise LocalUsageError(f"cannot publish: {exc.message}", reason=exc.reason) from None
        try:
            self._stores.records.put(kind, key, data, now=now, now_ms=self._now_ms())
        except RecordRejected as exc:
            if exc.reason not in ("replayed",):
                raise LocalUsageError(f"cannot publish: {exc.message}", reason=exc.reason) from None
        self._own[(kind, key)] = data
        # An author's node publishes its head on every post: the k closest
        # nodes found by the last lookup for this slot are reused for a short
        # while instead of walking again. If many of them fail to store it,
        # a fresh lookup runs and the record goes to the current closest.
        cached = self.closest_cache.get((kind, key))
        if cached is not None and cached[0] > now and cached[1]:
            stored = await self.store_at(cached[1], kind, key, data)
            if stored >= len(cached[1]) * 3 // 4:
                self._stats["puts_from_cache"] += 1
                return stored
        result, _ = await self.lookup(kind, key)
        if result.closest:
            self.closest_cache[(kind, key)] = (
                trio.current_time() + self._config.closest_cache_ttl,
                result.closest,
            )
        if len(self.closest_cache) > 256:
            self.closest_cache.pop(next(iter(self.closest_cache)))
        return await self.store_at(result.closest, kind, key, data)

    async def store_at(self, nodes: list[Contact], kind: str, key: bytes, data: bytes) -> int:
        """put_record ``data`` at each of ``nodes``; returns how many hold it now."""
        stored = 0
        contacts = self._contacts

        async def one(c: Contact) -> None:
            nonlocal stored
            try:
                ok, reason = parse_status_reply(
                    await self._caller.call(
                        c.addr, "put_record", [contacts.node_id, key, kind, data]
                    )
                )
            except DHTError as exc:
                if exc.reason == "timeout":
                    contacts.failed(c, trio.current_time())
                return
            except ProtocolError:
                return
            if ok or reason == "replayed":
                stored += 1
            else:
                self._stats[f"put_refused_{reason}"] += 1

        async with trio.open_nursery() as nursery:
            for c in nodes:
                nursery.start_soon(one, c)
        self._stats["records_put"] += 1
        return stored

    async def place(self, kind: str, key: bytes, data: bytes) -> int:
        """Look up the k closest nodes to ``key`` now, and store ``data`` there."""
        result, _ = await self.lookup(kind, key)
        return await self.store_at(result.closest, kind, key, data)

    async def put_head(self, entry_bytes: bytes) -> int:
        """Publish an entry as its author's head (see :meth:`DHTNode.put_head`)."""
        try:
            author = decode_entry_untrusted(entry_bytes).author
        except DecodeError as exc:
            raise LocalUsageError(f"not an entry: {exc.message}", reason=exc.reason) from None
        return await self._put(HEAD, head_key(author), entry_bytes)

    async def put_profile(self, entry_bytes: bytes, payload: bytes) -> int:
        """Publish a profile record (see :meth:`DHTNode.put_profile`)."""
        if len(payload) > MAX_PROFILE_PAYLOAD:
            raise LocalUsageError(
                f"profile payload of {len(payload)} bytes exceeds {MAX_PROFILE_PAYLOAD}",
                reason="too_large",
            )
        try:
            author = decode_entry_untrusted(entry_bytes).author
        except DecodeError as exc:
            raise LocalUsageError(f"not an entry: {exc.message}", reason=exc.reason) from None
        data = encode_profile_record(entry_bytes, payload)
        return await self._put(PROFILE, profile_key(author), data)

    # -- gets --------------------------------------------------------------------------

    async def _get_best(self, kind: str, key: bytes) -> bytes | None:
        result, found = await self.lookup(kind, key, self._config.get_k)
        local = self._stores.records.get(kind, key, trio.current_time())
        if not found and local is None:
            # A short walk can end in a pocket of nodes that never heard of
            # the key's holders (churn leaves such pockets): on a miss, walk
            # to the k closest, as a put does (spec/dht.md 8).
            self._stats["get_widened"] += 1
            result, found = await self.lookup(kind, key, self._config.k)
        if local is not None:
            found.append((local.seq, local.data))
        if not found:
            return None
        _, best = max(found, key=lambda f: f[0])
        # Replicas that answered with an older record get the newer one
        # (the paper's caching step, here as repair).
        stale = [c for c, rec in result.values if rec != best]
        if stale and self._nursery is not None:
            self._nursery.start_soon(self.store_at, stale, kind, key, best)
        return best

    async def get_head(self, author: bytes) -> bytes | None:
        """The entry bytes of the highest-seq valid head found for ``author``, or None."""
        return await self._get_best(HEAD, head_key(author))

    async def get_profile(self, author: bytes) -> tuple[bytes, bytes] | None:
        """(entry bytes, payload) of the latest profile record found, or None."""
        data = await self._get_best(PROFILE, profile_key(author))
        if data is None:
            return None
        value = decode_untrusted(data, Limits(max_size=2048))
        return value["entry"], value["payload"]

    # -- keeping records placed ----------------------------------------------------------

    def own_records(self) -> list[tuple[Slot, bytes]]:
        """Our own records, by slot, as last published through this node."""
        return list(self._own.items())

    def forget_closest(self) -> None:
        """Drop every cached closest set (the network around us changed)."""
        self.closest_cache.clear()

    async def republish_own(self, now: float) -> None:
        """Put our own records again at the current closest nodes; forget
        those that a newer version published elsewhere superseded."""
        for (kind, key), data in self.own_records():
            held = self._stores.records.get(kind, key, now)
            if held is not None and held.data != data:
                del self._own[(kind, key)]
                continue
            await self.place(kind, key, data)

    async def republish_held(self, now: float) -> None:
        """Put again the records we hold for others, stored a republish_interval ago."""
        for rec in self._stores.records.records():
            if (rec.kind, rec.key) in self._own:
                continue
            if now - rec.stored_at >= self._config.republish_interval:
                await self.place(rec.kind, rec.key, rec.data)

    def statistics(self) -> dict[str, int]:
        """Counters: puts, puts served from the closest cache, refusals, invalid records."""
        return dict(self._stats)
