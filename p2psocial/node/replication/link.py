"""One peer link: its record, its outbox, and how it ends.

A :class:`Link` is one authenticated connection to one remote node, running a
:class:`~p2psocial.protocol.sync.SyncSession`. Its :class:`Outbox` holds what
the writer task must send. :class:`LinkSet` is how the components beside the
pool (ingest, discovery) reach the open links without knowing the pool.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Protocol

import trio

from ...protocol.sync import Action, Head, Send, Serve, SyncSession
from ...protocol.wire import Message
from .transport import FramedStream, PeerIdentity

__all__ = ["Dropped", "Link", "LinkSet", "Outbox", "Range", "address_group", "head_moved"]


class Dropped(Exception):
    """Ends a link on purpose; ``reason`` goes to statistics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Range:
    """Entries of one feed to serve: ``from_seq`` .. ``to_seq`` (None: to the head)."""

    from_seq: int
    to_seq: int | None
    limit: int | None = None
    live: bool = False


class Outbox:
    """What the writer task must send: control messages, then feed ranges.

    Ranges of one feed coalesce (``from`` is the lowest asked, ``to`` the
    highest), so repeated pushes while a peer is slow cost nothing extra.
    One-shot serves (peeks, wants of feeds outside the shared set) queue
    separately; the want rate limit bounds them.
    """

    def __init__(self, max_control: int) -> None:
        self.control: deque[Message] = deque()
        self.ranges: OrderedDict[bytes, Range] = OrderedDict()
        self.oneshots: deque[tuple[bytes, Range]] = deque()
        self.max_control = max_control
        self._kick_send, self.kick = trio.open_memory_channel[None](1)

    def _wake(self) -> None:
        with contextlib.suppress(trio.WouldBlock):  # already woken
            self._kick_send.send_nowait(None)

    def add(self, action: Send | Serve) -> None:
        """Queue one action; raises :class:`Dropped` when the peer lets it overflow."""
        if isinstance(action, Send):
            if len(self.control) >= self.max_control:
                raise Dropped("outbox_overflow")
            self.control.append(action.message)
        elif action.to_seq is None or action.limit is not None:
            if len(self.oneshots) >= self.max_control:
                raise Dropped("outbox_overflow")
            self.oneshots.append(
                (action.author, Range(action.from_seq, action.to_seq, action.limit))
            )
        else:
            r = self.ranges.get(action.author)
            if r is None:
                self.ranges[action.author] = Range(
                    action.from_seq, action.to_seq, None, action.live
                )
            else:
                r.from_seq = min(r.from_seq, action.from_seq)
                r.to_seq = max(r.to_seq or 0, action.to_seq)
                r.live = r.live and action.live and r.from_seq == r.to_seq
        self._wake()

    def empty(self) -> bool:
        """Whether nothing waits to be sent."""
        return not (self.control or self.ranges or self.oneshots)


@dataclass(eq=False)
class Link:
    """One link in the pool: who is at the other end, its session and its outbox."""

    peer: PeerIdentity
    host: str
    direction: str
    stream: FramedStream
    session: SyncSession
    outbox: Outbox
    dialer_id: bytes
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    reason: str | None = None
    started: float = 0.0
    #: Last time a frame arrived / was sent (trio clock).
    last_in: float = 0.0
    last_out: float = 0.0
    #: Entries this peer handed us for storing (a measure of its use to us).
    items_in: int = 0
    #: Set once the peer's first message arrived, or the link ended.
    answered: trio.Event = field(default_factory=trio.Event)
    #: How the link was made, set by whoever made it: "direct" (a TCP dial to
    #: an announced address), "relayed" (spliced by a relay, spec/sync.md §11),
    #: "punched" or "reversed" (made over a relayed link, §12).
    path: str = "direct"
    #: The capabilities the peer listed in its ``caps`` (None: it sent none).
    caps: frozenset[str] | None = None
    #: Set once the first message after the hello arrived (``caps`` must be it).
    heard: bool = False

    def is_open(self) -> bool:
        """Whether the link is up and not being dropped."""
        return self.reason is None and self.session.state == "open"

    def perform_local(self, actions: list[Action]) -> None:
        """Queue actions that came from a local event (never Ingest)."""
        try:
            for act in actions:
                if isinstance(act, (Send, Serve)):
                    self.outbox.add(act)
        except Dropped as exc:
            self.drop(exc.reason)

    def drop(self, reason: str) -> None:
        """End the link (the first reason given is the one counted)."""
        if self.reason is None:
            self.reason = reason
        self.answered.set()
        self.cancel.cancel()

    def shares(self, wanted: Container[bytes]) -> int:
        """How many feeds we want does the peer want too (what we sync over it)."""
        return sum(1 for a in self.session.peer_feeds() if a in wanted)


class LinkSet(Protocol):
    """The open links, as the components beside the pool reach them."""

    def open_links(self) -> list[Link]:
        """Links that are up, in no particular order."""
        ...

    def broadcast(
        self, make: Callable[[SyncSession], list[Action]], *, skip: Link | None = None
    ) -> None:
        """Run a local event on every open link's session (but ``skip``) and queue its output."""
        ...


def head_moved(author: bytes, head: Head) -> Callable[[SyncSession], list[Action]]:
    """The local event "we now hold ``author`` up to ``head``", for :meth:`LinkSet.broadcast`."""
    return lambda session: session.local_update(author, head)


def address_group(host: str) -> str | None:
    """The network a host belongs to for per-network limits: its /24 (IPv4)
    or /48 (IPv6). None for loopback and for anything that is not an IP: the
    owner's own machine runs as many nodes as it likes."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
