"""Peer scores: misbehaviour costs a peer its welcome for a while.

Replication links (spec/sync.md §8) and the DHT (spec/dht.md §9) each keep
their own :class:`PeerScores`.

Dropping a link that broke the protocol ends the harm of that link only: the
peer may dial straight back and send the same invalid batch again, and every
round costs us a handshake and a batch of signature checks. So each link
that ends by the peer's fault adds a penalty to its score, by the kind of
fault:

- ``severe`` (10): invalid or mislabelled entries and payloads, bad fork
  proofs, wire violations and floods (``protocol_*``);
- ``mild`` (2): a peer too slow to read what it asked for
  (``outbox_overflow``), or silent past the idle timeout.

Scores decay by half every ``half_life`` seconds. A peer whose score reaches
``threshold`` is *graylisted*: its links are refused, in and out, for
``graylist`` seconds, doubling with each graylisting up to ``graylist_max``
(a peer that keeps misbehaving stays out longer; one that was briefly broken
comes back). Scores are kept per node id, and per IP address too, except for
127.0.0.1, ::1, private and link-local addresses (the owner's own host and LAN): a fresh
node key is free, an address is not. Bounded: the ``max_peers`` most recently
penalised are remembered. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..protocol.dht.diversity import address_groups

__all__ = ["PeerScores", "ScoreLimits", "fault_of"]

_SEVERE_PREFIXES = (
    "invalid_entry",
    "invalid_payload",
    "mislabeled_entry",
    "bad_fork_proof",
    "protocol_",
)
_MILD = frozenset({"outbox_overflow", "idle_timeout"})


def fault_of(reason: str) -> str | None:
    """``"severe"``, ``"mild"`` or None (not the peer's fault) for a link's end reason."""
    if reason.startswith(_SEVERE_PREFIXES):
        return "severe"
    if reason in _MILD:
        return "mild"
    return None


@dataclass(frozen=True, slots=True)
class ScoreLimits:
    """Penalties, decay and graylisting (seconds)."""

    severe: float = 10.0
    mild: float = 2.0
    threshold: float = 10.0
    half_life: float = 600.0
    graylist: float = 60.0
    graylist_max: float = 3600.0
    max_peers: int = 4096


@dataclass(slots=True)
class _Score:
    value: float = 0.0
    at: float = 0.0
    until: float = 0.0
    times: int = 0


def _scored_address(host: str) -> bool:
    """Whether an address is scored on its own: when the routing table would
    limit it by address group (not the owner's loopback, private or
    link-local networks, spec/dht.md 7.1)."""
    return address_groups(host)[0] is not None


class PeerScores:
    """Scores by node id and by public address (see the module docstring)."""

    def __init__(self, limits: ScoreLimits | None = None) -> None:
        self.limits = limits or ScoreLimits()
        self._scores: OrderedDict[bytes | str, _Score] = OrderedDict()
        #: graylistings so far
        self.graylisted_total = 0

    def _value(self, s: _Score, now: float) -> float:
        return s.value * math.pow(0.5, max(0.0, now - s.at) / self.limits.half_life)

    def penalize(self, node_id: bytes, host: str, reason: str, now: float) -> float:
        """Charge the fault of a link that ended with ``reason``.

        Returns:
            When a graylisting that this fault started ends, or 0.0 when it
            started none (not the peer's fault, or still under the threshold).
        """
        fault = fault_of(reason)
        if fault is None:
            return 0.0
        cost = self.limits.severe if fault == "severe" else self.limits.mild
        keys: list[bytes | str] = [node_id]
        if _scored_address(host):
            keys.append(host)
        started = 0.0
        for key in keys:
            s = self._scores.pop(key, None) or _Score()
            s.value = self._value(s, now) + cost
            s.at = now
            if s.value >= self.limits.threshold and s.until <= now:
                s.times += 1
                span = self.limits.graylist * 2 ** (s.times - 1)
                s.until = now + min(self.limits.graylist_max, span)
                s.value = 0.0  # the graylisting is the sentence; start afresh after it
                started = max(started, s.until)
            self._scores[key] = s
        if started:
            self.graylisted_total += 1
        while len(self._scores) > self.limits.max_peers:
            self._scores.popitem(last=False)
        return started

    def graylisted(self, node_id: bytes | None, host: str, now: float) -> bool:
        """Whether links with this node (or from this public address) are refused now."""
        if not self._scores:
            return False
        # Only scored addresses are ever keys (penalize), so no need to ask.
        for key in (node_id, host):
            if key is None:
                continue
            s = self._scores.get(key)
            if s is not None and s.until > now:
                return True
        return False

    def statistics(self, now: float) -> dict[str, Any]:
        """Graylisted now and in all, and the worst current scores (short node ids)."""
        live = {k: self._value(s, now) for k, s in self._scores.items()}
        worst = sorted(live.items(), key=lambda kv: -kv[1])[:8]
        return {
            "graylisted_now": sum(1 for s in self._scores.values() if s.until > now),
            "graylisted_total": self.graylisted_total,
            "worst_scores": {
                (k.hex()[:12] if isinstance(k, bytes) else k): round(v, 1)
                for k, v in worst
                if v > 0
            },
        }
