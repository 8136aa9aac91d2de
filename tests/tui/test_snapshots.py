"""Snapshots of every view over fixed data and a frozen clock (pytest-textual-snapshot).

``pytest tests/tui/test_snapshots.py --snapshot-update`` rewrites them after
a deliberate change of the look; review the SVGs in __snapshots__ first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from textual.pilot import Pilot

from p2psocial.client import DaemonNotRunning
from p2psocial.tui import P2PSocialApp
from p2psocial.tui.modals import ComposeScreen, ConfirmScreen, HelpScreen
from p2psocial.tui.views import (
    EntriesScreen,
    NotificationsScreen,
    ProfileScreen,
    SearchScreen,
    ThreadScreen,
)
from tests.tui.fake import NOW, FakeClient, connector
from tests.tui.helpers import until

SIZE = (100, 34)


def fixed_app() -> P2PSocialApp:
    return P2PSocialApp(connector(FakeClient()), now=lambda: NOW, retry=60)


def after(*keys: str, screen: type[Any]) -> Callable[[Pilot[None]], Any]:
    """A run_before: wait for the first page, press ``keys``, wait for ``screen``'s page."""

    async def run(pilot: Pilot[None]) -> None:
        app: Any = pilot.app
        await until(pilot, lambda: len(app.home.entries.window) > 0, what="the first page")
        await pilot.press(*keys)
        await until(pilot, lambda: isinstance(app.screen, screen), what=str(screen))
        top = app.screen
        if isinstance(top, EntriesScreen):
            await until(pilot, lambda: top.entries.window.loaded, what="the view's page")
        await pilot.pause()

    return run


def test_home(snap_compare: Any) -> None:
    from p2psocial.tui.views import HomeScreen

    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=after(screen=HomeScreen))


def test_notifications(snap_compare: Any) -> None:
    run = after("n", screen=NotificationsScreen)
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=run)


def test_thread(snap_compare: Any) -> None:
    run = after("G", "enter", screen=ThreadScreen)
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=run)


def test_profile(snap_compare: Any) -> None:
    run = after("G", "p", screen=ProfileScreen)
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=run)


def test_search(snap_compare: Any) -> None:
    run = after("slash", *"tomatoes", "enter", screen=SearchScreen)
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=run)


def test_compose(snap_compare: Any) -> None:
    run = after("c", *"Lunch with @a", screen=ComposeScreen)
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=run)


def test_help(snap_compare: Any) -> None:
    run = after("question_mark", screen=HelpScreen)
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=run)


def test_confirm_delete(snap_compare: Any) -> None:
    run = after("d", screen=ConfirmScreen)
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=run)


def test_daemon_down(snap_compare: Any) -> None:
    @contextlib.asynccontextmanager
    async def down() -> AsyncIterator[FakeClient]:
        raise DaemonNotRunning(
            "no p2psocial daemon at /home/ada/.local/share/p2psocial/api.sock (socket not found)"
        )
        yield FakeClient()  # never reached: the connection fails first

    app = P2PSocialApp(down, now=lambda: NOW, retry=60)

    async def run(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.down is not None and app.screen is app.down, what="down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run)
