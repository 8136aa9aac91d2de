"""Peer scores (node/scores.py): a peer whose links end by its
own fault is graylisted for a while, by node id and by public address."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import trio

from p2psocial.node.replication import LinkClosed
from p2psocial.node.replication.transport import open_secure_link
from p2psocial.node.scores import PeerScores, ScoreLimits, fault_of
from p2psocial.protocol.identity import SigningKey

from .test_replication_helpers import TNode, open_testnet
from .test_replication_hostile import _drain, send_invalid_entries

A, B = b"\x01" * 20, b"\x02" * 20
PUBLIC, OTHER_PUBLIC, LAN = "198.51.100.7", "203.0.113.9", "192.168.1.5"


@pytest.mark.parametrize(
    ("reason", "fault"),
    [
        ("invalid_entry_bad_signature", "severe"),
        ("invalid_payload_size", "severe"),
        ("mislabeled_entry", "severe"),
        ("bad_fork_proof_malformed", "severe"),
        ("protocol_want_flood", "severe"),
        ("outbox_overflow", "mild"),
        ("idle_timeout", "mild"),
        ("bye", None),
        ("closed", None),
        ("evicted", None),
        ("duplicate_link", None),
        ("local_disk_full", None),
        ("internal_error", None),
    ],
)
def test_fault_of_a_link_end(reason: str, fault: str | None) -> None:
    assert fault_of(reason) == fault


def test_one_severe_fault_graylists_and_the_span_doubles_with_each_time() -> None:
    s = PeerScores(ScoreLimits(graylist=60.0, graylist_max=200.0))
    assert s.penalize(A, PUBLIC, "protocol_malformed", 0.0) == 60.0
    assert s.graylisted(A, "127.0.0.1", 30.0) and s.graylisted(None, PUBLIC, 30.0)
    assert not s.graylisted(A, PUBLIC, 60.0), "the graylisting ends"
    assert s.penalize(A, PUBLIC, "protocol_malformed", 100.0) == 220.0
    assert s.penalize(A, PUBLIC, "protocol_malformed", 300.0) == 500.0, "capped at graylist_max"
    assert s.statistics(301.0)["graylisted_total"] == 3


def test_mild_faults_add_up_and_decay() -> None:
    s = PeerScores(ScoreLimits(half_life=10.0))
    for _ in range(4):
        assert s.penalize(A, LAN, "idle_timeout", 5.0) == 0.0  # 2 points each
    assert s.penalize(A, LAN, "idle_timeout", 5.0) > 0, "the fifth reaches 10"
    s2 = PeerScores(ScoreLimits(half_life=1.0))
    for t in range(10):
        assert s2.penalize(A, LAN, "idle_timeout", 10.0 * t) == 0.0, "decayed between faults"


def test_addresses_count_only_when_public() -> None:
    s = PeerScores()
    s.penalize(A, LAN, "protocol_malformed", 0.0)
    s.penalize(B, PUBLIC, "protocol_malformed", 0.0)
    assert not s.graylisted(b"\x03" * 20, LAN, 1.0), "a LAN address is the owner's own"
    assert s.graylisted(b"\x03" * 20, PUBLIC, 1.0), "a fresh key from the same public address"
    assert not s.graylisted(b"\x03" * 20, OTHER_PUBLIC, 1.0)
    assert not s.graylisted(b"\x03" * 20, "127.0.0.1", 1.0)


def test_faults_that_are_not_the_peers_cost_nothing() -> None:
    s = PeerScores()
    for t in range(50):
        assert s.penalize(A, PUBLIC, "evicted", float(t)) == 0.0
    assert not s.graylisted(A, PUBLIC, 50.0)
    assert s.statistics(50.0)["worst_scores"] == {}


def test_memory_is_bounded() -> None:
    s = PeerScores(ScoreLimits(max_peers=16))
    for i in range(100):
        s.penalize(i.to_bytes(20, "big"), f"198.51.100.{i}", "idle_timeout", 0.0)
    assert len(s._scores) == 16


async def _attack(net: Any, victim: TNode, key: SigningKey, followed: bytes) -> None:
    sock = await trio.open_tcp_stream(*victim.addr)
    link, _ = await open_secure_link(sock, key, 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain, link)
        with contextlib.suppress(LinkClosed):
            await send_invalid_entries(link, followed)
        await net.wait_for(lambda: _dropped_invalid(victim))
        nursery.cancel_scope.cancel()
    await link.aclose()


async def _refused(node: TNode, reason: str) -> bool:
    return node.rep.statistics()["peers_refused"].get(reason, 0) >= 1


async def test_a_peer_that_sent_invalid_entries_is_refused_until_its_graylisting_ends(
    tmp_path: Path,
) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2, scores=ScoreLimits(graylist=1.0)) as net:
            victim, honest = net.nodes
            followed = SigningKey.generate().public_key
            await victim.follow(followed, honest)
            await honest.connect(victim)
            attacker = SigningKey.generate()
            await _attack(net, victim, attacker, followed)
            # It dials straight back with the same key: refused after the hello.
            sock = await trio.open_tcp_stream(*victim.addr)
            with contextlib.suppress(LinkClosed):
                link, _ = await open_secure_link(sock, attacker, 0)
                with pytest.raises(LinkClosed):
                    while True:
                        await link.receive_frame()
            await sock.aclose()
            await net.wait_for(lambda: _refused(victim, "graylisted"))
            scores = victim.rep.statistics()["peer_scores"]
            assert scores["graylisted_total"] == 1
            # An honest peer on the same host (loopback is not scored by address).
            await honest.post("still here")
            await net.wait_for(lambda: _seq(victim, honest, 1))
            # The graylisting ends: the same key gets a link again.
            await trio.sleep(1.1)
            sock = await trio.open_tcp_stream(*victim.addr)
            link, _ = await open_secure_link(sock, attacker, 0)
            assert await link.receive_frame()  # the victim's clock: a link
            await link.aclose()


async def _dropped_invalid(node: TNode) -> bool:
    return any(k.startswith("invalid_entry_") for k in node.rep.statistics()["links_dropped"])


async def _seq(node: TNode, author: TNode, seq: int) -> bool:
    return await node.seq_of(author) == seq
