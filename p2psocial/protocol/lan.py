"""LAN discovery announcements (spec/dht.md §12): the datagram and the listener's decisions.

A node multicasts a small fixed-layout datagram on its links, naming its node
id, its DHT port and its link port. Nothing in it is trusted: a listener only
learns where to send a DHT ``hello`` (spec/dht.md §4.1), and adds the
announcer to its routing table once that proof verifies.

:class:`LanListener` decides what to do with each announcement heard: ignore
our own, skip one handled recently, refuse beyond the answer rate, or prove
it. It also paces our own announcements. Time is an argument; nothing here
reads a clock or touches a socket.

Theory of the listener, per announcer (node id, host, DHT port)::

    unknown --heard, tokens left--> proving --proven--> found   (kept ``recheck`` s)
                                            --failed--> failed  (kept ``recheck`` s)
    found / failed --``recheck`` s later, heard--> proving

A LAN peer (an announcer proven) stays one for ``2 * recheck`` seconds after
its last proof: one that is still there is heard and proven again in between.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from .errors import DecodeError, LocalUsageError
from .ratelimit import TokenBucket

__all__ = [
    "LAN_ANNOUNCE_SIZE",
    "LAN_GROUP",
    "LAN_MAX_DATAGRAM",
    "LAN_PORT",
    "LAN_TAG",
    "LAN_VERSION",
    "LanAnnounce",
    "LanListener",
    "LanVerdict",
    "decode_lan_announce_untrusted",
    "encode_lan_announce",
]

#: The IPv4 group announcements go to: in the IPv4 Local Scope (RFC 2365, 239.255.0.0/16).
LAN_GROUP = "239.255.80.83"
#: The UDP port of the group.
LAN_PORT = 24_737
#: The 8 bytes every announcement starts with.
LAN_TAG = b"p2ps-lan"
LAN_VERSION = 1
#: The size of a version 1 announcement: tag, version, flags, node id, two ports.
LAN_ANNOUNCE_SIZE = 8 + 1 + 1 + 20 + 2 + 2
#: Datagrams over this are refused unread (later versions stay within it).
LAN_MAX_DATAGRAM = 64
_HEADER = len(LAN_TAG) + 1


@dataclass(frozen=True, slots=True)
class LanAnnounce:
    """One announcement: who says it runs where (claims, until proven)."""

    node_id: bytes
    #: The UDP port of the announcer's DHT, at the datagram's source address.
    dht_port: int
    #: The TCP port of its link listener; 0 when it has none.
    link_port: int


def encode_lan_announce(announce: LanAnnounce) -> bytes:
    """The version 1 datagram for ``announce``.

    Raises:
        LocalUsageError: a node id that is not 20 bytes, a DHT port outside
            1..65535 or a link port outside 0..65535.
    """
    if type(announce.node_id) is not bytes or len(announce.node_id) != 20:
        raise LocalUsageError("node id must be 20 bytes")
    if type(announce.dht_port) is not int or not 0 < announce.dht_port < 65536:
        raise LocalUsageError(f"dht port must be 1..65535, not {announce.dht_port!r}")
    if type(announce.link_port) is not int or not 0 <= announce.link_port < 65536:
        raise LocalUsageError(f"link port must be 0..65535, not {announce.link_port!r}")
    return b"".join(
        (
            LAN_TAG,
            bytes((LAN_VERSION, 0)),
            announce.node_id,
            announce.dht_port.to_bytes(2, "big"),
            announce.link_port.to_bytes(2, "big"),
        )
    )


def decode_lan_announce_untrusted(data: bytes) -> LanAnnounce:
    """Parse an announcement datagram heard on the LAN.

    The checks run in the order of spec/dht.md §12.2, each naming the reason.
    Flag bits are reserved: sent as 0, ignored on receipt.

    Returns:
        The announcement, its fields unverified.

    Raises:
        DecodeError: ``too_large``, ``truncated``, ``bad_tag``,
            ``unsupported_version``, ``bad_length`` or ``bad_port``. Any other
            exception is a bug.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("announcement is not bytes", reason="truncated")
    size = len(data)
    if size > LAN_MAX_DATAGRAM:
        raise DecodeError(f"announcement of {size} bytes", reason="too_large")
    raw = bytes(data)
    if size < _HEADER:
        raise DecodeError(f"announcement of {size} bytes", reason="truncated")
    if raw[: len(LAN_TAG)] != LAN_TAG:
        raise DecodeError("not a p2psocial LAN announcement", reason="bad_tag")
    version = raw[len(LAN_TAG)]
    if version != LAN_VERSION:
        raise DecodeError(f"announcement version {version}", reason="unsupported_version")
    if size != LAN_ANNOUNCE_SIZE:
        raise DecodeError(f"version 1 announcement of {size} bytes", reason="bad_length")
    dht_port = int.from_bytes(raw[30:32], "big")
    if dht_port == 0:
        raise DecodeError("announcement names DHT port 0", reason="bad_port")
    return LanAnnounce(raw[10:30], dht_port, int.from_bytes(raw[32:34], "big"))


class LanVerdict(Enum):
    """What to do with one announcement heard."""

    #: Our own, looped back (or a copy from another of our links).
    SELF = "self"
    #: The same announcer was proven, failed or is being proven within ``recheck``.
    KNOWN = "known"
    #: Over the answer rate: dropped unanswered.
    RATE_LIMITED = "rate_limited"
    #: Send it a ``hello``; report the outcome with :meth:`LanListener.done`.
    PROVE = "prove"


Announcer = tuple[bytes, str, int]


class LanListener:
    """The decisions of LAN discovery: which announcements to prove, and when to announce.

    Args:
        node_id: our node id (our own announcements are ignored).
        interval: seconds between our announcements (30), each drawn within
            ``jitter`` (5) of it.
        answer_burst, answer_rate: hellos sent to announcers, at most
            ``answer_burst`` at once and ``answer_rate`` per second after (8, 2).
        recheck: seconds an announcer stays handled (300); heard again after,
            it is proven again.
        min_gap: seconds between two of our announcements at least (1): a
            newly proven announcer makes us announce early, so that it learns
            of us now rather than a whole interval later.
        max_announcers: announcers remembered at most (256), least recent forgotten.
    """

    def __init__(
        self,
        node_id: bytes,
        *,
        interval: float = 30.0,
        jitter: float = 5.0,
        answer_burst: int = 8,
        answer_rate: float = 2.0,
        recheck: float = 300.0,
        min_gap: float = 1.0,
        max_announcers: int = 256,
    ) -> None:
        if not 0 <= jitter < interval:
            raise LocalUsageError("jitter must be at least 0 and below the interval")
        self.node_id = node_id
        self.interval = interval
        self.jitter = jitter
        self.recheck = recheck
        self.min_gap = min_gap
        self._last_announce: float | None = None
        self._next_announce: float | None = None
        self.max_announcers = max_announcers
        self._bucket = TokenBucket(answer_burst, answer_rate)
        #: announcer -> until when it counts as handled.
        self._handled: OrderedDict[Announcer, float] = OrderedDict()
        #: node id -> (host, DHT port, link port) of announcers proven, newest last.
        self.found: OrderedDict[bytes, tuple[str, int, int]] = OrderedDict()
        #: node id -> when its last proof came in (``found``'s order).
        self._proven_at: dict[bytes, float] = {}

    def heard(self, announce: LanAnnounce, host: str, now: float) -> LanVerdict:
        """Decide about ``announce``, heard from ``host`` at ``now``.

        A PROVE verdict marks the announcer as handled at once, so copies
        heard while its hello runs are KNOWN.
        """
        if announce.node_id == self.node_id:
            return LanVerdict.SELF
        who = (announce.node_id, host, announce.dht_port)
        until = self._handled.get(who)
        if until is not None and until > now:
            return LanVerdict.KNOWN
        if not self._bucket.take(now):
            return LanVerdict.RATE_LIMITED
        self._remember(who, now)
        return LanVerdict.PROVE

    def done(self, announce: LanAnnounce, host: str, now: float, *, proven: bool) -> None:
        """Record the outcome of the hello a PROVE verdict asked for.

        An announcer proven for the first time brings our next announcement
        forward to ``min_gap`` after the last one.
        """
        self._remember((announce.node_id, host, announce.dht_port), now)
        if not proven:
            return
        self.expire(now)
        new = announce.node_id not in self.found
        self.found.pop(announce.node_id, None)
        self.found[announce.node_id] = (host, announce.dht_port, announce.link_port)
        self._proven_at[announce.node_id] = now
        while len(self.found) > self.max_announcers:
            gone, _ = self.found.popitem(last=False)
            del self._proven_at[gone]
        if new and self._next_announce is not None and self._last_announce is not None:
            self._next_announce = min(self._next_announce, self._last_announce + self.min_gap)

    def expire(self, now: float) -> None:
        """Forget the LAN peers not proven again within ``2 * recheck`` of ``now``."""
        while self.found:
            oldest = next(iter(self.found))
            if self._proven_at[oldest] + 2 * self.recheck > now:
                return
            del self.found[oldest], self._proven_at[oldest]

    def announced(self, now: float, unit: float) -> float:
        """We announced at ``now``; returns when to announce next.

        Args:
            unit: a uniform random number in [0, 1) from the caller (the jitter).
        """
        self._last_announce = now
        self._next_announce = now + self.interval - self.jitter + 2 * self.jitter * unit
        return self._next_announce

    def next_announce(self) -> float | None:
        """When our next announcement is due (None before the first: at once)."""
        return self._next_announce

    def _remember(self, who: Announcer, now: float) -> None:
        self._handled.pop(who, None)
        self._handled[who] = now + self.recheck
        while len(self._handled) > self.max_announcers:
            self._handled.popitem(last=False)
