"""LAN discovery in the testbed (issue 16): two daemons on one bridge, with no
route anywhere else and no bootstrap address, find each other, follow each
other by identity and exchange posts; their announcements never leave the link.

The layout is :mod:`.lanlab`'s. A listener on the router (on the link) sees
every announcement with an IP TTL of 1; a listener one routed hop away sees
none of them over the same time, while a unicast datagram from the link does
reach it (the positive control).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2psocial.client.spawn import daemon_env
from p2psocial.protocol.lan import LAN_GROUP, LAN_PORT, decode_lan_announce_untrusted
from tests.daemons import wait_for

from .conftest import NsDaemon, read_event, require_testbed
from .lanlab import LanLab

pytestmark = pytest.mark.slow

#: The daemons' environment: the tests' own, with LAN discovery left on.
LAN_ENV = daemon_env(NO_COLOR="1", P2PSOCIAL_PORTMAP_GATEWAY="none")


class Lan:
    def __init__(self, lab: LanLab, a: NsDaemon, b: NsDaemon, listeners: dict[str, Any]) -> None:
        self.lab, self.a, self.b, self.listeners = lab, a, b, listeners


def _listen(lab: LanLab, role: str) -> subprocess.Popen[str]:
    ns, addr = lab.hosts[role]
    proc = lab.popen(
        ns,
        *lab.mcast_argv(
            "listen",
            "--group",
            LAN_GROUP,
            "--port",
            str(LAN_PORT),
            "--iface",
            addr,
            "--seconds",
            "150",
            "--max",
            "500",
        ),
    )
    assert read_event(proc) == {"ready": True}
    return proc


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    require_testbed()
    base: Path = tmp_path_factory.mktemp("nat-lan")
    lab = LanLab()
    started: list[NsDaemon] = []
    with lab:
        try:
            listeners = {role: _listen(lab, role) for role in ("r", "far")}
            for role in ("a", "b"):
                ns, ip = lab.hosts[role]
                d = NsDaemon(lab, ns, ip, base / role)
                started.append(d)
                d.start(env=LAN_ENV)  # no bootstrap address
            yield Lan(lab, started[0], started[1], listeners)
        finally:
            for d in started:
                d.stop()
    assert lab.leftovers() == []


def test_two_nodes_on_a_bridge_find_each_other_and_exchange_posts(lan: Lan) -> None:
    a, b = lan.a, lan.b
    for me in (a, b):
        wait_for(
            lambda me=me: me.status()["lan_peers"] == 1,
            timeout=60,
            interval=0.5,
            what=f"{me.ip} finding a LAN peer",
        )
        [stats] = me.cli_json("statistics")
        assert stats["lan"]["peers_found"] == 1
        assert stats["lan"]["announcements_sent"] >= 1
        # Proven before it was added: a proven contact in the routing table.
        assert stats["dht"]["proven"] >= 1 and stats["dht"]["contacts"] >= 1
    a.cli("post", "hello from a, on the LAN")
    b.cli("post", "hello from b, on the LAN")
    a.cli("follow", b.identity)
    b.cli("follow", a.identity)
    for me, other, text in ((a, b, "hello from b, on the LAN"), (b, a, "hello from a, on the LAN")):
        wait_for(
            lambda me=me, other=other, text=text: any(
                e.get("text") == text for e in me.cli_json("feed", other.identity) if "id" in e
            ),
            timeout=90,
            interval=0.5,
            what=f"{me.ip} getting {other.ip}'s post",
        )
    paths = {p["node_id"]: p["path"] for p in a.cli_json("peers")}
    assert paths.get(b.status()["node_id"]) == "lan", paths


def test_announcements_stay_on_the_link(lan: Lan) -> None:
    lab = lan.lab
    # Both daemons have announced by now (the previous test waited for it; on
    # its own this one waits here).
    for d in (lan.a, lan.b):
        wait_for(
            lambda d=d: d.cli_json("statistics")[0]["lan"]["announcements_sent"] >= 1,
            timeout=60,
            interval=0.5,
            what=f"{d.ip} announcing",
        )
    # The positive control, last: unicast from the link, routed to far (and
    # to r on the link); each listener stops on it.
    c_ns = lab.hosts["c"][0]
    for role in ("far", "r"):
        to = lab.hosts[role][1]
        lab.run(
            c_ns,
            sys.executable,
            "-c",
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.sendto(b'stop', ({to!r}, {LAN_PORT}))",
        )
    heard: dict[str, list[dict[str, Any]]] = {}
    for role, proc in lan.listeners.items():
        out, _ = proc.communicate(timeout=30)
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert events[-1] == {"done": "stop"}, (role, events[-3:])
        heard[role] = events[:-1]
    on_link = [e for e in heard["r"] if e["dst"] == LAN_GROUP]
    senders = {e["from"].split(":")[0] for e in on_link}
    assert senders == {lan.a.ip, lan.b.ip}, on_link
    assert all(e["ttl"] == 1 for e in on_link), on_link
    for e in on_link:
        decode_lan_announce_untrusted(bytes.fromhex(e["data"]))
    # One hop away: the control arrived, from the link's probe host, and
    # none of the announcements the router heard over the same time did.
    assert [(e["from"].split(":")[0], e["data"]) for e in heard["far"]] == [
        (lab.hosts["c"][1], b"stop".hex())
    ]
