"""The DHT service: the sans-IO Kademlia of ``protocol.dht`` driven over one UDP socket.

Shape (STYLE.md §10-12):

* :meth:`DHTNode.run` owns a nursery. It binds the socket, then runs a receive
  loop, request workers, hello and ping workers and a maintenance loop.
* The receive loop never raises on bad input: it decodes each datagram with
  ``decode_datagram_untrusted``, drops and counts what is malformed, matches
  responses to pending requests by message id *and* source address (the
  answer to our own find_value may be up to 8 KiB, every other datagram
  1,280 bytes; an answer over its limit ends its request at once), applies a
  per-address rate limit to requests, and hands them to the workers with
  ``send_nowait`` on a bounded channel (counting drops when it is full).
* Outgoing RPCs retry with cancel scopes (``move_on_after``) and a growing
  timeout; lookups are the pure :class:`~p2psocial.protocol.dht.Lookup` run
  with α requests in flight.
* Contacts that speak only the ``kademlia`` package's four RPCs are fine for
  node lookups and plain values. Our record RPCs go only to contacts that
  proved their node key with ``hello`` (node id = SHA-256(key)[:20]).

Tests swap the socket for an in-memory lossy network (``dht_memnet``) through
the ``socket_factory`` argument; everything else is the same code.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from ..errors import NodeError, cannot_listen
from ..protocol.dht import (
    HEAD,
    PROFILE,
    Contact,
    Finished,
    Lookup,
    Query,
    RecordRejected,
    RecordStore,
    RoutingTable,
    SwarmStore,
    TokenIssuer,
    ValueStore,
    encode_profile_record,
    head_key,
    profile_key,
    swarm_key,
    validate_record,
)
from ..protocol.dht.records import MAX_PROFILE_PAYLOAD
from ..protocol.dht.routing import AddResult
from ..protocol.dht.wire import (
    MAX_DATAGRAM,
    MAX_VALUE_REPLY,
    NONCE_SIZE,
    Request,
    Response,
    decode_datagram_untrusted,
    encode_request,
    encode_response,
    encode_response_fitting,
    hello_message,
    parse_find_value_reply,
    parse_get_peers_reply,
    parse_get_record_reply,
    parse_hello_reply,
    parse_node_list,
    parse_ping_reply,
    parse_request_args,
    parse_status_reply,
    peek_response_id,
    verify_hello,
)
from ..protocol.encoding import Limits, decode_untrusted
from ..protocol.entries import decode_entry_untrusted
from ..protocol.errors import DecodeError, LocalUsageError, ProtocolError
from ..protocol.identity import SigningKey, node_id_from_public_key
from ..protocol.ratelimit import RateTable

__all__ = [
    "DHTConfig",
    "DHTError",
    "DHTNode",
    "DatagramSocket",
    "open_udp_socket",
    "plain_key_digest",
]

log = logging.getLogger(__name__)

Addr = tuple[str, int]


class DHTError(NodeError):
    """A DHT operation could not complete (timeout, no contacts, not running)."""

    reason = "dht"


class DatagramSocket(Protocol):
    """What :class:`DHTNode` needs from a UDP socket (real or simulated)."""

    async def sendto(self, data: bytes, addr: Addr) -> None: ...

    async def recvfrom(self) -> tuple[bytes, Addr]: ...

    def getsockname(self) -> Addr: ...

    def close(self) -> None: ...


class _UDPSocket:
    """A trio UDP socket behind the :class:`DatagramSocket` interface."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        self._v6 = sock.family == trio.socket.AF_INET6

    async def sendto(self, data: bytes, addr: Addr) -> None:
        host = addr[0]
        if self._v6 and ":" not in host:
            # A dual-stack socket reaches IPv4 peers at their mapped address.
            host = f"::ffff:{host}"
        await self._sock.sendto(data, (host, addr[1]))

    async def recvfrom(self) -> tuple[bytes, Addr]:
        # One byte more than the largest datagram accepted (the answer to our
        # own find_value), so an oversized one is seen as such (and counted)
        # rather than silently truncated into a valid one.
        data, addr = await self._sock.recvfrom(MAX_VALUE_REPLY + 1)
        return data, (_unmapped(addr[0]), addr[1])

    def getsockname(self) -> Addr:
        name = self._sock.getsockname()
        return (name[0], name[1])

    def close(self) -> None:
        self._sock.close()


def _unmapped(host: str) -> str:
    """An IPv4 peer seen through a dual-stack socket as ::ffff:a.b.c.d is
    known, stored and handed out by its plain IPv4 address (spec/dht.md 3)."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    if host.lower().startswith("::ffff:"):
        with contextlib.suppress(ValueError):
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
            if mapped is not None:
                return str(mapped)
    return host


async def open_udp_socket(host: str, port: int) -> DatagramSocket:
    """Bind a UDP socket on ``host``:``port`` (0 = ephemeral)."""
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    try:
        await sock.bind((host, port))
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise cannot_listen("UDP port for the DHT", shown, exc) from None
    except BaseException:
        sock.close()
        raise
    return _UDPSocket(sock)


def plain_key_digest(key: Any) -> bytes:
    """The 160-bit key of a plain value, exactly as the ``kademlia`` package
    computes it: SHA-1 of the bytes, or of ``str(key)`` in UTF-8."""
    if not isinstance(key, bytes):
        key = str(key).encode("utf8")
    return hashlib.sha1(key).digest()


@dataclass(slots=True)
class DHTConfig:
    """Tunables of a :class:`DHTNode`; the defaults suit a real network.

    Times are seconds of the trio clock.
    """

    k: int = 20
    alpha: int = 3
    #: First attempt's timeout; each retry waits ``rpc_backoff`` times longer.
    #: Six attempts with a gentle backoff: 5 s before a silent contact is
    #: declared dead, and at 10 % loss each way (19 % per round trip) a live
    #: one is lost once in 20,000 requests.
    rpc_timeout: float = 0.5
    rpc_attempts: int = 6
    rpc_backoff: float = 1.2
    #: Attempts after which a lookup treats a silent contact as failed.
    lookup_patience: int = 2
    #: A record or peers get walks until this many closest nodes answered
    #: (puts go to the k closest, so these hold the latest version), keeping
    #: the highest seq seen on the way.
    get_k: int = 5
    request_queue: int = 256
    request_workers: int = 1
    hello_queue: int = 256
    hello_workers: int = 2
    ping_queue: int = 64
    #: Per-address request rate limit (token bucket).
    rate_per_s: float = 200.0
    rate_burst: float = 400.0
    rate_table_size: int = 4096
    maintenance_interval: float = 60.0
    #: How long the k closest nodes found for one of our own record slots are
    #: reused for the next put of that slot (0 disables it).
    closest_cache_ttl: float = 300.0
    refresh_interval: float = 3600.0
    republish_interval: float = 3600.0
    announce_interval: float = 900.0
    #: An announce that no node accepted (say, made before the node joined)
    #: is retried after this many seconds, doubling up to announce_interval.
    announce_retry: float = 1.0
    token_rotation: float = 300.0
    contact_save_interval: float = 300.0
    #: A contact that failed hello is not asked again for this long.
    not_ours_ttl: float = 600.0
    max_proven: int = 8192


_PLAIN_METHODS = frozenset({"ping", "store", "find_node", "find_value"})


class _Pending:
    __slots__ = ("addr", "event", "max_reply", "oversized", "value")

    def __init__(self, addr: Addr, max_reply: int = MAX_DATAGRAM) -> None:
        self.addr = addr
        self.event = trio.Event()
        self.value: Any = None
        #: The largest response datagram accepted for this request.
        self.max_reply = max_reply
        #: Set when the contact answered with a datagram over max_reply.
        self.oversized = False


class _Wake:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = trio.Event()


SocketFactory = Callable[[str, int], Awaitable[DatagramSocket]]


class DHTNode:
    """A Kademlia node that speaks the ``kademlia`` package's wire protocol.

    Args:
        key: the node key; node id = SHA-256(public key)[:20].
        host: address to bind (an IP address).
        port: UDP port; 0 picks an ephemeral one.
        contact_store: None, or an object with ``async save_dht_contacts(list of
            (node_id, host, port))`` and ``async load_dht_contacts()``; the
            routing table is reloaded from it on start and saved periodically.
        config: tunables.
        socket_factory: ``async (host, port) -> DatagramSocket``; tests inject
            an in-memory network here.
        wall_clock: seconds since the epoch (record timestamps only).
    """

    def __init__(
        self,
        key: SigningKey,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        contact_store: Any = None,
        config: DHTConfig | None = None,
        socket_factory: SocketFactory | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.node_id = node_id_from_public_key(key.public_key)
        self.host = host
        self.port = port
        self.config = config or DHTConfig()
        self.contact_store = contact_store
        self._socket_factory = socket_factory or open_udp_socket
        self._wall = wall_clock
        self.table = RoutingTable(self.node_id, k=self.config.k)
        self.records = RecordStore()
        self.swarms = SwarmStore()
        self.values = ValueStore()
        self.tokens = TokenIssuer(os.urandom(32), 0.0, rotation_s=self.config.token_rotation)
        self._sock: DatagramSocket | None = None
        self._pending: dict[bytes, _Pending] = {}
        self._proven: OrderedDict[bytes, Addr] = OrderedDict()
        self._not_ours: dict[Addr, float] = {}
        self._rate = RateTable(
            self.config.rate_burst, self.config.rate_per_s, max_keys=self.config.rate_table_size
        )
        self._stats: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._req_send, self._req_recv = trio.open_memory_channel[tuple[Request, Addr]](
            self.config.request_queue
        )
        self._hello_send, self._hello_recv = trio.open_memory_channel[Contact](
            self.config.hello_queue
        )
        self._ping_send, self._ping_recv = trio.open_memory_channel[Contact](self.config.ping_queue)
        self._pinging: set[bytes] = set()
        self._verified: OrderedDict[bytes, int] = OrderedDict()
        self._hello_inflight: dict[bytes, trio.Event] = {}
        self._closest_cache: dict[tuple[str, bytes], tuple[float, list[Contact]]] = {}
        self._hellos_running = 0
        self._own_records: dict[tuple[str, bytes], bytes] = {}
        self._own_announces: dict[bytes, int] = {}
        # Own announces that no node accepted: author -> (retry at, backoff).
        self._unplaced: dict[bytes, tuple[float, float]] = {}
        # Set when the node (re)joins: bootstrap finished, or the table went
        # from empty to non-empty. Own announces and records made before that
        # reached no one, or not the nodes closest to their keys.
        self._joined = trio.Event()
        self._own_values: dict[bytes, Any] = {}
        self._addr: Addr | None = None
        self._nursery: trio.Nursery | None = None

    # -- lifecycle -------------------------------------------------------------

    @property
    def address(self) -> Addr:
        """The bound (host, port). Raises DHTError before :meth:`run` started."""
        if self._addr is None:
            raise DHTError("the DHT node is not running", reason="not_running")
        return self._addr

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket and serve until cancelled.

        Calls ``task_status.started((host, port))`` once the socket is bound
        and the saved contacts (if any) are loaded.
        """
        sock = await self._socket_factory(self.host, self.port)
        self._sock = sock
        self._addr = sock.getsockname()
        now = trio.current_time()
        self.tokens = TokenIssuer(os.urandom(32), now, rotation_s=self.config.token_rotation)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._receive_loop, sock)
                for _ in range(self.config.request_workers):
                    nursery.start_soon(self._request_worker)
                for _ in range(self.config.hello_workers):
                    nursery.start_soon(self._hello_worker)
                nursery.start_soon(self._ping_worker)
                if self.contact_store is not None:
                    await self._load_contacts()
                nursery.start_soon(self._maintenance_loop)
                nursery.start_soon(self._placement_loop)
                task_status.started(self._addr)
                await trio.sleep_forever()
        finally:
            if self.contact_store is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._save_contacts()
            sock.close()
            self._sock = None
            self._addr = None
            self._nursery = None

    async def _load_contacts(self) -> None:
        try:
            saved = await self.contact_store.load_dht_contacts()
        except Exception as exc:  # the store is another team's; a failure must not stop the DHT
            log.warning("could not load DHT contacts: %s", exc)
            return
        now = trio.current_time()
        for item in saved or []:
            try:
                nid, host, port = item
            except (TypeError, ValueError):
                continue
            if (
                type(nid) is bytes
                and len(nid) == 20
                and isinstance(host, str)
                and isinstance(port, int)
            ):
                self.table.add(Contact(nid, host, port), now)
        self._stats["contacts_loaded"] += len(saved or [])

    async def _save_contacts(self) -> None:
        try:
            await self.contact_store.save_dht_contacts(self.routing_table_contacts())
        except Exception as exc:  # see _load_contacts
            log.warning("could not save DHT contacts: %s", exc)

    # -- receiving ---------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        self._dropped[reason] += 1

    async def _receive_loop(self, sock: DatagramSocket) -> None:
        while True:
            try:
                data, addr = await sock.recvfrom()
            except OSError as exc:
                # e.g. ICMP errors surfaced by the OS; never fatal for a UDP server.
                self._drop("socket_error")
                log.debug("recvfrom: %s", exc)
                continue
            self._stats["datagrams_in"] += 1
            cap = MAX_DATAGRAM
            if len(data) > MAX_DATAGRAM:
                mid = peek_response_id(data)
                pending = self._pending.get(mid) if mid is not None else None
                if mid is not None and pending is not None and pending.addr == addr:
                    if len(data) > pending.max_reply:
                        # The contact is alive and answered, only with more
                        # than we take: end that request now, instead of
                        # letting it time out and evict an honest node.
                        self._drop("too_large")
                        del self._pending[mid]
                        pending.oversized = True
                        pending.event.set()
                        continue
                    cap = pending.max_reply
            try:
                msg = decode_datagram_untrusted(data, cap)
            except DecodeError as exc:
                self._drop(exc.reason)
                continue
            if isinstance(msg, Response):
                pending = self._pending.get(msg.msg_id)
                if pending is None or pending.addr != addr:
                    self._drop("unexpected_response")
                    continue
                del self._pending[msg.msg_id]
                pending.value = msg.value
                pending.event.set()
                continue
            if not self._rate.take(addr, trio.current_time()):
                self._drop("rate_limited")
                continue
            try:
                self._req_send.send_nowait((msg, addr))
            except trio.WouldBlock:
                self._drop("queue_full")

    async def _request_worker(self) -> None:
        async for req, addr in self._req_recv:
            try:
                reply = self._handle(req, addr)
            except ProtocolError as exc:
                self._drop(exc.reason)
                continue
            except LocalUsageError:
                # Our answer would not fit in a datagram (cannot happen with
                # the limits of spec/dht.md, but a bad reply must not kill us).
                self._drop("reply_too_large")
                continue
            except Exception:
                # A bug in handling one datagram ends that datagram only: it
                # is logged with its traceback and counted, and the DHT serves on.
                self._stats["internal_errors"] += 1
                log.exception("bug in handling a DHT %s request from %s", req.method, addr)
                continue
            if reply is not None:
                await self._send(reply, addr)

    async def _send(self, data: bytes, addr: Addr) -> None:
        sock = self._sock
        if sock is None:
            raise DHTError("the DHT node is not running", reason="not_running")
        try:
            await sock.sendto(data, addr)
            self._stats["datagrams_out"] += 1
        except OSError as exc:
            self._stats["send_errors"] += 1
            log.debug("sendto %s: %s", addr, exc)

    # -- serving requests ----------------------------------------------------------

    def _useful(self, c: Contact) -> bool:
        """Whether to hand ``c`` out in record replies (not known to be stock)."""
        return (c.host, c.port) not in self._not_ours

    def _useful_filter(self) -> Callable[[Contact], bool] | None:
        # No filter at all in the common case of a network without stock nodes.
        return self._useful if self._not_ours else None

    def _handle(self, req: Request, addr: Addr) -> bytes | None:
        """Answer one request; raises ProtocolError (dropped and counted) on bad args."""
        args = parse_request_args(req.method, req.args)
        method = req.method
        self._stats[f"rpc_in_{method}"] += 1
        sender: bytes = args[0]
        now = trio.current_time()
        if sender != self.node_id:
            self._saw(Contact(sender, addr[0], addr[1]), now, prove=False)
        if method not in _PLAIN_METHODS and addr in self._not_ours:
            # It speaks our RPCs after all: an overloaded node of ours that
            # missed a hello was taken for a stock one.
            del self._not_ours[addr]
        mid = req.msg_id
        if method == "ping":
            return encode_response(mid, self.node_id)
        if method == "store":
            try:
                self.values.put(args[1], args[2], now, source=addr[0])
            except RecordRejected as exc:
                self._stats[f"store_rejected_{exc.reason}"] += 1
                return encode_response(mid, False)
            return encode_response(mid, True)
        if method == "find_node":
            nodes = self.table.closest(args[1], exclude=(sender,))
            return encode_response_fitting(mid, lambda t: t, nodes)
        if method == "find_value":
            value = self.values.get(args[1], now)
            if value is not None:
                try:
                    return encode_response(mid, {"value": value})
                except LocalUsageError:
                    pass  # too big to send with its envelope: answer with nodes
            nodes = self.table.closest(args[1], exclude=(sender,))
            return encode_response_fitting(mid, lambda t: t, nodes)
        if method == "hello":
            sig = self.key.sign(hello_message(args[1], sender))
            return encode_response(mid, [self.key.public_key, sig])
        if method == "put_record":
            _, key, kind, data = args
            try:
                self.records.put(kind, key, data, now=now, now_ms=self._now_ms(), source=addr[0])
            except RecordRejected as exc:
                self._stats[f"record_rejected_{exc.reason}"] += 1
                return encode_response(mid, {"rejected": exc.reason})
            self._stats["records_stored"] += 1
            return encode_response(mid, {"ok": True})
        if method == "get_record":
            _, key, kind, nonce = args
            reply: dict[str, Any] = self._proof_for(sender, nonce)
            rec = self.records.get(kind, key, now)
            if rec is not None:
                reply["record"] = rec.data
            nodes = self.table.closest(key, exclude=(sender,), accept=self._useful_filter())
            return encode_response_fitting(mid, lambda t: {**reply, "nodes": t}, nodes)
        if method == "announce":
            _, key, tcp_port, token = args
            try:
                self.tokens.check(token, addr[0], addr[1])
                self.swarms.announce(key, sender, addr[0], tcp_port, now)
            except RecordRejected as exc:
                self._stats[f"announce_rejected_{exc.reason}"] += 1
                return encode_response(mid, {"rejected": exc.reason})
            return encode_response(mid, {"ok": True})
        # get_peers
        _, key, nonce = args
        reply = self._proof_for(sender, nonce)
        reply["peers"] = [[n, h, p] for n, h, p in self.swarms.peers(key, now, limit=12)]
        reply["token"] = self.tokens.issue(addr[0], addr[1])
        nodes = self.table.closest(key, exclude=(sender,), accept=self._useful_filter())
        return encode_response_fitting(mid, lambda t: {**reply, "nodes": t}, nodes)

    def _proof_for(self, requester: bytes, nonce: bytes | None) -> dict[str, Any]:
        """The reply's ``proof`` entry when the request carried a nonce."""
        if nonce is None:
            return {}
        self._stats["proofs_given"] += 1
        sig = self.key.sign(hello_message(nonce, requester))
        return {"proof": [self.key.public_key, sig]}

    def _now_ms(self) -> int:
        return int(self._wall() * 1000)

    # -- contacts ------------------------------------------------------------------

    def _saw(self, contact: Contact, now: float, *, prove: bool = True) -> None:
        """A contact was seen alive: tell the table, and act on its answer.

        Contacts that answered us are proven (hello) in the background, so
        record lookups rarely wait for a hello. Contacts that merely sent us a
        request (``prove=False``) are proven lazily, if we ever ask them for
        records: every lookup reaches a few nodes that never saw the asker,
        and proving each asker eagerly would double the cost of a lookup.
        """
        was_empty = not len(self.table)
        outcome = self.table.add(contact, now)
        if was_empty and outcome.result is AddResult.ADDED:
            self._joined.set()
        if outcome.result is AddResult.ADDED and prove:
            if contact.node_id not in self._proven and contact.addr not in self._not_ours:
                try:
                    self._hello_send.send_nowait(contact)
                except trio.WouldBlock:
                    self._stats["hello_queue_full"] += 1
        elif outcome.result is AddResult.PING and outcome.ping is not None:
            old = outcome.ping
            if old.node_id not in self._pinging:
                try:
                    self._ping_send.send_nowait(old)
                    self._pinging.add(old.node_id)
                except trio.WouldBlock:
                    self._stats["ping_queue_full"] += 1

    def _failed(self, contact: Contact) -> None:
        if self.table.remove(contact.node_id):
            self._stats["contacts_evicted"] += 1

    async def _hello_worker(self) -> None:
        async for contact in self._hello_recv:
            self._hellos_running += 1
            try:
                with contextlib.suppress(DHTError, ProtocolError):
                    await self._ensure_proven(contact)
            finally:
                self._hellos_running -= 1

    async def _ping_worker(self) -> None:
        async for old in self._ping_recv:
            try:
                await self.ping(old.addr)
            except (DHTError, ProtocolError):
                self._failed(old)
            finally:
                self._pinging.discard(old.node_id)

    def is_proven(self, contact: Contact) -> bool:
        """Whether ``contact`` proved its node key at its current address."""
        return self._proven.get(contact.node_id) == contact.addr

    async def _ensure_proven(self, contact: Contact) -> None:
        """Run ``hello`` with ``contact`` unless it already proved its key there.

        Concurrent callers for one contact share a single hello.

        Raises:
            DHTError: ``not_ours`` (answers ping but not hello: a stock node)
                or ``timeout`` (answers nothing).
            ProtocolError: a wrong key or signature.
        """
        if self.is_proven(contact):
            return
        until = self._not_ours.get(contact.addr)
        if until is not None:
            if until > trio.current_time():
                raise DHTError("contact does not speak hello", reason="not_ours")
            del self._not_ours[contact.addr]
        running = self._hello_inflight.get(contact.node_id)
        if running is not None:
            await running.wait()
            if self.is_proven(contact):
                return
            if contact.addr in self._not_ours:
                raise DHTError("contact does not speak hello", reason="not_ours")
            raise DHTError("hello failed", reason="timeout")
        done = self._hello_inflight[contact.node_id] = trio.Event()
        try:
            await self._hello(contact)
        finally:
            del self._hello_inflight[contact.node_id]
            done.set()

    async def _hello(self, contact: Contact) -> None:
        nonce = os.urandom(NONCE_SIZE)
        # Silence to hello means a stock node (rpcudp ignores unknown methods)
        # or a dead one. A ping, started once the first hello attempt went
        # unanswered, tells them apart by the time the hello gives up.
        alive = False

        async def probe() -> None:
            nonlocal alive
            await trio.sleep(self.config.rpc_timeout)
            with contextlib.suppress(DHTError, ProtocolError):
                await self.ping(contact.addr)
                alive = True

        value: Any = None
        failed = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe)
            try:
                value = await self._call(contact.addr, "hello", [self.node_id, nonce])
            except DHTError:
                failed = True
            else:
                nursery.cancel_scope.cancel()
        if failed:
            if not alive:
                self._failed(contact)
                raise DHTError(f"hello to {contact} timed out", reason="timeout")
            self._not_ours[contact.addr] = trio.current_time() + self.config.not_ours_ttl
            if len(self._not_ours) > 4 * self.config.max_proven:
                self._not_ours.pop(next(iter(self._not_ours)))
            self._stats["not_ours"] += 1
            raise DHTError("contact does not speak hello", reason="not_ours")
        public_key, signature = parse_hello_reply(value)
        try:
            verify_hello(contact.node_id, nonce, self.node_id, public_key, signature)
        except ProtocolError:
            self._stats["hello_bad"] += 1
            self._failed(contact)
            raise
        self._mark_proven(contact)

    # -- calling -------------------------------------------------------------------

    async def _call(
        self, addr: Addr, method: str, args: list[Any], *, max_reply: int = MAX_DATAGRAM
    ) -> Any:
        """Send a request and wait for its response, retrying with backoff.

        Args:
            max_reply: the largest response datagram accepted (MAX_VALUE_REPLY
                for find_value, whose answer from a stock node carries a whole
                value; MAX_DATAGRAM otherwise).

        Raises:
            DHTError: ``timeout`` after every attempt went unanswered;
                ``oversized_reply`` when the answer exceeded ``max_reply``
                (the contact is alive: callers must not evict it).
        """
        msg_id = os.urandom(20)
        data = encode_request(msg_id, method, args)
        pending = _Pending(addr, max_reply)
        self._pending[msg_id] = pending
        self._stats[f"rpc_out_{method}"] += 1
        timeout = self.config.rpc_timeout
        try:
            for _ in range(self.config.rpc_attempts):
                await self._send(data, addr)
                with trio.move_on_after(timeout):
                    await pending.event.wait()
                if pending.event.is_set():
                    if pending.oversized:
                        self._stats["rpc_oversized_replies"] += 1
                        raise DHTError(
                            f"{method} reply from {addr[0]}:{addr[1]} exceeds {max_reply} bytes",
                            reason="oversized_reply",
                        )
                    return pending.value
                self._stats["rpc_retries"] += 1
                timeout *= self.config.rpc_backoff
        finally:
            self._pending.pop(msg_id, None)
        self._stats["rpc_timeouts"] += 1
        raise DHTError(f"{method} to {addr[0]}:{addr[1]} timed out", reason="timeout")

    def _lookup_timeouts(self) -> tuple[float, float]:
        """(slow_after, timeout) for lookups.

        After its first ``lookup_patience`` attempts went unanswered a contact
        stops holding one of the α slots (the lookup asks the next candidate;
        a dead contact must not stall it), but the lookup still waits for its
        verdict if it is among the closest: our retries decide failure. The
        hard timeout is only a backstop (a record query may need a hello first,
        hence twice the retry budget).
        """
        cfg = self.config
        steps = [cfg.rpc_timeout * cfg.rpc_backoff**i for i in range(cfg.rpc_attempts)]
        return sum(steps[: cfg.lookup_patience]), 2 * sum(steps) + 1.0

    async def _iterate(
        self,
        lookup: Lookup,
        ask: Callable[[Contact], Awaitable[tuple[list[Contact], bool, Any]]],
    ) -> Finished:
        """Drive a :class:`Lookup`, with up to α queries running at once."""
        wake = _Wake()

        async def query(contact: Contact) -> None:
            try:
                nodes, has_value, value = await ask(contact)
            except (DHTError, ProtocolError) as exc:
                self._stats[f"lookup_failure_{exc.reason}"] += 1
                lookup.on_failure(contact.node_id)
                if exc.reason == "timeout":
                    self._failed(contact)
            else:
                self._saw(contact, trio.current_time())
                lookup.on_response(contact.node_id, nodes, value=value, has_value=has_value)
            wake.event.set()

        async with trio.open_nursery() as nursery:
            while True:
                action = lookup.next(trio.current_time())
                if isinstance(action, Finished):
                    nursery.cancel_scope.cancel()
                    self._stats["lookups"] += 1
                    self._stats["lookup_queries"] += lookup.queries
                    return action
                if isinstance(action, Query):
                    nursery.start_soon(query, action.contact)
                    continue
                with trio.move_on_at(action.until):
                    await wake.event.wait()
                wake.event = trio.Event()

    def _new_lookup(
        self, target: bytes, seeds: list[Contact], quorum: int | None, k: int | None = None
    ) -> Lookup:
        self.table.touch(target, trio.current_time())
        return Lookup(
            self.node_id,
            target,
            seeds,
            k=k or self.config.k,
            alpha=self.config.alpha,
            timeout=self._lookup_timeouts()[1],
            slow_after=self._lookup_timeouts()[0],
            quorum=quorum,
        )

    # -- the kademlia package's RPCs -------------------------------------------------

    async def ping(self, addr: Addr) -> bytes:
        """Ping ``addr``; returns its node id (and adds it to the table).

        Raises:
            DHTError: no answer. DecodeError: a malformed answer.
        """
        node_id = parse_ping_reply(await self._call(addr, "ping", [self.node_id]))
        if node_id != self.node_id:
            self._saw(Contact(node_id, addr[0], addr[1]), trio.current_time())
        return node_id

    async def bootstrap(self, addrs: list[Addr]) -> int:
        """Join the network through the given (host, port) addresses.

        Host names are resolved once, here; unreachable or unresolvable
        entries are counted (``bootstrap_failures``) and skipped.

        Pings each, then looks up our own id to fill the table.

        Returns:
            The number of contacts in the routing table afterwards.
        """

        async def one(addr: Addr) -> None:
            try:
                await self.ping(await self._resolve(addr[0], int(addr[1])))
            except (DHTError, ProtocolError, OSError) as exc:
                self._stats["bootstrap_failures"] += 1
                log.info("bootstrap %s:%s failed: %s", addr[0], addr[1], exc)

        async with trio.open_nursery() as nursery:
            for addr in addrs:
                nursery.start_soon(one, addr)
        if len(self.table):
            await self.find_node(self.node_id)
            # Then fill the buckets farther away (the paper's "refresh every
            # bucket further than the closest neighbour"): a node that only
            # looked itself up knows only its neighbourhood, and lookups for
            # keys in the other half would stall among its neighbours.
            async with trio.open_nursery() as nursery:
                for target in self._far_targets():
                    nursery.start_soon(self.find_node, target)
            # Whatever we announced or published while joining went to the
            # few contacts we knew then; place it again among the closest.
            self._joined.set()
        return len(self.table)

    def _far_targets(self) -> list[bytes]:
        """Random ids at distance about 2**159 and 2**158 from us, for filling
        the table after joining (the two ranges hold three quarters of the
        network; nearer ones fill from the self-lookup and from traffic)."""
        own = int.from_bytes(self.node_id, "big")
        out = []
        for bit in range(2):
            noise = int.from_bytes(os.urandom(20), "big") >> (bit + 1)
            out.append((own ^ (1 << (159 - bit)) ^ noise).to_bytes(20, "big"))
        return out

    async def _resolve(self, host: str, port: int) -> Addr:
        """An IP address for ``host`` (responses are matched by source address,
        so contacts are always kept as IP literals)."""
        try:
            ipaddress.ip_address(host)
            return (host, port)
        except ValueError:
            pass
        family = trio.socket.AF_INET6 if ":" in self.address[0] else trio.socket.AF_INET
        infos = await trio.socket.getaddrinfo(
            host, port, family=family, type=trio.socket.SOCK_DGRAM
        )
        if not infos:
            raise DHTError(f"cannot resolve {host}", reason="resolve")
        sockaddr = infos[0][4]
        return (str(sockaddr[0]), int(sockaddr[1]))

    async def find_node(self, target: bytes) -> list[Contact]:
        """The k nodes closest to ``target`` that answered, nearest first."""

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            value = await self._call(c.addr, "find_node", [self.node_id, target])
            return parse_node_list(value), False, None

        seeds = self.table.closest(target)
        return (await self._iterate(self._new_lookup(target, seeds, None), ask)).closest

    async def set(self, key: Any, value: Any) -> int:
        """Store a plain value as the ``kademlia`` package's ``Server.set`` does.

        The key is hashed with SHA-1 as the package does, so either side finds
        what the other stored. Values are int, float, bool, str or bytes.

        Returns:
            How many nodes accepted it (0 means it is stored nowhere else).
        """
        dkey = plain_key_digest(key)
        now = trio.current_time()
        try:
            self.values.put(dkey, value, now)
        except RecordRejected as exc:
            raise LocalUsageError(exc.message, reason=exc.reason) from None
        self._own_values[dkey] = value
        return await self._store_plain(dkey, value)

    async def _store_plain(self, dkey: bytes, value: Any) -> int:
        nodes = await self.find_node(dkey)
        stored = 0

        async def one(c: Contact) -> None:
            nonlocal stored
            try:
                if await self._call(c.addr, "store", [self.node_id, dkey, value]) is True:
                    stored += 1
            except DHTError as exc:
                if exc.reason == "timeout":
                    self._failed(c)

        async with trio.open_nursery() as nursery:
            for c in nodes:
                nursery.start_soon(one, c)
        return stored

    async def get(self, key: Any) -> Any:
        """Find a plain value stored by any node (ours or stock); None if absent."""
        dkey = plain_key_digest(key)
        local = self.values.get(dkey, trio.current_time())
        if local is not None:
            return local

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            # A stock holder answers with the whole value, which may be up to
            # 8 KiB (spec/dht.md §3): the one reply allowed past 1,280 bytes.
            reply = await self._call(
                c.addr, "find_value", [self.node_id, dkey], max_reply=MAX_VALUE_REPLY
            )
            found, value, nodes = parse_find_value_reply(reply)
            return nodes, found, value

        seeds = self.table.closest(dkey)
        result = await self._iterate(self._new_lookup(dkey, seeds, 1), ask)
        return result.values[0][1] if result.values else None

    # -- signed records ----------------------------------------------------------------

    def _record_seeds(self, key: bytes) -> list[Contact]:
        return self.table.closest(key, accept=self._useful_filter())

    async def _proving_call(
        self, c: Contact, method: str, args: list[Any]
    ) -> tuple[Any, bytes | None]:
        """Call one of our record RPCs; to a contact not yet proven, add a
        nonce so that its reply carries the key proof (no separate hello).

        Returns:
            (reply value, the nonce sent or None).

        Raises:
            DHTError: ``not_ours`` (a known stock node) or ``no_answer``.
        """
        if self.is_proven(c):
            return await self._call(c.addr, method, args), None
        until = self._not_ours.get(c.addr)
        if until is not None and until > trio.current_time():
            raise DHTError("contact does not speak our RPCs", reason="not_ours")
        nonce = os.urandom(NONCE_SIZE)
        try:
            return await self._call(c.addr, method, [*args, nonce]), nonce
        except DHTError:
            # A stock node (it ignores our methods) or a dead one: the hello
            # worker tells them apart in the background, and evicts the dead.
            with contextlib.suppress(trio.WouldBlock):
                self._hello_send.send_nowait(c)
            raise DHTError(f"{method} to {c} went unanswered", reason="no_answer") from None

    def _check_proof(
        self, c: Contact, nonce: bytes | None, proof: tuple[bytes, bytes] | None
    ) -> None:
        """Accept a reply's key proof, or raise ProtocolError if it was due and is bad."""
        if nonce is None:
            return
        if proof is None:
            raise DecodeError("reply lacks the key proof asked for", reason="no_proof")
        try:
            verify_hello(c.node_id, nonce, self.node_id, proof[0], proof[1])
        except ProtocolError:
            self._stats["hello_bad"] += 1
            self._failed(c)
            raise
        self._mark_proven(c)

    def _mark_proven(self, c: Contact) -> None:
        self._proven[c.node_id] = c.addr
        self._proven.move_to_end(c.node_id)
        while len(self._proven) > self.config.max_proven:
            self._proven.popitem(last=False)
        self._stats["hello_proven"] += 1

    async def _record_lookup(
        self, kind: str, key: bytes, k: int | None = None
    ) -> tuple[Finished, list[tuple[int, bytes]]]:
        """Look up ``key`` among proven nodes with get_record.

        Returns:
            The lookup result and every valid (seq, record) seen.
        """
        found: list[tuple[int, bytes]] = []

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            value, nonce = await self._proving_call(c, "get_record", [self.node_id, key, kind])
            rec, nodes, proof = parse_get_record_reply(value)
            self._check_proof(c, nonce, proof)
            if rec is None:
                return nodes, False, None
            seq = self._validate_cached(kind, key, rec)
            if seq is None:
                return nodes, False, None
            found.append((seq, rec))
            return nodes, True, rec

        lookup = self._new_lookup(key, self._record_seeds(key), None, k)
        result = await self._iterate(lookup, ask)
        return result, found

    def _validate_cached(self, kind: str, key: bytes, rec: bytes) -> int | None:
        """validate_record, remembering records already verified (a get sees
        the same record from several replicas); returns its seq, or None."""
        digest = hashlib.sha256(kind.encode() + b"\x00" + key + rec).digest()
        seq = self._verified.get(digest)
        if seq is not None:
            self._verified.move_to_end(digest)
            return seq
        try:
            entry = validate_record(kind, key, rec, self._now_ms())
        except RecordRejected as exc:
            self._stats[f"record_invalid_{exc.reason}"] += 1
            return None
        self._verified[digest] = entry.seq
        if len(self._verified) > 1024:
            self._verified.popitem(last=False)
        return entry.seq

    async def _put_record(self, kind: str, key: bytes, data: bytes) -> int:
        now = trio.current_time()
        try:
            validate_record(kind, key, data, self._now_ms())
        except RecordRejected as exc:
            raise LocalUsageError(f"cannot publish: {exc.message}", reason=exc.reason) from None
        try:
            self.records.put(kind, key, data, now=now, now_ms=self._now_ms())
        except RecordRejected as exc:
            if exc.reason not in ("replayed",):
                raise LocalUsageError(f"cannot publish: {exc.message}", reason=exc.reason) from None
        self._own_records[(kind, key)] = data
        # An author's node publishes its head on every post: the k closest
        # nodes found by the last lookup for this slot are reused for a short
        # while instead of walking again. If many of them fail to store it,
        # a fresh lookup runs and the record goes to the current closest.
        cached = self._closest_cache.get((kind, key))
        if cached is not None and cached[0] > now and cached[1]:
            stored = await self._store_record_at(cached[1], kind, key, data)
            if stored >= len(cached[1]) * 3 // 4:
                self._stats["puts_from_cache"] += 1
                return stored
        result, _ = await self._record_lookup(kind, key)
        if result.closest:
            self._closest_cache[(kind, key)] = (
                trio.current_time() + self.config.closest_cache_ttl,
                result.closest,
            )
        if len(self._closest_cache) > 256:
            self._closest_cache.pop(next(iter(self._closest_cache)))
        return await self._store_record_at(result.closest, kind, key, data)

    async def _store_record_at(
        self, nodes: list[Contact], kind: str, key: bytes, data: bytes
    ) -> int:
        stored = 0

        async def one(c: Contact) -> None:
            nonlocal stored
            try:
                ok, reason = parse_status_reply(
                    await self._call(c.addr, "put_record", [self.node_id, key, kind, data])
                )
            except DHTError as exc:
                if exc.reason == "timeout":
                    self._failed(c)
                return
            except ProtocolError:
                return
            if ok or reason == "replayed":
                stored += 1
            else:
                self._stats[f"put_refused_{reason}"] += 1

        async with trio.open_nursery() as nursery:
            for c in nodes:
                nursery.start_soon(one, c)
        self._stats["records_put"] += 1
        return stored

    async def put_head(self, entry_bytes: bytes) -> int:
        """Publish ``entry_bytes`` as its author's feed head.

        Returns:
            How many of the k closest nodes hold it now (0 = only us).

        Raises:
            LocalUsageError: the entry is invalid, or older than the head we hold.
        """
        try:
            author = decode_entry_untrusted(entry_bytes).author
        except DecodeError as exc:
            raise LocalUsageError(f"not an entry: {exc.message}", reason=exc.reason) from None
        return await self._put_record(HEAD, head_key(author), entry_bytes)

    async def _get_best(self, kind: str, key: bytes) -> bytes | None:
        result, found = await self._record_lookup(kind, key, self.config.get_k)
        local = self.records.get(kind, key, trio.current_time())
        if local is not None:
            found.append((local.seq, local.data))
        if not found:
            return None
        _, best = max(found, key=lambda f: f[0])
        # Replicas that answered with an older record get the newer one
        # (the paper's caching step, here as repair).
        stale = [c for c, rec in result.values if rec != best]
        if stale and self._nursery is not None:
            self._nursery.start_soon(self._store_record_at, stale, kind, key, best)
        return best

    async def get_head(self, author: bytes) -> bytes | None:
        """The entry bytes of the highest-seq valid head found for ``author``, or None."""
        return await self._get_best(HEAD, head_key(author))

    async def put_profile(self, entry_bytes: bytes, payload: bytes) -> int:
        """Publish a ``profile`` entry and its payload (≤ 384 bytes) as a profile record.

        Returns:
            How many of the k closest nodes hold it now.

        Raises:
            LocalUsageError: invalid entry or payload, wrong kind, too large.
        """
        if len(payload) > MAX_PROFILE_PAYLOAD:
            raise LocalUsageError(
                f"profile payload of {len(payload)} bytes exceeds {MAX_PROFILE_PAYLOAD}",
                reason="too_large",
            )
        try:
            author = decode_entry_untrusted(entry_bytes).author
        except DecodeError as exc:
            raise LocalUsageError(f"not an entry: {exc.message}", reason=exc.reason) from None
        data = encode_profile_record(entry_bytes, payload)
        return await self._put_record(PROFILE, profile_key(author), data)

    async def get_profile(self, author: bytes) -> tuple[bytes, bytes] | None:
        """(entry bytes, payload) of the latest profile record found, or None."""
        data = await self._get_best(PROFILE, profile_key(author))
        if data is None:
            return None
        value = decode_untrusted(data, Limits(max_size=2048))
        return value["entry"], value["payload"]

    # -- swarms --------------------------------------------------------------------

    async def _peers_lookup(
        self, key: bytes, k: int | None = None
    ) -> tuple[Finished, dict[bytes, bytes], dict[bytes, tuple[bytes, str, int]]]:
        tokens: dict[bytes, bytes] = {}
        peers: dict[bytes, tuple[bytes, str, int]] = {}

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            value, nonce = await self._proving_call(c, "get_peers", [self.node_id, key])
            got, token, nodes, proof = parse_get_peers_reply(value)
            self._check_proof(c, nonce, proof)
            if token:
                tokens[c.node_id] = token
            for p in got:
                peers.setdefault(p[0], p)
            return nodes, bool(got), None

        lookup = self._new_lookup(key, self._record_seeds(key), None, k)
        return await self._iterate(lookup, ask), tokens, peers

    async def announce(self, author: bytes, peer_port: int) -> int:
        """Announce that this node holds ``author``'s feed, reachable on TCP ``peer_port``.

        The announcement is re-sent every ``announce_interval`` until the node stops.

        Returns:
            How many of the k closest nodes accepted it.
        """
        if not 0 < peer_port < 65536:
            raise LocalUsageError("peer_port must be 1..65535")
        key = swarm_key(author)
        self._own_announces[author] = peer_port
        host = self.address[0]
        if host not in ("0.0.0.0", "::"):
            # Listed in our own swarm store too, for when we are among the
            # closest to the key; a wildcard bind has no address to list.
            self.swarms.announce(key, self.node_id, host, peer_port, trio.current_time())
        result, tokens, _ = await self._peers_lookup(key)
        accepted = 0

        async def one(c: Contact) -> None:
            nonlocal accepted
            try:
                ok, reason = parse_status_reply(
                    await self._call(
                        c.addr, "announce", [self.node_id, key, peer_port, tokens[c.node_id]]
                    )
                )
            except (DHTError, ProtocolError):
                return
            if ok:
                accepted += 1
            else:
                self._stats[f"announce_refused_{reason}"] += 1

        async with trio.open_nursery() as nursery:
            for c in result.closest:
                if c.node_id in tokens:
                    nursery.start_soon(one, c)
        if accepted:
            self._unplaced.pop(author, None)
        elif author in self._own_announces:
            # Nobody holds it: a node that is not listed cannot be found, so
            # try again soon rather than at the next announce_interval.
            self._stats["announces_unplaced"] += 1
            _, backoff = self._unplaced.get(author, (0.0, self.config.announce_retry / 2))
            backoff = min(self.config.announce_interval, backoff * 2)
            self._unplaced[author] = (trio.current_time() + backoff, backoff)
        return accepted

    async def _placement_loop(self) -> None:
        """Re-place own announces and records when the node joins, and retry
        announces that no node accepted, with backoff."""
        while True:
            retry_at = min((t for t, _ in self._unplaced.values()), default=math.inf)
            with trio.move_on_at(retry_at):
                await self._joined.wait()
            now = trio.current_time()
            if self._joined.is_set():
                self._joined = trio.Event()
                self._closest_cache.clear()
                authors = list(self._own_announces)
                records = list(self._own_records.items())
                self._stats["placements_after_join"] += 1
            else:
                authors = [a for a, (t, _) in self._unplaced.items() if t <= now]
                records = []
            for author in authors:
                port = self._own_announces.get(author)
                if port is None:
                    self._unplaced.pop(author, None)
                    continue
                try:
                    await self.announce(author, port)
                except DHTError as exc:
                    log.info("re-announce failed: %s", exc)
            for (kind, key), data in records:
                try:
                    result, _ = await self._record_lookup(kind, key)
                    await self._store_record_at(result.closest, kind, key, data)
                except DHTError as exc:
                    log.info("re-publish after joining failed: %s", exc)

    async def get_peers(self, author: bytes) -> list[tuple[bytes, str, int]]:
        """Nodes that announced ``author``'s feed: (node id, host, TCP port), not us."""
        key = swarm_key(author)
        _, _, peers = await self._peers_lookup(key, self.config.get_k)
        for p in self.swarms.peers(key, trio.current_time()):
            peers.setdefault(p[0], p)
        peers.pop(self.node_id, None)
        return list(peers.values())

    # -- maintenance -----------------------------------------------------------------

    async def _maintenance_loop(self) -> None:
        cfg = self.config
        start = trio.current_time()
        last_republish = last_announce = last_save = start
        while True:
            await trio.sleep(cfg.maintenance_interval)
            now = trio.current_time()
            if self.tokens.needs_rotation(now):
                self.tokens.rotate(os.urandom(32), now)
            self.records.expire(now)
            self.swarms.expire(now)
            self.values.expire(now)
            for nid in [a for a, t in self._not_ours.items() if t <= now]:
                del self._not_ours[nid]
            try:
                await self._refresh(now)
                if now - last_announce >= cfg.announce_interval:
                    last_announce = now
                    for author, port in list(self._own_announces.items()):
                        await self.announce(author, port)
                if now - last_republish >= cfg.republish_interval:
                    last_republish = now
                    await self._republish(now)
            except DHTError as exc:
                log.info("DHT maintenance: %s", exc)
            if self.contact_store is not None and now - last_save >= cfg.contact_save_interval:
                last_save = now
                await self._save_contacts()

    async def _refresh(self, now: float) -> None:
        """Look up a random id in every bucket not refreshed for refresh_interval."""
        if not len(self.table):
            return
        for lo, hi in self.table.stale_buckets(now, self.config.refresh_interval)[:8]:
            target = (lo + int.from_bytes(os.urandom(20), "big") % (hi - lo)).to_bytes(20, "big")
            self._stats["bucket_refreshes"] += 1
            await self.find_node(target)

    async def _republish(self, now: float) -> None:
        """Re-put our own records and values, and records we hold for others."""
        for (kind, key), data in list(self._own_records.items()):
            held = self.records.get(kind, key, now)
            if held is not None and held.data != data:
                # A newer version (published elsewhere) superseded ours.
                del self._own_records[(kind, key)]
                continue
            result, _ = await self._record_lookup(kind, key)
            await self._store_record_at(result.closest, kind, key, data)
        for dkey, value in list(self._own_values.items()):
            await self._store_plain(dkey, value)
        for rec in self.records.records():
            if (rec.kind, rec.key) in self._own_records:
                continue
            if now - rec.stored_at >= self.config.republish_interval:
                result, _ = await self._record_lookup(rec.kind, rec.key)
                await self._store_record_at(result.closest, rec.kind, rec.key, rec.data)
        self._stats["republish_rounds"] += 1

    # -- introspection -----------------------------------------------------------------

    def routing_table_contacts(self) -> list[tuple[bytes, str, int]]:
        """Every contact in the routing table, as (node_id, host, port), for persistence."""
        return [(c.node_id, c.host, c.port) for c in self.table.contacts()]

    def statistics(self) -> dict[str, Any]:
        """Counters and gauges: datagrams dropped by reason, RPCs in/out, table size, stores."""
        return {
            "node_id": self.node_id.hex(),
            "contacts": len(self.table),
            "buckets": len(self.table.buckets),
            "proven": len(self._proven),
            "records": len(self.records),
            "swarm_peers": len(self.swarms),
            "values": len(self.values),
            "pending_rpcs": len(self._pending),
            "hello_backlog": self._hello_send.statistics().current_buffer_used
            + self._hellos_running,
            "dropped": dict(self._dropped),
            **dict(self._stats),
        }
