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

Each figure is the best of ``--repeats`` rounds, and the rounds interleave the
four measurements (raw, single, batch, batch only, raw, ...), so that a burst
of load from elsewhere on the machine costs every figure alike instead of
skewing one ratio. ``*_cpu_per_s`` are the same rates by this process's CPU
time, which other processes' load disturbs far less than the wall clock.

Run: ``python bench/ingest_verify.py [--quick] [--single N] [--run-len N]
[--runs N] [--repeats N]``. The last line is one JSON object.
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


Rate = tuple[float, float]  # (items per wall second, items per CPU second)


def measure(fn: Callable[[], int]) -> Rate:
    """One run of ``fn``: its items per wall-clock second and per CPU second."""
    start, cpu = time.perf_counter(), time.process_time()
    n = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n / wall, n / max(cpu, 1e-9)


def best_rates(fns: dict[str, Callable[[], int]], repeats: int) -> dict[str, Rate]:
    """The best wall and CPU rate of each of ``fns`` over ``repeats`` interleaved rounds."""
    best = dict.fromkeys(fns, (0.0, 0.0))
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = measure(fn)
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu))
    return best


def raw_runner(n: int) -> Callable[[], int]:
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

    return run


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


def entry_validate_runner(entries: list[bytes], payloads: list[bytes]) -> Callable[[], int]:
    pairs = list(zip(entries, payloads, strict=True))
    now = T0 + 10**9

    def run() -> int:
        for data, payload in pairs:
            entry = decode_entry_untrusted(data)
            entry.verify()
            decode_payload_untrusted(entry, payload)
            check_timestamp(entry, now)
        return len(pairs)

    return run


def batch_runners(
    entries: list[bytes], run_len: int
) -> tuple[Callable[[], int], Callable[[], int]]:
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

    return with_decode, verify_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for CI smoke runs)")
    parser.add_argument("--single", type=int, help="entries of the single-entry path (5000)")
    parser.add_argument("--run-len", type=int, default=10_000, help="entries per batch run")
    parser.add_argument("--runs", type=int, help="batch runs (3)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds (5)")
    args = parser.parse_args()
    run_len = args.run_len
    n_runs = args.runs or (1 if args.quick else 3)
    n_single = min(args.single or (1000 if args.quick else 5000), run_len * n_runs)
    repeats = args.repeats or (3 if args.quick else 5)
    if min(run_len, n_runs, n_single, repeats) < 1:
        parser.error("sizes must be positive")

    key = SigningKey.from_seed(b"\x02" * 32)
    entries, payloads = make_feed(key, run_len * n_runs)

    with_decode, verify_only = batch_runners(entries, run_len)
    rates = best_rates(
        {
            "raw": raw_runner(n_single),
            "single": entry_validate_runner(entries[:n_single], payloads[:n_single]),
            "batch": with_decode,
            "batch_only": verify_only,
        },
        repeats,
    )
    raw, single, batch, batch_only = (rates[k][0] for k in ("raw", "single", "batch", "batch_only"))
    raw_cpu, single_cpu, batch_cpu = (rates[k][1] for k in ("raw", "single", "batch"))

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
    print(
        f"by CPU time: single {single_cpu / raw_cpu:.2f} x raw, batch {batch_cpu / raw_cpu:.1f} x raw",
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
        "raw_verify_cpu_per_s": round(raw_cpu),
        "entry_validate_cpu_per_s": round(single_cpu),
        "batch_verify_cpu_per_s": round(batch_cpu),
        "entry_validate_cpu_ratio": round(single_cpu / raw_cpu, 3),
        "batch_verify_cpu_ratio": round(batch_cpu / raw_cpu, 2),
        "single_entries": n_single,
        "batch_runs": n_runs,
        "repeats": repeats,
        "python": platform.python_version(),
        "quick": args.quick,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
