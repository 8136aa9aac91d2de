"""The socket under the DHT: a small datagram interface, and the trio UDP
socket behind it.

Tests put an in-memory network (:mod:`.memnet`) behind the same interface
through ``socket_factory``; everything above it is the same code.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from ...errors import cannot_listen
from ...protocol.dht.wire import MAX_VALUE_REPLY
from .common import Addr

__all__ = ["DatagramSocket", "SocketFactory", "open_udp_socket"]


class DatagramSocket(Protocol):
    """What :class:`DHTNode` needs from a UDP socket (real or simulated)."""

    async def sendto(self, data: bytes, addr: Addr) -> None: ...

    async def recvfrom(self) -> tuple[bytes, Addr]: ...

    def getsockname(self) -> Addr: ...

    def close(self) -> None: ...


#: ``async (host, port) -> DatagramSocket``: binds a socket.
SocketFactory = Callable[[str, int], Awaitable[DatagramSocket]]


class _UDPSocket:
    """A non-blocking UDP socket behind the :class:`DatagramSocket` interface.

    Each operation is tried at once and waits for the socket only when the
    kernel says it would block (``trio.lowlevel.wait_readable`` /
    ``wait_writable``). trio's own socket methods add a scheduling point
    around every call and resolve the address on every send: with hundreds
    of nodes in one process (bench/dht.py) that was most of a datagram's
    cost. A receive loop still yields after every ``_YIELD_EVERY``
    datagrams read back to back, so a flood cannot starve other tasks.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._v6 = sock.family == socket.AF_INET6
        self._burst = 0

    async def sendto(self, data: bytes, addr: Addr) -> None:
        host = addr[0]
        if self._v6 and ":" not in host:
            # A dual-stack socket reaches IPv4 peers at their mapped address.
            host = f"::ffff:{host}"
        while True:
            try:
                self._sock.sendto(data, (host, addr[1]))
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)

    async def recvfrom(self) -> tuple[bytes, Addr]:
        # One byte more than the largest datagram accepted (the answer to our
        # own find_value), so an oversized one is seen as such (and counted)
        # rather than silently truncated into a valid one.
        self._burst += 1
        if self._burst >= _YIELD_EVERY:
            self._burst = 0
            await trio.lowlevel.checkpoint()
        while True:
            try:
                data, addr = self._sock.recvfrom(MAX_VALUE_REPLY + 1)
                break
            except BlockingIOError:
                self._burst = 0
                await trio.lowlevel.wait_readable(self._sock)
        return data, (_unmapped(addr[0]), addr[1])

    def getsockname(self) -> Addr:
        name = self._sock.getsockname()
        return (name[0], name[1])

    def close(self) -> None:
        # A task still waiting on the socket gets ClosedResourceError.
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


#: Datagrams a receive loop may read without yielding to other tasks.
_YIELD_EVERY = 16


def _unmapped(host: str) -> str:
    """An IPv4 peer seen through a dual-stack socket as ::ffff:a.b.c.d is
    known, stored and handed out by its plain IPv4 address (spec/dht.md 3)."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    if host.lower().startswith("::ffff:"):
        with contextlib.suppress(ValueError):
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
            if mapped is not None:
                return str(mapped)
    return host


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def open_udp_socket(host: str, port: int) -> DatagramSocket:
    """Bind a UDP socket on ``host``:``port`` (0 = ephemeral).

    Raises:
        NodeError: the address cannot be bound (``cannot_listen``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        # A literal address binds at once (the DHT binds only IP literals);
        # a name is resolved in a thread, as trio's socket would.
        if not _is_literal(host):
            infos = await trio.socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
            host = str(infos[0][4][0])
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise cannot_listen("UDP port for the DHT", shown, exc) from None
    except BaseException:
        sock.close()
        raise
    return _UDPSocket(sock)
