"""Sans-IO protocol core: bytes and values in, values and decisions out.

Nothing in this package opens a socket, reads a clock, sleeps or starts a
thread; time is always an argument (``now``).

The error classes are imported eagerly (they are small, and every layer
above raises them); every other name is imported from its module on first
use, so that a program needing only the errors or the limits (the CLI's
``--help``, the blocking client) does not load the cryptography library.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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
    from .feeds import ForkProof, check_link, decode_fork_proof_untrusted, detect_fork, verify_run
    from .identity import (
        SigningKey,
        identity_from_text,
        identity_to_text,
        node_id_from_public_key,
        verify_strict,
    )
    from .kinds import KINDS, MAX_TEXT_CHARS


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` that import its names on first use.

    The packages of p2psocial re-export names from their modules; importing
    those modules eagerly would make every program pay for all of them (the
    CLI's start-up, for one). A package instead writes
    ``__getattr__, __dir__ = lazy_exports(__name__, {name: ".module", ...})``
    and keeps the same imports under ``TYPE_CHECKING`` for type checkers.

    Args:
        package: the package's ``__name__``.
        names: public name -> the module defining it, relative to ``package``.

    Returns:
        ``(__getattr__, __dir__)``. The first imports the module, caches the
        value in the package and returns it; for any other name it raises
        AttributeError, as Python expects (``from package import submodule``
        relies on that).
    """

    def get(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def listing() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return get, listing


__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Limits": ".encoding",
        "decode_untrusted": ".encoding",
        "encode": ".encoding",
        "ENTRY_TAG": ".entries",
        "MAX_PAYLOAD_SIZE": ".entries",
        "Entry": ".entries",
        "check_timestamp": ".entries",
        "create_entry": ".entries",
        "decode_entry_untrusted": ".entries",
        "decode_payload_untrusted": ".entries",
        "encode_payload": ".entries",
        "ForkProof": ".feeds",
        "check_link": ".feeds",
        "decode_fork_proof_untrusted": ".feeds",
        "detect_fork": ".feeds",
        "verify_run": ".feeds",
        "SigningKey": ".identity",
        "identity_from_text": ".identity",
        "identity_to_text": ".identity",
        "node_id_from_public_key": ".identity",
        "verify_strict": ".identity",
        "KINDS": ".kinds",
        "MAX_TEXT_CHARS": ".kinds",
    },
)

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
