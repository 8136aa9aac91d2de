"""Running the app under asyncio from trio-mode pytest, and waiting on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

from p2psocial.tui import P2PSocialApp

#: Seconds any one Pilot test may take.
TEST_DEADLINE = 60.0


def run_pilot(
    app: P2PSocialApp,
    script: Callable[[Pilot[None]], Awaitable[None]],
    *,
    size: tuple[int, int] = (100, 34),
    deadline: float = TEST_DEADLINE,
) -> None:
    """Run ``script`` against ``app`` headless, on asyncio (Textual's loop).

    pytest here runs async tests under trio; Textual needs asyncio, so these
    tests are plain functions that start their own asyncio loop.
    """

    async def main() -> None:
        async with asyncio.timeout(deadline), app.run_test(size=size) as pilot:
            await script(pilot)

    asyncio.run(main())


async def until(
    pilot: Pilot[None], predicate: Callable[[], Any], *, within: float = 15.0, what: str = ""
) -> Any:
    """Let the app run until ``predicate()`` is truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or predicate}")
        await pilot.pause(0.02)


def screen_text(app: P2PSocialApp) -> str:
    """The text of every entry the top view shows, one block after another."""
    from p2psocial.tui.views import EntriesScreen

    top = app.screen
    if not isinstance(top, EntriesScreen):
        return ""
    entries = top.entries
    return "\n".join(entries._entry_block(e).plain for e in entries.window.rows())
