"""Short ids: a unique prefix of at least 8 hex digits names an entry wherever an id does."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

import p2psocial
from p2psocial import LocalUsageError
from p2psocial.node.views import MAX_CANDIDATES, MIN_PREFIX_HEX
from tests.node.test_guarded_actions import one_node


def add_bare_ids(node: p2psocial.Node, ids: list[bytes]) -> None:
    """Envelope rows with chosen ids, written beside the node as another process would.

    Real ids cannot be chosen, and two sharing 8 hex digits take ~2**16 entries.
    """
    conn = sqlite3.connect(node.config.db_path, timeout=10)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO entries(fid, seq, id, ts, kind, raw, pstate) "
                "VALUES (9999, ?, ?, 0, 'post', x'00', 0)",
                [(i + 1, id_) for i, id_ in enumerate(ids)],
            )
    finally:
        conn.close()


async def test_a_prefix_works_wherever_an_id_does(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            post = await node.post("the root")
            full = post["id"]
            reply = await node.post("a reply", reply_to=full[:MIN_PREFIX_HEX])
            [root, child] = (await node.thread(reply["id"][:12]))["items"]
            assert (root["id"], child["id"], child["reply_to"]) == (full, reply["id"], full)
            # Any case, surrounding blanks, odd lengths.
            await node.react(f"  {full[:9].upper()} ", "🎉")
            await node.repost(full[:15])
            assert (await node.explain(full[:10]))["id"] == full
            timeline = (await node.timeline())["items"]
            assert next(e for e in timeline if e["id"] == full)["reactions"] == {"🎉": 1}
            await node.delete(reply["id"][:8])
            assert (await node.explain(reply["id"]))["deleted"] is True
            # Full ids and raw bytes still work.
            assert (await node.explain(bytes.fromhex(full)))["id"] == full


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("abc1234", "at least 8"),
        ("", "at least 8"),
        ("xyz12345", "not hex"),
        ("0x12345678", "not hex"),
    ],
)
async def test_short_or_non_hex_ids_are_refused(tmp_path: Path, text: str, says: str) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            for action in (node.thread, node.explain, lambda t: node.react(t, "👍")):
                with pytest.raises(LocalUsageError, match=says) as info:
                    await action(text)
                assert info.value.reason == "bad_id"


async def test_a_prefix_matching_nothing_is_unknown(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            post = await node.post("only this one")
            # Change the prefix's first digit so it cannot match the one post.
            other = ("0" if post["id"][0] != "0" else "1") + post["id"][1:8]
            actions: list[Callable[[], Awaitable[object]]] = [
                lambda: node.post("re", reply_to=other),
                lambda: node.repost(other),
                lambda: node.delete(other),
                lambda: node.thread(other),
                lambda: node.explain(other),
            ]
            for action in actions:
                with pytest.raises(LocalUsageError, match=other) as info:
                    await action()
                assert info.value.reason == "unknown_id"


async def test_an_ambiguous_prefix_lists_the_candidates(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with one_node(tmp_path) as node:
            pair = [bytes.fromhex("c0ffee00" + c * 56) for c in "01"]
            crowd = [
                bytes.fromhex(f"deadbeef{i:02x}" + "0" * 54) for i in range(MAX_CANDIDATES + 3)
            ]
            add_bare_ids(node, pair + crowd)
            with pytest.raises(LocalUsageError) as info:
                await node.thread("C0FFEE00")
            assert info.value.reason == "ambiguous_id"
            assert all(i.hex() in info.value.message for i in pair), info.value.message
            assert "\n" not in info.value.message
            with pytest.raises(LocalUsageError) as info:
                await node.post("re", reply_to="deadbeef")
            assert info.value.reason == "ambiguous_id"
            msg = info.value.message
            assert f"more than {MAX_CANDIDATES}" in msg
            assert sum(i.hex() in msg for i in crowd) == MAX_CANDIDATES
            # One more digit than they share picks one out (a bare row has no
            # feed, so the node does not show it, and reacting needs force).
            await node.react("c0ffee001", "👍", force=True)
            [react] = (await node.feed(kinds=["react"]))["items"]
            assert react["target"] == pair[1].hex()
