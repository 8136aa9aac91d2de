"""The link pool: :class:`LinkPool` listens, handshakes, admits and runs links.

One link per remote node, ``max_peers`` in all, inbound and outbound
together. Connections that have not proven a key yet are bounded before a
byte is read; an authenticated link joins the pool only past the admission
rules (admission.py: per address, per network, a quarter of the pool kept
for our own dials), and a full pool makes room by evicting its least useful
idle link.

Each link runs a reader task, which decodes frames and feeds the link's
:class:`~p2psocial.protocol.sync.SyncSession`, and a writer task
(:class:`~p2psocial.node.replication.serve.FeedServer`). What the session
hands up (a batch to store, a fork proof, a finished peek) goes to the
:class:`LinkHandler`, as ``trio.serve_listeners`` hands each connection to
its handler. The reader awaits the handler before reading the next frame:
that is the backpressure. Nothing a peer sends can raise out of a link task.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from ...errors import cannot_listen
from ...protocol.errors import P2PSocialError, ProtocolError
from ...protocol.identity import SigningKey, node_id_from_public_key
from ...protocol.noise import generate_private
from ...protocol.punch import CAPABILITY as PUNCH
from ...protocol.relay import (
    PREAMBLE_SIZE,
    TRANSPORT_ACCEPT,
    TRANSPORT_CONNECT,
    TRANSPORT_RESERVE,
    decode_preamble_untrusted,
)
from ...protocol.securelink import SecureLink
from ...protocol.sync import (
    Action,
    Ahead,
    Close,
    Duplicate,
    Ingest,
    PeekDone,
    Send,
    Serve,
    StoreForkProof,
    SyncLimits,
    SyncSession,
)
from ...protocol.wire import (
    Bye,
    Caps,
    PunchAnswer,
    PunchGo,
    PunchOffer,
    decode_message_untrusted,
    encode_message,
)
from ..activity import LimitedLog, short_node
from ..foreground import Foreground
from ..relay.client import RelayAddress, RelayRefused, open_relayed
from ..relay.server import RelayServer
from ..relay.streams import PrefixedStream, StreamEnded, StreamReader
from ..scores import PeerScores, ScoreLimits
from .admission import Admission, PoolLimits
from .heads import Heads
from .link import Dropped, Link, Outbox
from .punch import Puncher
from .serve import FeedServer
from .sockets import open_shared_listeners
from .transport import LinkClosed, NoiseFramedStream, PeerIdentity, secure_handshake

#: The capability of EBT-style sender selection (spec/sync.md §13).
EBT = "ebt"

__all__ = ["LinkHandler", "LinkPool", "PoolLimits"]

#: Records keep the service's logger name from before the split into modules,
#: so logging configuration aimed at the replication service still applies.
log = logging.getLogger("p2psocial.node.replication")

#: Link ends after which no bye is sent (the peer left, or it is a duplicate).
#: Counters of the sessions (newest-first catch-ups begun, and handed to the
#: classic path for want of an answer), closed links included.
_SESSION_COUNTERS = ("catch_ups", "catch_ups_stalled", "haves_sent", "entries_delivered")

#: The shortest sleep of a link's catch-up pacer, in seconds.
_PACER_MIN = 0.05

#: The preamble's transport ids a relay serves (spec/sync.md §11).
_RELAY_TRANSPORTS = frozenset({TRANSPORT_RESERVE, TRANSPORT_CONNECT, TRANSPORT_ACCEPT})

_QUIET_ENDS = frozenset(
    {"eof", "broken", "bye", "duplicate_link", "closed", "shutdown", "path_upgraded"}
)
#: Messages of the link extensions (spec/sync.md §9, §12), not the session's.
_EXTENSION_MESSAGES = (Caps, PunchOffer, PunchAnswer, PunchGo)


class LinkHandler(Protocol):
    """What the pool hands up from its links' sessions.

    ``on_batch`` and ``on_fork_proof`` may raise
    :class:`~p2psocial.node.replication.link.Dropped` to end the link that
    sent it, or :class:`~p2psocial.protocol.errors.P2PSocialError` for local
    trouble (the link ends as ``local_<reason>``).
    """

    async def on_batch(self, link: Link, batch: Ingest) -> None:
        """Store a batch the session accepted."""
        ...

    async def on_fork_proof(self, link: Link, proof: bytes) -> None:
        """Handle a fork proof the peer sent."""
        ...

    def on_peek_done(self, author: bytes) -> None:
        """The peer answered a peek of ``author``'s feed in full."""
        ...

    def on_peer_ahead(self, link: Link, author: bytes, seq: int) -> None:
        """A peer's ``have`` shows it holds ``author`` past our head (capability ebt)."""
        ...

    def on_duplicate(self, link: Link, author: bytes) -> None:
        """The peer pushed an entry of ``author`` we already held."""
        ...

    def on_link_gone(self, link: Link) -> None:
        """``link`` ended (after it left the pool)."""
        ...


class LinkPool:
    """The pool of peer links and their tasks.

    Args:
        handler: receives what the links' sessions hand up.
        server: the writer task of every link.
        heads: our wanted feeds and clock (each new session starts from it).
        node_key: key proving this node in the hello.
        host, port: where to listen (port 0: any; ``port`` is the bound one after ``listen``).
        limits: per-peer protocol limits.
        bounds: how many links, from where, and for how long.
        foreground: each received frame waits for the owner's API requests
            in flight (node/foreground.py).
        relay: the relay service, which gets the connections whose preamble
            names a relay transport (spec/sync.md §11); None: no relay here.
        scores: penalties and graylisting of misbehaving peers (scores.py).
        ebt: list capability ``ebt`` (spec/sync.md §13).
    """

    def __init__(
        self,
        handler: LinkHandler,
        server: FeedServer,
        heads: Heads,
        node_key: SigningKey,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: SyncLimits | None = None,
        bounds: PoolLimits | None = None,
        foreground: Foreground | None = None,
        relay: RelayServer | None = None,
        scores: ScoreLimits | None = None,
        ebt: bool = True,
    ) -> None:
        self.handler = handler
        #: List capability ``ebt`` (spec/sync.md §13) and enable it where both do.
        self.ebt = ebt
        self.relay = relay
        self.foreground = foreground or Foreground()
        self.server = server
        self.heads = heads
        self.node_key = node_key
        self.node_id = node_id_from_public_key(node_key.public_key)
        # The Noise static key lives as long as the pool: the handshake
        # payload binds it to the node key, so it need not be stored.
        self._static = generate_private()
        self.host = host
        self.port = port
        self.limits = limits or SyncLimits()
        self.bounds = bounds or PoolLimits()
        #: Misbehaviour by peer and address; graylisted peers are refused.
        self.scores = PeerScores(scores)
        #: The links in the pool, by remote node id (some may be ending).
        self.links: dict[bytes, Link] = {}
        #: Connections still in the hello, by remote address.
        self.handshaking: Counter[str] = Counter()
        #: Connections refused, by reason.
        self.refused: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._stats: Counter[str] = Counter()
        self.admission = Admission(
            self.node_id,
            node_key.public_key,
            self.bounds,
            self.scores,
            self.links,
            self.handshaking,
            self.heads,
            self._stats,
        )
        self._dialing: set[tuple[str, int]] = set()
        self._listeners: list[trio.SocketListener] = []
        self._nursery: trio.Nursery | None = None
        self._closed = {"bytes_in": 0, "bytes_out": 0, "frames_in": 0, "frames_out": 0}
        # Link made / lost lines, at most one a minute per peer and kind: a
        # flapping peer must not fill the log.
        self._events = LimitedLog(log)
        #: Makes relayed links direct (spec/sync.md §12) once the service sets it.
        self.puncher: Puncher | None = None

    # ------------------------------------------------------------------ lifecycle

    async def listen(self) -> None:
        """Bind the listening socket (``run`` does it if not done yet).

        Raises:
            NodeError: the address cannot be bound (in use, not this machine's).
        """
        if self._listeners:
            return
        try:
            # Shared with the connects of hole punching (sockets.py).
            self._listeners = await open_shared_listeners(self.host or "", self.port)
        except OSError as exc:
            shown = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            raise cannot_listen("TCP port for peer links", shown, exc) from None
        self.port = self._listeners[0].socket.getsockname()[1]

    async def close_listeners(self) -> None:
        """Close the listening socket, if open (``run`` does it on the way out)."""
        listeners, self._listeners = self._listeners, []
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()

    async def run(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept and run links until cancelled.

        Calls ``task_status.started((host, port))`` once the listener is up.
        """
        await self.listen()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for listener in self._listeners:
                    nursery.start_soon(self._accept, listener)
                task_status.started((self.host, self.port))
        finally:
            self._nursery = None
            await self.close_listeners()

    async def _accept(self, listener: trio.SocketListener) -> None:
        assert self._nursery is not None
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                self._stats["accept_errors"] += 1
                log.warning("accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            claim = self._punch_claim(stream)
            if claim is not None:
                # The other end of a simultaneous open whose SYN reached our
                # listener: we stay its Noise initiator (spec/sync.md §12.5).
                self.serve_punched(stream, claim[0][0], claim[1], True, claim[2])
                continue
            self._nursery.start_soon(self._dispatch, stream)

    def _punch_claim(self, stream: trio.SocketStream) -> tuple[tuple[str, int], bytes, str] | None:
        if self.puncher is None:
            return None
        try:
            remote = stream.socket.getpeername()
        except OSError:
            return None
        claim = self.puncher.claim((remote[0], remote[1]))
        return None if claim is None else ((remote[0], remote[1]), *claim)

    async def _dispatch(self, stream: trio.SocketStream) -> None:
        """Read an inbound connection's preamble and hand it to its transport.

        Transport 1 (and anything that is not a preamble, which the link
        refuses with its own reason) goes to the link; 2-4 to the relay.
        """
        try:
            host = stream.socket.getpeername()[0]
        except OSError:
            host = "?"
        if self.admission.too_many_handshakes(host):
            self.refused["too_many_handshakes"] += 1
            await stream.aclose()
            return
        reader = StreamReader(stream)
        self.handshaking[host] += 1
        try:
            with trio.fail_after(self.bounds.handshake_timeout):
                head = await reader.exactly(PREAMBLE_SIZE)
        except (StreamEnded, trio.TooSlowError) as exc:
            self.refused[f"handshake_{getattr(exc, 'reason', None) or 'timeout'}"] += 1
            await stream.aclose()
            return
        finally:
            self.handshaking[host] -= 1
            if self.handshaking[host] <= 0:
                del self.handshaking[host]
        try:
            transport = decode_preamble_untrusted(head)
        except ProtocolError:
            transport = None
        if transport in _RELAY_TRANSPORTS and self.relay is not None and self.relay.enabled():
            assert transport is not None
            try:
                await self.relay.handle(transport, reader, host)
            finally:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
            return
        await self._serve_stream(
            PrefixedStream(stream, head + reader.rest()),
            "inbound",
            host,
            None,
        )

    async def serve_relayed(self, stream: trio.abc.Stream, relay: RelayAddress) -> None:
        """Run a connection a relay spliced to us (we accepted it) as an inbound link."""
        if self._nursery is None:
            await stream.aclose()
            return
        self._nursery.start_soon(self._serve_stream, stream, "inbound", relay.host, None, "relayed")

    def serve_punched(
        self, stream: trio.abc.Stream, host: str, node_id: bytes, initiator: bool, path: str
    ) -> None:
        """Run a connection a punch attempt made (spec/sync.md §12) as a link to ``node_id``."""
        if self._nursery is None:
            return
        direction = "outbound" if initiator else "inbound"
        self._nursery.start_soon(self._serve_stream, stream, direction, host, node_id, path)

    def capabilities(self) -> tuple[str, ...]:
        """The capability names this node lists in its ``caps`` (spec/sync.md §9), sorted."""
        names = list(self.puncher.capabilities()) if self.puncher is not None else []
        if self.ebt:
            names.append(EBT)
        return tuple(sorted(names))

    # ------------------------------------------------------------------ queries

    def open_links(self) -> list[Link]:
        """Links that are up (hello done, not being dropped)."""
        return [lk for lk in self.links.values() if lk.is_open()]

    def broadcast(
        self, make: Callable[[SyncSession], list[Action]], *, skip: Link | None = None
    ) -> None:
        """Run a local event on every open link's session (but ``skip``) and queue its output."""
        for link in self.open_links():
            if link is not skip:
                link.perform_local(make(link.session))

    def max_inbound(self) -> int:
        """Inbound links at most: a quarter of the pool stays for our own dials."""
        return self.admission.max_inbound()

    def has_room(self) -> bool:
        """Whether a dial of ours could get a link (with room, or by evicting)."""
        return self.admission.has_room()

    def dialing(self, host: str, port: int) -> bool:
        """Whether a dial to host:port is under way."""
        return (host, port) in self._dialing

    def peers(self) -> list[dict[str, Any]]:
        """Connected peers: node id (hex), host, port, direction, feeds shared."""
        return [
            {
                "node_id": link.peer.node_id.hex(),
                "host": link.host,
                "port": link.peer.listen_port,
                "direction": link.direction,
                "path": link.path,
                "feeds": link.shares(self.heads),
            }
            for link in self.links.values()
        ]

    # ------------------------------------------------------------------ dialing

    async def dial(self, host: str, port: int, node_id: bytes | None = None) -> bool:
        """Open a link to host:port; True once it is up (or already was).

        With ``node_id`` (a swarm or DHT lookup names the node it found), a
        link that turns out to be another node is refused (``handshake_wrong_node``).
        """
        for link in self.links.values():
            if link.host == host and link.peer.listen_port == port:
                return True
        if (host, port) in self._dialing or self._nursery is None:
            return False
        if self.scores.graylisted(node_id, host, trio.current_time()):
            self.refused["graylisted"] += 1
            return False
        if not self.has_room():
            self.refused["pool_full"] += 1
            return False
        self._dialing.add((host, port))
        try:
            try:
                with trio.fail_after(self.bounds.handshake_timeout):
                    stream = await trio.open_tcp_stream(host, port)
            except (OSError, trio.TooSlowError):
                self._stats["dials_failed"] += 1
                return False
            except Exception:
                # A bug (or an address the resolver chokes on) ends this dial
                # only; it must never reach the service's nursery.
                self._stats["dials_failed"] += 1
                self._stats["internal_errors"] += 1
                log.exception("dialling %s:%s failed", host, port)
                return False
            return bool(
                await self._nursery.start(self._serve_stream, stream, "outbound", host, node_id)
            )
        finally:
            self._dialing.discard((host, port))

    async def dial_relayed(self, relay: RelayAddress, node_id: bytes) -> bool:
        """Open a link to node ``node_id`` through ``relay`` (spec/sync.md §11.3).

        The link is the ordinary Noise link, pinned to ``node_id``; True once it is up.
        """
        if node_id in self.links:
            return True
        key = (f"relay:{relay.host}", relay.port)
        if key in self._dialing or self._nursery is None:
            return False
        if self.scores.graylisted(node_id, "", trio.current_time()):
            self.refused["graylisted"] += 1
            return False
        if not self.has_room():
            self.refused["pool_full"] += 1
            return False
        self._dialing.add(key)
        try:
            try:
                with trio.fail_after(self.bounds.handshake_timeout):
                    stream = await open_relayed(relay, node_id)
            except RelayRefused as exc:
                self._stats[f"relayed_dials_{exc.reason}"] += 1
                self._stats["dials_failed"] += 1
                return False
            except (OSError, trio.TooSlowError):
                self._stats["dials_failed"] += 1
                return False
            self._stats["relayed_dials"] += 1
            return bool(
                await self._nursery.start(
                    self._serve_stream, stream, "outbound", relay.host, node_id, "relayed"
                )
            )
        finally:
            self._dialing.discard(key)

    # ------------------------------------------------------------------ links

    async def _hello(self, framed: NoiseFramedStream, host: str) -> PeerIdentity | None:
        """The handshake, bounded in time and counted per address; None if it failed."""
        self.handshaking[host] += 1
        try:
            with trio.fail_after(self.bounds.handshake_timeout):
                return await secure_handshake(
                    framed, self.node_key, self.port, limits=self.limits.wire
                )
        except (ProtocolError, LinkClosed, trio.TooSlowError) as exc:
            reason = getattr(exc, "reason", None) or "timeout"
            self.refused[f"handshake_{reason}"] += 1
            return None
        finally:
            self.handshaking[host] -= 1
            if self.handshaking[host] <= 0:
                del self.handshaking[host]

    async def _serve_stream(
        self,
        stream: trio.abc.Stream,
        direction: str,
        host: str,
        expected: bytes | None,
        path: str = "direct",
        *,
        task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Handshake, register and run one link; never raises on peer behaviour."""
        secure = SecureLink(
            initiator=direction == "outbound",
            node_key=self.node_key,
            static_private=self._static,
            expected_node_id=expected,
            limits=self.limits.wire,
        )
        framed = NoiseFramedStream(stream, secure)
        link: Link | None = None
        try:
            peer = await self._hello(framed, host)
            if peer is None:
                task_status.started(False)
                return
            if self.puncher is not None and path == "direct" and direction == "inbound":
                # A peer we are punching to connected to our listener.
                path = self.puncher.expected.get(peer.node_id, path)
            refusal = self.admission.admit(peer, direction, host, path)
            if refusal is not None:
                self.refused[refusal] += 1
                task_status.started(False)
                # Say why, so a dialler knows it was refused (and need not
                # count this as a link); best effort and brief.
                with trio.move_on_after(1.0), contextlib.suppress(LinkClosed):
                    await framed.send_frame(encode_message(Bye(refusal)))
                return
            link = self._register(peer, direction, host, framed, path)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_link, link)
                # Up means the peer answered with a message of its own, not
                # merely finished the hello: a peer that refuses us says bye.
                with trio.move_on_after(self.bounds.handshake_timeout):
                    await link.answered.wait()
                task_status.started(link.reason is None)
        finally:
            if link is not None:
                if self.puncher is not None:
                    self.puncher.link_gone(link)
                if self.links.get(link.peer.node_id) is link:
                    del self.links[link.peer.node_id]
                self.handler.on_link_gone(link)
                self._dropped[link.reason or "closed"] += 1
                self._link_event("lost", link, f": {link.reason or 'closed'}")
                self._charge(link)
                for key in self._closed:
                    self._closed[key] += getattr(framed, key)
                for key in _SESSION_COUNTERS:
                    self._stats[key] += getattr(link.session, key)
            await framed.aclose()

    def _charge(self, link: Link) -> None:
        """Score a link that ended by the peer's fault; say so if it is graylisted now."""
        now = trio.current_time()
        # A relayed link comes from its relay's address, shared by every node
        # behind that relay: only the peer's node id answers for its fault.
        host = link.host if link.path != "relayed" else ""
        until = self.scores.penalize(link.peer.node_id, host, link.reason or "closed", now)
        if until:
            log.warning(
                "peer %s at %s graylisted for %.0f s (%s)",
                short_node(link.peer.node_id),
                link.host,
                until - now,
                link.reason,
            )

    def _register(
        self, peer: PeerIdentity, direction: str, host: str, framed: NoiseFramedStream, path: str
    ) -> Link:
        """Put an admitted link in the pool (ending any older one to the same node)."""
        dialer = self.node_id if direction == "outbound" else peer.node_id
        session = SyncSession(self.heads, limits=self.limits)
        link = Link(
            peer=peer,
            host=host,
            direction=direction,
            stream=framed,
            session=session,
            outbox=Outbox(max_control=4 * self.limits.wire.max_clock),
            dialer_id=dialer,
            started=trio.current_time(),
            path=path,
        )
        old = self.links.get(peer.node_id)
        if old is not None:
            # A direct link replaces a relayed one; what was in flight on the
            # relayed link is asked again by the new session's clocks.
            upgrade = old.path == "relayed" and path != "relayed"
            old.drop("path_upgraded" if upgrade else "duplicate_link")
        self.links[peer.node_id] = link
        self._stats["links_opened"] += 1
        link.last_in = link.last_out = link.started
        if peer.ext:
            # caps goes first, before the session's first clock (spec/sync.md §9).
            link.perform_local([Send(Caps(self.capabilities()))])
        link.perform_local(session.start(link.started))
        if self.puncher is not None:
            self.puncher.link_up(link)
        self._link_event("made", link, f", {path}" if path != "direct" else "")
        return link

    def _link_event(self, what: str, link: Link, why: str) -> None:
        """Log a link made or lost (rate-limited per peer)."""
        self._events.info(
            (what, link.peer.node_id),
            trio.current_time(),
            "link %s: peer %s at %s:%d (%s)%s",
            what,
            short_node(link.peer.node_id),
            link.host,
            link.peer.listen_port,
            link.direction,
            why,
        )

    async def _run_link(self, link: Link) -> None:
        with link.cancel:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guard, link, self._reader)
                nursery.start_soon(self._guard, link, self.server.drain)
                nursery.start_soon(self._guard, link, self._pacer)
        if link.reason not in _QUIET_ENDS and link.session.state == "open":
            # Tell the peer why, best effort and briefly.
            bye = link.session.close(link.reason or "closed")
            with trio.move_on_after(0.2) as scope:
                scope.shield = True
                for act in bye:
                    if isinstance(act, Send):
                        try:
                            await link.stream.send_frame(encode_message(act.message))
                        except LinkClosed:
                            break

    async def _guard(self, link: Link, fn: Callable[[Link], Awaitable[None]]) -> None:
        """Run a link task; turn every way it can end into a drop reason."""
        try:
            await fn(link)
        except Dropped as exc:
            link.drop(exc.reason)
        except ProtocolError as exc:
            link.drop(f"protocol_{exc.reason}")
        except LinkClosed as exc:
            link.drop(exc.reason)
        except P2PSocialError as exc:  # storage trouble: not the peer's fault
            log.warning("link to %s ended: %s", link.peer.node_id.hex()[:12], exc)
            link.drop(f"local_{exc.reason}")
        except Exception:
            log.exception("bug in a replication link task")
            link.drop("internal_error")
        else:
            link.drop("closed")

    async def _pacer(self, link: Link) -> None:
        """The session's catch-up timers (spec/sync.md 5.6): paced requests, stalls.

        Idle links look once a second; a link catching up wakes when its
        session says (at most every ``_PACER_MIN`` seconds).
        """
        while True:
            due = link.session.next_poll()
            now = trio.current_time()
            await trio.sleep(1.0 if due is None else min(1.0, max(_PACER_MIN, due - now)))
            # A closed session returns nothing; the link's end cancels this task.
            link.perform_local(link.session.poll(trio.current_time()))

    async def _reader(self, link: Link) -> None:
        while True:
            with trio.move_on_after(self.bounds.idle_timeout) as idle:
                body = await link.stream.receive_frame()
            if idle.cancelled_caught:
                # The peer keeps a live link busy at least with keepalives.
                raise Dropped("idle_timeout")
            link.last_in = trio.current_time()
            # Decoding and handling a frame runs on the event loop: let the
            # owner's API requests go first.
            await self.foreground.yield_to_requests()
            msg = decode_message_untrusted(body, self.limits.wire)
            first, link.heard = not link.heard, True
            if isinstance(msg, _EXTENSION_MESSAGES):
                self._extension(link, msg, first)
                link.answered.set()
                continue
            actions = link.session.receive(msg, link.last_in)
            if not isinstance(msg, Bye):
                link.answered.set()
            for act in actions:
                if isinstance(act, (Send, Serve)):
                    link.outbox.add(act)
                elif isinstance(act, Ingest):
                    link.items_in += len(act.items)
                    await self.handler.on_batch(link, act)
                elif isinstance(act, StoreForkProof):
                    await self.handler.on_fork_proof(link, act.proof)
                elif isinstance(act, PeekDone):
                    self.handler.on_peek_done(act.author)
                elif isinstance(act, Ahead):
                    self.handler.on_peer_ahead(link, act.author, act.seq)
                elif isinstance(act, Duplicate):
                    self.handler.on_duplicate(link, act.author)
                elif isinstance(act, Close):
                    link.drop("bye")
                    return

    def _extension(
        self, link: Link, msg: Caps | PunchOffer | PunchAnswer | PunchGo, first: bool
    ) -> None:
        """``caps`` and the messages of the capabilities both ends listed (spec/sync.md §9)."""
        if isinstance(msg, Caps):
            if not (first and link.peer.ext):
                raise ProtocolError("caps is only the first message after auth", reason="bad_state")
            link.caps = frozenset(msg.names)
            if self.ebt and EBT in link.caps:
                link.session.enable_ebt()
            if self.puncher is not None and PUNCH in link.caps and self._nursery is not None:
                self.puncher.link_ready(link, self._nursery)
            return
        if self.puncher is None or PUNCH not in (link.caps or ()) or self._nursery is None:
            raise ProtocolError(
                f"{type(msg).__name__} without the punch capability", reason="unknown_message"
            )
        self.puncher.receive(link, msg, self._nursery)

    # ------------------------------------------------------------------ statistics

    def statistics(self) -> dict[str, Any]:
        """Links, traffic (closed links included), refusals and drops; counters only grow."""
        links = list(self.links.values())
        traffic = {
            key: total + sum(getattr(lk.stream, key) for lk in links)
            for key, total in self._closed.items()
        }
        return {
            "peers": len(links),
            **traffic,
            **self.server.statistics(),
            "peers_refused": dict(self.refused),
            "links_dropped": dict(self._dropped),
            "links_opened": self._stats["links_opened"],
            "links_evicted": self._stats["links_evicted"],
            "dials_failed": self._stats["dials_failed"],
            "relayed_dials": self._stats["relayed_dials"],
            **{k: v for k, v in self._stats.items() if k.startswith("relayed_dials_")},
            "accept_errors": self._stats["accept_errors"],
            "internal_errors": self._stats["internal_errors"],
            "handshaking": sum(self.handshaking.values()),
            **({"punch": self.puncher.statistics()} if self.puncher is not None else {}),
            "peer_scores": self.scores.statistics(trio.current_time()),
            **{
                key: self._stats[key] + sum(getattr(lk.session, key) for lk in links)
                for key in _SESSION_COUNTERS
            },
        }
