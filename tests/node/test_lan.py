"""LAN discovery over real sockets on 127.0.0.1 (spec/dht.md §12).

Two DHT nodes with no bootstrap address find each other through announcements
multicast on the loopback interface, prove each other's keys, and land in each
other's routing table. Each test picks its own group port, so that concurrent
test runs on one host never hear each other.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from p2psocial.node.dht import DHTNode
from p2psocial.node.lan import (
    LAN_ENV,
    Interface,
    LanDiscovery,
    lan_allowed,
    lan_interfaces,
    link_path,
    local_networks,
    off_link,
)
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.lan import LAN_GROUP, LanAnnounce, LanListener, encode_lan_announce

LOOPBACK = [Interface("lo", "127.0.0.1")]


def free_port() -> int:
    """A UDP port nobody on this host is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` (callers bound the time under ``trio.fail_after``)."""
    # Counters have no change event, so poll them.
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(0.02)


@asynccontextmanager
async def lan_node(
    nursery: trio.Nursery, port: int, **listener: float
) -> AsyncIterator[tuple[DHTNode, LanDiscovery]]:
    dht = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
    await nursery.start(dht.run)
    lan = LanDiscovery(
        dht,
        lambda: 4242,
        interfaces=lambda: LOOPBACK,
        port=port,
        listener=LanListener(dht.node_id, **listener),
    )
    await nursery.start(lan.run)
    yield dht, lan


async def test_two_nodes_find_each_other_on_loopback() -> None:
    port = free_port()
    with trio.fail_after(20):
        async with (
            trio.open_nursery() as nursery,
            lan_node(nursery, port) as (a, lan_a),
            lan_node(nursery, port) as (b, lan_b),
        ):
            await until(lambda: b.node_id in lan_a.lan_peers() and a.node_id in lan_b.lan_peers())
            # Proven first, then added: each holds the other, proven at its DHT address.
            contacts_a = {c.node_id: c for c in a.table.contacts()}
            assert contacts_a[b.node_id].addr == b.address
            assert a.is_proven(contacts_a[b.node_id])
            assert lan_a.listener.found[b.node_id] == ("127.0.0.1", b.address[1], 4242)
            stats = lan_a.statistics()
            assert stats["announcements_sent"] >= 1 and stats["peers_found"] == 1
            assert stats["lan_peers"] == 1
            # Our own announcement came back (IP_MULTICAST_LOOP) and was ignored.
            assert stats["dropped"].get("self", 0) >= 1
            nursery.cancel_scope.cancel()


async def test_forged_announcement_is_not_trusted() -> None:
    """An announcement naming a node id its sender cannot prove adds nothing."""
    port = free_port()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, lan_node(nursery, port) as (a, lan_a):
            # A real DHT node answers hello, but with its own key: the
            # claimed id (someone else's) does not match it.
            liar = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
            await nursery.start(liar.run)
            claimed = bytes(20)
            forged = encode_lan_announce(LanAnnounce(claimed, liar.address[1], 0))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
                s.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1")
                )
                s.sendto(forged, (LAN_GROUP, port))
                # Also a datagram that is not an announcement at all.
                s.sendto(b"p2ps-lan\x02" + bytes(random.randrange(30)), (LAN_GROUP, port))
            await until(lambda: lan_a.statistics()["dropped"].get("not_proven", 0) >= 1)
            assert lan_a.statistics()["dropped"]["unsupported_version"] == 1
            assert claimed not in {c.node_id for c in a.table.contacts()}
            assert lan_a.lan_peers() == set()
            nursery.cancel_scope.cancel()


async def test_unicast_to_the_port_is_dropped() -> None:
    """Only datagrams sent to the group count: a unicast to the port (which a
    sender anywhere could make) is dropped unread."""
    port = free_port()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, lan_node(nursery, port) as (_a, lan_a):
            datagram = encode_lan_announce(LanAnnounce(bytes(range(20)), 9, 0))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(datagram, ("127.0.0.1", port))
            await until(lambda: lan_a.statistics()["dropped"].get("not_multicast", 0) >= 1)
            assert lan_a.statistics()["dropped"].get("not_proven", 0) == 0
            nursery.cancel_scope.cancel()


async def test_answers_are_rate_limited() -> None:
    """A burst of announcers beyond answer_burst gets no hello: dropped and counted."""
    port = free_port()
    with trio.fail_after(20):
        async with (
            trio.open_nursery() as nursery,
            lan_node(nursery, port, answer_burst=3, answer_rate=0.001) as (_a, lan_a),
        ):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1")
                )
                for i in range(10):
                    fake = encode_lan_announce(LanAnnounce(bytes([i + 1]) * 20, 9, 0))
                    s.sendto(fake, (LAN_GROUP, port))
            await until(lambda: lan_a.statistics()["dropped"].get("not_proven", 0) >= 3)
            dropped = lan_a.statistics()["dropped"]
            # Our own announcement costs no token; 7 of the 10 are over the burst of 3.
            assert dropped["rate_limited"] == 7
            assert dropped["not_proven"] == 3
            nursery.cancel_scope.cancel()


def port_is_free(port: int) -> bool:
    """Whether a socket without address reuse can bind the group's port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


async def test_switching_off_releases_the_port() -> None:
    """policy.lan_discovery off: within about a second the service holds no
    socket (and so hears nothing); back on, it announces again."""
    port = free_port()
    on = [True]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            dht = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
            await nursery.start(dht.run)
            lan = LanDiscovery(
                dht, lambda: 0, interfaces=lambda: LOOPBACK, port=port, enabled=lambda: on[0]
            )
            await nursery.start(lan.run)
            assert lan.statistics()["announcements_sent"] == 1
            assert not port_is_free(port)  # the positive control: held while on
            on[0] = False
            await until(lambda: port_is_free(port))
            on[0] = True
            await until(lambda: lan.statistics()["announcements_sent"] == 2)
            nursery.cancel_scope.cancel()


def test_interfaces_never_include_loopback() -> None:
    assert lan_interfaces("127.0.0.1") == []
    assert lan_interfaces("::1") == []
    assert lan_interfaces("2001:db8::1") == []  # announcements are IPv4 only
    assert all(not i.addr.startswith("127.") for i in lan_interfaces("0.0.0.0"))
    # A dual-stack wildcard takes IPv4 too: the same interfaces.
    assert lan_interfaces("::") == lan_interfaces("0.0.0.0")


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("off", False), ("0", False), ("False", False), ("no", False), ("on", True), ("", True)],
)
def test_environment_switch(monkeypatch: pytest.MonkeyPatch, value: str, allowed: bool) -> None:
    monkeypatch.setenv(LAN_ENV, value)
    assert lan_allowed() is allowed


async def test_link_path_labels_lan_peers() -> None:
    dht = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
    lan = LanDiscovery(dht, lambda: 0)
    peer = bytes(range(20))
    announce = LanAnnounce(peer, 7000, 7001)
    lan.listener.done(announce, "192.0.2.5", trio.current_time(), proven=True)
    row = {"node_id": peer.hex(), "path": "direct"}
    assert link_path(row, lan) == "lan"
    assert link_path({**row, "path": "relayed"}, lan) == "relayed"
    assert link_path({"node_id": bytes(20).hex()}, lan) == "direct"
    assert link_path(row, None) == "direct"


async def test_link_path_labels_inbound_links_through_a_mapping() -> None:
    dht = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
    lan = LanDiscovery(dht, lambda: 0)
    lan_peer = bytes(range(20))
    lan.listener.done(
        LanAnnounce(lan_peer, 7000, 7001), "192.0.2.5", trio.current_time(), proven=True
    )
    beyond = {"node_id": bytes(20).hex(), "path": "direct", "direction": "inbound"}
    beyond["host"] = "198.51.100.7"
    nets = [ipaddress.IPv4Network("192.0.2.0/28"), ipaddress.IPv4Network("127.0.0.0/8")]
    mapped = lambda host: off_link(host, nets)  # noqa: E731
    cases = [
        (beyond, "mapped"),
        ({**beyond, "direction": "outbound"}, "direct"),  # we dialled it
        ({**beyond, "host": "192.0.2.9"}, "direct"),  # a host on our network
        ({**beyond, "host": "127.0.0.1"}, "direct"),
        ({**beyond, "path": "punched"}, "punched"),
        ({**beyond, "node_id": lan_peer.hex()}, "lan"),
        ({**beyond, "host": "2001:db8::1"}, "direct"),  # the mapping is IPv4
        ({**beyond, "host": "not an address"}, "direct"),
    ]
    for row, path in cases:
        assert link_path(row, lan, mapped) == path, row
    assert link_path(beyond, lan, None) == "direct"  # no mapping held


def test_local_networks_hold_loopback() -> None:
    nets = local_networks()
    assert ipaddress.IPv4Network("127.0.0.0/8") in nets, nets
    assert not off_link("127.0.0.1", nets)
    assert off_link("198.51.100.7", [n for n in nets if n.is_loopback])


async def test_no_interface_holds_no_socket() -> None:
    """A node listening on loopback (no LAN interface) binds nothing; the
    positive control: one with an interface does hold the port."""
    port = free_port()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            dht = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
            await nursery.start(dht.run)
            quiet = LanDiscovery(dht, lambda: 0, "127.0.0.1", port=port)
            await nursery.start(quiet.run)
            assert port_is_free(port)
            assert quiet.statistics()["announcements_sent"] == 0
            loud = LanDiscovery(dht, lambda: 0, interfaces=lambda: LOOPBACK, port=port)
            await nursery.start(loud.run)
            assert not port_is_free(port)
            nursery.cancel_scope.cancel()
