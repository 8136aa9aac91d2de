"""DHTNode over real UDP sockets on 127.0.0.1 (the testnet fixture of STYLE.md §15)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import pytest
import trio

from p2psocial.node.dht import DHTConfig, DHTNode
from p2psocial.node.dht.handler import RequestHandler
from p2psocial.protocol.dht import head_key, swarm_key
from p2psocial.protocol.dht.wire import decode_datagram_untrusted, encode_request
from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey

NOW_MS = int(time.time() * 1000)


class KillableNodes(list[DHTNode]):
    """The nodes of a testnet, each killable on its own."""

    scopes: dict[int, trio.CancelScope]

    def kill(self, node: DHTNode) -> None:
        """Stop a node without warning (it sends nothing more)."""
        self.scopes[id(node)].cancel()


@asynccontextmanager
async def dht_testnet(
    n: int, config: DHTConfig | None = None, **kw: object
) -> AsyncIterator[KillableNodes]:
    """n real nodes on 127.0.0.1 (port 0), all bootstrapped from the first."""
    cfg = config or DHTConfig(rpc_timeout=0.3, rpc_attempts=3)
    nodes = KillableNodes(
        DHTNode(SigningKey.generate(), "127.0.0.1", 0, config=cfg, **kw)  # type: ignore[arg-type]
        for _ in range(n)
    )
    nodes.scopes = {}

    async def run_one(x: DHTNode, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            nodes.scopes[id(x)] = scope
            await x.run(task_status=task_status)

    async with trio.open_nursery() as nursery:
        for x in nodes:
            await nursery.start(run_one, x)
        await nodes[1].bootstrap([("localhost", nodes[0].address[1])])
        async with trio.open_nursery() as boot:
            for x in nodes[2:]:
                boot.start_soon(x.bootstrap, [nodes[0].address])
        # Early joiners learn of later ones on their first refresh; do it now.
        async with trio.open_nursery() as boot:
            for x in nodes:
                boot.start_soon(x.find_node, x.node_id)
        yield nodes
        nursery.cancel_scope.cancel()


def entries(key: SigningKey, n: int) -> list[bytes]:
    out, prev = [], None
    for seq in range(1, n + 1):
        e, _ = create_entry(
            key, seq=seq, prev=prev, timestamp=NOW_MS, kind="post", payload={"text": str(seq)}
        )
        out.append(e.to_bytes())
        prev = e.id
    return out


class Raw:
    """A bare UDP client to poke a node with hand-made datagrams."""

    def __init__(self) -> None:
        self.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def __aenter__(self) -> Raw:
        await self.sock.bind(("127.0.0.1", 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sock.close()

    async def call(self, addr: tuple[str, int], method: str, args: list[object]) -> object:
        mid = os.urandom(20)
        await self.sock.sendto(encode_request(mid, method, args), addr)
        with trio.fail_after(2):
            while True:
                data, _ = await self.sock.recvfrom(2048)
                msg = decode_datagram_untrusted(data)
                if msg.msg_id == mid:
                    return msg.value  # type: ignore[union-attr]


async def test_testnet_of_50_nodes() -> None:
    with trio.fail_after(45):
        # The default timeouts: 50 nodes joining at once keep one process
        # busy for a while, and shorter timeouts would misjudge live nodes.
        async with dht_testnet(50, DHTConfig()) as nodes:
            ids = sorted(x.node_id for x in nodes)
            # Every node knows a good part of the network.
            assert min(len(x.table) for x in nodes) >= 20
            author = SigningKey.generate()
            chain = entries(author, 3)
            for i, e in enumerate(chain):
                assert await nodes[i + 3].put_head(e) >= 15
            for x in nodes[10:30]:
                got = await x.get_head(author.public_key)
                if got != chain[-1]:
                    from p2psocial.protocol.dht import distance

                    hk = head_key(author.public_key)
                    order = sorted(nodes, key=lambda y: distance(y.node_id, hk))
                    hold = [
                        (
                            y.records.get("head", hk, trio.current_time())
                            or type("z", (), {"seq": 0})
                        ).seq
                        for y in order
                    ]
                    raise AssertionError(
                        f"{hold} getter={order.index(x)} putters={[order.index(nodes[i]) for i in (3, 4, 5)]} {x.statistics()}"
                    )
            assert await nodes[5].set("k", b"plain") >= 15
            assert await nodes[40].get("k") == b"plain"
            assert await nodes[7].announce(author.public_key, 4242) >= 15
            peers = await nodes[30].get_peers(author.public_key)
            assert (nodes[7].node_id, "127.0.0.1", 4242) in peers
            pe, pp = create_entry(
                author,
                seq=4,
                prev=os.urandom(32),
                timestamp=NOW_MS,
                kind="profile",
                payload={"name": "ann"},
            )
            assert await nodes[8].put_profile(pe.to_bytes(), pp) >= 15
            assert await nodes[44].get_profile(author.public_key) == (pe.to_bytes(), pp)
            found = await nodes[0].find_node(ids[0])
            assert len(found) == 20
            st = nodes[0].statistics()
            assert st["contacts"] >= 20
            # Contacts that answered a putter's record lookup proved their key.
            assert nodes[3].statistics()["proven"] >= 20
            # Only late answers to requests already settled (retried or
            # cancelled), and at the bootstrap hub, which takes 49 joins at
            # once, requests beyond its bounded queue when the machine is busy
            # (a bounded queue drops and counts by design; the puts and gets
            # above show that the network worked regardless).
            assert set(st["dropped"]) <= {"unexpected_response"}
            for x in nodes[1:]:
                assert set(x.statistics()["dropped"]) <= {"unexpected_response"}, x.statistics()


async def test_record_rejections_over_the_wire() -> None:
    with trio.fail_after(20):
        async with dht_testnet(3) as nodes, Raw() as raw:
            target = nodes[0]
            author = SigningKey.generate()
            chain = entries(author, 3)
            hk = head_key(author.public_key)
            me = os.urandom(20)
            ok = await raw.call(target.address, "put_record", [me, hk, "head", chain[1]])
            assert ok == {"ok": True}
            bad_sig = chain[2][:5] + bytes([chain[2][5] ^ 1]) + chain[2][6:]
            cases = [
                ([me, hk, "head", chain[0]], "stale"),
                ([me, hk, "head", chain[1]], "replayed"),
                ([me, hk, "head", bad_sig], "bad_signature"),
                ([me, head_key(os.urandom(32)), "head", chain[2]], "wrong_key"),
                ([me, hk, "head", b"\x01" * 1100], "too_large"),
            ]
            for args, reason in cases:
                assert await raw.call(target.address, "put_record", args) == {"rejected": reason}
            got = await raw.call(target.address, "get_record", [me, hk, "head"])
            assert got["record"] == chain[1]  # type: ignore[index]
            # Tokens: a foreign token (issued to another address) and a forged one.
            sk = swarm_key(author.public_key)
            reply = await raw.call(target.address, "get_peers", [me, sk])
            token = reply["token"]  # type: ignore[index]
            async with Raw() as other:
                assert await other.call(target.address, "announce", [me, sk, 4000, token]) == {
                    "rejected": "bad_token"
                }
            assert await raw.call(target.address, "announce", [me, sk, 4000, b"\x00" * 16]) == {
                "rejected": "bad_token"
            }
            assert target.swarms.peers(sk, trio.current_time()) == []
            # An expired token: two rotations later.
            target.tokens.rotate(os.urandom(32), trio.current_time())
            target.tokens.rotate(os.urandom(32), trio.current_time())
            assert await raw.call(target.address, "announce", [me, sk, 4000, token]) == {
                "rejected": "bad_token"
            }
            fresh = (await raw.call(target.address, "get_peers", [me, sk]))["token"]  # type: ignore[index]
            assert await raw.call(target.address, "announce", [me, sk, 4000, fresh]) == {"ok": True}
            assert target.swarms.peers(sk, trio.current_time()) == [(me, "127.0.0.1", 4000)]
            rec = target.records.get("head", hk, trio.current_time())
            assert rec is not None and rec.data == chain[1]
            assert target.statistics()["record_rejected_stale"] == 1


async def test_malformed_datagrams_are_dropped_and_counted() -> None:
    with trio.fail_after(20):
        async with dht_testnet(2) as nodes, Raw() as raw:
            target = nodes[0]
            addr = target.address
            junk = [
                b"",
                b"\x00",
                b"\x07" + b"x" * 30,
                b"\x00" + b"m" * 20 + b"\xc1",
                b"\x00" + b"m" * 20 + msgpack.packb(["ping", [b"short"]]),
                b"\x00" + b"m" * 20 + msgpack.packb(["no_such_rpc", [os.urandom(20)]]),
                b"\x01" + b"m" * 20 + msgpack.packb("unsolicited"),
                b"\x00" + b"m" * 20 + b"\x00" * 2000,
            ]
            for d in junk:
                await raw.sock.sendto(d, addr)
            # The node still answers afterwards.
            assert await raw.call(addr, "ping", [os.urandom(20)]) == target.node_id
            dropped = target.statistics()["dropped"]
            assert sum(dropped.values()) == len(junk), dropped
            assert dropped["unexpected_response"] == 1 and dropped["too_large"] == 1
            assert dropped["unknown_method"] == 1 and dropped["bad_args"] == 1


async def test_rate_limit_per_address() -> None:
    cfg = DHTConfig(rate_per_s=1.0, rate_burst=5.0)
    with trio.fail_after(20):
        async with dht_testnet(2, config=cfg) as nodes, Raw() as raw:
            for _ in range(20):
                await raw.sock.sendto(
                    encode_request(os.urandom(20), "ping", [os.urandom(20)]), nodes[0].address
                )
            answered = 0
            with trio.move_on_after(0.5):
                while answered < 20:
                    data, _ = await raw.sock.recvfrom(2048)
                    # (The node also sends us hello requests: it met new ids.)
                    answered += data[0] == 1
            assert answered <= 6  # the burst, plus what refilled meanwhile
            assert nodes[0].statistics()["dropped"]["rate_limited"] >= 14
            # Another address is unaffected.
            async with Raw() as other:
                assert (
                    await other.call(nodes[0].address, "ping", [os.urandom(20)]) == nodes[0].node_id
                )


class MemoryContactStore:
    def __init__(self) -> None:
        self.saved: list[tuple[bytes, str, int]] = []

    async def save_dht_contacts(self, contacts: list[tuple[bytes, str, int]]) -> None:
        self.saved = list(contacts)

    async def load_dht_contacts(self) -> list[tuple[bytes, str, int]]:
        return list(self.saved)


async def test_routing_table_persists_and_reloads() -> None:
    store = MemoryContactStore()
    with trio.fail_after(20):
        async with dht_testnet(6) as nodes:
            key = SigningKey.generate()
            node = DHTNode(
                key, "127.0.0.1", 0, contact_store=store, config=DHTConfig(rpc_timeout=0.3)
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                assert await node.bootstrap([nodes[0].address]) >= 5
                nursery.cancel_scope.cancel()
            assert len(store.saved) >= 5  # saved on shutdown
            again = DHTNode(key, "127.0.0.1", 0, contact_store=store)
            async with trio.open_nursery() as nursery:
                await nursery.start(again.run)
                assert set(again.routing_table_contacts()) == set(store.saved)
                assert again.statistics()["contacts_loaded"] == len(store.saved)
                nursery.cancel_scope.cancel()


async def test_local_misuse_raises_local_usage_error() -> None:
    from p2psocial.protocol.errors import LocalUsageError

    with trio.fail_after(10):
        async with dht_testnet(2) as nodes:
            with pytest.raises(LocalUsageError):
                await nodes[0].put_head(b"not an entry")
            with pytest.raises(LocalUsageError):
                await nodes[0].announce(os.urandom(32), 0)
            with pytest.raises(LocalUsageError):
                await nodes[0].set("k", [1, 2])


async def test_home_node_reuses_its_closest_set_and_falls_back_when_it_dies() -> None:
    with trio.fail_after(40):
        async with dht_testnet(25) as nodes:
            home = nodes[4]
            author = SigningKey.generate()
            chain = entries(author, 4)
            assert await home.put_head(chain[0]) >= 15
            assert await home.put_head(chain[1]) >= 15
            assert home.statistics()["puts_from_cache"] == 1
            assert await nodes[9].get_head(author.public_key) == chain[1]
            # Half the cached set goes silent: the next put walks again.
            hk = head_key(author.public_key)
            cached = home._records.closest_cache[("head", hk)][1]
            gone = {c.node_id for c in cached[: len(cached) // 2]}
            for x in nodes:
                if x.node_id in gone:
                    nodes.kill(x)
            assert await home.put_head(chain[2]) >= 5
            assert home.statistics()["puts_from_cache"] == 1
            alive = [x for x in nodes if x.node_id not in gone and x is not home]
            assert await alive[0].get_head(author.public_key) == chain[2]


async def test_routing_table_persists_in_the_sqlite_store(tmp_path: Any) -> None:
    from p2psocial.storage.aio import open_async_store

    with trio.fail_after(30):
        async with dht_testnet(6) as nodes:
            key = SigningKey.generate()
            async with open_async_store(tmp_path / "node.db") as store:
                node = DHTNode(key, "127.0.0.1", 0, contact_store=store)
                async with trio.open_nursery() as nursery:
                    await nursery.start(node.run)
                    assert await node.bootstrap([nodes[0].address]) >= 5
                    before = set(node.routing_table_contacts())
                    nursery.cancel_scope.cancel()
            async with open_async_store(tmp_path / "node.db") as store:
                again = DHTNode(key, "127.0.0.1", 0, contact_store=store)
                async with trio.open_nursery() as nursery:
                    await nursery.start(again.run)
                    assert set(again.routing_table_contacts()) == before
                    # The reloaded contacts work: a lookup needs no bootstrap.
                    assert len(await again.find_node(nodes[3].node_id)) >= 5
                    nursery.cancel_scope.cancel()


async def test_record_replies_carry_a_key_proof_when_asked() -> None:
    from p2psocial.protocol.dht import Contact
    from p2psocial.protocol.dht.wire import parse_get_record_reply, verify_hello
    from p2psocial.protocol.errors import InvalidSignature

    with trio.fail_after(20):
        async with dht_testnet(4) as nodes, Raw() as raw:
            me, nonce = os.urandom(20), os.urandom(32)
            hk = head_key(os.urandom(32))
            reply = await raw.call(nodes[0].address, "get_record", [me, hk, "head", nonce])
            _, _, proof = parse_get_record_reply(reply)
            assert proof is not None
            verify_hello(nodes[0].node_id, nonce, me, *proof)
            # Without a nonce there is no proof (and no signing cost).
            reply = await raw.call(nodes[0].address, "get_record", [me, hk, "head"])
            assert parse_get_record_reply(reply)[2] is None
            # An impostor claiming an id that is not the hash of its key fails.
            impostor = DHTNode(SigningKey.generate(), "127.0.0.1", 0)
            async with trio.open_nursery() as nursery:
                await nursery.start(impostor.run)
                fake = Contact(os.urandom(20), *impostor.address)
                asker = nodes[1]
                value, sent = await asker._contacts.proving_call(
                    fake, "get_record", [asker.node_id, hk, "head"]
                )
                with pytest.raises(InvalidSignature) as info:
                    asker._contacts.check_proof(fake, sent, parse_get_record_reply(value)[2])
                assert info.value.reason == "wrong_id"
                assert not asker.is_proven(fake)
                nursery.cancel_scope.cancel()


async def test_keys_are_proven_lazily_once_per_contact_used() -> None:
    """Bootstrap proves at most ``eager_proofs`` contacts per node (not every
    contact learnt of, spec/dht.md 4.1); a record lookup proves the contacts
    it asks, in their replies, and the nodes a record is stored at are proven."""
    eager = DHTConfig().eager_proofs
    with trio.fail_after(60):
        async with dht_testnet(40) as nodes:
            while sum(x.statistics()["hello_backlog"] for x in nodes):  # noqa: ASYNC110
                await trio.sleep(0.05)
            assert min(len(x.table) for x in nodes) > eager
            assert max(x.statistics()["proven"] for x in nodes) <= eager
            author = SigningKey.generate()
            putter = nodes[7]
            before = putter.statistics().get("hello_proven", 0)
            assert await putter.put_head(entries(author, 1)[0]) >= 15
            assert putter.statistics()["proven"] >= 20
            assert putter.statistics()["hello_proven"] > before
            hk = head_key(author.public_key)
            holders = [x for x in nodes if x.records.get("head", hk, trio.current_time())]
            assert holders
            table = {c.node_id: c for c in putter.table.contacts()}
            assert all(putter.is_proven(table[x.node_id]) for x in holders if x.node_id in table)


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
async def test_announce_made_before_joining_is_placed_once_joined(host: str) -> None:
    """A node announces its own feed as it starts, before it knows anyone. That
    announce must reach the network once the node joins; a wildcard bind (which
    cannot list itself in its own store) must not make it unfindable."""
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=2)
    author = SigningKey.generate().public_key
    early = DHTNode(SigningKey.generate(), host, 0, config=cfg)
    boot = DHTNode(SigningKey.generate(), "127.0.0.1", 0, config=cfg)
    seeker = DHTNode(SigningKey.generate(), "127.0.0.1", 0, config=cfg)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for x in (early, boot, seeker):
                await nursery.start(x.run)
            assert await early.announce(author, 4242) == 0  # nobody to tell yet
            await early.bootstrap([("127.0.0.1", boot.address[1])])
            await seeker.bootstrap([("127.0.0.1", boot.address[1])])
            while True:
                found = await seeker.get_peers(author)
                if found:
                    break
                await trio.sleep(0.05)
            assert found == [(early.node_id, "127.0.0.1", 4242)]
            assert early.statistics()["placements_after_join"] >= 1
            nursery.cancel_scope.cancel()


async def test_unaccepted_announce_is_retried_with_backoff() -> None:
    """An announce nobody accepted is retried soon, not at announce_interval:
    the first node of a network is found by the second without a bootstrap
    on the first node's side."""
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=2, announce_retry=0.1)
    author = SigningKey.generate().public_key
    first = DHTNode(SigningKey.generate(), "0.0.0.0", 0, config=cfg)
    second = DHTNode(SigningKey.generate(), "127.0.0.1", 0, config=cfg)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await nursery.start(second.run)
            assert await first.announce(author, 4242) == 0
            # The second node joins through the first, so the first's table
            # goes from empty to one contact: that alone re-places it.
            await second.bootstrap([("127.0.0.1", first.address[1])])
            while True:  # the store has no event to wait on; poll it
                if second.swarms.peers(swarm_key(author), trio.current_time()):
                    break
                await trio.sleep(0.02)
            assert first.statistics()["announces_unplaced"] >= 1
            nursery.cancel_scope.cancel()


async def test_a_bug_in_one_request_ends_that_request_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in handling one datagram used to end the request worker, and with
    it the DHT and the node. Now it is logged with its traceback and counted."""
    async with dht_testnet(2) as nodes:
        a, b = nodes
        real = RequestHandler.handle

        def buggy(self: RequestHandler, req: Any, addr: Any) -> Any:
            if req.method == "find_node":
                raise RuntimeError("injected bug")
            return real(self, req, addr)

        monkeypatch.setattr(RequestHandler, "handle", buggy)
        with trio.fail_after(10):
            await a.find_node(os.urandom(20))  # b's handler fails on it
            assert await a.ping(b.address) == b.node_id  # and b still answers
        assert b.statistics()["internal_errors"] >= 1
        assert any(
            r.levelname == "ERROR" and r.exc_info and "injected bug" in str(r.exc_info[1])
            for r in caplog.records
        )


async def test_find_value_answer_up_to_8_kib_is_taken_and_a_larger_one_spares_the_holder() -> None:
    """spec/dht.md §3: the answer to our own find_value may be up to 8,192
    bytes (a stock holder sends the whole value); over that, the request ends
    at once and the holder stays in the table. Everything else keeps 1,280."""
    from p2psocial.node.dht import plain_key_digest
    from p2psocial.protocol.dht.wire import Request

    values: dict[bytes, object] = {
        plain_key_digest("big"): "v" * 4096,  # a 4,127-byte answer
        plain_key_digest("huge"): b"h" * 9000,  # a 9,031-byte answer
    }
    node = DHTNode(SigningKey.generate(), "127.0.0.1", 0)  # default timeouts: 5 s per call
    with trio.fail_after(20):
        async with Raw() as holder, trio.open_nursery() as nursery:
            await nursery.start(node.run)
            holder_id = os.urandom(20)
            # Our holder speaks only the package's RPCs; its ping puts it in the table.
            assert await holder.call(node.address, "ping", [holder_id]) == node.node_id

            async def serve_like_a_stock_node() -> None:
                while True:
                    data, src = await holder.sock.recvfrom(2048)
                    msg = decode_datagram_untrusted(data)
                    if isinstance(msg, Request) and msg.method == "find_value":
                        body = msgpack.packb({"value": values[msg.args[1]]}, use_bin_type=True)
                        await holder.sock.sendto(b"\x01" + msg.msg_id + body, src)

            nursery.start_soon(serve_like_a_stock_node)
            t0 = trio.current_time()
            assert await node.get("big") == "v" * 4096
            assert await node.get("huge") is None
            assert trio.current_time() - t0 < 2.0  # no 5 s timeout
            assert holder_id in {c.node_id for c in node.table.contacts()}
            st = node.statistics()
            assert st["rpc_oversized_replies"] == 1 and st["dropped"]["too_large"] == 1
            # A large response nobody asked for, and a large request, are dropped.
            async with Raw() as other:
                await other.sock.sendto(b"\x01" + os.urandom(20) + b"\xc4" * 2000, node.address)
                await other.sock.sendto(b"\x00" + os.urandom(20) + b"\xc4" * 2000, node.address)
                assert await other.call(node.address, "ping", [os.urandom(20)]) == node.node_id
            assert node.statistics()["dropped"]["too_large"] == 3
            nursery.cancel_scope.cancel()


async def test_a_dual_stack_node_names_ipv4_peers_by_their_ipv4_address() -> None:
    """A node bound to :: recorded IPv4 peers as ::ffff:127.0.0.1 and handed
    them out; other nodes (Python 3.11 writes ::ffff:7f00:1) skipped them."""
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=2)
    dual = DHTNode(SigningKey.generate(), "::", 0, config=cfg)
    v4 = DHTNode(SigningKey.generate(), "127.0.0.1", 0, config=cfg)
    other = DHTNode(SigningKey.generate(), "127.0.0.1", 0, config=cfg)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for x in (dual, v4, other):
                await nursery.start(x.run)
            await v4.bootstrap([("127.0.0.1", dual.address[1])])
            assert [(c.host, c.port) for c in dual.table.contacts()] == [v4.address]
            # A third node learns v4 through the dual-stack node, usable as is.
            await other.bootstrap([("127.0.0.1", dual.address[1])])
            assert v4.node_id in {c.node_id for c in other.table.contacts()}
            nursery.cancel_scope.cancel()


async def test_a_peers_get_returns_what_it_found_when_contacts_stay_silent() -> None:
    """Behind a NAT, many contacts others hand out never answer: a peers get
    gives up on them after ``get_peers_time`` and returns the members it has."""
    cfg = DHTConfig(rpc_timeout=1.0, rpc_attempts=6, lookup_patience=6, get_peers_time=1.0)
    with trio.fail_after(40):
        async with dht_testnet(10, cfg) as nodes:
            member, asker = nodes[1], nodes[2]
            author = SigningKey.generate().public_key
            assert await member.announce(author, 4000) >= 5
            for x in nodes:
                if x not in (member, asker):
                    nodes.kill(x)
            start = trio.current_time()
            found = await asker.get_peers(author)
            # Waiting for 8 silent contacts (1 s, then 1.2 s, ...) would take far longer.
            assert trio.current_time() - start < 2.0
            assert [(nid, port) for nid, _, port in found] == [(member.node_id, 4000)]


async def test_a_get_runs_its_nearest_path_alone_until_a_setback() -> None:
    """A record get over 3 paths asks path 0's contacts alone while they answer
    (spec/dht.md §8, hedged gets): fewer queries than every path at once, the
    same record. A dead nearest seed is a setback: path 0 goes past it or the
    other paths start, and the record is still found."""
    cfg = DHTConfig(rpc_timeout=0.3, rpc_attempts=3)
    with trio.fail_after(60):
        async with dht_testnet(40, cfg) as nodes:
            author = SigningKey.generate()
            head = entries(author, 1)[0]
            assert await nodes[3].put_head(head) >= 15
            getter = nodes[11]

            async def get() -> dict[str, int]:
                before = getter.statistics()
                assert await getter.get_head(author.public_key) == head
                after = getter.statistics()
                counters = ("lookup_queries", "lookup_hedged", "lookup_left_silent")
                return {k: after.get(k, 0) - before.get(k, 0) for k in counters}

            hedged = await get()
            assert hedged["lookup_hedged"] == 0
            # The same get with every path at once (the config is shared; only
            # the getter's lookups read it now). Its table has only grown.
            cfg.get_hedge = None
            every_path = await get()
            assert hedged["lookup_queries"] < every_path["lookup_queries"]
            cfg.get_hedge = DHTConfig().get_hedge
            hk = head_key(author.public_key)
            nearest = getter.table.closest(hk, 1)[0]
            nodes.kill(next(x for x in nodes if x.node_id == nearest.node_id))
            after_kill = await get()
            assert after_kill["lookup_hedged"] or after_kill["lookup_left_silent"]
