"""Bench: how fast entries are authenticated, against raw Ed25519 in the same run.

Figures (entries or signatures per second, one thread):

* ``raw_verify_per_s``: ``cryptography`` Ed25519 verify of 300-byte messages
  with the public key object cached: the floor any per-entry path pays.
* ``entry_validate_per_s``: the live path for one entry: decode_entry_untrusted
  + strict signature verification + decode_payload_untrusted (hash, size,
  schema) + check_timestamp.
* ``batch_verify_per_s``: catch-up path over 10,000-entry runs, *including*
  decode_entry_untrusted of every entry, then verify_run (links, strict
  signature encoding of every entry, one full signature check).
* ``batch_verify_only_per_s``: verify_run alone on already decoded entries.

Goals: entry_validate >= 0.85 x raw_verify; batch_verify >= 20 x raw_verify.

Run: ``python bench/ingest_verify.py [--quick]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from p2psocial.protocol.entries import (
    check_timestamp,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
)
from p2psocial.protocol.feeds import verify_run
from p2psocial.protocol.identity import SigningKey

T0 = 1_700_000_000_000


def best_rate(fn: Callable[[], int], repeats: int) -> float:
    """Items per second of the fastest of ``repeats`` runs (least disturbed by neighbours)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        elapsed = time.perf_counter() - start
        best = max(best, n / elapsed)
    return best


def bench_raw(n: int, repeats: int) -> float:
    key = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    pub = key.public_key()
    msgs = [i.to_bytes(4, "big") * 75 for i in range(n)]  # 300 bytes each
    sigs = [key.sign(m) for m in msgs]
    pairs = list(zip(sigs, msgs, strict=True))

    def run() -> int:
        verify = pub.verify
        for sig, msg in pairs:
            verify(sig, msg)
        return len(pairs)

    return best_rate(run, repeats)


def make_feed(key: SigningKey, n: int) -> tuple[list[bytes], list[bytes]]:
    """n linked post entries (wire bytes) and their payloads."""
    entries: list[bytes] = []
    payloads: list[bytes] = []
    prev = None
    for seq in range(1, n + 1):
        text = f"post number {seq} " + "lorem ipsum dolor sit amet " * 3
        e, data = create_entry(
            key, seq=seq, prev=prev, timestamp=T0 + seq, kind="post", payload={"text": text}
        )
        entries.append(e.to_bytes())
        payloads.append(data)
        prev = e.id
    return entries, payloads


def bench_entry_validate(entries: list[bytes], payloads: list[bytes], repeats: int) -> float:
    pairs = list(zip(entries, payloads, strict=True))
    now = T0 + 10**9

    def run() -> int:
        for data, payload in pairs:
            entry = decode_entry_untrusted(data)
            entry.verify()
            decode_payload_untrusted(entry, payload)
            check_timestamp(entry, now)
        return len(pairs)

    return best_rate(run, repeats)


def bench_batch(entries: list[bytes], run_len: int, repeats: int) -> tuple[float, float]:
    runs = [entries[i : i + run_len] for i in range(0, len(entries), run_len)]

    def with_decode() -> int:
        n = 0
        for raw in runs:
            run = [decode_entry_untrusted(b) for b in raw]
            verify_run(run)
            n += len(run)
        return n

    decoded = [[decode_entry_untrusted(b) for b in raw] for raw in runs]

    def verify_only() -> int:
        n = 0
        for run in decoded:
            verify_run(run)
            n += len(run)
        return n

    return best_rate(with_decode, repeats), best_rate(verify_only, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for CI smoke runs)")
    args = parser.parse_args()
    n_single = 1000 if args.quick else 5000
    run_len = 10_000
    n_runs = 1 if args.quick else 3
    repeats = 3 if args.quick else 5

    key = SigningKey.from_seed(b"\x02" * 32)
    entries, payloads = make_feed(key, run_len * n_runs)

    raw = bench_raw(n_single, repeats)
    single = bench_entry_validate(entries[:n_single], payloads[:n_single], repeats)
    batch, batch_only = bench_batch(entries, run_len, repeats)

    single_goal = 0.85 * raw
    batch_goal = 20 * raw
    print(f"raw Ed25519 verify:       {raw:12,.0f} /s", file=sys.stderr)
    print(
        f"entry validate (single):  {single:12,.0f} /s  ({single / raw:.2f} x raw)", file=sys.stderr
    )
    print(
        f"batch incl. decode:       {batch:12,.0f} /s  ({batch / raw:.1f} x raw)", file=sys.stderr
    )
    print(
        f"batch verify_run only:    {batch_only:12,.0f} /s  ({batch_only / raw:.1f} x raw)",
        file=sys.stderr,
    )
    result = {
        "bench": "ingest_verify",
        "raw_verify_per_s": round(raw),
        "entry_validate_per_s": round(single),
        "batch_verify_per_s": round(batch),
        "batch_verify_includes_decode": True,
        "batch_verify_only_per_s": round(batch_only),
        "batch_run_len": run_len,
        "entry_validate_ratio": round(single / raw, 3),
        "batch_verify_ratio": round(batch / raw, 2),
        "goal_entry_validate_per_s": round(single_goal),
        "goal_batch_verify_per_s": round(batch_goal),
        "entry_validate_goal_met": single >= single_goal,
        "batch_verify_goal_met": batch >= batch_goal,
        "python": platform.python_version(),
        "quick": args.quick,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
