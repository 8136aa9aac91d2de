"""Publishing: the owner's new entries, signed, stored and handed to replication.

Every entry this node writes goes through :meth:`Publisher.publish`. The
store chains them (each entry names the one before it) and lets acts that
overlap share one durable commit. Acts that overlap are announced to
replication and the watchers as each is acknowledged, so those may see a
group's entries out of seq order; a head only moves forward, and peers fetch
any gap by range. Guarded acts (a follow that must not repeat) run one at a
time under a lock, their check and append together.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import trio

from ..protocol.entries import Entry
from ..protocol.errors import LocalUsageError
from ..protocol.identity import SigningKey, identity_to_text
from ..protocol.kinds import MAX_MENTIONS, MAX_TAGS, MAX_TEXT_CHARS
from ..protocol.textrefs import find_text_refs, tag_key
from ..storage import AsyncStore
from .names import Names
from .replication import Replicator
from .views import resolve_entry_id

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
        names: resolves petnames wherever an identity is taken (default: a
            :class:`Names` of its own over ``store``).
    """

    def __init__(
        self,
        store: AsyncStore,
        identity_key: SigningKey,
        on_stored: Callable[[list[Entry]], None],
        names: Names | None = None,
    ) -> None:
        self._store = store
        #: Petnames: every identity this publisher takes may be one.
        self.names = names if names is not None else Names(store)
        self._key = identity_key
        self._on_stored = on_stored
        self._lock = trio.Lock()
        self.identity: bytes = identity_key.public_key
        #: Told about every new entry and follow once replication runs.
        self.replicator: Replicator | None = None

    async def publish(
        self,
        kind: str,
        payload: dict[str, Any],
        guard: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Sign, store and announce one entry.

        Args:
            guard: checks the owner's feed allows this entry, raising if not. It
                runs under one lock with the append, so two racing guarded
                calls cannot both pass it (two follows of one identity publish one).

        Returns:
            ``{"id": hex, "seq": int}``.
        """
        entry: Entry
        data: bytes
        if guard is None:
            # Unguarded acts run side by side: the store shares one commit
            # among those that overlap (group commit) and orders their seqs.
            entry, data = await self._store.append_local_raw(
                self._key, kind, payload, now_ms=now_ms()
            )
        else:
            async with self._lock:
                await guard()
                entry, data = await self._store.append_local_raw(
                    self._key, kind, payload, now_ms=now_ms()
                )
        if self.replicator is not None:
            # The payload bytes just stored (encoded once, in the store thread).
            self.replicator.notify_local(entry, data)
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
        """Publish a post; see :meth:`p2psocial.Node.post`.

        ``@name``, ``@p2ps1...`` and ``#tag`` in the text are added to the
        explicit mentions and tags (protocol/textrefs.py has the token rules),
        deduplicated, explicit ones first. An inline ``@name`` that names no
        one here stays plain text and is listed in the result's ``unresolved``
        (present only when there is one).
        """
        if isinstance(text, str) and not text.strip():
            raise LocalUsageError(
                "a post needs text, and this one is empty or only whitespace", reason="empty_text"
            )
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            # Checked before the text is scanned; the schema would refuse it too.
            raise LocalUsageError(
                f"post text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}",
                reason="too_long",
            )
        payload: dict[str, Any] = {"text": text}
        mention_keys = [await self.names.resolve(m) for m in mentions]
        refs = find_text_refs(text, max_mentions=MAX_MENTIONS, max_tags=MAX_TAGS)
        unresolved: list[str] = []
        for token in refs.mentions:
            try:
                mention_keys.append(await self.names.resolve(token))
            except LocalUsageError:
                unresolved.append("@" + token)
        if reply_to is not None:
            parent_id = await resolve_entry_id(self._store, reply_to)
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
        mention_keys = list(dict.fromkeys(mention_keys))
        if len(mention_keys) + refs.extra_mentions > MAX_MENTIONS:
            raise LocalUsageError(
                f"this post names {len(mention_keys) + refs.extra_mentions} people; "
                f"a post mentions at most {MAX_MENTIONS}",
                reason="too_many_mentions",
            )
        if mention_keys:
            payload["mentions"] = mention_keys
        tag_list: dict[str, str] = {}
        for tag in [*(t.lstrip("#") for t in tags), *refs.tags]:
            tag_list.setdefault(tag_key(tag), tag)
        if len(tag_list) + refs.extra_tags > MAX_TAGS:
            raise LocalUsageError(
                f"this post has {len(tag_list) + refs.extra_tags} tags; "
                f"a post has at most {MAX_TAGS}",
                reason="too_many_tags",
            )
        if tag_list:
            payload["tags"] = list(tag_list.values())
        if lang:
            payload["lang"] = lang
        result = await self.publish("post", payload)
        if unresolved:
            # Only then, so the usual answer keeps its {"id", "seq"} shape.
            result["unresolved"] = unresolved
        return result

    async def react(self, target: str | bytes, emoji: str, force: bool) -> dict[str, Any]:
        """Publish a reaction; see :meth:`p2psocial.Node.react`."""
        target_id = await resolve_entry_id(self._store, target)
        if not force and await self._store.get_entry(target_id) is None:
            raise LocalUsageError(
                f"cannot react to {target_id.hex()}: this node has never seen that entry "
                "(force=True, or --force, reacts to an id known to exist elsewhere)",
                reason="unknown_id",
            )
        return await self.publish("react", {"target": target_id, "emoji": emoji})

    async def repost(self, target: str | bytes) -> dict[str, Any]:
        """Publish a repost."""
        return await self.publish("repost", {"target": await resolve_entry_id(self._store, target)})

    async def delete(self, target: str | bytes) -> dict[str, Any]:
        """Publish a delete of one of the owner's entries; see :meth:`p2psocial.Node.delete`."""
        target_id = await resolve_entry_id(self._store, target)

        async def deletable() -> None:
            entry = await self._store.get_entry(target_id)
            if entry is None:
                raise LocalUsageError(
                    f"no entry {target_id.hex()} on this node", reason="not_found"
                )
            if entry.author != self.identity:
                raise LocalUsageError("only the author can delete an entry", reason="not_author")
            if entry.deleted:
                raise LocalUsageError(
                    f"entry {target_id.hex()} is already deleted", reason="already_deleted"
                )

        return await self.publish("delete", {"target": target_id}, deletable)

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

    def _follows(self, target: bytes, publishing_follow: bool) -> Callable[[], Awaitable[None]]:
        """A publish guard: refuse a follow of a followed identity, or an unfollow of
        one not followed (by the owner's latest follow/unfollow entries)."""

        async def check() -> None:
            followed = target in await self._store.following(self.identity)
            if followed and publishing_follow:
                raise LocalUsageError(
                    f"you already follow {identity_to_text(target)}", reason="already_following"
                )
            if not followed and not publishing_follow:
                raise LocalUsageError(
                    f"you do not follow {identity_to_text(target)}", reason="not_following"
                )

        return check

    async def follow(self, identity: str | bytes) -> dict[str, Any]:
        """Publish a follow and start wanting the feed."""
        target = await self.names.resolve(identity)
        if target == self.identity:
            raise LocalUsageError("you cannot follow yourself", reason="self")
        result = await self.publish("follow", {"target": target}, self._follows(target, True))
        await self._store.set_interest(target, "follow")
        if self.replicator is not None:
            self.replicator.interest_changed()
        return result

    async def unfollow(self, identity: str | bytes) -> dict[str, Any]:
        """Publish an unfollow and stop wanting the feed (entries held are kept)."""
        target = await self.names.resolve(identity)
        result = await self.publish("unfollow", {"target": target}, self._follows(target, False))
        await self._store.clear_interest(target, "follow")
        if self.replicator is not None:
            self.replicator.interest_changed()
        return result
