"""The trio façade of the store: the sync core on a trio-managed worker thread.

Why not aiosqlite: it bridges sqlite3 to *asyncio* futures, and ``trio.run``
rejects asyncio futures, so it cannot run under trio. This module is the same
bridge done the trio way: every call runs the synchronous :class:`Store`
method via ``trio.to_thread.run_sync`` behind one ``CapacityLimiter(1)``, so
the single sqlite3 connection is used by one worker thread at a time, and the
trio loop never blocks on disk.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from ..protocol.entries import Entry
from ..protocol.identity import SigningKey
from . import feeds, local, names, people
from . import notifications as notes
from .model import EntryView, MapPage, Outcome, Page
from .store import Store

__all__ = ["INLINE_PAGE_MAX", "AsyncStore", "open_async_store", "open_store"]

T = TypeVar("T")
P = TypeVar("P", Page, MapPage)

#: The largest page of an index-walk query (timeline, feed, mentions, tag)
#: read on the trio thread itself rather than on the reader's worker thread.
#: Such a page is one range walk of at most this many rows, about 1 ms at
#: 50; the thread hop around it costs the loop about as much CPU again
#: (wake-up socket, result delivery, scheduling), and the reader thread holds
#: the GIL for most of the call anyway (README, Performance).
INLINE_PAGE_MAX = 50


def _on_conn(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn(conn, ...)`` as a query method of a :class:`Store` (for :meth:`AsyncStore._query`)."""
    return lambda store, *args, **kwargs: fn(store.connection, *args, **kwargs)


class AsyncStore:
    """Async wrapper of a :class:`Store`; method names and arguments are the same.

    Calls are serialised by one ``trio.CapacityLimiter(1)``. A cancelled call
    is abandoned by trio only after its thread finishes (``abandon_on_cancel``
    is off), so a write transaction is never left half-done.
    """

    def __init__(self, store: Store, reader: Store | None = None) -> None:
        self.store = store
        self._limiter = trio.CapacityLimiter(1)
        # Own acts (appends, blocks) share FULL commits when they overlap.
        self._acts = local.LocalActs(store, self._limiter)
        # Page queries (timeline, feed, thread, mentions, tags, search) run on
        # a second, read-only connection with a limiter of its own: in WAL
        # mode they read the last committed state without waiting for a
        # write, so a peer's flood of entries does not make the owner's
        # reads wait behind each ingest transaction (bench/flood.py).
        self.reader = reader
        self._read_limiter = trio.CapacityLimiter(1)
        # Page queries run on the reader, and the CPU their thread spent in
        # them (thread time: waiting for a core or the GIL does not count),
        # so that a bench can split a page's cost in the daemon into the
        # store call and everything around it (bench/api.py).
        self._reads = 0
        self._read_cpu = 0.0
        # Per feed, one event per ingest call in flight, in call order (see
        # ingest: calls for one feed write in call order).
        self._ingest_calls: dict[bytes, list[trio.Event]] = {}

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self._limiter
        )

    async def _query(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an unbound :class:`Store` query method on the reader (or, for
        a store without one, on the main connection)."""
        if self.reader is None:
            return await self._run(method, self.store, *args, **kwargs)
        return await trio.to_thread.run_sync(
            functools.partial(self._timed_read, method, self.reader, *args, **kwargs),
            limiter=self._read_limiter,
        )

    async def _page_query(
        self, method: Callable[..., P], *args: Any, limit: int, **kwargs: Any
    ) -> P:
        """A page query: inline on the trio thread when small (see
        ``INLINE_PAGE_MAX``), else as :meth:`_query` does."""
        if self.reader is None or limit > INLINE_PAGE_MAX:
            return await self._query(method, *args, limit=limit, **kwargs)
        # The read limiter still guards the reader connection: a larger page
        # or another query may be running on it in a worker thread.
        async with self._read_limiter:
            return self._timed_read(method, self.reader, *args, limit=limit, **kwargs)

    def _timed_read(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``method(*args, **kwargs)`` on the reader, its thread CPU counted."""
        t0 = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            # One reader thread at a time (its limiter), so no lost update.
            self._read_cpu += time.thread_time() - t0
            self._reads += 1

    @property
    def path(self) -> str:
        """The database file."""
        return self.store.path

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The limiter guarding the connection (for statistics)."""
        return self._limiter

    async def aclose(self) -> None:
        """Close the underlying store."""
        await self._run(self.store.close)
        if self.reader is not None:
            await trio.to_thread.run_sync(self.reader.close, limiter=self._read_limiter)

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Writes -------------------------------------------------------------------
    async def ingest(
        self,
        items: Sequence[tuple[bytes, bytes | None]],
        *,
        now_ms: int,
        author: bytes | None = None,
    ) -> list[Outcome]:
        """See :meth:`Store.ingest`.

        Decoding and signature checks run outside the database limiter, so
        while one batch is being written the next ones are being verified.
        Calls that name the same ``author`` write in the order they were
        made, so a caller may start a feed's next batch before the last one
        returns (bench/sync.py keeps two in flight) and the batches still
        extend the feed in order.
        """
        # Every earlier call, not only the last: a cancelled call ends early,
        # and the one after it must still wait for those before it.
        done = trio.Event()
        calls = self._ingest_calls.setdefault(author, []) if author is not None else []
        earlier = list(calls)
        calls.append(done)
        try:
            batch = await trio.to_thread.run_sync(
                functools.partial(
                    self.store.prepare_ingest, list(items), now_ms=now_ms, author=author
                )
            )
            # Waiting here, not under the limiter, keeps the database free for
            # other calls while the pool verifies.
            try:
                await trio.to_thread.run_sync(batch.wait_verified)
                for call in earlier:
                    await call.wait()
                return await self._run(self.store.ingest_prepared, batch)
            except BaseException:
                # Cancelled (or failed): drop the checks still queued for nothing.
                if batch.pre is not None:
                    batch.pre.cancel()
                raise
        finally:
            done.set()
            calls.remove(done)
            if author is not None and not calls:
                del self._ingest_calls[author]

    async def append_local(
        self, key: SigningKey, kind: str, payload: dict[str, Any], *, now_ms: int
    ) -> Entry:
        """See :meth:`Store.append_local`; concurrent calls share one commit.

        Answered once the commit that holds the entry is done (group commit:
        :class:`~.local.LocalActs`).
        """
        act = functools.partial(
            local.append_own, key=key, kind=kind, payload=payload, now_ms=now_ms
        )
        entry: Entry = await self._acts.run(act)
        return entry

    async def append_local_raw(
        self, key: SigningKey, kind: str, payload: dict[str, Any], *, now_ms: int
    ) -> tuple[Entry, bytes]:
        """:meth:`append_local`, returning the entry and its payload bytes as stored."""
        act = functools.partial(
            local.append_own_raw, key=key, kind=kind, payload=payload, now_ms=now_ms
        )
        result: tuple[Entry, bytes] = await self._acts.run(act)
        return result

    async def block_local(self, author: bytes) -> None:
        """See :meth:`Store.block_local` (grouped like :meth:`append_local`)."""
        await self._acts.run(functools.partial(local.block_feed, author=author))

    async def unblock_local(self, author: bytes) -> None:
        """See :meth:`Store.unblock_local` (grouped like :meth:`append_local`)."""
        await self._acts.run(functools.partial(local.unblock_feed, author=author))

    async def blocked(self) -> set[bytes]:
        """See :meth:`Store.blocked`."""
        return await self._run(self.store.blocked)

    async def drop_payload(self, id_: bytes) -> bool:
        """See :meth:`Store.drop_payload`."""
        return await self._run(self.store.drop_payload, id_)

    async def forget_feed(self, author: bytes) -> int:
        """See :meth:`Store.forget_feed`."""
        return await self._run(self.store.forget_feed, author)

    async def set_interest(self, author: bytes, reason: str) -> None:
        """See :meth:`Store.set_interest`."""
        await self._run(self.store.set_interest, author, reason)

    async def clear_interest(self, author: bytes, reason: str) -> None:
        """See :meth:`Store.clear_interest`."""
        await self._run(self.store.clear_interest, author, reason)

    async def save_dht_contacts(self, contacts: Iterable[tuple[bytes, str, int]]) -> None:
        """See :meth:`Store.save_dht_contacts`."""
        await self._run(self.store.save_dht_contacts, list(contacts))

    async def set_setting(self, key: str, value: Any) -> None:
        """See :meth:`Store.set_setting`."""
        await self._run(self.store.set_setting, key, value)

    # Reads --------------------------------------------------------------------
    async def head(self, author: bytes) -> tuple[int, bytes] | None:
        """See :meth:`Store.head`."""
        return await self._run(self.store.head, author)

    async def heads(self, authors: Iterable[bytes] | None = None) -> dict[bytes, int]:
        """See :meth:`Store.heads`."""
        return await self._run(self.store.heads, None if authors is None else list(authors))

    async def entries_after(
        self, author: bytes, seq: int, limit: int
    ) -> list[tuple[bytes, bytes | None]]:
        """See :meth:`Store.entries_after`."""
        return await self._run(self.store.entries_after, author, seq, limit)

    async def sync_progress(
        self, tops: dict[bytes, int], recent: int
    ) -> dict[bytes, tuple[int, int, int, int]]:
        """See :func:`.feeds.sync_progress` (how far each feed has caught up)."""
        return await self._query(_on_conn(feeds.sync_progress), dict(tops), recent)

    async def get_entry(self, id_: bytes) -> EntryView | None:
        """See :meth:`Store.get_entry`."""
        return await self._run(self.store.get_entry, id_)

    async def ids_with_prefix(self, prefix: str, *, limit: int) -> list[bytes]:
        """See :meth:`Store.ids_with_prefix`."""
        return await self._query(Store.ids_with_prefix, prefix, limit=limit)

    async def get_raw(self, id_: bytes) -> tuple[bytes, bytes | None] | None:
        """See :meth:`Store.get_raw`."""
        return await self._run(self.store.get_raw, id_)

    async def interests(self) -> dict[bytes, set[str]]:
        """See :meth:`Store.interests`."""
        return await self._run(self.store.interests)

    async def feed_status(self, author: bytes) -> str:
        """See :meth:`Store.feed_status`."""
        return await self._run(self.store.feed_status, author)

    async def fork_proofs(self, author: bytes) -> list[bytes]:
        """See :meth:`Store.fork_proofs`."""
        return await self._run(self.store.fork_proofs, author)

    async def forked_feeds(self, authors: Iterable[bytes] | None = None) -> dict[bytes, int]:
        """See :meth:`Store.forked_feeds`."""
        return await self._query(Store.forked_feeds, None if authors is None else list(authors))

    async def payloads_held(self, ids: Iterable[bytes]) -> set[bytes]:
        """See :meth:`Store.payloads_held`."""
        return await self._run(self.store.payloads_held, list(ids))

    async def following(self, author: bytes) -> list[bytes]:
        """See :meth:`Store.following`."""
        return await self._query(Store.following, author)

    async def followers(self, author: bytes) -> list[bytes]:
        """See :meth:`Store.followers`."""
        return await self._query(Store.followers, author)

    async def blocks_of(self, author: bytes) -> list[bytes]:
        """See :meth:`Store.blocks_of`."""
        return await self._query(Store.blocks_of, author)

    async def blocked_by(self, author: bytes) -> list[bytes]:
        """See :meth:`Store.blocked_by`."""
        return await self._query(Store.blocked_by, author)

    async def profile(self, author: bytes) -> dict[str, Any] | None:
        """See :meth:`Store.profile`."""
        return await self._query(Store.profile, author)

    async def reaction_counts(self, id_: bytes) -> dict[str, int]:
        """See :meth:`Store.reaction_counts`."""
        return await self._query(Store.reaction_counts, id_)

    async def timeline(self, me: bytes, *, limit: int = 50, before: str | None = None) -> Page:
        """See :meth:`Store.timeline`."""
        return await self._page_query(Store.timeline, me, limit=limit, before=before)

    async def timeline_maps(
        self, me: bytes, *, limit: int = 50, before: str | None = None
    ) -> MapPage:
        """See :meth:`Store.timeline_maps`."""
        return await self._page_query(Store.timeline_maps, me, limit=limit, before=before)

    async def feed(
        self,
        author: bytes,
        *,
        limit: int = 50,
        before: str | None = None,
        kinds: Iterable[str] | None = ("post", "repost"),
    ) -> Page:
        """See :meth:`Store.feed`."""
        return await self._page_query(
            Store.feed,
            author,
            limit=limit,
            before=before,
            kinds=None if kinds is None else list(kinds),
        )

    async def thread(self, id_: bytes) -> list[EntryView]:
        """See :meth:`Store.thread`."""
        return await self._query(Store.thread, id_)

    async def mentions(self, me: bytes, *, limit: int = 50, before: str | None = None) -> Page:
        """See :meth:`Store.mentions`."""
        return await self._page_query(Store.mentions, me, limit=limit, before=before)

    async def tagged(self, tag: str, *, limit: int = 50, before: str | None = None) -> Page:
        """See :meth:`Store.tagged`."""
        return await self._page_query(Store.tagged, tag, limit=limit, before=before)

    async def search(
        self, query: str, *, author: bytes | None = None, limit: int = 50, before: str | None = None
    ) -> Page:
        """See :meth:`Store.search`."""
        return await self._query(Store.search, query, author=author, limit=limit, before=before)

    # Notifications and people (storage/notifications.py, storage/people.py) --
    async def notifications(
        self,
        me: bytes,
        *,
        limit: int = 50,
        before: str | None = None,
        after_mark: int | None = None,
    ) -> notes.NotificationPage:
        """See :func:`.notifications.notifications`."""
        return await self._query(
            _on_conn(notes.notifications), me, limit=limit, before=before, after_mark=after_mark
        )

    async def unread_notifications(
        self, me: bytes, mark: int, excluded: Iterable[bytes] = ()
    ) -> int:
        """See :func:`.notifications.unread_count`."""
        return await self._query(_on_conn(notes.unread_count), me, mark, list(excluded))

    async def newest_notification_mark(self, me: bytes) -> int:
        """See :func:`.notifications.newest_mark`."""
        return await self._query(_on_conn(notes.newest_mark), me)

    async def notification_kind(self, me: bytes, id_: bytes) -> str | None:
        """See :func:`.notifications.notification_kind`."""
        return await self._query(_on_conn(notes.notification_kind), me, id_)

    async def suggest(
        self, me: bytes, *, exclude: Iterable[bytes] = (), limit: int = 20
    ) -> list[people.Person]:
        """See :func:`.people.suggest`."""
        return await self._query(_on_conn(people.suggest), me, exclude=list(exclude), limit=limit)

    async def search_people(
        self, query: str, *, limit: int = 20, before: str | None = None
    ) -> people.PeoplePage:
        """See :func:`.people.search_people`."""
        return await self._query(_on_conn(people.search_people), query, limit=limit, before=before)

    async def profile_names(
        self, authors: Iterable[bytes]
    ) -> dict[bytes, tuple[str | None, str | None]]:
        """See :func:`.people.profile_names`."""
        return await self._query(_on_conn(people.profile_names), list(authors))

    # Petnames (storage/names.py) ------------------------------------------------
    async def set_petname(self, name: str, identity: bytes) -> str | None:
        """See :func:`.names.set_petname`."""
        return await self._run(names.set_petname, self.store.connection, name, identity)

    async def remove_petname(self, name: str) -> bytes | None:
        """See :func:`.names.remove_petname`."""
        return await self._run(names.remove_petname, self.store.connection, name)

    async def load_petnames(self) -> list[tuple[str, bytes]]:
        """See :func:`.names.load_petnames`."""
        return await self._run(names.load_petnames, self.store.connection)

    async def load_dht_contacts(self) -> list[tuple[bytes, str, int]]:
        """See :meth:`Store.load_dht_contacts`."""
        return await self._run(self.store.load_dht_contacts)

    async def get_setting(self, key: str, default: Any = None) -> Any:
        """See :meth:`Store.get_setting`."""
        return await self._run(self.store.get_setting, key, default)

    async def statistics(self) -> dict[str, Any]:
        """See :meth:`Store.statistics`."""
        stats = await self._run(self.store.statistics)
        stats["limiter_waiting"] = self._limiter.statistics().tasks_waiting
        stats["local_waiting"] = self._acts.waiting
        stats["local_refused"] = self._acts.refused
        stats["read_queries"] = self._reads
        stats["read_query_cpu_s"] = round(self._read_cpu, 6)
        return stats


async def open_store(path: str | os.PathLike[str], **kwargs: Any) -> AsyncStore:
    """Open a store on a worker thread; the caller must ``await aclose()`` it.

    Raises:
        StorageError: see :meth:`Store.open`.
    """
    store = await trio.to_thread.run_sync(functools.partial(Store.open, path, **kwargs))
    reader = None
    if os.fspath(path) != ":memory:":
        try:
            reader = await trio.to_thread.run_sync(Store.open_reader, path, store)
        except BaseException:
            await trio.to_thread.run_sync(store.close)
            raise
    return AsyncStore(store, reader)


@asynccontextmanager
async def open_async_store(
    path: str | os.PathLike[str], **kwargs: Any
) -> AsyncIterator[AsyncStore]:
    """``async with open_async_store(path) as store:`` opens, then closes on exit."""
    astore = await open_store(path, **kwargs)
    try:
        yield astore
    finally:
        with trio.CancelScope(shield=True):
            await astore.aclose()
