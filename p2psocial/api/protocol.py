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

import struct
from typing import Any

import msgpack

from ..protocol.errors import DecodeError

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
_HEADER = struct.Struct(">I")


def encode_frame(message: dict[str, Any]) -> bytes:
    """Frame one message for sending."""
    body: bytes = msgpack.packb(message, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ValueError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return _HEADER.pack(len(body)) + body


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
    """Accumulates received bytes and yields complete frame bodies.

    The length header is checked against ``max_frame`` before any body bytes
    are buffered, so a hostile peer cannot make us allocate more than that.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame body, or None if more bytes are needed.

        Raises:
            DecodeError: the announced length exceeds the limit.
        """
        if len(self._buf) < 4:
            return None
        (n,) = _HEADER.unpack_from(self._buf)
        if n > self._max:
            raise DecodeError(
                f"frame of {n} bytes exceeds the {self._max}-byte limit", reason="too_large"
            )
        if len(self._buf) < 4 + n:
            return None
        body = bytes(self._buf[4 : 4 + n])
        del self._buf[: 4 + n]
        return body

    @property
    def pending(self) -> int:
        return len(self._buf)
