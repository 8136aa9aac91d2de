"""Publishing: the owner's new entries, signed, stored and handed to replication.

Every entry this node writes goes through :meth:`Publisher.publish`, one at a
time (the feed is a chain: each entry names the one before it), so the store,
replication and the watchers all see it in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import trio

from ..protocol.entries import Entry, encode_payload
from ..protocol.errors import LocalUsageError
from ..protocol.identity import SigningKey
from ..storage import AsyncStore
from .replication import Replicator
from .views import parse_entry_id, parse_identity

__all__ = ["Publisher", "now_ms"]


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of entry timestamps."""
    return time.time_ns() // 1_000_000


class Publisher:
    """Writes the owner's entries: posts, reactions, profile, follows.

    Args:
        store: the node's store.
        identity_key: the user identity the entries are signed with.
        on_stored: called with each entry once it is stored (before this returns).
    """

    def __init__(
        self,
        store: AsyncStore,
        identity_key: SigningKey,
        on_stored: Callable[[list[Entry]], None],
    ) -> None:
        self._store = store
        self._key = identity_key
        self._on_stored = on_stored
        self._lock = trio.Lock()
        self.identity: bytes = identity_key.public_key
        #: Told about every new entry and follow once replication runs.
        self.replicator: Replicator | None = None

    async def publish(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Sign, store and announce one entry.

        Returns:
            ``{"id": hex, "seq": int}``.
        """
        async with self._lock:
            entry: Entry = await self._store.append_local(self._key, kind, payload, now_ms=now_ms())
        if self.replicator is not None:
            # Canonical encoding: these are exactly the payload bytes just stored.
            self.replicator.notify_local(entry, encode_payload(kind, payload))
        self._on_stored([entry])
        return {"id": entry.id.hex(), "seq": entry.seq}

    async def post(
        self,
        text: str,
        reply_to: str | bytes | None,
        mentions: Iterable[str | bytes],
        tags: Iterable[str],
        lang: str | None,
    ) -> dict[str, Any]:
        """Publish a post; see :meth:`p2psocial.Node.post`."""
        payload: dict[str, Any] = {"text": text}
        mention_keys = [parse_identity(m) for m in mentions]
        if reply_to is not None:
            parent_id = parse_entry_id(reply_to)
            parent = await self._store.get_entry(parent_id)
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
        return await self.publish("post", payload)

    async def react(self, target: str | bytes, emoji: str) -> dict[str, Any]:
        """Publish a reaction."""
        return await self.publish("react", {"target": parse_entry_id(target), "emoji": emoji})

    async def repost(self, target: str | bytes) -> dict[str, Any]:
        """Publish a repost."""
        return await self.publish("repost", {"target": parse_entry_id(target)})

    async def delete(self, target: str | bytes) -> dict[str, Any]:
        """Publish a delete of one of the owner's entries; see :meth:`p2psocial.Node.delete`."""
        target_id = parse_entry_id(target)
        entry = await self._store.get_entry(target_id)
        if entry is None:
            raise LocalUsageError(f"no entry {target_id.hex()} on this node", reason="not_found")
        if entry.author != self.identity:
            raise LocalUsageError("only the author can delete an entry", reason="not_author")
        return await self.publish("delete", {"target": target_id})

    async def set_profile(self, name: str | None, bio: str | None) -> dict[str, Any]:
        """Publish a profile; fields left None keep their previous value."""
        current = await self._store.profile(self.identity) or {}
        payload: dict[str, Any] = {}
        for key, value in (("name", name), ("bio", bio)):
            if value is not None:
                payload[key] = value
            elif isinstance(current.get(key), str):
                payload[key] = current[key]
        return await self.publish("profile", payload)

    async def follow(self, identity: str | bytes) -> dict[str, Any]:
        """Publish a follow and start wanting the feed."""
        target = parse_identity(identity)
        if target == self.identity:
            raise LocalUsageError("you cannot follow yourself", reason="self")
        result = await self.publish("follow", {"target": target})
        await self._store.set_interest(target, "follow")
        if self.replicator is not None:
            self.replicator.interest_changed()
        return result

    async def unfollow(self, identity: str | bytes) -> dict[str, Any]:
        """Publish an unfollow and stop wanting the feed (entries held are kept)."""
        target = parse_identity(identity)
        result = await self.publish("unfollow", {"target": target})
        await self._store.clear_interest(target, "follow")
        if self.replicator is not None:
            self.replicator.interest_changed()
        return result
