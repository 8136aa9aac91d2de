"""The daemon's activity lines: the repeat limiter, its logger, the summary."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from p2psocial.errors import LocalUsageError, NodeError
from p2psocial.node.activity import (
    REPEAT_INTERVAL,
    REPEAT_INTERVAL_ENV,
    SUMMARY_INTERVAL,
    SUMMARY_INTERVAL_ENV,
    ActivityReporter,
    LimitedLog,
    RepeatLimiter,
    Snapshot,
    format_summary,
    repeat_interval,
    short_author,
    short_node,
    summary_interval,
)

# Each case: (key, now) calls in order, and what each admit() returns
# (None: held back; n: written, n lines held back before it). Interval 60 s.
LIMITER_CASES: list[tuple[str, list[tuple[str, float]], list[int | None]]] = [
    ("first line passes", [("a", 0.0)], [0]),
    ("repeat within the interval is held", [("a", 0.0), ("a", 59.9)], [0, None]),
    ("repeat at the interval passes", [("a", 0.0), ("a", 60.0)], [0, 0]),
    (
        "held lines are counted in the next one",
        [("a", 0.0), ("a", 1.0), ("a", 2.0), ("a", 3.0), ("a", 61.0)],
        [0, None, None, None, 3],
    ),
    ("keys are independent", [("a", 0.0), ("b", 1.0), ("a", 2.0), ("b", 3.0)], [0, 0, None, None]),
    (
        "the window starts at the last line written, not the last held",
        [("a", 0.0), ("a", 50.0), ("a", 100.0), ("a", 130.0), ("a", 160.0)],
        [0, None, 1, None, 1],
    ),
    (
        "a flapping key: one line a minute, the count after",
        [("flap", t * 5.0) for t in range(25)],
        [0] + [None] * 11 + [11] + [None] * 11 + [11],
    ),
    ("time going backwards is held, not an error", [("a", 10.0), ("a", 5.0)], [0, None]),
]


@pytest.mark.parametrize(
    ("calls", "expected"),
    [pytest.param(calls, expected, id=name) for name, calls, expected in LIMITER_CASES],
)
def test_repeat_limiter_table(calls: list[tuple[str, float]], expected: list[int | None]) -> None:
    limiter = RepeatLimiter(60.0)
    assert [limiter.admit(key, now) for key, now in calls] == expected


def test_repeat_limiter_bounds_its_keys_and_counts_what_it_forgets() -> None:
    limiter = RepeatLimiter(60.0, max_keys=2)
    assert limiter.admit("a", 0.0) == 0
    assert limiter.admit("a", 1.0) is None  # a holds one back
    assert limiter.admit("b", 2.0) == 0
    assert limiter.held_back() == 1
    assert limiter.admit("c", 3.0) == 0  # a, the oldest, is forgotten
    assert limiter.forgotten == 1
    assert limiter.held_back() == 0
    assert limiter.admit("a", 4.0) == 0  # a is new again


@pytest.mark.parametrize(
    ("interval", "max_keys"), [(0.0, 1), (-1.0, 1), (float("nan"), 1), (1.0, 0)]
)
def test_repeat_limiter_refuses_bad_bounds(interval: float, max_keys: int) -> None:
    with pytest.raises(LocalUsageError, match="RepeatLimiter needs"):
        RepeatLimiter(interval, max_keys=max_keys)


def test_limited_log_says_how_many_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("p2psocial.test.activity")
    limited = LimitedLog(logger, interval=60.0)
    caplog.set_level(logging.INFO, logger=logger.name)
    written = [limited.info(("up", "peer1"), float(t), "link up: %s", "peer1") for t in range(5)]
    assert written == [True, False, False, False, False]
    assert limited.info(("up", "peer1"), 60.0, "link up: %s", "peer1")
    assert [r.getMessage() for r in caplog.records] == [
        "link up: peer1",
        "link up: peer1 (and 4 more like this since the last such line)",
    ]
    assert all(r.levelno == logging.INFO and r.name == logger.name for r in caplog.records)


def test_limited_log_does_nothing_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("p2psocial.test.activity_off")
    caplog.set_level(logging.WARNING, logger=logger.name)
    limited = LimitedLog(logger, interval=60.0)
    assert not limited.info("k", 0.0, "hidden")
    assert limited.limiter.held_back() == 0
    assert caplog.records == []


@pytest.mark.parametrize(
    ("getter", "env", "default"),
    [
        (repeat_interval, REPEAT_INTERVAL_ENV, REPEAT_INTERVAL),
        (summary_interval, SUMMARY_INTERVAL_ENV, SUMMARY_INTERVAL),
    ],
)
def test_intervals_come_from_the_test_environment(
    monkeypatch: pytest.MonkeyPatch, getter: Any, env: str, default: float
) -> None:
    monkeypatch.delenv(env, raising=False)
    assert getter() == default
    monkeypatch.setenv(env, "0.5")
    assert getter() == 0.5
    for bad in ("0", "-3", "soon", "inf", "nan"):
        monkeypatch.setenv(env, bad)
        with pytest.raises(NodeError, match=env) as info:
            getter()
        assert info.value.reason == "bad_interval"


def test_short_forms() -> None:
    assert short_node(bytes(range(20))) == "000102030405"
    text = short_author(bytes(32))
    assert text.startswith("p2ps1") and "…" in text and len(text) == 15
    assert short_author(b"\x01\x02") == "0102"


def test_format_summary_counts_since_the_last_one() -> None:
    before = Snapshot(peers=1, feeds=2, contacts=3, received=10, stored=8, served=5)
    now = Snapshot(peers=2, feeds=4, contacts=7, received=25, stored=20, served=9)
    assert format_summary(before, now, 600.0) == (
        "summary: peers 2, feeds 4, DHT contacts 7; last 600 s: entries in 15 (12 new), out 4"
    )
    assert "last 2.5 s" in format_summary(before, now, 2.5)


class FakeService:
    def __init__(self, **stats: Any) -> None:
        self.stats = stats

    def statistics(self) -> dict[str, Any]:
        return dict(self.stats)


async def test_reporter_logs_summary_and_relaying_on_its_intervals(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, logger="p2psocial.daemon")
    rep = FakeService(peers=1, feeds=3, entries_received=0, entries_stored=0, entries_served=0)
    dht = FakeService(contacts=5)
    reporter = ActivityReporter(rep, dht, summary_every=600.0, relay_every=60.0)
    lines: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(reporter.run)
        rep.stats.update(entries_received=4, entries_stored=3, entries_served=7)
        await trio.sleep(61)  # one relay tick
        lines.append("|".join(r.getMessage() for r in caplog.records))
        await trio.sleep(60)  # a relay tick with nothing relayed: no line
        lines.append("|".join(r.getMessage() for r in caplog.records))
        await trio.sleep(600 - 121 + 1)  # past the first summary
        nursery.cancel_scope.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert lines[0] == "relaying: sent 7 entries to peers in the last 60 s (1 linked)"
    assert lines[1] == lines[0]
    assert messages == [
        lines[0],
        "summary: peers 1, feeds 3, DHT contacts 5; last 600 s: entries in 4 (3 new), out 7",
    ]
