"""Relays (spec/sync.md §11): serve reservations and splices, and use them."""

from .client import RelayAddress as RelayAddress
from .client import RelayClient as RelayClient
from .client import RelayRefused as RelayRefused
from .client import open_relayed as open_relayed
from .server import RelayLimits as RelayLimits
from .server import RelayServer as RelayServer

__all__ = [
    "RelayAddress",
    "RelayClient",
    "RelayLimits",
    "RelayRefused",
    "RelayServer",
    "open_relayed",
]
