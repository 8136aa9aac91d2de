"""WorkQueue: a bounded queue whose workers start when work arrives."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2psocial.node.dht.workqueue import WorkQueue


async def test_capacity_is_workers_plus_queue_and_order_is_fifo() -> None:
    taken: list[int] = []
    gate = trio.Event()

    async def work(item: int) -> None:
        taken.append(item)
        await gate.wait()

    q = WorkQueue(work, workers=2, queue=3)
    async with trio.open_nursery() as nursery:
        q.start(nursery)
        for i in range(5):  # two in hand, three waiting
            q.put_nowait(i)
        with pytest.raises(trio.WouldBlock):
            q.put_nowait(5)
        assert len(q) == 3
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(taken) == [0, 1]
        gate.set()
    assert taken[2:] == [2, 3, 4]  # taken first in, first out
    assert len(q) == 0


async def test_no_task_while_idle_and_items_wait_until_start() -> None:
    done: list[str] = []

    async def work(item: str) -> None:
        done.append(item)

    q = WorkQueue(work, workers=1, queue=2)
    q.put_nowait("a")  # not running yet: it waits
    q.put_nowait("b")
    with pytest.raises(trio.WouldBlock):
        q.put_nowait("c")
    async with trio.open_nursery() as nursery:
        q.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert done == ["a", "b"]
        assert not nursery.child_tasks  # the worker ended with the queue empty
        q.put_nowait("c")
        await trio.testing.wait_all_tasks_blocked()
        q.stop()
        q.put_nowait("d")  # stopped: it waits again
    assert done == ["a", "b", "c"] and len(q) == 1


async def test_an_error_in_work_crashes_the_nursery() -> None:
    async def work(item: int) -> None:
        raise ValueError(item)

    q = WorkQueue(work, workers=1, queue=1)
    with pytest.RaisesGroup(ValueError):
        async with trio.open_nursery() as nursery:
            q.start(nursery)
            q.put_nowait(1)
