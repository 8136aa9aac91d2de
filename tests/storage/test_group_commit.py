"""Group commit: concurrent own acts share one FULL commit, and fail alone."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2psocial.errors import LocalUsageError, StorageError
from p2psocial.protocol.entries import Entry, create_entry, decode_entry_untrusted
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage import AsyncStore, Store, local, open_async_store
from p2psocial.storage.ingest import IngestTxn
from p2psocial.storage.local import LocalActs

from .helpers import NOW, FeedBuilder, key


def _check_chain(store: Store, k: SigningKey, n: int) -> None:
    """``k``'s feed is exactly seq 1..n, each entry linked to the one before."""
    rows = store.entries_after(k.public_key, 0, n + 10)
    entries = [decode_entry_untrusted(raw) for raw, _ in rows]
    assert [e.seq for e in entries] == list(range(1, n + 1))
    for before, after in itertools.pairwise(entries):
        assert after.prev == before.id
    assert store.head(k.public_key) == ((n, entries[-1].id) if n else None)


def _forked(store: Store, k: SigningKey) -> None:
    """Give ``k``'s feed a proven fork at seq 2."""
    f = FeedBuilder(k)
    f.post("one")
    f.post("two")
    store.ingest(f.items(), now_ms=NOW)
    alt, alt_pl = create_entry(
        k, seq=2, prev=f.id(1), timestamp=NOW, kind="post", payload={"text": "other"}
    )
    store.ingest([(alt.to_bytes(), alt_pl)], now_ms=NOW)
    assert store.feed_status(k.public_key) == "forked"


async def _post_all(store: AsyncStore, acts: list[tuple[SigningKey, dict[str, Any]]]) -> list[Any]:
    """Post every act concurrently while the database is busy, then let it go.

    Returns per act the Entry, or the exception it raised.
    """
    results: list[Any] = [None] * len(acts)

    async def one(i: int, k: SigningKey, payload: dict[str, Any]) -> None:
        try:
            results[i] = await store.append_local(k, "post", payload, now_ms=NOW + i)
        except LocalUsageError as exc:
            results[i] = exc

    await store.limiter.acquire()  # the database is busy (an ingest, say)
    async with trio.open_nursery() as nursery:
        for i, (k, payload) in enumerate(acts):
            nursery.start_soon(one, i, k, payload)
        await trio.testing.wait_all_tasks_blocked()
        store.limiter.release()
    return results


@pytest.mark.parametrize(("group", "commits"), [(64, 1), (8, 3), (1, 20)])
async def test_waiting_acts_form_groups(tmp_path: Path, group: int, commits: int) -> None:
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db", local_group=group) as store:
            a, b = key(1), key(2)
            acts = [(a if i % 2 else b, {"text": f"post {i}"}) for i in range(20)]
            results = await _post_all(store, acts)
            assert all(isinstance(r, Entry) for r in results)
            stats = await store.statistics()
            assert (stats["local_acts"], stats["local_commits"]) == (20, commits)
            assert stats["local_failed"] == 0 and stats["local_waiting"] == 0
            _check_chain(store.store, a, 10)
            _check_chain(store.store, b, 10)


async def test_unforced_concurrency_shares_commits(tmp_path: Path) -> None:
    """No held limiter: posts started together still share commits."""
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            k = key(1)
            seqs: list[int] = []

            async def post(i: int) -> None:
                entry = await store.append_local(k, "post", {"text": f"p{i}"}, now_ms=NOW)
                seqs.append(entry.seq)

            async with trio.open_nursery() as nursery:
                for i in range(32):
                    nursery.start_soon(post, i)
            stats = await store.statistics()
            assert stats["local_acts"] == 32
            assert stats["local_commits"] <= 16, stats
            assert sorted(seqs) == list(range(1, 33))
            _check_chain(store.store, k, 32)


async def test_sequential_acts_commit_one_by_one(tmp_path: Path) -> None:
    """Uncontended, an act commits at once, alone: no waiting for company."""
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            k = key(1)
            for i in range(5):
                entry = await store.append_local(k, "post", {"text": f"p{i}"}, now_ms=NOW)
                assert entry.seq == i + 1
                stats = await store.statistics()
                assert (stats["local_acts"], stats["local_commits"]) == (i + 1, i + 1)


async def test_a_bad_act_fails_alone(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            good, forked = key(1), key(2)
            _forked(store.store, forked)
            acts = [
                (good, {"text": "a"}),
                (good, {"text": 5}),  # breaks the post schema
                (good, {"text": "b"}),
                (forked, {"text": "c"}),  # the feed is frozen
                (good, {"text": "d", "tags": ["x" * 10_000]}),  # over a limit
                (good, {"text": "e"}),
            ]
            results = await _post_all(store, acts)
            errors = {i: r.reason for i, r in enumerate(results) if isinstance(r, LocalUsageError)}
            assert set(errors) == {1, 3, 4}
            assert errors[3] == "forked"
            entries = [r for r in results if isinstance(r, Entry)]
            assert len(entries) == 3
            stats = await store.statistics()
            assert (stats["local_acts"], stats["local_failed"], stats["local_commits"]) == (3, 3, 1)
            # The failed acts left no row and no gap in the seq.
            _check_chain(store.store, good, 3)
            texts = [v.text for v in (await store.feed(good.public_key)).items]
            assert sorted(texts) == ["a", "b", "e"]
            assert store.store.heads([forked.public_key]) == {forked.public_key: 2}


async def test_cancelled_waiters_lose_nothing_of_the_others(tmp_path: Path) -> None:
    """Cancel the leader (waiting for the database) and some queued acts:
    the cancelled ones never run, every other one commits exactly once."""
    with trio.fail_after(20):
        async with open_async_store(tmp_path / "n.db") as store:
            k = key(1)
            scopes = [trio.CancelScope() for _ in range(10)]
            done: dict[int, Entry] = {}
            cancelled: set[int] = set()

            async def post(i: int) -> None:
                with scopes[i]:
                    done[i] = await store.append_local(k, "post", {"text": f"p{i}"}, now_ms=NOW)
                if scopes[i].cancelled_caught:
                    cancelled.add(i)

            await store.limiter.acquire()
            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(post, i)
                    await trio.testing.wait_all_tasks_blocked()  # start in order: 0 leads
                assert (await _waiting(store)) == 10
                for i in (0, 4, 9):
                    scopes[i].cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert (await _waiting(store)) == 7
                store.limiter.release()
            assert cancelled == {0, 4, 9}
            assert set(done) == set(range(10)) - cancelled
            assert sorted(e.seq for e in done.values()) == list(range(1, 8))
            texts = sorted(v.text for v in (await store.feed(k.public_key, limit=20)).items)
            assert texts == sorted(f"p{i}" for i in done)
            _check_chain(store.store, k, 7)


async def _waiting(store: AsyncStore) -> int:
    # statistics() needs the limiter, which the test holds: read the queue.
    return store._acts.waiting


async def test_a_taken_act_commits_even_if_its_caller_is_cancelled(tmp_path: Path) -> None:
    """Once a group is taken, cancelling one caller neither stops the group
    nor loses or repeats another caller's act."""
    with trio.fail_after(20), Store.open(tmp_path / "n.db") as store:
        limiter = trio.CapacityLimiter(1)
        acts = LocalActs(store, limiter)
        gate = threading.Event()

        def slow(txn: IngestTxn) -> str:
            gate.wait(10)
            txn.conn.execute("INSERT INTO settings(key, value) VALUES ('slow', '1')")
            return "slow"

        def setting(name: str) -> Any:
            def act(txn: IngestTxn) -> str:
                txn.conn.execute("INSERT INTO settings(key, value) VALUES (?, '1')", (name,))
                return name

            return act

        got: dict[str, str] = {}
        scope = trio.CancelScope()

        async def run(name: str, act: Any, cancel: trio.CancelScope | None = None) -> None:
            with cancel or trio.CancelScope():
                got[name] = await acts.run(act)

        async with trio.open_nursery() as nursery:
            await limiter.acquire()
            nursery.start_soon(run, "slow", slow)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(run, "x", setting("x"), scope)
            nursery.start_soon(run, "y", setting("y"))
            await trio.testing.wait_all_tasks_blocked()
            limiter.release()  # the leader takes slow, x, y as one group
            await trio.testing.wait_all_tasks_blocked()
            assert acts.waiting == 0
            scope.cancel()  # x is in the group being committed
            await trio.testing.wait_all_tasks_blocked()
            # A later act queues behind the group in flight.
            nursery.start_soon(run, "z", setting("z"))
            await trio.testing.wait_all_tasks_blocked()
            assert acts.waiting == 1
            gate.set()
        assert got == {"slow": "slow", "y": "y", "z": "z"}
        rows = store.connection.execute("SELECT key FROM settings ORDER BY key").fetchall()
        assert {"slow", "x", "y", "z"} <= {r[0] for r in rows}
        stats = store.statistics()
        assert (stats["local_acts"], stats["local_commits"]) == (4, 2)


async def test_the_waiting_queue_is_bounded(tmp_path: Path) -> None:
    with trio.fail_after(20), Store.open(tmp_path / "n.db") as store:
        limiter = trio.CapacityLimiter(1)
        acts = LocalActs(store, limiter, max_waiting=3)

        def act(txn: IngestTxn) -> int:
            return 1

        async with trio.open_nursery() as nursery:
            await limiter.acquire()
            for _ in range(3):
                nursery.start_soon(acts.run, act)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(StorageError) as info:
                await acts.run(act)
            assert info.value.reason == "busy" and acts.refused == 1
            limiter.release()
        assert store.statistics()["local_acts"] == 3


def test_a_database_failure_fails_the_whole_group(store: Store) -> None:
    k = key(1)

    def post(txn: IngestTxn) -> Entry:
        from p2psocial.storage.local import append_own

        return append_own(txn, k, "post", {"text": "lost with the group"}, NOW)

    def broken(txn: IngestTxn) -> None:
        txn.conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(StorageError) as info:
        store.commit_local([post, broken, post])
    assert info.value.reason == "io"
    assert store.head(k.public_key) is None
    assert store.statistics()["local_commits"] == 0
    # The store still works.
    assert store.append_local(k, "post", {"text": "after"}, now_ms=NOW).seq == 1


def test_commit_local_results_in_order(store: Store) -> None:
    k = key(1)

    def fails(txn: IngestTxn) -> None:
        txn.conn.execute("INSERT INTO settings(key, value) VALUES ('half', '1')")
        raise LocalUsageError("no", reason="nope")

    def ok(txn: IngestTxn) -> int:
        from p2psocial.storage.local import append_own

        return append_own(txn, k, "post", {"text": "x"}, NOW).seq

    results = store.commit_local([ok, fails, ok])
    assert [r[0] for r in results] == [True, False, True]
    assert (results[0][1], results[2][1]) == (1, 2)
    assert isinstance(results[1][1], LocalUsageError)
    # The failed act's own write was rolled back with it.
    assert store.get_setting("half") is None


# One group shares one IngestTxn (its feed cache and row counter) across its
# acts: a failed act must take its cached state with it, and acts that change
# a feed's state behind the cache must be seen by the acts after them.


def _post_then_fail(k: SigningKey) -> Any:
    def act(txn: IngestTxn) -> None:
        from p2psocial.storage.local import append_own

        append_own(txn, k, "post", {"text": "rolled back"}, NOW)
        raise LocalUsageError("changed my mind", reason="nope")

    return act


def _poster(k: SigningKey, text: str) -> Any:
    def act(txn: IngestTxn) -> Entry:
        from p2psocial.storage.local import append_own

        return append_own(txn, k, "post", {"text": text}, NOW)

    return act


def _feed_counts(store: Store, k: SigningKey) -> tuple[int, int, int, int]:
    """(n_entries, payload_bytes) as the feed row says, then as the entries say."""
    conn = store.connection
    n, pbytes = conn.execute(
        "SELECT n_entries, payload_bytes FROM feeds WHERE author = ?", (k.public_key,)
    ).fetchone()
    real_n, real_bytes = conn.execute(
        "SELECT count(*), coalesce(sum(length(payload)), 0) FROM entries "
        "WHERE fid = (SELECT fid FROM feeds WHERE author = ?)",
        (k.public_key,),
    ).fetchone()
    return n, pbytes, real_n, real_bytes


def test_a_failed_act_leaves_no_cached_state_for_the_next(store: Store) -> None:
    old, new = key(1), key(2)
    store.append_local(old, "post", {"text": "first"}, now_ms=NOW)
    results = store.commit_local(
        [
            _poster(old, "second"),
            _post_then_fail(old),  # wrote seq 3 of a known feed, then failed
            _post_then_fail(new),  # created a feed row, then failed
            _poster(old, "third"),
            _poster(new, "new one"),
        ]
    )
    assert [ok for ok, _ in results] == [True, False, False, True, True]
    assert [results[i][1].seq for i in (0, 3, 4)] == [2, 3, 1]
    _check_chain(store, old, 3)
    _check_chain(store, new, 1)
    for k, n in ((old, 3), (new, 1)):
        counts = _feed_counts(store, k)
        assert counts[0] == counts[2] == n
        assert counts[1] == counts[3] > 0


def test_acts_see_a_block_made_earlier_in_their_group(store: Store) -> None:
    from p2psocial.storage.local import block_feed, unblock_feed

    k = key(1)
    store.append_local(k, "post", {"text": "before"}, now_ms=NOW)

    def block(txn: IngestTxn) -> None:
        block_feed(txn, k.public_key)

    def unblock(txn: IngestTxn) -> None:
        unblock_feed(txn, k.public_key)

    results = store.commit_local(
        [_poster(k, "cached"), block, _poster(k, "blocked"), unblock, _poster(k, "again")]
    )
    assert all(ok for ok, _ in results)
    held = [store.get_raw(results[i][1].id) for i in (0, 2, 4)]
    assert [h is not None and h[1] is not None for h in held] == [False, False, True]
    _check_chain(store, k, 4)
    counts = _feed_counts(store, k)
    assert counts[0] == counts[2] == 4 and counts[1] == counts[3]


class _GroupRecorder:
    """A GroupStore that commits at once and records each group: (size, time)."""

    local_group = 64

    def __init__(self) -> None:
        self.groups: list[tuple[int, float]] = []

    def commit_local(self, acts: Any) -> list[tuple[bool, Any]]:
        self.groups.append((len(acts), trio.current_time()))
        return [(True, act(None)) for act in acts]


async def _inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """trio.to_thread.run_sync without the thread: the commit is synchronous."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


async def _writers(acts: LocalActs, limiter: trio.CapacityLimiter, delays: list[float]) -> None:
    """One act per delay, each started that many seconds from now."""

    async def one(delay: float) -> None:
        await trio.sleep(delay)
        await acts.run(lambda txn: None)

    async with trio.open_nursery() as nursery:
        for d in delays:
            nursery.start_soon(one, d)


async def _a_group_of(acts: LocalActs, limiter: trio.CapacityLimiter, n: int) -> None:
    """``n`` acts queued while the database is busy: one group of ``n``."""
    await limiter.acquire()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(acts.run, lambda txn: None)
        await trio.testing.wait_all_tasks_blocked()
        limiter.release()


@pytest.mark.parametrize(
    ("first", "delays", "groups", "waited"),
    [
        # Four writers, acknowledged together, come back one by one within
        # the linger: the next leader waits for all four (until the last).
        (4, [0, 0.0002, 0.0004, 0.0006], [4, 4], 0.0006),
        # Only two of the four come back: the leader waits the whole linger.
        (4, [0, 0.0002], [4, 2], local.LINGER),
        # The last group was one writer: no waiting, each commits at once.
        (1, [0, 0.0002], [1, 1, 1], 0.0002),
    ],
)
async def test_a_leader_lingers_for_the_writers_of_the_last_group(
    monkeypatch: pytest.MonkeyPatch,
    autojump_clock: trio.testing.MockClock,
    first: int,
    delays: list[float],
    groups: list[int],
    waited: float,
) -> None:
    """After a group of several writers, the next leader waits (at most
    LINGER) for as many acts as were active then, so that writers whose acts
    were just acknowledged join the next commit instead of the one after."""
    monkeypatch.setattr(local.trio.to_thread, "run_sync", _inline)
    store = _GroupRecorder()
    limiter = trio.CapacityLimiter(1)
    acts = LocalActs(store, limiter)
    with trio.fail_after(5):
        await _a_group_of(acts, limiter, first)
        t0 = trio.current_time()
        await _writers(acts, limiter, delays)
    assert [n for n, _ in store.groups] == groups
    assert store.groups[-1][1] - t0 == pytest.approx(waited)


async def test_no_lingering_after_a_quiet_spell(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """A group that committed more than LINGER_AFTER ago says nothing about
    who is writing now: the next act commits at once."""
    monkeypatch.setattr(local.trio.to_thread, "run_sync", _inline)
    store = _GroupRecorder()
    limiter = trio.CapacityLimiter(1)
    acts = LocalActs(store, limiter)
    with trio.fail_after(5):
        await _a_group_of(acts, limiter, 4)
        await trio.sleep(local.LINGER_AFTER * 2)
        t0 = trio.current_time()
        await acts.run(lambda txn: None)
    assert [n for n, _ in store.groups] == [4, 1]
    assert store.groups[-1][1] == t0


async def test_a_leader_cancelled_while_lingering_hands_the_lead_on(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    monkeypatch.setattr(local.trio.to_thread, "run_sync", _inline)
    store = _GroupRecorder()
    limiter = trio.CapacityLimiter(1)
    acts = LocalActs(store, limiter)
    ran: list[str] = []
    with trio.fail_after(5):
        await _a_group_of(acts, limiter, 4)
        scope = trio.CancelScope()

        async def cancelled() -> None:
            with scope:
                await acts.run(lambda txn: ran.append("cancelled"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancelled)
            await trio.sleep(0.0001)
            nursery.start_soon(acts.run, lambda txn: ran.append("next"))
            await trio.sleep(0.0001)
            scope.cancel()
    assert scope.cancelled_caught
    assert ran == ["next"]
    assert [n for n, _ in store.groups] == [4, 1]
    assert acts.waiting == 0
