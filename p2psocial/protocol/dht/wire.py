"""The DHT datagram codec: rpcudp framing, argument and reply shapes, hello.

Framing (identical to the ``rpcudp`` package used by ``kademlia``)::

    datagram = type (1 byte: 0x00 request, 0x01 response)
               || msg id (20 random bytes, echoed by the response)
               || msgpack body
    request body  = [method name (str), [args ...]]
    response body = the bare result value

The envelope is plain msgpack as the stock package writes it (``umsgpack``),
so it is *not* held to our canonical profile: floats and nil may appear in
``kademlia`` values. Our own record values inside it are canonical, and are
checked where they are used.

Every ``*_untrusted`` / ``parse_*`` function here raises only
:class:`~p2psocial.protocol.errors.DecodeError` (or InvalidSignature for
``verify_hello``); anything else is a bug, and the datagram decoder is fuzzed.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from ..encoding import Limits, unpack_limited
from ..errors import DecodeError, InvalidSignature, LocalUsageError
from ..identity import check_public_key, node_id_from_public_key, verify_strict
from .routing import Contact

__all__ = [
    "HELLO_TAG",
    "MAX_DATAGRAM",
    "MAX_NODES",
    "MAX_VALUE_REPLY",
    "METHODS",
    "NONCE_SIZE",
    "PROVING_METHODS",
    "REQUEST",
    "RESPONSE",
    "RelayedPeer",
    "Request",
    "Response",
    "decode_datagram_untrusted",
    "encode_request",
    "encode_response",
    "encode_response_fitting",
    "hello_message",
    "parse_dial_back_reply",
    "parse_find_value_reply",
    "parse_get_peers_reply",
    "parse_get_record_reply",
    "parse_hello_reply",
    "parse_node_list",
    "parse_observe_reply",
    "parse_peer_relays",
    "parse_ping_reply",
    "parse_relay",
    "parse_request_args",
    "parse_status_reply",
    "peek_response_id",
    "verify_hello",
]

REQUEST = 0x00
RESPONSE = 0x01
MSG_ID_SIZE = 20
#: IPv6 minimum MTU: a datagram never needs fragmenting.
MAX_DATAGRAM = 1280
#: The one exception to MAX_DATAGRAM: the response to a ``find_value`` we sent.
#: A stock node answers with the whole value it holds, and ``rpcudp`` lets a
#: ``store`` request body reach 8,192 bytes, so a value put by a stock ``set``
#: (at most 8,137 bytes) comes back in a datagram of at most 8,168 bytes.
MAX_VALUE_REPLY = 8192
#: Contacts in one reply at most (k).
MAX_NODES = 20
MAX_HOST_LEN = 64
NONCE_SIZE = 32
#: Domain tag of the hello signature: tag || requester nonce || requester id.
HELLO_TAG = b"p2psocial/dht-hello/v1\x00"

_HEADER = 1 + MSG_ID_SIZE
_MAX_DEPTH = 4


def _body_limits(max_size: int) -> Limits:
    return Limits(
        max_size=max_size - _HEADER,
        max_depth=_MAX_DEPTH,
        max_container_len=64,
        max_str_len=max_size,
        max_bin_len=max_size,
    )


_BODY_LIMITS = _body_limits(MAX_DATAGRAM)
_VALUE_REPLY_LIMITS = _body_limits(MAX_VALUE_REPLY)

#: Methods and their argument count (the requester's node id comes first).
METHODS: dict[str, int] = {
    "ping": 1,  # [sender_id]
    "store": 3,  # [sender_id, key, value]
    "find_node": 2,  # [sender_id, key]
    "find_value": 2,  # [sender_id, key]
    "hello": 2,  # [sender_id, nonce]
    "put_record": 4,  # [sender_id, key, kind, record]
    "get_record": 3,  # [sender_id, key, kind, nonce?]
    "announce": 4,  # [sender_id, key, tcp_port, token, relay?]
    "get_peers": 2,  # [sender_id, key, nonce?]
    "observe": 1,  # [sender_id] -> {"addr": [host, port]}: where the request came from
    "dial_back": 3,  # [sender_id, tcp_port, token] -> {"token"} | {"dialled"} | {"busy"}
}
#: Methods that take an optional trailing nonce: the reply then carries a
#: key proof (as ``hello`` would), saving a round trip to a new contact.
PROVING_METHODS = frozenset({"get_record", "get_peers"})


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request: ``args`` still need :func:`parse_request_args`."""

    msg_id: bytes
    method: str
    args: list[Any]


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded response; ``value`` is checked by the matching ``parse_*_reply``."""

    msg_id: bytes
    value: Any


def _depth_ok(value: Any) -> bool:
    """Whether containers nest at most _MAX_DEPTH deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        items = v if type(v) is list else v.values() if type(v) is dict else None
        if items is None:
            continue
        if depth >= _MAX_DEPTH:
            return False
        for x in items:
            if type(x) is list or type(x) is dict:
                stack.append((x, depth + 1))
    return True


def peek_response_id(data: bytes) -> bytes | None:
    """The msg id of a datagram framed as a response, or None.

    Reads only the 21-byte header, so it works on a datagram of any size; the
    node uses it to choose the size cap (:data:`MAX_VALUE_REPLY` for the
    answer to its own ``find_value``) before it decodes anything. Never raises.
    """
    if len(data) <= _HEADER or data[0] != RESPONSE:
        return None
    return bytes(data[1:_HEADER])


def decode_datagram_untrusted(data: bytes, max_response: int = MAX_DATAGRAM) -> Request | Response:
    """Decode one received datagram.

    Args:
        data: the exact bytes received.
        max_response: the size cap for a *response*, from MAX_DATAGRAM up to
            MAX_VALUE_REPLY. Only the caller knows whether the datagram
            answers one of its own ``find_value`` requests (see
            :func:`peek_response_id`); requests are always held to
            MAX_DATAGRAM.

    Returns:
        A :class:`Request` (method known or not; the caller ignores unknown
        methods as rpcudp does) or a :class:`Response`.

    Raises:
        DecodeError: reasons ``too_large``, ``truncated``, ``bad_type``,
            ``malformed``, ``too_deep``, ``bad_request``. Nothing else.
        LocalUsageError: ``max_response`` is out of its range (a caller bug).
    """
    if not MAX_DATAGRAM <= max_response <= MAX_VALUE_REPLY:
        raise LocalUsageError(f"max_response must be {MAX_DATAGRAM}..{MAX_VALUE_REPLY}")
    if type(data) is not bytes:
        data = bytes(data)
    cap = max_response if data[:1] == bytes([RESPONSE]) else MAX_DATAGRAM
    if len(data) > cap:
        raise DecodeError(f"datagram of {len(data)} bytes exceeds {cap}", reason="too_large")
    if len(data) <= _HEADER:
        raise DecodeError("datagram shorter than its header", reason="truncated")
    kind = data[0]
    if kind not in (REQUEST, RESPONSE):
        raise DecodeError(f"unknown datagram type {kind:#x}", reason="bad_type")
    msg_id = data[1:_HEADER]
    body = unpack_limited(
        data[_HEADER:], _BODY_LIMITS if len(data) <= MAX_DATAGRAM else _VALUE_REPLY_LIMITS
    )
    if not _depth_ok(body):
        raise DecodeError("datagram nests too deep", reason="too_deep")
    if kind == RESPONSE:
        return Response(msg_id, body)
    if (
        type(body) is not list
        or len(body) != 2
        or type(body[0]) is not str
        or type(body[1]) is not list
        or not 0 < len(body[0]) <= 32
    ):
        raise DecodeError("request is not [method, [args]]", reason="bad_request")
    return Request(msg_id, body[0], body[1])


def _pack(kind: int, msg_id: bytes, body: Any) -> bytes:
    if len(msg_id) != MSG_ID_SIZE:
        raise LocalUsageError("a message id is 20 bytes")
    try:
        packed: bytes = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalUsageError(f"cannot encode datagram: {exc}") from None
    out = bytes([kind]) + msg_id + packed
    if len(out) > MAX_DATAGRAM:
        raise LocalUsageError(f"datagram of {len(out)} bytes exceeds {MAX_DATAGRAM}")
    return out


def encode_request(msg_id: bytes, method: str, args: list[Any]) -> bytes:
    """Frame a request. Raises LocalUsageError if it would exceed 1,280 bytes."""
    return _pack(REQUEST, msg_id, [method, args])


def encode_response(msg_id: bytes, value: Any) -> bytes:
    """Frame a response. Raises LocalUsageError if it would exceed 1,280 bytes."""
    return _pack(RESPONSE, msg_id, value)


def encode_response_fitting(
    msg_id: bytes, build: Callable[[list[list[Any]]], Any], nodes: list[Contact]
) -> bytes:
    """Frame ``build(node triples)``, dropping the farthest contacts until it fits."""
    triples: list[list[Any]] = [[c.node_id, c.host, c.port] for c in nodes[:MAX_NODES]]
    while True:
        try:
            return encode_response(msg_id, build(triples))
        except LocalUsageError:
            if not triples:
                raise
            triples.pop()


# -- argument shapes -------------------------------------------------------------


def _bad(msg: str) -> DecodeError:
    return DecodeError(msg, reason="bad_args")


def _id(v: Any, what: str) -> bytes:
    if type(v) is not bytes or len(v) != 20:
        raise _bad(f"{what} must be 20 bytes")
    return v


def parse_request_args(method: str, args: list[Any]) -> tuple[Any, ...]:
    """Check a known method's arguments and return them as a tuple.

    ``args[0]`` is always the requester's 20-byte node id. The rest:
    ``store`` (key: 20 bytes, value: any scalar), ``find_node``/``find_value``
    (key), ``get_peers`` (key, nonce?), ``hello`` (nonce: 32 bytes),
    ``put_record`` (key, kind: str, record: bytes), ``get_record`` (key,
    kind, nonce?), ``announce`` (key, tcp_port: 1..65535, token: bytes,
    relay?: ``[relay_id, host, port]``, spec/sync.md §11.6),
    ``dial_back`` (tcp_port: 1..65535, token: bytes, empty on the first ask).
    For ``get_record`` and ``get_peers`` the returned tuple always ends with
    the nonce, or None when it was not sent; for ``announce`` with the relay
    as a (relay_id, host, port) tuple, or None.

    Raises:
        DecodeError: unknown method (``unknown_method``) or wrong arguments
            (``bad_args``).
    """
    n = METHODS.get(method)
    if n is None:
        raise DecodeError(f"unknown method {method!r}", reason="unknown_method")
    nonce = None
    if method in PROVING_METHODS and len(args) == n + 1:
        nonce = args[n]
        if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
            raise _bad("proof nonce must be 32 bytes")
        args = args[:n]
    relay = None
    if method == "announce" and len(args) == n + 1:
        relay = parse_relay(args[n])
        args = args[:n]
    if len(args) != n:
        raise _bad(f"{method} takes {n} arguments, got {len(args)}")
    sender = _id(args[0], "sender id")
    if method in ("ping", "observe"):
        return (sender,)
    key = _id(args[1], "key") if method not in ("hello", "dial_back") else None
    if method == "store":
        return (sender, key, args[2])
    if method in ("find_node", "find_value"):
        return (sender, key)
    if method == "get_peers":
        return (sender, key, nonce)
    if method == "hello":
        if type(args[1]) is not bytes or len(args[1]) != NONCE_SIZE:
            raise _bad("hello nonce must be 32 bytes")
        return (sender, args[1])
    if method in ("put_record", "get_record"):
        if type(args[2]) is not str or len(args[2]) > 16:
            raise _bad("record kind must be a short str")
        if method == "get_record":
            return (sender, key, args[2], nonce)
        if type(args[3]) is not bytes:
            raise _bad("record must be bytes")
        return (sender, key, args[2], args[3])
    if method == "dial_back":
        if type(args[1]) is not int or not 0 < args[1] < 65536:
            raise _bad("dial_back port must be 1..65535")
        if type(args[2]) is not bytes or len(args[2]) > 64:
            raise _bad("dial_back token must be bytes")
        return (sender, args[1], args[2])
    # announce
    port, token = args[2], args[3]
    if type(port) is not int or not 0 < port < 65536:
        raise _bad("announce port must be 1..65535")
    if type(token) is not bytes or len(token) > 64:
        raise _bad("announce token must be bytes")
    return (sender, key, port, token, relay)


def parse_relay(value: Any) -> tuple[bytes, str, int]:
    """An announcement's relay ``[relay_id, host, port]`` (spec/sync.md §11.6).

    Raises:
        DecodeError: ``bad_args`` unless it is a 20-byte id, an IP literal
            and a port 1..65535.
    """
    if type(value) is not list or len(value) != 3:
        raise _bad("relay must be [id, host, port]")
    rid, host, port = value
    if type(rid) is not bytes or len(rid) != 20 or not _ip_literal(host):
        raise _bad("relay must be [id, host, port]")
    if type(port) is not int or not 0 < port < 65536:
        raise _bad("relay port must be 1..65535")
    return rid, host, port


# -- reply shapes ----------------------------------------------------------------


def _ip_literal(host: Any) -> bool:
    """Whether ``host`` is an IP address in its canonical text form that can be
    sent to (not unspecified, not multicast). A host name is never accepted:
    resolving a name that a peer chose would send DNS queries on its behalf."""
    if type(host) is not str or not 0 < len(host) <= MAX_HOST_LEN:
        return False
    return _ip_literal_text(host)


@functools.lru_cache(maxsize=8192)
def _ip_literal_text(host: str) -> bool:
    # Cached: every node list carries up to 20 hosts, mostly ones seen before,
    # and ipaddress parsing was a fifth of a 200-node bootstrap's CPU.
    if "%" in host:  # a zone index means nothing on another host
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return False  # an IPv4 peer is named by its IPv4 address
    return str(ip) == host and not ip.is_unspecified and not ip.is_multicast


def parse_node_list(value: Any) -> list[Contact]:
    """A list of ``[id, host, port]`` triples, as ``find_node`` returns.

    A malformed triple (an id that is not 20 bytes, a host that is not an IP
    literal, a port out of range) is skipped, as stock nodes do; the rest of
    the list is used.

    Raises:
        DecodeError: ``bad_reply``, when the value is not a list of at most 20.
    """
    if type(value) is not list or len(value) > MAX_NODES:
        raise DecodeError("node list must be a list of at most 20", reason="bad_reply")
    out = []
    for item in value:
        if type(item) is not list or len(item) != 3:
            continue
        nid, host, port = item
        if (
            type(nid) is bytes
            and len(nid) == 20
            and _ip_literal(host)
            and type(port) is int
            and 0 < port < 65536
        ):
            out.append(Contact(nid, host, port))
    return out


def parse_ping_reply(value: Any) -> bytes:
    """The responder's node id. Raises DecodeError ``bad_reply``."""
    if type(value) is not bytes or len(value) != 20:
        raise DecodeError("ping reply must be a 20-byte id", reason="bad_reply")
    return value


def parse_find_value_reply(value: Any) -> tuple[bool, Any, list[Contact]]:
    """``(True, value, [])`` for ``{"value": v}``, else ``(False, None, nodes)``."""
    if type(value) is dict:
        if set(value) != {"value"}:
            raise DecodeError("find_value reply map must be {value}", reason="bad_reply")
        return True, value["value"], []
    return False, None, parse_node_list(value)


def parse_hello_reply(value: Any) -> tuple[bytes, bytes]:
    """``(public_key, signature)`` from ``[public_key, signature]``."""
    if (
        type(value) is not list
        or len(value) != 2
        or type(value[0]) is not bytes
        or len(value[0]) != 32
        or type(value[1]) is not bytes
        or len(value[1]) != 64
    ):
        raise DecodeError(
            "hello reply must be [32-byte key, 64-byte signature]", reason="bad_reply"
        )
    return value[0], value[1]


def _reply_map(value: Any, allowed: set[str]) -> dict[str, Any]:
    if type(value) is not dict or not set(value) <= allowed:
        raise DecodeError(f"reply must be a map of {sorted(allowed)}", reason="bad_reply")
    return value


def _proof(m: dict[str, Any]) -> tuple[bytes, bytes] | None:
    proof = m.get("proof")
    return None if proof is None else parse_hello_reply(proof)


def parse_get_record_reply(
    value: Any,
) -> tuple[bytes | None, list[Contact], tuple[bytes, bytes] | None]:
    """``{"nodes": [...], "record"?: bytes, "proof"?: [key, sig]}`` →
    (record or None, contacts, proof or None)."""
    m = _reply_map(value, {"nodes", "record", "proof"})
    rec = m.get("record")
    if rec is not None and type(rec) is not bytes:
        raise DecodeError("record must be bytes", reason="bad_reply")
    return rec, parse_node_list(m.get("nodes", [])), _proof(m)


def parse_get_peers_reply(
    value: Any,
) -> tuple[list[tuple[bytes, str, int]], bytes, list[Contact], tuple[bytes, bytes] | None]:
    """``{"nodes", "peers", "token", "proof"?}`` → (peers, token, contacts, proof or None)."""
    m = _reply_map(value, {"nodes", "peers", "token", "proof"})
    token = m.get("token", b"")
    if type(token) is not bytes or len(token) > 64:
        raise DecodeError("token must be bytes", reason="bad_reply")
    peers = [(c.node_id, c.host, c.port) for c in parse_node_list(m.get("peers", []))]
    return peers, token, parse_node_list(m.get("nodes", [])), _proof(m)


#: A swarm member reached through a relay: (its host, its port, (relay id, host, port)).
RelayedPeer = tuple[str, int, tuple[bytes, str, int]]


def parse_peer_relays(value: Any) -> dict[bytes, RelayedPeer]:
    """The swarm members a ``get_peers`` reply lists with a relay.

    Members are ``[id, host, port]`` or ``[id, host, port, relay_id,
    relay_host, relay_port]`` (spec/sync.md §11.6); this returns member id
    -> (host, port, (relay id, host, port)) for the well-formed six-element
    items, and skips the rest, as :func:`parse_node_list` skips bad triples.
    Call it after :func:`parse_get_peers_reply` accepted the reply.
    """
    out: dict[bytes, RelayedPeer] = {}
    peers = value.get("peers", []) if type(value) is dict else []
    if type(peers) is not list:
        return out
    for item in peers[:MAX_NODES]:
        if type(item) is not list or len(item) != 6:
            continue
        member = parse_node_list([item[:3]])
        if not member:
            continue
        try:
            out[member[0].node_id] = (member[0].host, member[0].port, parse_relay(item[3:]))
        except DecodeError:
            continue
    return out


def parse_observe_reply(value: Any) -> tuple[str, int]:
    """``{"addr": [host, port]}`` → (host, port): the address our request came from.

    The host must be an IP literal and the port 1..65535 (a peer can still
    lie: what is believed is decided by the caller, from several peers).

    Raises:
        DecodeError: ``bad_reply``.
    """
    m = _reply_map(value, {"addr"})
    addr = m.get("addr")
    if (
        type(addr) is not list
        or len(addr) != 2
        or not _ip_literal(addr[0])
        or type(addr[1]) is not int
        or not 0 < addr[1] < 65536
    ):
        raise DecodeError("observe reply must be {addr: [ip, port]}", reason="bad_reply")
    return addr[0], addr[1]


def parse_dial_back_reply(value: Any) -> tuple[str, Any]:
    """A ``dial_back`` reply (spec/dht.md 4.5) → (kind, value):

    * ``("token", bytes)``: no dial yet; ask again with this token;
    * ``("dialled", str)``: ``"ok"``, or why the dial failed (any short str);
    * ``("busy", True)``: the responder is at its limits and dialled nothing.

    Raises:
        DecodeError: ``bad_reply`` (not exactly one of these keys, or a bad value).
    """
    m = _reply_map(value, {"token", "dialled", "busy"})
    if len(m) != 1:
        raise DecodeError("dial_back reply must have exactly one key", reason="bad_reply")
    [(kind, v)] = m.items()
    if kind == "token" and type(v) is bytes and 0 < len(v) <= 64:
        return kind, v
    if kind == "dialled" and type(v) is str and 0 < len(v) <= 32:
        return kind, v
    if kind == "busy" and v is True:
        return kind, v
    raise DecodeError(f"dial_back reply has a bad {kind!r}", reason="bad_reply")


def parse_status_reply(value: Any) -> tuple[bool, str]:
    """``{"ok": True}`` or ``{"rejected": reason}`` → (ok, reason)."""
    m = _reply_map(value, {"ok", "rejected"})
    if m.get("ok") is True:
        return True, ""
    reason = m.get("rejected")
    if type(reason) is not str or len(reason) > 64:
        raise DecodeError(
            "status reply must be {ok: true} or {rejected: reason}", reason="bad_reply"
        )
    return False, reason


def hello_message(nonce: bytes, requester_id: bytes) -> bytes:
    """What a hello signature covers: HELLO_TAG ‖ nonce ‖ requester id."""
    return HELLO_TAG + nonce + requester_id


def verify_hello(
    expected_id: bytes, nonce: bytes, requester_id: bytes, public_key: bytes, signature: bytes
) -> None:
    """Check a hello reply: the key hashes to ``expected_id`` and signed our nonce.

    Raises:
        InvalidSignature: a key-rule reason (``invalid_key``, ...) first, then
            ``wrong_id`` or a strict-verification reason.
    """
    check_public_key(public_key)
    if node_id_from_public_key(public_key) != expected_id:
        raise InvalidSignature("node key does not hash to the node id", reason="wrong_id")
    verify_strict(public_key, signature, hello_message(nonce, requester_id))
