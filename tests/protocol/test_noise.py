"""The Noise core (p2psocial/protocol/noise.py): vectors, interop, fuzz, tables.

* every cacophony vector of the suite 25519_ChaChaPoly_SHA256, byte for byte;
* a full XX handshake and 1,000 transport messages each way against the
  independent ``noiseprotocol`` package, with ours in each role;
* 10,000 seeded mutations of the three XX messages: no session, no exception
  outside the error tree;
* a table of the error reasons, REKEY against its definition, and a seeded
  round-trip property.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.errors import LocalUsageError, ProtocolError
from p2psocial.protocol.noise import (
    MAX_MESSAGE,
    MAX_NONCE,
    PATTERNS,
    PROTOCOL_NAME,
    SUITE,
    TAG_SIZE,
    CipherState,
    Handshake,
    NoiseError,
    generate_private,
    public_key,
)
from tests.conftest import SHARED_VECTORS, load_shared_vector

CACOPHONY = "noise/cacophony.txt"

# Fixed keys for everything but the vectors.
I_STATIC = bytes(range(1, 33))
R_STATIC = bytes(range(33, 65))
I_EPH = bytes(range(65, 97))
R_EPH = bytes(range(97, 129))


def _pair(
    *, pattern: str = "XX", fixed_ephemerals: bool = True, prologue: bytes = b""
) -> tuple[Handshake, Handshake]:
    """An XX (or other pattern) initiator and responder with the fixed keys."""
    ini, resp = (
        Handshake(
            initiator=initiator,
            static_private=static,
            prologue=prologue,
            pattern=pattern,
            ephemeral_private=eph if fixed_ephemerals else None,
        )
        for initiator, static, eph in ((True, I_STATIC, I_EPH), (False, R_STATIC, R_EPH))
    )
    return ini, resp


def _xx_messages(payloads: tuple[bytes, bytes, bytes] = (b"", b"", b"")) -> list[bytes]:
    ini, resp = _pair()
    m1 = ini.write_message(payloads[0])
    resp.read_message(m1)
    m2 = resp.write_message(payloads[1])
    ini.read_message(m2)
    m3 = ini.write_message(payloads[2])
    resp.read_message(m3)
    return [m1, m2, m3]


def _complete(ini: Handshake, resp: Handshake) -> None:
    """Run the rest of the handshake, alternating, until both are complete."""
    while not (ini.complete and resp.complete):
        a, b = (ini, resp) if ini.our_turn else (resp, ini)
        b.read_message(a.write_message())


# ---------------------------------------------------------------- vectors

#: Patterns we run, each with and without psk modifiers. Every vector of the
#: suite has one of them, so the count below is the whole suite.
SUITE_VECTORS = 59


def _pattern_of(name: str) -> str | None:
    prefix, suffix = "Noise_", "_" + SUITE
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    return name[len(prefix) : -len(suffix)]


def _base(pattern: str) -> str:
    """The pattern without its modifiers: "XXpsk3" -> "XX"."""
    return pattern.split("psk")[0]


def _vector_cases() -> list[Any]:
    if not (SHARED_VECTORS / CACOPHONY).is_file():
        return [pytest.param(None, id=f"missing-{CACOPHONY}")]
    vectors = load_shared_vector(CACOPHONY)["vectors"]
    return [
        pytest.param(v, id=v["protocol_name"])
        for v in vectors
        if _pattern_of(v["protocol_name"]) is not None
    ]


def test_cacophony_suite_count() -> None:
    """A parse slip must not run zero vectors: the suite has 59, XX among them."""
    vectors = load_shared_vector(CACOPHONY)["vectors"]
    ours = [_pattern_of(v["protocol_name"]) for v in vectors]
    ours_set = {p for p in ours if p is not None}
    assert len([p for p in ours if p is not None]) == SUITE_VECTORS
    assert len(_vector_cases()) == SUITE_VECTORS
    base = {_base(p) for p in ours_set}
    assert base == set(PATTERNS)  # one-way, fundamental and deferred, all of them
    assert "XX" in ours_set
    assert len(vectors) == 944  # the file as pinned in ../shared/vectors/README.md


def _hex(v: dict[str, Any], key: str) -> bytes | None:
    return bytes.fromhex(v[key]) if key in v else None


def _side(v: dict[str, Any], pattern: str, prefix: str) -> Handshake:
    return Handshake(
        initiator=prefix == "init",
        static_private=_hex(v, f"{prefix}_static"),
        prologue=_hex(v, f"{prefix}_prologue") or b"",
        pattern=pattern,
        ephemeral_private=_hex(v, f"{prefix}_ephemeral"),
        remote_static=_hex(v, f"{prefix}_remote_static"),
        protocol_name=v["protocol_name"].encode(),
        psks=[bytes.fromhex(p) for p in v.get(f"{prefix}_psks", [])],
    )


@pytest.mark.parametrize("vector", _vector_cases())
def test_cacophony_vector(vector: dict[str, Any] | None) -> None:
    if vector is None:
        load_shared_vector(CACOPHONY)  # skips, or fails in CI, naming the file
        raise AssertionError("unreachable: the vector file appeared during the run")
    pattern = _pattern_of(vector["protocol_name"])
    assert pattern is not None
    ini, resp = _side(vector, pattern, "init"), _side(vector, pattern, "resp")
    # One-way patterns send everything from the initiator; the others alternate
    # (cacophony's transport messages continue the alternation).
    messages_in_handshake = len(PATTERNS[_base(pattern)][2])
    one_way = messages_in_handshake == 1
    transports: tuple[CipherState, CipherState, CipherState, CipherState] | None = None
    handshake_messages = 0
    for i, msg in enumerate(vector["messages"]):
        payload, expected = bytes.fromhex(msg["payload"]), bytes.fromhex(msg["ciphertext"])
        from_initiator = one_way or i % 2 == 0
        if transports is None:
            sender, receiver = (ini, resp) if from_initiator else (resp, ini)
            assert sender.our_turn and not receiver.our_turn
            got = sender.write_message(payload)
            assert got == expected, f"handshake message {i}"
            assert receiver.read_message(got) == payload
            handshake_messages += 1
            if ini.complete:
                assert resp.complete
                assert ini.handshake_hash == resp.handshake_hash
                assert ini.handshake_hash == bytes.fromhex(vector["handshake_hash"])
                for hs, peer in ((ini, "resp_static"), (resp, "init_static")):
                    key = _hex(vector, peer)
                    assert hs.remote_static == (None if key is None else public_key(key))
                transports = (*ini.split(), *resp.split())
        else:
            i_send, i_recv, r_send, r_recv = transports
            send, recv = (i_send, r_recv) if from_initiator else (r_send, i_recv)
            got = send.encrypt_with_ad(b"", payload)
            assert got == expected, f"transport message {i}"
            assert recv.decrypt_with_ad(b"", got) == payload
    assert transports is not None
    assert handshake_messages == messages_in_handshake


# ---------------------------------------------------------------- interop


def _theirs(initiator: bool, static: bytes) -> Any:
    from noise.connection import Keypair, NoiseConnection

    conn = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, static)
    conn.set_prologue(b"p2psocial interop")
    conn.start_handshake()
    return conn


@pytest.mark.parametrize("ours_initiates", [True, False], ids=["ours-initiator", "ours-responder"])
def test_interop_with_noiseprotocol(ours_initiates: bool) -> None:
    ours = Handshake(
        initiator=ours_initiates, static_private=I_STATIC, prologue=b"p2psocial interop"
    )
    theirs = _theirs(not ours_initiates, R_STATIC)
    for i in range(3):
        payload = b"handshake payload %d" % i
        if ours.our_turn:
            assert bytes(theirs.read_message(ours.write_message(payload))) == payload
        else:
            assert ours.read_message(bytes(theirs.write_message(payload))) == payload
    assert ours.complete and theirs.handshake_finished
    assert ours.handshake_hash == theirs.get_handshake_hash()
    assert ours.remote_static == public_key(R_STATIC)
    send, recv = ours.split()
    rng = random.Random(14)
    for n in range(1000):
        a = rng.randbytes(rng.choice((0, 1, 17, 100, 1500, MAX_MESSAGE - TAG_SIZE)))
        assert bytes(theirs.decrypt(send.encrypt_with_ad(b"", a))) == a, n
        b = rng.randbytes(rng.choice((0, 1, 31, 999)))
        assert recv.decrypt_with_ad(b"", bytes(theirs.encrypt(b))) == b, n
    assert send.nonce == recv.nonce == 1000


# ---------------------------------------------------------------- mutation fuzz

MUTATIONS = 10_000


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    while True:
        op = rng.choice(("flip", "insert", "delete", "truncate"))
        out = bytearray(buf)
        if op == "flip" and out:
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == "insert":
            out.insert(rng.randrange(len(out) + 1), rng.randrange(256))
        elif op == "delete" and out:
            del out[rng.randrange(len(out))]
        elif op == "truncate" and out:
            out = out[: rng.randrange(len(out))]
        if bytes(out) != data:
            return bytes(out)


def test_mutated_handshake_messages_never_establish_a_session() -> None:
    rng = random.Random(1414)
    established = 0
    rejected: dict[str, int] = {}
    for trial in range(MUTATIONS):
        target = trial % 3  # message 1 and 3 hit our responder, 2 our initiator
        # Half the trials carry payloads, so mutations also hit payload bytes.
        payloads = (b"one", b"payload two", b"x" * 40) if trial % 6 >= 3 else (b"", b"", b"")
        ini, resp = _pair()
        try:
            for index in range(3):
                sender, receiver = (ini, resp) if index % 2 == 0 else (resp, ini)
                message = sender.write_message(payloads[index])
                if index == target:
                    message = _mutate(rng, message)
                receiver.read_message(message)
            established += 1
        except ProtocolError as exc:
            rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
        # The side that read a mutated message (or anything after it) never
        # completes; the XX initiator is done once it writes message 3, which
        # is why a mutated message 3 leaves only the responder to check.
        assert not resp.complete, trial
        if target < 2:
            assert not ini.complete, trial
        for hs in (ini, resp) if target < 2 else (resp,):
            with pytest.raises(NoiseError):
                hs.split()
    assert established == 0
    assert sum(rejected.values()) == MUTATIONS
    assert set(rejected) <= {"noise_decrypt", "noise_bad_message"}, rejected


def test_a_dead_handshake_stays_dead() -> None:
    ini, resp = _pair()
    m1 = ini.write_message()
    resp.read_message(m1)
    m2 = bytearray(resp.write_message())
    m2[-1] ^= 1
    with pytest.raises(NoiseError) as exc:
        ini.read_message(bytes(m2))
    assert exc.value.reason == "noise_decrypt"
    for call in (ini.write_message, lambda: ini.read_message(bytes(m2)), ini.split):
        with pytest.raises(NoiseError) as exc:
            call()
        assert exc.value.reason == "noise_state"
    assert not ini.complete
    assert ini.remote_static is None  # it had read the responder's key before failing


# ---------------------------------------------------------------- error table


def _after_split() -> tuple[CipherState, CipherState, CipherState, CipherState]:
    ini, resp = _pair()
    _complete(ini, resp)
    return (*ini.split(), *resp.split())


def _out_of_turn_write() -> None:
    _pair()[1].write_message()


def _out_of_turn_read() -> None:
    _pair()[0].read_message(bytes(32))


def _write_after_complete() -> None:
    ini, resp = _pair()
    _complete(ini, resp)
    ini.write_message()


def _over_long_handshake_read() -> None:
    _pair()[1].read_message(bytes(MAX_MESSAGE + 1))


def _over_long_handshake_write() -> None:
    _pair()[0].write_message(bytes(MAX_MESSAGE - 31))


def _short_first_message() -> None:
    _pair()[1].read_message(bytes(31))


def _short_second_message() -> None:
    ini, resp = _pair()
    resp.read_message(ini.write_message())
    ini.read_message(resp.write_message()[: 32 + 48 + TAG_SIZE - 1])


def _split_before_complete() -> None:
    ini, resp = _pair()
    resp.read_message(ini.write_message())
    resp.split()


def _split_twice() -> None:
    ini, resp = _pair()
    _complete(ini, resp)
    ini.split()
    ini.split()


def _wrong_tag() -> None:
    i_send, _, _, r_recv = _after_split()
    ct = bytearray(i_send.encrypt_with_ad(b"", b"hello"))
    ct[-1] ^= 0x80
    r_recv.decrypt_with_ad(b"", bytes(ct))


def _wrong_ad() -> None:
    i_send, _, _, r_recv = _after_split()
    r_recv.decrypt_with_ad(b"other", i_send.encrypt_with_ad(b"ad", b"hello"))


def _replayed() -> None:
    i_send, _, _, r_recv = _after_split()
    ct = i_send.encrypt_with_ad(b"", b"once")
    r_recv.decrypt_with_ad(b"", ct)
    r_recv.decrypt_with_ad(b"", ct)


def _reordered() -> None:
    i_send, _, _, r_recv = _after_split()
    i_send.encrypt_with_ad(b"", b"first")
    r_recv.decrypt_with_ad(b"", i_send.encrypt_with_ad(b"", b"second"))


def _transport_too_long_encrypt() -> None:
    _after_split()[0].encrypt_with_ad(b"", bytes(MAX_MESSAGE - TAG_SIZE + 1))


def _transport_too_long_decrypt() -> None:
    _after_split()[3].decrypt_with_ad(b"", bytes(MAX_MESSAGE + 1))


def _transport_short() -> None:
    _after_split()[3].decrypt_with_ad(b"", bytes(TAG_SIZE - 1))


def _nonce_exhausted_encrypt() -> None:
    send = _after_split()[0]
    send._set_nonce(MAX_NONCE - 1)
    send.encrypt_with_ad(b"", b"the last one")  # nonce 2^64-2 is the last usable
    send.encrypt_with_ad(b"", b"one too many")


def _nonce_exhausted_decrypt() -> None:
    recv = _after_split()[3]
    recv._set_nonce(MAX_NONCE)
    recv.decrypt_with_ad(b"", bytes(TAG_SIZE))


def _low_order_ephemeral() -> None:
    resp = _pair()[1]
    resp.read_message(bytes(32))  # an all-zero point: accepted as bytes, ...
    resp.write_message()  # ... refused at the first DH that uses it


ERROR_TABLE = [
    ("out of turn write", _out_of_turn_write, "noise_state"),
    ("out of turn read", _out_of_turn_read, "noise_state"),
    ("write after complete", _write_after_complete, "noise_state"),
    ("over-long handshake read", _over_long_handshake_read, "noise_too_long"),
    ("over-long handshake write", _over_long_handshake_write, "noise_too_long"),
    ("short first message", _short_first_message, "noise_bad_message"),
    ("short second message", _short_second_message, "noise_bad_message"),
    ("split before complete", _split_before_complete, "noise_state"),
    ("split twice", _split_twice, "noise_state"),
    ("wrong tag", _wrong_tag, "noise_decrypt"),
    ("wrong associated data", _wrong_ad, "noise_decrypt"),
    ("replayed transport message", _replayed, "noise_decrypt"),
    ("reordered transport message", _reordered, "noise_decrypt"),
    ("transport encrypt too long", _transport_too_long_encrypt, "noise_too_long"),
    ("transport decrypt too long", _transport_too_long_decrypt, "noise_too_long"),
    ("transport shorter than a tag", _transport_short, "noise_bad_message"),
    ("nonce exhausted (encrypt)", _nonce_exhausted_encrypt, "noise_nonce_exhausted"),
    ("nonce exhausted (decrypt)", _nonce_exhausted_decrypt, "noise_nonce_exhausted"),
    ("low-order ephemeral", _low_order_ephemeral, "noise_bad_key"),
]


@pytest.mark.parametrize("name,call,reason", ERROR_TABLE, ids=[r[0] for r in ERROR_TABLE])
def test_error_reasons(name: str, call: Any, reason: str) -> None:
    with pytest.raises(NoiseError) as exc:
        call()
    assert exc.value.reason == reason, name
    assert isinstance(exc.value, ProtocolError)


def test_failed_decrypt_does_not_advance_the_nonce() -> None:
    i_send, _, _, r_recv = _after_split()
    good = i_send.encrypt_with_ad(b"", b"payload")
    with pytest.raises(NoiseError):
        r_recv.decrypt_with_ad(b"", good[:-1] + bytes([good[-1] ^ 1]))
    assert r_recv.nonce == 0
    assert r_recv.decrypt_with_ad(b"", good) == b"payload"
    assert r_recv.nonce == 1


def test_the_largest_messages_fit() -> None:
    ini, resp = _pair()
    # Message 1 of XX is e (32 bytes) and a plaintext payload.
    m1 = ini.write_message(bytes(MAX_MESSAGE - 32))
    assert len(m1) == MAX_MESSAGE
    assert resp.read_message(m1) == bytes(MAX_MESSAGE - 32)
    i_send, *_ = _after_split()
    assert len(i_send.encrypt_with_ad(b"", bytes(MAX_MESSAGE - TAG_SIZE))) == MAX_MESSAGE


def test_refused_write_leaves_the_handshake_usable() -> None:
    ini, resp = _pair()
    with pytest.raises(NoiseError):
        ini.write_message(bytes(MAX_MESSAGE))
    _complete(ini, resp)
    assert ini.handshake_hash == resp.handshake_hash


USAGE_TABLE: list[tuple[str, dict[str, Any]]] = [
    ("unknown pattern", {"pattern": "ZZ"}),
    ("unsupported modifier", {"pattern": "XXfallback"}),
    ("psk past the last message", {"pattern": "NNpsk3", "psks": [bytes(32)]}),
    ("missing psk", {"pattern": "NNpsk0"}),
    ("short private key", {"static_private": bytes(31)}),
    ("remote static for XX", {"remote_static": bytes(32)}),
    ("missing remote static for IK", {"pattern": "IK"}),
    ("missing own static for XX", {"static_private": None}),
    ("protocol name mismatch", {"protocol_name": b"Noise_NN_25519_ChaChaPoly_SHA256"}),
]


@pytest.mark.parametrize("name,kwargs", USAGE_TABLE, ids=[r[0] for r in USAGE_TABLE])
def test_local_misuse(name: str, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"initiator": True, "static_private": I_STATIC, **kwargs}
    with pytest.raises(LocalUsageError):
        Handshake(**args)


def test_nn_needs_no_static_key() -> None:
    ini = Handshake(initiator=True, static_private=None, pattern="NN")
    resp = Handshake(initiator=False, static_private=None, pattern="NN")
    _complete(ini, resp)
    assert ini.remote_static is None and resp.remote_static is None


def test_ik_with_a_pre_known_key() -> None:
    ini = Handshake(
        initiator=True, static_private=I_STATIC, pattern="IK", remote_static=public_key(R_STATIC)
    )
    resp = Handshake(initiator=False, static_private=R_STATIC, pattern="IK")
    assert ini.remote_static == public_key(R_STATIC)
    _complete(ini, resp)
    assert resp.remote_static == public_key(I_STATIC)
    with pytest.raises(NoiseError) as exc:
        wrong = Handshake(
            initiator=True,
            static_private=I_STATIC,
            pattern="IK",
            remote_static=public_key(generate_private()),
        )
        Handshake(initiator=False, static_private=R_STATIC, pattern="IK").read_message(
            wrong.write_message()
        )
    assert exc.value.reason == "noise_decrypt"


def test_prologues_must_match() -> None:
    ini = Handshake(initiator=True, static_private=I_STATIC, prologue=b"one")
    resp = Handshake(initiator=False, static_private=R_STATIC, prologue=b"two")
    resp.read_message(ini.write_message())
    with pytest.raises(NoiseError) as exc:
        ini.read_message(resp.write_message())
    assert exc.value.reason == "noise_decrypt"


# ---------------------------------------------------------------- rekey


def test_rekey_follows_the_spec_definition() -> None:
    """REKEY(k) = the first 32 bytes of ENCRYPT(k, 2^64-1, empty ad, 32 zeros) (§4.2)."""
    key = bytes(range(32))
    cs = CipherState(key, nonce=5)
    nonce = b"\x00" * 4 + MAX_NONCE.to_bytes(8, "little")
    expected = ChaCha20Poly1305(key).encrypt(nonce, bytes(32), b"")[:32]
    cs.rekey()
    assert cs.nonce == 5  # REKEY leaves n alone
    ct = cs.encrypt_with_ad(b"ad", b"data")
    ref = ChaCha20Poly1305(expected).encrypt(
        b"\x00" * 4 + (5).to_bytes(8, "little"), b"data", b"ad"
    )
    assert ct == ref


def test_rekey_both_ends_and_interop() -> None:
    ini = Handshake(initiator=True, static_private=I_STATIC, prologue=b"p2psocial interop")
    theirs = _theirs(False, R_STATIC)
    theirs.read_message(ini.write_message())
    ini.read_message(bytes(theirs.write_message()))
    theirs.read_message(ini.write_message())
    send, recv = ini.split()
    send.rekey()
    theirs.rekey_inbound_cipher()
    assert bytes(theirs.decrypt(send.encrypt_with_ad(b"", b"after rekey"))) == b"after rekey"
    theirs.rekey_outbound_cipher()
    recv.rekey()
    assert recv.decrypt_with_ad(b"", bytes(theirs.encrypt(b"back"))) == b"back"
    with pytest.raises(NoiseError) as exc:
        CipherState().rekey()
    assert exc.value.reason == "noise_state"


# ---------------------------------------------------------------- property


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.binary(max_size=2000), min_size=3, max_size=3),
    st.lists(st.tuples(st.booleans(), st.binary(max_size=3000)), max_size=20),
    st.binary(max_size=64),
)
def test_round_trip_between_two_of_ours(
    handshake_payloads: list[bytes], transport: list[tuple[bool, bytes]], prologue: bytes
) -> None:
    ini, resp = _pair(fixed_ephemerals=False, prologue=prologue)
    for index, payload in enumerate(handshake_payloads):
        sender, receiver = (ini, resp) if index % 2 == 0 else (resp, ini)
        assert receiver.read_message(sender.write_message(payload)) == payload
    assert ini.complete and resp.complete
    assert ini.handshake_hash == resp.handshake_hash
    assert ini.remote_static == public_key(R_STATIC)
    assert resp.remote_static == public_key(I_STATIC)
    i_send, i_recv = ini.split()
    r_send, r_recv = resp.split()
    for from_initiator, data in transport:
        send, recv = (i_send, r_recv) if from_initiator else (r_send, i_recv)
        ad = data[:3]
        assert recv.decrypt_with_ad(ad, send.encrypt_with_ad(ad, data)) == data


def test_generate_private_gives_distinct_usable_keys() -> None:
    a, b = generate_private(), generate_private()
    assert a != b and len(a) == 32
    assert len(public_key(a)) == 32
    with pytest.raises(LocalUsageError):
        public_key(b"short")


def test_xx_messages_have_the_expected_sizes() -> None:
    m1, m2, m3 = _xx_messages()
    assert (len(m1), len(m2), len(m3)) == (32, 32 + 48 + TAG_SIZE, 48 + TAG_SIZE)
