"""Sockets that share the link port: the listener, and connects made from it.

Hole punching (spec/sync.md §12) connects *from* the port the node listens
on, so that the NAT mapping the peer is told about is the one the connect
uses. Linux lets a connecting socket bind a port a listener holds only when
both set ``SO_REUSEPORT``; ``SO_REUSEADDR`` lets it bind again while an
earlier attempt's socket is still in TIME_WAIT.
"""

from __future__ import annotations

import errno
import os
import socket as _socket

import trio

__all__ = ["connect_from", "open_shared_listeners"]


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


async def connect_from(local: tuple[str, int], remote: tuple[str, int]) -> trio.socket.SocketType:
    """Connect to ``remote`` from ``local`` (the listener's port, shared); the connected socket.

    The caller bounds the time.

    Raises:
        OSError: the port cannot be shared, or the connect failed (refused, unreachable).
    """
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if hasattr(_socket, "SO_REUSEPORT"):
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        sock.bind(local)
        sock.setblocking(False)
        err = sock.connect_ex(remote)  # sends the SYN now
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        await trio.lowlevel.wait_writable(sock)
        err = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return trio.socket.from_stdlib_socket(sock)
