"""Using relays: :class:`RelayClient` keeps reservations; :func:`open_relayed` dials through one.

A node that cannot be dialled keeps reservations at 1-3 relays found in the
DHT (spec/sync.md §11.5). When a dialler asks a relay for it, the relay says
so on the reservation's control connection; the client opens a fresh
connection back with the token and hands it to the link pool as an inbound
link. A lost reservation is replaced, with one line in the log.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from ...protocol.errors import DecodeError, P2PSocialError
from ...protocol.identity import SigningKey, node_id_from_public_key
from ...protocol.relay import (
    CHALLENGE_SIZE,
    CONNECT_ANSWER_SIZE,
    STATUS_REASONS,
    TRANSPORT_RESERVE,
    ControlDecoder,
    Incoming,
    decode_challenge_untrusted,
    decode_connect_answer_untrusted,
    encode_accept,
    encode_connect,
    encode_keepalive,
    encode_preamble,
    encode_proof,
    reserve_signed_bytes,
)
from .streams import PrefixedStream, StreamEnded, StreamReader

__all__ = ["RelayAddress", "RelayClient", "RelayRefused", "open_relayed"]

log = logging.getLogger("p2psocial.node.relay")


class RelayRefused(P2PSocialError):
    """A relay refused a reservation or a connect; ``reason`` says why."""


@dataclass(frozen=True, slots=True)
class RelayAddress:
    """Where a relay listens (its link port) and the node id it proves."""

    node_id: bytes
    host: str
    port: int

    def to_dict(self) -> dict[str, Any]:
        """``{"node_id": hex, "host", "port"}`` (for status)."""
        return {"node_id": self.node_id.hex(), "host": self.host, "port": self.port}


async def _read_answer(reader: StreamReader, size: int) -> bytes:
    """``size`` bytes, or the 6-byte refusal ``MAGIC || 00 00`` then end of stream."""
    try:
        return await reader.exactly(size)
    except StreamEnded:
        raise RelayRefused("the relay refused this transport", reason="link_unsupported") from None


async def open_relayed(relay: RelayAddress, target: bytes) -> trio.abc.Stream:
    """A connection spliced through ``relay`` to node ``target``, ready for a link.

    The caller bounds the time (connect and answer). It runs the ordinary link (preamble, Noise XX expecting
    ``target``) over the stream it returns, and closes it.

    Raises:
        RelayRefused: the relay answered with a refusal (its reason:
            ``no_reservation``, ``relay_full``, ``target_silent``,
            ``link_unsupported``) or with bytes that are not an answer.
        OSError: the relay could not be reached.
    """
    stream = await trio.open_tcp_stream(relay.host, relay.port)
    try:
        await stream.send_all(encode_connect(target))
        reader = StreamReader(stream)
        answer = await _read_answer(reader, CONNECT_ANSWER_SIZE)
        try:
            reason = decode_connect_answer_untrusted(answer)
        except DecodeError as exc:
            raise RelayRefused(str(exc), reason=exc.reason) from None
        if reason != "ok":
            raise RelayRefused(f"the relay refused: {reason}", reason=reason)
    except BaseException:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        raise
    return reader.stream_with_rest()


class RelayClient:
    """Keeps reservations at up to ``want`` relays while ``needed()`` says so.

    Args:
        node_key: the key this node proves at each relay.
        find_relays: candidate relays (the DHT's relay swarm); may raise
            P2PSocialError or OSError (counted, retried later).
        on_stream: takes an accepted connection (the dialler's end is on the
            other side of the splice) and runs it as an inbound link.
        needed: whether this node should hold reservations now (it is not
            reachable, or it was told to).
        on_change: called when the set of reservations changes.
        want: reservations to keep (1..3).
        check_interval: seconds between looks at the reservations.
        keepalive: seconds between keepalives; a relay silent for 3x this is lost.
    """

    def __init__(
        self,
        node_key: SigningKey,
        *,
        find_relays: Callable[[], Awaitable[list[RelayAddress]]],
        on_stream: Callable[[trio.abc.Stream, RelayAddress], Awaitable[None]],
        needed: Callable[[], bool],
        on_change: Callable[[], None] = lambda: None,
        want: int = 2,
        check_interval: float = 5.0,
        keepalive: float = 20.0,
        max_accepting: int = 8,
    ) -> None:
        self.node_key = node_key
        self.node_id = node_id_from_public_key(node_key.public_key)
        self._find = find_relays
        self._on_stream = on_stream
        self._needed = needed
        self._on_change = on_change
        self.want = want
        self.check_interval = check_interval
        self.keepalive = keepalive
        self.max_accepting = max_accepting
        #: Relays holding a reservation for us now.
        self.active: dict[bytes, RelayAddress] = {}
        self._trying: set[bytes] = set()
        self._failed_until: dict[bytes, float] = {}
        self._accepting = 0
        self._changed = trio.Event()
        self._stats: Counter[str] = Counter()
        self._nursery: trio.Nursery | None = None

    def wake(self) -> None:
        """Look at the reservations now (the candidates or the need changed)."""
        self._changed.set()

    def relays(self) -> list[RelayAddress]:
        """The relays we hold a reservation at."""
        return list(self.active.values())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep reservations until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                if self._needed() and len(self.active) + len(self._trying) < self.want:
                    await self._top_up(nursery)
                with trio.move_on_after(self.check_interval):
                    await self._changed.wait()
                self._changed = trio.Event()

    async def _top_up(self, nursery: trio.Nursery) -> None:
        found: list[RelayAddress] = []
        try:
            with trio.move_on_after(15):
                found = await self._find()
                self._stats["relay_lookups"] += 1
        except (P2PSocialError, OSError):
            self._stats["relay_lookup_errors"] += 1
            return
        now = trio.current_time()
        for relay in found:
            if len(self.active) + len(self._trying) >= self.want:
                break
            if relay.node_id == self.node_id or relay.node_id in self.active:
                continue
            if relay.node_id in self._trying or self._failed_until.get(relay.node_id, 0) > now:
                continue
            self._trying.add(relay.node_id)
            nursery.start_soon(self._keep, relay)

    async def _keep(self, relay: RelayAddress) -> None:
        """Hold one reservation until it is lost."""
        reason = "closed"
        held = False
        try:
            with trio.fail_after(10):
                stream = await trio.open_tcp_stream(relay.host, relay.port)
        except (OSError, trio.TooSlowError):
            self._trying.discard(relay.node_id)
            self._failed(relay, "unreachable")
            return
        try:
            async with stream:
                reader = StreamReader(stream)
                with trio.fail_after(10):
                    await stream.send_all(encode_preamble(TRANSPORT_RESERVE))
                    relay_id, nonce = decode_challenge_untrusted(
                        await _read_answer(reader, CHALLENGE_SIZE)
                    )
                    if relay_id != relay.node_id:
                        raise RelayRefused("another node answered", reason="wrong_node")
                    sig = self.node_key.sign(reserve_signed_bytes(nonce, relay_id))
                    await stream.send_all(encode_proof(self.node_key.public_key, sig))
                    status = STATUS_REASONS.get((await reader.exactly(1))[0], "bad_status")
                if status != "ok":
                    raise RelayRefused(f"the relay refused: {status}", reason=status)
                self._trying.discard(relay.node_id)
                self.active[relay.node_id] = relay
                held = True
                self._stats["reservations_made"] += 1
                log.info("relay reservation held at %s:%d", relay.host, relay.port)
                self._on_change()
                reason = await self._serve_reservation(stream, reader, relay)
        except (RelayRefused, DecodeError, StreamEnded) as exc:
            reason = exc.reason or "refused"
        except trio.TooSlowError:
            reason = "timeout"
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            reason = "broken"
        except trio.Cancelled:
            reason = "stopped"  # this node is stopping: nothing to replace
            raise
        finally:
            self._trying.discard(relay.node_id)
            if held:
                del self.active[relay.node_id]
                self._on_change()
                if reason != "stopped":
                    log.warning(
                        "relay at %s:%d lost (%s); looking for another",
                        relay.host,
                        relay.port,
                        reason,
                    )
            self._failed(relay, reason)

    def _failed(self, relay: RelayAddress, reason: str) -> None:
        self._stats[f"reservations_ended_{reason}"] += 1
        self._failed_until[relay.node_id] = trio.current_time() + 30.0
        self._changed.set()

    async def _serve_reservation(
        self, stream: trio.abc.Stream, reader: StreamReader, relay: RelayAddress
    ) -> str:
        """Answer incoming connects and keep the reservation alive; why it ended."""
        decoder = ControlDecoder()
        lock = trio.Lock()

        async def keepalives() -> None:
            while True:
                await trio.sleep(self.keepalive)
                async with lock:
                    await stream.send_all(encode_keepalive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keepalives)
            for msg in decoder.feed_untrusted(reader.rest()):
                self._incoming(msg, relay)
            while True:
                with trio.move_on_after(3 * self.keepalive) as idle:
                    data = await stream.receive_some(4096)
                if idle.cancelled_caught:
                    nursery.cancel_scope.cancel()
                    return "idle"
                if not data:
                    nursery.cancel_scope.cancel()
                    return "eof"
                for msg in decoder.feed_untrusted(bytes(data)):
                    self._incoming(msg, relay)
        return "closed"  # pragma: no cover - the loop only returns

    def _incoming(self, msg: object, relay: RelayAddress) -> None:
        if not isinstance(msg, Incoming):
            return
        if self._accepting >= self.max_accepting or self._nursery is None:
            self._stats["accepts_skipped"] += 1
            return
        self._accepting += 1
        self._nursery.start_soon(self._accept, msg.token, relay)

    async def _accept(self, token: bytes, relay: RelayAddress) -> None:
        try:
            with trio.fail_after(10):
                stream = await trio.open_tcp_stream(relay.host, relay.port)
            try:
                await stream.send_all(encode_accept(token))
            except BaseException:
                await stream.aclose()
                raise
        except (OSError, trio.TooSlowError, trio.BrokenResourceError):
            self._stats["accepts_failed"] += 1
            return
        finally:
            self._accepting -= 1
        self._stats["accepts"] += 1
        await self._on_stream(PrefixedStream(stream), relay)

    def statistics(self) -> dict[str, Any]:
        """Reservations held now, and counters of reservations and accepts."""
        return {
            "relays_in_use": len(self.active),
            **{k: v for k, v in sorted(self._stats.items())},
        }
