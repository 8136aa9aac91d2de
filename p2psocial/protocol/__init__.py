"""Sans-IO protocol core: bytes and values in, values and decisions out.

Nothing in this package opens a socket, reads a clock, sleeps or starts a
thread; time is always an argument (``now``).
"""

from .encoding import Limits, decode_untrusted, encode
from .entries import (
    ENTRY_TAG,
    MAX_PAYLOAD_SIZE,
    Entry,
    check_timestamp,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
    encode_payload,
)
from .errors import (
    ChainError,
    DecodeError,
    ForkError,
    InvalidSignature,
    LocalUsageError,
    P2PSocialError,
    ProtocolError,
    SchemaError,
)
from .feeds import ForkProof, check_link, decode_fork_proof_untrusted, detect_fork, verify_run
from .identity import (
    SigningKey,
    identity_from_text,
    identity_to_text,
    node_id_from_public_key,
    verify_strict,
)
from .kinds import KINDS, MAX_TEXT_CHARS

__all__ = [
    "ENTRY_TAG",
    "KINDS",
    "MAX_PAYLOAD_SIZE",
    "MAX_TEXT_CHARS",
    "ChainError",
    "DecodeError",
    "Entry",
    "ForkError",
    "ForkProof",
    "InvalidSignature",
    "Limits",
    "LocalUsageError",
    "P2PSocialError",
    "ProtocolError",
    "SchemaError",
    "SigningKey",
    "check_link",
    "check_timestamp",
    "create_entry",
    "decode_entry_untrusted",
    "decode_fork_proof_untrusted",
    "decode_payload_untrusted",
    "decode_untrusted",
    "detect_fork",
    "encode",
    "encode_payload",
    "identity_from_text",
    "identity_to_text",
    "node_id_from_public_key",
    "verify_run",
    "verify_strict",
]
