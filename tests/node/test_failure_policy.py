"""One failure policy: a bug while handling one unit of work (a datagram, a
frame, a lookup, a request) is logged at error level with its traceback,
counted, and ends only that unit; the service goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from .test_replication_helpers import open_testnet


async def test_a_bug_in_one_swarm_lookup_is_loud_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-network exception in a swarm lookup was logged at debug level and
    counted as a DHT error, which hid bugs."""
    async with open_testnet(tmp_path, 2, with_dht=True) as net:
        a, b = net.nodes
        dht = a.rep.dht
        real = dht.get_peers
        calls = 0

        async def buggy(author: bytes) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("injected swarm bug")
            return await real(author)

        dht.get_peers = buggy
        await b.post("findable")
        await a.follow(b)
        with trio.fail_after(20):
            await net.wait_for(lambda: _has(a, b))
        stats = a.rep.statistics()
        assert stats["internal_errors"] == 1
        assert calls >= 2  # the loop looked again after the bug
        bug_logs = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
        assert any("injected swarm bug" in str(r.exc_info[1]) for r in bug_logs)


async def _has(node: Any, author: Any) -> bool:
    return bool(await node.seq_of(author) >= 1)
