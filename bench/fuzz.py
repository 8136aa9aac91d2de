"""Fuzz bench: every decoder of untrusted bytes, fed mutated valid inputs.

A function that reads bytes (or text) from outside may raise only its
documented typed error (STYLE §6): ``DecodeError`` for the ``*_untrusted``
decoders, the DHT parsers, identity texts and key files; ``RecordRejected``
for DHT records and the record store; ``LocalUsageError`` for cursors and
entry ids; and ``check_params`` and ``emoji_problem`` (reactions) must
return a str or None. This bench checks that at scale and counts what each
decoder accepts and why it rejects the rest.

Inputs start from valid encodings made by the library itself (fixed-seed
keys, ``create_entry``, the ``encode_*`` functions) and from the published
vectors in spec/vectors/*.json, and are then mutated: bit flips; byte insert,
delete, duplicate and truncation; splicing two valid inputs; msgpack type
bytes and length or number fields replaced with boundary values, or
re-encoded in longer (non-canonical) forms; values replaced inside the decoded
structure (type confusion, missing and unknown fields, nested mutation of
embedded entries); and a few purely random inputs. Frame splitters get each
input whole and one byte at a time, as h11's afl fuzzer does, and the two
must agree. Where a decoder accepts, the cheap round-trip property is checked
too (a decoded canonical value re-encodes to the exact input); a broken
property counts as uncaught, like an unexpected exception.

Each decoder has its own RNG, seeded from ``--seed`` and its name, so a run is
reproducible and its counts do not depend on ``--jobs`` or ``--decoders``.

Output: one JSON line per decoder (decoder, inputs, accepted, rejected
{reason: count}, uncaught, seconds, decode_seconds), then a summary line,
last, with the totals, the first uncaught exceptions (decoder, input hex,
exception) and a reference measured in the same run: ``msgpack.unpackb`` and
``decode_untrusted`` over the first inputs of the ``msgpack`` decoder. Reasons
prefixed ``datagram.``, ``frame.``, ``args.`` or ``message.`` come from the
stage that feeds the decoder under test (as the node runs it). The exit status
is 1 if anything was uncaught. ``--replay DECODER HEX`` re-runs one input and
prints its traceback.

Run: ``python bench/fuzz.py [--inputs N] [--seed S] [--decoders a,b] [--jobs J]``
(``--list`` names the decoders; a name like ``dht_args`` selects them all).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import json
import os
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import msgpack
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x25519

# Runnable from a checkout without installing.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2psocial.api.methods import METHODS as API_METHODS
from p2psocial.api.methods import ListOf, check_params
from p2psocial.api.protocol import FrameBuffer, decode_frame_payload_untrusted
from p2psocial.node.views import parse_entry_id
from p2psocial.protocol import igd, portmap, relay
from p2psocial.protocol.dht.records import (
    RecordRejected,
    RecordStore,
    SwarmStore,
    TokenIssuer,
    ValueStore,
    encode_profile_record,
    head_key,
    profile_key,
    swarm_key,
    validate_record,
)
from p2psocial.protocol.dht.wire import (
    METHODS as DHT_METHODS,
)
from p2psocial.protocol.dht.wire import (
    Request,
    Response,
    decode_datagram_untrusted,
    encode_request,
    encode_response,
    hello_message,
    parse_dial_back_reply,
    parse_find_value_reply,
    parse_get_peers_reply,
    parse_get_record_reply,
    parse_hello_reply,
    parse_node_list,
    parse_observe_reply,
    parse_peer_relays,
    parse_ping_reply,
    parse_relay,
    parse_request_args,
    parse_status_reply,
    verify_hello,
)
from p2psocial.protocol.emoji import MAX_EMOJI_BYTES, MAX_EMOJI_CODE_POINTS, emoji_problem
from p2psocial.protocol.encoding import Limits, decode_untrusted, encode
from p2psocial.protocol.entries import (
    MAX_PAYLOAD_SIZE,
    Entry,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
    encode_payload,
)
from p2psocial.protocol.errors import (
    ChainError,
    DecodeError,
    InvalidSignature,
    LocalUsageError,
    P2PSocialError,
    ProtocolError,
    SchemaError,
)
from p2psocial.protocol.feeds import decode_fork_proof_untrusted, detect_fork
from p2psocial.protocol.identity import (
    SigningKey,
    identity_from_text,
    identity_to_text,
    node_id_from_public_key,
)
from p2psocial.protocol.invite import decode_invite_untrusted, make_invite
from p2psocial.protocol.kinds import KINDS
from p2psocial.protocol.lan import LanAnnounce, decode_lan_announce_untrusted, encode_lan_announce
from p2psocial.protocol.noise import Handshake, NoiseError, public_key
from p2psocial.protocol.securelink import (
    LinkError,
    decode_link_payload_untrusted,
    encode_link_payload,
)
from p2psocial.protocol.sync import SyncSession
from p2psocial.protocol.wire import (
    Auth,
    Bye,
    Caps,
    Clock,
    Entries,
    ForkProofMessage,
    FrameDecoder,
    Have,
    Hello,
    Message,
    Mode,
    PunchAnswer,
    PunchGo,
    PunchOffer,
    Push,
    Want,
    decode_message_untrusted,
    encode_message,
    hello_signed_bytes,
)
from p2psocial.storage.model import decode_cursor, encode_cursor

REPO = Path(__file__).resolve().parent.parent
DEFAULT_INPUTS = 1_000_000
DEFAULT_SEED = 12
#: Inputs of the msgpack decoder replayed through the reference decoders.
REFERENCE_CAP = 200_000
MAX_EXAMPLES = 10

T0 = 1_700_000_000_000
#: The wall clock (ms) the DHT record checks run at: a day after the entries.
NOW_MS = T0 + 86_400_000
VECTORS = REPO / "spec" / "vectors"


# ---------------------------------------------------------------- seeds


def _key(label: str) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(b"p2psocial fuzz " + label.encode()).digest())


A, B, C = _key("a"), _key("b"), _key("c")
NODE = _key("node")  # the DHT responder and peer-link node of the seeds
REQUESTER = _key("requester")  # the node whose replies are being parsed
NODE_ID = node_id_from_public_key(NODE.public_key)
REQUESTER_ID = node_id_from_public_key(REQUESTER.public_key)
NONCE = bytes(range(32))
TARGET_ID = hashlib.sha256(b"target").digest()
PEER_HOST, PEER_PORT = "192.0.2.7", 4001
TOKEN_SECRETS = (b"\x01" * 32, b"\x02" * 32)
MSG_ID = hashlib.sha256(b"msg id").digest()[:20]
HEAD_KEY_A = head_key(A.public_key)
PROFILE_KEY_A = profile_key(A.public_key)
MENTION_KEYS = [_key(f"m{i}").public_key for i in range(16)]


def _payloads(other: bytes) -> list[tuple[str, dict[str, Any]]]:
    """One payload per kind (and two unknown kinds), in feed order."""
    return [
        ("post", {"text": "hello"}),
        (
            "post",
            {
                "text": "héllo wörld ✓ " * 8,
                "reply": {"root": TARGET_ID, "parent": TARGET_ID},
                "mentions": [other],
                "tags": ["a", "b"],
                "lang": "en",
            },
        ),
        ("profile", {"name": "Ann", "bio": "hi"}),
        ("follow", {"target": other}),
        ("unfollow", {"target": other}),
        ("react", {"target": TARGET_ID, "emoji": "🎉"}),
        ("repost", {"target": TARGET_ID}),
        ("delete", {"target": TARGET_ID}),
        ("block", {"target": other, "reason": "spam"}),
        ("unblock", {"target": other}),
        ("poll", {"q": "?", "opts": ["a", "b"], "n": 3}),
        ("profile", {}),
    ]


#: Payloads near each kind's limits, for the payload decoders only.
EXTRA_PAYLOADS: list[tuple[str, dict[str, Any]]] = [
    ("post", {"text": "x" * 2000, "lang": "x" * 16}),
    ("post", {"text": "ü" * 1999, "mentions": MENTION_KEYS, "tags": [f"t{i}" for i in range(16)]}),
    ("post", {"text": "t", "tags": ["x" * 64]}),
    ("profile", {"name": "n" * 64, "bio": "b" * 500}),
    ("profile", {"name": ""}),
    # The longest reaction allowed: 16 code points of ZWJ sequence (spec §5.4).
    ("react", {"target": TARGET_ID, "emoji": "😀" + "\u200d😀" * 7 + "\ufe0f"}),
    ("block", {"target": MENTION_KEYS[0], "reason": "r" * 280}),
    ("block", {"target": MENTION_KEYS[1]}),
    ("custom.kind", {"a": {"b": {"c": [b"x" * 40]}}}),
    ("custom.kind", {}),
    ("custom.kind", {"n": -(2**63), "m": 2**64 - 1, "b": True, "s": "", "l": []}),
]


def _chain(key: SigningKey, items: list[tuple[str, dict[str, Any]]]) -> list[tuple[Entry, bytes]]:
    out: list[tuple[Entry, bytes]] = []
    prev = None
    for seq, (kind, payload) in enumerate(items, start=1):
        entry, data = create_entry(
            key, seq=seq, prev=prev, timestamp=T0 + seq * 1000, kind=kind, payload=payload
        )
        out.append((entry, data))
        prev = entry.id
    return out


def _load_vectors() -> dict[str, list[Any]]:
    """Entries, payloads, fork proofs and identity texts from spec/vectors.

    Tolerant: a vector file that is absent or being rewritten adds nothing.
    """
    out: dict[str, list[Any]] = {"entries": [], "payloads": [], "proofs": [], "texts": []}
    for name in ("entries.json", "feed.json", "fork.json", "invalid.json", "keys.json"):
        try:
            data = json.loads((VECTORS / name).read_text())
        except (OSError, ValueError):
            continue
        try:
            records = list(data.get("entries", [])) + list(data.get("cases", []))
            records += [data[k] for k in ("first", "second") if isinstance(data.get(k), dict)]
            for rec in records:
                if isinstance(rec, dict) and isinstance(rec.get("entry_hex"), str):
                    out["entries"].append(bytes.fromhex(rec["entry_hex"]))
                if isinstance(rec, dict) and isinstance(rec.get("payload_hex"), str):
                    out["payloads"].append((rec.get("kind"), bytes.fromhex(rec["payload_hex"])))
            if isinstance(data.get("proof_hex"), str):
                out["proofs"].append(bytes.fromhex(data["proof_hex"]))
            for k in list(data.get("keys", [])) + list(data.get("invalid_keys", [])):
                if isinstance(k, dict) and isinstance(k.get("text"), str):
                    out["texts"].append(k["text"])
        except (AttributeError, TypeError, ValueError):
            continue
    return out


def _dedup(items: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Corpus:
    """Valid (and a few deliberately invalid) inputs, per input format."""

    chain_a: list[tuple[Entry, bytes]]
    chain_b: list[tuple[Entry, bytes]]
    entries: list[bytes]
    payloads: dict[str, list[bytes]]
    values: list[bytes]
    fork_proofs: list[bytes]
    messages: list[bytes]
    frame_streams: list[list[bytes]]
    sync_streams: list[list[bytes]]
    requests: dict[str, list[bytes]]
    replies: dict[str, list[bytes]]
    head_records: list[bytes]
    profile_records: list[bytes]
    put_records: list[bytes]
    api_bodies: list[bytes]
    api_requests: dict[str, list[bytes]]
    api_streams: list[list[bytes]]
    identities: list[str]
    key_files: list[tuple[bytes, bytes]]
    cursors: list[str]
    entry_ids: list[str]
    emojis: list[str]


def _contacts(n: int) -> list[list[Any]]:
    hosts = ["127.0.0.1", "::1", "192.0.2.10", "2001:db8::1", "10.0.0.1"]
    return [
        [hashlib.sha256(b"contact %d" % i).digest()[:20], hosts[i % len(hosts)], 4000 + i]
        for i in range(n)
    ]


def _api_sample(name: str, typ: Any) -> Any:
    """A valid value for one API parameter, by its declared type and name."""
    if isinstance(typ, tuple):
        typ = typ[0]
    if isinstance(typ, ListOf):
        return ["post", "react"] if name == "kinds" else [identity_to_text(B.public_key)]
    if typ is bool:
        return True
    if typ is int:
        return 4001 if name == "port" else 20
    if name in ("identity", "author"):
        return identity_to_text(B.public_key)
    if name in ("target", "id", "reply_to"):
        return TARGET_ID.hex()
    if name == "before":
        return encode_cursor(T0, TARGET_ID)
    if name == "host":
        return "192.0.2.1"
    return "hello"


def _key_files() -> list[tuple[bytes, bytes]]:
    """(PEM label, DER body) of key files: ours (Ed25519, PKCS#8) and other key types."""
    out = []
    for key in (A, NODE):
        lines = key.to_pem().split(b"\n")
        out.append((b"PRIVATE KEY", base64.b64decode(b"".join(lines[1:-2]))))
    der, pkcs8 = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    p256 = ec.derive_private_key(12345, ec.SECP256R1())
    others = [p256, x25519.X25519PrivateKey.from_private_bytes(bytes(range(32)))]
    others.append(ed448.Ed448PrivateKey.from_private_bytes(bytes(range(57))))
    out += [(b"PRIVATE KEY", k.private_bytes(der, pkcs8, plain)) for k in others]
    sec1 = p256.private_bytes(der, serialization.PrivateFormat.TraditionalOpenSSL, plain)
    out.append((b"EC PRIVATE KEY", sec1))
    return out


@cache
def corpus() -> Corpus:
    chain_a = _chain(A, _payloads(B.public_key))
    chain_b = _chain(B, _payloads(A.public_key)[:4])
    chain_c = _chain(C, _payloads(A.public_key)[:1])
    vec = _load_vectors()
    a1, a2 = chain_a[0][0], chain_a[1][0]

    # A second history of A at seq 2 and a profile too large for the DHT.
    sibling, _ = create_entry(
        A, seq=2, prev=a1.id, timestamp=T0 + 1500, kind="post", payload={"text": "other"}
    )
    future, future_p = create_entry(
        A,
        seq=len(chain_a) + 1,
        prev=chain_a[-1][0].id,
        timestamp=NOW_MS + 11 * 60 * 1000,
        kind="profile",
        payload={"name": "future"},
    )
    big_profile, big_profile_p = create_entry(
        A,
        seq=len(chain_a) + 1,
        prev=chain_a[-1][0].id,
        timestamp=T0 + 99_000,
        kind="profile",
        payload={"bio": "b" * 400},
    )
    own = chain_a + chain_b + chain_c
    entries = _dedup(
        [e.to_bytes() for e, _ in own] + [sibling.to_bytes(), future.to_bytes()] + vec["entries"]
    )

    payloads: dict[str, list[bytes]] = {k: [] for k in [*KINDS, "unknown"]}
    for kind, payload in _payloads(B.public_key) + EXTRA_PAYLOADS:
        payloads[kind if kind in KINDS else "unknown"].append(encode_payload(kind, payload))
    for kind, data in vec["payloads"]:
        payloads[kind if kind in KINDS else "unknown"].append(data)
    payloads = {k: _dedup(v) for k, v in payloads.items()}

    proof = detect_fork(a2, sibling)
    assert proof is not None
    pa, pb = proof.first.to_bytes(), proof.second.to_bytes()
    b1 = chain_b[0][0].to_bytes()
    fork_proofs = _dedup(
        [
            proof.to_bytes(),
            *vec["proofs"],
            encode([pa, pa]),  # the same entry twice
            encode([pb, pa]),  # out of id order
            encode(sorted([a1.to_bytes(), pa])),  # different seqs
            encode(sorted([b1, a1.to_bytes()])),  # different authors
        ]
    )

    values = _dedup(
        [p for ps in payloads.values() for p in ps]
        + [e[64:] for e in entries if len(e) > 64]
        + fork_proofs
        + [
            encode([1, -1, 2**64 - 1, -(2**63), True, False, b"", "", {}, []]),
            encode({"a": {"b": {"c": {"d": {"e": {"f": {"g": [1]}}}}}}}),
            encode(["x" * 31, "y" * 32, "z" * 256, b"b" * 255, b"c" * 256]),
            encode(list(range(16))),
            encode({f"k{i:02}": i for i in range(16)}),
            encode([127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -32, -33, -128, -129]),
            encode("ünïcødé ✓ 🎉"),
        ]
    )

    # Peer-link messages.
    e = [x.to_bytes() for x, _ in chain_a]
    p = [y for _, y in chain_a]
    hello = Hello(key=NODE.public_key, nonce=NONCE, port=4001)
    msgs: list[Message] = [
        hello,
        Hello(key=NODE.public_key, nonce=NONCE, port=0),
        Auth(NODE.sign(hello_signed_bytes(NONCE, NODE.public_key))),
        Clock(()),
        Clock(((A.public_key, 0, None), (B.public_key, 5, TARGET_ID), (C.public_key, -1, None))),
        Want(A.public_key, 1),
        Want(A.public_key, 0, 10),
        Want(B.public_key, 3, 500),
        Entries(A.public_key, 1, 3, ((e[0], p[0]), (e[1], None), (e[2], p[2]))),
        Entries(A.public_key, 0, 0, ()),
        Push(A.public_key, 4, (e[3], p[3])),
        ForkProofMessage(proof.to_bytes()),
        Bye("done"),
        Bye(""),
        Caps(()),
        Caps(("punch", "z_9")),
        PunchOffer((("203.0.113.66", 4001), ("2001:db8::1", 65535)), False),
        PunchAnswer((("198.51.100.18", 1),), True),
        PunchGo(),
    ]
    messages = [encode_message(m) for m in msgs]
    small = [m for m in messages if len(m) < 200]
    frame_streams = [
        [small[0], small[2]],
        [small[3], small[5], small[6]],
        [encode_message(Bye("x"))],
        [b""],
        [encode_message(Entries(A.public_key, 1, 1, ((e[0], None),)))],
        small[:3],
    ]

    idle = encode_message(Clock(()))
    tiny_push = encode_message(Push(C.public_key, 1, (b"e", None)))
    sync_streams = [
        [
            encode_message(Clock(((A.public_key, 2, chain_a[1][0].id), (B.public_key, 0, None)))),
            encode_message(Entries(A.public_key, 3, 5, tuple(zip(e[2:5], p[2:5], strict=True)))),
            encode_message(Push(A.public_key, 6, (e[5], p[5]))),
            encode_message(Want(A.public_key, 1)),
            encode_message(Bye("done")),
        ],
        [encode_message(Entries(B.public_key, 1, 2, ((b1, None),)))],
        [encode_message(Want(A.public_key, 0, 10))] * 34,
        [encode_message(Entries(C.public_key, 1, 1, ((b"e", None),)))],
        [encode_message(hello)],
        [idle] * 66,
        [tiny_push] * 34,
        [encode_message(ForkProofMessage(proof.to_bytes())), encode_message(Bye("x")), idle],
        [encode_message(Entries(A.public_key, 7, 9, ()))],
        # Capability ebt (spec/sync.md 13): modes and haves after the clock.
        [
            encode_message(Clock(((A.public_key, 2, chain_a[1][0].id),))),
            encode_message(Mode(((A.public_key, 2, False),))),
            encode_message(Have(((A.public_key, 9), (B.public_key, 1)))),
            encode_message(Mode(((A.public_key, 1, True),))),
        ],
        [encode_message(Have(((B.public_key, 3),)))] * 18,
    ]

    # DHT datagrams.
    head_records = _dedup(
        e
        + [sibling.to_bytes(), future.to_bytes()]
        + [x.to_bytes() for x, _ in chain_b]
        + vec["entries"][:8]
    )
    profiles = [(x, y) for x, y in chain_a if x.kind == "profile"]
    profile_records = [encode_profile_record(x.to_bytes(), y) for x, y in profiles] + [
        encode_profile_record(future.to_bytes(), future_p),
        encode_profile_record(big_profile.to_bytes(), big_profile_p),
        encode_profile_record(e[0], p[0]),  # not a profile entry
        encode_profile_record(chain_b[2][0].to_bytes(), chain_b[2][1]),  # B's, wrong key
        encode_profile_record(profiles[0][0].to_bytes(), profiles[-1][1]),  # wrong payload
    ]
    issuer = TokenIssuer(TOKEN_SECRETS[0], 0.0)
    token = issuer.issue(PEER_HOST, PEER_PORT)
    nid = REQUESTER_ID
    key20 = hashlib.sha256(b"plain key").digest()[:20]

    def req(method: str, *args: Any) -> bytes:
        return encode_request(MSG_ID, method, [nid, *args])

    put_records = [req("put_record", HEAD_KEY_A, "head", r) for r in [*e, sibling.to_bytes()]]
    b_fork, _ = create_entry(B, seq=1, prev=None, timestamp=T0, kind="post", payload={"text": "2"})
    put_records += [
        req("put_record", head_key(B.public_key), "head", x)
        for x in [*(y.to_bytes() for y, _ in chain_b), b_fork.to_bytes()]
    ]
    put_records += [req("put_record", PROFILE_KEY_A, "profile", r) for r in profile_records]
    put_records += [req("put_record", HEAD_KEY_A, "profile", e[0])]
    requests: dict[str, list[bytes]] = {
        "ping": [req("ping")],
        "observe": [req("observe")],
        "dial_back": [req("dial_back", 4001, b""), req("dial_back", 4001, token)],
        "store": [req("store", key20, v) for v in (b"value", "text", 7, 1.5, True, -(2**63), b"")],
        "find_node": [req("find_node", key20)],
        "find_value": [req("find_value", key20)],
        "hello": [req("hello", NONCE)],
        "put_record": put_records,
        "get_record": [
            req("get_record", HEAD_KEY_A, "head"),
            req("get_record", PROFILE_KEY_A, "profile", NONCE),
        ],
        "announce": [
            req("announce", swarm_key(A.public_key), 4001, token),
            req("announce", swarm_key(A.public_key), 4001, token, [NODE_ID, "203.0.113.9", 4002]),
        ],
        "get_peers": [
            req("get_peers", swarm_key(A.public_key)),
            req("get_peers", swarm_key(A.public_key), NONCE),
        ],
    }
    assert set(requests) == set(DHT_METHODS), "a DHT method has no seed requests"
    pk, sig = NODE.public_key, NODE.sign(hello_message(NONCE, REQUESTER_ID))

    def resp(value: Any) -> bytes:
        return encode_response(MSG_ID, value)

    peers = _contacts(6)
    replies: dict[str, list[bytes]] = {
        "ping": [resp(NODE_ID)],
        "node_list": [resp(_contacts(20)), resp(_contacts(3)), resp([])],
        "find_value": [
            resp({"value": b"value"}),
            resp({"value": 1.5}),
            resp({"value": "text"}),
            resp({"value": -7}),
            resp(_contacts(4)),
        ],
        "hello": [resp([pk, sig])],
        "get_record": [
            resp({"nodes": _contacts(8), "record": e[3], "proof": [pk, sig]}),
            resp({"nodes": _contacts(2), "record": sibling.to_bytes()}),
            resp({"nodes": []}),
            resp({"nodes": _contacts(5), "proof": [pk, sig]}),
        ],
        "get_peers": [
            resp({"nodes": _contacts(4), "peers": peers, "token": token, "proof": [pk, sig]}),
            resp({"nodes": _contacts(6), "peers": [], "token": token}),
        ],
        "peer_relays": [
            resp(
                {
                    "nodes": _contacts(2),
                    "peers": [[*p, NODE_ID, "203.0.113.9", 4002] for p in peers[:4]] + peers[4:],
                    "token": token,
                }
            ),
        ],
        "relay": [resp([NODE_ID, "203.0.113.9", 4002]), resp([NODE_ID, "2001:db8::9", 1])],
        "status": [resp({"ok": True}), resp({"rejected": "stale"}), resp(True), resp(False)],
        "observe": [
            resp({"addr": ["198.51.100.7", 4001]}),
            resp({"addr": ["2001:db8::7", 65535]}),
        ],
        "dial_back": [
            resp({"token": token}),
            resp({"dialled": "ok"}),
            resp({"dialled": "refused"}),
            resp({"busy": True}),
        ],
    }

    # Local API.
    ident = identity_to_text(B.public_key)
    api_requests: dict[str, list[bytes]] = {}
    for method, spec in API_METHODS.items():
        full = {k: _api_sample(k, t) for k, (t, _) in spec.items()}
        required = {k: v for k, v in full.items() if spec[k][1]}
        optional_nil = {k: (v if spec[k][1] else None) for k, v in full.items()}
        variants = _dedup([json.dumps(x, sort_keys=True) for x in (required, full, optional_nil)])
        bodies = [
            msgpack.packb({"id": 7, "method": method, "params": json.loads(v)}) for v in variants
        ]
        if not spec:
            bodies.append(msgpack.packb({"id": 8, "method": method}))
        api_requests[method] = bodies
    view = {"id": TARGET_ID.hex(), "author": ident, "kind": "post", "seq": 1, "text": "hi"}
    api_bodies = [
        msgpack.packb({"api": "p2psocial", "version": 1}),
        msgpack.packb({"api": "p2psocial", "version": 1, "identity": ident}),
        msgpack.packb({"id": 7, "result": {"items": [view, view], "next": None}}),
        msgpack.packb({"id": 7, "error": {"code": "invalid_params", "message": "no"}}),
        msgpack.packb({"id": 9, "event": {"entry": view}}),
        *[b for bs in api_requests.values() for b in bs[:1]],
    ]
    api_streams = [
        [api_bodies[0], api_requests["post"][0]],
        [api_bodies[1], api_bodies[3]],
        [api_requests["status"][0], api_requests["follow"][0], api_requests["timeline"][-1]],
        [api_bodies[4]],
    ]

    identities = [identity_to_text(k.public_key) for k in (A, B, C, NODE)]
    identities = _dedup(identities + [identities[1].upper(), f" {identities[2]}\n"] + vec["texts"])
    cursors = [
        encode_cursor(pr, i)
        for pr, i in [(0, bytes(32)), (T0, TARGET_ID), (2**63, a1.id), (2**64 - 1, b"\xff" * 32)]
    ] + [encode_cursor(5, a2.id) + "=="]
    entry_ids = [a1.id.hex(), a2.id.hex().upper(), f"  {TARGET_ID.hex()}\t"]

    return Corpus(
        chain_a=chain_a,
        chain_b=chain_b,
        entries=entries,
        payloads=payloads,
        values=values,
        fork_proofs=fork_proofs,
        messages=messages,
        frame_streams=frame_streams,
        sync_streams=sync_streams,
        requests=requests,
        replies=replies,
        head_records=head_records,
        profile_records=profile_records,
        put_records=put_records,
        api_bodies=api_bodies,
        api_requests=api_requests,
        api_streams=api_streams,
        identities=identities,
        key_files=_key_files(),
        cursors=cursors,
        entry_ids=entry_ids,
        emojis=_emoji_seeds(),
    )


# ---------------------------------------------------------------- mutation

#: msgpack type bytes worth writing anywhere: every family's first and last
#: marker, nil, the never-used 0xc1, floats, ext, and the long forms.
MARKERS = (
    b"\x00\x01\x7f\x80\x81\x8f\x90\x91\x9f\xa0\xa1\xbf" + bytes(range(0xC0, 0xE0)) + b"\xe0\xff"
)
#: Byte strings worth inserting: headers that claim huge or empty containers,
#: ext and timestamp forms, floats, and deep nesting.
INSERTS = [
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xdc\x00\x00",
    b"\xde\x00\x01",
    b"\xc9\xff\xff\xff\xff\x01",
    b"\xc7\x00\x01",
    b"\xc7\x00\xff",
    b"\xd4\xff\x00",
    b"\xd6\xff\x00\x00\x00\x00",
    b"\xca\x7f\xc0\x00\x00",
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
    b"\xc0",
    b"\x91" * 24,
    b"\x81\xa1t\xa3bye",
    b"\xa1\x00",
    b"\xa2\xc3\x28",  # invalid UTF-8
    b"\xa3\xed\xa0\x80",  # an encoded surrogate
]


def _bounds(width: int) -> tuple[int, ...]:
    top = (1 << (8 * width)) - 1
    vals = [0, 1, 2, 15, 16, 31, 32, 127, 128, 255, 256, 1024, 1025, 16384, 16385]
    vals += [0xFFFF, 0x10000, 0x100000, 0x100001, 0x400000, 0x400001, 2**31 - 1, 2**31]
    vals += [2**53 - 1, 2**53, 2**63 - 1, 2**63, top, top - 1, top >> 1]
    return tuple(dict.fromkeys(v for v in vals if v <= top))


BOUNDS = {w: _bounds(w) for w in (1, 2, 4, 8)}
_FIXED_SIZE = {
    0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
}  # fmt: skip
_LEN_WIDTH = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
_EXT_WIDTH = {0xC7: 1, 0xC8: 2, 0xC9: 4}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
#: Longer header forms of the same value (non-canonical but valid msgpack).
_WIDER = {0xD9: (0xDA, 2), 0xDA: (0xDB, 4), 0xC4: (0xC5, 2), 0xC5: (0xC6, 4)}
_WIDER |= {0xDC: (0xDD, 4), 0xDE: (0xDF, 4), 0xCC: (0xCD, 2), 0xCD: (0xCE, 4)}
_WIDER |= {0xCE: (0xCF, 8), 0xD0: (0xD1, 2), 0xD1: (0xD2, 4), 0xD2: (0xD3, 8)}

#: (offset, marker, offset of its length or number field, field width, field value)
Token = tuple[int, int, int, int, int]


def scan_msgpack(data: bytes, start: int = 0, limit: int = 512) -> list[Token]:
    """The headers of the msgpack value in ``data[start:]``, in order, without decoding."""
    out: list[Token] = []
    pos, n, pending = start, len(data), 1
    while pending > 0 and pos < n and len(out) < limit:
        pending -= 1
        b = data[pos]
        if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
            out.append((pos, b, 0, 0, 0))
            pos += 1
        elif b <= 0x8F:
            out.append((pos, b, 0, 0, b & 0x0F))
            pending += 2 * (b & 0x0F)
            pos += 1
        elif b <= 0x9F:
            out.append((pos, b, 0, 0, b & 0x0F))
            pending += b & 0x0F
            pos += 1
        elif b <= 0xBF:
            out.append((pos, b, 0, 0, b & 0x1F))
            pos += 1 + (b & 0x1F)
        elif b in _LEN_WIDTH:
            w = _LEN_WIDTH[b]
            length = int.from_bytes(data[pos + 1 : pos + 1 + w], "big")
            out.append((pos, b, pos + 1, w, length))
            pos += 1 + w + length
        elif b in _FIXED_SIZE:
            w = _FIXED_SIZE[b]
            out.append((pos, b, pos + 1, w, int.from_bytes(data[pos + 1 : pos + 1 + w], "big")))
            pos += 1 + w
        elif b in (0xDC, 0xDD, 0xDE, 0xDF):
            w = 2 if b in (0xDC, 0xDE) else 4
            length = int.from_bytes(data[pos + 1 : pos + 1 + w], "big")
            out.append((pos, b, pos + 1, w, length))
            pending += length * (2 if b >= 0xDE else 1)
            pos += 1 + w
        elif b in _FIXEXT:
            out.append((pos, b, 0, 0, 0))
            pos += 2 + _FIXEXT[b]
        elif b in _EXT_WIDTH:
            w = _EXT_WIDTH[b]
            length = int.from_bytes(data[pos + 1 : pos + 1 + w], "big")
            out.append((pos, b, pos + 1, w, length))
            pos += 2 + w + length
        else:  # 0xc1, never used
            break
    return out


PEM_LABELS = [
    b"PRIVATE KEY",
    b"ENCRYPTED PRIVATE KEY",
    b"EC PRIVATE KEY",
    b"RSA PRIVATE KEY",
    b"OPENSSH PRIVATE KEY",
    b"PUBLIC KEY",
]
_STR_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l1bioQPZBIO-_=+/ \t\né\x00\u200b\uff10\udcff"


def _deep(n: int) -> Any:
    v: Any = 1
    for _ in range(n):
        v = [v]
    return v


INTERESTING: list[Any] = [
    None, True, False, 0, 1, -1, 2, 15, 16, 31, 32, 127, 128, 255, 256, 65535, 65536,
    2**31 - 1, 2**32 - 1, 2**32, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1,
    -32, -33, -128, -129, -(2**31), -(2**63), 0.0, -0.0, 1.5, float("inf"), float("nan"),
    "", "a", "t", "v", "head", "profile", "post", "bye", "x" * 16, "x" * 17, "x" * 32,
    "x" * 33, "x" * 64, "x" * 65, "x" * 257, "é" * 40, "\x00", "127.0.0.1", "::1",
    "0.0.0.0", "224.0.0.1", "localhost", "fe80::1%eth0", "01.2.3.4",
    b"", b"\x00", bytes(16), bytes(20), bytes(21), bytes(31), bytes(32), bytes(33),
    bytes(64), b"\xff" * 32, bytes(1100), [], [b""], [[]], [0] * 21, [0] * 1025, {}, {"": 0},
    _deep(5), _deep(12), msgpack.ExtType(1, b""), msgpack.ExtType(127, bytes(4)),
]  # fmt: skip


def _leaves(value: Any, out: dict[str, Any], keys: dict[str, str], limit: int = 4000) -> None:
    stack = [value]
    while stack and len(out) < limit:
        v = stack.pop()
        if type(v) is list:
            stack.extend(v)
        elif type(v) is dict:
            for k, x in v.items():
                if type(k) is str:
                    keys.setdefault(k, k)
                stack.append(x)
        else:
            out.setdefault(repr(v)[:200], v)


def _sorted_maps(v: Any) -> Any:
    if type(v) is list:
        return [_sorted_maps(x) for x in v]
    if type(v) is dict:
        items = [(k, _sorted_maps(x)) for k, x in v.items()]
        with contextlib.suppress(TypeError):  # keys of mixed types stay as they are
            items.sort(key=lambda kv: kv[0])
        return dict(items)
    return v


class Mutator:
    """Makes one input at a time from a target's seeds, from its own RNG.

    ``leaves`` and ``keys`` are the scalar values and map keys seen in the whole
    corpus, used for type confusion (an id where a key was, a port where a seq
    was, a field of one message in another).
    """

    def __init__(self, rng: random.Random, leaves: list[Any], keys: list[str]) -> None:
        self.rng = rng
        self.leaves = leaves
        self.keys = [*keys, "", "t", "zz", "x" * 40, "\x00"]
        self._tokens: dict[bytes, list[Token]] = {}

    # -- bytes

    def bytes_input(
        self,
        seeds: Sequence[bytes],
        offset: int = 0,
        focus: str | None = None,
        hot: Sequence[int] = (),
    ) -> bytes:
        rng = self.rng
        seed = rng.choice(seeds)
        r = rng.random()
        if r < 0.03:
            return seed
        if r < 0.05:
            return rng.randbytes(rng.randrange(len(seed) + 16))
        # Most edits keep the input well-formed msgpack, so that they reach
        # the checks behind the parser; the rest break the framing itself.
        if r < 0.45:
            out = self.value_mutation(seed, offset, focus)
            if out is not None:
                return self.generic(out, seeds, 1) if rng.random() < 0.25 else out
        elif r < 0.7:
            data = bytearray(seed)
            self.structural(data, seed, offset)
            return self.generic(bytes(data), seeds, 1, hot) if rng.random() < 0.3 else bytes(data)
        return self.generic(seed, seeds, rng.choice((1, 1, 1, 2, 3)), hot)

    def generic(
        self, seed: bytes, pool: Sequence[bytes], rounds: int, hot: Sequence[int] = ()
    ) -> bytes:
        data = bytearray(seed)
        rng = self.rng
        for _ in range(rounds):
            n = len(data)
            if n == 0:
                data += rng.randbytes(rng.randint(1, 4))
                continue
            i = rng.randrange(n)
            op = rng.randrange(12)
            if op == 0:
                data[i] ^= 1 << rng.randrange(8)
            elif op == 1:
                for _ in range(rng.randint(2, 8)):
                    data[rng.randrange(n)] ^= 1 << rng.randrange(8)
            elif op == 2:
                data[i] = rng.choice(MARKERS) if rng.random() < 0.7 else rng.randrange(256)
            elif op == 3:
                data[i:i] = rng.randbytes(rng.randint(1, 8))
            elif op == 4:
                data[i:i] = rng.choice(INSERTS)
            elif op == 5:
                del data[i : i + rng.choice((1, 1, 2, 4, 8, 32))]
            elif op == 6:
                chunk = data[i : i + rng.choice((1, 2, 4, 8, 16, 64))]
                j = rng.randrange(n + 1)
                data[j:j] = chunk
            elif op == 7:
                del data[i:]
            elif op == 8:
                other = rng.choice(pool)
                j = rng.randrange(len(other) + 1)
                data[i:] = other[j:]
            elif op == 9:
                w = rng.choice((1, 2, 4, 8))
                if hot and rng.random() < 0.6:
                    i = rng.choice(hot)
                data[i : i + w] = rng.choice(BOUNDS[w]).to_bytes(w, "big")
            elif op == 10:
                data[i:i] = bytes([data[i]]) * rng.choice((2, 16, 255))
            else:
                j = rng.randrange(n)
                k = rng.randint(1, 8)
                data[i : i + k], data[j : j + k] = data[j : j + k], data[i : i + k]
        return bytes(data)

    def structural(self, data: bytearray, seed: bytes, offset: int) -> None:
        """Rewrite one msgpack header of ``seed``: type byte, length/number field, or width."""
        tokens = self._tokens.get(seed)
        if tokens is None:
            tokens = self._tokens[seed] = scan_msgpack(seed, offset)
        if not tokens:
            return
        rng = self.rng
        pos, b, lpos, w, val = rng.choice(tokens)
        r = rng.randrange(4)
        if r == 0:
            data[pos] = rng.choice(MARKERS)
        elif r == 1 and w:
            top = (1 << (8 * w)) - 1
            v = rng.choice((*BOUNDS[w], val - 1, val + 1, val * 2)) & top
            data[lpos : lpos + w] = v.to_bytes(w, "big")
        elif r == 2 and 0x80 <= b <= 0xBF:
            bits = 0x1F if b >= 0xA0 else 0x0F
            low = rng.choice((0, 1, bits, (b & bits) + 1, (b & bits) - 1)) & bits
            data[pos] = (b & ~bits & 0xFF) | low
        else:
            self._widen(data, pos, b, w, val)

    @staticmethod
    def _widen(data: bytearray, pos: int, b: int, w: int, val: int) -> None:
        if b <= 0x7F:
            data[pos : pos + 1] = bytes([0xCC, b])
        elif b >= 0xE0:
            data[pos : pos + 1] = bytes([0xD0, b])
        elif 0xA0 <= b <= 0xBF:
            data[pos : pos + 1] = bytes([0xD9, b & 0x1F])
        elif 0x90 <= b <= 0x9F:
            data[pos : pos + 1] = b"\xdc" + (b & 0x0F).to_bytes(2, "big")
        elif 0x80 <= b <= 0x8F:
            data[pos : pos + 1] = b"\xde" + (b & 0x0F).to_bytes(2, "big")
        elif b == 0xCC and val < 128 and pos + 1 < len(data):
            data[pos] = 0xD0  # a non-negative number in the signed family
        elif b in _WIDER:
            nb, nw = _WIDER[b]
            top = (1 << (8 * nw)) - 1
            data[pos : pos + 1 + w] = bytes([nb]) + (val & top).to_bytes(nw, "big")

    # -- values

    def value_mutation(self, seed: bytes, offset: int, focus: str | None) -> bytes | None:
        """Mutate the decoded structure of ``seed[offset:]`` and re-pack it."""
        try:
            value = msgpack.unpackb(seed[offset:], raw=False, strict_map_key=False)
        except Exception:
            return None
        box = [value]
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            self._mutate_tree(box, focus)
        v = box[0]
        if self.rng.random() < 0.85:
            v = _sorted_maps(v)
        try:
            packed: bytes = msgpack.packb(v, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            return None
        return seed[:offset] + packed

    def _pick(self) -> Any:
        rng = self.rng
        v = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.choice(self.leaves)
        # Containers are copied: later edits change trees in place, and a
        # shared one would carry state from one input (or run) to the next.
        return copy.deepcopy(v) if type(v) is list or type(v) is dict else v

    def _mutate_tree(self, box: list[Any], focus: str | None) -> None:
        rng = self.rng
        root = box[0]
        start: tuple[Any, Any, Any] = (box, 0, root)
        if focus is not None and type(root) is dict and focus in root and rng.random() < 0.85:
            start = (root, focus, root[focus])
        nodes = [start]
        stack = [start[2]]
        while stack and len(nodes) < 256:
            v = stack.pop()
            items = enumerate(v) if type(v) is list else v.items() if type(v) is dict else ()
            for k, x in items:
                nodes.append((v, k, x))
                if type(x) is list or type(x) is dict:
                    stack.append(x)
        parent, key, v = rng.choice(nodes)
        op = rng.randrange(10)
        if op <= 1:
            parent[key] = self._pick()
        elif op == 2:
            # A copy: the node may be an ancestor, and a cycle would not pack.
            parent[key] = copy.deepcopy(rng.choice(nodes)[2])
        elif op == 3 and parent is not box:
            del parent[key]
        elif op == 4 and type(v) is dict:
            v[rng.choice(self.keys)] = self._pick()
        elif op == 4 and type(v) is list:
            v.insert(rng.randint(0, len(v)), self._pick())
        elif op == 5 and type(parent) is dict:
            parent[rng.choice(self.keys)] = parent.pop(key)
        elif op == 6:
            parent[key] = [v]
        elif op == 7 and type(parent) is list and parent is not box:
            parent.insert(key, v)
        else:
            parent[key] = self._tweak(v)

    def _tweak(self, v: Any) -> Any:
        rng = self.rng
        t = type(v)
        if t is bool:
            return not v
        if t is int:
            n = rng.choice((v + 1, v - 1, -v, v * 256, v >> 1, v ^ (1 << rng.randrange(64))))
            return n if -(2**63) <= n <= 2**64 - 1 else 2**64 - 1
        if t is str:
            k = rng.randrange(len(v) + 1)
            return rng.choice((v[:k], v + v[-1:] * rng.randint(1, 40), v * 2, v.upper(), v + "é"))
        if t is bytes:
            if v and rng.random() < 0.5:
                # Nested formats: entries inside records, proofs and batches.
                return self.bytes_input([v], 64 if len(v) > 64 and v[64] in (0x87, 0x88) else 0)
            k = rng.randrange(len(v) + 1)
            return rng.choice((v[:k], v + b"\x00", v * 2, bytes(len(v))))
        return self._pick()

    # -- text

    def text_input(self, seeds: Sequence[str]) -> str:
        rng = self.rng
        seed = rng.choice(seeds)
        r = rng.random()
        if r < 0.03:
            return seed
        if r < 0.05:
            return "".join(rng.choice(_STR_ALPHABET) for _ in range(rng.randrange(100)))
        chars = list(seed)
        for _ in range(rng.choice((1, 1, 2, 3))):
            n = len(chars)
            i = rng.randrange(n) if n else 0
            op = rng.randrange(9)
            if op == 0 and n:
                chars[i] = rng.choice(_STR_ALPHABET)
            elif op == 1:
                c = (
                    rng.choice(_STR_ALPHABET)
                    if rng.random() < 0.8
                    else chr(rng.randrange(0x110000))
                )
                chars.insert(i, c)
            elif op == 2 and n:
                del chars[i : i + rng.choice((1, 1, 2, 8))]
            elif op == 3 and n > 1:
                j = rng.randrange(n)
                chars[i], chars[j] = chars[j], chars[i]
            elif op == 4 and n:
                chars[i] = chars[i].upper() if chars[i].islower() else chars[i].lower()
            elif op == 5:
                chars = list("".join(chars).upper())
            elif op == 6:
                del chars[i:]
            elif op == 7 and n:
                chars[i:i] = chars[i : i + rng.choice((1, 4, 16, 90))]
            else:
                other = rng.choice(seeds)
                chars[i:] = list(other[rng.randrange(len(other) + 1) :])
        return "".join(chars)

    # -- key files

    def pem_input(self, seeds: Sequence[tuple[bytes, bytes]]) -> bytes:
        """A PEM file around a mutated DER body (base64 hides the structure)."""
        rng = self.rng
        label, der = rng.choice(seeds)
        r = rng.random()
        if r < 0.03:
            body = der
        elif r < 0.05:
            body = rng.randbytes(rng.randrange(len(der) + 16))
        else:
            body = self.generic(der, [d for _, d in seeds], rng.choice((1, 1, 1, 2, 3)))
        if rng.random() < 0.1:
            label = rng.choice(PEM_LABELS)
        pem = b"-----BEGIN %s-----\n%s-----END %s-----\n" % (label, base64.encodebytes(body), label)
        return self.generic(pem, [pem], 1) if rng.random() < 0.15 else pem

    # -- frames

    def stream_input(self, streams: Sequence[list[bytes]], pool: Sequence[bytes]) -> bytes:
        """Length-prefixed frames, with a body mutated and/or the stream itself."""
        rng = self.rng
        bodies = list(rng.choice(streams))
        if rng.random() < 0.6:
            k = rng.randrange(len(bodies))
            bodies[k] = self.bytes_input(pool if rng.random() < 0.3 else [bodies[k]])
        hot: list[int] = []
        parts: list[bytes] = []
        pos = 0
        for body in bodies:
            hot.append(pos)
            parts.append(len(body).to_bytes(4, "big") + body)
            pos += 4 + len(body)
        data = b"".join(parts)
        if rng.random() < 0.4:
            data = self.generic(data, [data], rng.randint(1, 3), hot)
        return data


@cache
def _pool() -> tuple[list[Any], list[str]]:
    c = corpus()
    leaves: dict[str, Any] = {}
    keys: dict[str, str] = {}
    sources = (
        c.values
        + c.messages
        + [d[21:] for ds in (*c.requests.values(), *c.replies.values()) for d in ds]
        + c.api_bodies
    )
    for data in sources:
        try:
            _leaves(msgpack.unpackb(data, raw=False, strict_map_key=False), leaves, keys)
        except Exception:
            continue
    return list(leaves.values()), list(keys)


# ---------------------------------------------------------------- targets

Run = Callable[[Any], str | None]


@dataclass(frozen=True)
class Target:
    """One decoder under test.

    ``make_run()`` returns the function fed each input (fresh state per run):
    it returns None when the input was accepted, or a reason string when the
    decoder refused it by return value; ``allowed`` are the exceptions that
    count as documented refusals (their ``reason`` is counted). Anything else
    that escapes is uncaught. ``shape`` says how inputs are built: "bytes"
    (msgpack from ``offset`` on), "text", "frames" (length-prefixed frames,
    seeds being lists of bodies) or "pem" (seeds being (label, DER) pairs).
    """

    name: str
    seeds: Sequence[Any]
    make_run: Callable[[], Run]
    allowed: tuple[type[BaseException], ...]
    shape: str = "bytes"
    offset: int = 0
    focus: str | None = None
    pool: Sequence[bytes] = ()
    can_accept: bool = True
    can_reject: bool = True


def _stage(prefix: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run the stage that feeds the decoder under test, labelling its refusals."""
    try:
        return fn(*args)
    except P2PSocialError as exc:
        exc.reason = f"{prefix}.{exc.reason}"
        raise


def _fixed(fn: Callable[[Any], Any]) -> Callable[[], Run]:
    def make() -> Run:
        def run(data: Any) -> None:
            fn(data)

        return run

    return make


def _msgpack_run() -> Run:
    small = Limits(max_size=256, max_depth=2, max_container_len=4, max_str_len=8, max_bin_len=33)
    default = Limits()
    count = [0]

    def run(data: bytes) -> None:
        # Every fourth input meets tight limits, as the entry and record
        # decoders pass them.
        count[0] += 1
        value = decode_untrusted(data, small if count[0] % 4 == 0 else default)
        if encode(value) != data:
            raise AssertionError("accepted msgpack does not re-encode to the input")

    return run


def _entry_run() -> Run:
    def run(data: bytes) -> None:
        entry = decode_entry_untrusted(data)
        if entry.to_bytes() != data or entry.id != hashlib.sha256(data).digest():
            raise AssertionError("accepted entry does not round-trip")

    return run


def _payload_run(kind: str) -> Callable[[], Run]:
    kind = {"unknown": "poll"}.get(kind, kind)

    def make() -> Run:
        def run(data: bytes) -> None:
            # An unsigned entry that commits to these bytes, so that every
            # input reaches the schema (decode_payload_untrusted does not
            # look at the signature).
            size = min(len(data), MAX_PAYLOAD_SIZE)
            digest = hashlib.sha256(data).digest()
            entry = Entry(A.public_key, 1, None, T0, kind, digest, size, bytes(64), b"", digest)
            value = decode_payload_untrusted(entry, data)
            if encode(value) != data:
                raise AssertionError("accepted payload does not re-encode to the input")

        return run

    return make


def _fork_run() -> Run:
    def run(data: bytes) -> None:
        proof = decode_fork_proof_untrusted(data)
        if proof.to_bytes() != data:
            raise AssertionError("accepted fork proof does not re-encode to the input")

    return run


def _message_run() -> Run:
    def run(data: bytes) -> None:
        msg = decode_message_untrusted(data)
        if encode_message(msg) != data:
            raise AssertionError("accepted message does not re-encode to the input")

    return run


def _split_both(make: Callable[[], Any], data: bytes) -> list[bytes]:
    """Split ``data`` fed whole and fed one byte at a time; they must agree.

    ``make()`` gives a splitter whose ``feed`` returns the frames it completes,
    or queues them for an optional ``rest()``.
    """
    whole = make()
    err: DecodeError | None = None
    try:
        bodies = list(whole.feed(data) or ()) + getattr(whole, "rest", list)()
    except DecodeError as exc:
        err, bodies = exc, []
    inc = make()
    step = inc.feed
    got: list[bytes] = []
    inc_err = None
    try:
        for i in range(len(data)):
            if out := step(data[i : i + 1]):
                got += out
    except DecodeError as exc:
        inc_err = exc
    got += getattr(inc, "rest", list)()
    if (err is None) != (inc_err is None):
        raise AssertionError(f"whole feed raised {err!r}, byte-at-a-time raised {inc_err!r}")
    if err is not None:
        raise err
    if got != bodies:
        raise AssertionError("whole feed and byte-at-a-time give different frames")
    return bodies


class _BufferFeed:
    """FrameBuffer as a splitter: feed() returns nothing, rest() every frame queued."""

    def __init__(self) -> None:
        self.buf = FrameBuffer()
        self.feed = self.buf.feed

    def rest(self) -> list[bytes]:
        out = []
        while (body := self.buf.next_frame()) is not None:
            out.append(body)
        return out


def _api_frames_run() -> Run:
    def run(data: bytes) -> None:
        _split_both(_BufferFeed, data)

    return run


def _wire_frames_run() -> Run:
    def run(data: bytes) -> None:
        _split_both(FrameDecoder, data)

    return run


def _sync_run() -> Run:
    c = corpus()
    a3 = c.chain_a[2][0]

    def run(data: bytes) -> None:
        session = SyncSession({A.public_key: (3, a3.id), B.public_key: (0, None)})
        session.enable_ebt()
        session.start()
        now = 0.0
        for body in _stage("frame", FrameDecoder().feed, data):
            msg = _stage("message", decode_message_untrusted, body)
            now += 0.01
            session.receive(msg, now)

    return run


#: Fixed X25519 keys of the Noise handshake seeds (initiator, responder).
NOISE_KEYS = tuple(hashlib.sha256(b"p2psocial fuzz noise %d" % i).digest() for i in range(4))
NOISE_PAYLOADS = (b"", b"hello payload", b"x" * 40)


def _noise_pair() -> tuple[Handshake, Handshake]:
    s_i, s_r, e_i, e_r = NOISE_KEYS
    return (
        Handshake(initiator=True, static_private=s_i, ephemeral_private=e_i),
        Handshake(initiator=False, static_private=s_r, ephemeral_private=e_r),
    )


@cache
def _noise_messages() -> tuple[bytes, bytes, bytes]:
    """The honest XX messages of the fixed keys (deterministic: fixed ephemerals)."""
    ini, resp = _noise_pair()
    out = []
    for i, payload in enumerate(NOISE_PAYLOADS):
        sender, receiver = (ini, resp) if i % 2 == 0 else (resp, ini)
        out.append(sender.write_message(payload))
        receiver.read_message(out[-1])
    return out[0], out[1], out[2]


def _noise_seeds() -> list[bytes]:
    # The first byte says which message of XX the rest replaces (mod 3).
    return [bytes([i]) + m for i, m in enumerate(_noise_messages())]


def _noise_run() -> Run:
    honest = _noise_messages()

    def run(data: bytes) -> None:
        # Replay the honest messages before the one under test, feed the
        # input in its place, then finish the handshake honestly: a changed
        # message must end it (NoiseError) before the reader completes.
        index = data[0] % 3 if data else 0
        message = data[1:]
        ini, resp = _noise_pair()
        for i in range(3):
            sender, receiver = (ini, resp) if i % 2 == 0 else (resp, ini)
            sent = sender.write_message(NOISE_PAYLOADS[i])
            if i == index:
                sent = message
            receiver.read_message(sent)
        if message != honest[index]:
            raise AssertionError("a changed Noise handshake message completed the handshake")

    return run


#: The Noise static key the link payload seeds sign.
LINK_STATIC = public_key(NOISE_KEYS[0])


def _link_payload_run() -> Run:
    def run(data: bytes) -> None:
        decode_link_payload_untrusted(data, LINK_STATIC)

    return run


def _datagram(data: bytes, want: type) -> Any:
    msg = _stage("datagram", decode_datagram_untrusted, data)
    return msg if type(msg) is want else None


def _args_run(method: str) -> Callable[[], Run]:
    def make() -> Run:
        def run(data: bytes) -> str | None:
            req = _datagram(data, Request)
            if req is None:
                return "not_a_request"
            parse_request_args(req.method, req.args)
            return None

        return run

    return make


def _relay_seeds() -> list[bytes]:
    """The relay's control messages (spec/sync.md §11), each as it travels."""
    sig = NODE.sign(relay.reserve_signed_bytes(NONCE, NODE_ID))
    return [
        relay.encode_challenge(NODE_ID, NONCE),
        relay.encode_proof(NODE.public_key, sig),
        relay.encode_connect(NODE_ID),
        relay.encode_connect_answer(0),
        relay.encode_accept(NONCE[:16]),
        relay.encode_keepalive() + relay.encode_incoming(NONCE[:16]),
    ]


def _portmap_seeds() -> list[bytes]:
    """Gateway answers (spec/portmap.md): NAT-PMP address and MAP responses,
    a PCP MAP response with an option, and both "unsupported version" answers."""
    natpmp_map = portmap.encode_natpmp_map_request(portmap.PROTO_TCP, 4001, 4001, 7200)
    pcp_map = portmap.encode_pcp_map_request(
        NONCE[:12], portmap.PROTO_UDP, 4002, 4002, 7200, "192.0.2.18", "203.0.113.70"
    )
    return [
        bytes.fromhex("008000000000002acb007146"),
        bytes([0, 130, 0, 0, 0, 0, 0, 42]) + natpmp_map[4:],
        bytes([2, 0x81, 0, 0])
        + pcp_map[4:8]
        + bytes(16)
        + pcp_map[24:]
        + bytes([1, 0, 0, 4, 0, 0, 0, 0]),
        bytes.fromhex("008100010000002a"),
        bytes([2, 0x81, 0, 1]) + bytes(20),
    ]


def _igd_seeds() -> list[bytes]:
    """UPnP-IGD answers (spec/portmap.md §7): an SSDP answer, HTTP answers
    (Content-Length, chunked, to the end), a description and SOAP bodies."""
    st = b"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    desc = (
        b'<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><URLBase>'
        b"http://192.0.2.17:5000</URLBase><device><serviceList><service><serviceType>"
        b"urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>ctl/ip"
        b"</controlURL></service></serviceList></device></root>"
    )
    env = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>%s'
        b"</s:Body></s:Envelope>"
    )
    ok = env % (
        b'<u:AddPortMappingResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">'
        b"<NewExternalIPAddress>203.0.113.70</NewExternalIPAddress></u:AddPortMappingResponse>"
    )
    fault = env % (
        b"<s:Fault><detail><UPnPError><errorCode>718</errorCode><errorDescription>"
        b"ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault>"
    )
    return [
        b"HTTP/1.1 200 OK\r\n" + st + b"LOCATION: http://192.0.2.17:5000/rootDesc.xml\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(desc), desc),
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(fault), fault),
        b"HTTP/1.0 200 OK\r\n\r\n" + ok,
        desc,
        ok,
    ]


def _igd_run() -> Run:
    """Every IGD decoder on the same bytes: decode_search_response_untrusted,
    decode_http_response_untrusted (open and at the end), and on the body
    decode_description_untrusted and decode_soap_untrusted."""
    base = igd.Url("192.0.2.17", 5000, "/rootDesc.xml")

    def run(data: bytes) -> str | None:
        refused = 0
        with contextlib.suppress(DecodeError):
            igd.decode_search_response_untrusted(data)
        body = data
        for eof in (False, True):
            try:
                got = igd.decode_http_response_untrusted(data, eof=eof)
            except DecodeError:
                refused += 1
                continue
            if got is not None:
                body = got.body
        try:
            igd.decode_description_untrusted(body, base)
        except DecodeError:
            refused += 1
        for status in (200, 500):
            try:
                igd.decode_soap_untrusted(igd.HttpResponse(status, body), "AddPortMapping")
            except DecodeError:
                refused += 1
        return None if refused < 5 else "refused"

    return run


def _relay_run() -> Run:
    """Every relay decoder on the same bytes: decode_preamble_untrusted,
    decode_challenge_untrusted, decode_connect_untrusted,
    decode_connect_answer_untrusted, decode_accept_untrusted,
    verify_proof_untrusted and the control stream's decoder."""
    decoders = (
        relay.decode_preamble_untrusted,
        relay.decode_challenge_untrusted,
        relay.decode_connect_untrusted,
        relay.decode_connect_answer_untrusted,
        relay.decode_accept_untrusted,
    )

    def run(data: bytes) -> str | None:
        refused = 0
        for decode in decoders:
            try:
                decode(data[:80])
            except DecodeError:
                refused += 1
        with contextlib.suppress(DecodeError, InvalidSignature):
            relay.verify_proof_untrusted(data[:96], NONCE, NODE_ID)
        try:
            relay.ControlDecoder().feed_untrusted(data[:64])
        except DecodeError:
            refused += 1
        return None if refused <= len(decoders) else "refused"

    return run


def _lan_seeds() -> list[bytes]:
    """LAN announcements (spec/dht.md §12): our own and spec/vectors/lan.json's, both verdicts."""
    seeds = [
        encode_lan_announce(LanAnnounce(NODE_ID, 7000, 7001)),
        encode_lan_announce(LanAnnounce(NODE_ID, 65535, 0)),
    ]
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads((VECTORS / "lan.json").read_text(encoding="utf-8"))
        seeds += [bytes.fromhex(v["datagram"]) for v in data["valid"] + data["invalid"]]
    return seeds


def _lan_run() -> Run:
    def run(data: bytes) -> None:
        ann = decode_lan_announce_untrusted(data)
        # Flag bits are ignored on receipt; everything else re-encodes exactly.
        again = encode_lan_announce(ann)
        if again[:9] != data[:9] or again[10:] != data[10:]:
            raise AssertionError("accepted announcement does not re-encode to its bytes")

    return run


def _reply_run(parser: str) -> Callable[[], Run]:
    def make() -> Run:
        values = ValueStore(max_items=64)
        count = [0]

        def proof_ok(proof: tuple[bytes, bytes] | None) -> None:
            if proof is not None:
                verify_hello(NODE_ID, NONCE, REQUESTER_ID, proof[0], proof[1])

        def run(data: bytes) -> str | None:
            resp = _datagram(data, Response)
            if resp is None:
                return "not_a_response"
            v = resp.value
            if parser == "ping":
                parse_ping_reply(v)
            elif parser == "node_list":
                parse_node_list(v)
            elif parser == "find_value":
                found, value, _ = parse_find_value_reply(v)
                if found:
                    count[0] += 1
                    values.put(hashlib.sha256(b"%d" % (count[0] % 100)).digest()[:20], value, 0.0)
            elif parser == "hello":
                proof_ok(parse_hello_reply(v))
            elif parser == "get_record":
                rec, _, proof = parse_get_record_reply(v)
                proof_ok(proof)
                if rec is not None:
                    validate_record("head", HEAD_KEY_A, rec, NOW_MS)
            elif parser == "get_peers":
                proof_ok(parse_get_peers_reply(v)[3])
            elif parser == "observe":
                parse_observe_reply(v)
            elif parser == "peer_relays":
                parse_peer_relays(v)  # skips what it cannot use: never raises
            elif parser == "relay":
                parse_relay(v)
            elif parser == "dial_back":
                parse_dial_back_reply(v)
            else:
                parse_status_reply(v)
            return None

        return run

    return make


def _record_run(kind: str) -> Callable[[], Run]:
    key = HEAD_KEY_A if kind == "head" else PROFILE_KEY_A

    def make() -> Run:
        def run(data: bytes) -> None:
            validate_record(kind, key, data, NOW_MS)

        return run

    return make


def _record_store_run() -> Run:
    # Two slots and a short life (one input is one second): eviction, expiry
    # and same-seq conflicts all happen, not only "stale".
    store = RecordStore(max_records=2, ttl=24.0)
    clock = [0.0]

    def slot(kind: str, key: bytes, now: float) -> tuple[bytes, int, bytes] | None:
        rec = store.get(kind, key, now)
        return None if rec is None else (rec.data, rec.seq, rec.entry_id)

    def run(data: bytes) -> str | None:
        req = _datagram(data, Request)
        if req is None or req.method != "put_record":
            return "not_put_record"
        _, key, kind, record = _stage("args", parse_request_args, req.method, req.args)
        clock[0] += 1.0
        now = clock[0]
        before, n = slot(kind, key, now), len(store)
        try:
            stored = store.put(kind, key, record, now=now, now_ms=NOW_MS)
        except RecordRejected:
            # "rejected" means "nothing stored" (spec/dht.md §5).
            if slot(kind, key, now) != before or len(store) != n:
                raise AssertionError("a rejected record changed the store") from None
            raise
        if store.get(kind, key, now) is not stored or stored.data != record:
            raise AssertionError("a stored record is not what get() returns")
        return None

    return run


def _serve_run() -> Run:
    """The DHT request handler's protocol half (node/dht/handler.py ``RequestHandler.handle``), minus I/O."""
    values = ValueStore(max_items=64)
    records = RecordStore(max_records=16, ttl=90.0)
    swarms = SwarmStore(max_keys=8, max_peers=4, ttl=60.0)
    tokens = TokenIssuer(TOKEN_SECRETS[0], 0.0, rotation_s=300.0)
    clock = [0.0]

    def run(data: bytes) -> str | None:
        req = _datagram(data, Request)
        if req is None:
            return "not_a_request"
        args = _stage("args", parse_request_args, req.method, req.args)
        clock[0] += 1.0
        now = clock[0]
        if tokens.needs_rotation(now):
            # Alternate two secrets, so that the seeds' token stays valid.
            tokens.rotate(TOKEN_SECRETS[int(now // 300) % 2], now)
        method = req.method
        if method == "store":
            values.put(args[1], args[2], now)
        elif method == "find_value":
            values.get(args[1], now)
        elif method == "put_record":
            records.put(args[2], args[1], args[3], now=now, now_ms=NOW_MS)
        elif method == "get_record":
            records.get(args[2], args[1], now)
        elif method == "announce":
            tokens.check(args[3], PEER_HOST, PEER_PORT)
            swarms.announce(args[1], args[0], PEER_HOST, args[2], now)
        elif method == "get_peers":
            swarms.peers(args[1], now, limit=12)
            tokens.issue(PEER_HOST, PEER_PORT)
        elif method == "dial_back":
            try:  # a bad token is answered with a fresh one, not an error
                tokens.check(args[2], PEER_HOST, PEER_PORT)
            except RecordRejected:
                tokens.issue(PEER_HOST, PEER_PORT)
        return None

    return run


def _params_reason(problem: str) -> str:
    if problem == "params must be a map":
        return "not_a_map"
    for prefix, reason in (
        ("unknown parameter", "unknown_param"),
        ("missing parameter", "missing_param"),
        ("parameter ", "bad_type"),
    ):
        if problem.startswith(prefix):
            return reason
    return "other"


def _params_run(method: str) -> Callable[[], Run]:
    def make() -> Run:
        def run(data: bytes) -> str | None:
            msg = _stage("frame", decode_frame_payload_untrusted, data)
            problem = check_params(method, msg.get("params", {}))
            if problem is None:
                return None
            if type(problem) is not str:
                raise AssertionError(f"check_params returned {problem!r}")
            return _params_reason(problem)

        return run

    return make


def _emoji_seeds() -> list[str]:
    """Reactions from spec/vectors/emoji.json (both verdicts), plus a few of our own."""
    own = ["👍", "❤️", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "1️⃣", "🏴‍☠️", "hello"]
    try:
        data = json.loads((VECTORS / "emoji.json").read_text(encoding="utf-8"))
        found = [c["emoji"] for k in ("accepted", "refused") for c in data[k]]
    except (OSError, ValueError, KeyError, TypeError):
        found = []
    return _dedup(own + [t for t in found if isinstance(t, str) and t])


def _emoji_run() -> Run:
    def run(text: str) -> str | None:
        problem = emoji_problem(text)
        if problem is None:
            if not 1 <= len(text) <= MAX_EMOJI_CODE_POINTS:
                raise AssertionError("an accepted emoji is outside the code point bound")
            if len(text.encode("utf-8")) > MAX_EMOJI_BYTES:
                raise AssertionError("an accepted emoji is outside the byte bound")
            return None
        if type(problem) is not str:
            raise AssertionError(f"emoji_problem returned {problem!r}")
        return "too_long" if len(text) > MAX_EMOJI_CODE_POINTS else "not_emoji"

    return run


def _identity_run() -> Run:
    def run(text: str) -> None:
        raw = identity_from_text(text)
        if identity_to_text(raw) != text.strip().lower():
            raise AssertionError("accepted identity text does not round-trip")

    return run


def _invite_seeds() -> list[str]:
    """Invites from spec/vectors/invite.json (both verdicts), plus a few of our own."""
    own = [
        make_invite(A, peer_addrs=[("127.0.0.1", 4001)], dht_addrs=[("127.0.0.1", 4001)]),
        make_invite(
            NODE,
            peer_addrs=[("192.0.2.1", 1), ("2001:db8::1", 65535)],
            dht_addrs=[("192.0.2.1", 2)],
            expires_ms=2**63,
            recommended=[A.public_key, B.public_key],
        ),
    ]
    try:
        data = json.loads((VECTORS / "invite.json").read_text(encoding="utf-8"))
        found = [c["text"] for k in ("valid", "invalid") for c in data[k]]
    except (OSError, ValueError, KeyError, TypeError):
        found = []
    return _dedup(own + [own[1].upper()] + [t for t in found if isinstance(t, str)])


def _invite_run() -> Run:
    def run(text: str) -> None:
        invite = decode_invite_untrusted(text, now_ms=1_700_000_000_000)
        if invite.text() != text.strip().lower():
            raise AssertionError("accepted invite does not re-encode to its text")

    return run


def _cursor_run() -> Run:
    def run(text: str) -> None:
        primary, id_ = decode_cursor(text)
        if type(primary) is not int or type(id_) is not bytes or len(id_) != 32:
            raise AssertionError("decoded cursor has the wrong shape")

    return run


@cache
def targets() -> dict[str, Target]:
    """Every decoder covered, by name, in output order."""
    c = corpus()
    out: list[Target] = []
    add = out.append
    all_datagrams = [d for ds in (*c.requests.values(), *c.replies.values()) for d in ds]

    add(Target("msgpack", c.values, _msgpack_run, (DecodeError,)))
    add(Target("entry", c.entries, _entry_run, (DecodeError,), offset=64))
    for kind, seeds in c.payloads.items():
        add(Target(f"payload.{kind}", seeds, _payload_run(kind), (DecodeError, SchemaError)))
    add(Target("fork_proof", c.fork_proofs, _fork_run, (DecodeError, InvalidSignature, ChainError)))
    add(Target("wire_message", c.messages, _message_run, (DecodeError,)))
    add(
        Target(
            "wire_frames",
            c.frame_streams,
            _wire_frames_run,
            (DecodeError,),
            shape="frames",
            pool=c.messages,
        )
    )
    add(
        Target(
            "sync_session",
            c.sync_streams,
            _sync_run,
            (ProtocolError,),
            shape="frames",
            pool=c.messages,
        )
    )
    add(Target("noise_handshake", _noise_seeds(), _noise_run, (NoiseError,)))
    add(Target("relay_control", _relay_seeds(), _relay_run, (DecodeError, InvalidSignature)))
    add(Target("lan_announce", _lan_seeds(), _lan_run, (DecodeError,)))
    add(
        Target(
            "portmap_response",
            _portmap_seeds(),
            _fixed(portmap.decode_response_untrusted),
            (DecodeError,),
        )
    )
    add(Target("igd_answer", _igd_seeds(), _igd_run, (DecodeError,)))
    link_seeds = [encode_link_payload(k, LINK_STATIC) for k in (NODE, A)]
    add(Target("link_payload", link_seeds, _link_payload_run, (LinkError, InvalidSignature)))
    add(
        Target(
            "dht_datagram",
            all_datagrams,
            _fixed(decode_datagram_untrusted),
            (DecodeError,),
            offset=21,
        )
    )
    for method in DHT_METHODS:
        add(
            Target(
                f"dht_args.{method}",
                c.requests[method],
                _args_run(method),
                (DecodeError,),
                offset=21,
                pool=all_datagrams,
            )
        )
    reply_errors: dict[str, tuple[type[BaseException], ...]] = {
        "find_value": (DecodeError, RecordRejected),
        "hello": (DecodeError, InvalidSignature),
        "get_record": (DecodeError, InvalidSignature, RecordRejected),
        "get_peers": (DecodeError, InvalidSignature),
    }
    for parser, seeds in c.replies.items():
        add(
            Target(
                f"dht_reply.{parser}",
                seeds,
                _reply_run(parser),
                reply_errors.get(parser, (DecodeError,)),
                offset=21,
                pool=all_datagrams,
            )
        )
    add(
        Target("dht_record.head", c.head_records, _record_run("head"), (RecordRejected,), offset=64)
    )
    add(Target("dht_record.profile", c.profile_records, _record_run("profile"), (RecordRejected,)))
    add(
        Target(
            "dht_record_store",
            c.put_records,
            _record_store_run,
            (DecodeError, RecordRejected),
            offset=21,
        )
    )
    add(
        Target(
            "dht_serve",
            [d for ds in c.requests.values() for d in ds],
            _serve_run,
            (DecodeError, RecordRejected),
            offset=21,
            pool=all_datagrams,
        )
    )
    add(Target("api_frame", c.api_bodies, _fixed(decode_frame_payload_untrusted), (DecodeError,)))
    add(
        Target(
            "api_frames",
            c.api_streams,
            _api_frames_run,
            (DecodeError,),
            shape="frames",
            pool=c.api_bodies,
        )
    )
    for method, seeds in c.api_requests.items():
        add(
            Target(
                f"api_params.{method}",
                seeds,
                _params_run(method),
                (DecodeError,),
                focus="params",
                pool=c.api_bodies,
            )
        )
    add(Target("identity_text", c.identities, _identity_run, (DecodeError,), shape="text"))
    invite_errors = (DecodeError, InvalidSignature)
    add(Target("invite", _invite_seeds(), _invite_run, invite_errors, shape="text"))
    add(Target("key_file", c.key_files, _fixed(SigningKey.from_pem), (DecodeError,), shape="pem"))
    add(Target("cursor", c.cursors, _cursor_run, (LocalUsageError,), shape="text"))
    add(Target("emoji", c.emojis, _emoji_run, (), shape="text"))
    add(
        Target(
            "entry_id_text", c.entry_ids, _fixed(parse_entry_id), (LocalUsageError,), shape="text"
        )
    )
    return {t.name: t for t in out}


def decoder_names() -> list[str]:
    return list(targets())


def select(spec: str | None) -> list[str]:
    """Names matching a comma-separated list of names or name prefixes (``dht_args``)."""
    names = decoder_names()
    if not spec:
        return names
    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        hits = [n for n in names if n == part or n.startswith(part + ".")]
        if not hits:
            raise SystemExit(f"unknown decoder {part!r}; --list shows them")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def generator(target: Target, rng: random.Random) -> Callable[[], Any]:
    leaves, keys = _pool()
    m = Mutator(rng, leaves, keys)
    seeds = list(target.seeds)
    if target.shape == "text":
        return lambda: m.text_input(seeds)
    if target.shape == "pem":
        return lambda: m.pem_input(seeds)
    if target.shape == "frames":
        pool = list(target.pool) or [b for s in seeds for b in s]
        return lambda: m.stream_input(seeds, pool)
    splice = list(target.pool) if target.pool else seeds

    def gen() -> bytes:
        # Splicing mostly within the decoder's own seeds, sometimes across formats.
        if splice is not seeds and rng.random() < 0.8:
            return m.bytes_input(seeds, target.offset, target.focus)
        return m.bytes_input(seeds if rng.random() < 0.5 else splice, target.offset, target.focus)

    return gen


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(f"p2psocial-fuzz:{seed}:{name}")


# ---------------------------------------------------------------- running


def input_hex(data: Any) -> str:
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass").hex()
    return bytes(data).hex()


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    try:
        path = str(Path(f.filename).resolve().relative_to(REPO))
    except ValueError:
        path = f.filename
    return f"{path}:{f.lineno} in {f.name}"


def run_target(
    name: str, inputs: int, seed: int, max_examples: int = MAX_EXAMPLES
) -> dict[str, Any]:
    """Feed ``inputs`` generated inputs to one decoder; return its result line."""
    target = targets()[name]
    gen = generator(target, _rng(seed, name))
    run = target.make_run()
    allowed = target.allowed
    accepted = 0
    rejected: Counter[str] = Counter()
    uncaught = 0
    kinds: Counter[str] = Counter()
    examples: list[dict[str, str]] = []
    clock = time.perf_counter
    decode_s = 0.0
    start = clock()
    for _ in range(inputs):
        data = gen()
        t0 = clock()
        try:
            verdict = run(data)
        except allowed as exc:
            decode_s += clock() - t0
            rejected[getattr(exc, "reason", None) or type(exc).__name__] += 1
            continue
        except Exception as exc:
            decode_s += clock() - t0
            uncaught += 1
            where = _where(exc)
            sig = f"{type(exc).__name__} at {where}"
            if sig not in kinds and len(examples) < max_examples:
                examples.append(
                    {
                        "decoder": name,
                        "input_hex": input_hex(data),
                        "exception": repr(exc)[:500],
                        "where": where,
                    }
                )
            kinds[sig] += 1
            continue
        decode_s += clock() - t0
        if verdict is None:
            accepted += 1
        else:
            rejected[verdict] += 1
    result: dict[str, Any] = {
        "decoder": name,
        "inputs": inputs,
        "accepted": accepted,
        "rejected": dict(sorted(rejected.items())),
        "uncaught": uncaught,
        "seconds": round(clock() - start, 3),
        "decode_seconds": round(decode_s, 3),
    }
    if uncaught:
        result["uncaught_kinds"] = dict(kinds.most_common())
        result["uncaught_examples"] = examples
    return result


def run_all(
    names: Sequence[str], inputs: int, seed: int, jobs: int = 1
) -> Iterator[dict[str, Any]]:
    """Results in the order of ``names``; with jobs > 1, decoders run in parallel."""
    targets()  # build the corpus once, before any fork
    if jobs <= 1 or len(names) <= 1:
        for name in names:
            yield run_target(name, inputs, seed)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        yield from pool.map(run_target, names, [inputs] * len(names), [seed] * len(names))


def reference(seed: int, n: int) -> dict[str, Any]:
    """msgpack.unpackb and decode_untrusted over the msgpack decoder's first n inputs."""
    gen = generator(targets()["msgpack"], _rng(seed, "msgpack"))
    data = [gen() for _ in range(n)]
    unpackb = msgpack.unpackb
    t0 = time.perf_counter()
    for d in data:
        with contextlib.suppress(Exception):
            unpackb(d)
    t1 = time.perf_counter()
    for d in data:
        with contextlib.suppress(DecodeError):
            decode_untrusted(d)
    t2 = time.perf_counter()
    return {
        "reference_inputs": n,
        "msgpack_unpackb_per_s": round(n / max(t1 - t0, 1e-9)),
        "decode_untrusted_per_s": round(n / max(t2 - t1, 1e-9)),
    }


def summarize(
    results: Sequence[dict[str, Any]], seed: int, inputs: int, seconds: float, jobs: int
) -> dict[str, Any]:
    examples = [e for r in results for e in r.get("uncaught_examples", [])][:MAX_EXAMPLES]
    total = sum(r["inputs"] for r in results)
    cpu = sum(r["seconds"] for r in results)
    decode_s = sum(r["decode_seconds"] for r in results)
    return {
        "bench": "fuzz",
        "seed": seed,
        "inputs_per_decoder": inputs,
        "decoders": len(results),
        "inputs": total,
        "accepted": sum(r["accepted"] for r in results),
        "rejected": sum(sum(r["rejected"].values()) for r in results),
        "uncaught": sum(r["uncaught"] for r in results),
        "decoders_with_uncaught": [r["decoder"] for r in results if r["uncaught"]],
        "uncaught_examples": examples,
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "decoder_seconds": round(cpu, 1),
        # Whole loop (input generation included) and decoder calls alone, per core.
        "inputs_per_s": round(total / max(cpu, 1e-9)),
        "decode_per_s": round(total / max(decode_s, 1e-9)),
    }


def replay(name: str, hex_input: str) -> int:
    """Run one input through one decoder and print the outcome (and traceback)."""
    target = targets()[name]
    raw = bytes.fromhex(hex_input)
    data: Any = raw.decode("utf-8", "surrogatepass") if target.shape == "text" else raw
    run = target.make_run()
    try:
        verdict = run(data)
    except target.allowed as exc:
        print(f"rejected: {getattr(exc, 'reason', type(exc).__name__)}: {exc}")
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    print("accepted" if verdict is None else f"rejected: {verdict}")
    return 0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--inputs", type=int, default=DEFAULT_INPUTS, help="inputs per decoder")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--decoders", help="comma-separated names or prefixes (default: all)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--list", action="store_true", help="list the decoders and exit")
    p.add_argument("--replay", nargs=2, metavar=("DECODER", "HEX"))
    args = p.parse_args(argv)
    if args.list:
        for name in decoder_names():
            print(name)
        return 0
    if args.replay:
        return replay(*args.replay)
    names = select(args.decoders)
    log(f"fuzz: {len(names)} decoders x {args.inputs:,} inputs, seed {args.seed}, {args.jobs} jobs")
    start = time.perf_counter()
    results = []
    for r in run_all(names, args.inputs, args.seed, args.jobs):
        results.append(r)
        print(json.dumps(r), flush=True)
        log(
            f"  {r['decoder']}: {r['accepted']} accepted, {r['uncaught']} uncaught, {r['seconds']} s"
        )
    elapsed = time.perf_counter() - start
    summary = summarize(results, args.seed, args.inputs, elapsed, args.jobs)
    summary.update(reference(args.seed, min(args.inputs, REFERENCE_CAP)))
    print(json.dumps(summary), flush=True)
    return 1 if summary["uncaught"] else 0


if __name__ == "__main__":
    sys.exit(main())
