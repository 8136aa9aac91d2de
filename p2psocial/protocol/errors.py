"""The error tree of p2psocial.

Everything p2psocial raises on purpose derives from :class:`P2PSocialError`.
The split that matters most to callers is *who* is at fault:

* :class:`ProtocolError` and its subclasses mean that bytes or records that came
  from somewhere else (a peer, a file, a user's paste) are invalid. They are the
  only exceptions that functions named ``*_untrusted`` may raise.
* :class:`LocalUsageError` means that this program asked for something
  impossible (for example a post longer than the limit). It is a bug in the
  caller or a user mistake, never a peer's misbehaviour.

Each error carries a short machine-readable ``reason`` (a stable snake_case
string used in statistics, API replies and test tables) besides its message.
"""

from __future__ import annotations

__all__ = [
    "ChainError",
    "DecodeError",
    "ForkError",
    "InvalidSignature",
    "LocalUsageError",
    "P2PSocialError",
    "ProtocolError",
    "SchemaError",
]


class P2PSocialError(Exception):
    """Root of every error p2psocial raises deliberately."""

    #: Stable, machine-readable cause; subclasses and call sites refine it.
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class LocalUsageError(P2PSocialError, ValueError):
    """The local caller asked for something the protocol does not allow."""

    reason = "local_usage"


class ProtocolError(P2PSocialError):
    """Data from outside this process breaks a protocol rule."""

    reason = "protocol"


class DecodeError(ProtocolError):
    """Bytes are not a valid encoding: wrong type, too long, not canonical, ..."""

    reason = "decode"


class InvalidSignature(ProtocolError):
    """A signature or key fails the strict verification policy (spec/protocol.md §3)."""

    reason = "bad_signature"


class SchemaError(ProtocolError):
    """A well-formed record has fields that break its kind's schema or limits."""

    reason = "schema"


class ChainError(ProtocolError):
    """Entries do not link into a valid feed (seq or prev mismatch, wrong author)."""

    reason = "chain"


class ForkError(ChainError):
    """Two valid entries claim the same (author, seq): the feed has forked."""

    reason = "fork"
