"""The app driven by Pilot against the in-memory client: views, actions, paging, retries."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from textual.pilot import Pilot

from p2psocial.client import DaemonNotRunning
from p2psocial.tui import P2PSocialApp
from p2psocial.tui.modals import ComposeScreen, ConfirmScreen, DownScreen, HelpScreen
from p2psocial.tui.views import NotificationsScreen, ProfileScreen, SearchScreen, ThreadScreen
from tests.tui.fake import ADA, BOB, ME, NOW, ROOT, TIMELINE, FakeClient, connector, entry
from tests.tui.helpers import run_pilot, screen_text, until


def new_app(client: FakeClient) -> P2PSocialApp:
    return P2PSocialApp(connector(client), now=lambda: NOW, retry=0.05)


async def loaded(pilot: Pilot[None]) -> P2PSocialApp:
    app: Any = pilot.app
    await until(pilot, lambda: len(app.home.entries.window) > 0, what="the first page")
    return app  # type: ignore[no-any-return]


def test_home_shows_names_markers_and_the_unread_count() -> None:
    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        text = screen_text(app)
        assert "ada  3h" in text
        assert "[deleted]" in text and "[withheld]" in text and "[forked @9]" in text
        assert "~Bob the builder (p2ps1qbob0…0bob)" in text
        assert ADA not in text  # names, not keys
        assert "2 unread notifications" in app.sub_title

    run_pilot(new_app(FakeClient()), script)


def test_a_live_entry_goes_on_top_marked_new_until_seen() -> None:
    client = FakeClient()

    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await pilot.press("j")  # the cursor leaves the top
        client.push_live(entry(40, BOB, "fresh from the oven", 1))
        await until(pilot, lambda: "fresh from the oven" in screen_text(app), what="live entry")
        assert app.home.entries.window.rows()[0]["text"] == "fresh from the oven"
        assert screen_text(app).startswith("● ~Bob")
        assert "1 new" in app.sub_title
        await pilot.press("k", "k")
        await until(pilot, lambda: not app.home.entries.window.unread, what="seen")
        assert not screen_text(app).startswith("●")
        # An author not followed does not reach the home timeline.
        client.push_live(entry(41, "p2ps1qstranger", "not for you", 1))
        client.push_live(entry(42, ADA, "but this is", 1))
        await until(pilot, lambda: "but this is" in screen_text(app), what="second live entry")
        assert "not for you" not in screen_text(app)

    run_pilot(new_app(client), script)


def test_compose_counts_characters_completes_and_posts() -> None:
    client = FakeClient()

    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ComposeScreen), what="compose")
        await pilot.press(*"hi @a")
        await pilot.pause()
        assert str(app.screen.query_one("#count").render()) == "5/2000"
        assert "@ada" in str(app.screen.query_one("#offers").render())
        await pilot.press("right")  # take the offer
        await pilot.press(*" #tui", "enter")
        await until(pilot, lambda: client.posted, what="the post")
        assert client.posted == [{"text": "hi @ada #tui", "reply_to": None}]

    run_pilot(new_app(client), script)


def test_an_over_long_post_is_not_sent() -> None:
    client = FakeClient()
    app = new_app(client)
    app.limit = 10

    async def script(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("c", *"x" * 11)
        await pilot.pause()
        assert app.screen.query_one("#count").has_class("over")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ComposeScreen)
        assert client.posted == []
        await pilot.press("backspace", "enter")
        await until(pilot, lambda: client.posted, what="the post")
        assert client.posted == [{"text": "x" * 10, "reply_to": None}]

    run_pilot(app, script)


def test_thread_reply_react_and_repost() -> None:
    client = FakeClient()

    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await pilot.press("G", "enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadScreen), what="thread")
        await until(pilot, lambda: "Mornings it is" in screen_text(app), what="replies")
        assert "      ada  1h" in screen_text(app)  # depth 2, indented
        await pilot.press("r", *"agreed", "enter")
        await until(pilot, lambda: client.posted, what="reply")
        assert client.posted[-1] == {"text": "agreed", "reply_to": ROOT["id"]}
        await pilot.press("e")
        await pilot.pause()
        await pilot.press("enter")  # the offered 👍
        await until(pilot, lambda: len(client.posted) == 2, what="reaction")
        assert client.posted[-1] == {"react": ROOT["id"], "emoji": "👍"}
        await until(pilot, lambda: "👍 2" in screen_text(app), what="the count")
        await pilot.press("t")
        await until(pilot, lambda: len(client.posted) == 3, what="repost")
        assert client.posted[-1] == {"repost": ROOT["id"]}

    run_pilot(new_app(client), script)


def test_a_live_reply_to_the_open_thread_reloads_it_whoever_wrote_it() -> None:
    client = FakeClient()

    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await pilot.press("G", "enter")
        await until(pilot, lambda: isinstance(app.screen, ThreadScreen), what="thread")
        await until(pilot, lambda: app.screen.entries.window.loaded, what="the thread")  # type: ignore[attr-defined]
        asked = client.calls.count(f"thread {ROOT['id']}")
        stranger = "p2ps1qstranger"  # not followed: not for the home timeline
        reply = entry(50, stranger, "a stranger replies", 1, reply_root=ROOT["id"])
        client.push_live(reply)
        await until(
            pilot,
            lambda: client.calls.count(f"thread {ROOT['id']}") > asked,
            what="the thread asked for again",
        )
        assert all(e["id"] != reply["id"] for e in app.home.entries.window.rows())

    run_pilot(new_app(client), script)


def test_delete_own_asks_first_and_refuses_others() -> None:
    client = FakeClient()

    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await pilot.press("j", "d")  # Bob's entry
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("k", "d")  # mine
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("n")
        await pilot.pause()
        assert client.posted == []
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await until(pilot, lambda: client.posted, what="delete")
        assert client.posted == [{"delete": TIMELINE[0]["id"]}]
        await until(pilot, lambda: screen_text(app).startswith("  ~Me"), what="marker")
        assert "[deleted]" in screen_text(app).split("\n\n")[0]

    run_pilot(new_app(client), script)


def test_block_and_mute_ask_first() -> None:
    client = FakeClient()

    async def script(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        app: Any = pilot.app
        await pilot.press("j", "x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("escape")
        await pilot.pause()
        assert client.posted == []
        await pilot.press("x", "y")
        await until(pilot, lambda: client.posted, what="block")
        assert client.posted == [{"block": BOB}]
        await pilot.press("m", "y")
        await until(pilot, lambda: len(client.posted) == 2, what="mute")
        assert client.posted[-1]["mute"] in (BOB, ADA)

    run_pilot(new_app(client), script)


def test_notifications_profile_search_and_help() -> None:
    client = FakeClient()

    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NotificationsScreen), what="notes")
        await until(pilot, lambda: "ada mentioned you" in screen_text(app), what="notes")
        await until(pilot, lambda: client.unread == 0, what="marked read")
        await until(pilot, lambda: "unread" not in app.sub_title, what="count cleared")
        await pilot.press("escape", "G", "p")
        await until(pilot, lambda: isinstance(app.screen, ProfileScreen), what="profile")
        card = app.screen.query_one("#card")
        await until(pilot, lambda: "Grows tomatoes" in str(card.render()), what="bio")
        assert "following 3 · followers 2" in str(card.render())
        button = app.screen.query_one("#follow")
        assert str(button.label) == "Unfollow"
        await pilot.press("f")  # ada is followed: unfollow
        await until(pilot, lambda: ADA not in app.following, what="unfollow")
        await until(pilot, lambda: str(button.label) == "Follow", what="the button")
        await pilot.click("#follow")
        await until(pilot, lambda: ADA in app.following, what="follow")
        await pilot.press("tab", "tab")
        await until(pilot, lambda: app.screen.people, what="followers")  # type: ignore[attr-defined]
        assert app.screen.people == [
            ADA,
            "p2ps1qeve0000000000000000000000000000000000000000000000000eve",
        ]  # type: ignore[attr-defined]
        await pilot.press("escape", "slash")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), what="search")
        await pilot.press(*"morning", "enter")
        await until(pilot, lambda: "Morning, before the heat." in screen_text(app), what="hits")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("escape", "h")
        await until(pilot, lambda: app.screen is app.home, what="home")

    run_pilot(new_app(client), script)


def test_long_timelines_page_lazily_and_keep_rows_bounded() -> None:
    many = [entry(i % 250, BOB, f"post {i}", i) for i in range(1200)]
    for i, e in enumerate(many):
        e["id"] = f"{i:064x}"
    client = FakeClient(many)

    async def script(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        assert client.calls == ["timeline None"]
        entries = app.home.entries
        for _ in range(60):
            entries.action_last()
            await pilot.pause(0.01)
        await until(pilot, lambda: entries.window.older is None, what="the last page")
        assert len(entries.window) <= 500
        assert entries.entry is not None and entries.entry["text"] == "post 1199"
        await pilot.press("escape")  # back to the top: the first page again
        await until(pilot, lambda: entries.window.at_top, what="the top")
        assert entries.window.rows()[0]["text"] == "post 0"

    run_pilot(new_app(client), script)


def test_daemon_down_shows_how_to_start_one_and_retries() -> None:
    attempts: list[int] = []
    up: list[bool] = []
    client = FakeClient()

    @contextlib.asynccontextmanager
    async def flaky() -> AsyncIterator[FakeClient]:
        attempts.append(1)
        if not up:
            raise DaemonNotRunning("no p2psocial daemon at /x/api.sock (socket not found)")
        yield client

    app = P2PSocialApp(flaky, now=lambda: NOW, retry=0.05, start_command="p2psocial daemon")

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: isinstance(app.screen, DownScreen), what="down screen")
        text = str(app.screen.query_one("#down").render())
        assert "No p2psocial daemon is running" in text
        assert "p2psocial daemon" in text and "socket not found" in text
        await until(pilot, lambda: len(attempts) >= 3, what="retries")
        assert app.connections == 0
        await pilot.press("question_mark")  # the help, over the down screen
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        up.append(True)
        await until(pilot, lambda: app.connections == 1, what="the retry")
        await until(pilot, lambda: app.screen is app.home, what="home")
        assert app.screen_stack == [app.home]
        await until(pilot, lambda: len(app.home.entries.window) > 0, what="the first page")
        assert app.me == ME

    run_pilot(app, script)
