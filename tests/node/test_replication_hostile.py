"""A hostile peer: garbage, oversize frames, invalid entries, endless wants.

The attacker speaks the real encrypted link and hello (it has a valid node
key) and then misbehaves inside the encrypted channel. Each case must end with the link dropped and
counted, nothing stored from the attacker, and the victim still serving an
honest peer.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from p2psocial.node.replication import LinkClosed
from p2psocial.node.replication.transport import NoiseFramedStream, open_secure_link
from p2psocial.protocol.encoding import encode
from p2psocial.protocol.entries import ENTRY_TAG, create_entry, decode_entry_untrusted
from p2psocial.protocol.feeds import decode_fork_proof_untrusted
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.wire import (
    Bye,
    Clock,
    Entries,
    Message,
    Push,
    Want,
    decode_message_untrusted,
    encode_message,
)

from .test_replication_helpers import TNode, load_feed, make_feed, now_ms, open_testnet

Attack = Callable[[NoiseFramedStream, bytes], Awaitable[None]]


async def send_garbage(link: NoiseFramedStream, _author: bytes) -> None:
    await link.send_frame(b"\xc1\x00garbage")


async def send_oversize(link: NoiseFramedStream, _author: bytes) -> None:
    # Only the length prefix: the victim must refuse it before any body.
    await link.stream.send_all(link.link.seal(struct.pack(">I", 64 * 1024 * 1024)))


async def send_non_canonical(link: NoiseFramedStream, _author: bytes) -> None:
    await link.send_frame(b"\x82\xa1t\xa3bye\xa6reason\xa0")


async def send_unknown_message(link: NoiseFramedStream, _author: bytes) -> None:
    await link.send_frame(encode({"t": "gimme"}))


async def send_invalid_entries(link: NoiseFramedStream, author: bytes) -> None:
    # Claim to hold the feed, then send a batch whose signatures are wrong.
    await link.send_frame(encode_message(Clock(((author, 5, None),))))
    forger = SigningKey.generate()
    items = make_feed(forger, 5)
    # Re-label the forger's entries as the victim's followed author: the
    # envelope author no longer matches the signature key.
    bad = [
        (raw[:64] + raw[64:].replace(forger.public_key, author), payload) for raw, payload in items
    ]
    await link.send_frame(encode_message(Entries(author, 1, 5, tuple(bad))))


async def send_tampered_push(link: NoiseFramedStream, author: bytes) -> None:
    await link.send_frame(encode_message(Clock(((author, 0, None),))))
    raw, payload = make_feed(SigningKey.generate(), 1)[0]
    await link.send_frame(encode_message(Push(author, 1, (raw[:64] + raw[64:], payload + b"x"))))


async def send_unsolicited(link: NoiseFramedStream, _author: bytes) -> None:
    stranger = SigningKey.generate()
    items = make_feed(stranger, 3)
    await link.send_frame(encode_message(Entries(stranger.public_key, 1, 3, tuple(items))))


async def send_endless_want(link: NoiseFramedStream, author: bytes) -> None:
    for _ in range(10_000):
        await link.send_frame(encode_message(Want(author, 1)))


async def send_clock_flood(link: NoiseFramedStream, _author: bytes) -> None:
    for i in range(100):
        feeds = tuple(
            (i.to_bytes(2, "big") + j.to_bytes(2, "big") + bytes(28), 0, None) for j in range(4096)
        )
        await link.send_frame(encode_message(Clock(feeds)))


ATTACKS: dict[str, tuple[Attack, str]] = {
    "garbage": (send_garbage, "protocol_malformed"),
    "oversize": (send_oversize, "protocol_frame_too_large"),
    "non_canonical": (send_non_canonical, "protocol_non_canonical"),
    "unknown_message": (send_unknown_message, "protocol_unknown_message"),
    "invalid_entries": (send_invalid_entries, "invalid_entry_"),
    # Another author's entry (with tampered bytes) pushed as the followed
    # feed: refused before anything of it is stored.
    "tampered_push": (send_tampered_push, "mislabeled_entry"),
    "unsolicited": (send_unsolicited, "protocol_unsolicited"),
    "endless_want": (send_endless_want, "protocol_want_flood"),
    "clock_flood": (send_clock_flood, "protocol_too_many_feeds"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_hostile_peer_is_dropped_and_node_keeps_serving(tmp_path: Path, attack: str) -> None:
    fn, reason = ATTACKS[attack]
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            victim, honest = net.nodes
            followed = SigningKey.generate().public_key
            await victim.follow(followed, honest)
            await honest.connect(victim)

            attacker_key = SigningKey.generate()
            sock = await trio.open_tcp_stream(*victim.addr)
            link, _ = await open_secure_link(sock, attacker_key, 0)
            # The victim's clock arrives first; drain it in the background.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, link)
                with contextlib.suppress(LinkClosed):  # dropped mid-attack: fine
                    await fn(link, followed)
                await net.wait_for(lambda: _dropped(victim, reason))
                nursery.cancel_scope.cancel()
            await link.aclose()

            stats = victim.rep.statistics()
            assert sum(v for k, v in stats["links_dropped"].items() if k.startswith(reason)) == 1
            assert "internal_error" not in stats["links_dropped"]
            assert await victim.seq_of(followed) == 0
            assert (await victim.store.heads()).keys() <= {
                victim.identity,
                honest.identity,
                followed,
            }
            # Still serving: an honest post arrives after the attack.
            await honest.post("still here")
            await net.wait_for(lambda: _seq(victim, honest, 1))


async def _drain(link: NoiseFramedStream) -> None:
    try:
        while True:
            await link.receive_frame()
    except (LinkClosed, Exception):
        return


async def _dropped(node: TNode, reason: str) -> bool:
    return any(k.startswith(reason) for k in node.rep.statistics()["links_dropped"])


async def _seq(node: TNode, author: TNode, seq: int) -> bool:
    return await node.seq_of(author) == seq


async def test_handshake_with_a_bad_signature_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1) as net:
            (victim,) = net.nodes
            sock = await trio.open_tcp_stream(*victim.addr)
            real = SigningKey.generate()

            class Impostor:
                """Claims ``real``'s public key but signs with another key."""

                public_key = real.public_key
                _other = SigningKey.generate()

                def sign(self, data: bytes) -> bytes:
                    return self._other.sign(data)

            # The victim's proof is valid, so our side of the Noise handshake
            # ends; then the victim refuses ours and closes the stream.
            with pytest.raises(LinkClosed):
                await open_secure_link(sock, Impostor(), 0)  # type: ignore[arg-type]
            await sock.aclose()
            await net.wait_for(lambda: _refused(victim))
            assert not victim.rep.peers()


async def _refused(node: TNode) -> bool:
    return any(k.startswith("handshake_") for k in node.rep.statistics()["peers_refused"])


async def test_silent_peer_times_out_in_the_handshake(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1, handshake_timeout=0.5) as net:
            (victim,) = net.nodes
            sock = await trio.open_tcp_stream(*victim.addr)
            await net.wait_for(lambda: _refused(victim))
            assert victim.rep.statistics()["peers_refused"] == {"handshake_timeout": 1}
            await sock.aclose()


# ---------------------------------------------------------------- forks (issue 12)


async def _rival_peer(victim: TNode, messages: list[Message]) -> str:
    """Send ``messages`` to ``victim`` over a raw link; say how the link stands after.

    A final peek at the victim's own feed is answered only once every earlier
    frame has been ingested (a link reads and ingests in order), so the answer
    is definite: "open" if the peek came back, else the victim's bye reason,
    or "closed" if the stream ended without one.
    """
    sock = await trio.open_tcp_stream(*victim.addr)
    try:
        link, _ = await open_secure_link(sock, SigningKey.generate(), 0)
        for msg in [*messages, Want(victim.identity, 0, 1)]:
            await link.send_frame(encode_message(msg))
        while True:
            reply = decode_message_untrusted(await link.receive_frame())
            if isinstance(reply, Entries) and reply.author == victim.identity:
                return "open"
            if isinstance(reply, Bye):
                return reply.reason
    except LinkClosed:
        return "closed"
    finally:
        await sock.aclose()


async def test_rival_of_a_one_entry_feed_is_a_fork(tmp_path: Path) -> None:
    # Bug 2: the victim holds only seq 1; a peer relays a validly signed rival
    # seq 1. It used to crash ingest and drop the link with internal_error.
    author = SigningKey.generate()
    feed = make_feed(author, 1)
    rival = make_feed(author, 1, text="rival")
    rival_id = decode_entry_untrusted(rival[0][0]).id
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            victim, honest = net.nodes
            for n in net.nodes:
                await n.follow(author.public_key)
                await load_feed(n.store, feed)
                await n.rep.refresh()
            await honest.connect(victim)
            ended = await _rival_peer(
                victim,
                [
                    Clock(((author.public_key, 1, rival_id),)),
                    Push(author.public_key, 1, rival[0]),
                ],
            )
            assert ended == "open"
            stats = victim.rep.statistics()
            assert stats["entries_rejected"] == {"fork": 1}
            assert await victim.store.feed_status(author.public_key) == "forked"
            (proof,) = await victim.store.fork_proofs(author.public_key)
            decoded = decode_fork_proof_untrusted(proof)
            assert {decoded.first.id, decoded.second.id} == {
                rival_id,
                decode_entry_untrusted(feed[0][0]).id,
            }

            # The honest peer takes the gossiped proof and freezes as well.
            async def honest_frozen() -> bool:
                return await honest.store.feed_status(author.public_key) == "forked"

            await net.wait_for(honest_frozen, poll=0.05)
            assert honest.rep.statistics()["links_dropped"] == {}


async def test_no_proof_from_an_entry_held_through_batch_verification(tmp_path: Path) -> None:
    # Bug 3: seq 2 is held only because seq 3 vouches for it; its own
    # signature fails. A validly signed rival at seq 2 must not make the victim
    # freeze the feed and gossip a proof that every peer rejects.
    author = SigningKey.generate()
    (e1_raw, e1_pl), (e2_raw, e2_pl) = make_feed(author, 2)
    e1 = decode_entry_untrusted(e1_raw)
    e2 = decode_entry_untrusted(e2_raw)
    e2_bad = SigningKey.generate().sign(ENTRY_TAG + e2.envelope) + e2.envelope
    e3, e3_pl = create_entry(
        author,
        seq=3,
        prev=decode_entry_untrusted(e2_bad).id,
        timestamp=now_ms() - 1000,
        kind="post",
        payload={"text": "p 3"},
    )
    held = [(e1_raw, e1_pl), (e2_bad, e2_pl), (e3.to_bytes(), e3_pl)]
    (rival,) = make_feed(author, 1, start=2, prev=e1.id, text="rival")
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net:
            victim, honest = net.nodes
            for n in net.nodes:
                await n.follow(author.public_key)
            await load_feed(victim.store, held)
            await victim.rep.refresh()
            await honest.connect(victim)
            await net.wait_for(lambda: _seq_of(honest, author.public_key, 3))
            ended = await _rival_peer(
                victim,
                [
                    Clock(((author.public_key, 2, decode_entry_untrusted(rival[0]).id),)),
                    Entries(author.public_key, 2, 2, (rival,)),
                ],
            )
            assert ended == "open"
            stats = victim.rep.statistics()
            assert stats["entries_rejected"] == {"unprovable_fork": 1}
            assert stats["forks_detected"] == 0
            assert await victim.store.fork_proofs(author.public_key) == []
            assert await victim.store.feed_status(author.public_key) == "ok"
            assert honest.rep.statistics()["links_dropped"] == {}
            # The link to the honest peer still carries the feed.
            await victim.rep.refresh()
            assert await honest.seq_of(author.public_key) == 3


async def test_unprovable_rival_at_a_batch_boundary_keeps_the_link(tmp_path: Path) -> None:
    # The overlap entry of a catch-up batch is a rival whose own signature
    # fails while the entry above it vouches for it. The peer relays what the
    # author signed: neither the rival nor the entries above it (which cannot
    # link to ours) may drop the link, and no proof comes of it.
    author = SigningKey.generate()
    feed = make_feed(author, 2)
    e1 = decode_entry_untrusted(feed[0][0])
    (r2_raw, r2_pl), *_ = make_feed(author, 1, start=2, prev=e1.id, text="other")
    r2 = decode_entry_untrusted(r2_raw)
    r2_bad = SigningKey.generate().sign(ENTRY_TAG + r2.envelope) + r2.envelope
    above = make_feed(author, 2, start=3, prev=decode_entry_untrusted(r2_bad).id, text="other")
    batch = ((r2_bad, r2_pl), *above)
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 1) as net:
            (victim,) = net.nodes
            await victim.follow(author.public_key)
            await load_feed(victim.store, feed)
            await victim.rep.refresh()
            top = decode_entry_untrusted(above[-1][0]).id
            ended = await _rival_peer(
                victim,
                [Clock(((author.public_key, 4, top),)), Entries(author.public_key, 2, 4, batch)],
            )
            assert ended == "open"
            stats = victim.rep.statistics()
            assert stats["entries_rejected"] == {
                "unprovable_fork": 1,
                "prev_mismatch": 1,
                "no_prev": 1,
            }
            assert await victim.store.fork_proofs(author.public_key) == []
            assert await victim.store.feed_status(author.public_key) == "ok"
            assert await victim.seq_of(author.public_key) == 2


async def _seq_of(node: TNode, author: bytes, seq: int) -> bool:
    return await node.seq_of(author) == seq
