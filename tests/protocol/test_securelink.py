"""The sans-IO encrypted link (spec/sync.md §10): a pair helper, hostile bytes, the vector.

Two :class:`SecureLink` ends are joined by handing each one's output to the
other. The vector spec/vectors/noise_link.json is replayed twice: by our link
(the responder's bytes must come out identical) and by the independent
``noiseprotocol`` package, which sees only the JSON.
"""

from __future__ import annotations

import json
import random
import struct
import warnings
from pathlib import Path
from typing import Any

import msgpack
import pytest

from p2psocial.protocol.encoding import encode
from p2psocial.protocol.errors import DecodeError, InvalidSignature, LocalUsageError, ProtocolError
from p2psocial.protocol.identity import SigningKey, node_id_from_public_key
from p2psocial.protocol.noise import Handshake, generate_private, public_key
from p2psocial.protocol.securelink import (
    LINK_PROLOGUE_TAG,
    MAGIC,
    MAX_PLAINTEXT,
    PREAMBLE,
    REFUSED_PREAMBLE,
    LinkError,
    SecureLink,
    decode_link_payload_untrusted,
    encode_link_payload,
    static_signed_bytes,
)
from p2psocial.protocol.wire import WireLimits, encode_frame

VECTOR = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "noise_link.json"


def make(initiator: bool, key: SigningKey | None = None, **kw: Any) -> SecureLink:
    return SecureLink(
        initiator=initiator,
        node_key=key or SigningKey.generate(),
        static_private=kw.pop("static_private", None) or generate_private(),
        **kw,
    )


def pair(**kw: Any) -> tuple[SecureLink, SecureLink, list[bytes]]:
    """An established (dialler, responder) and the dialler's handshake bytes, in order."""
    a, b = make(True, **kw), make(False, **kw)
    sent = []
    for _ in range(2):
        data = a.data_to_send()
        sent.append(data)
        assert b.receive_data(data) == []
        assert a.receive_data(b.data_to_send()) == []
    sent.append(a.data_to_send())
    assert b.receive_data(sent[-1]) == []
    assert a.established and b.established
    return a, b, [s for s in sent if s]


def test_pair_is_bound_to_the_node_keys() -> None:
    ka, kb = SigningKey.generate(), SigningKey.generate()
    a = make(True, ka, expected_node_id=node_id_from_public_key(kb.public_key))
    b = make(False, kb)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    b.receive_data(a.data_to_send())
    assert a.peer_key == kb.public_key and b.peer_key == ka.public_key
    assert a.peer_node_id == node_id_from_public_key(kb.public_key)
    assert a.handshake_hash == b.handshake_hash is not None


def test_frames_both_ways_and_large_frames_are_split() -> None:
    a, b, _ = pair()
    big = bytes(range(256)) * 1000  # 256,000 bytes: four Noise messages
    wire = a.send_frame(b"x") + a.send_frame(big)
    assert a.messages_out == 1 + -(-(len(big) + 4) // MAX_PLAINTEXT)
    assert b.receive_data(wire) == [b"x", big]
    assert a.receive_data(b.send_frame(b"back")) == [b"back"]


def test_frames_arrive_byte_by_byte() -> None:
    a, b, _ = pair()
    wire = a.send_frame(b"one") + a.send_frame(b"two")
    got = [f for i in range(len(wire)) for f in b.receive_data(wire[i : i + 1])]
    assert got == [b"one", b"two"]


def test_rekey_by_the_same_rule_on_both_sides() -> None:
    a, b, _ = pair(rekey_interval=3)
    for i in range(20):
        assert b.receive_data(a.send_frame(b"%d" % i)) == [b"%d" % i]
        assert a.receive_data(b.send_frame(b"r")) == [b"r"]
    # A receiver that does not rekey at the same point cannot read on.
    a, b, _ = pair(rekey_interval=3)
    b.rekey_interval = 1000
    for i in range(3):
        b.receive_data(a.send_frame(b"%d" % i))
    with pytest.raises(LinkError) as exc:
        b.receive_data(a.send_frame(b"3"))
    assert exc.value.reason == "noise_decrypt"


def test_a_dialler_that_meets_another_node_aborts() -> None:
    a = make(True, expected_node_id=bytes(20))
    b = make(False)
    b.receive_data(a.data_to_send())
    with pytest.raises(LinkError) as exc:
        a.receive_data(b.data_to_send())
    assert exc.value.reason == "wrong_node"
    assert not a.established and a.data_to_send() == b""  # message 3 is never sent


class _Signer:
    """A node key whose signatures are made by ``signer`` over ``signed`` (or the real input)."""

    def __init__(self, public: bytes, signer: SigningKey, signed: bytes | None = None) -> None:
        self.public_key = public
        self._signer = signer
        self._signed = signed

    def sign(self, data: bytes) -> bytes:
        return self._signer.sign(self._signed if self._signed is not None else data)


def _refused_by_responder(dialler_key: Any, **kw: Any) -> ProtocolError:
    a = SecureLink(initiator=True, node_key=dialler_key, static_private=generate_private(), **kw)
    b = make(False)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    with pytest.raises(ProtocolError) as exc:
        b.receive_data(a.data_to_send())
    assert not b.established
    return exc.value


def test_wrong_node_key_in_the_payload_is_refused() -> None:
    # Claims one node key, signs with another.
    real, other = SigningKey.generate(), SigningKey.generate()
    err = _refused_by_responder(_Signer(real.public_key, other))
    assert isinstance(err, InvalidSignature) and err.reason == "mismatch"


def test_wrong_static_key_is_refused() -> None:
    # A valid signature, but over another Noise static key than the one used.
    node = SigningKey.generate()
    elsewhere = static_signed_bytes(public_key(generate_private()))
    err = _refused_by_responder(_Signer(node.public_key, node, elsewhere))
    assert isinstance(err, InvalidSignature) and err.reason == "mismatch"


def test_payload_rules() -> None:
    node, static = SigningKey.generate(), public_key(generate_private())
    good = encode_link_payload(node, static)
    assert decode_link_payload_untrusted(good, static) == node.public_key
    sig = node.sign(static_signed_bytes(static))
    for bad in [
        b"",
        b"\xc1",
        encode({"key": node.public_key}),
        encode({"key": node.public_key, "sig": sig, "x": 1}),
        encode({"key": "text", "sig": sig}),
        encode([node.public_key, sig]),
    ]:
        with pytest.raises(LinkError) as exc:
            decode_link_payload_untrusted(bad, static)
        assert exc.value.reason == "link_bad_payload"
    with pytest.raises(InvalidSignature):
        decode_link_payload_untrusted(encode({"key": bytes(32), "sig": sig}), static)


def test_a_replayed_first_message_cannot_complete() -> None:
    _, _, sent = pair()
    fresh = make(False)
    fresh.receive_data(sent[0])  # the recorded preamble and message 1: answered
    assert fresh.data_to_send()
    with pytest.raises(LinkError) as exc:  # the recorded message 3 fits no new ephemeral
        fresh.receive_data(sent[1])
    assert exc.value.reason == "noise_decrypt"
    # Message 1 sent twice on one link is refused too.
    again = make(False)
    again.receive_data(sent[0])
    with pytest.raises(LinkError):
        again.receive_data(sent[0][len(PREAMBLE) :])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (struct.pack(">H", 31) + bytes(31), "noise_bad_message"),  # message 1 truncated
        (struct.pack(">H", 0), "link_bad_length"),
        (struct.pack(">H", 65535) + bytes(65535), "link_bad_length"),  # oversize
    ],
)
def test_bad_handshake_messages(data: bytes, reason: str) -> None:
    b = make(False)
    with pytest.raises(LinkError) as exc:
        b.receive_data(PREAMBLE + data)
    assert exc.value.reason == reason
    # The link stays failed.
    with pytest.raises(LinkError):
        b.receive_data(b"")


def test_a_payload_in_message_1_is_refused() -> None:
    hs = Handshake(
        initiator=True, static_private=generate_private(), prologue=LINK_PROLOGUE_TAG + PREAMBLE
    )
    msg = hs.write_message(b"hi")
    with pytest.raises(LinkError) as exc:
        make(False).receive_data(PREAMBLE + struct.pack(">H", len(msg)) + msg)
    assert exc.value.reason == "link_bad_payload"


@pytest.mark.parametrize(
    ("first", "reason", "answer"),
    [
        (encode_frame(b"\x81\xa1t\xa5hello"), "link_bad_preamble", b""),  # a plaintext peer
        (b"GET / HTTP/1.1\r\n", "link_bad_preamble", b""),
        (MAGIC + b"\x00\x02", "link_unsupported", REFUSED_PREAMBLE),  # a later transport
        (MAGIC + b"\x00\x00", "link_unsupported", REFUSED_PREAMBLE),
    ],
)
def test_no_plaintext_fallback(first: bytes, reason: str, answer: bytes) -> None:
    b = make(False)
    with pytest.raises(LinkError) as exc:
        b.receive_data(first)
    assert exc.value.reason == reason
    assert b.data_to_send() == answer


def test_a_refusing_responder_ends_the_dial() -> None:
    a = make(True)
    a.data_to_send()
    with pytest.raises(LinkError) as exc:
        a.receive_data(REFUSED_PREAMBLE)
    assert exc.value.reason == "link_unsupported"


def test_a_short_prefix_of_the_preamble_waits() -> None:
    b = make(False)
    assert b.receive_data(MAGIC[:2]) == []
    assert b.state == "preamble"


def _transport_error(mutate: Any) -> str:
    a, b, _ = pair()
    first, second = a.send_frame(b"first"), a.send_frame(b"second")
    with pytest.raises(ProtocolError) as exc:
        b.receive_data(mutate(first, second))
    return exc.value.reason


@pytest.mark.parametrize(
    ("name", "mutate", "reason"),
    [
        ("bit_flip", lambda f, s: f[:-3] + bytes([f[-3] ^ 1]) + f[-2:], "noise_decrypt"),
        ("replayed", lambda f, s: f + f, "noise_decrypt"),
        ("reordered", lambda f, s: s + f, "noise_decrypt"),
        ("garbage", lambda f, s: struct.pack(">H", 40) + bytes(40), "noise_decrypt"),
        ("short", lambda f, s: struct.pack(">H", 5) + bytes(5), "link_bad_length"),
        ("length_flip", lambda f, s: bytes([f[0], f[1] ^ 1]) + f[2:] + s, "noise_decrypt"),
    ],
)
def test_tampered_transport_messages_close_the_link(name: str, mutate: Any, reason: str) -> None:
    assert _transport_error(mutate) == reason


def test_an_oversize_frame_inside_the_channel_is_refused_on_its_length() -> None:
    a, b, _ = pair(limits=WireLimits(max_frame=1000))
    with pytest.raises(DecodeError) as exc:
        b.receive_data(a.seal(struct.pack(">I", 1001)))
    assert exc.value.reason == "frame_too_large"
    with pytest.raises(LocalUsageError):
        a.send_frame(bytes(1001))


def test_send_before_the_handshake_is_a_local_error() -> None:
    with pytest.raises(LocalUsageError):
        make(True).send_frame(b"x")


def test_mutated_handshake_bytes_never_establish() -> None:
    """Seeded mutations of every handshake flight: refused with an error of the
    tree (any other exception is a bug), never a session."""
    rng = random.Random(14)
    established = 0
    for i in range(3000):
        a, b = make(True), make(False)
        flights = [a, b, a]
        target = i % 3
        for step, sender in enumerate(flights):
            receiver = b if sender is a else a
            data = bytearray(sender.data_to_send())
            if step == target and data:
                # Distinct positions, so two flips never cancel out.
                for pos in rng.sample(range(len(data)), min(len(data), rng.randint(1, 3))):
                    data[pos] ^= 1 << rng.randrange(8)
            try:
                receiver.receive_data(bytes(data))
            except ProtocolError:
                break
        established += a.established and b.established
    assert established == 0


# ------------------------------------------------------------ the vector


def _vector() -> Any:
    return json.loads(VECTOR.read_text(encoding="utf-8"))


def _hex(v: str) -> bytes:
    return bytes.fromhex(v)


def test_vector_replayed_by_our_link() -> None:
    v = _vector()
    links = {}
    for role in ("dialler", "responder"):
        side = v[role]
        links[role] = SecureLink(
            initiator=role == "dialler",
            node_key=SigningKey.from_seed(_hex(side["node_seed"])),
            static_private=_hex(side["static_private"]),
            ephemeral_private=_hex(side["ephemeral_private"]),
        )
        assert public_key(_hex(side["static_private"])).hex() == side["static_public"]
    for step in v["transcript"]:
        sender = links[step["from"]]
        receiver = links["responder" if step["from"] == "dialler" else "dialler"]
        assert sender.data_to_send().hex() == step["bytes"]
        receiver.receive_data(_hex(step["bytes"]))
    assert links["dialler"].handshake_hash == _hex(v["handshake_hash"])
    for step in v["transport"]:
        sender = links[step["from"]]
        receiver = links["responder" if step["from"] == "dialler" else "dialler"]
        assert sender.send_frame(_hex(step["frame_body"])).hex() == step["bytes"]
        assert receiver.receive_data(_hex(step["bytes"])) == [_hex(step["frame_body"])]


@pytest.mark.filterwarnings(
    "ignore:One of ephemeral keypairs:UserWarning"
)  # fixed keys, as vectors need
def test_vector_checked_by_noiseprotocol() -> None:
    """The independent check: the noiseprotocol package, the JSON and the spec's rules."""
    conn_mod = pytest.importorskip("noise.connection")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    v = _vector()
    conns = {}
    for role in ("dialler", "responder"):
        side = v[role]
        c = conn_mod.NoiseConnection.from_name(v["protocol_name"].encode())
        c.set_as_initiator() if role == "dialler" else c.set_as_responder()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.set_keypair_from_private_bytes(conn_mod.Keypair.STATIC, _hex(side["static_private"]))
            c.set_keypair_from_private_bytes(
                conn_mod.Keypair.EPHEMERAL, _hex(side["ephemeral_private"])
            )
        c.set_prologue(_hex(v["prologue"]))
        c.start_handshake()
        conns[role] = c
        # The payload: canonical {key, sig}, sig by the node key over tag || static.
        payload = _hex(side["payload"])
        value = msgpack.unpackb(payload)
        assert value["key"].hex() == side["node_public_key"]
        signed = _hex(v["static_tag"]) + _hex(side["static_public"])
        Ed25519PublicKey.from_public_bytes(value["key"]).verify(value["sig"], signed)
    preamble = _hex(v["preamble"])
    assert _hex(v["prologue"]) == b"p2psocial/link/v1\x00" + preamble
    flights = [_hex(s["bytes"]) for s in v["transcript"]]
    payloads = [b"", _hex(v["responder"]["payload"]), _hex(v["dialler"]["payload"])]
    roles = ["dialler", "responder", "dialler"]
    for i, (flight, payload, role) in enumerate(zip(flights, payloads, roles, strict=True)):
        body = flight[len(preamble) :] if i < 2 else flight
        if i < 2:
            assert flight[: len(preamble)] == preamble
        (n,) = struct.unpack(">H", body[:2])
        assert len(body) == 2 + n
        assert bytes(conns[role].write_message(payload)) == body[2:]
        other = "responder" if role == "dialler" else "dialler"
        assert bytes(conns[other].read_message(body[2:])) == payload
    assert bytes(conns["dialler"].get_handshake_hash()) == _hex(v["handshake_hash"])
    for step in v["transport"]:
        wire = _hex(step["bytes"])
        (n,) = struct.unpack(">H", wire[:2])
        other = "responder" if step["from"] == "dialler" else "dialler"
        plain = bytes(conns[other].decrypt(wire[2 : 2 + n]))
        assert plain == encode_frame(_hex(step["frame_body"]))
