"""First contact across two real daemons: Alice's invite is all Bob's empty node has.

Alice runs ``p2psocial invite``; Bob, with no bootstrap and no peers, runs
``p2psocial follow <invite>``; his timeline then shows Alice's latest 50 posts.
The time from ``follow`` to that timeline is printed (pytest -s shows it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2psocial
from tests.daemons import Daemon, cli_json, run_cli, wait_for

pytestmark = pytest.mark.slow

POSTS = 50
#: issue 19's bound for a first timeline, on loopback.
FIRST_TIMELINE_S = 10.0


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    alice, bob = Daemon(tmp_path / "alice"), Daemon(tmp_path / "bob")
    try:
        for d in (alice, bob):
            d.init()
            d.start()
        yield alice, bob
    finally:
        for d in (alice, bob):
            d.__exit__(None, None, None)


def _timeline_ids(bob: Daemon) -> set[str]:
    with p2psocial.connect(api=bob.info["api"]) as c:
        return {e["id"] for e in c.call("timeline", limit=POSTS)["items"]}


def test_follow_an_invite_with_nothing_else(pair: tuple[Daemon, Daemon]) -> None:
    alice, bob = pair
    with p2psocial.connect(api=alice.info["api"]) as c:
        posted = [c.call("post", text=f"alice's post {i}")["id"] for i in range(POSTS + 5)]
    latest = set(posted[-POSTS:])

    invite_line = run_cli(alice.data_dir, "invite", "--no-qr").stdout.strip()
    assert invite_line.startswith("p2psinv1") and "\n" not in invite_line
    [made] = cli_json(alice.data_dir, "invite")
    alice_id = made["identity"]
    assert made["peer_addrs"] == [alice.addr("peer")], made  # loopback: where she listens

    started = time.monotonic()
    out = run_cli(bob.data_dir, "follow", invite_line)
    assert f"following {alice_id}" in out.stdout, out
    assert f"connected to {alice.addr('peer')}" in out.stdout, out
    wait_for(lambda: latest <= _timeline_ids(bob), timeout=60, what="Alice's latest posts")
    took = time.monotonic() - started
    print(f"\nfollow <invite> to a timeline of Alice's latest {POSTS} posts: {took:.2f} s")
    assert took < 60

    # The same through the CLI, as Bob reads it.
    shown = [e for e in cli_json(bob.data_dir, "timeline", "--limit", str(POSTS)) if "id" in e]
    assert {e["id"] for e in shown} >= latest and {e["author"] for e in shown} == {alice_id}

    # Following it again says so; JSON carries the whole result.
    [again] = cli_json(bob.data_dir, "follow", invite_line)
    assert again["followed"] is False and again["identity"] == alice_id


def test_invite_recommends_and_a_bad_invite_is_refused(pair: tuple[Daemon, Daemon]) -> None:
    alice, bob = pair
    carol = run_cli(Path(str(bob.data_dir) + "-carol"), "--json", "init").stdout
    carol_id = json.loads(carol)["identity"]
    line = run_cli(alice.data_dir, "invite", "--no-qr", "--expires", "7d", "--recommend", carol_id)
    text = line.stdout.strip()
    assert "expires" in line.stderr

    cut = run_cli(bob.data_dir, "follow", text[:-3], check=False)
    assert cut.returncode == 1 and "not a valid invite" in cut.stderr, cut
    assert cli_json(bob.data_dir, "following") == []

    out = run_cli(bob.data_dir, "follow", text.upper()).stdout  # as a QR code gives it
    assert "recommends:" in out and f"p2psocial follow {carol_id}" in out, out

    bad = run_cli(alice.data_dir, "invite", "--expires", "soon", check=False)
    assert bad.returncode != 0 and "duration" in bad.stderr


# The whole first-contact path of issue 19: Alice runs invite; Bob, whose node is
# empty and has no bootstrap, runs follow <invite> and waits for her latest posts;
# he sees them under her self-chosen name, gives her a petname, replies with
# @alice, and Alice finds the reply in notifications.
def test_invite_follow_name_reply_notify(pair: tuple[Daemon, Daemon]) -> None:
    alice, bob = pair
    run_cli(alice.data_dir, "profile", "set", "--name", "Alice")
    posted = [
        cli_json(alice.data_dir, "post", f"alice's post {i}")[0]["id"] for i in range(POSTS + 10)
    ]
    latest = posted[-POSTS:]
    invite = run_cli(alice.data_dir, "invite", "--no-qr").stdout.strip()
    alice_id = cli_json(alice.data_dir, "id")[0]["identity"]
    bob_id = cli_json(bob.data_dir, "id")[0]["identity"]

    # Bob has nothing but the invite: follow waits for the latest posts and
    # says how far it got, one JSON line per change.
    started = time.monotonic()
    lines = cli_json(bob.data_dir, "follow", invite, "--wait")
    took = time.monotonic() - started
    print(f"\nfollow <invite> --wait returned after {took:.2f} s")
    assert lines[0]["identity"] == alice_id and lines[0]["connected"], lines[0]
    progress = [line["sync_progress"] for line in lines if "sync_progress" in line]
    assert progress and progress[-1]["recent_complete"], lines

    timeline = [e for e in cli_json(bob.data_dir, "timeline", "--limit", str(POSTS)) if "id" in e]
    assert [e["id"] for e in timeline] == latest[::-1]
    # Her name is the one she chose, and marked so: Bob has not named her.
    assert {e["author_name"]["profile"] for e in timeline} == {"Alice"}
    assert {e["author_name"]["petname"] for e in timeline} == {None}
    shown = run_cli(bob.data_dir, "timeline", "--limit", "1").stdout
    assert "~Alice" in shown, shown

    # Bob names her; his reply's @alice becomes a mention of her key.
    run_cli(bob.data_dir, "name", "set", "alice", alice_id)
    assert "alice" in run_cli(bob.data_dir, "timeline", "--limit", "1").stdout.split()
    [replied] = cli_json(bob.data_dir, "reply", latest[-1], "thanks @alice, #firstcontact")
    [thread] = [
        e for e in cli_json(bob.data_dir, "thread", latest[-1]) if e.get("id") == replied["id"]
    ]
    assert thread["mentions"] == [alice_id] and thread["tags"] == ["firstcontact"]

    # Alice does not follow Bob: the reply reaches her as a reply to her post.
    def reply_notified() -> bool:
        items = [n for n in cli_json(alice.data_dir, "notifications", "--keep-unread") if "id" in n]
        return any(n["id"] == replied["id"] for n in items)

    wait_for(reply_notified, timeout=30, what="Bob's reply in Alice's notifications")
    [note] = [
        n
        for n in cli_json(alice.data_dir, "notifications", "--keep-unread")
        if n.get("id") == replied["id"]
    ]
    assert note["author"] == bob_id and note["notification"] == "reply" and note["unread"]
