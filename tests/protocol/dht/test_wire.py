"""Datagram codec: rpcudp framing, argument checks, and fuzzing of the untrusted decoder."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.dht.routing import Contact
from p2psocial.protocol.dht.wire import (
    MAX_DATAGRAM,
    PROVING_METHODS,
    Request,
    Response,
    decode_datagram_untrusted,
    encode_request,
    encode_response,
    encode_response_fitting,
    hello_message,
    parse_dial_back_reply,
    parse_find_value_reply,
    parse_get_peers_reply,
    parse_get_record_reply,
    parse_hello_reply,
    parse_node_list,
    parse_observe_reply,
    parse_peer_relays,
    parse_request_args,
    parse_status_reply,
    verify_hello,
)
from p2psocial.protocol.errors import DecodeError, InvalidSignature, LocalUsageError
from p2psocial.protocol.identity import SigningKey, node_id_from_public_key

MID = b"m" * 20
NID = b"n" * 20


def test_framing_matches_rpcudp() -> None:
    # rpcudp: b"\x00" + msg_id + umsgpack.packb([name, args]); response b"\x01" + id + packb(result).
    import umsgpack

    args = (NID, b"k" * 20)
    assert encode_request(MID, "find_node", list(args)) == b"\x00" + MID + umsgpack.packb(
        ["find_node", args]
    )
    assert encode_response(MID, [(NID, "127.0.0.1", 5)]) == b"\x01" + MID + umsgpack.packb(
        [(NID, "127.0.0.1", 5)]
    )
    req = decode_datagram_untrusted(
        b"\x00" + MID + umsgpack.packb(["store", (NID, b"k" * 20, 1.5)])
    )
    assert req == Request(MID, "store", [NID, b"k" * 20, 1.5])
    assert decode_datagram_untrusted(b"\x01" + MID + umsgpack.packb({"value": "v"})) == Response(
        MID, {"value": "v"}
    )


BAD = [
    (b"", "truncated"),
    (b"\x00" + MID, "truncated"),
    (b"\x02" + MID + b"\x90", "bad_type"),
    (b"\x00" + MID + b"\xc1", "malformed"),
    (b"\x00" + MID + msgpack.packb([1, []]), "bad_request"),
    (b"\x00" + MID + msgpack.packb(["ping"]), "bad_request"),
    (b"\x00" + MID + msgpack.packb(["ping", [NID], 3]), "bad_request"),
    (b"\x00" + MID + b"\x91" * 30 + b"\x90", "too_deep"),
    (b"\x00" + MID + msgpack.packb(b"x" * 1300), "too_large"),
    (b"\x01" + MID + b"\xdd\xff\xff\xff\xff", "malformed"),  # array32 of 4 billion
]


@pytest.mark.parametrize(("data", "reason"), BAD)
def test_bad_datagrams(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_datagram_untrusted(data)
    assert info.value.reason == reason


def test_encoder_enforces_the_size_limit() -> None:
    with pytest.raises(LocalUsageError):
        encode_request(MID, "store", [NID, NID, b"x" * MAX_DATAGRAM])
    nodes = [Contact(bytes([i]) * 20, "255.255.255.255", 65535) for i in range(20)]
    out = encode_response_fitting(MID, lambda t: {"nodes": t, "record": b"r" * 600}, nodes)
    assert len(out) <= MAX_DATAGRAM
    rec, got, proof = parse_get_record_reply(decode_datagram_untrusted(out).value)  # type: ignore[union-attr]
    assert rec == b"r" * 600 and 0 < len(got) < 20 and got == nodes[: len(got)]
    assert proof is None


ARGS_OK = [
    ("ping", [NID]),
    ("store", [NID, NID, "v"]),
    ("find_node", [NID, NID]),
    ("find_value", [NID, NID]),
    ("hello", [NID, b"x" * 32]),
    ("put_record", [NID, NID, "head", b"r"]),
    ("get_record", [NID, NID, "head"]),
    ("announce", [NID, NID, 4000, b"t" * 16]),
    ("get_peers", [NID, NID]),
    ("dial_back", [NID, 4000, b""]),
]


@pytest.mark.parametrize(("method", "args"), ARGS_OK)
def test_args_ok_and_every_wrong_arg_refused(method: str, args: list[object]) -> None:
    optional = method in PROVING_METHODS or method == "announce"
    expect = tuple(args) + ((None,) if optional else ())
    assert parse_request_args(method, args) == expect
    if method in PROVING_METHODS:
        nonce = b"N" * 32
        assert parse_request_args(method, [*args, nonce]) == (*args, nonce)
        with pytest.raises(DecodeError):
            parse_request_args(method, [*args, b"short"])
    with pytest.raises(DecodeError):
        parse_request_args(method, [*args, 1])
    with pytest.raises(DecodeError):
        parse_request_args(method, [*args, b"N" * 32, 1])
    for i in range(len(args)):
        if method == "store" and i == 2:
            continue  # plain values are opaque here; the store checks them
        bad = list(args)
        bad[i] = 12345678901 if isinstance(args[i], (bytes, str)) else "x"
        with pytest.raises(DecodeError):
            parse_request_args(method, bad)
    with pytest.raises(DecodeError) as info:
        parse_request_args("rpc_evil", args)
    assert info.value.reason == "unknown_method"


RELAY = [b"R" * 20, "203.0.113.7", 4001]


@pytest.mark.parametrize(
    "relay",
    [
        [b"R" * 19, "203.0.113.7", 4001],
        [b"R" * 20, "relay.example", 4001],
        [b"R" * 20, "203.0.113.7", 0],
        [b"R" * 20, "203.0.113.7"],
        (b"R" * 20).hex(),
    ],
)
def test_announce_takes_an_optional_relay(relay: object) -> None:
    args = [NID, NID, 4000, b"t" * 16]
    got = parse_request_args("announce", [*args, RELAY])
    assert got == (*args, (RELAY[0], RELAY[1], RELAY[2]))
    with pytest.raises(DecodeError) as info:
        parse_request_args("announce", [*args, relay])
    assert info.value.reason == "bad_args"


def test_get_peers_members_with_a_relay() -> None:
    plain = [NID, "198.51.100.2", 9]
    relayed = [b"M" * 20, "198.51.100.3", 10, *RELAY]
    bad = [b"B" * 20, "198.51.100.4", 11, b"R" * 20, "not-an-ip", 4001]
    reply = {"nodes": [], "peers": [plain, relayed, bad], "token": b"t"}
    peers, _, _, _ = parse_get_peers_reply(reply)
    assert peers == [(NID, "198.51.100.2", 9)]  # six-element items are not triples
    assert parse_peer_relays(reply) == {
        b"M" * 20: ("198.51.100.3", 10, (RELAY[0], RELAY[1], RELAY[2]))
    }


def test_reply_parsers() -> None:
    triple = [NID, "127.0.0.1", 9]
    assert parse_node_list([triple]) == [Contact(NID, "127.0.0.1", 9)]
    assert parse_find_value_reply({"value": 3}) == (True, 3, [])
    assert parse_find_value_reply([triple])[2] == [Contact(NID, "127.0.0.1", 9)]
    assert parse_get_peers_reply({"nodes": [], "peers": [triple], "token": b"t"}) == (
        [(NID, "127.0.0.1", 9)],
        b"t",
        [],
        None,
    )
    proof = [b"k" * 32, b"s" * 64]
    assert parse_get_record_reply({"nodes": [], "proof": proof}) == (
        None,
        [],
        (b"k" * 32, b"s" * 64),
    )
    with pytest.raises(DecodeError):
        parse_get_record_reply({"nodes": [], "proof": [b"k", b"s"]})
    assert parse_status_reply({"ok": True}) == (True, "")
    assert parse_status_reply({"rejected": "stale"}) == (False, "stale")
    for bad in (None, [triple] * 21, {"nodes": 1}, "x"):
        with pytest.raises(DecodeError) as info:
            parse_node_list(bad)
        assert info.value.reason == "bad_reply"


@pytest.mark.parametrize(
    "bad",
    [
        [NID, "127.0.0.1", 0],  # port out of range
        [NID, "127.0.0.1", 65536],
        [NID, "127.0.0.1"],  # not a triple
        "not a list",
        [b"x" * 19, "127.0.0.1", 9],  # stock nodes may send other id sizes
        [b"x" * 32, "127.0.0.1", 9],
        [NID, "example.org", 9],  # a host name: resolving it would query DNS for the peer
        [NID, "localhost", 9],
        [NID, "127.000.000.001", 9],  # not the canonical text form
        [NID, "0.0.0.0", 9],  # unspecified
        [NID, "::", 9],
        [NID, "224.0.0.1", 9],  # multicast
        [NID, "2001:DB8::1", 9],  # IPv6 text must be the canonical (lower-case) form
        [NID, "::ffff:127.0.0.1", 9],  # IPv4-mapped: name an IPv4 peer by its IPv4 address
        [NID, "::ffff:7f00:1", 9],
        [NID, "fe80::1%eth0", 9],  # a zone index means nothing elsewhere
        [NID, "", 9],
        [NID, 7, 9],
    ],
)
def test_node_list_skips_a_bad_contact_and_keeps_the_rest(bad: object) -> None:
    good = [NID, "127.0.0.1", 9]
    other = [b"o" * 20, "2001:db8::1", 4000]
    assert parse_node_list([bad, good, other]) == [
        Contact(NID, "127.0.0.1", 9),
        Contact(b"o" * 20, "2001:db8::1", 4000),
    ]
    for parser in (
        parse_get_record_reply,
        parse_get_peers_reply,
        parse_status_reply,
        parse_hello_reply,
    ):
        with pytest.raises(DecodeError):
            parser({"evil": 1})


def test_hello_proves_the_node_key() -> None:
    key = SigningKey.from_seed(b"k" * 32)
    nid = node_id_from_public_key(key.public_key)
    nonce = b"N" * 32
    sig = key.sign(hello_message(nonce, NID))
    pk, s = parse_hello_reply([key.public_key, sig])
    verify_hello(nid, nonce, NID, pk, s)
    with pytest.raises(InvalidSignature) as info:
        verify_hello(NID, nonce, NID, pk, s)
    assert info.value.reason == "wrong_id"
    with pytest.raises(InvalidSignature):
        verify_hello(nid, b"O" * 32, NID, pk, s)  # replay for another nonce
    with pytest.raises(InvalidSignature):
        verify_hello(nid, nonce, b"m" * 20, pk, s)  # signed for another requester


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=1400))
def test_decoder_raises_only_decode_error_on_random_bytes(data: bytes) -> None:
    for prefix in (b"", b"\x00" + MID, b"\x01" + MID):
        with contextlib.suppress(DecodeError):
            decode_datagram_untrusted(prefix + data)


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=40),
)
_values = st.recursive(
    _leaf,
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(
        ["ping", "store", "find_node", "hello", "put_record", "announce", "get_peers", "x"]
    ),
    st.lists(_values, max_size=5),
)
def test_structured_fuzz_decode_and_parse(method: str, args: list[object]) -> None:
    try:
        body = msgpack.packb([method, args], use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return
    data = b"\x00" + MID + body
    try:
        msg = decode_datagram_untrusted(data)
    except DecodeError:
        return
    assert isinstance(msg, Request)
    for cut in (len(data) // 2, len(data) - 1):
        with contextlib.suppress(DecodeError):
            decode_datagram_untrusted(data[:cut])
    with contextlib.suppress(DecodeError):
        parse_request_args(msg.method, msg.args)
    for parser in (
        parse_node_list,
        parse_find_value_reply,
        parse_get_record_reply,
        parse_get_peers_reply,
        parse_status_reply,
        parse_hello_reply,
        parse_observe_reply,
        parse_dial_back_reply,
    ):
        with contextlib.suppress(DecodeError):
            parser(args)
