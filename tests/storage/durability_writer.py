"""Writer process for the durability test: ingests batches until killed.

Usage: python durability_writer.py DB_PATH

After each committed batch it prints ``C <author hex> <seq>`` for every entry
of the batch, then flushes stdout, so everything printed was committed first.
"""

from __future__ import annotations

import sys

from p2psocial.protocol.entries import create_entry
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage import Store

NOW = 1_700_000_000_000
AUTHORS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
OWN = SigningKey.from_seed(b"\x77" * 32)


def main(path: str) -> None:
    store = Store.open(path)
    out = sys.stdout
    n = 0
    while True:
        n += 1
        items = []
        reported = []
        for k in AUTHORS:
            head = store.head(k.public_key)
            seq, prev = (head[0] + 1, head[1]) if head else (1, None)
            for _ in range(25):
                entry, data = create_entry(
                    k,
                    seq=seq,
                    prev=prev,
                    timestamp=NOW + seq,
                    kind="post",
                    payload={"text": f"entry {seq} of batch {n} with some words"},
                )
                items.append((entry.to_bytes(), data))
                reported.append((k.public_key, seq))
                seq, prev = seq + 1, entry.id
        outcomes = store.ingest(items, now_ms=NOW)
        assert all(o.status == "stored" for o in outcomes), outcomes
        own = store.append_local(OWN, "post", {"text": f"own post {n}"}, now_ms=NOW + n)
        reported.append((OWN.public_key, own.seq))
        out.write("".join(f"C {a.hex()} {s}\n" for a, s in reported))
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
