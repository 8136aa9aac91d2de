"""The whole p2psocial error tree in one import.

The protocol errors live in :mod:`p2psocial.protocol.errors` (protocol/ imports
nothing above it); this module re-exports them and adds the errors of the
layers above: storage, node and local API. Every class takes
``(message, reason=...)`` and exposes ``.message`` and a stable ``.reason``.
"""

from __future__ import annotations

from .protocol.errors import (
    ChainError,
    DecodeError,
    ForkError,
    InvalidSignature,
    LocalUsageError,
    P2PSocialError,
    ProtocolError,
    SchemaError,
)

__all__ = [
    "APIError",
    "ChainError",
    "DecodeError",
    "ForkError",
    "InvalidSignature",
    "LocalUsageError",
    "NodeError",
    "P2PSocialError",
    "ProtocolError",
    "SchemaError",
    "StorageError",
    "cannot_listen",
]


class StorageError(P2PSocialError):
    """The database cannot be used: not SQLite, not ours, a newer schema, or an I/O failure."""

    reason = "storage"


class NodeError(P2PSocialError):
    """The node cannot do what was asked (not running, already running, bad config, ...)."""

    reason = "node"


def cannot_listen(what: str, address: str, exc: OSError) -> NodeError:
    """The error for a socket that cannot be bound, naming what and where.

    Args:
        what: e.g. "TCP port for peer links".
        address: the address as the user would type it, e.g. "0.0.0.0:4001".
        exc: the OSError from bind/listen.
    """
    import errno

    if exc.errno == errno.EADDRINUSE:
        return NodeError(
            f"cannot listen on {what} {address}: it is in use by another program "
            "(choose another with the option, or stop that program)",
            reason="address_in_use",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return NodeError(
            f"cannot listen on {what} {address}: no interface of this machine has that address",
            reason="address_unavailable",
        )
    return NodeError(f"cannot listen on {what} {address}: {exc.strerror or exc}", reason="bind")


class APIError(P2PSocialError):
    """An error reply from the local API, or a failure to talk to it.

    ``code`` is the numeric or symbolic error code carried on the wire.
    """

    reason = "api"

    def __init__(self, message: str, *, code: int | str = 0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.code = code
