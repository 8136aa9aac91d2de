"""Port mapping on home routers: the NAT-PMP (RFC 6886) and PCP (RFC 6887)
messages a node exchanges with its gateway, and when to send them.

Sans-IO: requests are built as bytes, responses are read with
``decode_*_untrusted`` (which raise only :class:`DecodeError`), and the
retransmission, renewal and back-off times are pure functions of the attempt
number or the granted lifetime. The socket work is node/portmap.py.

Theory (spec/portmap.md): a client asks the gateway (UDP port 5351) to map an
internal port to an external one for a lifetime. The gateway answers with the
port and lifetime it grants; the client renews at half the lifetime and
removes the mapping with a request of lifetime 0. NAT-PMP (version 0) has a
separate request for the external IPv4 address; PCP (version 2) carries it in
the MAP response and ties a mapping to a 12-byte nonce the client chooses.
A NAT-PMP-only gateway answers a PCP request with a version-0 "unsupported
version" response, which :func:`decode_response_untrusted` reports as such.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final, Literal

from .errors import DecodeError

__all__ = [
    "ATTEMPTS",
    "GATEWAY_PORT",
    "LIFETIME",
    "MAX_RESPONSE",
    "PROTO_TCP",
    "PROTO_UDP",
    "ExternalAddress",
    "Mapping",
    "Unsupported",
    "backoff_delay",
    "decode_response_untrusted",
    "encode_natpmp_external_request",
    "encode_natpmp_map_request",
    "encode_pcp_map_request",
    "renew_delay",
    "retransmit_timeout",
]

#: The UDP port gateways listen on (both protocols).
GATEWAY_PORT: Final = 5351
#: Lifetime asked for, in seconds (RFC 6886 recommends two hours).
LIFETIME: Final = 7200
#: Requests sent per exchange before giving up (timeouts 0.25, 0.5, 1, 2 s).
ATTEMPTS: Final = 4
#: Largest response read (PCP's own limit is 1100 bytes).
MAX_RESPONSE: Final = 1100

PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
_NATPMP_OP: Final = {PROTO_UDP: 1, PROTO_TCP: 2}
_PCP_VERSION: Final = 2
_PCP_MAP: Final = 1
_NONCE_LEN: Final = 12

Protocol = Literal["natpmp", "pcp"]


@dataclass(frozen=True, slots=True)
class Mapping:
    """A MAP answer from the gateway.

    Attributes:
        protocol: ``"natpmp"`` or ``"pcp"``.
        result: 0 on success, else the protocol's result code.
        transport: PROTO_TCP or PROTO_UDP.
        internal_port, external_port: the mapping (external 0 on failure).
        lifetime: seconds granted (0: removed or refused).
        epoch: the gateway's seconds since its mappings were last lost.
        external_ip: the external address (PCP only; None for NAT-PMP).
        nonce: the request's nonce echoed back (PCP only; empty for NAT-PMP).
    """

    protocol: Protocol
    result: int
    transport: int
    internal_port: int
    external_port: int
    lifetime: int
    epoch: int
    external_ip: str | None = None
    nonce: bytes = b""


@dataclass(frozen=True, slots=True)
class ExternalAddress:
    """A NAT-PMP external address answer (``result`` 0 on success)."""

    result: int
    epoch: int
    external_ip: str


@dataclass(frozen=True, slots=True)
class Unsupported:
    """The gateway does not speak the request's version (result 1), in
    ``protocol`` (the version it answered in)."""

    protocol: Protocol
    result: int


def _port(port: int) -> None:
    if type(port) is not int or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be 0..65535, not {port!r}")


def _lifetime(lifetime: int) -> None:
    if type(lifetime) is not int or not 0 <= lifetime <= 0xFFFFFFFF:
        raise ValueError(f"lifetime must be 0..2**32-1, not {lifetime!r}")


def encode_natpmp_external_request() -> bytes:
    """The NAT-PMP request for the gateway's external address (2 bytes)."""
    return b"\x00\x00"


def encode_natpmp_map_request(
    transport: int, internal_port: int, external_port: int, lifetime: int
) -> bytes:
    """A NAT-PMP MAP request (12 bytes); ``lifetime`` 0 removes the mapping.

    Raises:
        ValueError: an unknown transport, a port or lifetime out of range.
    """
    if transport not in _NATPMP_OP:
        raise ValueError(f"transport must be TCP or UDP, not {transport!r}")
    _port(internal_port)
    _port(external_port)
    _lifetime(lifetime)
    return struct.pack(
        "!BBHHHI", 0, _NATPMP_OP[transport], 0, internal_port, external_port, lifetime
    )


def _ip16(ip: str) -> bytes:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


def _ip_text(raw: bytes) -> str:
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped is not None else str(addr)


def encode_pcp_map_request(
    nonce: bytes,
    transport: int,
    internal_port: int,
    external_port: int,
    lifetime: int,
    client_ip: str,
    external_ip: str = "0.0.0.0",
) -> bytes:
    """A PCP MAP request (60 bytes, no options); ``lifetime`` 0 removes the
    mapping ``nonce`` made.

    Args:
        nonce: 12 bytes the client chose for this mapping (kept for renewals).
        transport: PROTO_TCP or PROTO_UDP.
        internal_port: the port the node listens on.
        external_port: the port suggested (0: any).
        lifetime: seconds asked for.
        client_ip: the address the request leaves from (the gateway checks it).
        external_ip: the external address suggested (all zeros: any).

    Raises:
        ValueError: a bad nonce, transport, port, lifetime or address.
    """
    if len(nonce) != _NONCE_LEN:
        raise ValueError("nonce must be 12 bytes")
    if transport not in (PROTO_TCP, PROTO_UDP):
        raise ValueError(f"transport must be TCP or UDP, not {transport!r}")
    _port(internal_port)
    _port(external_port)
    _lifetime(lifetime)
    header = struct.pack("!BBHI", _PCP_VERSION, _PCP_MAP, 0, lifetime) + _ip16(client_ip)
    body = struct.pack("!12sB3xHH", nonce, transport, internal_port, external_port)
    return header + body + _ip16(external_ip)


def _decode_natpmp(data: bytes) -> Mapping | ExternalAddress | Unsupported:
    if len(data) < 4:
        raise DecodeError("NAT-PMP response shorter than 4 bytes", reason="short")
    op, result = data[1], struct.unpack_from("!H", data, 2)[0]
    if op < 128:
        raise DecodeError("NAT-PMP request where a response was due", reason="not_response")
    if result == 1:
        return Unsupported("natpmp", result)
    if op == 128:
        if len(data) != 12:
            raise DecodeError("NAT-PMP address response is not 12 bytes", reason="length")
        epoch = struct.unpack_from("!I", data, 4)[0]
        return ExternalAddress(result, epoch, str(ipaddress.IPv4Address(data[8:12])))
    transport = {129: PROTO_UDP, 130: PROTO_TCP}.get(op)
    if transport is None:
        raise DecodeError(f"unknown NAT-PMP opcode {op}", reason="opcode")
    if len(data) != 16:
        raise DecodeError("NAT-PMP map response is not 16 bytes", reason="length")
    epoch, internal, external, lifetime = struct.unpack_from("!IHHI", data, 4)
    return Mapping("natpmp", result, transport, internal, external, lifetime, epoch)


def _decode_pcp(data: bytes) -> Mapping | Unsupported:
    if len(data) < 24 or len(data) % 4:
        raise DecodeError("PCP response shorter than 24 bytes or unaligned", reason="length")
    r_op, result = data[1], data[3]
    if not r_op & 0x80:
        raise DecodeError("PCP request where a response was due", reason="not_response")
    if result == 1:
        return Unsupported("pcp", result)
    if r_op & 0x7F != _PCP_MAP:
        raise DecodeError(f"unexpected PCP opcode {r_op & 0x7F}", reason="opcode")
    if len(data) < 60:
        raise DecodeError("PCP MAP response shorter than 60 bytes", reason="length")
    lifetime, epoch = struct.unpack_from("!II", data, 4)
    nonce, transport, internal, external = struct.unpack_from("!12sB3xHH", data, 24)
    if transport not in (PROTO_TCP, PROTO_UDP):
        raise DecodeError(f"PCP MAP for protocol {transport}", reason="transport")
    # Options (a code, a reserved byte, a length, the data padded to 4) are
    # not used by the node; they are only checked to be well formed.
    at = 60
    while at < len(data):
        if at + 4 > len(data):
            raise DecodeError("PCP option header truncated", reason="option")
        length = struct.unpack_from("!H", data, at + 2)[0]
        at += 4 + (length + 3) // 4 * 4
        if at > len(data):
            raise DecodeError("PCP option longer than the response", reason="option")
    return Mapping(
        "pcp", result, transport, internal, external, lifetime, epoch, _ip_text(data[44:60]), nonce
    )


def decode_response_untrusted(data: bytes) -> Mapping | ExternalAddress | Unsupported:
    """Read one datagram from the gateway (either protocol, by its version byte).

    Returns:
        a :class:`Mapping`, an :class:`ExternalAddress` (NAT-PMP) or
        :class:`Unsupported` (the gateway does not speak that version).

    Raises:
        DecodeError: anything else (too long, truncated, a request, an
            unknown version or opcode); any other exception is a bug.
    """
    if len(data) > MAX_RESPONSE:
        raise DecodeError(f"response longer than {MAX_RESPONSE} bytes", reason="too_long")
    if not data:
        raise DecodeError("empty response", reason="short")
    if data[0] == 0:
        return _decode_natpmp(bytes(data))
    if data[0] == _PCP_VERSION:
        return _decode_pcp(bytes(data))
    raise DecodeError(f"unknown version {data[0]}", reason="version")


def retransmit_timeout(attempt: int) -> float | None:
    """Seconds to wait for an answer to send number ``attempt`` (0-based):
    0.25 s doubling; None once ATTEMPTS sends went unanswered (give up)."""
    if attempt < 0:
        raise ValueError("attempt must be 0 or more")
    return 0.25 * 2**attempt if attempt < ATTEMPTS else None


def backoff_delay(failures: int) -> float:
    """Seconds before trying a gateway again after ``failures`` (1 or more)
    exchanges in a row got no usable answer: 5 minutes doubling, at most an hour."""
    if failures < 1:
        raise ValueError("failures must be 1 or more")
    return float(min(300 * 2 ** min(failures - 1, 4), 3600))


def renew_delay(lifetime: int) -> float:
    """Seconds after a grant of ``lifetime`` seconds to renew it: half the
    lifetime, but not sooner than 30 s (a gateway granting less is renewed
    every 30 s rather than flooded)."""
    return max(lifetime / 2, 30.0)
