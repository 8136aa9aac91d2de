"""A reaction that is not exactly one emoji (spec/protocol.md §5.4) is refused
by a real daemon before anything is signed: one line, exit non-zero, nothing
published. Driven only through the CLI, as a user would."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.daemons import Daemon, cli_json, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module, with one post of its own to react to."""
    with Daemon(tmp_path_factory.mktemp("reaction") / "node") as d:
        d.init()
        d.start()
        yield d


@pytest.fixture(scope="module")
def post_id(daemon: Daemon) -> str:
    # An entry the node holds, so that only the emoji rule can refuse.
    out = run_cli(daemon.data_dir, "--json", "post", "something to react to").stdout
    return str(json.loads(out)["id"])


def _feed_ids(d: Daemon) -> list[str]:
    """Every entry of this node's own feed, reactions included."""
    return [e["id"] for e in cli_json(d.data_dir, "feed", "--all", "--limit", "100") if "id" in e]


@pytest.mark.parametrize(
    "emoji", ["hello", "+1", "👍👍", "🏻", "\u200d", "🇫", "👍\u0301", "x" * 17, "😀" * 17]
)
def test_non_emoji_reaction_is_refused_and_nothing_published(
    daemon: Daemon, post_id: str, emoji: str
) -> None:
    before = _feed_ids(daemon)
    proc = run_cli(daemon.data_dir, "react", post_id, emoji, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "react.emoji" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert _feed_ids(daemon) == before


def test_the_message_says_what_a_reaction_must_be(daemon: Daemon, post_id: str) -> None:
    proc = run_cli(daemon.data_dir, "react", post_id, "hello", check=False)
    assert proc.returncode != 0
    assert "must be exactly one emoji" in proc.stderr
    assert "U+0068" in proc.stderr


@pytest.mark.parametrize("emoji", ["👍", "❤️", "👨‍👩‍👧‍👦", "🇫🇷", "1️⃣"])
def test_one_emoji_is_published(daemon: Daemon, post_id: str, emoji: str) -> None:
    before = _feed_ids(daemon)
    run_cli(daemon.data_dir, "react", post_id, emoji)
    after = _feed_ids(daemon)
    assert len(after) == len(before) + 1
