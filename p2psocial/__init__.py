"""p2psocial: a peer-to-peer social network node.

Every user has an Ed25519 identity; every post is a signed entry in the
author's append-only feed. Two ways to use the library:

* run a node inside a trio program::

      async with p2psocial.open_node(p2psocial.NodeConfig.load(data_dir)) as node:
          await node.post("hello")

* drive a running daemon from any Python code::

      with p2psocial.connect() as client:
          client.post(text="hello")

See README.md for a tour and spec/ for the protocol.
"""

from .client import AsyncClient, Client, DaemonNotRunning, connect, connect_async
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
from .node.config import NodeConfig, Policy
from .node.node import Node, open_node
from .node.views import WatchFilter
from .protocol.identity import SigningKey, identity_from_text, identity_to_text

__version__ = "0.1.0"

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
    "identity_from_text",
    "identity_to_text",
    "open_node",
]
