"""A man in the middle between two real daemons (spec/sync.md §10).

The two daemons share no DHT, so their only link is the one dialled through a
relaying proxy on 127.0.0.1 that records every byte. The proxy must see
none of the author's post text, and one byte it flips must end the link
without anything the daemon counts as its own bug.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.daemons import Daemon, cli_json, run_cli, running_daemon
from tests.node.test_secure_link import SECRET, Proxy

pytestmark = pytest.mark.slow


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


async def _cli(d: Daemon, *args: str) -> list[dict[str, object]]:
    return await trio.to_thread.run_sync(partial(cli_json, d.data_dir, *args))


async def _texts_of(reader: Daemon, author: str) -> list[str]:
    rows = await _cli(reader, "--json", "feed", author, "--limit", "50")
    return [str(r["text"]) for r in rows if r.get("text")]


async def _statistics(d: Daemon) -> dict[str, object]:
    proc = await trio.to_thread.run_sync(partial(run_cli, d.data_dir, "--json", "statistics"))
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` every 0.1 s, at most 150 times (the test's deadline comes first)."""
    for _ in range(150):
        if await check():
            return
        await trio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def test_a_proxy_between_two_daemons_reads_nothing_and_cannot_change_a_byte(
    tmp_path: Path,
) -> None:
    flips: list[int] = []

    def flip_late(way: str, offset: int, chunk: bytes) -> bytes:
        # Armed only after the first post went through unharmed; once only.
        if not armed or flips or way != "down":
            return chunk
        # A chunk's last byte is a message's tag or ciphertext, whose damage
        # shows as soon as that message is in (not its first byte, which is
        # often a length prefix: that damage shows only when the bytes the
        # bad length promises have arrived, up to a keepalive later).
        flips.append(offset + len(chunk) - 1)
        return chunk[:-1] + bytes([chunk[-1] ^ 0x01])

    armed = False
    with running_daemon(tmp_path / "a") as a, running_daemon(tmp_path / "b") as b:
        author = a.info["identity"]
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                proxy = Proxy(_host_port(a.addr("peer")), flip_late)
                port = await nursery.start(proxy.run)
                await _cli(a, "--json", "post", SECRET)
                await _cli(b, "--json", "follow", author)
                await _cli(b, "--json", "connect", f"127.0.0.1:{port}")

                async def holds_secret() -> bool:
                    return SECRET in await _texts_of(b, author)

                await _until(holds_secret, "the follower holds the post")

                captured = bytes(proxy.captured["up"] + proxy.captured["down"])
                assert len(proxy.captured["down"]) > 500  # the post came through the proxy
                for needle in (SECRET.encode(), b"quick brown", author.encode()):
                    assert needle not in captured

                armed = True
                await _cli(a, "--json", "post", "a second post, to be tampered with")

                async def link_dropped() -> bool:
                    # The flip lands in the open link's stream (a drop), or,
                    # if that link had just been redialled, in a handshake
                    # (a refusal): either way the bytes did not get through.
                    rep = (await _statistics(b))["replication"]
                    return any(
                        str(k).startswith("protocol_noise")
                        for k in rep["links_dropped"]  # type: ignore[index]
                    ) or any(str(k).startswith("handshake_noise") for k in rep["peers_refused"])  # type: ignore[index]

                await _until(link_dropped, "the tampered link is dropped")
                stats = await _statistics(b)
                dropped = stats["replication"]["links_dropped"]  # type: ignore[index]
                assert flips
                assert "internal_error" not in dropped
                assert stats["replication"]["internal_errors"] == 0  # type: ignore[index]
                nursery.cancel_scope.cancel()
