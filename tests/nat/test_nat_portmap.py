"""Port mapping against a real gateway daemon (spec/portmap.md): two homes
whose routers run miniupnpd, one answering NAT-PMP and PCP (``netlab`` kind
``upnp``), one UPnP-IGD alone (kind ``igd``), and three public nodes.

* Each home's daemon gets a mapping, by PCP and by UPnP-IGD; ``status`` shows the external
  address and ``mapped``, and dial-back finds it reachable.
* A public node dials the mapped address directly and gets the home's post.
* When the daemon stops, the mapping is gone from the router's nft rules.
* A daemon whose gateway never answers sends a bounded number of requests
  (counted at a UDP socket the test reads) and then waits for minutes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemons import wait_for

from . import netlab
from .conftest import NsDaemon, read_event, require_testbed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab() -> Iterator[netlab.Lab]:
    """A lab with a upnp and an igd home (miniupnpd on their routers)."""
    require_testbed()
    if not os.access(netlab.MINIUPNPD, os.X_OK):
        reason = f"the upnp home needs {netlab.MINIUPNPD} (apt-get install miniupnpd-nftables)"
        if os.environ.get("P2PSOCIAL_REQUIRE_NAT") == "1":
            pytest.fail(f"P2PSOCIAL_REQUIRE_NAT=1, but {reason}")
        pytest.skip(reason)
    with netlab.Lab(kinds=("upnp", "igd")) as built:
        yield built
    assert built.leftovers() == []


@pytest.fixture(scope="module")
def pubs(lab: netlab.Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NsDaemon]]:
    base: Path = tmp_path_factory.mktemp("portmap-pubs")
    started: list[NsDaemon] = []
    try:
        for name in ("pub1", "pub2", "pub3"):
            ns, ip = lab.public[name]
            boot = [started[0].addr("dht_addr")] if started else []
            started.append(NsDaemon(lab, ns, ip, base / name).start(boot))
        yield started
    finally:
        for d in started:
            d.stop()


def _has_post(d: NsDaemon, author: str, text: str) -> bool:
    return any(e.get("text") == text for e in d.cli_json("feed", author) if "id" in e)


@pytest.mark.parametrize(
    ("kind", "protocol", "asked"), [("upnp", "pcp", 5351), ("igd", "igd", 5000)]
)
def test_a_home_behind_miniupnpd_is_mapped_dialled_directly_and_unmapped_on_stop(
    lab: netlab.Lab, pubs: list[NsDaemon], tmp_path: Path, kind: str, protocol: str, asked: int
) -> None:
    home = lab.homes[kind]
    net, last = home.host_ip.rsplit(".", 1)
    router = f"{net}.{int(last) - 1}"  # its LAN address (netlab: the host's is the next one)
    boot = [p.addr("dht_addr") for p in pubs]
    d = NsDaemon(lab, home.host_ns, home.host_ip, tmp_path / "home")
    try:
        d.start(boot, portmap_gateway="")  # the default route's: the home router
        port = d.port("peer_addr")
        external = f"{home.public_ip}:{port}"

        def mapping() -> dict[str, object]:
            return dict(d.status()["port_mapping"])

        wait_for(lambda: mapping()["state"] == "mapped", 30, 0.2, "a port mapping")
        pm = mapping()
        assert pm["protocol"] == protocol and pm["external"] == external, pm
        assert pm["udp_external"] == f"{home.public_ip}:{d.port('dht_addr')}", pm
        assert 7000 < int(str(pm["expires_in"])) <= 7200, pm
        rules = lab.mappings(home)  # nft shows the protocol as a byte of the IP header
        assert f"0x6 th dport {port} dnat ip to {home.host_ip}:{port}" in rules, rules
        udp = d.port("dht_addr")
        assert f"0x11 th dport {udp} dnat ip to {home.host_ip}:{udp}" in rules, rules
        wait_for(lambda: d.status()["reachable"] == "yes", 90, 0.5, "dial-back through the mapping")
        st = d.status()
        assert st["reachability"] == "mapped", st
        shown = d.cli("status").stdout
        # PCP's gateway port, or the IGD's control URL (its HTTP server).
        assert f"portmap   {external} by {protocol} at {router}:{asked}" in shown, shown
        # A public node that has no link to the home dials the mapped address.
        pub = pubs[1]
        pub.cli("connect", external)
        d.cli("post", f"hello through the router's mapping by {protocol}")
        pub.cli("follow", d.identity)
        wait_for(
            lambda: _has_post(pub, d.identity, f"hello through the router's mapping by {protocol}"),
            60,
            0.2,
            "the home's post at a public node",
        )
        # At the home, that link came in through the mapping (spec/sync.md §12.8).
        pub_id = pub.status()["node_id"]
        [row] = [p for p in d.cli_json("peers") if p["node_id"] == pub_id]
        assert (row["path"], row["direction"]) == ("mapped", "inbound"), row
        assert d.status()["links_by_path"].get("mapped", 0) >= 1
        pub.cli("unfollow", d.identity)
    finally:
        d.stop()
    # Removed on stop (lifetime 0), not left to expire in two hours.
    assert "dnat" not in lab.mappings(home), lab.mappings(home)
    refused = pubs[2].cli("connect", external, check=False)
    assert refused.returncode != 0 and "could not open a peer link" in refused.stderr


def test_a_node_whose_gateway_never_answers_sends_a_bounded_number_of_requests(
    lab: netlab.Lab, tmp_path: Path
) -> None:
    # pub3's daemon is told its gateway is a socket on its own host that reads
    # and never answers (udpprobe sink); the test counts what arrives.
    ns, ip = lab.public["pub3"]
    sink = lab.popen(ns, *lab.probe_argv("sink", "--bind", f"{ip}:5351", "--seconds", "40"))
    assert "ready" in read_event(sink)
    d = NsDaemon(lab, ns, ip, tmp_path / "lonely")
    try:
        d.start(portmap_gateway=f"{ip}:5351")
        got = [read_event(sink, timeout=20) for _ in range(8)]
        wait_for(lambda: d.status()["port_mapping"]["state"] == "failed", 20, 0.2, "giving up")
        st = d.status()["port_mapping"]
        stats = d.cli_json("statistics")[0]["portmap"]
    finally:
        d.stop()
    versions = [bytes.fromhex(g["hex"])[0] for g in got]
    assert versions == [2, 2, 2, 2, 0, 0, 0, 0], got  # 4 PCP, then 4 NAT-PMP
    assert stats["requests_sent"] == 8 and stats["rounds_failed"] == 1, stats
    assert st["retry_in"] >= 290, st


def test_miniupnpd_maps_and_unmaps_by_natpmp_too(lab: netlab.Lab) -> None:
    home = lab.homes["upnp"]
    client = str(Path(__file__).with_name("natpmp_client.py"))
    p = lab.popen(home.host_ns, sys.executable, client, "--protocol", "natpmp", "--port", "40123")
    st = read_event(p)
    assert st["state"] == "mapped" and st["protocol"] == "natpmp", st
    assert st["external"] == f"{home.public_ip}:40123", st
    rules = lab.mappings(home)
    assert f"0x6 th dport 40123 dnat ip to {home.host_ip}:40123" in rules, rules
    done = read_event(p)
    assert done["stopped"] == "stopped" and done["mappings_removed"] == 1, done
    assert "40123" not in lab.mappings(home), lab.mappings(home)
