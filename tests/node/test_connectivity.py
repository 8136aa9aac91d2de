"""The connectivity warning (node/connectivity.py): the reason a node reaches
no one, or no one reaches it, and one line per change of reason."""

from __future__ import annotations

import logging

import pytest

from p2psocial.node.connectivity import (
    NO_BOOTSTRAP,
    NO_REACHABLE_PEER,
    NO_RELAY,
    ConnectivityWatch,
    Reach,
    isolation_reason,
)

FINE = Reach(known=True, heard=True, links=2, reachable="yes", relays=0, peer_port=4001)

CASES: list[tuple[str, dict[str, object], str | None]] = [
    ("reaches and is reached", {}, None),
    ("nothing known, nothing heard", {"known": False, "heard": False, "links": 0}, NO_BOOTSTRAP),
    ("known but silent", {"heard": False, "links": 0}, NO_REACHABLE_PEER),
    ("a link but no DHT answer", {"heard": False, "links": 1}, None),
    ("someone joined through us", {"known": False, "heard": True, "links": 0}, None),
    ("not dialable, no relay", {"reachable": "no"}, NO_RELAY),
    ("not dialable, with a relay", {"reachable": "no", "relays": 1}, None),
    ("not checked yet", {"reachable": "unknown"}, None),
    ("no listener: nothing to reach", {"reachable": "no", "peer_port": 0}, None),
    ("isolation comes first", {"heard": False, "links": 0, "reachable": "no"}, NO_REACHABLE_PEER),
]


@pytest.mark.parametrize(("change", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_isolation_reasons(change: dict[str, object], reason: str | None) -> None:
    fields = {
        "known": FINE.known,
        "heard": FINE.heard,
        "links": FINE.links,
        "reachable": FINE.reachable,
        "relays": FINE.relays,
        "peer_port": FINE.peer_port,
        **change,
    }
    assert isolation_reason(Reach(**fields)) == reason  # type: ignore[arg-type]


def test_one_line_per_change_of_reason(caplog: pytest.LogCaptureFixture) -> None:
    alone = Reach(known=False, heard=False, links=0, reachable="unknown", relays=0, peer_port=1)
    silent = Reach(known=True, heard=False, links=0, reachable="unknown", relays=0, peer_port=1)
    now = [alone]
    watch = ConnectivityWatch(lambda: now[0], interval=1.0)
    caplog.set_level(logging.INFO, logger="p2psocial.daemon")
    for state in [alone] * 5 + [silent] * 3 + [FINE] * 4 + [alone]:
        now[0] = state
        watch.check()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [lvl for lvl, _ in lines] == ["WARNING", "WARNING", "INFO", "WARNING"], lines
    assert "no bootstrap address is configured" in lines[0][1]
    assert "no bootstrap or peer address answered" in lines[1][1]
    assert lines[2][1].startswith("connectivity is fine again")
    stats = watch.statistics()
    assert stats["connectivity_checks"] == 13
    assert stats["connectivity_warned_no_bootstrap"] == 2
    assert stats["connectivity_reason"] == NO_BOOTSTRAP


def test_the_no_relay_warning_names_the_port_to_forward(caplog: pytest.LogCaptureFixture) -> None:
    closed = Reach(known=True, heard=True, links=1, reachable="no", relays=0, peer_port=4123)
    caplog.set_level(logging.WARNING, logger="p2psocial.daemon")
    ConnectivityWatch(lambda: closed, interval=1.0).check()
    [record] = caplog.records
    assert "cannot open links to this node" in record.getMessage()
    assert "no relay" in record.getMessage() and "TCP 4123" in record.getMessage()
