"""The node: a store, the DHT, replication and the local API server, composed.

:func:`open_node` starts one in a trio program; ``p2psocial daemon``
(:func:`run_daemon`) runs one in the foreground. The names below are imported
on first use, as in :mod:`p2psocial`: commands that only read the
configuration (``from p2psocial.node.config import ...``) do not pay for the
services.

Modules, each owning its state:

* ``node``: :class:`Node`, the facade, and :func:`open_node`;
* ``publish``, ``reads``, ``moderator``, ``watch``: the node's parts;
* ``moderation``: the policy gate and blocklists;
* ``apiserver``: the local API over a Unix socket;
* ``replication``, ``dht``: the network services;
* ``config``, ``keys``, ``views``, ``daemon``, ``activity``: configuration,
  key files, values at the edge, the foreground daemon and what it logs;
* ``embed``: a node inside a program (``run_embedded``, ``embedded_config``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .apiserver import APIServer
    from .config import NodeConfig, Policy
    from .daemon import daemon_lock, run_daemon
    from .keys import create_keys, load_keys
    from .moderation import Blocklists, PolicyGate
    from .node import Node, open_node
    from .views import WatchFilter

__all__ = [
    "APIServer",
    "Blocklists",
    "Node",
    "NodeConfig",
    "Policy",
    "PolicyGate",
    "WatchFilter",
    "create_keys",
    "daemon_lock",
    "load_keys",
    "open_node",
    "run_daemon",
]

#: Submodule -> the public names it defines, imported on first access.
_EXPORTS = {
    "apiserver": ("APIServer",),
    "config": ("NodeConfig", "Policy"),
    "daemon": ("daemon_lock", "run_daemon"),
    "keys": ("create_keys", "load_keys"),
    "moderation": ("Blocklists", "PolicyGate"),
    "node": ("Node", "open_node"),
    "views": ("WatchFilter",),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import the submodule defining a public name on first use (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
