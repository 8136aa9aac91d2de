"""A forked feed for tests: one author, two different signed entries at one seq."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey, identity_to_text
from p2psocial.storage import Store

Item = tuple[bytes, bytes]


def posts(
    key: SigningKey, texts: list[str], *, start: int = 1, prev: bytes | None = None
) -> tuple[list[Item], list[str]]:
    """Consecutive signed posts of ``key`` from seq ``start``: the items and their ids (hex)."""
    items: list[Item] = []
    ids: list[str] = []
    ts = time.time_ns() // 1_000_000 - 60_000
    for seq, text in enumerate(texts, start):
        entry, payload = create_entry(
            key, seq=seq, prev=prev, timestamp=ts + seq, kind="post", payload={"text": text}
        )
        items.append((entry.to_bytes(), payload))
        ids.append(entry.id.hex())
        prev = entry.id
    return items, ids


@dataclass
class Fork:
    """Seqs 1-2 shared; at seq 3 the author signed "x 3" on one history and "y 3" on the other."""

    key: SigningKey
    common: list[Item]
    common_ids: list[str]
    x: list[Item]
    x_ids: list[str]
    y: list[Item]
    y_ids: list[str]

    @property
    def identity(self) -> str:
        return identity_to_text(self.key.public_key)

    @property
    def fork_seq(self) -> int:
        return len(self.common) + 1


def make_fork(key: SigningKey | None = None) -> Fork:
    key = key or SigningKey.generate()
    common, common_ids = posts(key, ["before the fork 1", "before the fork 2"])
    prev = bytes.fromhex(common_ids[-1])
    x, x_ids = posts(key, ["x 3"], start=3, prev=prev)
    y, y_ids = posts(key, ["y 3", "y 4"], start=3, prev=prev)
    return Fork(key, common, common_ids, x, x_ids, y, y_ids)


def seed(db_path: Path, *batches: list[Item]) -> None:
    """Ingest ``batches`` into the store at ``db_path`` (a daemon's, before it starts)."""
    store = Store.open(db_path)
    try:
        for batch in batches:
            store.ingest(batch, now_ms=time.time_ns() // 1_000_000)
    finally:
        store.close()
