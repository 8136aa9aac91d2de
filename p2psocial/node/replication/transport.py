"""Peer links: framed byte streams and the hello handshake (spec/sync.md §2-§3, §10).

A link is any reliable byte stream cut into length-prefixed frames. The
replication service sees only :class:`FramedStream`. Every peer link is a
:class:`NoiseFramedStream`: the sans-IO :class:`~p2psocial.protocol.securelink.SecureLink`
(preamble, Noise XX bound to the node key, encrypted frames) driven over a
trio stream. :class:`TCPFramedStream` (plaintext frames) stays for tests and tools.

The hello proves each side's node key: both send ``hello`` (key, fresh nonce,
listen port), then each signs ``HELLO_TAG || peer's nonce || own key`` and
sends it as ``auth``. A replayed auth fails because the nonce is fresh; the tag
keeps the signature from ever being valid for another record type. The hello
runs inside the encrypted channel and must name the node key the Noise
payload proved (:func:`secure_handshake`), so it can neither be relayed by a
man in the middle nor claim a second identity.
"""

from __future__ import annotations

import contextlib
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
from ...protocol.noise import generate_private
from ...protocol.securelink import SecureLink
from ...protocol.wire import (
    DEFAULT_WIRE_LIMITS,
    EXT_MARKER,
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
    "NoiseFramedStream",
    "PeerIdentity",
    "TCPFramedStream",
    "handshake",
    "open_secure_link",
    "secure_handshake",
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


class _CountedStream:
    """A trio stream with byte and frame counters and LinkClosed for its ends."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._ready: list[bytes] = []
        self._send_lock = trio.Lock()
        # A write that was cancelled or failed part way may have sent some of
        # its bytes: the peer's framing (and cipher) is out of step, so no
        # later write may follow it.
        self._send_broken = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.frames_in = 0
        self.frames_out = 0

    async def _write(self, data: bytes) -> None:
        if self._send_broken:
            raise LinkClosed("broken")
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._send_broken = True
            raise LinkClosed("broken") from exc
        except BaseException:
            self._send_broken = True
            raise
        self.bytes_out += len(data)

    async def _read(self) -> bytes:
        try:
            data = await self.stream.receive_some(_RECEIVE_CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise LinkClosed("broken") from exc
        if not data:
            raise LinkClosed("eof")
        self.bytes_in += len(data)
        return bytes(data)

    async def aclose(self) -> None:
        """Close the stream."""
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


class TCPFramedStream(_CountedStream):
    """Length-prefixed frames over a trio stream, with byte and frame counters.

    Plaintext: not a peer link any more (every link is a :class:`NoiseFramedStream`);
    kept for tools and tests.

    Args:
        stream: a connected trio stream (``trio.SocketStream``).
        limits: frame size limit, enforced on the length prefix.
    """

    def __init__(self, stream: trio.abc.Stream, limits: WireLimits = DEFAULT_WIRE_LIMITS) -> None:
        super().__init__(stream)
        self.limits = limits
        self._decoder = FrameDecoder(limits)

    async def send_frame(self, body: bytes) -> None:
        data = encode_frame(body, self.limits)
        async with self._send_lock:
            # A cancellation that came while the lock was handed to us ends
            # the send here, before any byte of it is written.
            await trio.lowlevel.checkpoint_if_cancelled()
            await self._write(data)
        self.frames_out += 1

    async def receive_frame(self) -> bytes:
        while not self._ready:
            self._ready.extend(self._decoder.feed(await self._read()))
        self.frames_in += 1
        return self._ready.pop(0)


class NoiseFramedStream(_CountedStream):
    """Encrypted frames over a trio stream: a :class:`SecureLink` driven by I/O.

    Call :meth:`establish` first (the Noise handshake); then it is a
    :class:`FramedStream`. ``bytes_*`` count wire bytes, ``frames_*`` frames.

    Args:
        stream: a connected trio stream.
        link: the sans-IO link state (its role, keys and limits).
    """

    def __init__(self, stream: trio.abc.Stream, link: SecureLink) -> None:
        super().__init__(stream)
        self.link = link

    async def _receive(self) -> None:
        data = await self._read()
        try:
            self._ready.extend(self.link.receive_data(data))
        except ProtocolError:
            # A refusal (an unsupported transport) is said before closing.
            out = self.link.data_to_send()
            if out:
                with contextlib.suppress(LinkClosed):
                    await self._write(out)
            raise

    async def establish(self) -> None:
        """Run the Noise handshake; the caller bounds it in time.

        Raises:
            ProtocolError: the peer broke the link protocol or its node-key
                proof failed (``link_*``, ``noise_*``, ``wrong_node``, or a
                ``verify_strict`` reason).
            LinkClosed: the stream ended first.
        """
        while True:
            out = self.link.data_to_send()
            if out:
                await self._write(out)
            if self.link.established:
                return
            await self._receive()

    async def send_frame(self, body: bytes) -> None:
        async with self._send_lock:
            # Encrypt under the lock: nonces must reach the wire in order.
            # And only once no cancellation is pending: one that came while
            # the lock was handed to us would otherwise end the write after
            # the encryption used a nonce, and the peer, still expecting
            # that nonce, would fail every later frame's authentication.
            # From here to the first byte written there is no checkpoint.
            await trio.lowlevel.checkpoint_if_cancelled()
            await self._write(self.link.send_frame(body))
        self.frames_out += 1

    async def receive_frame(self) -> bytes:
        """Next frame body.

        Raises:
            LinkClosed: at EOF.
            ProtocolError: an undecryptable, replayed or reordered message
                (``noise_decrypt``), a bad length, or an oversize frame.
        """
        while not self._ready:
            await self._receive()
        self.frames_in += 1
        return self._ready.pop(0)


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The proven identity of the node at the other end of a link."""

    key: bytes
    node_id: bytes
    listen_port: int
    #: The peer's hello nonce ended in the extension marker (spec/sync.md §9):
    #: it sends ``caps`` first and reads ours.
    ext: bool = False


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
    # Fresh random bytes, then the marker of spec/sync.md §9.
    nonce = os.urandom(NONCE_SIZE - len(EXT_MARKER)) + EXT_MARKER
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
    return PeerIdentity(
        hello.key,
        node_id_from_public_key(hello.key),
        hello.port,
        ext=hello.nonce.endswith(EXT_MARKER),
    )


async def secure_handshake(
    framed: NoiseFramedStream,
    node_key: SigningKey,
    listen_port: int,
    *,
    limits: WireLimits = DEFAULT_WIRE_LIMITS,
) -> PeerIdentity:
    """The Noise handshake, then the hello inside it; the caller bounds the time.

    Returns:
        The peer's identity; its key is the one the Noise payload proved.

    Raises:
        ProtocolError: as :meth:`NoiseFramedStream.establish` and
            :func:`handshake`, or ``key_mismatch`` when the hello names
            another node key than the Noise payload.
        LinkClosed: the stream ended first.
    """
    await framed.establish()
    peer = await handshake(framed, node_key, listen_port, limits=limits)
    if peer.key != framed.link.peer_key:
        raise ProtocolError("the hello names another key than the handshake", reason="key_mismatch")
    return peer


async def open_secure_link(
    stream: trio.abc.Stream,
    node_key: SigningKey,
    listen_port: int,
    *,
    initiator: bool = True,
    expected_node_id: bytes | None = None,
    limits: WireLimits = DEFAULT_WIRE_LIMITS,
) -> tuple[NoiseFramedStream, PeerIdentity]:
    """Make an encrypted, authenticated link over ``stream`` (a fresh static key).

    Returns:
        The framed stream, ready for messages, and the peer's identity.

    Raises:
        As :func:`secure_handshake`.
    """
    link = SecureLink(
        initiator=initiator,
        node_key=node_key,
        static_private=generate_private(),
        expected_node_id=expected_node_id,
        limits=limits,
    )
    framed = NoiseFramedStream(stream, link)
    return framed, await secure_handshake(framed, node_key, listen_port, limits=limits)
