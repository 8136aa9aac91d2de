"""The request handler: answers the RPCs of spec/dht.md from the stores
and the routing table.

It only decides and encodes; the engine receives, rate-limits and sends. Bad
arguments raise ProtocolError, which the engine drops and counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from ...protocol.dht import Contact, RecordRejected
from ...protocol.dht.wire import (
    Request,
    encode_response,
    encode_response_fitting,
    hello_message,
    parse_request_args,
)
from ...protocol.errors import LocalUsageError
from ...protocol.identity import SigningKey
from .common import Addr, Stores
from .contacts import Contacts
from .dialback import DialBackResponder

__all__ = ["RequestHandler"]

_PLAIN_METHODS = frozenset({"ping", "store", "find_node", "find_value"})


class RequestHandler:
    """Answers requests (the engine's :class:`~.engine.Handler`).

    Args:
        key: the node key, to sign hellos and key proofs.
        stores: what we hold for the network.
        contacts: the routing table (for closest nodes), told of every sender.
        now_ms: wall-clock milliseconds, for record timestamps.
        dial_back: answers ``dial_back`` (None: such requests go unanswered).
    """

    def __init__(
        self,
        key: SigningKey,
        stores: Stores,
        contacts: Contacts,
        now_ms: Callable[[], int],
        dial_back: DialBackResponder | None = None,
    ) -> None:
        self._key = key
        self._dial_back = dial_back
        self._stores = stores
        self._contacts = contacts
        self._now_ms = now_ms
        self._stats: Counter[str] = Counter()

    def handle(self, req: Request, addr: Addr) -> bytes | None:
        """Answer one request; raises ProtocolError (dropped and counted) on bad args."""
        args = parse_request_args(req.method, req.args)
        method = req.method
        self._stats[f"rpc_in_{method}"] += 1
        sender: bytes = args[0]
        now = trio.current_time()
        contacts = self._contacts
        stores = self._stores
        if contacts.graylisted(sender, addr[0], now):
            self._stats["requests_dropped_graylisted"] += 1
            return None
        if sender != contacts.node_id:
            contacts.saw(Contact(sender, addr[0], addr[1]), now, prove=False)
        if method not in _PLAIN_METHODS:
            contacts.speaks_ours(addr)
        mid = req.msg_id
        if method == "ping":
            return encode_response(mid, contacts.node_id)
        if method == "store":
            try:
                stores.values.put(args[1], args[2], now, source=addr[0])
            except RecordRejected as exc:
                self._stats[f"store_rejected_{exc.reason}"] += 1
                return encode_response(mid, False)
            return encode_response(mid, True)
        if method == "find_node":
            nodes = contacts.table.closest(args[1], exclude=(sender,))
            return encode_response_fitting(mid, lambda t: t, nodes)
        if method == "find_value":
            value = stores.values.get(args[1], now)
            if value is not None:
                try:
                    return encode_response(mid, {"value": value})
                except LocalUsageError:
                    pass  # too big to send with its envelope: answer with nodes
            nodes = contacts.table.closest(args[1], exclude=(sender,))
            return encode_response_fitting(mid, lambda t: t, nodes)
        if method == "observe":
            # Where this request came from, as we saw it (spec/dht.md, observed addresses).
            return encode_response(mid, {"addr": [addr[0], addr[1]]})
        if method == "dial_back":
            # Dial our peer-link port back (spec/dht.md 4.5); the answer may follow later.
            if self._dial_back is None:
                return None
            return self._dial_back.request(mid, addr, sender, args[1], args[2])
        if method == "hello":
            sig = self._key.sign(hello_message(args[1], sender))
            return encode_response(mid, [self._key.public_key, sig])
        if method == "put_record":
            _, key, kind, data = args
            try:
                stores.records.put(kind, key, data, now=now, now_ms=self._now_ms(), source=addr[0])
            except RecordRejected as exc:
                self._stats[f"record_rejected_{exc.reason}"] += 1
                return encode_response(mid, {"rejected": exc.reason})
            self._stats["records_stored"] += 1
            return encode_response(mid, {"ok": True})
        if method == "get_record":
            _, key, kind, nonce = args
            reply: dict[str, Any] = self._proof_for(sender, nonce)
            rec = stores.records.get(kind, key, now)
            if rec is not None:
                reply["record"] = rec.data
            nodes = contacts.table.closest(key, exclude=(sender,), accept=contacts.useful_filter())
            return encode_response_fitting(mid, lambda t: {**reply, "nodes": t}, nodes)
        if method == "announce":
            _, key, tcp_port, token, relay = args
            try:
                stores.tokens.check(token, addr[0], addr[1])
                stores.swarms.announce(key, sender, addr[0], tcp_port, now, relay)
            except RecordRejected as exc:
                self._stats[f"announce_rejected_{exc.reason}"] += 1
                return encode_response(mid, {"rejected": exc.reason})
            return encode_response(mid, {"ok": True})
        # get_peers
        _, key, nonce = args
        reply = self._proof_for(sender, nonce)
        peers: list[list[Any]] = []
        for n, h, p in stores.swarms.peers(key, now, limit=12):
            relay = stores.swarms.relay_of(key, n, h)
            # A member behind a relay is listed with it (spec/sync.md §11.6).
            peers.append([n, h, p] if relay is None else [n, h, p, *relay])
        reply["token"] = stores.tokens.issue(addr[0], addr[1])
        nodes = contacts.table.closest(key, exclude=(sender,), accept=contacts.useful_filter())
        while True:
            reply["peers"] = peers
            try:
                return encode_response_fitting(mid, lambda t: {**reply, "nodes": t}, nodes)
            except LocalUsageError:
                if not peers:
                    raise
                peers = peers[:-1]  # six-element members can crowd a datagram

    def _proof_for(self, requester: bytes, nonce: bytes | None) -> dict[str, Any]:
        """The reply's ``proof`` entry when the request carried a nonce."""
        if nonce is None:
            return {}
        self._stats["proofs_given"] += 1
        sig = self._key.sign(hello_message(nonce, requester))
        return {"proof": [self._key.public_key, sig]}

    def statistics(self) -> dict[str, int]:
        """Counters: requests in by method, stores and announces rejected by reason."""
        return dict(self._stats)
