"""Observed addresses (spec/dht.md): the ``observe`` RPC, the tally that
decides what to believe, and real nodes on 127.0.0.0/8 learning their address."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.node.dht.observed import Observations, reporter_group
from p2psocial.protocol.dht.wire import (
    decode_datagram_untrusted,
    encode_request,
    encode_response,
    parse_observe_reply,
    parse_request_args,
)
from p2psocial.protocol.errors import DecodeError
from p2psocial.protocol.identity import SigningKey

NAT = ("203.0.113.66", 40000)
HOME = ("192.0.2.18", 40000)


def tally(*reports: tuple[str, tuple[str, int], tuple[str, int]]) -> dict[str, Any]:
    obs = Observations()
    for reporter, observed, local in reports:
        obs.add(reporter, observed, local, now=10.0)
    return obs.summary(now=10.0)


# (reports, reachability, mapping, believed addrs)
CASES: list[tuple[str, list[tuple[str, tuple[str, int], tuple[str, int]]], str, str, list[str]]] = [
    ("nothing", [], "unknown", "unknown", []),
    ("one peer is not enough", [("198.51.100.18", NAT, HOME)], "unknown", "unknown", []),
    (
        "two /24s agree: cone NAT",
        [("198.51.100.18", NAT, HOME), ("203.0.113.18", NAT, HOME)],
        "behind_nat",
        "consistent",
        ["203.0.113.66:40000"],
    ),
    (
        "two peers in one /24 only count as one when others exist",
        [
            ("198.51.100.18", NAT, HOME),
            ("198.51.100.19", NAT, HOME),
            ("203.0.113.18", ("203.0.113.99", 1), HOME),
        ],
        "unknown",
        "unknown",
        [],
    ),
    (
        "two peers in one /24 when that is all there is",
        [("198.51.100.18", NAT, HOME), ("198.51.100.19", NAT, HOME)],
        "behind_nat",
        "consistent",
        ["203.0.113.66:40000"],
    ),
    (
        "a port per peer: symmetric NAT",
        [
            ("198.51.100.18", ("203.0.113.66", 1111), HOME),
            ("203.0.113.18", ("203.0.113.66", 2222), HOME),
        ],
        "behind_nat",
        "varying",
        [],
    ),
    (
        "peers see what we send from: public",
        [("198.51.100.18", NAT, NAT), ("203.0.113.18", NAT, NAT)],
        "public",
        "consistent",
        ["203.0.113.66:40000"],
    ),
    (
        "a liar is outvoted",
        [
            ("198.51.100.18", NAT, NAT),
            ("203.0.113.18", NAT, NAT),
            ("192.0.2.200", ("192.0.2.1", 7), NAT),
        ],
        "public",
        "consistent",
        ["203.0.113.66:40000"],
    ),
]


@pytest.mark.parametrize(
    ("reports", "reach", "mapping", "addrs"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_observations_table(
    reports: list[tuple[str, tuple[str, int], tuple[str, int]]],
    reach: str,
    mapping: str,
    addrs: list[str],
) -> None:
    got = tally(*reports)
    assert (got["reachability"], got["nat_mapping"], got["observed_addrs"]) == (
        reach,
        mapping,
        addrs,
    )


def test_observations_are_bounded_and_expire() -> None:
    obs = Observations(max_reports=4, ttl=60.0)
    for i in range(10):
        obs.add(f"198.51.{i}.1", NAT, HOME, now=float(i))
    assert len(obs) == 4
    for i in range(10):  # one /24 keeps 4 reporters at most
        obs.add(f"203.0.113.{i}", NAT, HOME, now=9.0)
    assert len(obs) == 4
    assert obs.summary(now=9.0)["observers"] == 4
    assert obs.summary(now=100.0)["observers"] == 0
    assert len(obs) == 0


@settings(max_examples=200, derandomize=True)
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 3), st.integers(1, 65535), st.booleans()),
        max_size=40,
    )
)
def test_one_network_alone_never_makes_an_address_believed(
    reports: list[tuple[int, int, int, bool]],
) -> None:
    """However many reports one /24 sends, next to an honest peer elsewhere
    it cannot get a second address believed (nor crowd the honest one out,
    which would leave it alone and so believed with two of its own)."""
    obs = Observations()
    obs.add("203.0.113.18", NAT, HOME, now=1.0)
    for last, ip_pick, port, _ in reports:
        obs.add(f"198.51.100.{last}", (f"192.0.2.{ip_pick}", port), HOME, now=1.0)
    assert obs.summary(now=1.0)["observed_addrs"] in ([], ["203.0.113.66:40000"])


def test_reporter_groups() -> None:
    assert reporter_group("198.51.100.7") == "198.51.100.0/24"
    assert reporter_group("2001:db8:1:2::5") == "2001:db8:1::/48"


REPLIES: list[tuple[Any, tuple[str, int] | None]] = [
    ({"addr": ["203.0.113.9", 4001]}, ("203.0.113.9", 4001)),
    ({"addr": ["2001:db8::1", 65535]}, ("2001:db8::1", 65535)),
    ({"addr": ["example.org", 4001]}, None),
    ({"addr": ["203.0.113.9", 0]}, None),
    ({"addr": ["203.0.113.9", 65536]}, None),
    ({"addr": ["203.0.113.9"]}, None),
    ({"addr": ["::ffff:203.0.113.9", 4001]}, None),
    ({"addr": ["0.0.0.0", 4001]}, None),
    ({"addr": ["203.0.113.9", True]}, None),
    ({"addr": ["203.0.113.9", 1], "x": 1}, None),
    ([b"\x00" * 20], None),
    (None, None),
]


@pytest.mark.parametrize(("value", "expected"), REPLIES)
def test_parse_observe_reply(value: Any, expected: tuple[str, int] | None) -> None:
    if expected is None:
        with pytest.raises(DecodeError) as info:
            parse_observe_reply(value)
        assert info.value.reason == "bad_reply"
    else:
        assert parse_observe_reply(value) == expected


def test_observe_request_args() -> None:
    assert parse_request_args("observe", [b"i" * 20]) == (b"i" * 20,)
    with pytest.raises(DecodeError) as info:
        parse_request_args("observe", [b"i" * 20, 1])
    assert info.value.reason == "bad_args"


async def test_a_node_answers_observe_with_the_source_address() -> None:
    node = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addr = await nursery.start(node.run)
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with sock:
                await sock.bind(("127.0.0.9", 0))
                await sock.sendto(encode_request(b"m" * 20, "observe", [b"i" * 20]), addr)
                data, _ = await sock.recvfrom(2048)
                reply = decode_datagram_untrusted(data)
                assert reply.msg_id == b"m" * 20
                assert parse_observe_reply(reply.value) == sock.getsockname()
            nursery.cancel_scope.cancel()
    assert encode_response(b"m" * 20, {"addr": ["127.0.0.9", 1]})  # the shape fits


async def test_nodes_on_two_networks_tell_a_node_it_is_public() -> None:
    """A node asks peers on 127.0.1.x and 127.0.2.x: they see the very
    address it sends from, so it is public with a consistent mapping."""
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=3)
    me = DHTNode(SigningKey.generate(), "127.0.0.1", 0, config=cfg)
    peers = [DHTNode(SigningKey.generate(), f"127.0.{i}.1", 0, config=cfg) for i in (1, 2)]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for n in (me, *peers):
                await nursery.start(n.run)
            assert me.reachability()["reachability"] == "unknown"
            await me.bootstrap([p.address for p in peers])
            while sum(me.is_proven(c) for c in me.table.contacts()) < 2:  # noqa: ASYNC110
                await trio.sleep(0.02)
            assert await me.observe_round() == 2
            got = me.reachability()
            assert got == {
                "reachability": "public",
                "nat_mapping": "consistent",
                "observed_addrs": [f"127.0.0.1:{me.address[1]}"],
                "observed_ips": ["127.0.0.1"],
                "observers": 2,
                # Nobody was asked to dial back (no peer-link port given).
                "reachable": "unknown",
                "dialback_ok": 0,
                "dialback_failed": 0,
            }
            assert me.statistics()["observe_answers"] >= 2
            nursery.cancel_scope.cancel()


def test_status_prints_reachability() -> None:
    from p2psocial.cli.output import format_status

    shown = format_status(
        {
            "reachability": "behind_nat",
            "nat_mapping": "consistent",
            "observed_addrs": ["203.0.113.78:4001"],
        }
    )
    assert "reach     behind_nat (seen as 203.0.113.78:4001; mapping consistent)" in shown
    assert "reach" not in format_status({"identity": "x"})  # an older daemon: no line
    assert "dialable" not in shown
    assert "dialable  no (other nodes cannot open links" in format_status({"reachable": "no"})
