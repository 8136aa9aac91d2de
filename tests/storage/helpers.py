"""Builders for signed feeds used across the storage tests."""

from __future__ import annotations

from typing import Any

from p2psocial.protocol.entries import Entry, create_entry
from p2psocial.protocol.identity import SigningKey

NOW = 1_700_000_000_000


def key(n: int) -> SigningKey:
    """A deterministic identity key number ``n``."""
    return SigningKey.from_seed(n.to_bytes(32, "big"))


class FeedBuilder:
    """Builds the consecutive entries of one author's feed, off the store."""

    def __init__(self, k: SigningKey, start_ts: int = NOW - 10_000_000) -> None:
        self.key = k
        self.entries: list[Entry] = []
        self.payloads: list[bytes] = []
        self.ts = start_ts

    @property
    def author(self) -> bytes:
        return self.key.public_key

    def add(
        self, kind: str, payload: dict[str, Any], *, ts: int | None = None
    ) -> tuple[bytes, bytes]:
        prev = self.entries[-1].id if self.entries else None
        self.ts = ts if ts is not None else self.ts + 1000
        entry, data = create_entry(
            self.key,
            seq=len(self.entries) + 1,
            prev=prev,
            timestamp=self.ts,
            kind=kind,
            payload=payload,
        )
        self.entries.append(entry)
        self.payloads.append(data)
        return entry.to_bytes(), data

    def post(self, text: str, *, ts: int | None = None, **extra: Any) -> tuple[bytes, bytes]:
        return self.add("post", {"text": text, **extra}, ts=ts)

    def item(self, seq: int, with_payload: bool = True) -> tuple[bytes, bytes | None]:
        e = self.entries[seq - 1]
        return e.to_bytes(), self.payloads[seq - 1] if with_payload else None

    def items(self, lo: int = 1, hi: int | None = None) -> list[tuple[bytes, bytes | None]]:
        hi = len(self.entries) if hi is None else hi
        return [self.item(s) for s in range(lo, hi + 1)]

    def id(self, seq: int) -> bytes:
        return self.entries[seq - 1].id
