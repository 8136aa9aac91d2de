"""Moderation across a network of five real daemons, driven through the CLI.

A, B, C, D and X run as separate processes and find each other through the
DHT. Each scenario controls who can serve a feed by following and by stopping
daemons, so that "relayed through A" or "through C" is what is tested.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemons import Daemon, cli_json, run_cli, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daemon]]:
    root = tmp_path_factory.mktemp("moderation")
    nodes: dict[str, Daemon] = {}
    try:
        for name in ("a", "b", "c", "d", "x"):
            boot = [nodes["a"].info["dht"]] if nodes else []
            d = Daemon(root / name, bootstrap=boot)
            d.init()
            d.start()
            nodes[name] = d
        yield nodes
    finally:
        for d in nodes.values():
            d.__exit__(None, None, None)


def ident(d: Daemon) -> str:
    return str(cli_json(d.data_dir, "id")[0]["identity"])


def feed_of(viewer: Daemon, author: Daemon) -> dict[str, dict]:
    return {
        e["id"]: e
        for e in cli_json(viewer.data_dir, "feed", ident(author), "--all", "--limit", "200")
    }


def text_on(viewer: Daemon, author: Daemon, entry_id: str) -> str | None:
    e = feed_of(viewer, author).get(entry_id)
    return None if e is None else e["text"]


def restart(d: Daemon) -> None:
    d.stop()
    d.start()


def test_block_purges_and_is_never_relayed(net: dict[str, Daemon]) -> None:
    a, b, x = net["a"], net["b"], net["x"]
    cli_json(a.data_dir, "follow", ident(x))
    [post] = cli_json(x.data_dir, "post", "x says something objectionable")
    wait_for(lambda: text_on(a, x, post["id"]), timeout=20, what="x's post on a")

    x.stop()  # from now on, only A could serve X's feed
    [res] = cli_json(a.data_dir, "block", ident(x), "--reason", "spam")
    assert res["public"] is True
    assert text_on(a, x, post["id"]) is None
    assert cli_json(a.data_dir, "search", "objectionable") == []
    [why] = cli_json(a.data_dir, "explain", post["id"])
    assert any("blocked by this node's owner" in w for w in why["why"])

    # B does not replicate X, so reading X's feed peeks it from B's peers,
    # and A is the only one up. The read returns when the peek is done (A
    # does not answer peeks of a feed it blocked, so at the node's own 5 s
    # peek deadline). Whatever B shows of X then, no text came from A; and
    # A holds none to give (checked above).
    seen = feed_of(b, x)
    assert all(e["text"] is None for e in seen.values()), seen
    assert post["id"] not in seen or seen[post["id"]]["text"] is None
    cli_json(b.data_dir, "follow", ident(x))
    x.start()


def test_subscribed_blocklist_follows_its_owner(net: dict[str, Daemon]) -> None:
    a, b, x = net["a"], net["b"], net["x"]
    [post] = cli_json(x.data_dir, "post", "x posts again, reachable by b")
    wait_for(lambda: text_on(b, x, post["id"]), timeout=20, what="x's post on b (direct from x)")

    cli_json(b.data_dir, "policy", "set", "blocklists", ident(a))
    wait_for(
        lambda: text_on(b, x, post["id"]) is None, timeout=20, what="a's blocklist applied on b"
    )
    [why] = cli_json(b.data_dir, "explain", post["id"])
    assert any(ident(a) in w and "blocklist" in w for w in why["why"])

    cli_json(a.data_dir, "unblock", ident(x))
    wait_for(lambda: text_on(b, x, post["id"]), timeout=30, what="x back on b after a unblocked")


def test_delete_is_honoured_everywhere_and_the_feed_still_syncs(net: dict[str, Daemon]) -> None:
    a, b, x = net["a"], net["b"], net["x"]
    [post] = cli_json(x.data_dir, "post", "x will delete this")
    for d in (a, b):
        wait_for(lambda d=d: text_on(d, x, post["id"]), timeout=20, what="the post to spread")
    cli_json(x.data_dir, "delete", post["id"])
    for d in (a, b, x):
        wait_for(lambda d=d: feed_of(d, x)[post["id"]]["deleted"], timeout=20, what="the delete")
        assert text_on(d, x, post["id"]) is None
    [later] = cli_json(x.data_dir, "post", "x after the delete")
    for d in (a, b):
        wait_for(lambda d=d: text_on(d, x, later["id"]), timeout=20, what="a later post")


def test_mute_hides_but_still_relays(net: dict[str, Daemon]) -> None:
    b, c, d = net["b"], net["c"], net["d"]
    cli_json(c.data_dir, "follow", ident(b))
    [post] = cli_json(b.data_dir, "post", "b is noisy but harmless")
    wait_for(lambda: text_on(c, b, post["id"]), timeout=20, what="b's post on c")
    cli_json(c.data_dir, "mute", ident(b))
    assert post["id"] not in {e["id"] for e in cli_json(c.data_dir, "timeline", "--limit", "100")}
    assert text_on(c, b, post["id"]) == "b is noisy but harmless"  # still stored

    b.stop()  # only C holds B's feed now
    try:
        cli_json(d.data_dir, "follow", ident(b))
        wait_for(lambda: text_on(d, b, post["id"]), timeout=30, what="b's post relayed to d by c")
    finally:
        b.start()


def test_quota_refuses_with_a_reason_and_spares_others(net: dict[str, Daemon]) -> None:
    c, d, x = net["c"], net["d"], net["x"]
    cli_json(d.data_dir, "policy", "set", "quota_entries_per_day", "2")
    cli_json(d.data_dir, "follow", ident(x))
    x_ids = [cli_json(x.data_dir, "post", f"x flood {i}")[0]["id"] for i in range(3)]
    wait_for(lambda: x_ids[-1] in feed_of(d, x), timeout=20, what="x's envelopes on d")
    held = feed_of(d, x)
    # Catch-up brings X's older entries first, so the quota is spent before the flood.
    refused = [i for i in x_ids if held[i]["payload_state"] != "present"]
    assert refused, held
    [why] = cli_json(d.data_dir, "explain", refused[-1])
    assert any("quota_entries_per_day (2)" in w for w in why["why"]), why

    [other] = cli_json(c.data_dir, "post", "c is not affected by x's quota")
    cli_json(d.data_dir, "follow", ident(c))
    wait_for(lambda: text_on(d, c, other["id"]), timeout=20, what="c's post on d")
    pol = cli_json(d.data_dir, "policy", "show")[0]
    assert pol["quota_entries_per_day"] == 2
    bad = run_cli(d.data_dir, "policy", "set", "hops", "7", check=False)
    assert bad.returncode != 0 and "hops" in bad.stderr
