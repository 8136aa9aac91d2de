"""Crash safety: a writer is SIGKILLed at random moments; nothing acknowledged is lost.

Every other run is a concurrent writer (eight tasks posting to two own feeds
while peers' batches are ingested, and one sending posts that fail), so own
posts share group commits with acts that fail; each entry it reported
acknowledged must be there, at its seq, after the kill, and every feed's
counters must match its rows.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2psocial.storage import Store

WRITER = Path(__file__).with_name("durability_writer.py")
REPO = Path(__file__).resolve().parents[2]
KILLS = 20


def _check(path: Path, committed: dict[bytes, int], acked: dict[bytes, tuple[bytes, int]]) -> None:
    with Store.open(path) as store:
        conn = store.connection
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO post_fts(post_fts) VALUES ('integrity-check')")
        for fid, n, lo, hi, head in conn.execute(
            "SELECT e.fid, count(*), min(e.seq), max(e.seq), f.head_seq "
            "FROM entries e JOIN feeds f USING (fid) GROUP BY e.fid"
        ):
            assert (lo, hi, head) == (1, n, n), f"feed {fid} is not a gap-free run"
        # The feed rows' counters agree with the rows (acts that failed inside
        # a group left nothing behind, not even in the counters).
        for fid, n, counted in conn.execute(
            "SELECT f.fid, count(e.eid), f.n_entries FROM feeds f "
            "LEFT JOIN entries e USING (fid) GROUP BY f.fid"
        ):
            assert n == counted, f"feed {fid} counts {counted} entries, holds {n}"
        heads = store.heads()
        for author, seq in committed.items():
            assert heads.get(author, 0) >= seq, "an entry reported committed is missing"
        for id_, (author, seq) in acked.items():
            row = conn.execute(
                "SELECT e.seq, f.author FROM entries e JOIN feeds f USING (fid) WHERE e.id = ?",
                (id_,),
            ).fetchone()
            assert row == (seq, author), f"acknowledged entry {id_.hex()} is missing"


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    rng = random.Random(20261128)
    committed: dict[bytes, int] = {}
    acked: dict[bytes, tuple[bytes, int]] = {}
    grouped = failed = 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Half the runs start a trio store and wait for a batch: more time than before.
    deadline = time.monotonic() + 90
    for run in range(KILLS):
        assert time.monotonic() < deadline, "durability test is too slow"
        mode = ["--concurrent"] if run % 2 else []
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), *mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        # Wait for the writer to be committing, then kill it a random moment later.
        first = proc.stdout.readline()
        assert first.startswith(b"C "), proc.stderr.read() if proc.stderr else first
        # A concurrent writer runs on until its first counters line, so that
        # every such run reports its groups, however slow the machine.
        while mode and b"\nS " not in b"\n" + first:
            line = proc.stdout.readline()
            if not line:
                break
            first += line
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        # Not communicate(): it would skip what readline() already buffered.
        rest = proc.stdout.read()
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        # The last line may be cut short by the kill; only whole lines count.
        for line in (first + rest).split(b"\n")[:-1]:
            fields = line.decode().split()
            if fields[0] == "S":  # group-commit counters: commits, acts, failed acts
                grouped = max(grouped, int(fields[2]) - int(fields[1]))
                failed = max(failed, int(fields[3]))
                continue
            _, author_hex, seq, id_hex = fields
            author = bytes.fromhex(author_hex)
            committed[author] = max(committed.get(author, 0), int(seq))
            acked[bytes.fromhex(id_hex)] = (author, int(seq))
        _check(path, committed, acked)
    assert len(committed) == 6 and min(committed.values()) > 25
    # The concurrent runs' posts shared commits (acts beyond one per commit),
    # and acts failed among them.
    assert grouped > 0 and failed > 0


def test_wal_file_is_used(tmp_path: Path) -> None:
    with Store.open(tmp_path / "n.db") as s:
        s.set_setting("k", 1)
        assert (tmp_path / "n.db-wal").exists()
    conn = sqlite3.connect(tmp_path / "n.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
