"""p2psocial: a peer-to-peer social network node.

Every user has an Ed25519 identity; every post is a signed entry in the
author's append-only feed. Two ways to use the library:

* run a node inside a trio program (``embedded_config`` creates its data dir
  and identity on first use; ``run_embedded`` stops it on Ctrl-C with one line)::

      async def main():
          async with p2psocial.open_node(p2psocial.embedded_config("my-node")) as node:
              await node.post("hello")

      p2psocial.run_embedded(main)

* drive a running daemon from any Python code::

      with p2psocial.connect() as client:
          client.post("hello")

  (``connect_async`` is the same client for trio and asyncio programs.)

See README.md for a tour and spec/ for the protocol.

The error classes are imported eagerly; everything else is imported on first
use, so that ``import p2psocial`` (and every ``p2psocial`` command) does not
pay for the node's services it does not run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    APIError,
    ChainError,
    DecodeError,
    ForkError,
    InvalidSignature,
    LocalUsageError,
    NodeError,
    P2PSocialError,
    ProtocolError,
    SchemaError,
    StorageError,
)
from .protocol import lazy_exports

if TYPE_CHECKING:
    from .client import AsyncClient, Client, DaemonNotRunning, connect, connect_async
    from .node.config import NodeConfig, Policy
    from .node.embed import embedded_config, run_embedded
    from .node.node import Node, open_node
    from .node.views import WatchFilter
    from .protocol.identity import SigningKey, identity_from_text, identity_to_text

__version__ = "0.1.0"

#: Public name -> module that defines it (imported on first access).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AsyncClient": ".client",
        "Client": ".client",
        "DaemonNotRunning": ".client",
        "connect": ".client",
        "connect_async": ".client",
        "NodeConfig": ".node.config",
        "Policy": ".node.config",
        "embedded_config": ".node.embed",
        "run_embedded": ".node.embed",
        "Node": ".node.node",
        "open_node": ".node.node",
        "WatchFilter": ".node.views",
        "SigningKey": ".protocol.identity",
        "identity_from_text": ".protocol.identity",
        "identity_to_text": ".protocol.identity",
    },
)


__all__ = [
    "APIError",
    "AsyncClient",
    "ChainError",
    "Client",
    "DaemonNotRunning",
    "DecodeError",
    "ForkError",
    "InvalidSignature",
    "LocalUsageError",
    "Node",
    "NodeConfig",
    "NodeError",
    "P2PSocialError",
    "Policy",
    "ProtocolError",
    "SchemaError",
    "SigningKey",
    "StorageError",
    "WatchFilter",
    "__version__",
    "connect",
    "connect_async",
    "embedded_config",
    "identity_from_text",
    "identity_to_text",
    "open_node",
    "run_embedded",
]
