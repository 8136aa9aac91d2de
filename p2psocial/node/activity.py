"""What the daemon says it is doing: rate-limited INFO lines and a periodic summary.

A node at INFO should be readable by a person: a line when a link is made or
lost, when a feed catches up, and a summary every ten minutes. Events that can
repeat (a flapping link, a peer reconnecting, the catch-up of many feeds) must
not flood the log, so each kind of line goes through a :class:`RepeatLimiter`:
at most one line per key per interval, and the next line that gets through
says how many were held back.

* :class:`RepeatLimiter` is the decision, with the caller's clock (``now`` is
  an argument), so a table test drives it with made-up times.
* :class:`LimitedLog` puts a logger behind one.
* :class:`ActivityReporter` logs the relaying line and the summary. It reads
  the services' ``statistics()``; it keeps no counters of its own.

The intervals are 60 s and 600 s. Tests shorten them with the environment
variables ``P2PSOCIAL_TEST_REPEAT_INTERVAL`` and
``P2PSOCIAL_TEST_SUMMARY_INTERVAL`` (seconds); they are not meant for users.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from ..errors import NodeError
from ..protocol.errors import LocalUsageError
from ..protocol.identity import identity_to_text

__all__ = [
    "REPEAT_INTERVAL",
    "REPEAT_INTERVAL_ENV",
    "SUMMARY_INTERVAL",
    "SUMMARY_INTERVAL_ENV",
    "ActivityReporter",
    "LimitedLog",
    "RepeatLimiter",
    "Snapshot",
    "format_relaying",
    "format_summary",
    "repeat_interval",
    "short_author",
    "short_node",
    "summary_interval",
]

#: Seconds between two INFO lines of one key: a person reading the log sees
#: each kind of event at most once a minute, with a count of the rest.
REPEAT_INTERVAL = 60.0
#: Seconds between two summary lines.
SUMMARY_INTERVAL = 600.0
#: Environment variables that shorten the intervals, for tests only.
REPEAT_INTERVAL_ENV = "P2PSOCIAL_TEST_REPEAT_INTERVAL"
SUMMARY_INTERVAL_ENV = "P2PSOCIAL_TEST_SUMMARY_INTERVAL"

#: The logger of the relaying and summary lines.
log = logging.getLogger("p2psocial.daemon")


def _interval_from_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise NodeError(
            f"{name} must be a number of seconds above 0, not {text!r}", reason="bad_interval"
        )
    return value


def repeat_interval() -> float:
    """Seconds between two INFO lines of one key (``P2PSOCIAL_TEST_REPEAT_INTERVAL`` or 60).

    Raises:
        NodeError: the variable is set to something other than a positive number.
    """
    return _interval_from_env(REPEAT_INTERVAL_ENV, REPEAT_INTERVAL)


def summary_interval() -> float:
    """Seconds between two summary lines (``P2PSOCIAL_TEST_SUMMARY_INTERVAL`` or 600).

    Raises:
        NodeError: the variable is set to something other than a positive number.
    """
    return _interval_from_env(SUMMARY_INTERVAL_ENV, SUMMARY_INTERVAL)


def short_node(node_id: bytes) -> str:
    """A node id as log lines show it: its first 12 hex digits."""
    return node_id.hex()[:12]


def short_author(author: bytes) -> str:
    """An identity as the CLI shows it in short: ``p2ps1abcde…wxyz``."""
    try:
        text = identity_to_text(author)
    except LocalUsageError:  # not a 32-byte key: still say something readable
        return author.hex()[:12]
    return f"{text[:10]}…{text[-4:]}"


class RepeatLimiter:
    """At most one line per key per ``interval`` seconds; counts the rest.

    A key's first line passes; another line of the same key passes once
    ``interval`` seconds have gone by since the last one that did, and
    :meth:`admit` then says how many were held back in between. The caller
    supplies the time, so this holds no clock.

    Args:
        interval: seconds between two lines of one key.
        max_keys: keys remembered at most (a key per peer must not grow
            without bound); the longest-quiet key is forgotten first, and
            the lines it held back are added to :attr:`forgotten`.
    """

    def __init__(self, interval: float, *, max_keys: int = 1024) -> None:
        if not interval > 0 or max_keys < 1:
            raise LocalUsageError(
                f"RepeatLimiter needs interval > 0 and max_keys >= 1, not {interval!r}, {max_keys!r}",
                reason="bad_limit",
            )
        self.interval = interval
        self.max_keys = max_keys
        #: Held-back lines of keys forgotten before they could say so.
        self.forgotten = 0
        # key -> [when its last line passed, lines held back since]
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()

    def admit(self, key: Hashable, now: float) -> int | None:
        """Whether a line of ``key`` may be written at ``now``.

        Returns:
            None to hold the line back (it is counted), or the number of
            lines of this key held back since the last one written (0 if none).
        """
        state = self._keys.get(key)
        if state is not None and now - state[0] < self.interval:
            state[1] += 1
            return None
        held = 0 if state is None else int(state[1])
        if state is None and len(self._keys) >= self.max_keys:
            _, oldest = self._keys.popitem(last=False)
            self.forgotten += int(oldest[1])
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        return held

    def held_back(self) -> int:
        """Lines held back and not yet reported, over all keys."""
        return sum(int(state[1]) for state in self._keys.values())


class LimitedLog:
    """A logger whose INFO lines pass through a :class:`RepeatLimiter`.

    Args:
        logger: where the lines go (its name is kept as it was).
        interval: seconds between two lines of one key; default
            :func:`repeat_interval`.
    """

    def __init__(self, logger: logging.Logger, interval: float | None = None) -> None:
        self.logger = logger
        self.limiter = RepeatLimiter(repeat_interval() if interval is None else interval)

    def info(self, key: Hashable, now: float, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at INFO unless a line of ``key`` passed less than
        an interval before ``now``; True if it was written."""
        if not self.logger.isEnabledFor(logging.INFO):
            return False
        held = self.limiter.admit(key, now)
        if held is None:
            return False
        if held:
            msg += " (and %d more like this since the last such line)"
            args = (*args, held)
        self.logger.info(msg, *args)
        return True


class _Reports(Protocol):
    def statistics(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters a summary compares, read from the services' statistics."""

    peers: int = 0
    feeds: int = 0
    contacts: int = 0
    #: Entries peers sent us, and how many of them were new.
    received: int = 0
    stored: int = 0
    #: Entries we sent to peers (catch-up batches and live pushes).
    served: int = 0

    @classmethod
    def read(cls, replication: _Reports | None, dht: _Reports | None) -> Snapshot:
        """The services' counters now (zero for a service that is not running)."""
        rep = replication.statistics() if replication is not None else {}
        contacts = dht.statistics().get("contacts", 0) if dht is not None else 0
        return cls(
            peers=int(rep.get("peers", 0)),
            feeds=int(rep.get("feeds", 0)),
            contacts=int(contacts),
            received=int(rep.get("entries_received", 0)),
            stored=int(rep.get("entries_stored", 0)),
            served=int(rep.get("entries_served", 0)),
        )


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def format_summary(before: Snapshot, now: Snapshot, seconds: float) -> str:
    """The summary line: the gauges now, and the entries moved since ``before``."""
    return (
        f"summary: peers {now.peers}, feeds {now.feeds}, DHT contacts {now.contacts}; "
        f"last {_seconds(seconds)} s: entries in {now.received - before.received} "
        f"({now.stored - before.stored} new), out {now.served - before.served}"
    )


def format_relaying(served: int, peers: int, seconds: float) -> str:
    """The relaying line: entries sent to peers over the last ``seconds``."""
    return f"relaying: sent {served} entries to peers in the last {_seconds(seconds)} s ({peers} linked)"


class ActivityReporter:
    """Logs what replication relayed (once per repeat interval, when it relayed
    anything) and a summary line every summary interval.

    Args:
        replication: the node's ``Replicator`` (or None).
        dht: the node's ``DHTNode`` (or None).
        summary_every: seconds between summaries; default :func:`summary_interval`.
        relay_every: seconds between relaying lines; default :func:`repeat_interval`.
    """

    def __init__(
        self,
        replication: _Reports | None,
        dht: _Reports | None,
        *,
        summary_every: float | None = None,
        relay_every: float | None = None,
    ) -> None:
        self.replication = replication
        self.dht = dht
        self.summary_every = summary_interval() if summary_every is None else summary_every
        self.relay_every = repeat_interval() if relay_every is None else relay_every

    def snapshot(self) -> Snapshot:
        """The counters now."""
        return Snapshot.read(self.replication, self.dht)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Log until cancelled; ``task_status.started()`` once the baseline is read."""
        start = trio.current_time()
        summarized = relayed = self.snapshot()
        next_summary = start + self.summary_every
        next_relay = start + self.relay_every
        last_summary = last_relay = start
        task_status.started()
        while True:
            await trio.sleep_until(min(next_summary, next_relay))
            now = trio.current_time()
            snap = self.snapshot()
            if now >= next_relay:
                if snap.served > relayed.served:
                    log.info(
                        format_relaying(snap.served - relayed.served, snap.peers, now - last_relay)
                    )
                relayed, last_relay = snap, now
                next_relay = now + self.relay_every
            if now >= next_summary:
                log.info(format_summary(summarized, snap, now - last_summary))
                summarized, last_summary = snap, now
                next_summary = now + self.summary_every
