"""Encrypted links between real nodes: a man in the middle, wrong nodes, plaintext peers.

A TCP proxy on 127.0.0.1 sits between two nodes of the test network and
relays (and records) every byte. It must see no post text, and a single
flipped byte must close the link, counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from p2psocial.node.replication import LinkClosed, TCPFramedStream, handshake
from p2psocial.node.replication.transport import NoiseFramedStream, open_secure_link
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


async def _linked_pair() -> tuple[object, object, trio.SocketListener]:
    """Two ends of one encrypted link over real TCP on 127.0.0.1."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    ends: dict[str, object] = {}

    async def open_end(name: str, stream: trio.SocketStream, initiator: bool) -> None:
        ends[name], _ = await open_secure_link(
            stream, SigningKey.generate(), 1, initiator=initiator
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(open_end, "a", client, True)
        nursery.start_soon(open_end, "b", server, False)
    return ends["a"], ends["b"], listeners[0]


async def test_a_send_cancelled_before_it_writes_leaves_the_link_usable() -> None:
    """A send cancelled after taking the send lock but before its bytes left
    encrypted nothing: the next frame still decrypts at the peer (a cancelled
    keepalive used to burn a nonce, so the bye after it failed authentication)."""
    with trio.fail_after(10):
        a, b, listener = await _linked_pair()
        assert isinstance(a, NoiseFramedStream) and isinstance(b, NoiseFramedStream)
        async with a.stream, b.stream, listener:
            # Another send holds the lock; ours waits for it, is handed the
            # lock, and is cancelled before it runs again: it resumes holding
            # the lock and meets the cancellation at its write.
            await a._send_lock.acquire()
            cs = trio.CancelScope()

            async def send_cancelled() -> None:
                with cs:
                    await a.send_frame(b"never sent")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_cancelled)
                await trio.testing.wait_all_tasks_blocked()
                a._send_lock.release()
                cs.cancel()
            assert cs.cancelled_caught
            await a.send_frame(b"after the cancelled one")
            assert await b.receive_frame() == b"after the cancelled one"
            assert a.frames_out == 3  # the hello, its auth and this one


async def test_a_write_cancelled_part_way_closes_the_sending_side() -> None:
    """The peer reads nothing, a frame's write blocks part way and is
    cancelled: the bytes that left are a torn message, so the next send
    raises LinkClosed instead of writing frames the peer cannot read."""
    with trio.fail_after(10):
        a, b, listener = await _linked_pair()
        assert isinstance(a, NoiseFramedStream) and isinstance(b, NoiseFramedStream)
        async with a.stream, b.stream, listener:
            with trio.move_on_after(0.5) as cs:
                for _ in range(2000):  # a few MiB fill the socket buffers first
                    await a.send_frame(bytes(60_000))
            assert cs.cancelled_caught
            with pytest.raises(LinkClosed) as err:
                await a.send_frame(b"after the torn one")
            assert err.value.reason == "broken"
