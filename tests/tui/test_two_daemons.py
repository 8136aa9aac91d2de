"""The TUI against two real daemons: B's post shows live on A's screen; A's reply reaches B.

Each daemon is a real ``p2psocial daemon`` process on 127.0.0.1 (tests/daemons.py);
the app talks to A's through the real async client, as ``p2psocial tui`` does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from p2psocial.client import connect_async
from p2psocial.tui import P2PSocialApp
from p2psocial.tui.modals import ComposeScreen
from tests.daemons import Daemon, cli_json, wait_for
from tests.tui.helpers import run_pilot, screen_text, until

pytestmark = pytest.mark.slow

#: Seconds a post of one daemon has to reach the other (and the screen).
REACH_S = 30.0


def identity(d: Daemon) -> str:
    [rec] = cli_json(d.data_dir, "id")
    return str(rec["identity"])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    root = tmp_path_factory.mktemp("tui-pair")
    a = Daemon(root / "a")
    a.init()
    try:
        a.start()
        b = Daemon(root / "b", bootstrap=[a.info["dht"]], peers=[a.addr("peer")])
        b.init()
        try:
            b.start()
            cli_json(a.data_dir, "follow", identity(b))
            cli_json(b.data_dir, "follow", identity(a))
            cli_json(b.data_dir, "profile", "set", "--name", "Bea")
            cli_json(a.data_dir, "name", "set", "bea", identity(b))
            yield a, b
        finally:
            b.__exit__(None, None, None)
    finally:
        a.__exit__(None, None, None)


def tui_of(d: Daemon) -> P2PSocialApp:
    api = d.info["api"]
    return P2PSocialApp(lambda: connect_async(api=api), retry=0.2)


def test_a_post_on_b_appears_live_and_a_reply_from_a_reaches_b(
    pair: tuple[Daemon, Daemon],
) -> None:
    a, b = pair
    app = tui_of(a)
    seen: dict[str, Any] = {}

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.connections == 1, what="connected to A")
        await until(pilot, lambda: app.home.entries.window.loaded, what="A's first page")
        [post] = cli_json(b.data_dir, "post", "hello from B, live")
        stored = time.monotonic()
        await until(
            pilot,
            lambda: "hello from B, live" in screen_text(app),
            within=REACH_S,
            what="B's post on A's screen",
        )
        seen["latency_s"] = time.monotonic() - stored
        top = app.home.entries.window.rows()[0]
        assert top["id"] == post["id"]
        # The petname A gave B, not B's key or its self-chosen name.
        assert screen_text(app).startswith("● bea  ")
        app.home.entries.highlighted = 0
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ComposeScreen), what="compose")
        await pilot.press(*"a reply typed on A", "enter")
        await until(pilot, lambda: not isinstance(app.screen, ComposeScreen), what="sent")
        seen["post"] = post

    run_pilot(app, script, deadline=120)

    def b_has_reply() -> bool:
        items = cli_json(b.data_dir, "thread", seen["post"]["id"])
        return any(e.get("text") == "a reply typed on A" and e.get("depth") == 1 for e in items)

    wait_for(b_has_reply, timeout=REACH_S, what="A's reply in B's thread")
    print(f"B's post on A's screen after {seen['latency_s']:.3f} s")


def test_the_daemon_going_away_shows_the_down_screen_and_comes_back(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "solo")
    d.init()
    with d:
        d.start()
        app = tui_of(d)

        async def script(pilot: Pilot[None]) -> None:
            await until(pilot, lambda: app.connections == 1, what="connected")
            d.stop()
            await until(pilot, lambda: app.down is not None, within=20, what="down screen")
            assert "p2psocial daemon" in str(app.screen.query_one("#down").render())
            d.start()
            await until(pilot, lambda: app.connections == 2, within=30, what="reconnected")
            await until(pilot, lambda: app.screen is app.home, what="home again")

        run_pilot(app, script, deadline=90)
