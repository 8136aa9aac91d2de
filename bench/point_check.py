"""Bench: what the Ed25519 point check costs entry validation, in instructions.

Wall-clock rates on a shared two-core machine move by more than the few per
cent this check could cost, so this bench counts instructions instead, under
valgrind's callgrind (deterministic, and blind to what else the machine runs).
Each figure is measured in a separate process that loads the same pre-made
entries; a process that loads them and stops is the baseline subtracted from
every other, so only the measured loop is counted.

Figures, instructions per item:

* ``raw_verify``: ``cryptography`` Ed25519 verify of a 300-byte message with a
  cached key object (the reference, the same as ``bench/ingest_verify.py``'s);
* ``validate``: the live path of ``bench/ingest_verify.py`` (decode, strict
  verify, payload checks, timestamp) over one author's feed, as it is;
* ``validate_unchecked``: the same with the point check replaced by a no-op,
  which is how the code validated entries before the check was added;
* ``validate_new_authors`` / ``validate_new_authors_unchecked``: the same two
  where every entry has a different author, so the check's cache never hits
  (the worst case: one modular exponentiation per key).

The ratios ``validate / raw_verify`` with and without the check give the
check's cost in the terms of the protocol-contract issue (at most 0.03).

Run: ``python bench/point_check.py [--entries N]``. Needs ``valgrind``. The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import msgpack

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # runnable from a checkout
sys.path.insert(0, str(HERE))

from ingest_verify import T0, make_feed  # noqa: E402

from p2psocial.protocol import entries as entries_mod  # noqa: E402
from p2psocial.protocol import identity as identity_mod  # noqa: E402
from p2psocial.protocol.entries import (  # noqa: E402
    check_timestamp,
    create_entry,
    decode_entry_untrusted,
    decode_payload_untrusted,
)
from p2psocial.protocol.identity import SigningKey  # noqa: E402

MODES = (
    "baseline",
    "raw_verify",
    "validate",
    "validate_unchecked",
    "validate_new_authors",
    "validate_new_authors_unchecked",
)


def make_inputs(n: int, path: Path) -> None:
    """Write the entries every child process loads."""
    key = SigningKey.from_seed(b"\x02" * 32)
    one_author, one_payloads = make_feed(key, n)
    many: list[bytes] = []
    many_payloads: list[bytes] = []
    for i in range(n):
        k = SigningKey.from_seed(i.to_bytes(4, "big") * 8)
        e, data = create_entry(
            k, seq=1, prev=None, timestamp=T0 + 1, kind="post", payload={"text": f"hello {i}"}
        )
        many.append(e.to_bytes())
        many_payloads.append(data)
    raw_key = SigningKey.from_seed(b"\x01" * 32)
    msgs = [i.to_bytes(4, "big") * 75 for i in range(n)]
    sigs = [raw_key.sign(m) for m in msgs]
    blob = {
        "one": [one_author, one_payloads],
        "many": [many, many_payloads],
        "raw": [raw_key.public_key, sigs, msgs],
    }
    path.write_bytes(msgpack.packb(blob))


def unchecked() -> None:
    """Validate as before the point check existed: every key passes."""
    entries_mod.public_key_problem = lambda key: None  # type: ignore[assignment]
    identity_mod.public_key_problem = lambda key: None  # type: ignore[assignment]


def child(mode: str, path: Path) -> None:
    """Load the inputs, then run the loop of ``mode`` once."""
    blob = msgpack.unpackb(path.read_bytes())
    if mode == "baseline":
        return
    if mode == "raw_verify":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        pub_bytes, sigs, msgs = blob["raw"]
        verify = Ed25519PublicKey.from_public_bytes(pub_bytes).verify
        for sig, msg in zip(sigs, msgs, strict=True):
            verify(sig, msg)
        return
    if mode.endswith("_unchecked"):
        unchecked()
    feed, payloads = blob["many" if "new_authors" in mode else "one"]
    now = T0 + 10**9
    for data, payload in zip(feed, payloads, strict=True):
        entry = decode_entry_untrusted(data)
        entry.verify()
        decode_payload_untrusted(entry, payload)
        check_timestamp(entry, now)


def count(valgrind: str, mode: str, path: Path) -> int:
    """Instructions a child process executes in ``mode``."""
    proc = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            mode,
            "--inputs",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind for {mode}:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000, help="entries per measured loop")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.inputs)
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("bench/point_check.py needs valgrind (apt install valgrind)")
    n = args.entries
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inputs.msgpack"
        make_inputs(n, path)
        totals = {mode: count(valgrind, mode, path) for mode in MODES}
    per = {m: (totals[m] - totals["baseline"]) / n for m in MODES if m != "baseline"}
    raw = per["raw_verify"]
    ratios = {m: raw / per[m] for m in per if m != "raw_verify"}
    for m, v in per.items():
        print(f"{m:32s} {v:12,.0f} instructions per item", file=sys.stderr)
    for m, r in ratios.items():
        print(f"{m:32s} {r:.3f} x raw verify (instructions)", file=sys.stderr)
    result = {
        "bench": "point_check",
        "entries": n,
        "instructions_per_item": {m: round(v) for m, v in per.items()},
        "reference_raw_verify_instructions": round(raw),
        "validate_over_raw": round(ratios["validate"], 4),
        "validate_over_raw_unchecked": round(ratios["validate_unchecked"], 4),
        "point_check_cost_ratio": round(ratios["validate_unchecked"] - ratios["validate"], 4),
        "new_authors_over_raw": round(ratios["validate_new_authors"], 4),
        "new_authors_over_raw_unchecked": round(ratios["validate_new_authors_unchecked"], 4),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
