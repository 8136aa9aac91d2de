"""Names through the CLI on two real daemons: petnames, inline @mentions and
#tags, and how timelines show petnames, self-chosen names and short keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psocial.protocol.identity import SigningKey, identity_to_text
from tests.daemons import Daemon, cli_json, run_cli, wait_for

pytestmark = pytest.mark.slow


def short(identity: str) -> str:
    return f"{identity[:10]}…{identity[-4:]}"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    me = Daemon(tmp_path / "me")
    me.init()
    with me:
        me.start()
        bob = Daemon(tmp_path / "bob", bootstrap=[me.info["dht"]], peers=[me.addr("peer")])
        bob.init()
        with bob:
            bob.start()
            yield me, bob


def ident(d: Daemon) -> str:
    [rec] = cli_json(d.data_dir, "id")
    return str(rec["identity"])


def heads(d: Daemon) -> list[str]:
    """The timeline's head lines (``when  who  #seq``), as a person reads them."""
    out = run_cli(d.data_dir, "timeline", "--limit", "100").stdout
    return [line for line in out.splitlines() if not line.startswith(" ") and "  #" in line]


def test_names_mentions_and_tags_through_the_cli(pair: tuple[Daemon, Daemon]) -> None:
    me, bob = pair
    me_id, bob_id = ident(me), ident(bob)
    alice_id = identity_to_text(SigningKey.generate().public_key)

    # Bob calls himself "alice"; my alice is someone else.
    run_cli(bob.data_dir, "profile", "set", "--name", "alice")
    [named] = cli_json(me.data_dir, "name", "set", "alice", alice_id)
    assert named == {"name": "alice", "identity": alice_id, "previous": None}
    bad = run_cli(me.data_dir, "name", "set", "p2ps1x", alice_id, check=False)
    assert bad.returncode == 1 and "p2ps1" in bad.stderr
    cli_json(me.data_dir, "follow", bob_id)

    [post] = cli_json(me.data_dir, "post", "hi @Alice, see #Tag and #tag")
    assert set(post) == {"id", "seq"}
    warned = run_cli(me.data_dir, "post", "hello @nobody")
    assert "@nobody is not one of your petnames" in warned.stderr

    [bob_post] = cli_json(bob.data_dir, "post", "it is me, your alice")
    wait_for(
        lambda: any(e["id"] == bob_post["id"] for e in cli_json(me.data_dir, "timeline")),
        timeout=30,
        what="bob's post on my node",
    )
    wait_for(
        lambda: any(
            e["author_name"]["profile"] == "alice"
            for e in cli_json(me.data_dir, "timeline")
            if e["author"] == bob_id
        ),
        timeout=30,
        what="bob's profile on my node",
    )
    entries = {e["id"]: e for e in cli_json(me.data_dir, "timeline")}
    mine = entries[post["id"]]
    assert (mine["mentions"], mine["tags"]) == ([alice_id], ["Tag"])
    assert mine["names"][alice_id] == {"petname": "alice", "profile": None}
    assert entries[bob_post["id"]]["author_name"] == {"petname": None, "profile": "alice"}

    # Text: my posts by short key (no petname, no profile), bob's self-chosen
    # "alice" marked and keyed, so it does not read as my petname alice.
    lines = heads(me)
    assert any(f"  {short(me_id)}  #" in line for line in lines), lines
    assert any(f"  ~alice ({short(bob_id)})  #" in line for line in lines), lines
    assert not any("  alice  #" in line for line in lines), lines
    out = run_cli(me.data_dir, "timeline").stdout
    assert "mentions alice  tags #Tag" in out

    # My own name for bob wins, and works wherever an identity is taken.
    cli_json(me.data_dir, "name", "set", "bobby", bob_id)
    assert any("  bobby  #" in line for line in heads(me))
    [prof] = cli_json(me.data_dir, "profile", "bobby")
    assert (prof["identity"], prof["petname"], prof["name"]) == (bob_id, "bobby", "alice")
    feed = cli_json(me.data_dir, "feed", "bobby")
    assert [e["id"] for e in feed] == [bob_post["id"]]
    cli_json(me.data_dir, "unfollow", "bobby")
    listed = cli_json(me.data_dir, "name", "list")
    assert [(i["name"], i["identity"], i["profile"]) for i in listed] == [
        ("alice", alice_id, None),
        ("bobby", bob_id, "alice"),
    ]
    text = run_cli(me.data_dir, "name", "list").stdout
    assert f"bobby  {bob_id}  (calls itself ~alice)" in text
    [removed] = cli_json(me.data_dir, "name", "rm", "bobby")
    assert removed == {"removed": "bobby", "identity": bob_id}
    gone = run_cli(me.data_dir, "feed", "bobby", check=False)
    assert gone.returncode == 1 and "no petname 'bobby'" in gone.stderr
