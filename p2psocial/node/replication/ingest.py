"""What happens to entries and fork proofs a peer sends: :class:`IngestPipeline`.

It hands verified batches to the store, decides which rejections are a
peer's fault (and drop its link), accepts unsolicited posts only when they
mention or reply to us (the inbound policy), and freezes forked feeds while
passing their proofs on to the other peers (fork gossip).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from ...protocol.entries import Entry, decode_entry_untrusted, decode_payload_untrusted
from ...protocol.errors import ProtocolError
from ...protocol.feeds import decode_fork_proof_untrusted
from ...protocol.ratelimit import RateTable
from ...protocol.sync import Head, Ingest
from ...protocol.wire import Item
from ...storage.batch import SENDER_FAULTS
from ..activity import LimitedLog, short_author, short_node
from ..foreground import Foreground
from .heads import Heads
from .link import Dropped, Link, LinkSet, address_group, head_moved
from .recent import RecentCache
from .store import ReplicationStore

__all__ = ["IngestPipeline"]

#: Records keep the service's logger name from before the split into modules,
#: so logging configuration aimed at the replication service still applies.
log = logging.getLogger("p2psocial.node.replication")

#: Entries stored per transaction while the owner's API is in use: a few ms
#: of work, against tens of ms for a 500-entry batch.
INGEST_CHUNK = 32

#: Rejection reasons that are not the sending peer's fault: a feed frozen by
#: a fork, an entry from an author's future (our clock may lag), local policy,
#: and an authentic rival that cannot make a fork proof (spec/sync.md §5.2:
#: one half's own signature fails, yet a run vouched for it, here or at the
#: peer; the peer relays what the author signed).
_BENIGN_REJECTIONS = frozenset(
    {"fork", "unprovable_fork", "forked", "from_future", "blocked", "deleted"}
)
#: Rejections that show the author signed another history at this seq.
_RIVAL_REJECTIONS = frozenset({"fork", "unprovable_fork"})
#: Chain rejections an honest peer causes when a feed has forked.
_CHAIN_REJECTIONS = frozenset({"prev_mismatch", "seq_gap", "chain", "no_prev"})


class IngestPipeline:
    """Stores what peers send, under the inbound policy, and gossips forks.

    Args:
        store: where batches go.
        heads: the wanted feeds (advanced when a batch moves one).
        cache: recent entries (fed with what was stored, purged on deletes).
        links: the open links (told of new heads and fork proofs).
        identity: the user identity hosted here (what inbound posts must mention).
        on_stored: called with the entries stored from peers, after each batch.
        accept_inbound: keep posts from authors not followed that mention or
            reply to ``identity`` (the owner's policy; may change at run time).
        inbound_burst, inbound_rate: unsolicited posts kept per remote node
            key (twice that per network), as a token bucket.
        foreground: the owner's API requests: while they come, a batch is
            stored in chunks of :data:`INGEST_CHUNK` entries, each waiting for
            the requests in flight (node/foreground.py).
    """

    def __init__(
        self,
        store: ReplicationStore,
        heads: Heads,
        cache: RecentCache,
        links: LinkSet,
        *,
        identity: bytes,
        on_stored: Callable[[list[Entry]], None] | None = None,
        accept_inbound: bool = True,
        inbound_burst: float = 16.0,
        inbound_rate: float = 0.5,
        foreground: Foreground | None = None,
    ) -> None:
        self.store = store
        self.heads, self.cache, self.links = heads, cache, links
        #: The owner's policy (the node changes it at run time).
        self.accept_inbound = accept_inbound
        self.identity = identity
        self.on_stored = on_stored
        self.foreground = foreground or Foreground()
        # Unsolicited posts kept (each may start a feed here), per remote
        # node key and per address; these outlive links (spec/sync.md 7).
        self._inbound_by_key = RateTable(inbound_burst, inbound_rate)
        self._inbound_by_addr = RateTable(2 * inbound_burst, 2 * inbound_rate)
        self._known_proofs: set[bytes] = set()
        self._stats: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        # One catch-up line a minute, whatever the feed: a first sync of a
        # few hundred feeds says one and counts the rest.
        self._events = LimitedLog(log)

    async def _accept_inbound(self, author: bytes, item: Item) -> bool:
        """Policy for an unsolicited entry: a post that mentions or replies to us."""
        entry_bytes, payload = item
        if payload is None or not self.accept_inbound:
            return False
        try:
            entry = decode_entry_untrusted(entry_bytes)
            if entry.author != author or entry.kind != "post":
                return False
            value = decode_payload_untrusted(entry, payload)
        except ProtocolError:
            return False
        if author in await self.store.blocked():
            return False
        if self.identity in value.get("mentions", []):
            return True
        reply = value.get("reply")
        if reply is not None:
            for target in (reply["parent"], reply["root"]):
                raw = await self.store.get_raw(target)
                if raw is None:
                    continue
                try:
                    if decode_entry_untrusted(raw[0]).author == self.identity:
                        return True
                except ProtocolError:
                    continue
        return False

    # ------------------------------------------------------------------ ingest

    async def on_batch(self, link: Link, batch: Ingest) -> int:
        """Store a batch a link's session accepted, and tell the other links.

        Returns:
            How many of its entries were new here (0: all duplicates or refused).

        Raises:
            Dropped: the peer sent what an honest peer would not.
        """
        author = batch.author
        if batch.origin == "inbound":
            if not await self._accept_inbound(author, batch.items[0]):
                self._stats["inbound_refused"] += 1
                return 0
            # Each accepted unsolicited post may start a new feed here: hold
            # the rate per remote node key and per address, across links.
            now = trio.current_time()
            # Per network (/24, /48; loopback per address), not per exact
            # address: an IPv6 host has a /64 of addresses to rotate through.
            network = address_group(link.host) or link.host
            allowed = self._inbound_by_addr.take(network, now) and self._inbound_by_key.take(
                link.peer.node_id, now
            )
            if not allowed:
                self._stats["inbound_rate_limited"] += 1
                return 0
        self._stats["entries_received"] += len(batch.items)
        items = list(batch.items)
        # A whole batch is one transaction on the store's thread, and an API
        # request that arrives meanwhile waits for all of it; while the owner
        # is active, store it in chunks and let the requests go first.
        step = INGEST_CHUNK if self.foreground.recently_busy() else max(1, len(items))
        outcomes: list[Any] = []
        for start in range(0, len(items), step):
            await self.foreground.yield_to_requests()
            outcomes += await self.store.ingest(
                items[start : start + step], now_ms=int(time.time() * 1000), author=author
            )
        stored: list[tuple[int, Item]] = []
        # Decoded once, by the store: a 500-entry batch decoded again here
        # kept the event loop busy for tens of ms (bench/flood.py).
        new_entries: list[Entry] = []
        mismatch: str | None = None
        rejected = {o.reason for o in outcomes if o.status == "rejected"}
        if "fork" in rejected:
            await self._fork_detected(author)
        # A rival in this batch (proven or not) means the peer relays the
        # author's other history, so the entries above it cannot link to ours.
        diverged = bool(rejected & _RIVAL_REJECTIONS) or self.heads.is_forked(author)
        for i, (item, out) in enumerate(zip(batch.items, outcomes, strict=True)):
            if out.status == "rejected" and out.reason == "mislabeled":
                # Another author's entry in a batch of this feed: a lying peer.
                raise Dropped("mislabeled_entry")
            if out.status == "rejected":
                self._rejected[out.reason or "unknown"] += 1
                if out.reason in _BENIGN_REJECTIONS:
                    continue
                if diverged and out.reason in _CHAIN_REJECTIONS:
                    # Entries above a fork point do not link to what we hold:
                    # the peer relays the other history, which is not a lie.
                    continue
                raise Dropped(f"invalid_entry_{out.reason}")
            if out.author != author or out.seq != batch.start + i:
                # Valid entry, but not what the batch claimed: a lying peer.
                raise Dropped("mislabeled_entry")
            if out.reason in SENDER_FAULTS:
                # Bytes that are not what the author signed: the envelope is
                # kept, the bytes are not, and the sender answers for it.
                mismatch = out.reason
                self._rejected[out.reason] += 1
            elif out.reason == "invalid_payload":
                # The author signed a payload that breaks its kind's rules:
                # the envelope stays a valid link; nobody relaying it is at fault.
                self._stats["payloads_invalid"] += 1
            if out.status == "stored":
                self._stats["entries_stored"] += 1
                stored.append((out.seq, item))
                if out.entry is not None:
                    new_entries.append(out.entry)
                else:  # pragma: no cover - the store always hands it back
                    with contextlib.suppress(ProtocolError):
                        new_entries.append(decode_entry_untrusted(item[0]))
            else:
                self._stats["entries_duplicate"] += 1
        if stored:
            if any(e.kind in ("delete", "block") for e in new_entries):
                # A delete (or a block of an adopted blocklist) purged
                # payloads from the store: the cache must not serve them.
                self.cache.forget()
            for seq, item in stored[-64:]:
                self.cache.remember(author, seq, item)
            if batch.origin == "peek":
                await self.store.set_interest(author, "peek")
            elif batch.origin == "inbound":
                await self.store.set_interest(author, "inbound")
            if author in self.heads:
                head = await self.store.head(author)
                if head is not None:
                    self._advance(author, (head[0], head[1]))
                    self._log_caught_up(link, author, head[0], len(stored))
            if self.on_stored is not None:
                try:
                    self.on_stored(new_entries)
                except Exception:  # a callback bug must not drop the peer
                    log.exception("on_stored callback failed")
        if mismatch is not None:
            raise Dropped(f"invalid_payload_{mismatch}")
        return len(stored)

    def _log_caught_up(self, link: Link, author: bytes, seq: int, new: int) -> None:
        """Log a wanted feed brought up to what ``link``'s peer holds (rate-limited)."""
        theirs = link.session.peer_feeds().get(author, 0)
        if seq < theirs:
            return  # more batches of this feed are on the way
        self._events.info(
            "caught_up",
            trio.current_time(),
            "feed %s caught up: seq %d from peer %s (%d new)",
            short_author(author),
            seq,
            short_node(link.peer.node_id),
            new,
        )

    def _advance(self, author: bytes, head: Head) -> None:
        if self.heads.advance(author, head):
            self.links.broadcast(head_moved(author, head))

    async def _fork_detected(self, author: bytes) -> None:
        proofs = await self.store.fork_proofs(author)
        new = [p for p in proofs if p not in self._known_proofs and _proves_fork(p)]
        if not new:
            return
        self._stats["forks_detected"] += 1
        log.warning("feed %s forked: frozen, %d proof(s)", author.hex()[:12], len(new))
        self._known_proofs.update(new)
        self.heads.freeze(author)
        self.links.broadcast(
            lambda session: [a for p in new for a in session.send_fork_proof(author, p)]
        )

    async def on_fork_proof(self, link: Link, proof: bytes) -> None:
        """Check a fork proof a peer sent; if it freezes a wanted feed, pass it on.

        Raises:
            Dropped: the proof does not decode or verify.
        """
        if proof in self._known_proofs:
            return
        try:
            fp = decode_fork_proof_untrusted(proof)
        except ProtocolError as exc:
            raise Dropped(f"bad_fork_proof_{exc.reason}") from None
        self._known_proofs.add(proof)
        if fp.author not in self.heads:
            return
        # Ingesting both halves makes the store record the proof and freeze.
        outcomes = await self.store.ingest(
            [(fp.first.to_bytes(), None), (fp.second.to_bytes(), None)],
            now_ms=int(time.time() * 1000),
        )
        del outcomes
        if await self.store.feed_status(fp.author) == "forked":
            self._stats["forks_detected"] += 1
            self.heads.freeze(fp.author)
            self.links.broadcast(
                lambda session: session.send_fork_proof(fp.author, proof), skip=link
            )

    def statistics(self) -> dict[str, Any]:
        """Entries received, stored and rejected (by reason), inbound refusals, forks."""
        return {
            "entries_received": self._stats["entries_received"],
            "entries_stored": self._stats["entries_stored"],
            "entries_duplicate": self._stats["entries_duplicate"],
            "entries_rejected": dict(self._rejected),
            "inbound_refused": self._stats["inbound_refused"],
            "inbound_rate_limited": self._stats["inbound_rate_limited"],
            "forks_detected": self._stats["forks_detected"],
            "payloads_invalid": self._stats["payloads_invalid"],
        }


def _proves_fork(proof: bytes) -> bool:
    """Whether a stored proof would convince a peer (every one the store now records does).

    A database written before the store checked both halves in full may hold
    a proof that peers reject, and they drop the link that carries it.
    """
    try:
        decode_fork_proof_untrusted(proof)
    except ProtocolError as exc:
        log.warning("not gossiping a stored fork proof that does not verify: %s", exc.reason)
        return False
    return True
