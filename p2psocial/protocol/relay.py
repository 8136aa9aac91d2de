"""Relayed links: the bytes a relay and its clients exchange (spec/sync.md §11).

A relay splices two TCP connections; the peer link inside the splice is the
ordinary transport-1 link of §10, Noise end to end, so the relay forwards
ciphertext only. This module holds the fixed-size control messages around
the splice: the reservation (transport 2), the connect request (transport 3)
and the accept (transport 4). Pure: bytes in, values out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from .errors import DecodeError
from .identity import check_public_key, node_id_from_public_key, verify_strict

__all__ = [
    "ACCEPT_SIZE",
    "CHALLENGE_SIZE",
    "CONNECT_ANSWER_SIZE",
    "CONNECT_SIZE",
    "CONTROL_INCOMING",
    "CONTROL_KEEPALIVE",
    "MAGIC",
    "PREAMBLE_SIZE",
    "PROOF_SIZE",
    "RELAY_FEED",
    "RESERVE_TAG",
    "STATUS_REASONS",
    "TOKEN_SIZE",
    "TRANSPORT_ACCEPT",
    "TRANSPORT_CONNECT",
    "TRANSPORT_LINK",
    "TRANSPORT_RESERVE",
    "ControlDecoder",
    "Incoming",
    "Keepalive",
    "decode_accept_untrusted",
    "decode_challenge_untrusted",
    "decode_connect_answer_untrusted",
    "decode_connect_untrusted",
    "decode_preamble_untrusted",
    "encode_accept",
    "encode_challenge",
    "encode_connect",
    "encode_connect_answer",
    "encode_incoming",
    "encode_keepalive",
    "encode_preamble",
    "encode_proof",
    "reserve_signed_bytes",
    "verify_proof_untrusted",
]

MAGIC = b"p2ps"
PREAMBLE_SIZE = 6
#: Transport ids of the preamble (§10.1): the link itself, and the relay's three.
TRANSPORT_LINK = 1
TRANSPORT_RESERVE = 2
TRANSPORT_CONNECT = 3
TRANSPORT_ACCEPT = 4

NODE_ID_SIZE = 20
NONCE_SIZE = 32
TOKEN_SIZE = 16
#: The pseudo-feed in whose DHT swarm relays announce themselves (§11.5).
RELAY_FEED = hashlib.sha256(b"p2psocial/relay-swarm/v1").digest()
#: The domain tag of a reservation proof.
RESERVE_TAG = b"p2psocial/relay-reserve/v1\x00"

CHALLENGE_SIZE = PREAMBLE_SIZE + NODE_ID_SIZE + NONCE_SIZE
PROOF_SIZE = 32 + 64
CONNECT_SIZE = PREAMBLE_SIZE + NODE_ID_SIZE
CONNECT_ANSWER_SIZE = PREAMBLE_SIZE + 1
ACCEPT_SIZE = PREAMBLE_SIZE + TOKEN_SIZE

#: The status byte of a reservation or connect answer -> its reason name.
STATUS_REASONS = {
    0: "ok",
    1: "no_reservation",
    2: "relay_full",
    3: "target_silent",
    4: "bad_proof",
}

CONTROL_KEEPALIVE = 0
CONTROL_INCOMING = 1


def encode_preamble(transport: int) -> bytes:
    """``MAGIC || u16 transport``."""
    return MAGIC + transport.to_bytes(2, "big")


def decode_preamble_untrusted(data: bytes) -> int:
    """The transport id of a 6-byte preamble.

    Raises:
        DecodeError: ``link_bad_preamble`` (not 6 bytes, or not ``MAGIC``).
    """
    if len(data) != PREAMBLE_SIZE or data[:4] != MAGIC:
        raise DecodeError("not a p2psocial preamble", reason="link_bad_preamble")
    return int.from_bytes(data[4:], "big")


def _status(byte: int) -> str:
    reason = STATUS_REASONS.get(byte)
    if reason is None:
        raise DecodeError(f"unknown relay status {byte}", reason="relay_bad_status")
    return reason


def _expect(data: bytes, size: int, transport: int, what: str) -> bytes:
    if len(data) != size:
        raise DecodeError(f"{what} must be {size} bytes", reason="relay_bad_message")
    if decode_preamble_untrusted(data[:PREAMBLE_SIZE]) != transport:
        raise DecodeError(f"{what} names another transport", reason="link_unsupported")
    return data[PREAMBLE_SIZE:]


def encode_challenge(relay_id: bytes, nonce: bytes) -> bytes:
    """The relay's answer to a reservation preamble: its node id and a fresh nonce."""
    return encode_preamble(TRANSPORT_RESERVE) + relay_id + nonce


def decode_challenge_untrusted(data: bytes) -> tuple[bytes, bytes]:
    """(relay node id, nonce) from a 58-byte challenge.

    Raises:
        DecodeError: ``relay_bad_message``, ``link_bad_preamble`` or ``link_unsupported``.
    """
    body = _expect(data, CHALLENGE_SIZE, TRANSPORT_RESERVE, "a challenge")
    return body[:NODE_ID_SIZE], body[NODE_ID_SIZE:]


def reserve_signed_bytes(nonce: bytes, relay_id: bytes) -> bytes:
    """What a reserving node signs: ``RESERVE_TAG || nonce || relay node id``."""
    return RESERVE_TAG + nonce + relay_id


def encode_proof(public_key: bytes, signature: bytes) -> bytes:
    """``key(32) || sig(64)``: the reserving node's proof."""
    return public_key + signature


def verify_proof_untrusted(data: bytes, nonce: bytes, relay_id: bytes) -> bytes:
    """Check a reservation proof; returns the node id it proves.

    Raises:
        DecodeError: not 96 bytes (``relay_bad_message``).
        InvalidSignature: a key that breaks the key rules, or a bad signature.
    """
    if len(data) != PROOF_SIZE:
        raise DecodeError("a proof must be 96 bytes", reason="relay_bad_message")
    key, sig = data[:32], data[32:]
    check_public_key(key)
    verify_strict(key, sig, reserve_signed_bytes(nonce, relay_id))
    return node_id_from_public_key(key)


def encode_connect(target: bytes) -> bytes:
    """A dialler's request: splice me to node ``target``."""
    return encode_preamble(TRANSPORT_CONNECT) + target


def decode_connect_untrusted(data: bytes) -> bytes:
    """The target node id of a 26-byte connect request.

    Raises:
        DecodeError: as :func:`decode_challenge_untrusted`.
    """
    return _expect(data, CONNECT_SIZE, TRANSPORT_CONNECT, "a connect request")


def encode_connect_answer(status: int) -> bytes:
    """The relay's answer to a connect: ``preamble(3) || status``."""
    return encode_preamble(TRANSPORT_CONNECT) + bytes([status])


def decode_connect_answer_untrusted(data: bytes) -> str:
    """The reason name of a connect answer (``ok`` when spliced).

    Raises:
        DecodeError: as :func:`decode_challenge_untrusted`, or ``relay_bad_status``.
    """
    return _status(_expect(data, CONNECT_ANSWER_SIZE, TRANSPORT_CONNECT, "a connect answer")[0])


def encode_accept(token: bytes) -> bytes:
    """A reserved node's answer to an incoming connect, on a new connection."""
    return encode_preamble(TRANSPORT_ACCEPT) + token


def decode_accept_untrusted(data: bytes) -> bytes:
    """The token of a 22-byte accept.

    Raises:
        DecodeError: as :func:`decode_challenge_untrusted`.
    """
    return _expect(data, ACCEPT_SIZE, TRANSPORT_ACCEPT, "an accept")


def encode_keepalive() -> bytes:
    """A control message that only says "still here"."""
    return bytes([CONTROL_KEEPALIVE])


def encode_incoming(token: bytes) -> bytes:
    """A control message: a dialler waits; accept with this token."""
    return bytes([CONTROL_INCOMING]) + token


@dataclass(frozen=True, slots=True)
class Keepalive:
    """The other side of a reservation is alive."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A dialler waits at the relay; answer with :func:`encode_accept` of ``token``."""

    token: bytes


class ControlDecoder:
    """Cuts a reservation's control stream (after the status byte) into messages.

    Messages are one type byte and a fixed-size body, so nothing a peer sends
    can make this buffer grow past 16 bytes.
    """

    _SIZES: ClassVar[dict[int, int]] = {CONTROL_KEEPALIVE: 1, CONTROL_INCOMING: 1 + TOKEN_SIZE}

    def __init__(self) -> None:
        self._buf = b""

    def feed_untrusted(self, data: bytes) -> list[Keepalive | Incoming]:
        """Messages complete after ``data``.

        Raises:
            DecodeError: an unknown type byte (``relay_bad_control``).
        """
        self._buf += data
        out: list[Keepalive | Incoming] = []
        while self._buf:
            size = self._SIZES.get(self._buf[0])
            if size is None:
                raise DecodeError(
                    f"unknown relay control message {self._buf[0]}", reason="relay_bad_control"
                )
            if len(self._buf) < size:
                break
            msg, self._buf = self._buf[:size], self._buf[size:]
            out.append(Keepalive() if size == 1 else Incoming(msg[1:]))
        return out
