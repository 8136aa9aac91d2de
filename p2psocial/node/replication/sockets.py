"""Sockets that share the link port: the listener, and connects made from it.

Hole punching (spec/sync.md §12) connects *from* the port the node listens
on, so that the NAT mapping the peer is told about is the one the connect
uses. Linux lets a connecting socket bind a port a listener holds only when
both set ``SO_REUSEPORT``; ``SO_REUSEADDR`` lets it bind again while an
earlier attempt's socket is still in TIME_WAIT.
"""

from __future__ import annotations

import socket as _socket

import trio

__all__ = ["bound_socket", "open_shared_listeners"]


def _share(sock: trio.socket.SocketType) -> None:
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    if hasattr(_socket, "SO_REUSEPORT"):
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)


async def open_shared_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """TCP listeners on ``host``:``port`` (0: any free port, the same for every family).

    Raises:
        OSError: an address cannot be bound.
    """
    infos = await trio.socket.getaddrinfo(
        host, port, type=_socket.SOCK_STREAM, flags=_socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    try:
        for family, kind, proto, _, addr in infos:
            sock = trio.socket.socket(family, kind, proto)
            try:
                _share(sock)
                if family == _socket.AF_INET6:
                    sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
                if listeners:  # the port the first one got
                    addr = (addr[0], listeners[0].socket.getsockname()[1], *addr[2:])
                await sock.bind(addr)
                sock.listen(128)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


async def bound_socket(host: str, port: int) -> trio.socket.SocketType:
    """An IPv4 TCP socket bound to ``host``:``port`` beside the listener, ready to connect.

    Raises:
        OSError: the port cannot be shared (a listener without SO_REUSEPORT holds it).
    """
    sock = trio.socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        _share(sock)
        await sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
