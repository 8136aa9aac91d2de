"""The local API's wire format (spec/client-api.md), sans-IO.

A connection carries frames: a 4-byte big-endian length, then that many bytes
of msgpack. The first frame each way is the handshake; after it, the client
sends requests and the server sends responses and subscription events:

    client -> {"api": "p2psocial", "version": 1}
    server -> {"api": "p2psocial", "version": 1, "identity": "p2ps1..."}
    client -> {"id": 7, "method": "post", "params": {"text": "hi"}}
    server -> {"id": 7, "result": {...}}          or
              {"id": 7, "error": {"code": "...", "message": "..."}}
    server -> {"id": 9, "event": {...}}           (for a "watch" request id 9)

Values are JSON-compatible (maps, arrays, strings, ints, bools, nil), so any
language's msgpack library and a JSON printer can handle them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import msgpack

from ..protocol import framing
from ..protocol.errors import DecodeError
from ..protocol.framing import FrameDecoder, WireLimits

__all__ = [
    "API_NAME",
    "API_VERSION",
    "MAX_FRAME",
    "FrameBuffer",
    "decode_frame_payload_untrusted",
    "encode_frame",
]

API_NAME = "p2psocial"
API_VERSION = 1
#: Largest frame either side accepts; a page of 200 posts fits easily.
MAX_FRAME = 4 * 1024 * 1024
_LIMITS = WireLimits(max_frame=MAX_FRAME)


_local = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's msgpack packer (a packer is not thread-safe).

    ``msgpack.packb`` builds a packer, with a fresh 1 MiB buffer, for every
    call: for a reply of a few dozen bytes that is more than half the cost
    of encoding it, and every request and reply of the API is encoded here.
    """
    try:
        packer: msgpack.Packer = _local.packer
    except AttributeError:
        _local.packer = packer = msgpack.Packer(use_bin_type=True)
    return packer


def encode_frame(message: dict[str, Any]) -> bytes:
    """Frame one message for sending.

    Raises:
        LocalUsageError: the message exceeds the frame limit.
        TypeError: the message holds a value msgpack cannot encode (a bug).
    """
    body: bytes = _packer().pack(message)
    return framing.encode_frame(body, _LIMITS)


def decode_frame_payload_untrusted(body: bytes) -> dict[str, Any]:
    """Decode one frame body into a message map.

    Raises:
        DecodeError: not msgpack, not a map, or over a limit.
    """
    try:
        value = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_str_len=len(body),
            max_bin_len=len(body),
            max_array_len=min(len(body), 100_000),
            max_map_len=min(len(body) // 2, 100_000),
            max_ext_len=0,
        )
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise DecodeError(f"frame is not valid msgpack: {exc}", reason="malformed") from None
    if type(value) is not dict:
        raise DecodeError("frame must hold a map", reason="not_a_map")
    return value


class FrameBuffer:
    """Splits the received byte stream into frame bodies, one at a time.

    The splitting is the peer links' (:class:`p2psocial.protocol.wire.FrameDecoder`)
    with the API's own frame limit, checked as soon as a length header is in
    and before any body bytes are buffered.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._decoder = FrameDecoder(
            WireLimits(max_frame=max_frame) if max_frame != MAX_FRAME else _LIMITS
        )
        self._ready: deque[bytes] = deque()

    def feed(self, data: bytes) -> None:
        """Add received bytes.

        Raises:
            DecodeError: an announced frame length exceeds the limit.
        """
        self._ready.extend(self._decoder.feed(data))

    def next_frame(self) -> bytes | None:
        """The next complete frame body, or None if more bytes are needed."""
        return self._ready.popleft() if self._ready else None
