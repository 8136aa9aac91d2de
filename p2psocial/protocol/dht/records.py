"""DHT records: feed heads, profiles, swarms, plain values, and announce tokens.

Every store here is bounded in count, size and time, and every refusal raises
:class:`RecordRejected` with a stable ``reason`` *before* anything changes, so
"rejected" always means "nothing stored" (spec/dht.md §5).

* **Feed head** ``head_key(author)`` → the author's latest entry bytes. It is
  self-certifying: the entry is decoded, its author must hash to the slot,
  its signature must verify strictly, and only a higher seq replaces it.
* **Profile** ``profile_key(author)`` → ``{"entry": bytes, "payload": bytes}``
  (canonical msgpack) holding the latest ``profile`` entry and its payload.
* **Swarm** ``swarm_key(author)`` → a bounded set of (node id, host, TCP port,
  expiry) of nodes that hold the feed; announcing needs a token.
* **Tokens** (BEP-5 style): ``H(tag ‖ secret ‖ host ‖ port)``; the secret
  rotates and the previous one is still accepted, so a token lives between
  one and two rotation periods and is only good for the address it was given to.
* **Plain values** of the ``kademlia`` package's ``store`` RPC: opaque scalars,
  bounded in count, size and TTL.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .. import encoding
from ..encoding import Limits
from ..entries import Entry, check_timestamp, decode_entry_untrusted, decode_payload_untrusted
from ..errors import InvalidSignature, LocalUsageError, ProtocolError, SchemaError
from ..identity import KEY_REASONS

__all__ = [
    "HEAD",
    "MAX_PROFILE_PAYLOAD",
    "MAX_RECORD_SIZE",
    "PROFILE",
    "RECORD_KINDS",
    "TOKEN_SIZE",
    "RecordRejected",
    "RecordStore",
    "StoredRecord",
    "SwarmStore",
    "TokenIssuer",
    "ValueStore",
    "encode_profile_record",
    "head_key",
    "profile_key",
    "swarm_key",
    "validate_record",
]

HEAD = "head"
PROFILE = "profile"
RECORD_KINDS = frozenset({HEAD, PROFILE})
#: Largest record value (bytes) that still fits a 1,280-byte datagram with
#: its envelope and a few contacts.
MAX_RECORD_SIZE = 1024
#: Profile payloads above this do not fit in the DHT (the feed still has them).
MAX_PROFILE_PAYLOAD = 384
TOKEN_SIZE = 16
TOKEN_TAG = b"p2psocial/dht-token/v1\x00"

_PROFILE_LIMITS = Limits(
    max_size=MAX_RECORD_SIZE, max_depth=1, max_container_len=2, max_str_len=16, max_bin_len=1024
)


class RecordRejected(ProtocolError):
    """A record, announcement or value was refused; ``reason`` says why.

    Reasons: ``too_large``, ``malformed``, ``wrong_key``, ``wrong_kind``,
    ``bad_signature``, ``bad_payload``, ``from_future``, ``stale``,
    ``replayed``, ``conflict``, ``bad_token``, ``full``, ``bad_value``.
    """

    reason = "rejected"


def _key(tag: bytes, author: bytes) -> bytes:
    if len(author) != 32:
        raise LocalUsageError("an author is a 32-byte public key")
    return hashlib.sha256(tag + author).digest()[:20]


def head_key(author: bytes) -> bytes:
    """DHT key of an author's feed head: SHA-256("head" ‖ author)[:20]."""
    return _key(b"head", author)


def profile_key(author: bytes) -> bytes:
    """DHT key of an author's profile record: SHA-256("profile" ‖ author)[:20]."""
    return _key(b"profile", author)


def swarm_key(author: bytes) -> bytes:
    """DHT key of a feed's swarm: SHA-256("swarm" ‖ author)[:20]."""
    return _key(b"swarm", author)


def encode_profile_record(entry_bytes: bytes, payload: bytes) -> bytes:
    """The canonical bytes of a profile record."""
    return encoding.encode({"entry": entry_bytes, "payload": payload})


def _reject(msg: str, reason: str) -> RecordRejected:
    return RecordRejected(msg, reason=reason)


def _checked_entry(data: bytes, now_ms: int) -> Entry:
    try:
        entry = decode_entry_untrusted(data)
    except ProtocolError as exc:
        if exc.reason in KEY_REASONS:
            # The decoder applies the key rules to the author; they are part of
            # strict verification, which spec/dht.md §5.4 counts as bad_signature.
            raise _reject(f"entry author: {exc.message}", "bad_signature") from None
        raise _reject(f"entry does not decode: {exc.message}", "malformed") from None
    try:
        entry.verify()
    except InvalidSignature as exc:
        raise _reject(f"entry signature: {exc.message}", "bad_signature") from None
    try:
        check_timestamp(entry, now_ms)
    except SchemaError as exc:
        raise _reject(exc.message, "from_future") from None
    return entry


def validate_record(kind: str, key: bytes, data: bytes, now_ms: int) -> Entry:
    """Check that ``data`` is a valid record of ``kind`` for slot ``key``.

    Args:
        kind: ``"head"`` or ``"profile"``.
        key: the 20-byte DHT key the record is offered for.
        data: the record bytes as received.
        now_ms: wall-clock milliseconds (for the future-timestamp rule).

    Returns:
        The record's entry (whose seq orders versions of the slot).

    Raises:
        RecordRejected: with the reason; any other exception is a bug.
    """
    if len(data) > MAX_RECORD_SIZE:
        raise _reject(f"record of {len(data)} bytes exceeds {MAX_RECORD_SIZE}", "too_large")
    if kind == HEAD:
        entry = _checked_entry(data, now_ms)
        if head_key(entry.author) != key:
            raise _reject("head record does not belong to this key", "wrong_key")
        return entry
    if kind == PROFILE:
        try:
            value = encoding.decode_untrusted(data, _PROFILE_LIMITS)
        except ProtocolError as exc:
            raise _reject(f"profile record: {exc.message}", "malformed") from None
        if (
            type(value) is not dict
            or set(value) != {"entry", "payload"}
            or type(value["entry"]) is not bytes
            or type(value["payload"]) is not bytes
        ):
            raise _reject("profile record must be {entry, payload}", "malformed")
        if len(value["payload"]) > MAX_PROFILE_PAYLOAD:
            raise _reject("profile payload too large for the DHT", "too_large")
        entry = _checked_entry(value["entry"], now_ms)
        if profile_key(entry.author) != key:
            raise _reject("profile record does not belong to this key", "wrong_key")
        if entry.kind != "profile":
            raise _reject(f"entry kind is {entry.kind!r}, not 'profile'", "wrong_kind")
        try:
            decode_payload_untrusted(entry, value["payload"])
        except ProtocolError as exc:
            raise _reject(f"profile payload: {exc.message}", "bad_payload") from None
        return entry
    raise _reject(f"unknown record kind {kind!r}", "wrong_kind")


@dataclass(slots=True)
class StoredRecord:
    """One record held for the network."""

    kind: str
    key: bytes
    data: bytes
    seq: int
    entry_id: bytes
    stored_at: float
    expires: float


class _Shares:
    """Which source (an IP address) stored which slot, so that a full store
    makes room from its largest holder: a flood from one address, or a few,
    evicts its own entries and nobody else's. Oldest first within a source."""

    def __init__(self) -> None:
        self._by_source: dict[str, OrderedDict[Any, None]] = {}
        self._source_of: dict[Any, str] = {}

    def add(self, slot: Any, source: str) -> None:
        self.remove(slot)
        self._by_source.setdefault(source, OrderedDict())[slot] = None
        self._source_of[slot] = source

    def remove(self, slot: Any) -> None:
        source = self._source_of.pop(slot, None)
        if source is not None:
            held = self._by_source[source]
            held.pop(slot, None)
            if not held:
                del self._by_source[source]

    def victim(self) -> Any:
        """The oldest slot of the source holding the most (None if empty)."""
        if not self._by_source:
            return None
        largest = max(self._by_source.values(), key=len)
        return next(iter(largest))

    def count(self, source: str) -> int:
        return len(self._by_source.get(source, ()))

    def owner(self, slot: Any) -> str | None:
        return self._source_of.get(slot)

    def largest(self) -> str | None:
        if not self._by_source:
            return None
        return max(self._by_source, key=lambda s: len(self._by_source[s]))


class RecordStore:
    """Head and profile records held by this node, bounded and expiring.

    Args:
        max_records: at most this many slots; when full, the oldest record
            of the source (IP address) that stored the most makes room.
        ttl: seconds a record lives unless it is stored again.
    """

    def __init__(self, *, max_records: int = 4096, ttl: float = 24 * 3600.0) -> None:
        self.max_records = max_records
        self.ttl = ttl
        self._records: dict[tuple[str, bytes], StoredRecord] = {}
        self._shares = _Shares()

    def put(
        self, kind: str, key: bytes, data: bytes, *, now: float, now_ms: int, source: str = ""
    ) -> StoredRecord:
        """Validate and store a record; only a higher seq replaces a stored one.

        Args:
            now: monotonic seconds (expiry clock); now_ms: wall-clock ms.
            source: who stored it (the sender's IP address; "" for ourselves).

        Returns:
            The stored record.

        Raises:
            RecordRejected: ``stale`` (lower seq), ``replayed`` (this very
                record is already held; its expiry is refreshed, nothing else
                changes), ``conflict`` (same seq, different entry: a fork), or
                any reason of :func:`validate_record`.
        """
        entry = validate_record(kind, key, data, now_ms)
        slot = (kind, key)
        old = self._records.get(slot)
        if old is not None and old.expires > now:
            if entry.seq < old.seq:
                raise _reject(f"seq {entry.seq} is older than stored {old.seq}", "stale")
            if entry.seq == old.seq:
                if entry.id == old.entry_id:
                    old.expires = now + self.ttl
                    raise _reject("this record is already stored", "replayed")
                raise _reject(f"another entry with seq {entry.seq} is stored", "conflict")
        elif len(self._records) >= self.max_records:
            self.expire(now)
            if len(self._records) >= self.max_records:
                victim = self._shares.victim()
                del self._records[victim]
                self._shares.remove(victim)
        rec = StoredRecord(kind, key, data, entry.seq, entry.id, now, now + self.ttl)
        self._records[slot] = rec
        self._shares.add(slot, source)
        return rec

    def get(self, kind: str, key: bytes, now: float) -> StoredRecord | None:
        """The live record in a slot, if any."""
        rec = self._records.get((kind, key))
        if rec is None or rec.expires <= now:
            return None
        return rec

    def expire(self, now: float) -> int:
        """Drop expired records; returns how many went."""
        dead = [slot for slot, r in self._records.items() if r.expires <= now]
        for slot in dead:
            del self._records[slot]
            self._shares.remove(slot)
        return len(dead)

    def records(self) -> list[StoredRecord]:
        """Every record held (for republishing)."""
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)


class SwarmStore:
    """Announcements of which nodes hold which feeds: bounded and expiring.

    Args:
        max_keys: swarms tracked at most; when full, the least recently
            announced swarm of the address that started the most makes room.
        max_peers: peers kept per swarm; when full, the entry expiring first
            of the address with the most entries there goes.
        max_per_host: entries one IP address may hold in one swarm (its
            oldest goes), so one host cannot push others out of a swarm.
        ttl: seconds an announcement lives.
    """

    def __init__(
        self,
        *,
        max_keys: int = 1024,
        max_peers: int = 32,
        max_per_host: int = 2,
        ttl: float = 1800.0,
    ) -> None:
        self.max_keys = max_keys
        self.max_peers = max_peers
        self.max_per_host = max_per_host
        self.ttl = ttl
        self._swarms: OrderedDict[bytes, dict[tuple[bytes, str], tuple[str, int, float]]] = (
            OrderedDict()
        )
        #: The relay an entry named, by (swarm, node id, host).
        self._relays: dict[tuple[bytes, bytes, str], tuple[bytes, str, int]] = {}
        self._shares = _Shares()

    def announce(
        self,
        key: bytes,
        node_id: bytes,
        host: str,
        port: int,
        now: float,
        relay: tuple[bytes, str, int] | None = None,
    ) -> None:
        """Record that ``node_id`` at ``host``:``port`` (TCP) holds the swarm's feed,
        reachable through ``relay`` (id, host, port) if it names one."""
        if not 0 < port < 65536 or len(node_id) != 20:
            raise _reject("bad peer address", "malformed")
        peers = self._swarms.get(key)
        if peers is None:
            if len(self._swarms) >= self.max_keys:
                self.expire(now)
                self._evict_swarm(host)
            peers = self._swarms[key] = {}
            # The swarm is charged to the address that started it.
            self._shares.add(key, host)
        else:
            self._swarms.move_to_end(key)
        # Entries are keyed by (node id, address): the node id in an
        # announce is not proven, so an announce from elsewhere naming a
        # listed node's id adds an entry and never replaces that node's.
        slot = (node_id, host)
        peers.pop(slot, None)
        for dead in [k for k, v in peers.items() if v[2] <= now]:
            del peers[dead]
        same_host = [k for k in peers if k[1] == host]
        if len(same_host) >= self.max_per_host:
            del peers[min(same_host, key=lambda k: peers[k][2])]
        if len(peers) >= self.max_peers:
            per_host: dict[str, list[tuple[bytes, str]]] = {}
            for k in peers:
                per_host.setdefault(k[1], []).append(k)
            crowd = max(per_host.values(), key=len)
            if len(crowd) < 2:
                # Every address holds one entry: the newcomer waits for one
                # to expire rather than pushing out someone who came first
                # (otherwise many addresses could empty a swarm of its peers).
                raise _reject("this swarm is full", "swarm_full")
            del peers[min(crowd, key=lambda k: peers[k][2])]
        peers[slot] = (host, port, now + self.ttl)
        if relay is None:
            self._relays.pop((key, node_id, host), None)
        else:
            self._relays[(key, node_id, host)] = relay
        if len(self._relays) > len(self):
            self._prune_relays()

    def _prune_relays(self) -> None:
        """Forget the relays of entries that are gone (evicted or expired)."""
        live = {(key, k[0], k[1]) for key, peers in self._swarms.items() for k in peers}
        for slot in [s for s in self._relays if s not in live]:
            del self._relays[slot]

    def relay_of(self, key: bytes, node_id: bytes, host: str) -> tuple[bytes, str, int] | None:
        """The relay a live entry named, if any."""
        return self._relays.get((key, node_id, host))

    def _evict_swarm(self, newcomer: str) -> None:
        """Make room for one swarm, from the address charged with the most.

        A swarm that others joined is not that address's alone: instead of
        evicting it, it is charged to its most recent other member, and the
        search goes on. So a flood of new keys from the address that started
        a swarm cannot take the swarm from the peers that joined it.
        """
        for _ in range(2 * self.max_keys + 1):
            if len(self._swarms) < self.max_keys:
                return
            victim = self._shares.victim()
            owner = self._shares.owner(victim)
            others = [k[1] for k in self._swarms[victim] if k[1] != owner]
            if others and owner == self._shares.largest():
                self._shares.add(victim, others[-1])
                continue
            del self._swarms[victim]
            self._shares.remove(victim)
        # Every swarm is shared and keeps moving: drop the oldest outright.
        while len(self._swarms) >= self.max_keys:
            victim, _ = self._swarms.popitem(last=False)
            self._shares.remove(victim)

    def peers(self, key: bytes, now: float, limit: int = 32) -> list[tuple[bytes, str, int]]:
        """Live peers of a swarm, most recently announced first."""
        peers = self._swarms.get(key)
        if not peers:
            return []
        live = [(k[0], h, p) for k, (h, p, exp) in reversed(peers.items()) if exp > now]
        return live[:limit]

    def expire(self, now: float) -> None:
        """Drop expired announcements and empty swarms."""
        for key in list(self._swarms):
            peers = self._swarms[key]
            for k in [k for k, v in peers.items() if v[2] <= now]:
                del peers[k]
            if not peers:
                del self._swarms[key]
                self._shares.remove(key)
        self._prune_relays()

    def __len__(self) -> int:
        return sum(len(p) for p in self._swarms.values())


class TokenIssuer:
    """BEP-5-style announce tokens bound to the requester's address.

    Args:
        secret: the initial random secret (randomness is passed in).
        now: the current time; rotation_s: seconds between rotations.
    """

    def __init__(self, secret: bytes, now: float, *, rotation_s: float = 300.0) -> None:
        self.rotation_s = rotation_s
        self._current = secret
        self._previous: bytes | None = None
        self._rotated_at = now

    def needs_rotation(self, now: float) -> bool:
        """Whether :meth:`rotate` is due."""
        return now - self._rotated_at >= self.rotation_s

    def rotate(self, secret: bytes, now: float) -> None:
        """Start using ``secret``; tokens of the secret before last die."""
        self._previous = self._current
        self._current = secret
        self._rotated_at = now

    @staticmethod
    def _make(secret: bytes, host: str, port: int) -> bytes:
        msg = TOKEN_TAG + host.encode("utf-8", "replace") + b"\x00" + port.to_bytes(2, "big")
        return hmac.new(secret, msg, hashlib.sha256).digest()[:TOKEN_SIZE]

    def issue(self, host: str, port: int) -> bytes:
        """The token for a requester at ``host``:``port``."""
        return self._make(self._current, host, port)

    def check(self, token: Any, host: str, port: int) -> None:
        """Accept a token issued to this address under the current or previous secret.

        Raises:
            RecordRejected: ``bad_token`` (expired, forged, or another address's).
        """
        if type(token) is bytes and len(token) == TOKEN_SIZE:
            for secret in (self._current, self._previous):
                if secret is not None and hmac.compare_digest(
                    token, self._make(secret, host, port)
                ):
                    return
        raise _reject("token is expired or was issued to another address", "bad_token")


_SCALARS = (int, float, bool, str, bytes)


class ValueStore:
    """Plain values of the ``kademlia`` package's ``store`` RPC: opaque, bounded.

    Args:
        max_items: values held at most (when full, the oldest value of the
            address that stored the most goes).
        max_value_size: bytes of a str/bytes value at most.
        ttl: seconds a value lives unless stored again.
    """

    def __init__(
        self, *, max_items: int = 4096, max_value_size: int = 1024, ttl: float = 24 * 3600.0
    ) -> None:
        self.max_items = max_items
        self.max_value_size = max_value_size
        self.ttl = ttl
        self._items: OrderedDict[bytes, tuple[Any, float, float]] = OrderedDict()
        self._shares = _Shares()

    def put(self, key: bytes, value: Any, now: float, *, source: str = "") -> None:
        """Store ``value`` under the 20-byte ``key`` (``source``: the sender's IP).

        Raises:
            RecordRejected: ``bad_value`` (not a scalar the package allows) or
                ``too_large``.
        """
        if type(value) not in _SCALARS or len(key) != 20:
            raise _reject("values are int, float, bool, str or bytes", "bad_value")
        if isinstance(value, (str, bytes)) and len(value) > self.max_value_size:
            raise _reject(f"value exceeds {self.max_value_size} bytes", "too_large")
        self._items.pop(key, None)
        self._items[key] = (value, now, now + self.ttl)
        self._shares.add(key, source)
        while len(self._items) > self.max_items:
            victim = self._shares.victim()
            del self._items[victim]
            self._shares.remove(victim)

    def get(self, key: bytes, now: float) -> Any:
        """The live value for ``key``, or None."""
        item = self._items.get(key)
        if item is None or item[2] <= now:
            return None
        return item[0]

    def items(self, now: float) -> list[tuple[bytes, Any, float]]:
        """(key, value, stored_at) of every live value."""
        return [(k, v, t) for k, (v, t, exp) in self._items.items() if exp > now]

    def expire(self, now: float) -> None:
        """Drop expired values."""
        for k in [k for k, v in self._items.items() if v[2] <= now]:
            del self._items[k]
            self._shares.remove(k)

    def __len__(self) -> int:
        return len(self._items)
