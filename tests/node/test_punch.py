"""Relayed links made direct between real nodes on 127.0.0.1 (spec/sync.md §12).

n0 relays, n1 holds a reservation there, n2 dials n1 through it. Their
candidate addresses are set by hand (there is no NAT on loopback, and the
test network runs no observation): a punch with neither side dialable is a
simultaneous connect from both link ports; with the dialler dialable, the
home connects to it alone (reversal).
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from p2psocial.node.replication.punch import Puncher
from p2psocial.node.replication.transport import open_secure_link
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.punch import RESPONDER, Dial, PunchSession
from p2psocial.protocol.wire import Caps, Clock, Message, PunchGo, PunchOffer, encode_message

from .test_relay import _relay_of, _reserve
from .test_replication_helpers import TestNet, TNode, open_testnet
from .test_replication_hostile import _rival_peer

A = (("203.0.113.70", 4001),)


def _offer(node: TNode, dialable: bool) -> None:
    puncher = node.rep.pool.puncher
    assert puncher is not None
    port = node.rep.pool.port
    puncher.own = lambda: ((("127.0.0.1", port),), dialable)


async def _path_becomes(net: TestNet, node: TNode, peer: TNode, path: str) -> None:
    async def done() -> bool:
        views = [p for p in node.rep.peers() if p["node_id"] == peer.rep.node_id.hex()]
        return [v["path"] for v in views] == [path]

    try:
        with trio.fail_after(15):
            await net.wait_for(done, poll=0.05)
    except trio.TooSlowError:
        stats = node.rep.pool.statistics()
        raise AssertionError(f"no {path} link: {node.rep.peers()} {stats.get('punch')}") from None


@pytest.mark.parametrize("dialler_dialable, path", [(False, "punched"), (True, "reversed")])
async def test_a_relayed_link_becomes_direct_and_posts_flow_over_it(
    tmp_path: Path, dialler_dialable: bool, path: str
) -> None:
    with trio.fail_after(40):
        async with open_testnet(tmp_path, 3) as net:
            relay, home, dialler = net.nodes
            _offer(home, False)
            _offer(dialler, dialler_dialable)
            await _reserve(net, home, relay)
            await home.post("before")
            assert await dialler.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)
            await dialler.follow(home)
            await _path_becomes(net, dialler, home, path)
            await _path_becomes(net, home, dialler, path)
            await home.post("after")

            async def delivered() -> bool:
                return await dialler.seq_of(home) == 2

            await net.wait_for(delivered)
            # The relayed link ended quietly on both sides; the reservation stays.
            # (The side whose relayed end closes second may see it end as eof.)
            dropped = [n.rep.pool.statistics()["links_dropped"] for n in (home, dialler)]
            assert sum(d.get("path_upgraded", 0) for d in dropped) >= 1, dropped
            # The initiator counts the success (the responder's go may come after it).
            punch = home.rep.pool.statistics()["punch"]
            assert punch.get(f"punch_ok_{path}", 0) >= 1, punch
            assert home.rep.relays() != []
            assert relay.rep.peers() == []


async def test_a_punch_with_no_address_leaves_the_link_relayed(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 3) as net:
            relay, home, dialler = net.nodes
            home_puncher, dialler_puncher = home.rep.pool.puncher, dialler.rep.pool.puncher
            assert home_puncher is not None and dialler_puncher is not None
            home_puncher.own = lambda: ((), False)
            dialler_puncher.own = lambda: ((), False)
            await _reserve(net, home, relay)
            await dialler.follow(home)
            assert await dialler.rep.pool.dial_relayed(_relay_of(relay), home.rep.node_id)

            async def failed() -> bool:
                return bool(home_puncher.statistics().get("punch_failed_no_addresses"))

            await net.wait_for(failed, poll=0.05)
            [view] = dialler.rep.peers()
            assert view["path"] == "relayed"
            await home.post("still relayed")

            async def delivered() -> bool:
                return await dialler.seq_of(home) == 1

            await net.wait_for(delivered)


@pytest.mark.parametrize(
    "messages, reason",
    [
        ([Clock(()), Caps(("punch",))], "protocol_bad_state"),  # caps only comes first
        ([Caps(("punch",)), Caps(("punch",))], "protocol_bad_state"),
        ([Caps(()), PunchOffer(A, False)], "protocol_unknown_message"),  # capability not listed
        ([PunchGo()], "protocol_unknown_message"),
        ([Caps(("punch",)), PunchOffer(A, False)], "protocol_bad_state"),  # not a relayed link
    ],
)
async def test_extension_messages_out_of_place_end_the_link(
    tmp_path: Path, messages: list[Message], reason: str
) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1) as net:
            [victim] = net.nodes
            sock = await trio.open_tcp_stream(*victim.addr)
            try:
                link, _ = await open_secure_link(sock, SigningKey.generate(), 0)
                for msg in messages:
                    await link.send_frame(encode_message(msg))

                async def dropped() -> bool:
                    return victim.rep.pool.statistics()["links_dropped"].get(reason, 0) == 1

                await net.wait_for(dropped, poll=0.05)
            finally:
                await sock.aclose()


async def test_caps_first_keeps_the_link_open(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1) as net:
            [victim] = net.nodes
            assert await _rival_peer(victim, [Caps(("punch",))]) == "open"


class _SprayPool:
    """The pool side of a spray, for the hard side's own bounds (the testbed's
    tests/nat/test_nat_punch.py runs sprays through real NATs and pools)."""

    host = "127.0.0.1"
    port = 0

    def __init__(self) -> None:
        self.links: dict[bytes, object] = {}
        self.handshaking: dict[str, int] = {}
        self.served: list[tuple[str, bytes, bool, str]] = []

    def serve_punched(
        self, stream: trio.SocketStream, host: str, node_id: bytes, initiator: bool, path: str
    ) -> None:
        self.served.append((host, node_id, initiator, path))
        stream.socket.close()


async def test_one_spray_at_a_time_and_the_first_connect_wins() -> None:
    """spec/sync.md §12.9: a hard side's connects all go to the peer's address,
    the first that completes is served and the rest closed; a second spray
    while one runs fails at once (spray_busy)."""
    pool = _SprayPool()
    puncher = Puncher(pool, lambda: ((), False), mapping=lambda: "varying")  # type: ignore[arg-type]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    listener.setblocking(False)
    target = ("127.0.0.1", listener.getsockname()[1])
    link = SimpleNamespace(peer=SimpleNamespace(node_id=b"\x01" * 32))
    now = trio.current_time()
    plan = Dial((target,), now, now + 0.5, True, "punched", spray="hard", count=64)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(puncher._execute, link, PunchSession(RESPONDER, now), plan)
            await trio.sleep(0.1)  # the first spray runs until its window ends
            await puncher._execute(link, PunchSession(RESPONDER, now), plan)  # type: ignore[arg-type]
    stats = puncher.statistics()
    assert stats["punch_failed_spray_busy"] == 1
    assert stats["punch_spray_hard"] == 1
    assert pool.served == [("127.0.0.1", b"\x01" * 32, True, "punched")]
    accepted = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            conn, _ = listener.accept()
            conn.close()
            accepted += 1
    assert 1 <= accepted <= 64  # never more than the plan's count
    listener.close()


async def test_a_spray_responder_hands_every_completed_connect_to_the_pool_up_to_four() -> None:
    """spec/sync.md §12.9: connects that complete together may be seen in
    another order by the two sides; the Noise responder serves each (up to
    4) and lets the initiator's handshake pick the link."""
    pool = _SprayPool()
    puncher = Puncher(pool, lambda: ((), False), mapping=lambda: "varying")  # type: ignore[arg-type]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    target = ("127.0.0.1", listener.getsockname()[1])
    link = SimpleNamespace(peer=SimpleNamespace(node_id=b"\x02" * 32))
    now = trio.current_time()
    plan = Dial((target,), now, now + 2.0, False, "punched", spray="hard", count=16)
    with trio.fail_after(10):
        await puncher._execute(link, PunchSession(RESPONDER, now), plan)  # type: ignore[arg-type]
    listener.close()
    assert pool.served == [("127.0.0.1", b"\x02" * 32, False, "punched")] * 4
    stats = puncher.statistics()
    assert stats["punch_connects_ok"] == 4 and stats["punch_connects_surplus"] >= 1, stats


def test_a_spray_initiator_takes_one_connection_from_its_listener() -> None:
    """The easy side's listener may take a late SYN of the hard side's while
    its probes also complete: as initiator it uses the first only."""
    puncher = Puncher(_SprayPool(), lambda: ((), False), mapping=lambda: "consistent")  # type: ignore[arg-type]
    puncher._host_claims["203.0.113.9"] = (b"\x03" * 32, "punched")
    assert puncher.claim(("203.0.113.9", 40001)) == (b"\x03" * 32, "punched")
    assert puncher.claim(("203.0.113.9", 40002)) is None
