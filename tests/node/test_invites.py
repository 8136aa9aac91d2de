"""Invites on real nodes (127.0.0.1, port 0): make, accept, connect, seed the DHT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import p2psocial
from p2psocial import LocalUsageError, NodeConfig, SigningKey, open_node
from p2psocial.node.invites import choose_hosts
from p2psocial.protocol.errors import InvalidSignature
from p2psocial.protocol.identity import identity_to_text
from p2psocial.protocol.invite import InviteError, decode_invite_untrusted, make_invite
from tests.protocol.test_invite import _encode_body

CAROL = SigningKey.from_seed(b"\x43" * 32).public_key


@asynccontextmanager
async def lone_node(path: Path) -> AsyncIterator[p2psocial.Node]:
    """A node with no bootstrap and no peers: all it knows is what an invite tells it."""
    cfg = NodeConfig(data_dir=path, listen="127.0.0.1", serve_api=False)
    async with open_node(
        cfg, identity_key=SigningKey.generate(), node_key=SigningKey.generate()
    ) as n:
        yield n


@pytest.mark.parametrize(
    "listen, interfaces, expected",
    [
        ("127.0.0.1", ["192.168.1.5"], ["127.0.0.1"]),
        ("192.168.1.5", ["10.0.0.2"], ["192.168.1.5"]),
        (
            "0.0.0.0",
            ["127.0.0.1", "192.168.1.5", "10.0.0.2", "192.168.1.5"],
            ["192.168.1.5", "10.0.0.2"],
        ),
        ("0.0.0.0", ["127.0.0.1", "127.0.1.1", "fe80::1%eth0", "::1"], ["127.0.0.1", "127.0.1.1"]),
        ("0.0.0.0", ["169.254.3.3", "2001:db8::5"], ["127.0.0.1"]),
        ("::", ["::1", "2001:db8::5", "192.168.1.5", "fe80::2"], ["2001:db8::5", "192.168.1.5"]),
        ("0.0.0.0", ["not an address"], ["127.0.0.1"]),
        ("my-host.example", ["192.168.1.5"], []),
    ],
)
def test_choose_hosts(listen: str, interfaces: list[str], expected: list[str]) -> None:
    assert choose_hosts(listen, interfaces) == expected


async def _until_timeline_has(node: p2psocial.Node, ids: set[str]) -> None:
    # The public API has no "caught up" event, so poll the timeline.
    while not ids <= {e["id"] for e in (await node.timeline(limit=50))["items"]}:  # noqa: ASYNC110
        await trio.sleep(0.05)


async def test_accepting_an_invite_joins_with_nothing_else(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with lone_node(tmp_path / "alice") as alice, lone_node(tmp_path / "bob") as bob:
            assert alice.peer_addr and alice.dht_addr
            posts = {(await alice.post(f"alice {i}"))["id"] for i in range(3)}
            made = await alice.invite(expires_in=3600, recommend=[identity_to_text(CAROL)])
            assert made["peer_addrs"] == [f"127.0.0.1:{alice.peer_addr[1]}"]
            assert made["dht_addrs"] == [f"127.0.0.1:{alice.dht_addr[1]}"]
            assert made["identity"] == alice.identity_text and made["expires"] > 0
            decoded = decode_invite_untrusted(made["invite"], now_ms=None)
            assert decoded.identity == alice.identity and decoded.recommended == (CAROL,)

            got = await bob.accept_invite(made["invite"])
            assert got["identity"] == alice.identity_text and got["followed"] is True
            assert got["connected"] == f"127.0.0.1:{alice.peer_addr[1]}", got
            assert got["connect_error"] is None and got["dht_contacts"] >= 1
            assert got["recommended"] == [identity_to_text(CAROL)]
            assert alice.identity_text in (await bob.following())["items"]
            assert bob.dht is not None
            contacts = {port for _, _, port in bob.dht.routing_table_contacts()}
            assert alice.dht_addr[1] in contacts
            await _until_timeline_has(bob, posts)

            again = await bob.accept_invite(made["invite"])
            assert again["followed"] is False and again["connected"] is not None


async def test_refused_invites_change_nothing(tmp_path: Path) -> None:
    stranger = SigningKey.generate()
    with trio.fail_after(60):
        async with lone_node(tmp_path / "bob") as bob:
            expired = make_invite(
                stranger, peer_addrs=[("127.0.0.1", 1)], dht_addrs=[], expires_ms=1
            )
            with pytest.raises(InviteError) as info:
                await bob.accept_invite(expired)
            assert info.value.reason == "expired"
            good = make_invite(stranger, peer_addrs=[("127.0.0.1", 1)], dht_addrs=[])
            with pytest.raises(InviteError) as info:
                await bob.accept_invite(good[:-2])
            assert info.value.reason == "bad_checksum"
            forged = make_invite(SigningKey.generate(), peer_addrs=[], dht_addrs=[])
            body = bytearray(decode_invite_untrusted(forged, now_ms=None).body())
            body[1:33] = stranger.public_key  # someone else's identity, the forger's signature
            with pytest.raises(InvalidSignature) as sig:
                await bob.accept_invite(_encode_body(bytes(body)))
            assert sig.value.reason == "bad_signature"
            assert (await bob.following())["items"] == []

            own = await bob.invite()
            with pytest.raises(LocalUsageError) as usage:
                await bob.accept_invite(own["invite"])
            assert usage.value.reason == "self"
            with pytest.raises(LocalUsageError) as usage:
                await bob.invite(expires_in=0)
            assert usage.value.reason == "bad_expiry"
            with pytest.raises(LocalUsageError) as usage:
                await bob.invite(recommend=[bob.identity_text])
            assert usage.value.reason == "self"


async def test_an_unreachable_inviter_is_reported_and_the_follow_stands(tmp_path: Path) -> None:
    stranger = SigningKey.generate()
    with trio.fail_after(60):
        async with lone_node(tmp_path / "bob") as bob:
            text = make_invite(stranger, peer_addrs=[("127.0.0.1", 1)], dht_addrs=[])
            got = await bob.accept_invite(text)
            assert got["followed"] is True and got["connected"] is None
            assert "127.0.0.1:1" in got["connect_error"]
            assert identity_to_text(stranger.public_key) in (await bob.following())["items"]
            stats = bob.invites.stats
            assert stats["accepted"] == 1 and stats["connect_failed"] == 1
