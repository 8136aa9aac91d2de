"""Short ids and guarded actions, through the ``p2psocial`` command and a real daemon."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psocial import SigningKey, identity_to_text
from tests.daemons import Daemon, cli_json, run_cli, running_daemon

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("guards") / "node") as d:
        yield d


def last_seq(d: Daemon) -> int:
    """The seq of a fresh post, minus one: the feed's head before it."""
    [marker] = cli_json(d.data_dir, "post", "marker")
    return int(marker["seq"])


def refused(d: Daemon, *args: str, says: str) -> None:
    """``args`` exits 1 with one line naming the problem, and publishes nothing."""
    before = last_seq(d)
    proc = run_cli(d.data_dir, *args, check=False)
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert says in line, line
    assert last_seq(d) == before + 1  # only the marker was published in between


def test_a_prefix_from_the_screen_names_the_entry(daemon: Daemon) -> None:
    [root] = cli_json(daemon.data_dir, "post", "the root of a thread")
    reply_out = run_cli(daemon.data_dir, "reply", root["id"][:12], "replying by prefix").stdout
    reply_id = re.search(r"\b([0-9a-f]{64})\b", reply_out)
    assert reply_out.startswith("replied") and reply_id, reply_out
    # The screen shows a reply's parent as a 12-digit prefix: use that.
    shown = run_cli(daemon.data_dir, "thread", reply_id.group(1)).stdout
    prefix = re.search(r"reply to ([0-9a-f]{12})\b", shown)
    assert prefix and root["id"].startswith(prefix.group(1)), shown
    [react] = cli_json(daemon.data_dir, "react", prefix.group(1), "🌱")
    assert react["seq"] >= 1
    items = cli_json(daemon.data_dir, "thread", prefix.group(1)[:8])
    assert [e["id"] for e in items] == [root["id"], reply_id.group(1)]
    assert items[0]["reactions"] == {"🌱": 1}


def test_guarded_actions_exit_1_and_publish_nothing(daemon: Daemon, tmp_path: Path) -> None:
    friend = identity_to_text(SigningKey.generate().public_key)
    cli_json(daemon.data_dir, "follow", friend)
    refused(daemon, "follow", friend, says="already follow")
    cli_json(daemon.data_dir, "unfollow", friend)
    refused(daemon, "unfollow", friend, says="do not follow")

    [gone] = cli_json(daemon.data_dir, "post", "to be deleted")
    cli_json(daemon.data_dir, "delete", gone["id"][:10])
    refused(daemon, "delete", gone["id"], says="already deleted")

    elsewhere = secrets.token_hex(32)
    refused(daemon, "react", elsewhere, "👍", says="--force")
    [forced] = cli_json(daemon.data_dir, "react", "--force", elsewhere, "👍")
    assert forced["seq"] >= 1

    refused(daemon, "post", "   ", says="empty")
    refused(daemon, "thread", elsewhere, says=elsewhere)
    refused(daemon, "explain", elsewhere[:8], says=elsewhere[:8])
    refused(daemon, "thread", "abc", says="at least 8")
