"""Peer links: framed byte streams and the hello handshake (spec/sync.md §2-§3).

A link is any reliable byte stream cut into length-prefixed frames. The
replication service sees only :class:`FramedStream`; today it is TCP
(:class:`TCPFramedStream`), and an encrypted transport (Noise XX) can slot in
later by implementing the same three methods.

The hello proves each side's node key: both send ``hello`` (key, fresh nonce,
listen port), then each signs ``HELLO_TAG || peer's nonce || own key`` and
sends it as ``auth``. A replayed auth fails because the nonce is fresh; the tag
keeps the signature from ever being valid for another record type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import trio

from ...protocol.errors import DecodeError, InvalidSignature, ProtocolError
from ...protocol.identity import (
    SigningKey,
    check_public_key,
    node_id_from_public_key,
    verify_strict,
)
from ...protocol.wire import (
    DEFAULT_WIRE_LIMITS,
    NONCE_SIZE,
    Auth,
    FrameDecoder,
    Hello,
    Message,
    WireLimits,
    decode_message_untrusted,
    encode_frame,
    encode_message,
    hello_signed_bytes,
)

__all__ = [
    "FramedStream",
    "LinkClosed",
    "PeerIdentity",
    "TCPFramedStream",
    "handshake",
]

_RECEIVE_CHUNK = 256 * 1024


class LinkClosed(Exception):
    """The peer closed the stream (or it broke); ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FramedStream(Protocol):
    """What replication needs from a transport: whole frames in and out."""

    async def send_frame(self, body: bytes) -> None:
        """Send one frame body; raises LinkClosed if the stream is gone."""
        ...

    async def receive_frame(self) -> bytes:
        """Next frame body; raises LinkClosed at EOF, DecodeError for an oversize frame."""
        ...

    async def aclose(self) -> None:
        """Close the stream."""
        ...


class TCPFramedStream:
    """Length-prefixed frames over a trio stream, with byte and frame counters.

    Args:
        stream: a connected trio stream (``trio.SocketStream``).
        limits: frame size limit, enforced on the length prefix.
    """

    def __init__(self, stream: trio.abc.Stream, limits: WireLimits = DEFAULT_WIRE_LIMITS) -> None:
        self.stream = stream
        self.limits = limits
        self._decoder = FrameDecoder(limits)
        self._ready: list[bytes] = []
        self._send_lock = trio.Lock()
        self.bytes_in = 0
        self.bytes_out = 0
        self.frames_in = 0
        self.frames_out = 0

    async def send_frame(self, body: bytes) -> None:
        data = encode_frame(body, self.limits)
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise LinkClosed("broken") from exc
        self.bytes_out += len(data)
        self.frames_out += 1

    async def receive_frame(self) -> bytes:
        while not self._ready:
            try:
                data = await self.stream.receive_some(_RECEIVE_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise LinkClosed("broken") from exc
            if not data:
                raise LinkClosed("eof")
            self.bytes_in += len(data)
            self._ready.extend(self._decoder.feed(bytes(data)))
        self.frames_in += 1
        return self._ready.pop(0)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The proven identity of the node at the other end of a link."""

    key: bytes
    node_id: bytes
    listen_port: int


async def send_message(stream: FramedStream, msg: Message) -> None:
    """Encode and send one message."""
    await stream.send_frame(encode_message(msg))


async def handshake(
    stream: FramedStream,
    node_key: SigningKey,
    listen_port: int,
    *,
    limits: WireLimits = DEFAULT_WIRE_LIMITS,
) -> PeerIdentity:
    """Run the hello exchange; both sides call this at once.

    The caller bounds it with a cancel scope (a silent peer is not an error
    this function can see).

    Args:
        stream: a fresh link.
        node_key: our node key.
        listen_port: where we accept links (0 if we do not).

    Returns:
        The peer's proven key, node id and listen port.

    Raises:
        ProtocolError: the peer sent something other than a valid hello and
            auth, an invalid key, or a signature that does not verify
            (reasons ``bad_hello``, ``bad_key``, ``bad_signature``, or a
            DecodeError's reason).
        LinkClosed: the stream ended first.
    """
    nonce = os.urandom(NONCE_SIZE)
    own = node_key.public_key
    await send_message(stream, Hello(own, nonce, listen_port))
    hello = decode_message_untrusted(await stream.receive_frame(), limits)
    if not isinstance(hello, Hello):
        raise ProtocolError(f"expected hello, got {type(hello).__name__}", reason="bad_hello")
    try:
        check_public_key(hello.key)
    except (InvalidSignature, DecodeError) as exc:
        raise ProtocolError(f"peer node key is invalid: {exc}", reason="bad_key") from None
    await send_message(stream, Auth(node_key.sign(hello_signed_bytes(hello.nonce, own))))
    auth = decode_message_untrusted(await stream.receive_frame(), limits)
    if not isinstance(auth, Auth):
        raise ProtocolError(f"expected auth, got {type(auth).__name__}", reason="bad_hello")
    verify_strict(hello.key, auth.sig, hello_signed_bytes(nonce, hello.key))
    return PeerIdentity(hello.key, node_id_from_public_key(hello.key), hello.port)
