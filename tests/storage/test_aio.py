"""The trio façade runs the store on a worker thread behind one limiter."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import trio
import trio.testing

from p2psocial.errors import StorageError
from p2psocial.storage import open_async_store, open_store

from .helpers import NOW, FeedBuilder, key


async def test_facade_under_trio(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            k = key(1)
            feeds = [FeedBuilder(key(10 + i)) for i in range(8)]
            for f in feeds:
                for i in range(5):
                    f.post(f"hello {i}")

            async def ingest(f: FeedBuilder) -> None:
                out = await store.ingest(f.items(), now_ms=NOW)
                assert {o.status for o in out} == {"stored"}

            async def follow(f: FeedBuilder) -> None:
                await store.append_local(k, "follow", {"target": f.author}, now_ms=NOW)

            async with trio.open_nursery() as nursery:
                for f in feeds:
                    nursery.start_soon(ingest, f)
                    nursery.start_soon(follow, f)
            assert await store.heads() == {**{f.author: 5 for f in feeds}, k.public_key: 8}
            page = await store.timeline(k.public_key, limit=10)
            assert len(page.items) == 10 and page.next_cursor is not None
            assert len((await store.search("hello")).items) == 40
            assert (await store.statistics())["entries"] == 48
            assert store.limiter.total_tokens == 1


async def test_open_store_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 4096)
    with pytest.raises(StorageError):
        await open_store(bad)
    store = await open_store(tmp_path / "ok.db")
    await store.aclose()


async def test_reader_timeline_sees_a_follow_made_after_its_first_query(tmp_path: Path) -> None:
    """Page queries run on a second, read-only connection. Its cache of who is
    in a timeline was never told about writes on the main connection, so a
    newly followed author's posts never showed (found by tests/e2e/test_defaults.py)."""
    me, author = FeedBuilder(key(1)), FeedBuilder(key(2))
    author.post("before the follow")
    async with open_async_store(tmp_path / "n.db") as store:
        assert store.reader is not None
        await store.ingest(author.items(), now_ms=NOW)
        assert (await store.timeline(me.author)).items == []  # caches the audience
        me.add("follow", {"target": author.author})
        await store.ingest(me.items(), now_ms=NOW)
        page = await store.timeline(me.author)
        assert [v.author for v in page.items] == [author.author]


async def test_blocks_and_posts_share_a_group_commit(tmp_path: Path) -> None:
    """A local block is an own act too: it rides in the same FULL commit."""
    other = FeedBuilder(key(2))
    other.post("to be purged")
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            await store.ingest(other.items(), now_ms=NOW)
            k = key(1)
            await store.limiter.acquire()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.block_local, other.author)
                for i in range(3):
                    nursery.start_soon(
                        functools.partial(
                            store.append_local, k, "post", {"text": f"{i}"}, now_ms=NOW
                        )
                    )
                await trio.testing.wait_all_tasks_blocked()
                store.limiter.release()
            stats = await store.statistics()
            assert (stats["local_acts"], stats["local_commits"]) == (4, 1)
            assert await store.blocked() == {other.author}
            assert (await store.get_raw(other.id(1))) == (other.item(1)[0], None)
            assert await store.heads([k.public_key]) == {k.public_key: 3}


async def test_reader_counts_its_page_queries_and_their_cpu(tmp_path: Path) -> None:
    """Each page query on the reader is counted with its thread's CPU time
    (bench/api.py splits a page's cost in the daemon with these)."""
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            f = FeedBuilder(key(1))
            for i in range(200):
                f.post(f"hello {i}")
            await store.ingest(f.items(), now_ms=NOW)
            before = await store.statistics()
            for _ in range(5):
                page = await store.feed(f.author, limit=50)
                assert len(page.items) == 50
            assert len((await store.search("hello", limit=50)).items) == 50
            after = await store.statistics()
            assert after["read_queries"] - before["read_queries"] == 6
            spent = after["read_query_cpu_s"] - before["read_query_cpu_s"]
            # Six pages of 50 decoded entries cost some CPU, and not seconds.
            assert 0 < spent < 5


async def test_small_pages_are_read_on_the_trio_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of at most INLINE_PAGE_MAX entries needs no thread hop; a larger
    one and other queries still go to the reader's worker thread."""
    from p2psocial.storage import aio

    hops: list[object] = []
    real = trio.to_thread.run_sync

    async def counting(fn: object, *args: object, **kwargs: object) -> object:
        hops.append(fn)
        return await real(fn, *args, **kwargs)  # type: ignore[arg-type]

    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            f = FeedBuilder(key(1))
            for i in range(120):
                f.post(f"hello {i}", tags=["t"])
            await store.ingest(f.items(), now_ms=NOW)
            monkeypatch.setattr(aio.trio.to_thread, "run_sync", counting)
            small = await store.feed(f.author, limit=aio.INLINE_PAGE_MAX)
            assert (await store.tagged("t", limit=10)).items
            assert hops == []
            big = await store.feed(f.author, limit=aio.INLINE_PAGE_MAX + 1)
            assert len(hops) == 1
            assert big.items[: aio.INLINE_PAGE_MAX] == small.items
            assert len(big.items) == aio.INLINE_PAGE_MAX + 1


async def test_a_small_page_waits_for_the_reader_in_use(tmp_path: Path) -> None:
    """Read on the trio thread or not, a page never uses the reader connection
    while another query holds it."""
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            f = FeedBuilder(key(1))
            f.post("one")
            await store.ingest(f.items(), now_ms=NOW)
            pages: list[object] = []

            async def read() -> None:
                pages.append(await store.feed(f.author, limit=10))

            limiter = store._read_limiter
            await limiter.acquire()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()
                assert pages == [] and limiter.statistics().tasks_waiting == 1
                limiter.release()
            assert len(pages) == 1
