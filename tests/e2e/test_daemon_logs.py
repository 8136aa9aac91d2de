"""A daemon says what it does at INFO, and no kind of line floods its log.

Real daemons on 127.0.0.1 with the test intervals shortened through the
environment (``P2PSOCIAL_TEST_REPEAT_INTERVAL``, ``..._SUMMARY_INTERVAL``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import trio

from p2psocial.node.activity import REPEAT_INTERVAL_ENV, SUMMARY_INTERVAL_ENV
from p2psocial.node.replication.transport import open_secure_link
from p2psocial.protocol.identity import SigningKey, node_id_from_public_key
from tests.daemons import Daemon, cli_env, cli_json, run_cli, wait_for

pytestmark = pytest.mark.slow

LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>[A-Z]+) (?P<name>\S+): (?P<msg>.*)$"
)
HELD = re.compile(r" \(and (\d+) more like this since the last such line\)$")
SUMMARY = re.compile(
    r"^summary: peers (\d+), feeds (\d+), DHT contacts (\d+); "
    r"last [\d.]+ s: entries in (\d+) \((\d+) new\), out (\d+)$"
)


def info_lines(d: Daemon) -> list[tuple[datetime, str, str]]:
    """(time, logger, message) of every INFO line in the daemon's log."""
    found = []
    for line in d.log().splitlines():
        m = LINE.match(line)
        if m and m["level"] == "INFO":
            at = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f")
            found.append((at, m["name"], m["msg"]))
    return found


def messages(d: Daemon, pattern: str) -> list[str]:
    return [msg for _, _, msg in info_lines(d) if re.search(pattern, msg)]


def summaries(d: Daemon) -> list[tuple[int, ...]]:
    return [
        tuple(int(g) for g in m.groups())
        for _, _, msg in info_lines(d)
        if (m := SUMMARY.match(msg))
    ]


def short(identity: str) -> str:
    return f"{identity[:10]}…{identity[-4:]}"


def env(repeat: float, summary: float = 600.0) -> dict[str, str]:
    return {**cli_env(), REPEAT_INTERVAL_ENV: str(repeat), SUMMARY_INTERVAL_ENV: str(summary)}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon, str]]:
    """A, with three posts, and B, linked to A and following it; A's identity."""
    a = Daemon(tmp_path / "a", env=env(repeat=1.0, summary=1.5))
    b: Daemon | None = None
    try:
        ident = a.init()
        a.start()
        for i in range(3):
            run_cli(a.data_dir, "post", f"hello {i}")
        b = Daemon(tmp_path / "b", peers=[a.addr("peer")], env=env(repeat=1.0, summary=1.5))
        b.init()
        b.start()
        run_cli(b.data_dir, "follow", ident)
        yield a, b, ident
    finally:
        for d in (b, a):
            if d is not None:
                d.kill()


def test_links_catch_up_relaying_and_summary_are_logged(pair: tuple[Daemon, Daemon, str]) -> None:
    a, b, ident = pair
    a_node, b_node = a.info["node_id"][:12], b.info["node_id"][:12]
    seq = max(e["seq"] for e in cli_json(a.data_dir, "feed"))
    a_port = a.addr("peer").rpartition(":")[2]

    wait_for(
        lambda: messages(b, rf"^link made: peer {a_node} at 127\.0\.0\.1:{a_port} \(outbound\)$"),
        what="B's link made line",
    )
    wait_for(
        lambda: messages(a, rf"^link made: peer {b_node} at 127\.0\.0\.1:\d+ \(inbound\)$"),
        what="A's link made line",
    )
    wait_for(
        lambda: messages(
            b,
            rf"^feed {re.escape(short(ident))} caught up: seq {seq} from peer {a_node} \(\d+ new\)",
        ),
        what="B's catch-up line",
    )
    relayed = wait_for(lambda: messages(a, r"^relaying: sent \d+ entries"), what="relaying")
    assert re.match(
        r"^relaying: sent \d+ entries to peers in the last [\d.]+ s \(1 linked\)$", relayed[0]
    )

    # Entries in and out over the summaries add up to what moved: B took
    # A's `seq` entries, all new, and A sent exactly those.
    wait_for(
        lambda: sum(s[3] for s in summaries(b)) >= seq, what="B's summaries to count the entries"
    )
    wait_for(
        lambda: sum(s[5] for s in summaries(a)) >= seq, what="A's summaries to count the entries"
    )
    b_sums, a_sums = summaries(b), summaries(a)
    assert sum(s[3] for s in b_sums) == sum(s[4] for s in b_sums) == seq
    assert sum(s[5] for s in a_sums) == seq
    assert sum(s[5] for s in b_sums) == 0  # A follows nobody: B relays nothing to it
    assert b_sums[-1][:2] == (1, 2)  # one peer; B's own feed and A's

    a.stop()
    wait_for(
        lambda: messages(
            b, rf"^link lost: peer {a_node} at 127\.0\.0\.1:{a_port} \(outbound\): \w+$"
        ),
        what="B's link lost line",
    )
    wait_for(lambda: summaries(b)[-1][0] == 0, what="B's summary to show no peers")


async def _flap(port: int, key: SigningKey) -> None:
    """Link to the daemon as a peer, wait for its first message, hang up."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            framed, _ = await open_secure_link(stream, key, 0)
            await framed.receive_frame()  # the daemon has made the link
        finally:
            await stream.aclose()


def test_a_flapping_link_is_logged_once_per_interval_with_a_count(tmp_path: Path) -> None:
    interval = 2.0
    with Daemon(tmp_path / "a", env=env(repeat=interval)) as a:
        a.init()
        a.start()
        port = int(a.addr("peer").rpartition(":")[2])
        key = SigningKey.generate()
        peer = node_id_from_public_key(key.public_key).hex()[:12]
        made, lost = rf"^link made: peer {peer} ", rf"^link lost: peer {peer} "

        def counted(pattern: str) -> list[str]:
            return [m for m in messages(a, pattern) if HELD.search(m)]

        # Flap until a link-made and a link-lost line with a count have come
        # (past one interval); bounded, whatever the machine's speed. The
        # daemon writes "link made" before its first message, so each flap's
        # line, if written, is in the log when the flap returns.
        flaps = since_line = 0
        while not (counted(made) and counted(lost)):
            assert flaps < 200, f"no counted lines after {flaps} flaps:\n{a.log()}"
            before = len(messages(a, made))
            trio.run(_flap, port, key)
            flaps += 1
            now_made = messages(a, made)
            if len(now_made) > before:
                assert len(now_made) == before + 1
                m = HELD.search(now_made[-1])
                # Every flap since the last line written is counted in this one.
                assert (int(m[1]) if m else 0) == since_line, (now_made, since_line)
                since_line = 0
            else:
                since_line += 1
            trio.run(trio.sleep, 0.05)

        for pattern in (made, lost):
            lines = [(at, msg) for at, _, msg in info_lines(a) if re.search(pattern, msg)]
            held = sum(int(m[1]) for _, msg in lines if (m := HELD.search(msg)))
            # One line per key per interval (the log's clock and the daemon's
            # differ by rounding only), and no event counted twice.
            gaps = [(t2 - t1).total_seconds() for (t1, _), (t2, _) in itertools.pairwise(lines)]
            assert gaps and min(gaps) >= interval - 0.01, (pattern, gaps)
            assert held >= 1
            assert len(lines) + held <= flaps


def test_status_tells_whether_the_daemon_is_up(tmp_path: Path) -> None:
    """What the README's "Run it in the background" says about ``p2psocial status``."""
    d = Daemon(tmp_path / "a")
    ident = d.init()
    down = run_cli(d.data_dir, "status", check=False)
    assert down.returncode != 0 and down.stdout == ""
    assert down.stderr.startswith("p2psocial: no p2psocial daemon at ")
    with d:
        d.start()
        up = run_cli(d.data_dir, "status", check=False)
        assert up.returncode == 0, up.stderr
        assert ident in up.stdout
        # The counters the README's failure policy names, by the command it names.
        stats = json.loads(run_cli(d.data_dir, "--json", "statistics").stdout)
        assert {"dht", "replication", "api"} <= set(stats), sorted(stats)
        assert "internal_errors" in stats["replication"]
    assert run_cli(d.data_dir, "status", check=False).returncode != 0
