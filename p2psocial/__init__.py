"""p2psocial: a peer-to-peer social network node.

Every user has an Ed25519 identity; every post is a signed entry in the
author's append-only feed. See README.md for a tour and spec/ for the protocol.
"""

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
from .protocol.identity import SigningKey, identity_from_text, identity_to_text

__version__ = "0.1.0"

__all__ = [
    "ChainError",
    "DecodeError",
    "ForkError",
    "InvalidSignature",
    "LocalUsageError",
    "P2PSocialError",
    "ProtocolError",
    "SchemaError",
    "SigningKey",
    "__version__",
    "identity_from_text",
    "identity_to_text",
]
