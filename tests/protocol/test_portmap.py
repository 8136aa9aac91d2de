"""NAT-PMP and PCP messages (protocol/portmap.py, spec/portmap.md): byte
tables, decoder tables, schedules, and seeded properties."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, seed
from hypothesis import strategies as st

from p2psocial.protocol import portmap as pm
from p2psocial.protocol.errors import DecodeError

NONCE = bytes(range(12))
V4_192 = bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 18])
V4_203 = bytes(10) + b"\xff\xff" + bytes([203, 0, 113, 70])


@pytest.mark.parametrize(
    ("request_bytes", "expected_hex"),
    [
        (pm.encode_natpmp_external_request(), "0000"),
        (pm.encode_natpmp_map_request(pm.PROTO_TCP, 4001, 4001, 7200), "000200000fa10fa100001c20"),
        (pm.encode_natpmp_map_request(pm.PROTO_UDP, 4002, 0, 0), "000100000fa2000000000000"),
        (
            pm.encode_pcp_map_request(NONCE, pm.PROTO_TCP, 4001, 4001, 7200, "192.0.2.18"),
            "0201000000001c20" + V4_192.hex() + NONCE.hex() + "060000000fa10fa1"
            "00000000000000000000ffff00000000",
        ),
    ],
)
def test_requests_encode_to_these_bytes(request_bytes: bytes, expected_hex: str) -> None:
    assert request_bytes.hex() == expected_hex


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (pm.encode_natpmp_map_request, (1, 4001, 4001, 7200)),
        (pm.encode_natpmp_map_request, (pm.PROTO_TCP, 65536, 1, 7200)),
        (pm.encode_natpmp_map_request, (pm.PROTO_TCP, 1, 1, -1)),
        (pm.encode_pcp_map_request, (b"short", pm.PROTO_TCP, 1, 1, 1, "192.0.2.1")),
        (pm.encode_pcp_map_request, (NONCE, 99, 1, 1, 1, "192.0.2.1")),
        (pm.encode_pcp_map_request, (NONCE, pm.PROTO_UDP, 1, 1, 2**32, "192.0.2.1")),
    ],
)
def test_bad_request_values_are_refused(call: object, args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        call(*args)  # type: ignore[operator]


def _pcp_response(
    result: int = 0, lifetime: int = 7200, transport: int = pm.PROTO_TCP, tail: bytes = b""
) -> bytes:
    head = struct.pack("!BBBBII12x", 2, 0x81, 0, result, lifetime, 42)
    return head + NONCE + struct.pack("!B3xHH", transport, 4001, 4001) + V4_203 + tail


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            bytes.fromhex("008000000000002acb007146"),
            pm.ExternalAddress(0, 42, "203.0.113.70"),
        ),
        (
            bytes.fromhex("008200000000002a0fa10fa200001c20"),
            pm.Mapping("natpmp", 0, pm.PROTO_TCP, 4001, 4002, 7200, 42),
        ),
        (
            bytes.fromhex("0081000200000000" + "0fa2000000000000"),
            pm.Mapping("natpmp", 2, pm.PROTO_UDP, 4002, 0, 0, 0),
        ),
        (bytes.fromhex("008100010000002a"), pm.Unsupported("natpmp", 1)),
        (
            _pcp_response(),
            pm.Mapping("pcp", 0, pm.PROTO_TCP, 4001, 4001, 7200, 42, "203.0.113.70", NONCE),
        ),
        (
            _pcp_response(tail=bytes([1, 0, 0, 4]) + bytes(4)),
            pm.Mapping("pcp", 0, pm.PROTO_TCP, 4001, 4001, 7200, 42, "203.0.113.70", NONCE),
        ),
        (bytes([2, 0x81, 0, 1]) + bytes(20), pm.Unsupported("pcp", 1)),
    ],
)
def test_responses_decode_to_these_values(data: bytes, expected: object) -> None:
    assert pm.decode_response_untrusted(data) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short"),
        (b"\x00\x80", "short"),
        (bytes(pm.MAX_RESPONSE + 1), "too_long"),
        (b"\x01" + bytes(15), "version"),
        (bytes.fromhex("0002000000000000"), "not_response"),
        (bytes.fromhex("00800000"), "length"),
        (bytes.fromhex("0083000000000000" + "0000000000000000"), "opcode"),
        (bytes.fromhex("008200000000002a0fa10fa2"), "length"),
        (bytes([2, 0x01, 0, 0]) + bytes(20), "not_response"),
        (bytes([2, 0x81, 0, 0]) + bytes(21), "length"),
        (bytes([2, 0x82, 0, 0]) + bytes(56), "opcode"),
        (bytes([2, 0x81, 0, 0]) + bytes(20), "length"),
        (_pcp_response(transport=1), "transport"),
        (_pcp_response(tail=bytes([1, 0, 0, 8]) + bytes(4)), "option"),
    ],
)
def test_bad_responses_raise_decode_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        pm.decode_response_untrusted(data)
    assert caught.value.reason == reason


def test_schedules() -> None:
    assert [pm.retransmit_timeout(n) for n in range(pm.ATTEMPTS + 2)] == [
        0.25,
        0.5,
        1.0,
        2.0,
        None,
        None,
    ]
    assert [pm.backoff_delay(n) for n in (1, 2, 3, 4, 5, 6, 50)] == [
        300.0,
        600.0,
        1200.0,
        2400.0,
        3600.0,
        3600.0,
        3600.0,
    ]
    assert [pm.renew_delay(t) for t in (7200, 120, 10, 0)] == [3600.0, 60.0, 30.0, 30.0]
    for bad in (pm.retransmit_timeout, pm.backoff_delay):
        with pytest.raises(ValueError):
            bad(-1)


@seed(16)
@given(st.binary(max_size=1200))
def test_any_bytes_decode_or_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        pm.decode_response_untrusted(data)


@seed(16)
@given(
    transport=st.sampled_from([pm.PROTO_TCP, pm.PROTO_UDP]),
    internal=st.integers(0, 65535),
    external=st.integers(0, 65535),
    lifetime=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 2**32 - 1),
    result=st.integers(0, 255).filter(lambda r: r != 1),
)
def test_a_natpmp_answer_to_a_request_decodes_to_its_fields(
    transport: int, internal: int, external: int, lifetime: int, epoch: int, result: int
) -> None:
    req = pm.encode_natpmp_map_request(transport, internal, external, lifetime)
    # A gateway answers with the request's opcode + 128 and the same ports.
    answer = bytes([0, req[1] + 128]) + struct.pack("!HI", result, epoch) + req[4:]
    got = pm.decode_response_untrusted(answer)
    assert got == pm.Mapping("natpmp", result, transport, internal, external, lifetime, epoch)


@seed(16)
@given(
    nonce=st.binary(min_size=12, max_size=12),
    transport=st.sampled_from([pm.PROTO_TCP, pm.PROTO_UDP]),
    internal=st.integers(0, 65535),
    external=st.integers(0, 65535),
    lifetime=st.integers(0, 2**32 - 1),
    ip=st.ip_addresses(v=4).map(str),
)
def test_a_pcp_answer_echoing_a_request_decodes_to_its_fields(
    nonce: bytes, transport: int, internal: int, external: int, lifetime: int, ip: str
) -> None:
    req = pm.encode_pcp_map_request(
        nonce, transport, internal, external, lifetime, "192.0.2.18", ip
    )
    # The response header replaces the client address with epoch and zeros.
    answer = bytes([2, 0x81, 0, 0]) + req[4:8] + struct.pack("!I12x", 7) + req[24:]
    got = pm.decode_response_untrusted(answer)
    assert got == pm.Mapping("pcp", 0, transport, internal, external, lifetime, 7, ip, nonce)
