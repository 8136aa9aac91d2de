"""The round-trip estimator behind per-contact DHT timeouts (spec/dht.md §9)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.dht.rtt import RttEstimator
from p2psocial.protocol.errors import LocalUsageError

A, B = ("198.51.100.1", 1), ("198.51.100.2", 1)

#: (samples to A, expected rto of A, expected rto of B)
TABLE: list[tuple[str, list[float], float, float]] = [
    ("no sample: the initial timeout", [], 0.5, 0.5),
    # srtt 0.1, rttvar 0.05: 0.1 + 0.2
    ("one sample: srtt + 4 * rtt/2", [0.1], 0.3, 0.3),
    ("a fast link is clamped at the minimum", [0.001] * 20, 0.03, 0.03),
    ("a slow link is clamped at the maximum", [5.0], 2.0, 2.0),
    # srtt 0.1 -> 0.0875 + 0.0125 = 0.1; rttvar 0.05 -> 0.0375
    ("a steady link narrows its deviation", [0.1, 0.1], 0.25, 0.25),
]


@pytest.mark.parametrize(
    ("samples", "rto_a", "rto_b"), [r[1:] for r in TABLE], ids=[r[0] for r in TABLE]
)
def test_rto_table(samples: list[float], rto_a: float, rto_b: float) -> None:
    est = RttEstimator()
    for s in samples:
        est.sample(A, s)
    assert est.rto(A) == pytest.approx(rto_a)
    assert est.rto(B) == pytest.approx(rto_b), "an unmeasured address gets the overall estimate"


def test_each_address_keeps_its_own_estimate() -> None:
    est = RttEstimator()
    for _ in range(10):
        est.sample(A, 0.01)
        est.sample(B, 0.4)
    assert est.rto(A) < 0.05 < 0.4 < est.rto(B)
    assert est.srtt(A) == pytest.approx(0.01) and est.srtt(("192.0.2.1", 1)) is None


def test_a_timeout_doubles_the_timeout_until_the_next_sample() -> None:
    est = RttEstimator()
    est.sample(A, 0.1)  # rto 0.3
    est.timed_out(A)
    assert est.rto(A) == pytest.approx(0.6)
    est.timed_out(A)
    est.timed_out(A)
    assert est.rto(A) == 2.0, "capped at the maximum"
    assert est.rto(B) == pytest.approx(0.3), "other addresses keep theirs"
    est.sample(A, 0.1)
    assert est.rto(A) < 0.3
    est.timed_out(("192.0.2.1", 1))  # never measured: nothing to back off
    assert est.rto(("192.0.2.1", 1)) == est.rto(B)


def test_negative_samples_are_ignored_and_keys_are_bounded() -> None:
    est = RttEstimator(max_keys=2)
    est.sample(A, -1.0)
    assert est.samples == 0 and est.rto(A) == 0.5
    for i in range(5):
        est.sample(("192.0.2.1", i), 0.2)
    assert len(est) == 2 and est.srtt(("192.0.2.1", 0)) is None
    assert est.srtt(("192.0.2.1", 4)) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "kwargs",
    [{"minimum": 0.0}, {"minimum": 2.0, "maximum": 1.0}, {"max_keys": 0}, {"initial": 0.0}],
)
def test_bad_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(LocalUsageError):
        RttEstimator(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 10, allow_nan=False)), max_size=60))
def test_rto_always_within_bounds(samples: list[tuple[bool, float]]) -> None:
    est = RttEstimator(minimum=0.02, maximum=1.5)
    for to_a, rtt in samples:
        est.sample(A if to_a else B, rtt)
        for key in (A, B, ("192.0.2.9", 9)):
            assert 0.02 <= est.rto(key) <= 1.5


def test_patience_is_bounded_by_the_lowest_recent_round_trip() -> None:
    """A busy spell inflates the smoothed estimate for long; patience stays
    near what the path can do (4 x its lowest recent round trip), and a
    timeout's backoff spaces out resends without making lookups wait."""
    est = RttEstimator(minimum=0.01, maximum=2.0)
    for _ in range(20):
        est.sample("a", 0.002)
    for _ in range(3):
        est.sample("a", 0.4)  # measured while an event loop was saturated
    assert est.rto("a") > 0.3
    assert est.patience("a") <= 4 * 0.03  # the low drifted a little, no more
    est.timed_out("a")
    assert est.rto("a") > 0.6
    assert est.patience("a") <= 4 * 0.03
    assert est.patience("a") >= 0.01  # never below the minimum


def test_patience_follows_a_path_that_became_slower() -> None:
    """The low is not a minimum for ever: after a route change it drifts up,
    and patience returns to the smoothed estimate."""
    est = RttEstimator(minimum=0.01, maximum=2.0)
    est.sample("a", 0.001)
    for _ in range(200):
        est.sample("a", 0.1)
    expected = est.srtt("a")
    assert expected is not None
    assert est.patience("a") == pytest.approx(est.rto("a"), rel=1e-6)
    assert est.patience("a") >= 0.1
