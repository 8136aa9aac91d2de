"""Length-prefixed frames, the unit of every stream this package speaks.

A frame is a u32 big-endian length, then that many body bytes. Peer links
(:mod:`.wire`) and the local API (:mod:`p2psocial.api.protocol`) both cut
their streams this way. This module imports nothing heavier than ``struct``,
so a client of the local API does not load the entry and key code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import DecodeError, LocalUsageError

__all__ = ["DEFAULT_WIRE_LIMITS", "FrameDecoder", "WireLimits", "encode_frame"]

_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Per-link bounds, applied to every frame a peer sends.

    Defaults: a frame of 1 MiB holds a full catch-up batch of small posts (500
    entries of ~600 bytes with payloads) yet bounds memory per link; a batch
    of 1,000 items caps decode work per frame; 4,096 feeds per clock message
    covers a node following thousands of authors in a handful of messages.
    """

    max_frame: int = 1024 * 1024
    max_batch: int = 1000
    max_clock: int = 4096
    max_peek: int = 500


DEFAULT_WIRE_LIMITS = WireLimits()


def encode_frame(body: bytes, limits: WireLimits = DEFAULT_WIRE_LIMITS) -> bytes:
    """Prefix ``body`` with its u32 big-endian length.

    Raises:
        LocalUsageError: the body exceeds ``limits.max_frame`` (a sender bug:
            batches must be cut below the limit).
    """
    if len(body) > limits.max_frame:
        raise LocalUsageError(f"frame of {len(body)} bytes exceeds {limits.max_frame}")
    return _LEN.pack(len(body)) + body


class FrameDecoder:
    """Incremental frame splitter: feed received bytes, get complete bodies.

    It buffers at most one partial frame, and refuses a length prefix above
    the limit as soon as the four length bytes are in.
    """

    def __init__(self, limits: WireLimits = DEFAULT_WIRE_LIMITS) -> None:
        self._limits = limits
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the bodies of all frames now complete.

        Raises:
            DecodeError: a length prefix exceeds the frame limit (reason
                ``frame_too_large``). The link must be closed; the decoder is
                left unusable.
        """
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            (n,) = _LEN.unpack_from(self._buf)
            if n > self._limits.max_frame:
                raise DecodeError(
                    f"frame of {n} bytes exceeds {self._limits.max_frame}",
                    reason="frame_too_large",
                )
            if len(self._buf) < 4 + n:
                break
            out.append(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
        return out
