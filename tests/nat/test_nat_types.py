"""The testbed's NATs behave as named, shown with raw UDP sockets in the
namespaces (each test uses its own ports: conntrack keeps mappings ~30 s)."""

from __future__ import annotations

import pytest

from . import netlab
from .conftest import knock, read_event, seen_by, serve

PUB1, PUB2, PUB3 = "198.51.100.18", "203.0.113.18", "198.51.100.34"


def _servers(lab: netlab.Lab, port: int) -> list[str]:
    addrs = []
    for name in ("pub1", "pub2", "pub3"):
        ns, ip = lab.public[name]
        serve(lab, ns, f"{ip}:{port}")
        addrs.append(f"{ip}:{port}")
    return addrs


def test_port_restricted_cone_keeps_one_mapping_and_filters_by_ip_and_port(
    lab: netlab.Lab,
) -> None:
    home = lab.homes["port_restricted"]
    targets = _servers(lab, 7100)
    seen = seen_by(lab, home.host_ns, "0.0.0.0:41000", targets)
    # The same public ip:port towards every destination: a cone.
    assert set(seen.values()) == {f"{home.public_ip}:41000"}, seen
    # Only the ip:port contacted may answer: another port of the same host,
    # or another host, hits the router itself (an ICMP error comes back).
    pub1_ns = lab.public["pub1"][0]
    pub2_ns = lab.public["pub2"][0]
    mapped = f"{home.public_ip}:41000"
    assert knock(lab, pub1_ns, f"{PUB1}:7101", mapped)["result"] == "refused"
    assert knock(lab, pub2_ns, f"{PUB2}:7102", mapped)["result"] == "refused"


def test_full_cone_accepts_any_public_host_after_one_outbound_packet(lab: netlab.Lab) -> None:
    home = lab.homes["full_cone"]
    (ns1, ip1), (ns2, ip2), (ns3, ip3) = (lab.public[n] for n in ("pub1", "pub2", "pub3"))
    serve(lab, ns1, f"{ip1}:7200")
    probe = lab.popen(
        home.host_ns,
        *lab.probe_argv(
            "probe",
            "--bind",
            "0.0.0.0:41100",
            "--to",
            f"{ip1}:7200",
            "--seconds",
            "15",
            "--expect",
            "2",
        ),
    )
    first = read_event(probe)
    mapped = f"{home.public_ip}:41100"
    assert first["from"] == f"{ip1}:7200" and mapped in first["data"], first
    assert read_event(probe) == {"probed": [f"{ip1}:7200"]}
    # Hosts never contacted reach the home through the same public ip:port.
    for ns, bind in ((ns2, f"{ip2}:7201"), (ns3, f"{ip3}:7202")):
        got = knock(lab, ns, bind, mapped)
        assert got["result"] == "reply", got
        assert bind in got["data"]  # the home saw the true sender: no NAT on the way in
    froms = {read_event(probe)["from"] for _ in range(2)}
    assert froms == {f"{ip2}:7201", f"{ip3}:7202"}


def test_symmetric_nat_maps_each_destination_to_another_port(lab: netlab.Lab) -> None:
    home = lab.homes["symmetric"]
    targets = _servers(lab, 7300)
    seen = seen_by(lab, home.host_ns, "0.0.0.0:41200", targets)
    assert len(seen) == 3, seen
    assert {s.rpartition(":")[0] for s in seen.values()} == {home.public_ip}
    ports = {s.rpartition(":")[2] for s in seen.values()}
    # fully-random: three random ports; two alike would be a 1-in-~10^4 accident.
    assert len(ports) >= 2, seen
    # The mapping made towards pub1 does not take pub2's datagrams.
    pub2_ns = lab.public["pub2"][0]
    assert knock(lab, pub2_ns, f"{PUB2}:7301", seen[targets[0]])["result"] == "refused"


def test_carrier_grade_nat_translates_twice(lab: netlab.Lab) -> None:
    home = lab.homes["cgnat"]
    assert home.carrier_ns is not None and home.carrier_inner_ip is not None
    inner = f"{home.carrier_inner_ip}:7400"
    serve(lab, home.carrier_ns, inner)
    ns1, ip1 = lab.public["pub1"]
    serve(lab, ns1, f"{ip1}:7400")
    seen = seen_by(lab, home.host_ns, "0.0.0.0:41300", [inner, f"{ip1}:7400"])
    router_wan = home.carrier_inner_ip.rsplit(".", 1)[0] + ".2"
    # First translation: the home router's 100.64 address; second: the carrier's.
    assert seen[inner].rpartition(":")[0] == router_wan, seen
    assert seen[f"{ip1}:7400"].rpartition(":")[0] == home.public_ip, seen
    assert home.public_ip != router_wan and not home.public_ip.startswith("100.")
    # The carrier network is not reachable from the internet.
    assert knock(lab, ns1, f"{ip1}:7401", f"{router_wan}:41300")["result"] == "unreachable"


@pytest.mark.parametrize("kind", netlab.KINDS)
def test_no_route_from_the_internet_to_a_home_lan(lab: netlab.Lab, kind: str) -> None:
    home = lab.homes[kind]
    ns1, ip1 = lab.public["pub1"]
    got = knock(lab, ns1, f"{ip1}:7500", f"{home.host_ip}:41000")
    assert got["result"] == "unreachable", got
