"""The relay service: :class:`RelayServer` keeps reservations and splices links.

A node behind a NAT keeps one control connection here (a *reservation*,
spec/sync.md §11.2). A dialler asks for that node by id (§11.3); the relay
tells the reserved node on its control connection, the node opens a fresh
connection back with the one-time token (§11.4), and the relay splices the
two sockets. The link inside is the unchanged Noise link of §10, so the
relay forwards ciphertext it cannot read, within the limits its owner set
(:class:`RelayLimits`: links at once, bytes per second, bytes and seconds
per link).

The link pool reads the preamble and hands transports 2-4 to
:meth:`RelayServer.handle`, inside the pool's own connection task.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ...protocol.errors import DecodeError, InvalidSignature
from ...protocol.identity import SigningKey, node_id_from_public_key
from ...protocol.relay import (
    ACCEPT_SIZE,
    CONNECT_SIZE,
    PREAMBLE_SIZE,
    PROOF_SIZE,
    TOKEN_SIZE,
    TRANSPORT_ACCEPT,
    TRANSPORT_CONNECT,
    TRANSPORT_RESERVE,
    ControlDecoder,
    decode_accept_untrusted,
    decode_connect_untrusted,
    encode_challenge,
    encode_connect_answer,
    encode_incoming,
    encode_keepalive,
    encode_preamble,
    verify_proof_untrusted,
)
from ..activity import short_node
from ..config import Policy
from .streams import StreamEnded, StreamReader

__all__ = ["RelayLimits", "RelayServer"]

log = logging.getLogger("p2psocial.node.relay")

_CHUNK = 16 * 1024
_STATUS = {"ok": 0, "no_reservation": 1, "relay_full": 2, "target_silent": 3, "bad_proof": 4}


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """What this node's owner lets it relay (the ``relay_*`` policy settings).

    The defaults suit a home connection: 32 links at 64 KiB/s each is 2 MiB/s
    at worst, and a link ends after 16 MiB or 10 minutes (the two ends then
    dial again, through this relay or another).
    """

    #: Accept reservations and splice links at all.
    enabled: bool = True
    #: Nodes holding a reservation at once.
    max_reservations: int = 16
    #: Spliced links (and connects waiting for their accept) at once.
    max_links: int = 32
    #: Bytes per second per link and direction.
    link_bytes_per_s: int = 64 * 1024
    #: Bytes per link, both directions together.
    link_bytes: int = 16 * 1024 * 1024
    #: Seconds per link.
    link_seconds: float = 600.0
    #: Seconds a dialler waits for the reserved node's accept.
    accept_timeout: float = 5.0
    #: Seconds between keepalives on a reservation; silent for 3x this, it ends.
    keepalive: float = 20.0
    #: Seconds for a reservation's proof, a connect request or an accept to arrive.
    handshake_timeout: float = 10.0

    @classmethod
    def from_policy(cls, policy: Policy) -> RelayLimits:
        """The limits the owner's ``relay_*`` policy settings give."""
        return cls(
            enabled=policy.relay_service,
            max_reservations=policy.relay_reservations,
            max_links=policy.relay_max_links,
            link_bytes_per_s=max(1, policy.relay_bytes_per_s),
            link_bytes=policy.relay_link_bytes,
            link_seconds=float(policy.relay_link_seconds),
        )


class _Reservation:
    def __init__(self, node_id: bytes, stream: trio.abc.Stream) -> None:
        self.node_id = node_id
        self.stream = stream
        self.lock = trio.Lock()
        self.ended = trio.Event()


class _Pending:
    """A dialler waiting for its accept; the accept's task hands its stream over."""

    def __init__(self, target: bytes) -> None:
        self.target = target
        self.accepted = trio.Event()
        self.done = trio.Event()
        self.stream: trio.abc.Stream | None = None
        self.rest = b""


class RelayServer:
    """Reservations and splices for the nodes that cannot be dialled.

    Args:
        node_key: this node's key (its id is the one reservations are proven to).
        limits: the limits, read at each use (policy may change at run time).
        observer: called with every chunk forwarded, as it passes (for tests
            and accounting; it must not block).
    """

    def __init__(
        self,
        node_key: SigningKey,
        limits: Callable[[], RelayLimits] = RelayLimits,
        *,
        observer: Callable[[bytes], None] | None = None,
    ) -> None:
        self.node_id = node_id_from_public_key(node_key.public_key)
        self._limits = limits
        self.observer = observer
        self.reservations: dict[bytes, _Reservation] = {}
        self._pending: dict[bytes, _Pending] = {}
        self.links = 0
        self._stats: Counter[str] = Counter()

    @property
    def limits(self) -> RelayLimits:
        """The limits now."""
        return self._limits()

    def enabled(self) -> bool:
        """Whether reservations and connects are taken."""
        return self.limits.enabled

    async def handle(self, transport: int, reader: StreamReader, host: str) -> None:
        """Serve one connection whose preamble named ``transport`` (2, 3 or 4).

        Never raises on the peer's behaviour; the caller closes the stream.
        """
        what = {TRANSPORT_RESERVE: "reserve", TRANSPORT_CONNECT: "connect"}.get(transport, "accept")
        try:
            if transport == TRANSPORT_RESERVE:
                await self._reserve(reader, host)
            elif transport == TRANSPORT_CONNECT:
                await self._connect(reader)
            elif transport == TRANSPORT_ACCEPT:
                await self._accept(reader)
        except (StreamEnded, trio.TooSlowError, DecodeError, InvalidSignature) as exc:
            self._stats[f"{what}_{getattr(exc, 'reason', None) or 'timeout'}"] += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._stats[f"{what}_broken"] += 1

    # ------------------------------------------------------------------ reserve

    async def _reserve(self, reader: StreamReader, host: str) -> None:
        limits = self.limits
        stream = reader.stream
        nonce = os.urandom(32)
        with trio.fail_after(limits.handshake_timeout):
            await stream.send_all(encode_challenge(self.node_id, nonce))
            proof = await reader.exactly(PROOF_SIZE)
        try:
            node_id = verify_proof_untrusted(proof, nonce, self.node_id)
        except (DecodeError, InvalidSignature):
            await stream.send_all(bytes([_STATUS["bad_proof"]]))
            raise
        if node_id not in self.reservations and len(self.reservations) >= limits.max_reservations:
            self._stats["reserve_relay_full"] += 1
            await stream.send_all(bytes([_STATUS["relay_full"]]))
            return
        await stream.send_all(bytes([_STATUS["ok"]]))
        old = self.reservations.get(node_id)
        if old is not None:
            old.ended.set()  # a node that reconnects replaces its own reservation
        res = self.reservations[node_id] = _Reservation(node_id, stream)
        self._stats["reservations_made"] += 1
        log.info("relay: reservation for node %s at %s", short_node(node_id), host)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keepalives, res, limits.keepalive)
                nursery.start_soon(self._control_reader, reader, res, 3 * limits.keepalive)
                await res.ended.wait()
                nursery.cancel_scope.cancel()
        finally:
            if self.reservations.get(node_id) is res:
                del self.reservations[node_id]
            res.ended.set()

    async def _keepalives(self, res: _Reservation, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            if not await self._tell(res, encode_keepalive()):
                return

    async def _control_reader(self, reader: StreamReader, res: _Reservation, idle: float) -> None:
        decoder = ControlDecoder()
        try:
            while True:
                with trio.fail_after(idle):
                    data = await reader.exactly(1)
                decoder.feed_untrusted(data)  # only keepalives come this way
        except (StreamEnded, trio.TooSlowError, DecodeError) as exc:
            self._stats[f"reservations_ended_{getattr(exc, 'reason', None) or 'idle'}"] += 1
        finally:
            res.ended.set()

    async def _tell(self, res: _Reservation, message: bytes) -> bool:
        """Send on a reservation's control connection; False if it is gone."""
        try:
            async with res.lock:
                with trio.fail_after(self.limits.handshake_timeout):
                    await res.stream.send_all(message)
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            res.ended.set()
            return False

    # ------------------------------------------------------------------ connect

    async def _connect(self, reader: StreamReader) -> None:
        limits = self.limits
        stream = reader.stream
        with trio.fail_after(limits.handshake_timeout):
            header = await reader.exactly(CONNECT_SIZE - PREAMBLE_SIZE)
        target = decode_connect_untrusted(encode_preamble(TRANSPORT_CONNECT) + header)
        res = self.reservations.get(target)
        if res is None:
            return await self._refuse(stream, "no_reservation")
        if self.links + len(self._pending) >= limits.max_links:
            return await self._refuse(stream, "relay_full")
        token = os.urandom(TOKEN_SIZE)
        pending = self._pending[token] = _Pending(target)
        try:
            if await self._tell(res, encode_incoming(token)):
                with trio.move_on_after(limits.accept_timeout):
                    await pending.accepted.wait()
        finally:
            self._pending.pop(token, None)
        if pending.stream is None:
            pending.done.set()
            return await self._refuse(stream, "target_silent")
        try:
            await stream.send_all(encode_connect_answer(_STATUS["ok"]))
            self._stats["links_spliced"] += 1
            self.links += 1
            try:
                end = await self._splice(
                    (stream, reader.rest()), (pending.stream, pending.rest), limits
                )
            finally:
                self.links -= 1
            self._stats[f"links_ended_{end}"] += 1
        finally:
            pending.done.set()

    async def _refuse(self, stream: trio.abc.Stream, reason: str) -> None:
        self._stats[f"connect_{reason}"] += 1
        with trio.move_on_after(1.0), contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(encode_connect_answer(_STATUS[reason]))

    async def _accept(self, reader: StreamReader) -> None:
        with trio.fail_after(self.limits.handshake_timeout):
            token = await reader.exactly(ACCEPT_SIZE - PREAMBLE_SIZE)
        decode_accept_untrusted(encode_preamble(TRANSPORT_ACCEPT) + token)
        pending = self._pending.pop(token, None)
        if pending is None:
            self._stats["accept_bad_token"] += 1
            return
        pending.stream, pending.rest = reader.stream, reader.rest()
        pending.accepted.set()
        # The connect's task runs the splice; this stream stays open until it ends.
        await pending.done.wait()

    # ------------------------------------------------------------------ splice

    async def _splice(
        self,
        a: tuple[trio.abc.Stream, bytes],
        b: tuple[trio.abc.Stream, bytes],
        limits: RelayLimits,
    ) -> str:
        """Forward both ways until either side ends or a limit is reached; why it ended."""
        state: dict[str, Any] = {"left": limits.link_bytes, "end": "closed"}

        async def pump(src: trio.abc.Stream, dst: trio.abc.Stream, first: bytes) -> None:
            rate = limits.link_bytes_per_s
            # A token bucket holding at most one second's worth: an idle link
            # saves up no more than that.
            tokens, filled = float(rate), trio.current_time()
            data = first
            try:
                while True:
                    if data:
                        if len(data) > state["left"]:
                            state["end"] = "bytes_limit"
                            return
                        state["left"] -= len(data)
                        if self.observer is not None:
                            self.observer(data)
                        await dst.send_all(data)
                        self._stats["bytes_forwarded"] += len(data)
                        now = trio.current_time()
                        tokens = min(float(rate), tokens + (now - filled) * rate) - len(data)
                        filled = now
                        if tokens < 0:
                            await trio.sleep(-tokens / rate)
                    data = bytes(await src.receive_some(_CHUNK))
                    if not data:
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                state["end"] = "broken"
            finally:
                nursery.cancel_scope.cancel()

        with trio.move_on_after(limits.link_seconds) as timer:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, a[0], b[0], a[1])
                nursery.start_soon(pump, b[0], a[0], b[1])
        if timer.cancelled_caught:
            return "time_limit"
        return str(state["end"])

    # ------------------------------------------------------------------ statistics

    def statistics(self) -> dict[str, Any]:
        """Reservations and links now, links spliced and bytes forwarded, refusals by reason."""
        return {
            "enabled": self.enabled(),
            "reservations": len(self.reservations),
            "links": self.links,
            **{k: v for k, v in sorted(self._stats.items())},
        }
