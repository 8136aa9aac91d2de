"""LAN discovery (spec/dht.md §12): find nodes on our links with no bootstrap address.

The service multicasts an announcement (node id, DHT port, link port) on each
of its IPv4 links, at start and then about every 30 seconds, with a TTL of 1
so that no router forwards it. On hearing another node's announcement it
proves that node's key with a DHT ``hello`` and only then adds it to the
routing table (:meth:`DHTNode.meet`); from there the DHT finds swarms and
feeds through it as through any contact. The decisions (what to prove, how
often, when to announce) are :class:`~p2psocial.protocol.lan.LanListener`'s;
this module owns the socket and the tasks.

Which links: with ``listen`` a wildcard (0.0.0.0 or ::), every IPv4 interface that is up,
multicast-capable and not loopback; with ``listen`` one address, the interface
holding it. Loopback is never a LAN, so a node listening on 127.0.0.1 stays
quiet (tests pass their own interfaces). ``policy.lan_discovery`` switches the
service off, at once; so does ``P2PSOCIAL_LAN_DISCOVERY=off`` in the
environment, whatever the policy says (test suites and containers use it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ..protocol.errors import DecodeError, ProtocolError
from ..protocol.lan import (
    LAN_GROUP,
    LAN_MAX_DATAGRAM,
    LAN_PORT,
    LanAnnounce,
    LanListener,
    LanVerdict,
    decode_lan_announce_untrusted,
    encode_lan_announce,
)
from .activity import LimitedLog, short_node
from .dht import DHTError, DHTNode

__all__ = ["LAN_ENV", "Interface", "LanDiscovery", "lan_allowed", "lan_interfaces", "link_path"]

log = logging.getLogger("p2psocial.lan")

#: Set to ``off`` (or ``0``, ``false``, ``no``) to keep LAN discovery off whatever the policy says.
LAN_ENV = "P2PSOCIAL_LAN_DISCOVERY"
#: Interfaces announced on at most (one datagram each per round).
MAX_INTERFACES = 16
#: Announcements waiting for a hello worker; beyond it they are dropped (``queue_full``).
PROVE_QUEUE = 16
PROVE_WORKERS = 2
#: Seconds between checks of the policy switch.
SWITCH_POLL = 1.0
#: Seconds between looks for an interface, or tries to bind the port, when there was none.
IDLE_POLL = 10.0

# Linux values where the socket module lacks them.
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B
_IFF_UP, _IFF_LOOPBACK, _IFF_MULTICAST = 0x1, 0x8, 0x1000


def lan_allowed() -> bool:
    """Whether the environment allows LAN discovery (see :data:`LAN_ENV`)."""
    return os.environ.get(LAN_ENV, "").strip().lower() not in ("off", "0", "false", "no")


def link_path(
    peer: dict[str, Any],
    lan: LanDiscovery | None,
    mapped_from: Callable[[str], bool] | None = None,
) -> str:
    """The ``path`` of a link in ``peers`` (a row of the pool's ``peers()``):
    the pool's own label, except that a direct link to a LAN peer is ``lan``,
    and an inbound direct link that ``mapped_from`` says came through this
    node's port mapping (spec/portmap.md) is ``mapped``."""
    path = str(peer.get("path", "direct"))
    if path != "direct":
        return path
    if lan is not None and bytes.fromhex(peer["node_id"]) in lan.lan_peers():
        return "lan"
    if (
        mapped_from is not None
        and peer.get("direction") == "inbound"
        and mapped_from(str(peer.get("host", "")))
    ):
        return "mapped"
    return path


def local_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of this host's interfaces that are up (loopback included)."""
    found: list[ipaddress.IPv4Network] = []
    try:
        names = [name for _index, name in socket.if_nameindex()]
    except OSError:
        return found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            try:
                flags = struct.unpack_from("H", _ioctl_ifreq(probe, _SIOCGIFFLAGS, name), 16)[0]
                addr = socket.inet_ntoa(_ioctl_ifreq(probe, _SIOCGIFADDR, name)[20:24])
                mask = socket.inet_ntoa(_ioctl_ifreq(probe, _SIOCGIFNETMASK, name)[20:24])
            except OSError:
                continue  # no IPv4 address, or gone meanwhile
            if flags & _IFF_UP:
                found.append(ipaddress.IPv4Network(f"{addr}/{mask}", strict=False))
    return found


def off_link(host: str, networks: list[ipaddress.IPv4Network]) -> bool:
    """Whether ``host`` is an IPv4 address outside every one of ``networks``
    (so it reached this host through a router)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.version != 4:
        return False
    return not any(ip in net for net in networks)


@dataclass(frozen=True, slots=True)
class Interface:
    """An IPv4 interface to announce on: its name and its address."""

    name: str
    addr: str


def _ioctl_ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))


def lan_interfaces(listen: str) -> list[Interface]:
    """The interfaces LAN discovery uses for a node listening on ``listen`` (module doc)."""
    try:
        wanted = ipaddress.ip_address(listen)
    except ValueError:
        return []
    if wanted.is_loopback:
        return []
    if wanted.version == 6:
        if not wanted.is_unspecified:
            return []  # one IPv6 address: announcements are IPv4 only
        # "::" takes IPv4 too (dual stack): the same interfaces as 0.0.0.0.
        wanted = ipaddress.IPv4Address("0.0.0.0")
    found: list[Interface] = []
    try:
        names = [name for _index, name in socket.if_nameindex()]
    except OSError:
        return []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            try:
                flags = struct.unpack_from("H", _ioctl_ifreq(probe, _SIOCGIFFLAGS, name), 16)[0]
                addr = socket.inet_ntoa(_ioctl_ifreq(probe, _SIOCGIFADDR, name)[20:24])
            except OSError:
                continue  # no IPv4 address, or gone meanwhile
            if wanted.is_unspecified:
                usable = flags & _IFF_UP and flags & _IFF_MULTICAST and not flags & _IFF_LOOPBACK
                if usable:
                    found.append(Interface(name, addr))
            elif addr == listen:
                found.append(Interface(name, addr))
    return found[:MAX_INTERFACES]


class LanDiscovery:
    """The LAN discovery service of one node.

    Args:
        dht: the running DHT; announcements name its port, and proven
            announcers join its routing table.
        link_port: the TCP port of our link listener (0: none), read at each round.
        listen: the node's listen address, which picks the interfaces.
        enabled: read every second; while False the service sends nothing and
            holds no socket (``policy.lan_discovery``).
        interfaces: overrides :func:`lan_interfaces` (tests announce on loopback).
        group, port: the multicast group and port (spec/dht.md §12.1).
        listener: the decisions; a default :class:`LanListener` for our node id.
    """

    def __init__(
        self,
        dht: DHTNode,
        link_port: Callable[[], int],
        listen: str = "0.0.0.0",
        *,
        enabled: Callable[[], bool] = lambda: True,
        interfaces: Callable[[], list[Interface]] | None = None,
        group: str = LAN_GROUP,
        port: int = LAN_PORT,
        listener: LanListener | None = None,
    ) -> None:
        self._dht = dht
        self._link_port = link_port
        self._enabled = enabled
        self._interfaces = interfaces or (lambda: lan_interfaces(listen))
        self.group = group
        self.port = port
        self.listener = listener or LanListener(dht.node_id)
        #: Addresses of the interfaces joined in the last round.
        self._joined: set[str] = set()
        #: Set when a proof may have brought our next announcement forward.
        self._sooner = trio.Event()
        self._stats: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._events = LimitedLog(log)

    # -- introspection ---------------------------------------------------------

    def lan_peers(self) -> set[bytes]:
        """Node ids of the announcers proven lately (links to them are path ``lan``)."""
        self.listener.expire(trio.current_time())
        return set(self.listener.found)

    def statistics(self) -> dict[str, Any]:
        """Announcements sent and heard, drops by reason, LAN peers found."""
        return {
            "announcements_sent": self._stats["sent"],
            "send_failed": self._stats["send_failed"],
            "socket_failed": self._stats["socket_failed"],
            "join_failed": self._stats["join_failed"],
            "interfaces": len(self._joined),
            "announcements_heard": self._stats["heard"],
            "repeats": self._stats["repeats"],
            "dropped": dict(self._dropped),
            "peers_found": self._stats["found"],
            "lan_peers": len(self.lan_peers()),
        }

    # -- running -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Announce and listen while enabled; until cancelled.

        Calls ``task_status.started()`` once the socket is listening and the
        first announcement is out; or at once when disabled, when there is
        no interface to announce on (then no socket is held, and interfaces
        are looked for every ``IDLE_POLL`` seconds), or when the socket cannot
        be bound (counted ``socket_failed``, tried again as often).
        """
        started = False
        while True:
            if not self._enabled():
                wait = SWITCH_POLL
            elif not self._interfaces():
                wait = IDLE_POLL
            else:
                try:
                    sock = await self._open()
                except OSError as exc:
                    self._stats["socket_failed"] += 1
                    log.warning("LAN discovery cannot listen on port %d: %s", self.port, exc)
                    wait = IDLE_POLL
                else:
                    with sock:
                        await self._serve(sock, task_status if not started else None)
                    started = True
                    continue
            if not started:
                task_status.started()
                started = True
            await trio.sleep(wait)

    async def _serve(
        self, sock: trio.socket.SocketType, task_status: trio.TaskStatus[None] | None
    ) -> None:
        """Announce, listen and prove on ``sock`` until the switch goes off."""
        send, recv = trio.open_memory_channel[tuple[LanAnnounce, str]](PROVE_QUEUE)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._until_disabled, nursery.cancel_scope)
                nursery.start_soon(self._receive_loop, sock, send)
                for _ in range(PROVE_WORKERS):
                    nursery.start_soon(self._prove_worker, recv.clone())
                await nursery.start(self._announce_loop, sock)
                if task_status is not None:
                    task_status.started()
        finally:
            self._joined.clear()

    async def _open(self) -> trio.socket.SocketType:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        try:
            # Several nodes on one host share the group's port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            with contextlib.suppress(OSError):  # Linux: only the groups this socket joined
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            with contextlib.suppress(OSError):  # the destination address of each datagram
                sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            await sock.bind(("0.0.0.0", self.port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def _until_disabled(self, scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(SWITCH_POLL)
            if not self._enabled():
                scope.cancel()
                return

    def _join(self, sock: trio.socket.SocketType, iface: Interface) -> bool:
        # Joined again every round: an interface that went down and came
        # back has lost its membership; one still joined answers EADDRINUSE.
        mreq = socket.inet_aton(self.group) + socket.inet_aton(iface.addr)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:  # already a member there
                self._stats["join_failed"] += 1
                return False
        self._joined.add(iface.addr)
        return True

    async def announce_once(self, sock: trio.socket.SocketType) -> int:
        """One round: join the group and send one announcement on each interface.

        Returns:
            How many were sent.
        """
        datagram = encode_lan_announce(
            LanAnnounce(self._dht.node_id, self._dht.address[1], self._link_port())
        )
        self._joined.clear()  # the interfaces of this round
        sent = 0
        for iface in self._interfaces()[:MAX_INTERFACES]:
            if not self._join(sock, iface):
                continue
            try:
                sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface.addr)
                )
                await sock.sendto(datagram, (self.group, self.port))
            except OSError:
                self._stats["send_failed"] += 1
                self._joined.discard(iface.addr)
                continue
            sent += 1
        self._stats["sent"] += sent
        return sent

    async def _announce_loop(
        self, sock: trio.socket.SocketType, *, task_status: trio.TaskStatus[None]
    ) -> None:
        listener = self.listener
        while True:
            await self.announce_once(sock)
            listener.announced(trio.current_time(), random.random())
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            # A newly proven peer may bring the deadline forward (min_gap).
            while (due := listener.next_announce()) is not None and trio.current_time() < due:
                with trio.move_on_at(due):
                    await self._sooner.wait()
                self._sooner = trio.Event()

    async def _receive_loop(
        self,
        sock: trio.socket.SocketType,
        send: trio.MemorySendChannel[tuple[LanAnnounce, str]],
    ) -> None:
        anc_size = socket.CMSG_SPACE(12)
        while True:
            try:
                data, anc, _flags, src = await sock.recvmsg(LAN_MAX_DATAGRAM + 1, anc_size)
            except OSError:
                self._dropped["socket_error"] += 1
                continue
            self._stats["heard"] += 1
            reason = self._check(data, anc)
            if reason is None:
                try:
                    announce = decode_lan_announce_untrusted(data)
                except DecodeError as exc:
                    reason = exc.reason
            if reason is not None:
                self._dropped[reason] += 1
                continue
            host = str(src[0])  # type: ignore[index]  # an AF_INET (host, port)
            verdict = self.listener.heard(announce, host, trio.current_time())
            if verdict is LanVerdict.KNOWN:
                self._stats["repeats"] += 1
            elif verdict is not LanVerdict.PROVE:
                self._dropped[verdict.value] += 1
            else:
                try:
                    send.send_nowait((announce, host))
                except trio.WouldBlock:
                    self._dropped["queue_full"] += 1

    def _check(self, data: bytes, anc: list[tuple[int, int, bytes]]) -> str | None:
        """Drop datagrams sent to our port but not to the group (unicast from afar)."""
        for level, kind, body in anc:
            if (
                level == socket.IPPROTO_IP
                and kind == _IP_PKTINFO
                and len(body) >= 12
                and body[8:12] != socket.inet_aton(self.group)
            ):
                return "not_multicast"
        return None

    async def _prove_worker(self, recv: trio.MemoryReceiveChannel[tuple[LanAnnounce, str]]) -> None:
        async for announce, host in recv:
            proven = False
            try:
                await self._dht.meet(announce.node_id, (host, announce.dht_port))
                proven = True
            except (DHTError, ProtocolError) as exc:
                self._dropped["not_proven"] += 1
                self._events.info(
                    ("not_proven", host),
                    trio.current_time(),
                    "LAN announcement from %s: no key proof (%s)",
                    host,
                    exc,
                )
            if proven and announce.node_id not in self.listener.found:
                self._stats["found"] += 1
                self._events.info(
                    ("found", announce.node_id),
                    trio.current_time(),
                    "LAN peer %s at %s:%d",
                    short_node(announce.node_id),
                    host,
                    announce.dht_port,
                )
            self.listener.done(announce, host, trio.current_time(), proven=proven)
            self._sooner.set()
