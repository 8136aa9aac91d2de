"""Work for peers steps aside for the owner's API requests (node/foreground.py).

The unit tests run on trio's mock clock, so the waits and windows are exact.
The last test runs two real nodes: while the owner keeps the API busy, a
3,000-entry feed still arrives whole, stored in chunks that each waited.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from p2psocial.node.foreground import Foreground
from p2psocial.node.replication.ingest import INGEST_CHUNK

from .test_replication_helpers import load_feed, make_feed, open_testnet


async def test_yield_is_a_checkpoint_when_idle() -> None:
    fg = Foreground()
    assert not fg.busy and not fg.recently_busy()
    with trio.testing.assert_checkpoints():
        await fg.yield_to_requests()
    assert fg.yields == 0


async def test_background_work_waits_for_the_request_to_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fg = Foreground(max_wait=10.0)
    resumed: list[float] = []

    async def background() -> None:
        await fg.yield_to_requests()
        resumed.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        with fg.request():
            start = trio.current_time()
            nursery.start_soon(background)
            await trio.sleep(0.3)
            assert resumed == []  # still in the request: nothing resumed
        # The request ended at start + 0.3; the waiter resumes then.
    assert resumed == [start + 0.3]
    assert fg.yields == 1 and abs(fg.yield_seconds - 0.3) < 1e-9


async def test_a_busy_api_only_slows_background_work(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fg = Foreground(max_wait=0.05)
    with fg.request():
        start = trio.current_time()
        await fg.yield_to_requests()
        assert trio.current_time() - start == 0.05  # the cap, not forever
        with fg.request():  # nested requests count
            assert fg.busy
        assert fg.busy
    assert not fg.busy


async def test_recently_busy_lasts_the_window(autojump_clock: trio.testing.MockClock) -> None:
    fg = Foreground(recent=1.0)
    with fg.request():
        assert fg.recently_busy()
    await trio.sleep(0.9)
    assert fg.recently_busy()
    await trio.sleep(0.2)
    assert not fg.recently_busy()


async def test_a_catch_up_completes_while_the_owner_keeps_the_api_busy(
    tmp_path: Path,
) -> None:
    n = 3_000
    with trio.fail_after(90):
        async with open_testnet(tmp_path, 2) as net:
            a, b = net.nodes
            await load_feed(a.store, make_feed(a.key, n))
            await a.rep.refresh()
            fg = b.rep.foreground
            sizes: list[tuple[bool, int]] = []
            inner = b.rep.ingest.store.ingest

            async def ingest(items, **kwargs):  # type: ignore[no-untyped-def]
                sizes.append((fg.busy, len(items)))
                return await inner(items, **kwargs)

            b.rep.ingest.store.ingest = ingest  # type: ignore[method-assign]

            async def owner() -> None:
                # An owner who never stops: a request of 5 ms, then 1 ms idle.
                while True:
                    with fg.request():
                        await trio.sleep(0.005)
                    await trio.sleep(0.001)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(owner)
                await b.follow(a)
                await b.connect(a)
                await net.wait_for(lambda: _holds(b, a, n))
                nursery.cancel_scope.cancel()
            assert await b.store.head(a.identity) == await a.store.head(a.identity)
            assert fg.yields > 0
            # Every batch of the feed was stored in chunks while the owner was active.
            assert sizes and max(size for _, size in sizes) <= INGEST_CHUNK


async def _holds(node, author, n: int) -> bool:  # type: ignore[no-untyped-def]
    return bool(await node.seq_of(author) == n)
