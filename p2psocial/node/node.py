"""The Node: storage, DHT, replication and the local API, composed.

    async with p2psocial.open_node(config) as node:
        await node.post("hello")
        async for event in node.watch():
            ...

Each service owns its nursery (``run(*, task_status)``); ``open_node`` starts
them in order (store, DHT, replication, API) inside one nursery and cancels
them in reverse on exit. Every public method returns JSON-friendly values
(ids as hex, identities in text form), the same shapes the local API sends.

:class:`Node` is the facade the API server and embedding programs call. The
work is done by parts that each own their state:

* :class:`~p2psocial.node.publish.Publisher`: the owner's new entries;
* :class:`~p2psocial.node.reads.Reader`: timelines, feeds, search, ``explain``;
* :class:`~p2psocial.node.moderator.Moderator`: block, mute, policy changes;
* :class:`~p2psocial.node.watch.Watchers`: entries fanned out to watchers;
* :class:`~p2psocial.node.moderation.PolicyGate`: the owner's limits on what
  replication stores.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import trio

from ..errors import NodeError
from ..protocol.entries import Entry
from ..protocol.errors import LocalUsageError
from ..protocol.identity import SigningKey, identity_to_text, node_id_from_public_key
from ..protocol.portmap import PROTO_TCP, PROTO_UDP
from ..storage import AsyncStore, open_async_store
from .apiserver import APIServer
from .config import NodeConfig
from .connectivity import ConnectivityWatch, reach_of
from .dht import DHTNode
from .foreground import Foreground
from .invites import Invites
from .keys import load_keys
from .lan import LanDiscovery, lan_allowed, link_path, local_networks, off_link
from .moderation import Blocklists, PolicyGate
from .moderator import Moderator
from .names import Names
from .notifications import Notifier
from .portmap import PortMapper, parse_gateway
from .publish import Publisher, now_ms
from .reads import Reader
from .relay import RelayLimits
from .replication import Replicator
from .replication.progress import progress_rows
from .views import WatchFilter, fmt_addr
from .watch import Watchers

__all__ = ["Node", "WatchFilter", "load_keys", "open_node"]

log = logging.getLogger("p2psocial.node")

#: Forked feeds listed by ``status`` (its ``forked_feeds`` counts them all): anyone
#: can fork feeds of identities made for the purpose, so the list is bounded.
STATUS_MAX_FORKS = 100


class Node:
    """A running p2psocial node. Create it with :func:`open_node`."""

    def __init__(
        self,
        config: NodeConfig,
        identity_key: SigningKey,
        node_key: SigningKey,
        store: AsyncStore,
    ) -> None:
        self.config = config
        self.node_key = node_key
        self.store = store
        #: The user identity this node publishes as (32 bytes).
        self.identity: bytes = identity_key.public_key
        self.identity_text = identity_to_text(self.identity)
        self.dht: DHTNode | None = None
        self.replicator: Replicator | None = None
        self.api_server: APIServer | None = None
        #: Warns when the node reaches no one, or no one reaches it.
        self.connectivity: ConnectivityWatch | None = None
        self.dht_addr: tuple[str, int] | None = None
        #: LAN discovery (spec/dht.md §12); None when the environment forbids it.
        self.lan: LanDiscovery | None = None
        self.peer_addr: tuple[str, int] | None = None
        #: Holds port mappings at the home router, when policy allows and one answers.
        self.portmap: PortMapper | None = None
        #: The owner's limits, applied to what replication stores.
        self.gate = PolicyGate(store, config.policy, self.identity)
        #: The owner's API requests in flight; work for peers yields to them.
        self.foreground = Foreground()
        #: Petnames and the names entry views carry (node/names.py).
        self.names = Names(store)
        self.watchers = Watchers(store, self.identity_text, self.names)
        self.publisher = Publisher(store, identity_key, self._on_stored, self.names)
        self.moderator = Moderator(config, store, self.publisher)
        self.reader = Reader(config, store, self.identity, self.moderator.blocklists, self.gate)
        self.notifier = Notifier(config, store, self.identity)
        #: Invites made and accepted (node/invites.py).
        self.invites = Invites(self, identity_key)
        self._started = now_ms()

    @property
    def blocklists(self) -> Blocklists:
        """Whose blocks apply on this node, and whose list each came from."""
        return self.moderator.blocklists

    def _attach_replicator(self, replicator: Replicator) -> None:
        """Hand the running replicator to the parts that tell it about changes."""
        self.replicator = replicator
        self.publisher.replicator = replicator
        self.moderator.replicator = replicator
        self.reader.replicator = replicator

    def _on_stored(self, entries: list[Entry]) -> None:
        """Called (synchronously) whenever entries are stored, own or replicated."""
        self.moderator.entries_stored(entries)
        self.names.entries_stored(entries)
        self.watchers.notify(entries)

    # -- publishing ---------------------------------------------------------

    async def post(
        self,
        text: str,
        *,
        reply_to: str | bytes | None = None,
        mentions: Iterable[str | bytes] = (),
        tags: Iterable[str] = (),
        lang: str | None = None,
    ) -> dict[str, Any]:
        """Publish a post, optionally as a reply, with mentions and tags.

        Args:
            reply_to: the parent entry: its id, or a unique prefix of at least
                8 hex digits (as everywhere an entry id is taken).

        Returns:
            ``{"id": hex, "seq": int}``.

        Raises:
            LocalUsageError: text empty or only whitespace (reason ``empty_text``)
                or too long (the message gives the limit); a reply target that
                is unknown here (``not_found``, or ``unknown_id`` for a prefix),
                ambiguous (``ambiguous_id``) or malformed (``bad_id``); a
                malformed identity.
        """
        return await self.publisher.post(text, reply_to, mentions, tags, lang)

    async def react(
        self, target: str | bytes, emoji: str, *, force: bool = False
    ) -> dict[str, Any]:
        """React to an entry with an emoji.

        Args:
            target: the entry's id, or a unique prefix of at least 8 hex digits.
            force: react even though this node has never seen the entry (an id
                known to exist elsewhere; it must then be given in full).

        Returns:
            ``{"id": hex, "seq": int}``.

        Raises:
            LocalUsageError: the entry is unknown here and ``force`` is not set,
                or a prefix matches nothing (both reason ``unknown_id``); an
                ambiguous prefix (``ambiguous_id``); a malformed id (``bad_id``).
        """
        return await self.publisher.react(target, emoji, force)

    async def repost(self, target: str | bytes) -> dict[str, Any]:
        """Repost an entry to this identity's followers."""
        return await self.publisher.repost(target)

    async def delete(self, target: str | bytes) -> dict[str, Any]:
        """Delete one of this identity's own entries, on every conforming node.

        Raises:
            LocalUsageError: the entry is unknown here (``not_found``, or
                ``unknown_id`` for a prefix), somebody else's (``not_author``)
                or already deleted (``already_deleted``).
        """
        return await self.publisher.delete(target)

    async def set_profile(
        self, *, name: str | None = None, bio: str | None = None
    ) -> dict[str, Any]:
        """Publish a new profile; fields left None keep their previous value."""
        return await self.publisher.set_profile(name, bio)

    # -- graph and policy ---------------------------------------------------

    async def follow(self, identity: str | bytes) -> dict[str, Any]:
        """Follow an identity: publish a follow entry and start replicating its feed.

        Raises:
            LocalUsageError: already followed (reason ``already_following``),
                this node's own identity (``self``), or a malformed identity.
        """
        return await self.publisher.follow(identity)

    async def unfollow(self, identity: str | bytes) -> dict[str, Any]:
        """Stop following an identity (its entries already held are kept).

        Raises:
            LocalUsageError: not followed (reason ``not_following``), or a
                malformed identity.
        """
        return await self.publisher.unfollow(identity)

    async def block(
        self, identity: str | bytes, *, public: bool = True, reason: str | None = None
    ) -> dict[str, Any]:
        """Block an identity: purge and refuse its payloads on this node.

        Args:
            public: also publish a ``block`` entry, so that subscribers of this
                identity's blocklist adopt it; False keeps it in local policy only.
        """
        return await self.moderator.block(identity, public, reason)

    async def unblock(self, identity: str | bytes) -> dict[str, Any]:
        """Lift a block (public blocks get an ``unblock`` entry)."""
        return await self.moderator.unblock(identity)

    async def mute(self, identity: str | bytes) -> dict[str, Any]:
        """Hide an identity from this owner's timelines (still stored and relayed)."""
        return await self.moderator.mute(identity)

    async def unmute(self, identity: str | bytes) -> dict[str, Any]:
        """Show a muted identity again."""
        return await self.moderator.unmute(identity)

    async def policy(self) -> dict[str, Any]:
        """This node's moderation policy (the [policy] table of config.toml)."""
        return self.config.policy.to_dict()

    async def set_policy(self, key: str, value: Any) -> dict[str, Any]:
        """Change one policy setting and save it to config.toml.

        ``blocked`` and ``muted`` are changed with block/unblock and mute/unmute,
        which also act on stored data.

        Raises:
            LocalUsageError: unknown key, wrong type, or an invalid value.
        """
        return await self.moderator.set_policy(key, value)

    async def explain(self, id: str | bytes) -> dict[str, Any]:
        """Why this node holds, hides or refused an entry: which rule, and whose list.

        Raises:
            LocalUsageError: no entry held here has this id (reason
                ``unknown_id``), or the id is ambiguous or malformed.
        """
        return await self.reader.explain(id)

    # -- reading ------------------------------------------------------------

    async def timeline(self, *, limit: int = 50, before: str | None = None) -> dict[str, Any]:
        """Own and followed authors' entries, newest first (muted authors hidden)."""
        return await self.names.annotate_page(await self.reader.timeline(limit, before))

    async def feed(
        self,
        identity: str | bytes | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
        kinds: list[str] | None = None,
    ) -> dict[str, Any]:
        """One author's entries, newest first. Peeks at the network when not followed.

        Args:
            kinds: entry kinds to include; default posts and reposts; ``["*"]`` for all.

        Returns:
            A page, plus ``forked`` and ``fork_seq``: whether this node holds a
            proof that the author signed two different entries at one seq, and
            the seq the feed is frozen at (None when not forked).
        """
        page = await self.reader.feed(await self._who(identity), limit, before, kinds)
        return await self.names.annotate_page(page)

    async def thread(self, id: str | bytes) -> dict[str, Any]:
        """A post with its nested replies, in tree order (each item has a depth).

        Args:
            id: any entry of the thread: its id, or a unique prefix of it.

        Raises:
            LocalUsageError: no entry held here has this id (reason
                ``unknown_id``), or the id is ambiguous or malformed.
        """
        return await self.names.annotate_page(await self.reader.thread(id))

    async def mentions(self, *, limit: int = 50, before: str | None = None) -> dict[str, Any]:
        """Replies to this identity's posts and posts mentioning it, newest first."""
        return await self.names.annotate_page(await self.reader.mentions(limit, before))

    # Notifications and finding people (node/notifications.py).
    async def notifications(
        self, *, limit: int = 50, before: str | None = None, unread: bool = False
    ) -> dict[str, Any]:
        """Replies, mentions, reactions, reposts and follows of this identity, newest first.

        Each item is an entry with ``notification`` (its kind) and ``unread``;
        the page has ``unread`` (the count) and ``mark`` (for ``mark_notifications_read``).
        """
        return await self.names.annotate_page(
            await self.notifier.notifications(limit, before, unread)
        )

    async def mark_notifications_read(self, *, upto: str | None = None) -> dict[str, Any]:
        """Mark notifications read up to ``upto`` (a page's ``mark``), or all of them."""
        return await self.notifier.mark_read(upto)

    async def suggest(self, *, limit: int = 20) -> dict[str, Any]:
        """People followed by those this identity follows, most-followed first."""
        return await self.notifier.suggest(limit)

    async def search_people(
        self, query: str, *, limit: int = 20, before: str | None = None
    ) -> dict[str, Any]:
        """Profiles held here whose name or bio contains ``query``, case-insensitively."""
        return await self.notifier.search_people(query, limit, before)

    async def search(
        self,
        query: str,
        *,
        author: str | bytes | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> dict[str, Any]:
        """Full-text search over held posts (words and "phrases")."""
        page = await self.reader.search(query, await self._who(author), limit, before)
        return await self.names.annotate_page(page)

    async def profile(self, identity: str | bytes | None = None) -> dict[str, Any]:
        """An identity's latest profile, with follow counts as seen by this node."""
        result = await self.reader.profile(await self._who(identity))
        result["petname"] = self.names.petname(result["identity"])
        return result

    async def following(self, identity: str | bytes | None = None) -> dict[str, Any]:
        """Identities this identity follows (from the follow entries held here)."""
        result = await self.reader.following(await self._who(identity))
        result["names"] = await self.names.identity_names(result["items"])
        return result

    async def followers(self, identity: str | bytes | None = None) -> dict[str, Any]:
        """Identities seen following this identity."""
        result = await self.reader.followers(await self._who(identity))
        result["names"] = await self.names.identity_names(result["items"])
        return result

    # -- petnames (node/names.py) ----------------------------------------------

    async def _who(self, identity: str | bytes | None) -> bytes | None:
        """An identity argument with petnames resolved (None stays None)."""
        return None if identity is None else await self.names.resolve(identity)

    async def set_petname(self, name: str, identity: str | bytes) -> dict[str, Any]:
        """Give an identity a petname: local and private, never published.

        Returns:
            ``{"name", "identity", "previous"}`` (the identity's earlier petname or None).

        Raises:
            LocalUsageError: ``bad_name``, ``name_taken``, ``too_many_names``,
                or a malformed identity.
        """
        return await self.names.set(name, identity)

    async def petnames(self) -> dict[str, Any]:
        """Every petname: ``{"items": [{"name", "identity", "profile"}]}``, by name."""
        return await self.names.listing()

    async def remove_petname(self, name: str) -> dict[str, Any]:
        """Forget a petname.

        Raises:
            LocalUsageError: ``unknown_name``.
        """
        return await self.names.remove(name)

    # -- peers and status -----------------------------------------------------

    async def peers(self) -> dict[str, Any]:
        """Connected peers.

        Each has its ``path``: ``"direct"`` (a TCP connection between the two
        nodes), ``"lan"`` (one to a peer found on the LAN), ``"mapped"`` (an
        inbound one through this node's port mapping) unless the link pool
        says otherwise (``"relayed"``, ``"reversed"``, ``"punched"``).
        """
        items = self.replicator.peers() if self.replicator is not None else []
        mapped = self._mapped_from()
        return {"items": [{**p, "path": link_path(p, self.lan, mapped)} for p in items]}

    def _mapped_from(self) -> Callable[[str], bool] | None:
        """While the link port is mapped (spec/portmap.md): a test of whether an
        inbound direct link from a host came through the mapping, that is,
        from beyond every network this host is on."""
        if self.portmap is None or self.portmap.external() is None:
            return None
        networks = local_networks()
        return lambda host: off_link(host, networks)

    # Invites: first contact (node/invites.py, spec/invite.md).
    async def invite(
        self, *, expires_in: int | None = None, recommend: list[str] | None = None
    ) -> dict[str, Any]:
        """This node's invite: one signed line with its identity and addresses.

        Args:
            expires_in: seconds until readers refuse it (1 to a year); None: never.
            recommend: identities to recommend (at most 8).

        Returns:
            ``{"invite", "identity", "peer_addrs", "dht_addrs", "expires", "recommended"}``.

        Raises:
            LocalUsageError: a bad expiry (``bad_expiry``), a malformed or own
                identity among ``recommend``, or more than 8 of them.
        """
        return await self.invites.invite(expires_in, recommend or ())

    async def accept_invite(self, invite: str) -> dict[str, Any]:
        """Check an invite, follow its identity, connect to its node and seed the DHT.

        Returns:
            ``{"identity", "followed", "connected", "connect_error", "dht_contacts",
            "recommended", "expires"}``; a failed connection is reported here.

        Raises:
            DecodeError: ``bad_invite``, ``bad_checksum``, ``unsupported_version``, ``expired``.
            InvalidSignature: ``bad_signature``.
            LocalUsageError: the invite is this node's own (``self``).
        """
        return await self.invites.accept(invite)

    async def sync_progress(self, identity: str | None = None) -> dict[str, Any]:
        """How far each wanted feed (or only ``identity``'s) has caught up.

        Each item: ``identity``, ``held``, ``contiguous``, ``head`` (the best
        known head), ``recent`` and ``recent_held`` (the newest entries up to
        that head, and how many are held), ``recent_complete``, ``complete``,
        ``catching`` (spec/sync.md 5.6).

        Raises:
            LocalUsageError: a malformed identity or unknown petname.
            NodeError: replication is not running (``unavailable``).
        """
        rep = self.replicator
        if rep is None:
            raise NodeError("replication is not running", reason="unavailable")
        authors = [await self.names.resolve(identity)] if identity else rep.wanted_feeds()
        items = await progress_rows(self.store, authors, rep.known_heads(authors), rep.recent)
        return {"items": items}

    async def connect(self, host: str, port: int) -> dict[str, Any]:
        """Open a peer link to host:port now (besides DHT discovery)."""
        if self.replicator is None:
            raise NodeError("replication is not running", reason="unavailable")
        if type(port) is not int or not 0 < port < 65536:
            raise LocalUsageError(f"port must be 1..65535, not {port!r}", reason="bad_port")
        if not isinstance(host, str) or not 0 < len(host) <= 253:
            raise LocalUsageError("host must be an address or a name", reason="bad_host")
        if not await self.replicator.connect(host, port):
            raise NodeError(f"could not open a peer link to {host}:{port}", reason="connect_failed")
        return {"connected": f"{host}:{port}"}

    async def status(self) -> dict[str, Any]:
        """Identity, addresses and counts (the shape ``p2psocial status --json`` prints).

        ``forked_feeds`` counts the feeds this node holds a fork proof for, and
        ``forks`` lists up to STATUS_MAX_FORKS of them, by identity, each with
        the seq it is frozen at.
        """
        interests = await self.store.interests()
        forks = await self.store.forked_feeds()
        listed = sorted((identity_to_text(a), seq) for a, seq in forks.items())[:STATUS_MAX_FORKS]
        return {
            "identity": self.identity_text,
            "node_id": self.node_key_id.hex(),
            "dht_addr": fmt_addr(self.dht_addr),
            "peer_addr": fmt_addr(self.peer_addr),
            "api": str(self.config.api_path) if self.config.serve_api else None,
            "peers": len(self.replicator.peers()) if self.replicator is not None else 0,
            "feeds": len(interests),
            "forked_feeds": len(forks),
            "forks": [{"identity": ident, "fork_seq": seq} for ident, seq in listed],
            "uptime_s": (now_ms() - self._started) // 1000,
            "unread_notifications": await self.notifier.unread_count(),
            **self._reachability(),
            "relays": self.replicator.relays() if self.replicator is not None else [],
            "lan_peers": len(self.lan.lan_peers()) if self.lan is not None else 0,
            "port_mapping": self.portmap.status() if self.portmap is not None else {"state": "off"},
            "links_by_path": self._links_by_path(),
        }

    def _links_by_path(self) -> dict[str, int]:
        """Peer links by how they were made (spec/sync.md §12.8)."""
        items = self.replicator.peers() if self.replicator is not None else []
        mapped = self._mapped_from()
        paths = Counter(link_path(p, self.lan, mapped) for p in items)
        return dict(sorted(paths.items()))

    def _reachability(self) -> dict[str, Any]:
        """The status fields of observed addresses and dial-back (spec/dht.md 4.4, 4.5)."""
        if self.dht is not None:
            r = self.dht.reachability()
            fields = {
                k: r[k] for k in ("reachability", "nat_mapping", "observed_addrs", "reachable")
            }
            if self.portmap is not None and self.portmap.external() is not None:
                fields["reachability"] = "mapped"  # spec/portmap.md
            return fields
        return {
            "reachability": "unknown",
            "nat_mapping": "unknown",
            "observed_addrs": [],
            "reachable": "unknown",
        }

    @property
    def node_key_id(self) -> bytes:
        """This node's DHT id (from the node key, not the user identity)."""
        return node_id_from_public_key(self.node_key.public_key)

    async def statistics(self) -> dict[str, Any]:
        """Counters of every service (drops, rejections, traffic)."""
        stats: dict[str, Any] = {
            "node": dict(self.watchers.stats),
            "store": await self.store.statistics(),
            "policy_refused": dict(self.gate.stats),
        }
        if self.dht is not None:
            stats["dht"] = self.dht.statistics()
        if self.replicator is not None:
            stats["replication"] = self.replicator.statistics()
        if self.connectivity is not None:
            stats["connectivity"] = self.connectivity.statistics()
        if self.lan is not None:
            stats["lan"] = self.lan.statistics()
        if self.portmap is not None:
            stats["portmap"] = self.portmap.statistics()
        if self.api_server is not None:
            stats["api"] = {
                **self.api_server.stats,
                "peer_work_yields": self.foreground.yields,
                "peer_work_yield_seconds": round(self.foreground.yield_seconds, 3),
            }
        return stats

    # -- watching -------------------------------------------------------------

    def subscribe(
        self, flt: WatchFilter
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """A channel of new entries matching ``flt``, open while the ``async with`` runs.

        The channel holds ``watch.WATCH_BUFFER`` events; a subscriber further behind
        misses events (counted in statistics()).
        """
        return self.watchers.subscribe(flt)

    async def watch(self, flt: WatchFilter | None = None) -> AsyncIterator[dict[str, Any]]:
        """New entries as they are stored (own and replicated), matching ``flt``.

        A watcher that falls more than ``watch.WATCH_BUFFER`` events behind misses
        events rather than slowing the node down (counted in statistics()).
        """
        async with self.subscribe(flt or WatchFilter()) as recv:
            async for event in recv:
                yield event


async def _start_portmap(node: Node, nursery: trio.Nursery) -> None:
    """Map the link and DHT ports at the gateway (spec/portmap.md), when the
    policy allows, a gateway is known and the node listens beyond loopback."""
    config, dht = node.config, node.dht
    if not config.policy.port_mapping or dht is None or node.peer_addr is None:
        return
    if node.dht_addr is None or not node.peer_addr[1] or _is_loopback(config.listen):
        return
    try:
        gateway = parse_gateway(config.portmap_gateway)
    except (ValueError, OSError):
        raise NodeError(
            f"portmap gateway {config.portmap_gateway!r} is not HOST[:PORT]", reason="bad_config"
        ) from None
    if gateway is None:
        return
    link_port = node.peer_addr[1]

    def changed() -> None:
        ext = node.portmap.external() if node.portmap is not None else None
        if dht.set_mapped_port(link_port, ext[1] if ext is not None else None):
            nursery.start_soon(dht.reannounce_all)

    node.portmap = PortMapper(
        gateway, [(PROTO_TCP, link_port), (PROTO_UDP, node.dht_addr[1])], on_change=changed
    )
    await nursery.start(node.portmap.run)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NodeError(f"{text!r} is not HOST:PORT", reason="bad_address")
    return host.strip("[]"), int(port)


@asynccontextmanager
async def open_node(
    config: NodeConfig,
    *,
    identity_key: SigningKey | None = None,
    node_key: SigningKey | None = None,
) -> AsyncIterator[Node]:
    """Start a node (store, DHT, replication, local API) and stop it on exit.

    Args:
        config: where the data lives and how to listen; see :class:`NodeConfig`.
        identity_key, node_key: keys to use instead of the data dir's key files.

    Raises:
        NodeError: missing identity, unusable address, or a service failing to start.
    """
    if identity_key is None or node_key is None:
        loaded = load_keys(config)
        identity_key = identity_key or loaded[0]
        node_key = node_key or loaded[1]
    bootstrap = [_host_port(b) for b in config.bootstrap]
    explicit_peers = [_host_port(p) for p in config.peers]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_async_store(config.db_path) as store:
        node = Node(config, identity_key, node_key, store)
        await store.set_interest(node.identity, "self")
        await node.names.load()
        async with trio.open_nursery() as nursery:
            await nursery.start(node.moderator.run)
            await nursery.start(node.watchers.run)
            node.dht = DHTNode(
                node_key, host=config.listen, port=config.dht_port, contact_store=store
            )
            node.dht_addr = await nursery.start(node.dht.run)
            replicator = Replicator(
                node.gate,
                node_key,
                dht=node.dht,
                host=config.listen,
                port=config.port,
                identity=node.identity,
                on_stored=node._on_stored,
                hops=config.policy.hops,
                accept_inbound=config.policy.accept_inbound,
                foreground=node.foreground,
                relay_limits=lambda: RelayLimits.from_policy(config.policy),
            )
            node._attach_replicator(replicator)
            node.peer_addr = await nursery.start(replicator.run)
            if node.peer_addr[1]:  # can others dial our links? (spec/dht.md 4.5)
                node.dht.enable_dial_back(node.peer_addr[1])
            if lan_allowed():
                link_port = node.peer_addr[1]
                on = lambda: config.policy.lan_discovery  # noqa: E731
                node.lan = LanDiscovery(node.dht, lambda: link_port, config.listen, enabled=on)
                await nursery.start(node.lan.run)
            await _start_portmap(node, nursery)
            # With no bootstrap address this still rejoins through the
            # contacts saved by the last run (a no-op on a first run).
            nursery.start_soon(node.dht.bootstrap, bootstrap)
            known = bool(bootstrap or explicit_peers or len(node.dht.table))
            node.connectivity = ConnectivityWatch(
                lambda: reach_of(node.dht, node.replicator, node.peer_addr, known=known)
            )
            await nursery.start(node.connectivity.run)
            for host, port in explicit_peers:
                nursery.start_soon(replicator.connect, host, port)
            if config.serve_api:
                node.api_server = APIServer(node, config.api_path)
                await nursery.start(node.api_server.run)
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
