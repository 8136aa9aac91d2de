"""Dial-back (spec/dht.md 4.5): the ``dial_back`` RPC, the responder's
limits, the tally that decides ``reachable``, and real nodes on 127.0.0.0/8
dialling a node's peer-link port back."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from p2psocial import NodeConfig, open_node
from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.node.dht.common import Stores
from p2psocial.node.dht.dialback import DialBackResponder, DialBackResults
from p2psocial.node.replication.transport import LinkClosed, open_secure_link
from p2psocial.protocol.dht.wire import (
    decode_datagram_untrusted,
    parse_dial_back_reply,
    parse_request_args,
)
from p2psocial.protocol.errors import DecodeError, ProtocolError
from p2psocial.protocol.identity import SigningKey

NID = b"i" * 20

# (results as (responder ip, answer), reachable)
CASES: list[tuple[str, list[tuple[str, str]], str]] = [
    ("nothing", [], "unknown"),
    ("one dial is not enough", [("198.51.100.18", "ok")], "unknown"),
    ("two /24s dialled us", [("198.51.100.18", "ok"), ("203.0.113.18", "ok")], "yes"),
    ("two /24s could not", [("198.51.100.18", "refused"), ("203.0.113.18", "timeout")], "no"),
    (
        "one liar saying ok is outvoted",
        [("198.51.100.18", "ok"), ("203.0.113.18", "refused"), ("192.0.2.9", "refused")],
        "no",
    ),
    (
        "one liar saying failed is outvoted",
        [("198.51.100.18", "ok"), ("203.0.113.18", "ok"), ("192.0.2.9", "refused")],
        "yes",
    ),
    (
        "one /24 counts once next to others",
        [("198.51.100.18", "ok"), ("198.51.100.19", "ok"), ("203.0.113.18", "refused")],
        "unknown",
    ),
    (
        "two IPs of one /24 when that is all there is",
        [("198.51.100.18", "ok"), ("198.51.100.19", "ok")],
        "yes",
    ),
]


@pytest.mark.parametrize(
    ("results", "reachable"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_results_table(results: list[tuple[str, str]], reachable: str) -> None:
    tally = DialBackResults()
    for ip, answer in results:
        tally.add(ip, answer, now=5.0)
    got = tally.summary(now=5.0)
    assert got["reachable"] == reachable
    assert got["dialback_ok"] == sum(a == "ok" for _, a in results)


def test_results_are_bounded_and_expire() -> None:
    tally = DialBackResults(max_reports=4, ttl=60.0)
    for i in range(10):
        tally.add(f"198.51.{i}.1", "ok", now=float(i))
    assert len(tally) == 4
    assert tally.summary(now=9.0)["reachable"] == "yes"
    assert tally.summary(now=100.0) == {
        "reachable": "unknown",
        "dialback_ok": 0,
        "dialback_failed": 0,
    }


def test_dial_back_request_args() -> None:
    assert parse_request_args("dial_back", [NID, 4001, b""]) == (NID, 4001, b"")
    for bad in ([NID, 0, b""], [NID, 65536, b""], [NID, True, b""], [NID, 1, "t"], [NID, 1]):
        with pytest.raises(DecodeError) as info:
            parse_request_args("dial_back", bad)
        assert info.value.reason == "bad_args"


REPLIES: list[tuple[Any, tuple[str, Any] | None]] = [
    ({"token": b"t" * 16}, ("token", b"t" * 16)),
    ({"dialled": "ok"}, ("dialled", "ok")),
    ({"dialled": "refused"}, ("dialled", "refused")),
    ({"busy": True}, ("busy", True)),
    ({"token": b""}, None),
    ({"dialled": ""}, None),
    ({"dialled": "x" * 33}, None),
    ({"busy": 1}, None),
    ({"dialled": "ok", "busy": True}, None),
    ({}, None),
    ({"addr": ["203.0.113.9", 1]}, None),
    ([b"ok"], None),
]


@pytest.mark.parametrize(("value", "expected"), REPLIES)
def test_parse_dial_back_reply(value: Any, expected: tuple[str, Any] | None) -> None:
    if expected is None:
        with pytest.raises(DecodeError) as info:
            parse_dial_back_reply(value)
        assert info.value.reason == "bad_reply"
    else:
        assert parse_dial_back_reply(value) == expected


class _Recorder:
    """A responder with a probe that records where it dials and waits to be released."""

    def __init__(self, **limits: Any) -> None:
        self.dials: list[tuple[str, int]] = []
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.release = trio.Event()
        self.stores = Stores(300.0)

        async def probe(host: str, port: int, expected: bytes, key: SigningKey) -> str:
            self.dials.append((host, port))
            await self.release.wait()
            return "ok"

        async def send(data: bytes, addr: tuple[str, int]) -> None:
            self.sent.append((data, addr))

        self.responder = DialBackResponder(
            send, self.stores, SigningKey.generate(), probe=probe, **limits
        )

    def ask(self, addr: tuple[str, int], mid: bytes, token: bytes | None = None) -> Any:
        if token is None:
            token = self.stores.tokens.issue(*addr)
        data = self.responder.request(mid, addr, NID, 4001, token)
        return None if data is None else decode_datagram_untrusted(data).value


async def _with_responder(rec: _Recorder, body: Callable[[], Awaitable[None]]) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(rec.responder.run)
            await body()
            nursery.cancel_scope.cancel()


async def test_no_dial_without_a_token_for_the_source_address() -> None:
    rec = _Recorder()

    async def body() -> None:
        first = rec.ask(("198.51.100.7", 5000), b"a" * 20, token=b"")
        assert set(first) == {"token"}
        # A token issued to another address (a forged source) buys nothing either.
        other = rec.stores.tokens.issue("203.0.113.9", 5000)
        assert set(rec.ask(("198.51.100.7", 5000), b"b" * 20, token=other)) == {"token"}
        assert rec.dials == []
        assert rec.ask(("198.51.100.7", 5000), b"c" * 20, token=first["token"]) is None
        await trio.testing.wait_all_tasks_blocked()
        assert rec.dials == [("198.51.100.7", 4001)]  # the source IP, the port asked
        rec.release.set()

    await _with_responder(rec, body)


async def test_dials_are_bounded_and_retransmissions_deduplicated() -> None:
    rec = _Recorder(max_active=2)

    async def body() -> None:
        assert rec.ask(("198.51.100.1", 5000), b"1" * 20) is None
        assert rec.ask(("198.51.100.1", 5000), b"1" * 20) is None  # a retry: no second dial
        assert rec.ask(("198.51.100.1", 5001), b"2" * 20) == {"busy": True}  # same IP
        assert rec.ask(("203.0.113.1", 5000), b"3" * 20) is None
        assert rec.ask(("192.0.2.1", 5000), b"4" * 20) == {"busy": True}  # two at once
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(rec.dials) == [("198.51.100.1", 4001), ("203.0.113.1", 4001)]
        rec.release.set()
        while len(rec.sent) < 2:  # noqa: ASYNC110
            await trio.sleep(0.01)
        answers = {addr: decode_datagram_untrusted(d).value for d, addr in rec.sent}
        assert answers == {
            ("198.51.100.1", 5000): {"dialled": "ok"},
            ("203.0.113.1", 5000): {"dialled": "ok"},
        }
        # A retry after the answer gets the same answer again, with no new dial.
        assert rec.ask(("198.51.100.1", 5000), b"1" * 20) == {"dialled": "ok"}
        # Per IP: a burst of 2, then one per 30 s.
        assert rec.ask(("198.51.100.1", 5000), b"5" * 20) is None
        assert rec.ask(("198.51.100.1", 5000), b"5" * 20) is None
        await trio.testing.wait_all_tasks_blocked()
        while len(rec.sent) < 3:  # noqa: ASYNC110
            await trio.sleep(0.01)
        assert rec.ask(("198.51.100.1", 5000), b"6" * 20) == {"busy": True}
        assert len(rec.dials) == 3

    await _with_responder(rec, body)


async def test_a_dial_that_hangs_is_answered_timeout() -> None:
    stores = Stores(300.0)
    sent: list[bytes] = []

    async def probe(host: str, port: int, expected: bytes, key: SigningKey) -> str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(data: bytes, addr: tuple[str, int]) -> None:
        sent.append(data)

    responder = DialBackResponder(
        send, stores, SigningKey.generate(), probe=probe, dial_timeout=0.2
    )
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(responder.run)
            addr = ("198.51.100.1", 5000)
            assert responder.request(b"m" * 20, addr, NID, 1, stores.tokens.issue(*addr)) is None
            while not sent:  # noqa: ASYNC110
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert decode_datagram_untrusted(sent[0]).value == {"dialled": "timeout"}
    assert responder.statistics()["dial_back_timeout"] == 1


# -- real nodes on loopback ------------------------------------------------------------


async def _link_listener(
    key: SigningKey, host: str, accepted: list[str], *, task_status: Any
) -> None:
    """A peer-link responder (the link pool's handshake code) proving ``key``."""

    async def handle(stream: trio.SocketStream) -> None:
        accepted.append("conn")
        try:
            with trio.move_on_after(5):
                await open_secure_link(stream, key, 1, initiator=False)
        except (ProtocolError, LinkClosed, trio.BrokenResourceError):
            pass  # the dial-back ends after message 2, as it should

    listeners = await trio.open_tcp_listeners(0, host=host)
    async with trio.open_nursery() as nursery:
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handle, listeners, handler_nursery=nursery)


def _me_and_three_peers(key: SigningKey, cfg: DHTConfig) -> tuple[DHTNode, list[DHTNode]]:
    """A node on 127.13.0.1 with ``key``, and three peers in three /24s."""
    me = DHTNode(key, "127.13.0.1", 0, config=cfg)
    peers = [DHTNode(SigningKey.generate(), f"127.{i}.0.1", 0, config=cfg) for i in (10, 11, 12)]
    return me, peers


async def _dialled(
    port_for: Callable[[trio.Nursery, SigningKey, list[str]], Awaitable[int]],
) -> Any:
    """A node on 127.13.0.1 asks three peers in three /24s to dial the port
    ``port_for`` sets up; returns (its reachability, connections accepted,
    the peers' statistics)."""
    key = SigningKey.generate()
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=4, observe_addresses=False)
    me, peers = _me_and_three_peers(key, cfg)
    accepted: list[str] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in (me, *peers):
                await nursery.start(n.run)
            await me.bootstrap([p.address for p in peers])
            while sum(me.is_proven(c) for c in me.table.contacts()) < 3:  # noqa: ASYNC110
                await trio.sleep(0.02)
            port = await port_for(nursery, key, accepted)
            me.enable_dial_back(port)
            assert await me.dial_back_round() == 3
            got = me.reachability()
            stats = [p.statistics() for p in peers]
            nursery.cancel_scope.cancel()
    return got, accepted, stats


async def test_peers_dial_a_listening_node_back() -> None:
    async def listening(nursery: trio.Nursery, key: SigningKey, accepted: list[str]) -> int:
        port: int = await nursery.start(_link_listener, key, "127.13.0.1", accepted)
        return port

    got, accepted, stats = await _dialled(listening)
    assert got["reachable"] == "yes" and got["dialback_ok"] == 3, got
    assert len(accepted) == 3
    assert [s.get("dial_back_ok") for s in stats] == [1, 1, 1]


async def test_a_closed_port_is_not_reachable() -> None:
    async def closed(nursery: trio.Nursery, key: SigningKey, accepted: list[str]) -> int:
        with trio.socket.socket() as s:  # a port that was free a moment ago
            await s.bind(("127.13.0.1", 0))
            port: int = s.getsockname()[1]
        return port

    got, _, stats = await _dialled(closed)
    assert got["reachable"] == "no" and got["dialback_failed"] == 3, got
    assert [s.get("dial_back_refused") for s in stats] == [1, 1, 1]


async def test_another_nodes_listener_is_not_ours() -> None:
    async def someone_else(nursery: trio.Nursery, key: SigningKey, accepted: list[str]) -> int:
        other = SigningKey.generate()
        port: int = await nursery.start(_link_listener, other, "127.13.0.1", accepted)
        return port

    got, accepted, stats = await _dialled(someone_else)
    assert got["reachable"] == "no", got
    assert len(accepted) == 3
    assert [s.get("dial_back_wrong_node") for s in stats] == [1, 1, 1]


async def _silent_listener(host: str, accepted: list[str], *, task_status: Any) -> None:
    """Accepts connections and never says a byte (a firewall that swallows them
    looks the same to the dialler once the connection is up)."""

    async def handle(stream: trio.SocketStream) -> None:
        accepted.append("conn")
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host=host)
    async with trio.open_nursery() as nursery:
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handle, listeners, handler_nursery=nursery)


async def test_a_dial_that_times_out_is_still_reported() -> None:
    """The answer comes after the responder's 3 s bound, later than the
    requester's retransmissions run out: the requester waits for it anyway."""

    async def silent(nursery: trio.Nursery, key: SigningKey, accepted: list[str]) -> int:
        port: int = await nursery.start(_silent_listener, "127.13.0.1", accepted)
        return port

    got, accepted, stats = await _dialled(silent)
    assert got["reachable"] == "no" and got["dialback_failed"] == 3, got
    assert len(accepted) == 3
    assert [s.get("dial_back_timeout") for s in stats] == [1, 1, 1]


async def test_whole_nodes_on_three_networks_find_each_other_dialable(tmp_path: Path) -> None:
    """open_node wires it up: once the link listener is up, each node asks
    the others to dial it back, and its status says ``reachable: yes``."""
    hosts = [f"127.{i}.0.1" for i in (30, 31, 32)]
    with trio.fail_after(60):
        async with contextlib.AsyncExitStack() as stack:
            nodes = []
            for i, host in enumerate(hosts):
                boot = [f"{hosts[0]}:{nodes[0].dht_addr[1]}"] if nodes else []
                cfg = NodeConfig(
                    data_dir=tmp_path / str(i), listen=host, serve_api=False, bootstrap=boot
                )
                nodes.append(
                    await stack.enter_async_context(
                        open_node(
                            cfg, identity_key=SigningKey.generate(), node_key=SigningKey.generate()
                        )
                    )
                )
            # Each joins through the others, as lookups would make them meet
            # (contacts that only sent requests are proven lazily).
            for n in nodes:
                assert n.dht is not None
                await n.dht.bootstrap([m.dht_addr for m in nodes if m is not n])
            while [(await n.status())["reachable"] for n in nodes] != ["yes"] * 3:  # noqa: ASYNC110
                await trio.sleep(0.1)
            st = await nodes[2].status()
            assert st["reachable"] == "yes" and st["reachability"] in ("public", "unknown")


async def test_a_new_port_mapping_makes_dial_back_learn_its_verdict_again() -> None:
    """A verdict stands for 30 minutes; a mapping that appears (spec/portmap.md)
    must not wait that long: the node asks again at once, for the mapped port."""
    key = SigningKey.generate()
    me, peers = _me_and_three_peers(key, DHTConfig(rpc_timeout=0.3, rpc_attempts=4))
    accepted: list[str] = []
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            for n in (me, *peers):
                await nursery.start(n.run)
            await me.bootstrap([p.address for p in peers])
            with trio.socket.socket() as s:  # a port that was free a moment ago
                await s.bind(("127.13.0.1", 0))
                closed: int = s.getsockname()[1]
            me.enable_dial_back(closed)
            while me.reachability()["reachable"] != "no":  # noqa: ASYNC110
                await trio.sleep(0.05)
            port = await nursery.start(_link_listener, key, "127.13.0.1", accepted)
            assert me.set_mapped_port(closed, port) is True
            while me.reachability()["reachable"] != "yes":  # noqa: ASYNC110
                await trio.sleep(0.05)
            assert me.set_mapped_port(closed, None) is True
            got = me.reachability()
            stats = me.statistics()
            nursery.cancel_scope.cancel()
    assert got["reachable"] == "unknown" and got["dialback_ok"] == 0, got  # learning again
    assert stats["dial_back_rechecks"] == 2 and len(accepted) >= 2, stats
