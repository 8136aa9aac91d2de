"""The Node: storage, DHT, replication and the local API, composed.

    async with p2psocial.open_node(config) as node:
        await node.post("hello")
        async for event in node.watch():
            ...

Each service owns its nursery (``run(*, task_status)``); ``open_node`` starts
them in order (store, DHT, replication, API) inside one nursery and cancels
them in reverse on exit. Every public method returns JSON-friendly values
(ids as hex, identities in text form), the same shapes the local API sends.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from ..api.notes import fork_note
from ..api.server import APIServer
from ..errors import NodeError
from ..protocol.entries import Entry, encode_payload
from ..protocol.errors import DecodeError, LocalUsageError
from ..protocol.identity import (
    SigningKey,
    identity_to_text,
    node_id_from_public_key,
)
from ..storage import AsyncStore, open_async_store
from ..storage.keyfile import read_key_file
from .config import NodeConfig
from .dht import DHTNode
from .moderation import Blocklists, PolicyGate
from .replication import Replicator
from .views import (
    WatchFilter,
    check_limit,
    fmt_addr,
    parse_entry_id,
    parse_identity,
    view_json,
)

__all__ = ["Node", "WatchFilter", "open_node"]

log = logging.getLogger("p2psocial.node")

#: Events buffered per watcher before the slowest watcher starts missing events.
WATCH_BUFFER = 256
#: Forked feeds listed by ``status`` (its ``forked_feeds`` counts them all): anyone
#: can fork feeds of identities made for the purpose, so the list is bounded.
STATUS_MAX_FORKS = 100


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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
        self._key = identity_key
        self.node_key = node_key
        self.store = store
        #: The user identity this node publishes as (32 bytes).
        self.identity: bytes = identity_key.public_key
        self.identity_text = identity_to_text(self.identity)
        self.dht: DHTNode | None = None
        self.replicator: Replicator | None = None
        self.api_server: APIServer | None = None
        self._config_lock = trio.Lock()
        self.dht_addr: tuple[str, int] | None = None
        self.peer_addr: tuple[str, int] | None = None
        self._watchers: list[tuple[trio.MemorySendChannel[dict[str, Any]], WatchFilter]] = []
        self._stored_send, self._stored_recv = trio.open_memory_channel[list[bytes]](1024)
        self._publish_lock = trio.Lock()
        self.blocklists = Blocklists()
        self.gate: PolicyGate | None = None
        self._blocks_changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._stats = {"watch_events_dropped": 0, "stored_notifications_dropped": 0}
        self._started = now_ms()

    # -- publishing ---------------------------------------------------------

    async def _publish(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        async with self._publish_lock:
            entry: Entry = await self.store.append_local(self._key, kind, payload, now_ms=now_ms())
        if self.replicator is not None:
            # Canonical encoding: these are exactly the payload bytes just stored.
            self.replicator.notify_local(entry, encode_payload(kind, payload))
        self._on_stored([entry])
        return {"id": entry.id.hex(), "seq": entry.seq}

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

        Returns:
            ``{"id": hex, "seq": int}``.

        Raises:
            LocalUsageError: text too long (the message gives the limit), an
                unknown reply target, or a malformed identity.
        """
        payload: dict[str, Any] = {"text": text}
        mention_keys = [parse_identity(m) for m in mentions]
        if reply_to is not None:
            parent_id = parse_entry_id(reply_to)
            parent = await self.store.get_entry(parent_id)
            if parent is None:
                raise LocalUsageError(
                    f"cannot reply to {parent_id.hex()}: this node does not hold that entry",
                    reason="not_found",
                )
            root = parent.reply_root or parent.id
            payload["reply"] = {"root": root, "parent": parent.id}
            # The parent's author hears about the reply through its swarm.
            if parent.author != self.identity and parent.author not in mention_keys:
                mention_keys.append(parent.author)
        if mention_keys:
            payload["mentions"] = list(dict.fromkeys(mention_keys))
        tag_list = list(dict.fromkeys(t.lstrip("#") for t in tags))
        if tag_list:
            payload["tags"] = tag_list
        if lang:
            payload["lang"] = lang
        return await self._publish("post", payload)

    async def react(self, target: str | bytes, emoji: str) -> dict[str, Any]:
        """React to an entry with an emoji."""
        return await self._publish("react", {"target": parse_entry_id(target), "emoji": emoji})

    async def repost(self, target: str | bytes) -> dict[str, Any]:
        """Repost an entry to this identity's followers."""
        return await self._publish("repost", {"target": parse_entry_id(target)})

    async def delete(self, target: str | bytes) -> dict[str, Any]:
        """Delete one of this identity's own entries, on every conforming node.

        Raises:
            LocalUsageError: the entry is unknown here or is somebody else's.
        """
        target_id = parse_entry_id(target)
        entry = await self.store.get_entry(target_id)
        if entry is None:
            raise LocalUsageError(f"no entry {target_id.hex()} on this node", reason="not_found")
        if entry.author != self.identity:
            raise LocalUsageError("only the author can delete an entry", reason="not_author")
        return await self._publish("delete", {"target": target_id})

    async def set_profile(
        self, *, name: str | None = None, bio: str | None = None
    ) -> dict[str, Any]:
        """Publish a new profile; fields left None keep their previous value."""
        current = await self.store.profile(self.identity) or {}
        payload: dict[str, Any] = {}
        for key, value in (("name", name), ("bio", bio)):
            if value is not None:
                payload[key] = value
            elif isinstance(current.get(key), str):
                payload[key] = current[key]
        return await self._publish("profile", payload)

    # -- graph and policy ---------------------------------------------------

    async def follow(self, identity: str | bytes) -> dict[str, Any]:
        """Follow an identity: publish a follow entry and start replicating its feed."""
        target = parse_identity(identity)
        if target == self.identity:
            raise LocalUsageError("you cannot follow yourself", reason="self")
        result = await self._publish("follow", {"target": target})
        await self.store.set_interest(target, "follow")
        if self.replicator is not None:
            self.replicator.interest_changed()
        return result

    async def unfollow(self, identity: str | bytes) -> dict[str, Any]:
        """Stop following an identity (its entries already held are kept)."""
        target = parse_identity(identity)
        result = await self._publish("unfollow", {"target": target})
        await self.store.clear_interest(target, "follow")
        if self.replicator is not None:
            self.replicator.interest_changed()
        return result

    async def block(
        self, identity: str | bytes, *, public: bool = True, reason: str | None = None
    ) -> dict[str, Any]:
        """Block an identity: purge and refuse its payloads on this node.

        Args:
            public: also publish a ``block`` entry, so that subscribers of this
                identity's blocklist adopt it; False keeps it in local policy only.
        """
        target = parse_identity(identity)
        if target == self.identity:
            raise LocalUsageError("you cannot block yourself", reason="self")
        await self._policy_list_add("blocked", target)
        await self._apply_blocks()
        result: dict[str, Any] = {"blocked": identity_to_text(target), "public": public}
        if public:
            payload: dict[str, Any] = {"target": target}
            if reason:
                payload["reason"] = reason
            result.update(await self._publish("block", payload))
        return result

    async def unblock(self, identity: str | bytes) -> dict[str, Any]:
        """Lift a block (public blocks get an ``unblock`` entry)."""
        target = parse_identity(identity)
        await self._policy_list_remove("blocked", target)
        await self._apply_blocks()
        result: dict[str, Any] = {"unblocked": identity_to_text(target)}
        result.update(await self._publish("unblock", {"target": target}))
        return result

    async def mute(self, identity: str | bytes) -> dict[str, Any]:
        """Hide an identity from this owner's timelines (still stored and relayed)."""
        target = parse_identity(identity)
        await self._policy_list_add("muted", target)
        return {"muted": identity_to_text(target)}

    async def unmute(self, identity: str | bytes) -> dict[str, Any]:
        """Show a muted identity again."""
        target = parse_identity(identity)
        await self._policy_list_remove("muted", target)
        return {"unmuted": identity_to_text(target)}

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
        from dataclasses import fields as dc_fields

        settable = {f.name for f in dc_fields(self.config.policy)} - {"blocked", "muted"}
        if key not in settable:
            raise LocalUsageError(
                f"unknown policy setting {key!r}; settable: {', '.join(sorted(settable))} "
                "(use block/mute for the blocked and muted lists)",
                reason="bad_policy",
            )
        current = getattr(self.config.policy, key)
        if type(value) is not type(current):
            raise LocalUsageError(
                f"policy {key} must be {type(current).__name__}", reason="bad_policy"
            )
        if key == "hops" and value not in (1, 2):
            raise LocalUsageError("policy hops must be 1 or 2", reason="bad_policy")
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise LocalUsageError(f"policy {key} must not be negative", reason="bad_policy")
        if key == "hide_patterns":
            for pattern in value:
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as exc:
                    raise LocalUsageError(
                        f"hide pattern {pattern!r} is not a valid regex: {exc}"
                    ) from None
        if key == "blocklists":
            value = [identity_to_text(parse_identity(v)) for v in value]
        setattr(self.config.policy, key, value)
        await self._save_config()
        if key == "hops" and self.replicator is not None:
            self.replicator.hops = value
        if key == "accept_inbound" and self.replicator is not None:
            self.replicator.accept_inbound = value
        if key == "blocklists":
            await self._apply_blocks()
        if key in ("hops", "blocklists") and self.replicator is not None:
            self.replicator.interest_changed()
        return self.config.policy.to_dict()

    # -- blocks from the owner and from subscribed blocklists ----------------

    async def _apply_blocks(self) -> None:
        """Make the store's block set match own blocks plus subscribed lists.

        Newly blocked authors are purged; authors no longer blocked by anyone
        get their recent payloads fetched again.
        """
        own = {parse_identity(t) for t in self.config.policy.blocked}
        lists = [parse_identity(t) for t in self.config.policy.blocklists]
        interests = await self.store.interests()
        for owner in lists:
            if "blocklist" not in interests.get(owner, set()):
                await self.store.set_interest(owner, "blocklist")
        for author, reasons in interests.items():
            if "blocklist" in reasons and author not in lists:
                await self.store.clear_interest(author, "blocklist")
        effective = await self.blocklists.compute(self.store, own, lists)
        effective.discard(self.identity)
        current = await self.store.blocked()
        for author in effective - current:
            await self.store.block_local(author)
            if self.replicator is not None:
                self.replicator.payloads_purged(author)
        lifted = current - effective
        for author in lifted:
            await self.store.unblock_local(author)
        if self.replicator is not None and (lifted or effective != current):
            self.replicator.interest_changed()
        if lifted and self.replicator is not None and self._nursery is not None:
            for author in lifted:
                self._nursery.start_soon(self._refetch, author)

    async def _refetch(self, author: bytes) -> None:
        """Ask peers again for an author's recent entries, refilling purged payloads."""
        if self.replicator is None:
            return
        with trio.move_on_after(10):
            await self.replicator.peek(author, limit=500)

    async def _blocklist_watcher(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            await self._blocks_changed.wait()
            self._blocks_changed = trio.Event()
            try:
                await self._apply_blocks()
            except Exception:  # keep the node up; the next change retries
                log.exception("applying blocklists failed")

    async def explain(self, id: str | bytes) -> dict[str, Any]:
        """Why this node holds, hides or refused an entry: which rule, and whose list."""
        entry_id = parse_entry_id(id)
        view = await self.store.get_entry(entry_id)
        result: dict[str, Any] = {"id": entry_id.hex(), "held": view is not None}
        if view is None:
            result["why"] = ["this node holds no envelope with this id"]
            return result
        fork_seq = (await self.store.forked_feeds([view.author])).get(view.author)
        js = view_json(view, fork_seq=fork_seq)
        author = js["author"]
        why: list[str] = []
        interests = (await self.store.interests()).get(view.author, set())
        why.append(
            "held because: "
            + (", ".join(sorted(interests)) if interests else "no current interest")
        )
        for source in sorted(self.blocklists.sources.get(view.author, set()), key=str):
            if source == "self":
                why.append("payload refused: the author is blocked by this node's owner")
            else:
                assert isinstance(source, bytes)
                why.append(
                    f"payload refused: the author is on the blocklist of {identity_to_text(source)}, "
                    "which this node subscribes to"
                )
        refused = self.gate.refused.get(view.id) if self.gate is not None else None
        # A payload refused once may have been stored since (the quota freed up).
        if refused is not None and js["payload_state"] != "present":
            rule = {
                "too_large": f"payload refused: larger than max_payload_bytes ({self.config.policy.max_payload_bytes})",
                "quota_entries": "payload refused: the author exceeded quota_entries_per_day "
                f"({self.config.policy.quota_entries_per_day})",
                "quota_bytes": "payload refused: the author exceeded quota_bytes_per_day "
                f"({self.config.policy.quota_bytes_per_day})",
            }[refused]
            why.append(rule)
        if js.get("deleted"):
            why.append("payload purged: the author deleted this entry")
        elif js.get("payload") is None and len(why) == 1:
            why.append("payload not held (not received yet, or dropped by an earlier policy)")
        if author in self._muted():
            why.append("hidden: the author is muted by this node's owner")
        elif js.get("text") and not self._visible(js):
            why.append("hidden: the text matches a hide pattern")
        if fork_seq is not None:
            why.extend(_fork_why(view.seq, fork_seq))
        result.update(
            {
                "author": author,
                "kind": js["kind"],
                "deleted": js.get("deleted", False),
                "author_forked": js["author_forked"],
                "author_fork_seq": fork_seq,
                "why": why,
            }
        )
        return result

    async def _policy_list_add(self, name: str, key: bytes) -> None:
        values: list[str] = getattr(self.config.policy, name)
        text = identity_to_text(key)
        if text not in values:
            values.append(text)
            await self._save_config()

    async def _policy_list_remove(self, name: str, key: bytes) -> None:
        values: list[str] = getattr(self.config.policy, name)
        text = identity_to_text(key)
        if text in values:
            values.remove(text)
            await self._save_config()

    async def _save_config(self) -> None:
        """Persist the policy in config.toml, on a worker thread (file I/O must
        not block the event loop), one save at a time."""
        async with self._config_lock:
            await trio.to_thread.run_sync(self._write_policy)

    def _write_policy(self) -> None:
        # Only the policy is this node's to change at run time. The [node]
        # settings on disk stay as the user wrote them: options given on the
        # command line for one run (--listen, --port 0, --bootstrap) are not
        # written back.
        try:
            saved = NodeConfig.load(self.config.data_dir)
        except NodeError as exc:
            log.warning("not saving the policy: %s", exc.message)
            return
        saved.policy = self.config.policy
        try:
            saved.save()
        except OSError as exc:  # the change holds for this run; say why it won't persist
            log.warning("could not save %s: %s", self.config.config_path, exc)

    def _muted(self) -> set[str]:
        return set(self.config.policy.muted)

    # -- reading ------------------------------------------------------------

    def _visible(self, view: dict[str, Any]) -> bool:
        if view["author"] in self._muted():
            return False
        text = view.get("text")
        if text:
            for pattern in self.config.policy.hide_patterns:
                try:
                    if re.search(pattern, text, re.IGNORECASE):
                        return False
                except re.error:
                    continue
        return True

    async def _views(self, views: Iterable[Any]) -> list[dict[str, Any]]:
        """EntryViews as the API shows them, each saying whether its author's feed is forked."""
        views = list(views)
        forks = await self.store.forked_feeds({v.author for v in views}) if views else {}
        return [view_json(v, fork_seq=forks.get(v.author)) for v in views]

    async def _page(self, page: Any, *, filter_visible: bool) -> dict[str, Any]:
        items = await self._views(page.items)
        if filter_visible:
            items = [v for v in items if self._visible(v)]
        return {"items": items, "next": page.next_cursor}

    async def timeline(self, *, limit: int = 50, before: str | None = None) -> dict[str, Any]:
        """Own and followed authors' entries, newest first (muted authors hidden)."""
        page = await self.store.timeline(self.identity, limit=check_limit(limit), before=before)
        return await self._page(page, filter_visible=True)

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
        author = self.identity if identity is None else parse_identity(identity)
        if kinds is None:
            kind_filter: tuple[str, ...] | None = ("post", "repost")
        elif kinds == ["*"]:
            kind_filter = None
        else:
            kind_filter = tuple(kinds)
        page = await self.store.feed(
            author, limit=check_limit(limit), before=before, kinds=kind_filter
        )
        if (
            not page.items
            and before is None
            and self.replicator is not None
            and not (await self.store.interests()).get(author)
        ):
            # Not replicated here: read its recent entries from swarm peers.
            with trio.move_on_after(5):
                await self.replicator.peek(author, limit=check_limit(limit))
            page = await self.store.feed(
                author, limit=check_limit(limit), before=before, kinds=kind_filter
            )
        result = await self._page(page, filter_visible=False)
        fork_seq = (await self.store.forked_feeds([author])).get(author)
        result.update({"forked": fork_seq is not None, "fork_seq": fork_seq})
        return result

    async def thread(self, id: str | bytes) -> dict[str, Any]:
        """A post with its nested replies, in tree order (each item has a depth)."""
        views = await self.store.thread(parse_entry_id(id))
        return {"items": await self._views(views)}

    async def mentions(self, *, limit: int = 50, before: str | None = None) -> dict[str, Any]:
        """Replies to this identity's posts and posts mentioning it, newest first."""
        page = await self.store.mentions(self.identity, limit=check_limit(limit), before=before)
        return await self._page(page, filter_visible=True)

    async def search(
        self,
        query: str,
        *,
        author: str | bytes | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> dict[str, Any]:
        """Full-text search over held posts (words and "phrases")."""
        key = None if author is None else parse_identity(author)
        page = await self.store.search(query, author=key, limit=check_limit(limit), before=before)
        return await self._page(page, filter_visible=True)

    async def profile(self, identity: str | bytes | None = None) -> dict[str, Any]:
        """An identity's latest profile, with follow counts as seen by this node."""
        author = self.identity if identity is None else parse_identity(identity)
        prof = await self.store.profile(author) or {}
        following = await self.store.following(author)
        followers = await self.store.followers(author)
        fork_seq = (await self.store.forked_feeds([author])).get(author)
        return {
            "identity": identity_to_text(author),
            "name": prof.get("name"),
            "bio": prof.get("bio"),
            "following": len(following),
            "followers": len(followers),
            "blocked": identity_to_text(author) in self.config.policy.blocked,
            "muted": identity_to_text(author) in self._muted(),
            "forked": fork_seq is not None,
            "fork_seq": fork_seq,
        }

    async def following(self, identity: str | bytes | None = None) -> dict[str, Any]:
        """Identities this identity follows (from the follow entries held here)."""
        author = self.identity if identity is None else parse_identity(identity)
        return {"items": [identity_to_text(k) for k in await self.store.following(author)]}

    async def followers(self, identity: str | bytes | None = None) -> dict[str, Any]:
        """Identities seen following this identity."""
        author = self.identity if identity is None else parse_identity(identity)
        return {"items": [identity_to_text(k) for k in await self.store.followers(author)]}

    async def peers(self) -> dict[str, Any]:
        """Connected peers."""
        items = self.replicator.peers() if self.replicator is not None else []
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

    # -- status ---------------------------------------------------------------

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
        }

    @property
    def node_key_id(self) -> bytes:
        """This node's DHT id (from the node key, not the user identity)."""
        return node_id_from_public_key(self.node_key.public_key)

    async def statistics(self) -> dict[str, Any]:
        """Counters of every service (drops, rejections, traffic)."""
        stats: dict[str, Any] = {"node": dict(self._stats), "store": await self.store.statistics()}
        if self.gate is not None:
            stats["policy_refused"] = dict(self.gate.stats)
        if self.dht is not None:
            stats["dht"] = self.dht.statistics()
        if self.replicator is not None:
            stats["replication"] = self.replicator.statistics()
        if self.api_server is not None:
            stats["api"] = dict(self.api_server.stats)
        return stats

    # -- watching -------------------------------------------------------------

    def _on_stored(self, entries: list[Entry]) -> None:
        """Called (synchronously) whenever entries are stored; fans out to watchers."""
        if self.config.policy.blocklists and any(e.kind in ("block", "unblock") for e in entries):
            lists = {identity_to_text(e.author) for e in entries if e.kind in ("block", "unblock")}
            if lists & set(self.config.policy.blocklists):
                self._blocks_changed.set()
        if not self._watchers:
            return
        try:
            self._stored_send.send_nowait([e.id for e in entries])
        except trio.WouldBlock:
            self._stats["stored_notifications_dropped"] += 1

    async def _fanout(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        async for ids in self._stored_recv:
            if not self._watchers:
                continue
            for entry_id in ids:
                view = await self.store.get_entry(entry_id)
                if view is None:
                    continue
                [event] = await self._views([view])
                for send, flt in list(self._watchers):
                    if flt.matches(event, self.identity_text):
                        try:
                            send.send_nowait(event)
                        except (
                            trio.WouldBlock,
                            trio.BrokenResourceError,
                            trio.ClosedResourceError,
                        ):
                            self._stats["watch_events_dropped"] += 1

    @asynccontextmanager
    async def _subscribe(
        self, flt: WatchFilter
    ) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        send, recv = trio.open_memory_channel[dict[str, Any]](WATCH_BUFFER)
        item = (send, flt)
        self._watchers.append(item)
        try:
            yield recv
        finally:
            self._watchers.remove(item)
            send.close()

    async def watch(self, flt: WatchFilter | None = None) -> AsyncIterator[dict[str, Any]]:
        """New entries as they are stored (own and replicated), matching ``flt``.

        A watcher that falls more than WATCH_BUFFER events behind misses
        events rather than slowing the node down (counted in statistics()).
        """
        async with self._subscribe(flt or WatchFilter()) as recv:
            async for event in recv:
                yield event


def _fork_why(seq: int, fork_seq: int) -> list[str]:
    """``explain``'s lines for an entry of a forked feed."""
    lines = [f"the author's feed is forked and frozen at seq {fork_seq}: " + fork_note(fork_seq)]
    if seq < fork_seq:
        lines.append(f"this entry (seq {seq}) is before the fork: every history of the feed has it")
    elif seq == fork_seq:
        lines.append(
            f"this entry is one of two rival entries at seq {fork_seq}; "
            "other nodes may show the other one"
        )
    else:
        lines.append(
            f"this entry (seq {seq}) is above the fork, on one of the rival histories "
            "(held before the fork was found)"
        )
    return lines


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(64)
    except OSError:
        return b""


def load_keys(config: NodeConfig) -> tuple[SigningKey, SigningKey]:
    """Read the identity and node keys from the data dir.

    Raises:
        NodeError: a key is missing or unreadable; the message names ``p2psocial init``.
    """
    keys = []
    for path in (config.identity_path, config.node_key_path):
        try:
            keys.append(
                read_key_file(path, config.passphrase if path == config.identity_path else None)
            )
        except FileNotFoundError:
            raise NodeError(
                f"no identity in {config.data_dir} ({path.name} is missing); "
                f"create one with: p2psocial --data-dir {config.data_dir} init",
                reason="no_identity",
            ) from None
        except DecodeError as exc:
            if exc.reason == "passphrase" or b"ENCRYPTED" in _head(path):
                raise NodeError(
                    f"cannot unlock {path}: the passphrase is wrong or missing (give it with "
                    "P2PSOCIAL_PASSPHRASE, --passphrase-file, or at the prompt)",
                    reason="bad_passphrase",
                ) from None
            # Never suggest `init --force` here: it makes a new identity and
            # the one in this file (and every follower of it) is lost.
            raise NodeError(
                f"cannot read {path}: {exc.message}; restore it from a backup",
                reason="bad_identity",
            ) from None
    return keys[0], keys[1]


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
        node.gate = PolicyGate(store, config.policy, node.identity)
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            await node._apply_blocks()
            await nursery.start(node._fanout)
            await nursery.start(node._blocklist_watcher)
            node.dht = DHTNode(
                node_key, host=config.listen, port=config.dht_port, contact_store=store
            )
            node.dht_addr = await nursery.start(node.dht.run)
            node.replicator = Replicator(
                node.gate,
                node_key,
                dht=node.dht,
                host=config.listen,
                port=config.port,
                identity=node.identity,
                on_stored=node._on_stored,
                hops=config.policy.hops,
                accept_inbound=config.policy.accept_inbound,
            )
            node.peer_addr = await nursery.start(node.replicator.run)
            # With no bootstrap address this still rejoins through the
            # contacts saved by the last run (a no-op on a first run).
            nursery.start_soon(node.dht.bootstrap, bootstrap)
            for host, port in explicit_peers:
                nursery.start_soon(node.replicator.connect, host, port)
            if config.serve_api:
                node.api_server = APIServer(node, config.api_path)
                await nursery.start(node.api_server.run)
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
