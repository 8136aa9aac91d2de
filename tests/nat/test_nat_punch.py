"""Direct links through routers (spec/sync.md §12), with real daemons in the testbed.

A lab of its own: two port-restricted homes, two symmetric homes and a full
cone. Every home but the full cone holds relay reservations, so a follower
first gets a relayed link to its author, and then:

* two port-restricted homes (plain masquerade: endpoint-independent mapping,
  ports kept) punch a hole: the link ends ``punched``, and posts flow over it;
* a port-restricted home and a symmetric one, either following the other,
  find each other by a birthday search (spec/sync.md §12.9): the link ends
  ``punched``;
* two symmetric homes (a new port per destination) cannot: the attempt
  fails at once, with no connect, and the link stays ``relayed``, and posts
  still arrive;
* a symmetric author followed from the full cone dials the full cone back
  (connection reversal): the link ends ``reversed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import wait_for

from . import netlab
from .conftest import NsDaemon, require_testbed, start_daemons

pytestmark = pytest.mark.slow

KINDS = ("port_restricted", "port_restricted", "symmetric", "symmetric", "full_cone")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NsDaemon]]:
    require_testbed()
    base: Path = tmp_path_factory.mktemp("nat-punch")
    started: dict[str, NsDaemon] = {}
    lab = netlab.Lab(kinds=KINDS)
    with lab:
        try:
            start_daemons(lab, base, started)
            for name in ("port_restricted", "port_restricted_2", "symmetric", "symmetric_2"):
                wait_for(
                    lambda n=name: bool(started[n].status()["relays"]),
                    timeout=90,
                    interval=0.5,
                    what=f"a relay reservation at the {name} home",
                )
            yield started
        finally:
            for d in started.values():
                d.stop()
    assert lab.leftovers() == []


def _links_to(follower: NsDaemon, author: NsDaemon) -> list[dict[str, Any]]:
    author_id = author.status()["node_id"]
    return [p for p in follower.cli_json("peers") if p["node_id"] == author_id]


def _has_post(d: NsDaemon, author: str, text: str) -> bool:
    return any(e.get("text") == text for e in d.cli_json("feed", author) if "id" in e)


def _punch_stats(d: NsDaemon) -> dict[str, Any]:
    [stats] = d.cli_json("statistics")
    punch: dict[str, Any] = stats["replication"].get("punch", {})
    return punch


def _path_becomes(follower: NsDaemon, author: NsDaemon, path: str) -> None:
    try:
        wait_for(
            lambda: [p["path"] for p in _links_to(follower, author)] == [path],
            timeout=90,
            interval=0.3,
            what=f"a {path} link from {follower.ip} to {author.ip}",
        )
    except AssertionError as exc:
        lines = [str(exc), f"links now: {_links_to(follower, author)}"]
        for d in (follower, author):
            lines.append(f"punch statistics at {d.ip}: {_punch_stats(d)}")
            lines.append(f"log of {d.ip} (tail):\n{d.process.log()[-6000:]}")
        raise AssertionError("\n".join(lines)) from None


def _post_arrives(author: NsDaemon, follower: NsDaemon, text: str) -> None:
    author.cli("post", text)
    wait_for(
        lambda: _has_post(follower, author.identity, text),
        timeout=60,
        interval=0.3,
        what=f"the post {text!r} at {follower.ip}",
    )


def test_two_port_restricted_homes_punch_a_direct_link(nodes: dict[str, NsDaemon]) -> None:
    author, follower = nodes["port_restricted"], nodes["port_restricted_2"]
    follower.cli("follow", author.identity)
    _path_becomes(follower, author, "punched")
    _path_becomes(author, follower, "punched")
    _post_arrives(author, follower, "a post through a punched hole")
    [link] = _links_to(follower, author)
    assert link["path"] == "punched"
    # The link is direct: it runs to the author's public (NAT) address, not a relay's.
    assert link["host"] == "203.0.113.70", link
    assert follower.status()["links_by_path"].get("punched", 0) >= 1
    assert "punched" in follower.cli("peers").stdout
    assert _punch_stats(author).get("punch_ok_punched", 0) >= 1
    # The reservation stays for other diallers (spec/sync.md §12.7).
    assert author.status()["relays"]


@pytest.mark.parametrize(
    "author_name, follower_name",
    # Not the symmetric author of the tests below: a follower here would hold
    # its feed too, and a later follower could get it from that holder instead.
    [("symmetric_2", "port_restricted_2"), ("port_restricted", "symmetric_2")],
    ids=["symmetric-author", "port-restricted-author"],
)
def test_a_port_restricted_and_a_symmetric_home_punch_by_spraying(
    nodes: dict[str, NsDaemon], author_name: str, follower_name: str
) -> None:
    author, follower = nodes[author_name], nodes[follower_name]
    assert {author.status()["nat_mapping"], follower.status()["nat_mapping"]} == {
        "consistent",
        "varying",
    }
    follower.cli("follow", author.identity)
    _path_becomes(follower, author, "punched")
    _path_becomes(author, follower, "punched")
    _post_arrives(author, follower, f"a post through a sprayed hole, {author_name}")
    stats = {d.ip: _punch_stats(d) for d in (author, follower)}
    # One side held connects from fresh ports, the other probed for them.
    assert sorted(
        "hard" if s.get("punch_spray_hard") else "easy" if s.get("punch_spray_easy") else "-"
        for s in stats.values()
    ) == ["easy", "hard"], stats
    probes = [s.get("punch_spray_probes", 0) for s in stats.values()]
    assert 0 < max(probes) <= 3 * 1024, stats  # bounded: at most a round of attempts
    follower.cli("unfollow", author.identity)


def test_two_symmetric_homes_stay_relayed_and_still_deliver(nodes: dict[str, NsDaemon]) -> None:
    author, follower = nodes["symmetric"], nodes["symmetric_2"]
    # The author took part in a spray above: count from here.
    connects = {d.ip: _punch_stats(d).get("punch_connects_ok", 0) for d in (author, follower)}
    follower.cli("follow", author.identity)
    _path_becomes(follower, author, "relayed")
    wait_for(
        lambda: _punch_stats(author).get("punch_failed_both_varying", 0) >= 1,
        timeout=60,
        interval=0.5,
        what="a punch between the symmetric homes that fails at once",
    )
    assert {d.ip: _punch_stats(d).get("punch_connects_ok", 0) for d in (author, follower)} == (
        connects
    )
    assert [p["path"] for p in _links_to(follower, author)] == ["relayed"]
    _post_arrives(author, follower, "a post that only a relay can carry")
    assert [p["path"] for p in _links_to(follower, author)] == ["relayed"]


def test_a_symmetric_home_dials_a_full_cone_follower_back(nodes: dict[str, NsDaemon]) -> None:
    author, follower = nodes["symmetric"], nodes["full_cone"]
    follower.cli("follow", author.identity)
    _path_becomes(follower, author, "reversed")
    _post_arrives(author, follower, "a post over a reversed connection")
    assert [p["path"] for p in _links_to(follower, author)] == ["reversed"]
    assert _punch_stats(author).get("punch_ok_reversed", 0) >= 1
