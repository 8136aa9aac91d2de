"""The encrypted peer link, sans-IO: preamble, Noise XX handshake, framing (spec/sync.md §10).

Theory. Bytes on the TCP stream, in order::

    dialler -> responder : PREAMBLE                       (MAGIC || u16 transport id)
    responder -> dialler : PREAMBLE                       (accepted; or MAGIC || 0x0000, refused)
    then, both ways      : noise_message*, each as u16 big-endian length || message

The first three Noise messages are the XX handshake (``-> e``, ``<- e, ee, s,
es``, ``-> s, se``); messages 2 and 3 carry each side's node-key proof, a
canonical msgpack map ``{"key": node public key, "sig": Ed25519 over
NOISE_STATIC_TAG || own Noise static key}``. Every later message is a
transport message: its plaintexts, concatenated in order, are the frame
stream of spec/sync.md §2 (u32 length || body), so a frame larger than one
Noise message is split across several and reassembled under the same
``max_frame`` limit. Each direction's cipher is rekeyed (Noise ``Rekey()``)
every ``REKEY_INTERVAL`` messages, by the same rule on both sides.

States: ``preamble`` -> ``handshake`` -> ``open``; any error -> ``failed``
(terminal: every later call raises the same :class:`LinkError`). There is no
plaintext fallback: a missing or unknown preamble ends the link.

Nothing here touches a socket: :class:`SecureLink` takes received bytes and
returns frames, and queues bytes to send in :meth:`SecureLink.data_to_send`.
"""

from __future__ import annotations

import struct

from . import encoding
from .encoding import Limits
from .errors import DecodeError, LocalUsageError, ProtocolError
from .identity import SigningKey, check_public_key, node_id_from_public_key, verify_strict
from .noise import MAX_MESSAGE, TAG_SIZE, CipherState, Handshake, NoiseError, public_key
from .wire import DEFAULT_WIRE_LIMITS, FrameDecoder, WireLimits, encode_frame

__all__ = [
    "LINK_PROLOGUE_TAG",
    "MAGIC",
    "MAX_PLAINTEXT",
    "NOISE_STATIC_TAG",
    "PREAMBLE",
    "REFUSED_PREAMBLE",
    "REKEY_INTERVAL",
    "TRANSPORT_NOISE_XX",
    "LinkError",
    "SecureLink",
    "decode_link_payload_untrusted",
    "encode_link_payload",
    "static_signed_bytes",
]

MAGIC = b"p2ps"
#: Transport id 1: Noise_XX_25519_ChaChaPoly_SHA256 with the payload, framing
#: and rekey rule of spec/sync.md §10. Id 0 is the refusal; others are reserved.
TRANSPORT_NOISE_XX = 1
_U16 = struct.Struct(">H")
PREAMBLE = MAGIC + _U16.pack(TRANSPORT_NOISE_XX)
REFUSED_PREAMBLE = MAGIC + _U16.pack(0)
#: The Noise prologue is this tag followed by the dialler's preamble, so a
#: tampered preamble makes the handshake fail.
LINK_PROLOGUE_TAG = b"p2psocial/link/v1\x00"
#: Domain tag of the node-key proof: a node signs NOISE_STATIC_TAG || its Noise static key.
NOISE_STATIC_TAG = b"p2psocial/noise-static/v1\x00"
#: Each direction's cipher is rekeyed after every 65,536 messages it carried.
REKEY_INTERVAL = 2**16
#: Plaintext bytes one transport message carries at most.
MAX_PLAINTEXT = MAX_MESSAGE - TAG_SIZE
#: A handshake message 2 or 3 is at most this long (e, s, a small payload, tags).
_MAX_HANDSHAKE_MESSAGE = 512
_PAYLOAD_LIMITS = Limits(
    max_size=256, max_depth=1, max_container_len=2, max_str_len=8, max_bin_len=64
)


class LinkError(ProtocolError):
    """The peer broke the link protocol; ``reason`` says how (spec/sync.md §10.6)."""

    reason = "link"


def static_signed_bytes(static_public: bytes) -> bytes:
    """What a node signs to bind its Noise static key to its node key."""
    return NOISE_STATIC_TAG + static_public


def encode_link_payload(node_key: SigningKey, static_public: bytes) -> bytes:
    """The handshake payload proving ``node_key`` owns ``static_public``."""
    sig = node_key.sign(static_signed_bytes(static_public))
    return encoding.encode({"key": node_key.public_key, "sig": sig})


def decode_link_payload_untrusted(payload: bytes, static_public: bytes) -> bytes:
    """Check a peer's handshake payload against its Noise static key.

    Returns:
        The peer's node public key (it passed the key rules and signed
        ``static_public``).

    Raises:
        LinkError: not a canonical ``{key, sig}`` map (``link_bad_payload``).
        InvalidSignature: the key fails the key rules or the signature does
            not verify (the reasons of ``verify_strict``).
        DecodeError: never (wrapped as ``link_bad_payload``). Any other
            exception is a bug.
    """
    try:
        value = encoding.decode_untrusted(payload, _PAYLOAD_LIMITS)
    except DecodeError as exc:
        raise LinkError(f"handshake payload: {exc.message}", reason="link_bad_payload") from None
    if (
        type(value) is not dict
        or sorted(value) != ["key", "sig"]
        or type(value["key"]) is not bytes
        or type(value["sig"]) is not bytes
    ):
        raise LinkError("handshake payload must be {key, sig}", reason="link_bad_payload")
    key: bytes = value["key"]
    check_public_key(key)
    verify_strict(key, value["sig"], static_signed_bytes(static_public))
    return key


class SecureLink:
    """One end of an encrypted link, as a state machine over bytes.

    Args:
        initiator: True for the dialler (it speaks first).
        node_key: our node key, proven in the handshake payload.
        static_private: our X25519 Noise static key (any fresh one will do:
            the payload binds it to the node key).
        expected_node_id: the node id the dialler meant to reach, if known;
            another node ends the handshake with ``wrong_node``.
        limits: the frame limit applied to reassembled frames.
        rekey_interval: messages per direction between rekeys (the spec's
            value; other values only for tests, and both ends must agree).
        ephemeral_private: a fixed ephemeral key, for test vectors only.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        node_key: SigningKey,
        static_private: bytes,
        expected_node_id: bytes | None = None,
        limits: WireLimits = DEFAULT_WIRE_LIMITS,
        rekey_interval: int = REKEY_INTERVAL,
        ephemeral_private: bytes | None = None,
    ) -> None:
        if rekey_interval < 1:
            raise LocalUsageError("rekey_interval must be at least 1")
        self.initiator = initiator
        self.state = "preamble"
        self.limits = limits
        self.rekey_interval = rekey_interval
        self._expected = expected_node_id
        self._payload = encode_link_payload(node_key, public_key(static_private))
        self._handshake = Handshake(
            initiator=initiator,
            static_private=static_private,
            prologue=LINK_PROLOGUE_TAG + PREAMBLE,
            ephemeral_private=ephemeral_private,
        )
        self._in = bytearray()
        self._out = bytearray()
        self._frames = FrameDecoder(limits)
        self._send: CipherState | None = None
        self._recv: CipherState | None = None
        self._error: ProtocolError | None = None
        #: The peer's node public key, once its payload verified.
        self.peer_key: bytes | None = None
        #: The Noise handshake hash (channel binding), once the handshake is done.
        self.handshake_hash: bytes | None = None
        self.messages_in = 0
        self.messages_out = 0
        if initiator:
            self._out += PREAMBLE
            self._write_handshake(b"")

    # ------------------------------------------------------------------ queries

    @property
    def established(self) -> bool:
        """Whether the handshake finished and frames may flow."""
        return self.state == "open"

    @property
    def peer_node_id(self) -> bytes | None:
        """The peer's node id (SHA-256 of its node key, first 20 bytes), once known."""
        return None if self.peer_key is None else node_id_from_public_key(self.peer_key)

    def data_to_send(self) -> bytes:
        """Bytes queued for the peer (handshake messages); empties the queue."""
        data = bytes(self._out)
        self._out.clear()
        return data

    # ------------------------------------------------------------------ sending

    def send_frame(self, body: bytes) -> bytes:
        """Encrypt one frame body; returns the bytes to write, in order.

        Raises:
            LocalUsageError: the handshake is not done, or the body is over ``max_frame``.
        """
        return self.seal(encode_frame(body, self.limits))

    def seal(self, stream_bytes: bytes) -> bytes:
        """Encrypt raw frame-stream bytes (length prefixes included), cut into
        Noise messages of at most :data:`MAX_PLAINTEXT` plaintext bytes each.

        :meth:`send_frame` is this over one encoded frame; tools that must
        send a malformed frame stream (hostile-peer tests) call it directly.

        Raises:
            LocalUsageError: the handshake is not done.
        """
        # A link that failed on receipt may still say bye: the two directions'
        # ciphers are independent.
        if self._send is None:
            raise LocalUsageError(f"cannot send in state {self.state}")
        out = bytearray()
        for start in range(0, len(stream_bytes), MAX_PLAINTEXT):
            out += self._seal(stream_bytes[start : start + MAX_PLAINTEXT])
        return bytes(out)

    def _seal(self, chunk: bytes) -> bytes:
        assert self._send is not None
        message = self._send.encrypt_with_ad(b"", chunk)
        self.messages_out += 1
        if self._send.nonce % self.rekey_interval == 0:
            self._send.rekey()
        return _U16.pack(len(message)) + message

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> list[bytes]:
        """Feed bytes read from the peer; returns the frame bodies now complete.

        After it returns, :meth:`data_to_send` may hold handshake bytes to write.

        Raises:
            LinkError: the link must close; ``reason`` says why (``link_*``,
                ``noise_*``, ``wrong_node``, ``handshake_incomplete``).
            InvalidSignature: the peer's node-key proof is invalid.
            DecodeError: a reassembled frame is over ``max_frame``
                (``frame_too_large``). Any other exception is a bug; every
                error leaves the link ``failed``.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._receive(data)
        except NoiseError as exc:
            failure: ProtocolError = LinkError(exc.message, reason=exc.reason)
        except ProtocolError as exc:
            failure = exc
        self.state = "failed"
        self._error = failure
        raise failure

    def _receive(self, data: bytes) -> list[bytes]:
        self._in += data
        if self.state == "preamble":
            if len(self._in) < len(PREAMBLE):
                if not (MAGIC.startswith(self._in[:4])):
                    raise LinkError(
                        "the peer does not speak the link protocol", reason="link_bad_preamble"
                    )
                return []
            got = bytes(self._in[: len(PREAMBLE)])
            del self._in[: len(PREAMBLE)]
            if got[:4] != MAGIC:
                raise LinkError(
                    "the peer does not speak the link protocol", reason="link_bad_preamble"
                )
            if got != PREAMBLE:
                if not self.initiator:
                    self._out += REFUSED_PREAMBLE
                raise LinkError(
                    f"transport {_U16.unpack(got[4:])[0]} is not supported",
                    reason="link_unsupported",
                )
            if not self.initiator:
                self._out += PREAMBLE
            self.state = "handshake"
        frames: list[bytes] = []
        while self.state in ("handshake", "open"):
            message = self._next_message()
            if message is None:
                break
            if self.state == "handshake":
                self._read_handshake(message)
            else:
                frames.extend(self._open(message))
        return frames

    def _next_message(self) -> bytes | None:
        if len(self._in) < 2:
            return None
        (n,) = _U16.unpack_from(self._in)
        if n == 0:
            raise LinkError("an empty Noise message", reason="link_bad_length")
        if self.state == "handshake" and n > _MAX_HANDSHAKE_MESSAGE:
            raise LinkError(f"a handshake message of {n} bytes", reason="link_bad_length")
        if len(self._in) < 2 + n:
            return None
        message = bytes(self._in[2 : 2 + n])
        del self._in[: 2 + n]
        return message

    def _write_handshake(self, payload: bytes) -> None:
        message = self._handshake.write_message(payload)
        self._out += _U16.pack(len(message)) + message
        self._maybe_finish()

    def _read_handshake(self, message: bytes) -> None:
        payload = self._handshake.read_message(message)
        remote = self._handshake.remote_static
        if remote is None:
            # Message 1 (-> e) carries no identity, so it may carry no payload.
            if payload:
                raise LinkError(
                    "the first handshake message has a payload", reason="link_bad_payload"
                )
        else:
            self.peer_key = decode_link_payload_untrusted(payload, remote)
            if self._expected is not None and self.peer_node_id != self._expected:
                raise LinkError(
                    f"expected node {self._expected.hex()[:16]}, met {self.peer_key.hex()[:16]}",
                    reason="wrong_node",
                )
        if not self._handshake.complete:
            self._write_handshake(self._payload)
        else:
            self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self._handshake.complete:
            return
        if self.peer_key is None:  # pragma: no cover - XX always delivers s
            raise LinkError("handshake ended without the peer's key", reason="handshake_incomplete")
        self.handshake_hash = self._handshake.handshake_hash
        self._send, self._recv = self._handshake.split()
        self.state = "open"

    def _open(self, message: bytes) -> list[bytes]:
        assert self._recv is not None
        if len(message) < TAG_SIZE:
            raise LinkError(
                f"a transport message of {len(message)} bytes", reason="link_bad_length"
            )
        plain = self._recv.decrypt_with_ad(b"", message)
        self.messages_in += 1
        if self._recv.nonce % self.rekey_interval == 0:
            self._recv.rekey()
        return self._frames.feed(plain)
