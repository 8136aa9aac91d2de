"""The app: one connection to the daemon, the views over it, and the actions they share.

The connection is a worker that connects, watches, and on any failure shows
the "daemon down" screen and tries again every ``retry`` seconds, for as long
as the app runs. Views ask :attr:`P2PSocialApp.client` for their pages; when
it is None they wait for the next connection, which reloads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from ..client import MAX_TEXT_CHARS, DaemonNotRunning
from ..errors import APIError
from .modals import ComposeScreen, ConfirmScreen, DownScreen, HelpScreen, PromptScreen
from .names import Names
from .views import (
    EntriesScreen,
    HomeScreen,
    NotificationsScreen,
    ProfileScreen,
    SearchScreen,
    ThreadScreen,
)

if TYPE_CHECKING:
    from ..client import AsyncClient

__all__ = ["Connector", "P2PSocialApp"]

#: Opens a connection to the daemon: ``connect_async`` with its arguments bound.
Connector = Callable[[], AbstractAsyncContextManager[Any]]
#: Entry kinds the home timeline shows.
TIMELINE_KINDS = ["post", "repost"]
#: Seconds a fresh connection has to answer the set-up requests (the watches,
#: status, follows, names, policy, profile) before it is dropped and tried
#: again: a daemon that accepted and then went quiet must not hold the TUI.
SETUP_TIMEOUT_S = 10.0
#: Seconds between re-renders, so that relative times stay right.
TICK_S = 30.0


def _reason(exc: BaseException) -> str:
    """One line saying why the connection failed or ended."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    if isinstance(exc, APIError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class P2PSocialApp(App[None]):
    """The terminal client of a running p2psocial daemon.

    Args:
        connect: opens a connection (an async context manager yielding an
            :class:`~p2psocial.client.AsyncClient`, or an object with its methods).
        now: the clock relative times are shown against (default: the wall clock).
        retry: seconds between attempts to reach a daemon that is down.
        start_command: the command the "daemon down" screen says to run.
    """

    TITLE = "p2psocial"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { background: $surface; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help"),
        Binding("h", "home", "Home", show=False),
        Binding("n", "notifications", "Notifications"),
        Binding("slash", "search", "Search"),
        Binding("P", "my_profile", "Me", show=False),
        Binding("c", "compose", "Compose"),
    ]

    def __init__(
        self,
        connect: Connector,
        *,
        now: Callable[[], float] | None = None,
        retry: float = 2.0,
        start_command: str = "p2psocial daemon",
    ) -> None:
        super().__init__()
        self.connector = connect
        self.now: Callable[[], float] = now or time.time
        self.retry = retry
        self.start_command = start_command
        self.client: AsyncClient | None = None
        self.names = Names()
        self.me = ""
        self.following: set[str] = set()
        self.muted: set[str] = set()
        self.unread = 0
        self.limit = MAX_TEXT_CHARS
        self.home = HomeScreen()
        self.down: DownScreen | None = None
        #: Connections made so far (tests and benches wait on it).
        self.connections = 0
        #: ``time.monotonic()`` when each live entry went on the home screen, by id
        #: (the latest 1,000; the bench times live entries with it).
        self.shown_at: dict[str, float] = {}

    def get_default_screen(self) -> Screen[Any]:
        return self.home

    def on_mount(self) -> None:
        self._connection()
        self.set_interval(TICK_S, self._tick)

    # -- the connection -------------------------------------------------------------

    @work(exclusive=True, group="connection")
    async def _connection(self) -> None:
        attempt = 0
        while True:
            try:
                async with self.connector() as client:
                    attempt = 0
                    await self._serve(client)
                reason = "the daemon closed the connection"
            except DaemonNotRunning as exc:
                reason = exc.message
            except TimeoutError:
                reason = f"the daemon did not answer within {SETUP_TIMEOUT_S:.0f} s"
            except (APIError, OSError, anyio.BrokenResourceError, BaseExceptionGroup) as exc:
                reason = _reason(exc)
            self.client = None
            attempt += 1
            self._show_down(reason, attempt)
            await anyio.sleep(self.retry)

    async def _serve(self, client: AsyncClient) -> None:
        # The watches open first, so nothing stored after the first page is
        # missed; the first page is asked for next, before the rest of the
        # set-up, because it is what the user waits for.
        with anyio.fail_after(SETUP_TIMEOUT_S):
            timeline, notes = await self._set_up(client)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._live_timeline, client, timeline)
            tasks.start_soon(self._live_notifications, client, notes)

    async def _set_up(self, client: AsyncClient) -> tuple[Any, Any]:
        """The watches, then what the screens need; returns the two watches."""
        timeline = await client.watch(kinds=TIMELINE_KINDS)
        notes = await client.watch(kinds=["notification"])
        self.me = client.identity
        self.names.me = self.me
        self.client = client
        self.connections += 1
        self._hide_down()
        for screen in self.screen_stack:
            if isinstance(screen, EntriesScreen) and screen.is_mounted:
                screen.reload()
        status: dict[str, Any] = dict(await client.status())
        self.unread = int(status.get("unread_notifications", 0))
        following: dict[str, Any] = dict(await client.following())
        self.following = set(following["items"])
        self.names.learn_map(following.get("names"))
        for p in (await client.petnames()).get("items") or ():
            self.names.learn(str(p["identity"]), p.get("name"), p.get("profile"))
        self.muted = set((await client.policy()).get("muted") or ())
        mine: dict[str, Any] = dict(await client.profile())
        self.names.learn(self.me, mine.get("petname"), mine.get("name"))
        self.update_status()
        return timeline, notes

    async def _learn_author(self, client: AsyncClient, identity: str) -> None:
        """Watch events carry no names: ask once for an author not met yet."""
        if self.names.knows(identity):
            return
        try:
            p: dict[str, Any] = dict(await client.profile(identity))
        except APIError:
            self.names.learn(identity, None, None)
            return
        self.names.learn(identity, p.get("petname"), p.get("name"))

    async def _live_timeline(self, client: AsyncClient, events: Any) -> None:
        async for event in events:
            author = str(event.get("author"))
            if author in self.muted:
                continue
            top = self.screen
            # A reply to the thread on screen shows there, whoever wrote it.
            if isinstance(top, ThreadScreen) and event.get("reply_root") is not None:
                ids = {e.get("id") for e in top.entries.window.rows()}
                if event.get("reply_root") in ids or event.get("reply_parent") in ids:
                    top.reload()
            if author != self.me and author not in self.following:
                continue
            await self._learn_author(client, author)
            self.names.learn_entry(event)
            if self.home.add_live(dict(event)):
                self.shown_at[str(event["id"])] = time.monotonic()
                while len(self.shown_at) > 1000:
                    del self.shown_at[next(iter(self.shown_at))]

    async def _live_notifications(self, client: AsyncClient, events: Any) -> None:
        async for event in events:
            await self._learn_author(client, str(event.get("author")))
            self.unread += 1
            top = self.screen
            if isinstance(top, NotificationsScreen):
                top.reload()
            self.update_status()

    def _show_down(self, reason: str, attempt: int) -> None:
        if self.down is None:
            self.down = DownScreen(reason, self.start_command)
            self.push_screen(self.down)
        self.down.update(reason, attempt, self.retry)
        self.sub_title = "daemon down"

    def _hide_down(self) -> None:
        if self.down is not None:
            down, self.down = self.down, None
            # Anything opened over it (the help, say) goes with it.
            while down in self.screen_stack and len(self.screen_stack) > 1:
                self.pop_screen()

    def need_client(self) -> AsyncClient:
        """The connected client.

        Raises:
            APIError: not connected now (code ``closed``).
        """
        if self.client is None:
            raise APIError("not connected to the daemon", code="closed")
        return self.client

    def failed(self, exc: APIError) -> None:
        """Tell of a failed call (a lost connection shows the "daemon down" screen)."""
        if exc.code != "closed":
            self.notify(exc.message, severity="error", timeout=6)

    def update_status(self, screen: Screen[Any] | None = None) -> None:
        """Put the current view, its news and the unread count in the header."""
        top = self.screen
        if screen is not None and screen is not top:
            return
        parts = [str(getattr(top, "VIEW", ""))]
        status = getattr(top, "status", None)
        if callable(status) and (said := status()):
            parts.append(str(said))
        if self.unread:
            parts.append(f"{self.unread} unread notification{'s' if self.unread != 1 else ''}")
        if self.me:
            parts.append(f"you: {self.names.show(self.me)}")
        self.sub_title = " · ".join(p for p in parts if p)

    def _tick(self) -> None:
        top = self.screen
        if isinstance(top, EntriesScreen):
            top.entries.refresh_rows()

    # -- going places ---------------------------------------------------------------

    def _push(self, screen: Screen[Any]) -> None:
        if self.client is None:
            self.notify("not connected yet", severity="warning")
            return
        self.push_screen(screen)
        self.update_status()

    def open_thread(self, entry_id: str) -> None:
        """Show the thread of an entry."""
        self._push(ThreadScreen(entry_id))

    def open_profile(self, identity: str) -> None:
        """Show someone's profile."""
        self._push(ProfileScreen(identity))

    def back(self) -> None:
        """Close the view on top."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
        self.update_status()

    def action_home(self) -> None:
        while len(self.screen_stack) > 1 and self.screen is not self.down:
            self.pop_screen()
        self.update_status()

    def action_notifications(self) -> None:
        if not isinstance(self.screen, NotificationsScreen):
            self._push(NotificationsScreen())

    def action_search(self) -> None:
        if not isinstance(self.screen, SearchScreen):
            self._push(SearchScreen())

    def action_my_profile(self) -> None:
        self.open_profile(self.me)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_compose(self) -> None:
        self.compose_post()

    # -- acting ---------------------------------------------------------------------

    def compose_post(self, reply_to: dict[str, Any] | None = None) -> None:
        """Open the compose box; a post (or a reply to ``reply_to``) is sent on enter."""
        if self.client is None:
            self.notify("not connected yet", severity="warning")
            return
        parent = str(reply_to["id"]) if reply_to else None
        quoting = self.names.show(str(reply_to["author"])) if reply_to else ""

        def send(text: str | None) -> None:
            if text:
                self._post(text, parent)

        screen = ComposeScreen(self.names, self.limit, reply_to=parent or "", quoting=quoting)
        self.push_screen(screen, send)

    @work(group="act")
    async def _post(self, text: str, reply_to: str | None) -> None:
        try:
            done: dict[str, Any] = dict(await self.need_client().post(text, reply_to=reply_to))
        except APIError as exc:
            self.failed(exc)
            return
        unresolved = done.get("unresolved")
        extra = f" (no one is called {', '.join(unresolved)})" if unresolved else ""
        self.notify(f"{'replied' if reply_to else 'posted'}{extra}")
        top = self.screen
        if reply_to and isinstance(top, ThreadScreen):
            top.reload()

    def _each_view(self, entry: dict[str, Any]) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, EntriesScreen) and screen.is_mounted:
                screen.show_entry(entry)

    def react(self, entry: dict[str, Any]) -> None:
        """Ask for an emoji, then react to ``entry`` with it."""

        def chosen(emoji: str | None) -> None:
            if emoji:
                self._react(entry, emoji)

        who = self.names.show(str(entry.get("author")))
        self.push_screen(PromptScreen(f"React to {who}'s entry with:", "👍"), chosen)

    @work(group="act")
    async def _react(self, entry: dict[str, Any], emoji: str) -> None:
        try:
            await self.need_client().react(str(entry["id"]), emoji)
        except APIError as exc:
            self.failed(exc)
            return
        shown = dict(entry)
        reactions = dict(shown.get("reactions") or {})
        reactions[emoji] = int(reactions.get(emoji, 0)) + 1
        shown["reactions"] = reactions
        self._each_view(shown)
        self.notify(f"reacted {emoji}")

    @work(group="act")
    async def repost(self, entry: dict[str, Any]) -> None:
        """Repost ``entry``."""
        try:
            await self.need_client().repost(str(entry["id"]))
        except APIError as exc:
            self.failed(exc)
            return
        self._each_view({**entry, "reposts": int(entry.get("reposts") or 0) + 1})
        self.notify("reposted")

    def delete(self, entry: dict[str, Any]) -> None:
        """Delete one of the owner's entries, after a confirmation."""
        if entry.get("author") != self.me:
            self.notify("only your own entries can be deleted", severity="warning")
            return
        if entry.get("deleted"):
            self.notify("already deleted", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(entry)

        text = str(entry.get("text") or "")[:60]
        question = (
            f"Delete your entry “{text}” everywhere? Its payload is purged; this cannot be undone."
        )
        self.push_screen(ConfirmScreen(question), answered)

    @work(group="act")
    async def _delete(self, entry: dict[str, Any]) -> None:
        try:
            await self.need_client().delete(str(entry["id"]))
        except APIError as exc:
            self.failed(exc)
            return
        self._each_view({**entry, "deleted": True, "payload_state": "deleted", "text": None})
        self.notify("deleted")

    def block(self, identity: str) -> None:
        """Block ``identity`` (publicly), after a confirmation."""
        if identity == self.me:
            self.notify("that is you", severity="warning")
            return
        who = self.names.show(identity)
        question = (
            f"Block {who}? Their payloads are purged from this node and refused, "
            "and the block is published."
        )
        self._confirm(question, lambda: self._moderate(identity, "block"))

    def mute(self, identity: str) -> None:
        """Mute ``identity``, after a confirmation."""
        if identity == self.me:
            self.notify("that is you", severity="warning")
            return
        who = self.names.show(identity)
        question = f"Mute {who}? They are hidden from your timelines (still stored and relayed)."
        self._confirm(question, lambda: self._moderate(identity, "mute"))

    def _confirm(self, question: str, then: Callable[[], object]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(ConfirmScreen(question), answered)

    @work(group="act")
    async def _moderate(self, identity: str, how: str) -> None:
        client = self.need_client()
        try:
            await (client.block(identity) if how == "block" else client.mute(identity))
        except APIError as exc:
            self.failed(exc)
            return
        self.muted.add(identity)
        self.notify(f"{how}ed {self.names.show(identity)}")
        self.home.reload()

    def toggle_follow(self, identity: str, *, on_done: Callable[[], object]) -> None:
        """Follow ``identity``, or unfollow it if followed; then call ``on_done``."""
        self._toggle_follow(identity, on_done)

    @work(group="act")
    async def _toggle_follow(self, identity: str, on_done: Callable[[], object]) -> None:
        client = self.need_client()
        following = identity in self.following
        try:
            await (client.unfollow(identity) if following else client.follow(identity))
        except APIError as exc:
            self.failed(exc)
            return
        if following:
            self.following.discard(identity)
        else:
            self.following.add(identity)
        self.notify(f"{'unfollowed' if following else 'following'} {self.names.show(identity)}")
        on_done()
        self.home.reload()

    def copy(self, text: str, what: str) -> None:
        """Copy ``text`` to the terminal's clipboard (OSC 52) and say so."""
        self.copy_to_clipboard(text)
        self.notify(f"copied {what}: {text}")

    def mark_read(self, mark: str) -> None:
        """Mark notifications read up to ``mark``."""
        self._mark_read(mark)

    @work(group="act")
    async def _mark_read(self, mark: str) -> None:
        try:
            done = await self.need_client().mark_notifications_read(upto=mark)
        except APIError as exc:
            self.failed(exc)
            return
        self.unread = int(done.get("unread", 0))
        self.update_status()
