"""The datagram engine: one socket, its receive loop, and calls that wait for
their answers.

The receive loop never raises on bad input. It decodes each datagram with
``decode_datagram_untrusted``, drops and counts what is malformed, and matches
responses to pending calls by message id *and* source address. The answer to
our own find_value may be up to 8 KiB, every other datagram 1,280 bytes; an
answer over its limit ends its call at once. Requests pass a per-address rate
limit (a :class:`~p2psocial.protocol.ratelimit.RateTable`) and are answered
by the :class:`Handler` right there, in the order they arrive: handling is
synchronous and a UDP send does not wait, so a request costs no task of its
own; what waits for the loop waits in the socket's receive buffer, which the
OS bounds (spec/dht.md §9).

Outgoing calls retry under cancel scopes (``move_on_after``) with a growing
timeout. The first attempt waits for the address's retransmission timeout
(:class:`~p2psocial.protocol.dht.rtt.RttEstimator`: its smoothed round trip
plus four deviations, clamped), so a dead contact costs a few round trips of
the network we are on, not a fixed half second per try.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from typing import Any, Protocol

import trio

from ...protocol.dht.rtt import RttEstimator
from ...protocol.dht.wire import (
    MAX_DATAGRAM,
    Request,
    Response,
    decode_datagram_untrusted,
    encode_request,
    peek_response_id,
)
from ...protocol.errors import DecodeError, LocalUsageError, ProtocolError
from ...protocol.ratelimit import RateTable
from .common import Addr, DHTConfig, DHTError, log
from .udp import DatagramSocket, SocketFactory

__all__ = ["Caller", "DatagramEngine", "Handler"]


class Handler(Protocol):
    """What answers the requests the engine receives."""

    def handle(self, req: Request, addr: Addr) -> bytes | None:
        """The encoded response to ``req`` from ``addr``, or None for no answer.

        Raises:
            ProtocolError: bad arguments (the datagram is dropped and counted
                under the error's reason).
            LocalUsageError: the answer does not fit in a datagram.
        """
        ...


class Caller(Protocol):
    """What the clients of the engine use: its address and request/response calls."""

    @property
    def address(self) -> Addr:
        """The bound (host, port); raises DHTError when not bound."""
        ...

    async def call(
        self,
        addr: Addr,
        method: str,
        args: list[Any],
        *,
        max_reply: int = MAX_DATAGRAM,
        min_wait: float = 0.0,
    ) -> Any:
        """Send a request to ``addr`` and return the value of its response."""
        ...


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


class DatagramEngine:
    """One datagram socket with its receive loop, request workers and pending calls.

    Args:
        config: tunables (queue sizes, workers, rate limits, call retries).
        host, port: the address to bind.
        socket_factory: binds the socket (a real UDP one, or a simulated one).
    """

    def __init__(
        self, config: DHTConfig, host: str, port: int, socket_factory: SocketFactory
    ) -> None:
        self._config = config
        self._host = host
        self._port = port
        self._socket_factory = socket_factory
        self._sock: DatagramSocket | None = None
        self._addr: Addr | None = None
        self._pending: dict[bytes, _Pending] = {}
        self._rate = RateTable(
            config.rate_burst, config.rate_per_s, max_keys=config.rate_table_size
        )
        self.rtt = RttEstimator(
            initial=config.rpc_timeout,
            minimum=config.rpc_timeout_min,
            maximum=config.rpc_timeout_max,
            max_keys=config.rate_table_size,
        )
        self._stats: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        #: Addresses whose call went unanswered past its first attempt's
        #: timeout, until when (cleared by any datagram from them).
        self._silent: OrderedDict[Addr, float] = OrderedDict()
        self._handler: Handler | None = None

    @property
    def address(self) -> Addr:
        """The bound (host, port). Raises DHTError before :meth:`bind`."""
        if self._addr is None:
            raise DHTError("the DHT node is not running", reason="not_running")
        return self._addr

    async def bind(self) -> Addr:
        """Bind the socket; returns its (host, port).

        Raises:
            NodeError: whatever the socket factory raises (``cannot_listen``).
        """
        sock = await self._socket_factory(self._host, self._port)
        self._sock = sock
        self._addr = sock.getsockname()
        return self._addr

    def close(self) -> None:
        """Close the socket bound by :meth:`bind` (no-op when there is none)."""
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._addr = None

    def start(self, nursery: trio.Nursery, handler: Handler) -> None:
        """Receive on the bound socket and answer requests with ``handler``,
        in ``nursery`` (the node's), until it is cancelled (the socket stays
        open: :meth:`close` closes it).

        The receive loop runs in the node's nursery rather than one of its
        own: an idle nursery costs a few KiB, and a process may run hundreds
        of nodes (bench/dht.py).

        Raises:
            DHTError: ``not_running`` (no socket bound).
        """
        sock = self._sock
        if sock is None:
            raise DHTError("the DHT node is not running", reason="not_running")
        self._handler = handler
        nursery.start_soon(self._receive_loop, sock)

    # -- receiving ---------------------------------------------------------------

    def drop(self, reason: str) -> None:
        """Count one datagram dropped for ``reason``."""
        self._dropped[reason] += 1

    async def _receive_loop(self, sock: DatagramSocket) -> None:
        while True:
            try:
                data, addr = await sock.recvfrom()
            except OSError as exc:
                # e.g. ICMP errors surfaced by the OS; never fatal for a UDP server.
                self.drop("socket_error")
                log.debug("recvfrom: %s", exc)
                continue
            self._stats["datagrams_in"] += 1
            if self._silent:
                self._silent.pop(addr, None)
            cap = MAX_DATAGRAM
            if len(data) > MAX_DATAGRAM:
                mid = peek_response_id(data)
                pending = self._pending.get(mid) if mid is not None else None
                if mid is not None and pending is not None and pending.addr == addr:
                    if len(data) > pending.max_reply:
                        # The contact is alive and answered, only with more
                        # than we take: end that request now, instead of
                        # letting it time out and evict an honest node.
                        self.drop("too_large")
                        del self._pending[mid]
                        pending.oversized = True
                        pending.event.set()
                        continue
                    cap = pending.max_reply
            try:
                msg = decode_datagram_untrusted(data, cap)
            except DecodeError as exc:
                self.drop(exc.reason)
                continue
            if isinstance(msg, Response):
                pending = self._pending.get(msg.msg_id)
                if pending is None or pending.addr != addr:
                    self.drop("unexpected_response")
                    continue
                del self._pending[msg.msg_id]
                pending.value = msg.value
                pending.event.set()
                continue
            if not self._rate.take(addr, trio.current_time()):
                self.drop("rate_limited")
                continue
            reply = self._reply_to(msg, addr)
            if reply is not None:
                await self.send(reply, addr)

    def _reply_to(self, req: Request, addr: Addr) -> bytes | None:
        """The handler's reply to ``req``; None when there is none to send."""
        assert self._handler is not None  # set by start(), before the loop runs
        try:
            return self._handler.handle(req, addr)
        except ProtocolError as exc:
            self.drop(exc.reason)
        except LocalUsageError:
            # Our answer would not fit in a datagram (cannot happen with
            # the limits of spec/dht.md, but a bad reply must not kill us).
            self.drop("reply_too_large")
        except Exception:
            # A bug in handling one datagram ends that datagram only: it
            # is logged with its traceback and counted, and the DHT serves on.
            self._stats["internal_errors"] += 1
            log.exception("bug in handling a DHT %s request from %s", req.method, addr)
        return None

    # -- sending -----------------------------------------------------------------

    async def send(self, data: bytes, addr: Addr) -> None:
        """Send one datagram; a socket error is counted, not raised.

        Raises:
            DHTError: ``not_running`` (no socket bound).
        """
        sock = self._sock
        if sock is None:
            raise DHTError("the DHT node is not running", reason="not_running")
        try:
            await sock.sendto(data, addr)
            self._stats["datagrams_out"] += 1
        except OSError as exc:
            self._stats["send_errors"] += 1
            log.debug("sendto %s: %s", addr, exc)

    async def call(
        self,
        addr: Addr,
        method: str,
        args: list[Any],
        *,
        max_reply: int = MAX_DATAGRAM,
        min_wait: float = 0.0,
    ) -> Any:
        """Send a request and wait for its response, retrying with backoff.

        Args:
            max_reply: the largest response datagram accepted (MAX_VALUE_REPLY
                for find_value, whose answer from a stock node carries a whole
                value; MAX_DATAGRAM otherwise).
            min_wait: seconds to wait for the answer at least, for a request
                the responder answers only after some work of its own (a
                dial-back); such an answer is no round-trip sample.

        Returns:
            The response's value, undecoded beyond the envelope.

        Raises:
            DHTError: ``timeout`` after every attempt went unanswered;
                ``oversized_reply`` when the answer exceeded ``max_reply``
                (the contact is alive: callers must not evict it);
                ``not_running``.
        """
        msg_id = os.urandom(20)
        data = encode_request(msg_id, method, args)
        pending = _Pending(addr, max_reply)
        self._pending[msg_id] = pending
        self._stats[f"rpc_out_{method}"] += 1
        rto = self.rtt.rto(addr)
        timeout = max(rto, self._config.rpc_retransmit_min)
        started = trio.current_time()
        try:
            for attempt in range(self._config.rpc_attempts):
                sent = trio.current_time()
                await self.send(data, addr)
                if attempt == 0 and not min_wait:
                    with trio.move_on_at(sent + rto):
                        await pending.event.wait()
                    if not pending.event.is_set():
                        self.mark_silent(addr, trio.current_time())
                if not pending.event.is_set():
                    with trio.move_on_at(sent + timeout):
                        await pending.event.wait()
                if pending.event.is_set():
                    # Karn: a retried call's answer is ambiguous.
                    if attempt == 0 and not min_wait:
                        self.rtt.sample(addr, trio.current_time() - sent)
                    return self._answer(pending, method, addr)
                if attempt == 0 and not min_wait:
                    self.rtt.timed_out(addr)
                self._stats["rpc_retries"] += 1
                timeout *= self._config.rpc_backoff
            # Short timeouts find a dead contact fast, but a stall of our own
            # (a busy event loop) must not make a live one look dead: no
            # verdict before rpc_verdict_min, though nothing more is sent.
            with trio.move_on_at(started + max(self._config.rpc_verdict_min, min_wait)):
                await pending.event.wait()
            if pending.event.is_set():
                self._stats["rpc_late_answers"] += 1
                return self._answer(pending, method, addr)
        finally:
            self._pending.pop(msg_id, None)
        self._stats["rpc_timeouts"] += 1
        raise DHTError(f"{method} to {addr[0]}:{addr[1]} timed out", reason="timeout")

    def mark_silent(self, addr: Addr, now: float) -> None:
        """Note that ``addr`` left a call unanswered past its patience (its
        first attempt's timeout, or a lookup's patience with it): see
        :meth:`is_silent`. Any datagram from it ends that."""
        self._silent[addr] = now + self._config.silent_ttl
        self._silent.move_to_end(addr)
        while len(self._silent) > self._config.rate_table_size:
            self._silent.popitem(last=False)

    def is_silent(self, addr: Addr, now: float) -> bool:
        """Whether a call to ``addr`` went unanswered past its first attempt's
        timeout and nothing was heard from it since (for at most
        ``silent_ttl`` seconds): lookups skip it rather than wait on it too."""
        until = self._silent.get(addr)
        if until is None:
            return False
        if until <= now:
            del self._silent[addr]
            return False
        return True

    def _answer(self, pending: _Pending, method: str, addr: Addr) -> Any:
        if pending.oversized:
            self._stats["rpc_oversized_replies"] += 1
            raise DHTError(
                f"{method} reply from {addr[0]}:{addr[1]} exceeds {pending.max_reply} bytes",
                reason="oversized_reply",
            )
        return pending.value

    # -- introspection -----------------------------------------------------------

    @property
    def pending_calls(self) -> int:
        """Calls waiting for their answer."""
        return len(self._pending)

    def dropped(self) -> dict[str, int]:
        """Datagrams dropped, by reason."""
        return dict(self._dropped)

    def statistics(self) -> dict[str, int]:
        """Counters: datagrams in/out, calls out by method, retries, timeouts, bugs."""
        return dict(self._stats)
