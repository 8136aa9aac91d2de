"""Asks the home router for port mappings (spec/portmap.md).

:class:`PortMapper` maps the node's TCP link port and UDP DHT port at the
gateway with PCP, falling back to NAT-PMP and then UPnP-IGD, renews the
mappings at half their lifetime and removes them (lifetime 0, or IGD's
DeletePortMapping) when it stops. The messages and timings are
protocol/portmap.py's and protocol/igd.py's; this module only moves bytes.

It is bounded: an exchange is at most ATTEMPTS sends per protocol (an IGD
search 4 datagrams, an IGD action one HTTP request of IGD_TIMEOUT), and a
round that gets no usable answer is followed by a back-off of 5 minutes,
doubling to an hour. Datagrams from anyone but the gateway never reach it
(the PCP socket is connected, SSDP answers from elsewhere are dropped), an
IGD must be at the gateway's address, and bad answers are dropped and counted.

The gateway is the default route's (``/proc/net/route``) unless the
``[node] portmap_gateway`` setting names one (``HOST`` or ``HOST:PORT``, or
``none`` for no mapping at all).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ..protocol import igd
from ..protocol import portmap as pm
from ..protocol.errors import DecodeError

__all__ = ["NO_GATEWAY", "PortMapper", "default_gateway", "parse_gateway"]

log = logging.getLogger("p2psocial.portmap")

#: The ``portmap_gateway`` value that turns mapping off.
NO_GATEWAY = "none"
#: Seconds the removals on shutdown may take, in all.
REMOVE_TIMEOUT = 1.5
#: Seconds an IGD HTTP exchange (connect, request, answer) may take.
IGD_TIMEOUT = 3.0
#: Seconds to wait for SSDP answers after each of the two searches.
SEARCH_WAITS = (1.0, 2.0)
#: The multicast TTL of an SSDP search (UDA 1.1's default).
SEARCH_TTL = 2
#: Most reads of one IGD HTTP answer (a gateway trickling it is dropped).
IGD_MAX_READS = 256
#: Other external ports an IGD mapping tries when the first is taken (718).
IGD_CONFLICT_TRIES = 2
_IGD_TRANSPORT = {pm.PROTO_TCP: "TCP", pm.PROTO_UDP: "UDP"}
# UPnP error codes (WANIPConnection:1 and :2).
_IGD_CONFLICT = 718
_IGD_SAME_PORTS = 724
_IGD_PERMANENT_ONLY = 725

Response = pm.Mapping | pm.ExternalAddress | pm.Unsupported


def default_gateway(route_file: Path = Path("/proc/net/route")) -> str | None:
    """The IPv4 gateway of the default route, or None (no such route, not Linux)."""
    try:
        lines = route_file.read_text(encoding="ascii").splitlines()[1:]
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        cols = line.split()
        # Destination 0 and the RTF_GATEWAY flag (2): a default route via a router.
        if len(cols) >= 4 and cols[1] == "00000000":
            with contextlib.suppress(ValueError, struct.error):
                if int(cols[3], 16) & 2:
                    return socket.inet_ntoa(struct.pack("<I", int(cols[2], 16)))
    return None


def parse_gateway(setting: str) -> tuple[str, int] | None:
    """The gateway to ask for a ``portmap_gateway`` setting ("" = the default
    route's, ``none`` = no gateway); None when there is none.

    Raises:
        ValueError: the setting is not HOST or HOST:PORT with an IPv4 HOST.
    """
    if setting == NO_GATEWAY:
        return None
    if not setting:
        gw = default_gateway()
        return (gw, pm.GATEWAY_PORT) if gw is not None else None
    host, sep, port = setting.partition(":")
    socket.inet_aton(host)  # raises OSError (a ValueError subclass is wanted)
    if sep and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"bad gateway port in {setting!r}")
    return host, int(port) if sep else pm.GATEWAY_PORT


def _usable_external(ip: ipaddress.IPv4Address) -> bool:
    """Whether a gateway's claimed external address can be one: not
    unspecified, loopback, link-local, multicast or reserved (240/4 and the
    broadcast address). Private and shared ones can (a router behind another)."""
    return not (
        ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
    )


@dataclass(slots=True)
class _Held:
    transport: int
    internal_port: int
    external_port: int
    lifetime: int
    nonce: bytes


class PortMapper:
    """Holds mappings of ``ports`` at ``gateway`` while :meth:`run` runs.

    Args:
        gateway: (IPv4, UDP port) of the gateway.
        ports: (transport, internal port) pairs; the first is the link port,
            whose external address is announced.
        lifetime: seconds asked for.
        timeout_scale: multiplies the retransmission timeouts (tests only).
        backoff: seconds before the next round after n failed ones.
        renew: seconds after a grant of t seconds to renew it.
        protocols: the protocols to try, in order (tests pin one).
        on_change: called when :meth:`external` changes (made, moved or lost).
        ssdp_port: the UDP port IGD searches are sent to (tests only).
    """

    def __init__(
        self,
        gateway: tuple[str, int],
        ports: list[tuple[int, int]],
        *,
        lifetime: int = pm.LIFETIME,
        timeout_scale: float = 1.0,
        backoff: Callable[[int], float] = pm.backoff_delay,
        renew: Callable[[int], float] = pm.renew_delay,
        protocols: tuple[str, ...] = ("pcp", "natpmp", "igd"),
        on_change: Callable[[], None] = lambda: None,
        ssdp_port: int = igd.SSDP_PORT,
    ) -> None:
        self._ssdp_port = ssdp_port
        self.gateway = gateway
        self._ports = ports
        self._lifetime = lifetime
        self._scale = timeout_scale
        self._backoff = backoff
        self._renew = renew
        self._protocols = protocols
        self._on_change = on_change
        self._sock: trio.socket.SocketType | None = None
        self._held: dict[int, _Held] = {}
        self.protocol: str | None = None
        self.external_ip: str | None = None
        self.state = "starting"
        self._expires = 0.0
        self._retry_at = 0.0
        self._stats: Counter[str] = Counter()
        #: The gateway's IGD port-mapping service (type, control URL), once found.
        self._igd: tuple[str, igd.Url] | None = None
        #: The node's address on its connections to the gateway (the mapping's target).
        self._igd_client = ""

    # -- public ----------------------------------------------------------------

    def external(self) -> tuple[str, int] | None:
        """The external (IP, TCP port) of the link port while it is mapped."""
        if self.state != "mapped" or self.external_ip is None or not self._ports:
            return None
        held = self._held.get(self._ports[0][1])
        return (self.external_ip, held.external_port) if held else None

    def status(self) -> dict[str, Any]:
        """``state`` (starting, mapped, failed, stopped), ``protocol``,
        ``external`` (ip:port of the link port), ``udp_external`` (of the DHT
        port), ``expires_in`` and ``retry_in`` (seconds or None)."""
        now = trio.current_time()
        ext = self.external()
        udp = next((h for h in self._held.values() if h.transport == pm.PROTO_UDP), None)
        mapped = self.state == "mapped"
        gateway = f"{self.gateway[0]}:{self.gateway[1]}"
        if mapped and self.protocol == "igd" and self._igd is not None:
            gateway = f"{self._igd[1].host}:{self._igd[1].port}"  # its control URL's
        return {
            "state": self.state,
            "gateway": gateway,
            "protocol": self.protocol if mapped else None,
            "external": f"{ext[0]}:{ext[1]}" if ext else None,
            "udp_external": (
                f"{self.external_ip}:{udp.external_port}" if mapped and udp is not None else None
            ),
            "expires_in": round(self._expires - now) if mapped else None,
            "retry_in": round(self._retry_at - now) if self.state == "failed" else None,
        }

    def statistics(self) -> dict[str, int]:
        """Requests sent, responses used, datagrams dropped by reason, rounds
        failed, mappings made and removed."""
        return dict(self._stats)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Map, renew and back off until cancelled; then remove the mappings."""
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self._sock = sock
        try:
            await sock.connect(self.gateway)
            task_status.started()
            failures = 0
            while True:
                if await self._round():
                    failures = 0
                    before = self.external()
                    self.state = "mapped"
                    if self.external() != before:
                        self._on_change()
                    wait = min(self._renew(h.lifetime) for h in self._held.values())
                    self._expires = trio.current_time() + min(
                        h.lifetime for h in self._held.values()
                    )
                else:
                    failures += 1
                    self._stats["rounds_failed"] += 1
                    was_mapped = self.state == "mapped"
                    self.state = "failed"
                    wait = self._backoff(failures)
                    self._retry_at = trio.current_time() + wait
                    if was_mapped:
                        self._on_change()
                    if failures == 1:
                        log.info("no port mapping from gateway %s:%d", *self.gateway)
                await trio.sleep(wait)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(REMOVE_TIMEOUT):
                await self._remove_all()
            self.state = "stopped"
            sock.close()

    # -- exchanges --------------------------------------------------------------

    async def _round(self) -> bool:
        """Map every port (again); True when all are mapped."""
        for transport, port in self._ports:
            held = self._held.get(port)
            got = await self._map(transport, port, held, self._lifetime)
            if got is None:
                return False
            self._held[port] = got
        return True

    async def _map(
        self, transport: int, port: int, held: _Held | None, lifetime: int
    ) -> _Held | None:
        nonce = held.nonce if held is not None else os.urandom(12)
        suggest = held.external_port if held is not None else port
        protocols = (self.protocol,) if self.protocol else self._protocols
        for proto in protocols:
            if proto == "pcp":
                got = await self._pcp(nonce, transport, port, suggest, lifetime)
            elif proto == "natpmp":
                got = await self._natpmp(transport, port, suggest, lifetime)
            else:
                got = await self._igd_map(transport, port, suggest, lifetime, first=held is None)
            if got is not None:
                if lifetime:
                    self.protocol = proto
                    self._stats["mappings_made"] += held is None
                return got
        return None

    async def _pcp(
        self, nonce: bytes, transport: int, port: int, suggest: int, lifetime: int
    ) -> _Held | None:
        assert self._sock is not None
        client_ip = self._sock.getsockname()[0]
        req = pm.encode_pcp_map_request(nonce, transport, port, suggest, lifetime, client_ip)
        r = await self._granted(req, "pcp", transport, port, nonce)
        if r is None:
            return None
        if lifetime:
            self.external_ip = r.external_ip
        return _Held(transport, port, r.external_port, r.lifetime, nonce)

    async def _natpmp(self, transport: int, port: int, suggest: int, lifetime: int) -> _Held | None:
        if lifetime and (self.external_ip is None or self.protocol != "natpmp"):
            addr = await self._exchange(
                pm.encode_natpmp_external_request(), lambda r: isinstance(r, pm.ExternalAddress)
            )
            if not isinstance(addr, pm.ExternalAddress) or addr.result != 0:
                self._refused(addr)
                return None
            self.external_ip = addr.external_ip
        req = pm.encode_natpmp_map_request(transport, port, suggest, lifetime)
        r = await self._granted(req, "natpmp", transport, port, b"")
        return _Held(transport, port, r.external_port, r.lifetime, b"") if r else None

    async def _granted(
        self, req: bytes, protocol: str, transport: int, port: int, nonce: bytes
    ) -> pm.Mapping | None:
        """Exchange MAP request ``req``; the answer if it grants the mapping."""

        def match(r: Response) -> bool:
            # An "unsupported version" answer ends the exchange too (no grant).
            return (protocol == "pcp" and isinstance(r, pm.Unsupported)) or (
                isinstance(r, pm.Mapping)
                and (r.protocol, r.nonce, r.transport, r.internal_port)
                == (protocol, nonce, transport, port)
            )

        r = await self._exchange(req, match)
        if not isinstance(r, pm.Mapping) or r.result != 0:
            self._refused(r)
            return None
        return r

    def _refused(self, r: Response | None) -> None:
        if r is not None:  # an answer, but no mapping: count its result code
            self._stats[f"refused_result_{r.result}"] += 1

    async def _exchange(self, request: bytes, match: Callable[[Response], bool]) -> Response | None:
        """Send ``request`` on the retransmission schedule until an answer
        ``match`` accepts comes; None when none came (or the gateway port is closed)."""
        assert self._sock is not None
        attempt = 0
        while (timeout := pm.retransmit_timeout(attempt)) is not None:
            attempt += 1
            try:
                await self._sock.send(request)
            except OSError:
                self._stats["send_errors"] += 1
                return None
            self._stats["requests_sent"] += 1
            with trio.move_on_after(timeout * self._scale):
                while True:
                    try:
                        data = await self._sock.recv(pm.MAX_RESPONSE + 1)
                    except ConnectionRefusedError:  # ICMP: nothing listens there
                        self._stats["gateway_refused"] += 1
                        return None
                    try:
                        r = pm.decode_response_untrusted(data)
                    except DecodeError as exc:
                        self._stats[f"dropped_{exc.reason}"] += 1
                        continue
                    if match(r):
                        self._stats["responses"] += 1
                        return r
                    self._stats["dropped_unmatched"] += 1
        return None

    async def _remove_all(self) -> None:
        if self.protocol is None:
            return
        for port, held in list(self._held.items()):
            if self.protocol == "pcp":
                got = await self._pcp(held.nonce, held.transport, port, held.external_port, 0)
            elif self.protocol == "natpmp":
                got = await self._natpmp(held.transport, port, 0, 0)
            else:
                got = await self._igd_delete(held)
            if got is not None:
                self._stats["mappings_removed"] += 1
                del self._held[port]

    # -- UPnP-IGD (protocol/igd.py, spec/portmap.md §7) ------------------------------

    async def _igd_map(
        self, transport: int, port: int, suggest: int, lifetime: int, *, first: bool
    ) -> _Held | None:
        """Add (or renew) a mapping of ``port`` at the gateway's IGD."""
        found = await self._igd_service()
        if found is None:
            return None
        service, url = found
        if self.external_ip is None or self.protocol != "igd":
            out = await self._soap(
                url, service, "GetExternalIPAddress", igd.get_external_ip(url, service)
            )
            ip = out.get("NewExternalIPAddress", "") if isinstance(out, dict) else ""
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                addr = None
            if addr is None or not _usable_external(addr):
                self._igd_refused(out, "no_external_ip")
                return None
            self.external_ip = str(addr)
        lease = lifetime
        tries = [suggest]
        conflicts = 0
        while tries:
            external = tries.pop(0)
            out = await self._soap(
                url,
                service,
                "AddPortMapping",
                igd.add_port_mapping(
                    url,
                    service,
                    transport=_IGD_TRANSPORT[transport],
                    external_port=external,
                    internal_port=port,
                    internal_client=self._igd_client,
                    lease=lease,
                ),
            )
            if isinstance(out, dict):
                # A permanent lease is renewed (added again) all the same.
                return _Held(transport, port, external, lease or lifetime, b"")
            self._igd_refused(out)
            if not isinstance(out, igd.Fault):
                return None
            if out.code == _IGD_PERMANENT_ONLY and lease:
                lease = 0
                tries.insert(0, external)
            elif out.code == _IGD_SAME_PORTS and external != port:
                tries.insert(0, port)
            elif out.code == _IGD_CONFLICT and first and conflicts < IGD_CONFLICT_TRIES:
                # Another host holds that port: try a random one.
                conflicts += 1
                tries.append(random.randint(1024, 65535))
        return None

    async def _igd_delete(self, held: _Held) -> _Held | None:
        if self._igd is None:
            return None
        service, url = self._igd
        out = await self._soap(
            url,
            service,
            "DeletePortMapping",
            igd.delete_port_mapping(
                url,
                service,
                transport=_IGD_TRANSPORT[held.transport],
                external_port=held.external_port,
            ),
        )
        if isinstance(out, dict):
            return held
        self._igd_refused(out)
        return None

    def _igd_refused(self, out: dict[str, str] | igd.Fault | None, reason: str = "") -> None:
        if isinstance(out, igd.Fault):
            self._stats[f"refused_result_{out.code}"] += 1
        elif reason and out is not None:
            self._stats[f"dropped_{reason}"] += 1

    async def _igd_service(self) -> tuple[str, igd.Url] | None:
        """The gateway's port-mapping service: searched for (SSDP) and read
        from its description, then kept until an exchange with it fails."""
        if self._igd is not None:
            return self._igd
        location = await self._ssdp_search()
        if location is None:
            return None
        raw = await self._http(location, igd.encode_get(location))
        if raw is None:
            return None
        try:
            if raw.status != 200:
                raise DecodeError(f"HTTP status {raw.status}", reason="not_ok")
            service, control = igd.decode_description_untrusted(raw.body, location)
        except DecodeError as exc:
            self._stats[f"dropped_{exc.reason}"] += 1
            return None
        if control.host != self.gateway[0]:
            self._stats["dropped_foreign_control"] += 1
            return None
        self._igd = (service, control)
        return self._igd

    async def _ssdp_search(self) -> igd.Url | None:
        """Search for the gateway's IGD: an M-SEARCH to the SSDP group and one
        to the gateway, twice; the description URL the gateway answers with.
        Both leave from the node's address towards the gateway, so the
        multicast one goes out on the gateway's link and no other."""
        host = self.gateway[0]
        assert self._sock is not None
        local = self._sock.getsockname()[0]
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, SEARCH_TTL)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local))
            await sock.bind((local, 0))
            for wait in SEARCH_WAITS:
                for dest, multicast in ((igd.SSDP_GROUP, True), (host, False)):
                    try:
                        await sock.sendto(
                            igd.encode_search(multicast=multicast, host=host),
                            (dest, self._ssdp_port),
                        )
                        self._stats["searches_sent"] += 1
                    except OSError:
                        self._stats["send_errors"] += 1
                with trio.move_on_after(wait * self._scale):
                    while True:
                        try:
                            data, src = await sock.recvfrom(igd.MAX_SEARCH_RESPONSE + 1)
                        except OSError:
                            # Would fail again at once: retrying here would spin.
                            self._stats["recv_errors"] += 1
                            break
                        if src[0] != host:
                            self._stats["dropped_foreign"] += 1
                            continue
                        try:
                            url = igd.decode_search_response_untrusted(data)
                        except DecodeError as exc:
                            self._stats[f"dropped_{exc.reason}"] += 1
                            continue
                        if url.host != host:
                            self._stats["dropped_foreign_location"] += 1
                            continue
                        self._stats["search_answers"] += 1
                        return url
        return None

    async def _soap(
        self, url: igd.Url, service: str, action: str, request: bytes
    ) -> dict[str, str] | igd.Fault | None:
        raw = await self._http(url, request)
        if raw is None:
            # The control URL no longer answers (the router restarted its
            # IGD, perhaps on another port): search again next round.
            if self._igd is not None:
                self._igd = None
                self._stats["igd_forgotten"] += 1
            return None
        try:
            out = igd.decode_soap_untrusted(raw, action)
        except DecodeError as exc:
            self._stats[f"dropped_{exc.reason}"] += 1
            return None
        self._stats["responses"] += 1
        return out

    async def _http(self, url: igd.Url, request: bytes) -> igd.HttpResponse | None:
        """One HTTP exchange with the gateway; None (counted) when it fails.
        Notes the node's own address on the connection for AddPortMapping."""
        buf = bytearray()
        with trio.move_on_after(IGD_TIMEOUT * self._scale):
            try:
                stream = await trio.open_tcp_stream(url.host, url.port)
            except OSError:
                self._stats["gateway_refused"] += 1
                return None
            async with stream:
                self._igd_client = stream.socket.getsockname()[0]
                try:
                    await stream.send_all(request)
                    self._stats["requests_sent"] += 1
                    for _ in range(IGD_MAX_READS):
                        chunk = await stream.receive_some(16384)
                        buf += chunk
                        got = igd.decode_http_response_untrusted(bytes(buf), eof=not chunk)
                        if got is not None:
                            return got
                except (OSError, trio.BrokenResourceError):
                    self._stats["send_errors"] += 1
                    return None
                except DecodeError as exc:
                    self._stats[f"dropped_{exc.reason}"] += 1
                    return None
                self._stats["dropped_trickled"] += 1
                return None
        self._stats["igd_timeouts"] += 1
        return None
