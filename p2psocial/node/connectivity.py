"""Says at WARNING, once, why a node reaches no one or no one reaches it.

A node that finds no peer used to stay silent, and its owner saw only an
empty timeline. Every ``interval`` seconds (10) :class:`ConnectivityWatch`
looks at a :class:`Reach` snapshot and names the trouble, if any:

* ``no_bootstrap``: no other node has been heard from, and none is known to
  ask (no bootstrap address, no peer address, no contact saved by an earlier
  run);
* ``no_reachable_peer``: some are known, but none answered, and no link is up;
* ``no_relay``: dial-back found that other nodes cannot open links to this
  node (spec/dht.md 4.5), and it holds no relay through which they could.
  Its own links out still work.

A line is logged when the reason changes: a WARNING for a new reason, and one
INFO line when the trouble is over. So a lasting problem is one line, not a
flood. :func:`isolation_reason` is the decision, a pure function a table
test drives. The interval can be shortened for tests with
``P2PSOCIAL_TEST_CONNECTIVITY_INTERVAL`` (seconds); it is not meant for users.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from .activity import _interval_from_env
from .dht import DHTNode
from .replication import Replicator

__all__ = [
    "CONNECTIVITY_INTERVAL_ENV",
    "NO_BOOTSTRAP",
    "NO_REACHABLE_PEER",
    "NO_RELAY",
    "ConnectivityWatch",
    "Reach",
    "isolation_reason",
    "reach_of",
]

NO_BOOTSTRAP = "no_bootstrap"
NO_REACHABLE_PEER = "no_reachable_peer"
NO_RELAY = "no_relay"
CONNECTIVITY_INTERVAL_ENV = "P2PSOCIAL_TEST_CONNECTIVITY_INTERVAL"
#: Seconds between checks, and before the first (a join that fails takes about 5 s).
INTERVAL = 10.0

log = logging.getLogger("p2psocial.daemon")


@dataclass(frozen=True, slots=True)
class Reach:
    """What a check looks at.

    Attributes:
        known: other nodes were known to ask (bootstrap or peer addresses, or
            contacts saved by an earlier run).
        heard: some node answered or sent us a request (a DHT datagram came in).
        links: peer links up now.
        reachable: the dial-back verdict, ``"yes"``, ``"no"`` or ``"unknown"``.
        relays: relay reservations held.
        peer_port: our peer-link port (0: we accept no links).
    """

    known: bool
    heard: bool
    links: int
    reachable: str
    relays: int
    peer_port: int


def reach_of(
    dht: DHTNode | None,
    replicator: Replicator | None,
    peer_addr: tuple[str, int] | None,
    *,
    known: bool,
    relays: int = 0,
) -> Reach:
    """The :class:`Reach` of a node's services now.

    Args:
        dht, replicator: the node's services (None: not running).
        peer_addr: where its link listener is bound, if anywhere.
        known: other nodes were known to ask when it started.
        relays: relay reservations held, if not the replicator's own count.
    """
    stats = dht.statistics() if dht is not None else {}
    return Reach(
        known=known,
        # Contacts that fail are removed, and saved ones that never answer
        # leave no datagram counted: both must hold to have heard someone.
        heard=stats.get("contacts", 0) > 0 and stats.get("datagrams_in", 0) > 0,
        links=len(replicator.peers()) if replicator is not None else 0,
        reachable=str(dht.reachability()["reachable"]) if dht is not None else "unknown",
        relays=relays or (len(replicator.relay_client.relays()) if replicator is not None else 0),
        peer_port=peer_addr[1] if peer_addr is not None else 0,
    )


def isolation_reason(reach: Reach) -> str | None:
    """The trouble ``reach`` shows, or None when the node reaches others and
    can be reached (directly, through a relay, or not known to be unable)."""
    if not reach.heard and reach.links == 0:
        return NO_REACHABLE_PEER if reach.known else NO_BOOTSTRAP
    if reach.reachable == "no" and reach.relays == 0 and reach.peer_port:
        return NO_RELAY
    return None


def _message(reason: str, reach: Reach) -> str:
    if reason == NO_BOOTSTRAP:
        return (
            "reaching no other node: no bootstrap address is configured and none is saved "
            "(add one with `p2psocial bootstrap add HOST:PORT`, or wait for a node to join "
            "through this one)"
        )
    if reason == NO_REACHABLE_PEER:
        return (
            "reaching no other node: no bootstrap or peer address answered "
            "(check the addresses with `p2psocial bootstrap list` and the network)"
        )
    return (
        "other nodes cannot open links to this node (dial-back failed: a router or firewall "
        f"is in the way) and it has no relay; its own links out work. A port forward of TCP "
        f"{reach.peer_port} to this host makes it reachable"
    )


class ConnectivityWatch:
    """Checks :func:`isolation_reason` now and then and logs when it changes.

    Args:
        snapshot: returns the current :class:`Reach`.
        interval: seconds between checks; None reads the test variable, else 10 s.
    """

    def __init__(self, snapshot: Callable[[], Reach], interval: float | None = None) -> None:
        self._snapshot = snapshot
        self._interval = (
            interval
            if interval is not None
            else _interval_from_env(CONNECTIVITY_INTERVAL_ENV, INTERVAL)
        )
        self.reason: str | None = None
        self._stats: Counter[str] = Counter()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check every interval, the first after one interval, until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self._interval)
            self.check()

    def check(self) -> str | None:
        """One check: log if the reason changed; returns the reason now."""
        reach = self._snapshot()
        reason = isolation_reason(reach)
        self._stats["connectivity_checks"] += 1
        if reason != self.reason:
            if reason is not None:
                self._stats[f"connectivity_warned_{reason}"] += 1
                log.warning("%s", _message(reason, reach))
            else:
                log.info(
                    "connectivity is fine again: links %d, dialable %s, relays %d",
                    reach.links,
                    reach.reachable,
                    reach.relays,
                )
            self.reason = reason
        return reason

    def statistics(self) -> dict[str, Any]:
        """Checks made, warnings by reason, and the current reason (or None)."""
        return {**self._stats, "connectivity_reason": self.reason}
