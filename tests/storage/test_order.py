"""Order independence: any batching and order of the same entries gives the same state."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from p2psocial.storage import Store

from .helpers import NOW, FeedBuilder, key


def _world() -> tuple[list[FeedBuilder], list[tuple[bytes, bytes | None]]]:
    rng = random.Random(7)
    feeds = [FeedBuilder(key(200 + i)) for i in range(4)]
    posts: list[bytes] = []
    for step in range(150):
        f = rng.choice(feeds)
        r = rng.random()
        if r < 0.1:
            f.add(
                "follow" if rng.random() < 0.7 else "unfollow", {"target": rng.choice(feeds).author}
            )
        elif r < 0.2 and posts:
            f.add("react", {"target": rng.choice(posts), "emoji": rng.choice(["👍", "❤️"])})
        elif r < 0.3 and posts:
            root = rng.choice(posts)
            f.post(
                f"reply {step} about topic{step % 5}",
                reply={"root": root, "parent": root},
                mentions=[rng.choice(feeds).author],
            )
        elif r < 0.35:
            f.add("profile", {"name": f"name {step}"})
        elif r < 0.42 and f.entries:
            mine = [e.id for e in f.entries if e.kind == "post"]
            if mine:
                f.add("delete", {"target": rng.choice(mine)})
            else:
                f.post(f"post {step}")
        else:
            f.post(f"post {step} about topic{step % 5}", tags=[f"t{step % 3}"])
            posts.append(f.entries[-1].id)
    items = [it for f in feeds for it in f.items()]
    return feeds, items


def _state(store: Store, feeds: list[FeedBuilder]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in feeds:
        a = f.author
        out[a.hex()] = {
            "head": store.head(a),
            "following": store.following(a),
            "followers": store.followers(a),
            "profile": store.profile(a),
            "timeline": [
                (v.id, v.payload_state, v.replies, v.reposts, tuple(sorted(v.reactions.items())))
                for v in store.timeline(a, limit=500).items
            ],
            "mentions": [v.id for v in store.mentions(a, limit=500).items],
        }
    out["search"] = [v.id for v in store.search("topic1", limit=500).items]
    out["tags"] = [v.id for v in store.tagged("t1", limit=500).items]
    out["stats"] = {
        k: v for k, v in store.statistics().items() if k in ("entries", "payload_bytes")
    }
    return out


@pytest.mark.parametrize("seed", range(6))
def test_any_order_same_state(tmp_path: Path, seed: int) -> None:
    feeds, items = _world()
    with Store.open(tmp_path / "ref.db") as ref:
        assert {o.status for o in ref.ingest(items, now_ms=NOW)} == {"stored"}
        want = _state(ref, feeds)
    rng = random.Random(seed)
    shuffled = items[:]
    rng.shuffle(shuffled)
    # Some items first arrive without payload and get it later.
    with Store.open(tmp_path / "x.db") as s:
        i = 0
        while i < len(shuffled):
            n = rng.randint(1, 12)
            batch = [(raw, None if rng.random() < 0.2 else pl) for raw, pl in shuffled[i : i + n]]
            outs = s.ingest(batch, now_ms=NOW)
            assert "rejected" not in {o.status for o in outs}
            i += n
        s.ingest(items, now_ms=NOW)  # fills every missing payload
        assert _state(s, feeds) == want
        assert s.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
