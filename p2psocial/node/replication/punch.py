"""Turning relayed links into direct ones: :class:`Puncher` (spec/sync.md §12).

The decisions are :class:`~p2psocial.protocol.punch.PunchSession`'s; this
module runs them: a task per relayed link that drives the initiator's
attempts, and the connects of a dial plan, made from the link port (see
sockets.py) again and again for the plan's window until a direct link to the
peer is up. A connect that succeeds becomes an ordinary Noise link pinned to
the peer's node id; the pool then ends the relayed link (``path_upgraded``).

A spray plan (§12.9, one NAT consistent and the other varying) is a birthday
search instead: the hard side holds many connects to the easy side from
fresh ports, the easy side probes random ports of the hard side in waves
from its link port, and the first connect that completes is the link.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import random
from collections import Counter
from collections import Counter as _Counter
from collections.abc import Callable
from typing import Any, Protocol

import trio
import trio.lowlevel

from ...protocol.punch import (
    INITIATOR,
    SPRAY_CAPABILITY,
    Dial,
    Failed,
    PunchAction,
    PunchLimits,
    PunchSession,
    SendPunch,
    punch_role,
)
from ...protocol.sync import Send
from ...protocol.wire import Message
from .link import Link
from .sockets import connect_from


class PunchPool(Protocol):
    """What the puncher uses of the link pool (pool.py; no import, no cycle)."""

    links: dict[bytes, Link]
    handshaking: _Counter[str]
    host: str
    port: int

    def serve_punched(
        self, stream: trio.abc.Stream, host: str, node_id: bytes, initiator: bool, path: str
    ) -> None:
        """Run a connection a punch made as a link to ``node_id``."""
        ...


__all__ = ["OwnAddresses", "Puncher"]

log = logging.getLogger("p2psocial.node.replication")

#: What this node offers: its candidate addresses and its dial-back verdict.
OwnAddresses = Callable[[], tuple[tuple[tuple[str, int], ...], bool]]
#: This node's NAT mapping behaviour (spec/dht.md §4.4): consistent, varying, unknown.
OwnMapping = Callable[[], str]

#: Connects to one address in one plan at most, and the pause after a refused
#: one (spec/sync.md §12.4).
_MAX_CONNECTS = 300
_RETRY_PAUSE = (0.005, 0.015)
#: A spray's Noise responder keeps taking connects that complete for this
#: long after its first (§12.9): the initiator may have picked another.
_SPRAY_GRACE = 1.0
#: Connects a spray's responder hands to the pool at most.
_SPRAY_SERVES = 4


class Puncher:
    """Runs the punch attempts of the pool's relayed links.

    Args:
        pool: the link pool (it calls :meth:`link_ready` and :meth:`receive`).
        own: this node's candidate addresses and whether it is dialable.
        limits: timings and bounds (spec/sync.md §12.4, §12.9).
        mapping: this node's NAT mapping behaviour; None: no spray (the
            ``punch_spray`` capability is not listed).
    """

    def __init__(
        self,
        pool: PunchPool,
        own: OwnAddresses,
        limits: PunchLimits | None = None,
        mapping: OwnMapping | None = None,
    ):
        self.pool = pool
        self.own = own
        self.limits = limits or PunchLimits()
        self.mapping = mapping
        self._sessions: dict[int, PunchSession] = {}
        self._waiters: dict[bytes, trio.Event] = {}
        #: Remote addresses whose connection to our listener is a punch of
        #: ours in which we are the Noise initiator: (node id, path).
        self._claims: dict[tuple[str, int], tuple[bytes, str]] = {}
        #: The same for any port of a host: the easy side of a spray (§12.9).
        self._host_claims: dict[str, tuple[bytes, str]] = {}
        #: A spray is under way (at most one at a time, §12.9).
        self._spraying = False
        #: Peers to which a spray of ours, as Noise initiator, has handed the
        #: pool its one connection (a probe's, or one our listener took).
        self._served: set[bytes] = set()
        #: Connects a spray of ours, as Noise responder, handed to the pool.
        self._responder_serves = 0
        #: Peers being punched: the path label an inbound link from them gets.
        self.expected: dict[bytes, str] = {}
        self._stats: Counter[str] = Counter()
        #: Seconds from the relayed link up to the direct link up, last few.
        self.latencies: list[float] = []

    def link_ready(self, link: Link, nursery: trio.Nursery) -> None:
        """Both ends listed the capability: start this link's state machine."""
        role = punch_role(link.path, link.direction)
        if role is None or id(link) in self._sessions:
            return
        session = PunchSession(role, trio.current_time(), self.limits)
        self._sessions[id(link)] = session
        if role == INITIATOR:
            nursery.start_soon(self._drive, link, session, nursery)

    def claim(self, remote: tuple[str, int]) -> tuple[bytes, str] | None:
        """The peer and path of an accepted connection that a punch of ours made
        (spec/sync.md §12.5), if it is one and we are its Noise initiator."""
        got = self._claims.get(remote)
        if got is not None:
            return got
        got = self._host_claims.get(remote[0])
        if got is None or got[0] in self._served:
            return None  # a spray's initiator uses one connection, the first
        self._served.add(got[0])
        return got

    def capabilities(self) -> tuple[str, ...]:
        """The punch capabilities this node lists (sorted)."""
        return ("punch", SPRAY_CAPABILITY) if self.mapping is not None else ("punch",)

    def _mapping_for(self, link: Link) -> str | None:
        """Our mapping behaviour, to send on ``link``: only if both sides spray."""
        if self.mapping is None or SPRAY_CAPABILITY not in (link.caps or ()):
            return None
        return self.mapping()

    def link_up(self, link: Link) -> None:
        """A link joined the pool: wake the attempts waiting for a direct one to its peer."""
        if link.path != "relayed":
            waiter = self._waiters.pop(link.peer.node_id, None)
            if waiter is not None:
                waiter.set()

    def link_gone(self, link: Link) -> None:
        """Forget a link that ended."""
        self._sessions.pop(id(link), None)

    def receive(self, link: Link, msg: Message, nursery: trio.Nursery) -> None:
        """A punch message from the peer (raises ProtocolError on a violation)."""
        session = self._sessions.get(id(link))
        if session is None:  # a direct link, or the capability not agreed
            session = PunchSession("responder", trio.current_time(), self.limits)
            session.state = "closed"  # every message is then bad_state
        now = trio.current_time()
        self._act(link, session, session.poll(now), nursery)
        addrs, dialable = self.own() if session.role != INITIATOR else ((), False)
        mapping = self._mapping_for(link) if session.role != INITIATOR else None
        self._act(link, session, session.receive(msg, now, addrs, dialable, mapping), nursery)
        if session.state == "answered" and session.path_hint is not None:
            # The initiator may connect before its go reaches us (a reversal).
            self.expected[link.peer.node_id] = session.path_hint

    def _act(
        self, link: Link, session: PunchSession, actions: list[PunchAction], nursery: trio.Nursery
    ) -> None:
        for act in actions:
            if isinstance(act, SendPunch):
                link.perform_local([Send(act.message)])
            elif isinstance(act, Dial):
                self._stats["punch_attempts"] += 1
                nursery.start_soon(self._execute, link, session, act)
            elif isinstance(act, Failed):
                self._stats[f"punch_failed_{act.reason}"] += 1
                self.expected.pop(link.peer.node_id, None)

    async def _drive(self, link: Link, session: PunchSession, nursery: trio.Nursery) -> None:
        """The initiator's attempts, while the link is up and still relayed."""
        while link.reason is None and self.pool.links.get(link.peer.node_id) is link:
            now = trio.current_time()
            due = session.next_attempt()
            if due is not None and due <= now:
                addrs, dialable = self.own()
                mapping = self._mapping_for(link)
                self._act(link, session, session.start(now, addrs, dialable, mapping), nursery)
            else:
                self._act(link, session, session.poll(now), nursery)
            await trio.sleep(0.05 if session.state == "offered" else 0.5)

    def _direct(self, node_id: bytes) -> bool:
        lk = self.pool.links.get(node_id)
        return lk is not None and lk.reason is None and lk.path != "relayed"

    async def _execute(self, link: Link, session: PunchSession, plan: Dial) -> None:
        if plan.spray is not None:
            if self._spraying:
                # One spray at a time bounds the sockets and SYNs (spec/sync.md
                # §12.9); this attempt fails and is retried on the schedule.
                self._stats["punch_failed_spray_busy"] += 1
                session.finished(False, trio.current_time())
                return
            self._spraying = True
            self._responder_serves = 0
            try:
                await self._execute_plan(link, session, plan)
            finally:
                self._spraying = False
        else:
            await self._execute_plan(link, session, plan)

    async def _execute_plan(self, link: Link, session: PunchSession, plan: Dial) -> None:
        node_id = link.peer.node_id
        self.expected[node_id] = plan.path
        claimed = [(h, p) for h, p in plan.addrs] if plan.noise_initiator else []
        for addr in claimed:
            self._claims[addr] = (node_id, plan.path)
        hosts = sorted({h for h, _ in plan.addrs}) if plan.spray == "easy" else []
        if plan.noise_initiator:
            # A late SYN of the hard side can meet a probe's mapping after the
            # probe's socket closed; it then reaches our listener (§12.9).
            for h in hosts:
                self._host_claims[h] = (node_id, plan.path)
        ok = False
        try:
            await trio.sleep_until(plan.at)
            with trio.move_on_at(plan.until):
                async with trio.open_nursery() as nursery:
                    if plan.spray == "hard":
                        self._stats["punch_spray_hard"] += 1
                        nursery.start_soon(self._spray_hard, node_id, plan)
                    elif plan.spray == "easy":
                        self._stats["punch_spray_easy"] += 1
                        nursery.start_soon(self._spray_easy, node_id, plan)
                    else:
                        for addr in plan.addrs:
                            nursery.start_soon(self._connect, node_id, addr, plan)
                    while not self._direct(node_id):
                        await self._waiters.setdefault(node_id, trio.Event()).wait()
                    nursery.cancel_scope.cancel()
            ok = self._direct(node_id)
        finally:
            if self.expected.get(node_id) == plan.path:
                del self.expected[node_id]
            for addr in claimed:
                self._claims.pop(addr, None)
            for h in hosts:
                if self._host_claims.get(h, (b"",))[0] == node_id:
                    del self._host_claims[h]
            self._served.discard(node_id)
            session.finished(ok, trio.current_time())
        if ok:
            self._stats[f"punch_ok_{plan.path}"] += 1
            self.latencies = [*self.latencies[-15:], trio.current_time() - link.started]
            log.info(
                "link to %s is direct now (%s) after %.2f s relayed",
                node_id.hex()[:12],
                plan.path,
                self.latencies[-1],
            )
        else:
            self._stats["punch_failed_no_link"] += 1

    async def _connect(self, node_id: bytes, addr: tuple[str, int], plan: Dial) -> None:
        """Connect from the link port to ``addr`` until a direct link is up.

        A connect the other side's NAT refuses (a reset: our SYN came before
        the other side's opened its mapping) is made again after a short
        random pause, so that one of our SYNs and one of the other side's
        cross in flight (spec/sync.md §12.4).
        """
        host = self.pool.host
        try:
            local = host if ipaddress.ip_address(host).version == 4 else "0.0.0.0"
        except ValueError:
            local = "0.0.0.0"
        for _ in range(_MAX_CONNECTS):
            if self._direct(node_id) or self.pool.handshaking.get(addr[0]):
                return
            try:
                sock = await connect_from((local, self.pool.port), addr)
            except OSError as exc:
                name = errno.errorcode.get(exc.errno or 0, "other")
                self._stats["punch_connects_failed"] += 1
                self._stats[f"punch_connects_failed_{name}"] += 1
                await trio.sleep(random.uniform(*_RETRY_PAUSE))
                continue
            self._stats["punch_connects_ok"] += 1
            self.pool.serve_punched(
                trio.SocketStream(sock), addr[0], node_id, plan.noise_initiator, plan.path
            )
            return

    def _local_host(self) -> str:
        host = self.pool.host
        try:
            return host if ipaddress.ip_address(host).version == 4 else "0.0.0.0"
        except ValueError:
            return "0.0.0.0"

    async def _spray_hard(self, node_id: bytes, plan: Dial) -> None:
        """Hold ``plan.count`` connects to the easy side, each from a fresh port.

        Each one's SYN makes its own mapping at our (varying) NAT, with a
        random public port; the easy side's probes look for one of them. The
        connects stay pending until one completes or the window ends.
        """
        local = (self._local_host(), 0)
        won = trio.Event()
        async with trio.open_nursery() as nursery:
            for i in range(plan.count):
                if won.is_set() or self._direct(node_id):
                    break
                addr = plan.addrs[i % len(plan.addrs)]
                nursery.start_soon(self._connect_once, node_id, local, addr, plan, won)
                if i % 32 == 31:
                    await trio.lowlevel.checkpoint()  # let the SYNs go out as they are made
            await won.wait()
            await self._grace(node_id, plan)
            nursery.cancel_scope.cancel()

    async def _spray_easy(self, node_id: bytes, plan: Dial) -> None:
        """Probe random ports of the hard side's IPs from the link port, in waves.

        Each probe's SYN opens our (consistent) NAT's mapping towards that
        port; the one that meets a mapping of the hard side crosses its SYN
        there and completes. At most ``spray_wave`` probes are open at once,
        each held ``spray_hold`` seconds.
        """
        ips = sorted({h for h, _ in plan.addrs})
        rng = random.SystemRandom()
        per_ip = max(1, plan.count // len(ips))
        targets = [(ip, port) for ip in ips for port in rng.sample(range(1024, 65536), per_ip)]
        local = (self._local_host(), self.pool.port)
        wave = max(1, self.limits.spray_wave)
        won = trio.Event()
        for start in range(0, len(targets), wave):
            batch = targets[start : start + wave]
            # Counted as sent: the attempt may end (and cancel this) mid-wave.
            self._stats["punch_spray_probes"] += len(batch)
            async with trio.open_nursery() as nursery:
                for addr in batch:
                    nursery.start_soon(self._connect_once, node_id, local, addr, plan, won)
                with trio.move_on_after(self.limits.spray_hold):
                    await won.wait()
                if won.is_set():
                    await self._grace(node_id, plan)
                nursery.cancel_scope.cancel()
            if won.is_set() or self._direct(node_id):
                return

    async def _grace(self, node_id: bytes, plan: Dial) -> None:
        """As the spray's Noise responder, keep the connects pending a little
        after the first completed, until the link is up: when two connects
        complete at once, the two sides may have seen them in another order,
        and the link is the one the initiator handshakes on."""
        if plan.noise_initiator:
            return
        with trio.move_on_after(_SPRAY_GRACE):
            while not self._direct(node_id):
                await self._waiters.setdefault(node_id, trio.Event()).wait()

    async def _connect_once(
        self,
        node_id: bytes,
        local: tuple[str, int],
        addr: tuple[str, int],
        plan: Dial,
        won: trio.Event,
    ) -> None:
        """One connect of a spray. The Noise initiator makes the first that
        completes (or that its listener took) the link and closes the rest; the
        responder hands each that completes (up to _SPRAY_SERVES) to the pool,
        where the initiator's handshake picks one and the rest time out."""
        try:
            sock = await connect_from(local, addr)
        except OSError:
            self._stats["punch_connects_failed"] += 1
            return
        if plan.noise_initiator:
            taken = won.is_set() or node_id in self._served
            self._served.add(node_id)
        else:
            taken = self._responder_serves >= _SPRAY_SERVES
            self._responder_serves += 1
        if taken or self._direct(node_id):
            sock.close()  # another connect won
            self._stats["punch_connects_surplus"] += 1
            return
        won.set()
        self._stats["punch_connects_ok"] += 1
        self.pool.serve_punched(
            trio.SocketStream(sock), addr[0], node_id, plan.noise_initiator, plan.path
        )

    def statistics(self) -> dict[str, Any]:
        """Attempts, outcomes by path and failures by reason, and recent latencies."""
        return {
            **dict(sorted(self._stats.items())),
            "punch_latency_s": [round(x, 3) for x in self.latencies],
        }
