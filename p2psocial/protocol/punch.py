"""Direct links over a relayed link: connection reversal and hole punching.

Theory (spec/sync.md §12). Two nodes joined by a relayed link try to make a
direct one. The end that *accepted* the relayed link (the reserved node, the
**initiator**) drives an attempt; the end that dialled through the relay is
the **responder**. Both must have listed the ``punch`` capability (§9)::

    initiator                         responder
    idle ──start──> offered ──────────> (punch_offer)
                                        idle ──offer──> answered
    offered <────── (punch_answer) ────
    offered ──answer──> dialing ──────> (punch_go)
                                        answered ──go──> dialing
    dialing ──finished──> idle          dialing ──finished──> idle

The answer's arrival gives the initiator the round-trip time over the relay;
it connects half of it after sending ``punch_go`` so that both connects
leave at about the same moment. Who connects depends on the two
``dialable`` flags: when one side is dialable, only the other connects to it
(connection reversal, path ``reversed``); when neither is, both connect at
once (TCP simultaneous open, path ``punched``).

With the ``punch_spray`` capability the offer and answer also carry each
side's NAT mapping behaviour. When one side's NAT maps endpoint-independently
(``consistent``) and the other's picks a new port per destination
(``varying``), the punch becomes a birthday search (§12.9): the *hard* side
opens many connects from fresh ports to the easy side's address, so its NAT
holds many random public ports, and the *easy* side probes random ports of
the hard side's address from its link port until one probe meets one of them.

Attempts per link are bounded: at most three in a *round* (the first as soon
as both sides' capabilities are known, the next two 5 s and 30 s after a
failure); after a round fails the initiator waits ten minutes. A responder
refuses more offers than a round allows in that time (``punch_flood``).

Everything here is pure: messages and ``now`` in, messages and dial plans out.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from .errors import ProtocolError
from .wire import MAX_PUNCH_ADDRS, Message, PunchAnswer, PunchGo, PunchOffer

__all__ = [
    "CAPABILITY",
    "CONSISTENT",
    "INITIATOR",
    "RESPONDER",
    "SPRAY_CAPABILITY",
    "VARYING",
    "Dial",
    "Failed",
    "PunchAction",
    "PunchLimits",
    "PunchSession",
    "SendPunch",
    "candidate_addrs",
    "punch_role",
]

#: The capability name (spec/sync.md §9) that allows the punch messages.
CAPABILITY = "punch"
#: The capability (§12.9) that adds ``mapping`` to offers and answers, and sprays.
SPRAY_CAPABILITY = "punch_spray"
#: Mapping behaviours (spec/dht.md §4.4): one public port for every peer, or one per peer.
CONSISTENT = "consistent"
VARYING = "varying"
INITIATOR = "initiator"
RESPONDER = "responder"

Addr: TypeAlias = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PunchLimits:
    """Timings and bounds of spec/sync.md §12.4 (seconds)."""

    #: Seconds the initiator waits for ``punch_answer`` before the attempt fails.
    answer_timeout: float = 5.0
    #: Seconds each side keeps trying to connect after its moment to start.
    dial_window: float = 3.0
    #: Longest delay the initiator waits after ``punch_go`` (half the RTT, capped).
    max_delay: float = 2.0
    #: Delays before attempts 2, 3, ... of a round, after the previous failure.
    retry_delays: tuple[float, ...] = (5.0, 30.0)
    #: Seconds after a failed round before the next round may start.
    cooldown: float = 600.0
    #: Spray (§12.9): connects the hard side opens, each from a fresh port.
    spray_sockets: int = 256
    #: Spray: random ports of the hard side's address the easy side probes.
    spray_probes: int = 1024
    #: Spray: probes the easy side has open at once (one wave).
    spray_wave: int = 256
    #: Spray: seconds each wave of probes is held before the next.
    spray_hold: float = 0.5
    #: Spray: the easy side starts this long after the hard side.
    spray_delay: float = 0.2
    #: Spray: seconds from the moment to start until both sides give up.
    spray_window: float = 5.0

    @property
    def attempts_per_round(self) -> int:
        """Attempts in one round (the first plus one per retry delay)."""
        return 1 + len(self.retry_delays)


@dataclass(frozen=True, slots=True)
class SendPunch:
    """Send this message on the relayed link."""

    message: PunchOffer | PunchAnswer | PunchGo


@dataclass(frozen=True, slots=True)
class Dial:
    """Connect to ``addrs`` from the link port, starting at ``at``, for the dial window.

    ``addrs`` is empty when this side only waits for the other's connect.
    ``noise_initiator`` says which role this side takes on the new connection,
    and ``path`` is the label of the link it makes.

    ``spray`` is None for an ordinary plan. For a birthday search (§12.9) it
    is ``hard``: open ``count`` connects to ``addrs``, each from a fresh local
    port; or ``easy``: from the link port, probe ``count`` distinct random
    ports (1024..65535) of the IPs in ``addrs``, in waves.
    """

    addrs: tuple[Addr, ...]
    at: float
    until: float
    noise_initiator: bool
    path: str
    spray: str | None = None
    count: int = 0


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt ended without a direct link; ``reason`` for statistics."""

    reason: str


PunchAction: TypeAlias = SendPunch | Dial | Failed


def punch_role(path: str, direction: str) -> str | None:
    """Which end of a link drives attempts: the end that accepted a relayed link.

    Returns:
        :data:`INITIATOR`, :data:`RESPONDER`, or None for a link that is not relayed.
    """
    if path != "relayed":
        return None
    return INITIATOR if direction == "inbound" else RESPONDER


def candidate_addrs(observed_ips: Sequence[str], link_port: int) -> tuple[Addr, ...]:
    """The addresses to offer: each observed public IP with the link port.

    A NAT that maps endpoint-independently and keeps ports (Linux
    masquerade, most home routers) maps the link port to the same public
    port, so this is where the other side's connect can reach us. At most
    :data:`~p2psocial.protocol.wire.MAX_PUNCH_ADDRS`, canonical, IPv4 first.
    """
    if not 0 < link_port < 65536:
        return ()
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in observed_ips:
        try:
            ips.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    ordered = sorted(set(ips), key=lambda ip: (ip.version, ip.packed))
    return tuple((str(ip), link_port) for ip in ordered[:MAX_PUNCH_ADDRS])


def _violation(msg: str, reason: str = "bad_state") -> ProtocolError:
    return ProtocolError(msg, reason=reason)


_IDLE, _OFFERED, _ANSWERED, _DIALING = "idle", "offered", "answered", "dialing"


class PunchSession:
    """One link's punch state machine (spec/sync.md §12.3).

    Args:
        role: :data:`INITIATOR` or :data:`RESPONDER` (:func:`punch_role`).
        now: when the link came up; the first attempt is due then.
        limits: timings and bounds.
    """

    def __init__(self, role: str, now: float, limits: PunchLimits | None = None) -> None:
        if role not in (INITIATOR, RESPONDER):
            raise ValueError(f"role must be initiator or responder, not {role!r}")
        self.role = role
        self.limits = limits or PunchLimits()
        self.state = _IDLE
        #: Failed attempts in the current round.
        self.failures = 0
        self._due: float | None = now if role == INITIATOR else None
        self._sent_at = 0.0
        self._deadline: float | None = None
        self._own: tuple[tuple[Addr, ...], bool] = ((), False)
        self._peer: tuple[tuple[Addr, ...], bool] = ((), False)
        #: Mapping behaviours (§12.9); None unless both sides listed punch_spray.
        self._own_mapping: str | None = None
        self._peer_mapping: str | None = None
        self._offers: deque[float] = deque()
        self.rtt: float | None = None
        #: The path a direct link of the attempt under way will have (§12.8).
        self.path_hint: str | None = None

    # ---------------------------------------------------------------- initiator

    def next_attempt(self) -> float | None:
        """When the initiator may start its next attempt (None: not now / never)."""
        return self._due if self.state == _IDLE else None

    def start(
        self, now: float, addrs: tuple[Addr, ...], dialable: bool, mapping: str | None = None
    ) -> list[PunchAction]:
        """Begin an attempt (initiator, idle, due): send the offer.

        ``mapping`` is this side's NAT mapping behaviour, given only when the
        peer listed ``punch_spray`` (it is sent then, §12.9).

        Raises:
            ProtocolError: not the initiator, or an attempt is under way (``bad_state``).
        """
        if self.role != INITIATOR or self.state != _IDLE:
            raise _violation(f"start as {self.role} in state {self.state}")
        self.state = _OFFERED
        self._own = (addrs, dialable)
        self._own_mapping = mapping
        self._sent_at = now
        self._deadline = now + self.limits.answer_timeout
        return [SendPunch(PunchOffer(addrs, dialable, mapping))]

    # ---------------------------------------------------------------- both

    def receive(
        self,
        msg: Message,
        now: float,
        addrs: tuple[Addr, ...] = (),
        dialable: bool = False,
        mapping: str | None = None,
    ) -> list[PunchAction]:
        """Process a punch message from the peer.

        Args:
            msg: ``punch_offer``, ``punch_answer`` or ``punch_go``.
            now: seconds on a monotonic clock.
            addrs, dialable: this side's candidate addresses and dial-back
                verdict (the responder answers an offer with them).
            mapping: this side's NAT mapping behaviour, given only when the
                peer listed ``punch_spray`` (the responder answers with it).

        Raises:
            ProtocolError: the message does not fit this role and state
                (``bad_state``), or offers come faster than a round allows
                (``punch_flood``). Close the link.
        """
        if isinstance(msg, PunchOffer) and self.role == RESPONDER and self.state == _IDLE:
            return self._on_offer(msg, now, addrs, dialable, mapping)
        if isinstance(msg, PunchAnswer) and self.role == INITIATOR and self.state == _OFFERED:
            return self._on_answer(msg, now)
        if isinstance(msg, PunchGo) and self.role == RESPONDER and self.state == _ANSWERED:
            return self._on_go(now)
        raise _violation(f"{type(msg).__name__} received by the {self.role} in state {self.state}")

    def _on_offer(
        self,
        msg: PunchOffer,
        now: float,
        addrs: tuple[Addr, ...],
        dialable: bool,
        mapping: str | None,
    ) -> list[PunchAction]:
        while self._offers and self._offers[0] <= now - self.limits.cooldown:
            self._offers.popleft()
        if len(self._offers) >= self.limits.attempts_per_round:
            raise _violation("punch offers come faster than a round allows", "punch_flood")
        self._offers.append(now)
        self.state = _ANSWERED
        self._own = (addrs, dialable)
        self._peer = (msg.addrs, msg.dialable)
        self._own_mapping = mapping
        self._peer_mapping = msg.mapping
        self.path_hint = "reversed" if dialable or msg.dialable else "punched"
        # The go follows within the initiator's answer timeout, or never.
        self._deadline = now + self.limits.answer_timeout
        return [SendPunch(PunchAnswer(addrs, dialable, mapping))]

    def _on_answer(self, msg: PunchAnswer, now: float) -> list[PunchAction]:
        self.rtt = max(0.0, now - self._sent_at)
        self._peer = (msg.addrs, msg.dialable)
        self._peer_mapping = msg.mapping
        plan = self._plan(now, min(self.limits.max_delay, self.rtt / 2))
        if isinstance(plan, Failed):
            self._fail(now)
            return [plan]
        self.state = _DIALING
        self._deadline = None
        return [SendPunch(PunchGo()), plan]

    def _on_go(self, now: float) -> list[PunchAction]:
        plan = self._plan(now, 0.0)
        if isinstance(plan, Failed):
            self.state = _IDLE
            self._deadline = None
            return [plan]
        self.state = _DIALING
        self._deadline = None
        return [plan]

    def _plan(self, now: float, delay: float) -> Dial | Failed:
        """Who connects where (spec/sync.md §12.2)."""
        own_addrs, own_dialable = self._own
        peer_addrs, peer_dialable = self._peer
        initiator = self.role == INITIATOR
        resp_dialable = peer_dialable if initiator else own_dialable
        init_dialable = own_dialable if initiator else peer_dialable
        window = self.limits.dial_window
        if resp_dialable or init_dialable:
            # Reversal: the initiator connects to a dialable responder; else
            # the responder connects to the dialable initiator. No timing.
            i_connect = resp_dialable == initiator
            target = peer_addrs if i_connect else own_addrs
            if not target:
                return Failed("no_addresses")
            return Dial(
                peer_addrs if i_connect else (),
                now,
                now + window,
                noise_initiator=i_connect,
                path="reversed",
            )
        if not peer_addrs or not own_addrs:
            return Failed("no_addresses")
        start = now + delay
        side = self.spray_side()
        if side == "both_varying":
            return Failed("both_varying")
        if side is not None:
            lim = self.limits
            hard = side == "hard"
            return Dial(
                peer_addrs,
                start if hard else start + lim.spray_delay,
                start + lim.spray_window,
                noise_initiator=initiator,
                path="punched",
                spray=side,
                count=lim.spray_sockets if hard else lim.spray_probes,
            )
        return Dial(
            peer_addrs,
            start,
            start + window,
            noise_initiator=initiator,
            path="punched",
        )

    def spray_side(self) -> str | None:
        """This side's part in a birthday search (§12.9), from the two mappings.

        Returns:
            ``hard`` (this NAT varies its port and the peer's is consistent),
            ``easy`` (the reverse), ``both_varying`` (no punch can work), or
            None: an ordinary punch (a mapping unknown, or spray not agreed).
        """
        if self._own_mapping is None or self._peer_mapping is None:
            return None
        pair = (self._own_mapping, self._peer_mapping)
        if pair == (VARYING, CONSISTENT):
            return "hard"
        if pair == (CONSISTENT, VARYING):
            return "easy"
        if pair == (VARYING, VARYING):
            return "both_varying"
        return None

    def finished(self, ok: bool, now: float) -> None:
        """The dial plan ended: a direct link is up (``ok``) or the window passed."""
        if self.state != _DIALING:
            return
        self.state = _IDLE
        if ok:
            self.failures = 0
            self._due = None
        else:
            self._fail(now)

    def _fail(self, now: float) -> None:
        self.state = _IDLE
        self._deadline = None
        if self.role != INITIATOR:
            return
        self.failures += 1
        if self.failures < self.limits.attempts_per_round:
            self._due = now + self.limits.retry_delays[self.failures - 1]
        else:
            self.failures = 0
            self._due = now + self.limits.cooldown

    def poll(self, now: float) -> list[PunchAction]:
        """Timeouts: an offer unanswered, or an answer with no go, for too long."""
        if self._deadline is None or now < self._deadline:
            return []
        if self.state == _OFFERED:
            self._fail(now)
            return [Failed("no_answer")]
        if self.state == _ANSWERED:
            self.state = _IDLE
            self._deadline = None
            return [Failed("no_go")]
        return []
