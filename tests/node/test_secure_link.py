"""Encrypted links between real nodes: a man in the middle, wrong nodes, plaintext peers.

A TCP proxy on 127.0.0.1 sits between two nodes of the test network and
relays (and records) every byte. It must see no post text, and a single
flipped byte must close the link, counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from p2psocial.node.replication import LinkClosed, TCPFramedStream, handshake
from p2psocial.node.replication.transport import open_secure_link
from p2psocial.protocol.identity import SigningKey

from .test_replication_helpers import TNode, open_testnet

SECRET = "the quick brown fox meets at the old mill at nine"


class Proxy:
    """Relays each accepted connection to ``target``, recording both directions.

    ``tamper(direction, offset, chunk)`` may rewrite a chunk on its way.
    """

    def __init__(
        self,
        target: tuple[str, int],
        tamper: Callable[[str, int, bytes], bytes] | None = None,
    ) -> None:
        self.target = target
        self.tamper = tamper
        self.captured = {"up": bytearray(), "down": bytearray()}
        self.port = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._relay_one, listeners, handler_nursery=nursery)

    async def _relay_one(self, client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream(*self.target)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server, "up", nursery.cancel_scope)
            nursery.start_soon(self._pump, server, client, "down", nursery.cancel_scope)

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, way: str, done: trio.CancelScope
    ) -> None:
        try:
            while data := await src.receive_some(65536):
                offset = len(self.captured[way])
                self.captured[way] += data
                if self.tamper is not None:
                    data = self.tamper(way, offset, bytes(data))
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()


async def _holds_post(node: TNode, author: TNode, seq: int) -> bool:
    return await node.seq_of(author) >= seq


async def test_a_relaying_proxy_reads_nothing(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net, trio.open_nursery() as nursery:
            a, b = net.nodes
            proxy = Proxy(a.addr)
            port = await nursery.start(proxy.run)
            await a.post(SECRET)
            await b.follow(a)
            assert await b.rep.connect("127.0.0.1", port)
            await net.wait_for(lambda: _holds_post(b, a, 1))
            await a.post(SECRET + " (live)")
            await net.wait_for(lambda: _holds_post(b, a, 2))
            everything = bytes(proxy.captured["up"] + proxy.captured["down"])
            assert len(proxy.captured["down"]) > 1000  # the posts went through it
            for needle in (SECRET.encode(), b"quick brown", b"hello", a.identity, b.identity):
                assert needle not in everything
            nursery.cancel_scope.cancel()


async def test_one_flipped_byte_closes_the_link(tmp_path: Path) -> None:
    flipped: list[int] = []

    def flip_once_late(way: str, offset: int, chunk: bytes) -> bytes:
        # Past the handshake (a few hundred bytes) and once only.
        if way != "down" or flipped or offset + len(chunk) < 2000:
            return chunk
        at = max(0, 2000 - offset)
        flipped.append(offset + at)
        return chunk[:at] + bytes([chunk[at] ^ 0x01]) + chunk[at + 1 :]

    with trio.fail_after(30):
        async with open_testnet(tmp_path, 2) as net, trio.open_nursery() as nursery:
            a, b = net.nodes
            proxy = Proxy(a.addr, flip_once_late)
            port = await nursery.start(proxy.run)
            for i in range(40):
                await a.post(f"post {i} " + "x" * 200)
            await b.follow(a)
            await b.rep.connect("127.0.0.1", port)

            async def dropped() -> bool:
                return any(
                    k.startswith("protocol_noise") or k == "protocol_link_bad_length"
                    for k in b.rep.statistics()["links_dropped"]
                )

            await net.wait_for(dropped, poll=0.05)
            assert flipped
            assert "internal_error" not in b.rep.statistics()["links_dropped"]
            nursery.cancel_scope.cancel()


async def test_a_dial_that_meets_another_node_aborts(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 2) as net:
            a, b = net.nodes
            wrong = bytes(20)
            assert not await b.rep.pool.dial(*a.addr, wrong)
            assert b.rep.statistics()["peers_refused"] == {"handshake_wrong_node": 1}
            assert not b.rep.peers()
            # The right id links.
            assert await b.rep.pool.dial(*a.addr, a.rep.node_id)


async def test_a_plaintext_peer_is_refused(tmp_path: Path) -> None:
    """No fallback: the old plaintext hello is not the link protocol."""
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1) as net:
            (victim,) = net.nodes
            sock = await trio.open_tcp_stream(*victim.addr)
            try:
                await handshake(TCPFramedStream(sock), SigningKey.generate(), 0)
            except LinkClosed:
                pass
            finally:
                await sock.aclose()

            async def refused() -> bool:
                return bool(victim.rep.statistics()["peers_refused"])

            await net.wait_for(refused, poll=0.05)
            assert victim.rep.statistics()["peers_refused"] == {"handshake_link_bad_preamble": 1}


async def test_garbage_after_the_handshake_is_counted(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_testnet(tmp_path, 1) as net:
            (victim,) = net.nodes
            sock = await trio.open_tcp_stream(*victim.addr)
            await open_secure_link(sock, SigningKey.generate(), 0)
            await sock.send_all(b"\x00\x20" + bytes(32))

            async def dropped() -> bool:
                return "protocol_noise_decrypt" in victim.rep.statistics()["links_dropped"]

            await net.wait_for(dropped, poll=0.05)
            await sock.aclose()
