"""Observed addresses: what other nodes see as our address, and what that says
about the router in front of us (spec/dht.md, "Observed addresses").

A few proven contacts (nodes of ours, never stock ones) are asked ``observe``
now and then; each answers with the (ip, port) our request came from. A peer
can lie, so :class:`Observations` believes an address only when at least two
peers in different /24s (/48s for IPv6) report it, or two distinct peers when
every reporter shares one /24. From what is believed it tells:

* the mapping: ``consistent`` (the same public ip:port to every peer: a cone
  NAT or none), ``varying`` (one public ip, a different port per peer: a
  symmetric NAT), or ``unknown``;
* reachability: ``public`` (peers see the very ip:port we send from),
  ``behind_nat`` (they see another), or ``unknown``.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import socket
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

import trio

from ...protocol.dht import Contact
from ...protocol.dht.wire import parse_observe_reply
from ...protocol.errors import ProtocolError
from .common import Addr, DHTError, log
from .contacts import Contacts
from .engine import Caller

__all__ = [
    "Observations",
    "ObservedAddresses",
    "keep_latest",
    "proven_contacts",
    "reporter_group",
    "route_source_ip",
    "spread_by_network",
    "support_counter",
]

#: Reporters kept per /24 (/48): more from one network add nothing to a vote.
_PER_GROUP = 4
UNKNOWN = "unknown"
PUBLIC = "public"
BEHIND_NAT = "behind_nat"
CONSISTENT = "consistent"
VARYING = "varying"
_T = TypeVar("_T")


@functools.lru_cache(maxsize=4096)
def reporter_group(ip: str) -> str:
    """The network a reporter is counted in: its /24 (IPv4) or /48 (IPv6)."""
    # Cached: observe rounds and keep_latest ask it of the same few hundred
    # addresses again and again, and ipaddress parsing took 4 % of a 200-node
    # bootstrap's CPU.
    addr = ipaddress.ip_address(ip)
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def route_source_ip(dest: str) -> str | None:
    """The local address this host sends from towards ``dest`` (a route
    lookup by a connected UDP socket: nothing is sent), or None."""
    family = socket.AF_INET6 if ":" in dest else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((dest, 9))
            return str(s.getsockname()[0])
    except OSError:
        return None


def keep_latest(reports: OrderedDict[str, _T], reporter_ip: str, value: _T, limit: int) -> None:
    """Put ``reporter_ip``'s latest ``value`` into ``reports`` (oldest first),
    keeping at most 4 reporters per /24 (/48) and ``limit`` in all; beyond
    that the oldest of the most crowded network goes, so one network never
    pushes out the others."""
    reports.pop(reporter_ip, None)
    reports[reporter_ip] = value
    group = reporter_group(reporter_ip)
    mine = [ip for ip in reports if reporter_group(ip) == group]
    if len(mine) > _PER_GROUP:  # one network cannot crowd the others out
        del reports[mine[0]]
    while len(reports) > limit:
        counts = Counter(reporter_group(ip) for ip in reports)
        crowded = max(counts.values())
        oldest = next(ip for ip in reports if counts[reporter_group(ip)] == crowded)
        del reports[oldest]


def support_counter(reporters: Iterable[str]) -> Callable[[Iterable[str]], int]:
    """The belief rule over the current ``reporters``: the returned function
    counts the distinct /24s (/48s) among some of them, or, when every current
    reporter is in one network, the distinct reporter IPs. A claim is
    believed when it counts 2 or more."""
    groups = {ip: reporter_group(ip) for ip in reporters}
    by_group = len(set(groups.values())) >= 2

    def support(some: Iterable[str]) -> int:
        chosen = set(some)
        return len({groups[r] for r in chosen}) if by_group else len(chosen)

    return support


def proven_contacts(contacts: Contacts) -> list[Contact]:
    """The routing table's contacts that proved their key, shuffled."""
    proven = [c for c in contacts.table.contacts() if contacts.is_proven(c)]
    random.shuffle(proven)
    return proven


def spread_by_network(candidates: list[Contact], n: int) -> list[Contact]:
    """Up to ``n`` of ``candidates``, one per /24 (/48) first, then the rest, in order."""
    picked: list[Contact] = []
    seen: set[str] = set()
    for c in candidates:
        g = reporter_group(c.host)
        if g not in seen:
            seen.add(g)
            picked.append(c)
    picked += [c for c in candidates if c not in picked]
    return picked[:n]


class _Report(NamedTuple):
    observed: Addr
    local: Addr
    at: float


class Observations:
    """A bounded tally of reports, one (the latest) per reporter address.

    At most 4 reporters per /24 (/48) are kept, the newest; beyond
    ``max_reports`` the oldest of the most crowded network goes first, so
    reports from one network never push out those of others.

    Args:
        max_reports: reporters kept.
        ttl: seconds a report counts for.
    """

    def __init__(self, max_reports: int = 32, ttl: float = 1800.0) -> None:
        self._max = max_reports
        self._ttl = ttl
        self._reports: OrderedDict[str, _Report] = OrderedDict()

    def __len__(self) -> int:
        return len(self._reports)

    def add(self, reporter_ip: str, observed: Addr, local: Addr, now: float) -> None:
        """Record that ``reporter_ip`` saw our request come from ``observed``,
        sent from our ``local`` (ip, port)."""
        keep_latest(self._reports, reporter_ip, _Report(observed, local, now), self._max)

    def _current(self, now: float) -> dict[str, _Report]:
        for ip in [ip for ip, r in self._reports.items() if now - r.at > self._ttl]:
            del self._reports[ip]
        return dict(self._reports)

    def summary(self, now: float) -> dict[str, Any]:
        """``reachability``, ``nat_mapping``, ``observed_addrs`` (believed
        ``ip:port``), ``observed_ips`` (believed ips) and ``observers`` (count)."""
        reports = self._current(now)
        support = support_counter(reports)

        by_addr: dict[Addr, set[str]] = {}
        by_ip: dict[str, set[str]] = {}
        for r_ip, rep in reports.items():
            by_addr.setdefault(rep.observed, set()).add(r_ip)
            by_ip.setdefault(rep.observed[0], set()).add(r_ip)
        addrs = sorted(a for a, rs in by_addr.items() if support(rs) >= 2)
        ips = sorted(ip for ip, rs in by_ip.items() if support(rs) >= 2)
        mapping = UNKNOWN
        if addrs:
            mapping = CONSISTENT
        elif any(len({a[1] for a in by_addr if a[0] == ip}) >= 2 for ip in ips):
            mapping = VARYING
        reach = UNKNOWN
        if any(support({r for r in by_addr[a] if reports[r].local == a}) >= 2 for a in addrs):
            reach = PUBLIC
        elif ips:
            reach = BEHIND_NAT
        return {
            "reachability": reach,
            "nat_mapping": mapping,
            "observed_addrs": [_fmt(a) for a in addrs],
            "observed_ips": ips,
            "observers": len(reports),
        }


def _fmt(addr: Addr) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ObservedAddresses:
    """Asks proven contacts where our requests come from, and keeps the tally.

    Rounds ask at most ``per_round`` contacts (different /24s first); the
    first rounds come quickly (``first_delay``, doubling up to 8 s) until two
    peers answered, then every ``interval`` seconds.

    Args:
        caller: sends requests.
        contacts: the routing table and who proved their key.
        source_ip: the route lookup (``dest ip -> our ip``), injectable for tests.
    """

    def __init__(
        self,
        caller: Caller,
        contacts: Contacts,
        *,
        per_round: int = 4,
        first_delay: float = 0.5,
        interval: float = 300.0,
        source_ip: Callable[[str], str | None] = route_source_ip,
    ) -> None:
        self._caller = caller
        self._contacts = contacts
        self._per_round = per_round
        self._first_delay = first_delay
        self._interval = interval
        self._source_ip = source_ip
        self.observations = Observations()
        self._stats: Counter[str] = Counter()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ask a round of contacts now and then, until cancelled."""
        task_status.started()
        delay = self._first_delay
        while True:
            await self.round()
            if len(self.observations) >= 2:
                delay = self._interval
            await trio.sleep(delay)
            # Still learning: keep asking, at most per_round requests per 8 s.
            delay = min(delay * 2, self._interval if len(self.observations) >= 2 else 8.0)

    def _targets(self) -> list[Contact]:
        return spread_by_network(proven_contacts(self._contacts), self._per_round)

    async def round(self) -> int:
        """Ask one round of contacts; returns how many answered."""
        targets = self._targets()
        answered = 0

        async def ask(c: Contact) -> None:
            nonlocal answered
            try:
                reply = await self._caller.call(c.addr, "observe", [self._contacts.node_id])
                observed = parse_observe_reply(reply)
            except (DHTError, ProtocolError) as exc:
                self._stats[f"observe_failed_{getattr(exc, 'reason', 'error')}"] += 1
                return
            self._record(c.host, observed)
            answered += 1

        async with trio.open_nursery() as nursery:
            for c in targets:
                nursery.start_soon(ask, c)
        return answered

    def _record(self, reporter_ip: str, observed: Addr) -> None:
        try:
            host, port = self._caller.address
        except DHTError:
            return
        if host in ("0.0.0.0", "::", ""):
            host = self._source_ip(reporter_ip) or host
        self._stats["observe_answers"] += 1
        before = self.summary()["observed_addrs"]
        self.observations.add(reporter_ip, observed, (host, port), trio.current_time())
        after = self.summary()
        if after["observed_addrs"] != before:
            log.info(
                "observed address: %s (%s, mapping %s)",
                ", ".join(after["observed_addrs"]) or "none agreed",
                after["reachability"],
                after["nat_mapping"],
            )

    def summary(self) -> dict[str, Any]:
        """As :meth:`Observations.summary`, now."""
        return self.observations.summary(trio.current_time())

    def statistics(self) -> dict[str, int]:
        """Counters: answers, failures by reason."""
        return dict(self._stats)
