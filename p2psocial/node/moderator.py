"""The owner's moderation actions at run time, and the block set kept in step.

:class:`Moderator` changes the ``[policy]`` table (block, mute, settings),
saves it to config.toml, and keeps the store's set of blocked authors equal to
the owner's own blocks plus those of the subscribed blocklists
(:class:`~p2psocial.node.moderation.Blocklists`). The mechanisms that enforce
the policy on incoming data are in :mod:`p2psocial.node.moderation`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from typing import Any

import trio

from ..errors import NodeError
from ..protocol.entries import Entry
from ..protocol.errors import LocalUsageError
from ..protocol.identity import identity_to_text
from ..storage import AsyncStore
from .config import NodeConfig
from .moderation import Blocklists
from .publish import Publisher
from .replication import Replicator
from .views import parse_identity

__all__ = ["REFETCH_TIMEOUT", "Moderator"]

log = logging.getLogger("p2psocial.node")

#: Seconds spent asking peers again for an unblocked author's recent entries.
REFETCH_TIMEOUT = 10


class Moderator:
    """Block, mute and policy changes, and the effective block set.

    Args:
        config: the node's configuration; its ``policy`` is changed in place.
        store: the node's store (its block set and interests).
        publisher: publishes the owner's public ``block``/``unblock`` entries;
            its ``names`` resolve the petnames this takes for identities.
    """

    def __init__(self, config: NodeConfig, store: AsyncStore, publisher: Publisher) -> None:
        self._config = config
        self._store = store
        self._publisher = publisher
        self._names = publisher.names
        self._identity = publisher.identity
        self._config_lock = trio.Lock()
        self._blocks_changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        #: Whose blocks apply here, and whose list each came from.
        self.blocklists = Blocklists()
        #: Told about purges and changed interests once replication runs.
        self.replicator: Replicator | None = None

    # -- the owner's actions -------------------------------------------------

    async def block(
        self, identity: str | bytes, public: bool, reason: str | None
    ) -> dict[str, Any]:
        """Block an identity; see :meth:`p2psocial.Node.block`."""
        target = await self._names.resolve(identity)
        if target == self._identity:
            raise LocalUsageError("you cannot block yourself", reason="self")
        await self._list_add("blocked", target)
        await self.apply_blocks()
        result: dict[str, Any] = {"blocked": identity_to_text(target), "public": public}
        if public:
            payload: dict[str, Any] = {"target": target}
            if reason:
                payload["reason"] = reason
            result.update(await self._publisher.publish("block", payload))
        return result

    async def unblock(self, identity: str | bytes) -> dict[str, Any]:
        """Lift a block and publish an ``unblock`` entry."""
        target = await self._names.resolve(identity)
        await self._list_remove("blocked", target)
        await self.apply_blocks()
        result: dict[str, Any] = {"unblocked": identity_to_text(target)}
        result.update(await self._publisher.publish("unblock", {"target": target}))
        return result

    async def mute(self, identity: str | bytes) -> dict[str, Any]:
        """Add an identity to the muted list."""
        target = await self._names.resolve(identity)
        await self._list_add("muted", target)
        return {"muted": identity_to_text(target)}

    async def unmute(self, identity: str | bytes) -> dict[str, Any]:
        """Remove an identity from the muted list."""
        target = await self._names.resolve(identity)
        await self._list_remove("muted", target)
        return {"unmuted": identity_to_text(target)}

    async def set_policy(self, key: str, value: Any) -> dict[str, Any]:
        """Change and save one setting; see :meth:`p2psocial.Node.set_policy`."""
        policy = self._config.policy
        settable = {f.name for f in fields(policy)} - {"blocked", "muted"}
        if key not in settable:
            raise LocalUsageError(
                f"unknown policy setting {key!r}; settable: {', '.join(sorted(settable))} "
                "(use block/mute for the blocked and muted lists)",
                reason="bad_policy",
            )
        current = getattr(policy, key)
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
            value = [identity_to_text(await self._names.resolve(v)) for v in value]
        setattr(policy, key, value)
        await self._save_config()
        if key == "hops" and self.replicator is not None:
            self.replicator.hops = value
        if key == "accept_inbound" and self.replicator is not None:
            self.replicator.accept_inbound = value
        if key == "blocklists":
            await self.apply_blocks()
        if key in ("hops", "blocklists") and self.replicator is not None:
            self.replicator.interest_changed()
        return policy.to_dict()

    # -- the effective block set ---------------------------------------------

    async def apply_blocks(self) -> None:
        """Make the store's block set match own blocks plus subscribed lists.

        Newly blocked authors are purged; authors no longer blocked by anyone
        get their recent payloads fetched again.
        """
        own = {parse_identity(t) for t in self._config.policy.blocked}
        lists = [parse_identity(t) for t in self._config.policy.blocklists]
        interests = await self._store.interests()
        for owner in lists:
            if "blocklist" not in interests.get(owner, set()):
                await self._store.set_interest(owner, "blocklist")
        for author, reasons in interests.items():
            if "blocklist" in reasons and author not in lists:
                await self._store.clear_interest(author, "blocklist")
        effective = await self.blocklists.compute(self._store, own, lists)
        effective.discard(self._identity)
        current = await self._store.blocked()
        for author in effective - current:
            await self._store.block_local(author)
            if self.replicator is not None:
                self.replicator.payloads_purged(author)
        lifted = current - effective
        for author in lifted:
            await self._store.unblock_local(author)
        if effective != current:
            # A purge drops profiles; an unblocked author's comes back later.
            self._names.forget_profiles()
        if self.replicator is not None and (lifted or effective != current):
            self.replicator.interest_changed()
        if lifted and self.replicator is not None and self._nursery is not None:
            for author in lifted:
                self._nursery.start_soon(self._refetch, author)

    def entries_stored(self, entries: list[Entry]) -> None:
        """Entries were just stored: a subscribed list may have changed (never blocks)."""
        subscribed = self._config.policy.blocklists
        if subscribed and any(e.kind in ("block", "unblock") for e in entries):
            lists = {identity_to_text(e.author) for e in entries if e.kind in ("block", "unblock")}
            if lists & set(subscribed):
                self._blocks_changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply the blocks once, then again whenever a subscribed list changes.

        Raises:
            StorageError: the first application failed (later ones are logged).
        """
        await self.apply_blocks()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    await self._blocks_changed.wait()
                    self._blocks_changed = trio.Event()
                    try:
                        await self.apply_blocks()
                    except Exception:  # keep the node up; the next change retries
                        log.exception("applying blocklists failed")
            finally:
                self._nursery = None

    async def _refetch(self, author: bytes) -> None:
        """Ask peers again for an author's recent entries, refilling purged payloads."""
        if self.replicator is None:
            return
        with trio.move_on_after(REFETCH_TIMEOUT):
            await self.replicator.peek(author, limit=500)

    # -- config.toml -----------------------------------------------------------

    async def _list_add(self, name: str, key: bytes) -> None:
        values: list[str] = getattr(self._config.policy, name)
        text = identity_to_text(key)
        if text not in values:
            values.append(text)
            await self._save_config()

    async def _list_remove(self, name: str, key: bytes) -> None:
        values: list[str] = getattr(self._config.policy, name)
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
            saved = NodeConfig.load(self._config.data_dir)
        except NodeError as exc:
            log.warning("not saving the policy: %s", exc.message)
            return
        saved.policy = self._config.policy
        try:
            saved.save()
        except OSError as exc:  # the change holds for this run; say why it won't persist
            log.warning("could not save %s: %s", self._config.config_path, exc)
