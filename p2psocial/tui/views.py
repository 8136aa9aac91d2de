"""The views: Home, Notifications, Thread, Profile and Search.

Each view is a screen around an :class:`~.widgets.EntryList`. A view asks the
app's client for its pages (the app owns the one connection) and acts on the
entry under the cursor through the app, so every view has the same keys.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from ..errors import APIError
from .host import Host
from .names import clean_name, short_identity
from .widgets import EntryList

__all__ = [
    "EntriesScreen",
    "HomeScreen",
    "NotificationsScreen",
    "ProfileScreen",
    "SearchScreen",
    "ThreadScreen",
]

#: Entries asked for per page.
PAGE = 50


class EntriesScreen(Screen[None]):
    """A view of a list of entries, with the keys that act on the one under the cursor."""

    VIEW = "entries"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "thread", "Thread"),
        Binding("r", "reply", "Reply"),
        Binding("e", "react", "React"),
        Binding("t", "repost", "Repost"),
        Binding("p", "profile", "Profile", show=False),
        Binding("d", "delete", "Delete", show=False),
        Binding("x", "block", "Block", show=False),
        Binding("m", "mute", "Mute", show=False),
        Binding("y", "copy_id", "Copy id", show=False),
        Binding("Y", "copy_identity", "Copy identity", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape,q", "back", "Back"),
        Binding("g,home", "first", "First", show=False),
        Binding("G,end", "last", "Last", show=False),
    ]

    def __init__(self, **list_options: Any) -> None:
        super().__init__()
        self._list_options = list_options

    @property
    def tui(self) -> Host:
        """The app, typed."""
        app: Any = self.app
        return app  # type: ignore[no-any-return]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield from self.compose_top()
        yield EntryList(self.tui.names, self.tui.now, id="entries", **self._list_options)
        yield Footer()

    def compose_top(self) -> ComposeResult:
        """Widgets above the list."""
        yield from ()

    @property
    def entries(self) -> EntryList:
        """The list."""
        return self.query_one("#entries", EntryList)

    def on_mount(self) -> None:
        # Textual calls every class's on_mount; views differ in start() instead.
        self.start()

    def start(self) -> None:
        """Called once mounted: focus the list and load the first page."""
        self.entries.focus()
        if self.tui.client is not None:
            self.reload()

    def on_screen_resume(self) -> None:
        self.tui.update_status(self)

    # -- pages ------------------------------------------------------------------

    async def first_page(self) -> dict[str, Any]:
        """The first page of the view (newest first)."""
        raise NotImplementedError

    async def page_before(self, cursor: str) -> dict[str, Any]:
        """The page older than ``cursor``."""
        raise NotImplementedError

    def loaded(self, page: dict[str, Any]) -> None:
        """Called once the first page is shown."""

    @work(exclusive=True, group="load")
    async def reload(self) -> None:
        """Show the first page again."""
        try:
            page = await self.first_page()
        except APIError as exc:
            self.tui.failed(exc)
            return
        for e in page.get("items") or ():
            self.tui.names.learn_entry(e)
        entries = self.entries
        entries.window.reset(page)
        entries.refresh_rows(keep=self.keep_on_load())
        self.loaded(page)
        self.tui.update_status(self)

    def keep_on_load(self) -> str | None:
        """The id to put the cursor on after a reload (None: the first row)."""
        return None

    async def on_entry_list_need_page(self, msg: EntryList.NeedPage) -> None:
        self._fetch(msg.direction, msg.cursor)

    @work(group="page")
    async def _fetch(self, direction: str, cursor: str | None) -> None:
        try:
            page = await (self.first_page() if cursor is None else self.page_before(cursor))
        except APIError as exc:
            self.tui.failed(exc)
            return
        for e in page.get("items") or ():
            self.tui.names.learn_entry(e)
        window = self.entries.window
        if direction == "older" and cursor is not None:
            dropped = window.add_older(cursor, page)
            self.entries.refresh_rows(shift=-dropped)
        else:
            added = window.add_newer(cursor, page)
            self.entries.refresh_rows(shift=added)

    # -- actions on the entry under the cursor ----------------------------------

    def _entry(self) -> dict[str, Any] | None:
        entry = self.entries.entry
        if entry is None:
            self.notify("no entry here", severity="warning")
        return entry

    def action_thread(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.open_thread(str(e["id"]))

    def action_reply(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.compose_post(reply_to=e)

    def action_react(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.react(e)

    def action_repost(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.repost(e)

    def action_delete(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.delete(e)

    def action_profile(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.open_profile(str(e["author"]))

    def action_block(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.block(str(e["author"]))

    def action_mute(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.mute(str(e["author"]))

    def action_copy_id(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.copy(str(e["id"]), "entry id")

    def action_copy_identity(self) -> None:
        if (e := self._entry()) is not None:
            self.tui.copy(str(e["author"]), "identity")

    def action_reload(self) -> None:
        self.reload()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "entries":
            self.action_thread()

    def action_back(self) -> None:
        self.tui.back()

    def action_first(self) -> None:
        self.entries.action_first()

    def action_last(self) -> None:
        self.entries.action_last()

    def show_entry(self, entry: dict[str, Any]) -> None:
        """A fresher view of an entry this view may show (after a reaction, say)."""
        if self.entries.window.replace(entry):
            self.entries.refresh_rows()


class HomeScreen(EntriesScreen):
    """The home timeline: you and those you follow, live."""

    VIEW = "Home"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("escape", "top", "Top", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(cap=500)

    async def first_page(self) -> dict[str, Any]:
        client = self.tui.need_client()
        return dict(await client.timeline(limit=PAGE))

    async def page_before(self, cursor: str) -> dict[str, Any]:
        client = self.tui.need_client()
        return dict(await client.timeline(limit=PAGE, before=cursor))

    def add_live(self, entry: dict[str, Any]) -> bool:
        """A new entry from the watch; returns whether it is on screen now."""
        window = self.entries.window
        shown = window.add_live([entry])
        if window.stale:
            self.reload()
        elif shown:
            self.entries.refresh_rows()
        self.tui.update_status(self)
        return shown > 0 and not window.stale

    def status(self) -> str:
        """What the header says about this view."""
        window = self.entries.window
        new = len(window.unread) + window.new_count
        return f"{new} new" if new else ""

    def action_top(self) -> None:
        """Back to the newest entries (escape), loading them again if they were dropped."""
        if not self.entries.window.at_top or self.entries.window.new_count:
            self.reload()
        else:
            self.entries.action_first()

    def action_first(self) -> None:
        self.action_top()


class NotificationsScreen(EntriesScreen):
    """Replies, mentions, reactions, reposts and follows; opening it marks them read."""

    VIEW = "Notifications"

    def __init__(self) -> None:
        super().__init__(cap=500, notifications=True)

    async def first_page(self) -> dict[str, Any]:
        client = self.tui.need_client()
        return dict(await client.notifications(limit=PAGE))

    async def page_before(self, cursor: str) -> dict[str, Any]:
        client = self.tui.need_client()
        return dict(await client.notifications(limit=PAGE, before=cursor))

    def loaded(self, page: dict[str, Any]) -> None:
        if page.get("unread") and page.get("mark"):
            self.tui.mark_read(str(page["mark"]))

    def action_thread(self) -> None:
        e = self._entry()
        if e is None:
            return
        # A reaction or repost is about its target; a follow about its author.
        if e.get("kind") in ("react", "repost") and isinstance(e.get("target"), str):
            self.tui.open_thread(str(e["target"]))
        elif e.get("kind") == "follow":
            self.tui.open_profile(str(e["author"]))
        else:
            self.tui.open_thread(str(e["id"]))


class ThreadScreen(EntriesScreen):
    """A post and every reply to it held here, as a tree."""

    VIEW = "Thread"

    def __init__(self, entry_id: str) -> None:
        super().__init__(cap=100_000, tree=True)
        self.entry_id = entry_id

    async def first_page(self) -> dict[str, Any]:
        client = self.tui.need_client()
        thread = await client.thread(self.entry_id)
        return {"items": list(thread["items"]), "next": None}

    def keep_on_load(self) -> str | None:
        return self.entry_id

    def action_thread(self) -> None:
        if (e := self._entry()) is not None and e["id"] != self.entry_id:
            self.tui.open_thread(str(e["id"]))


class ProfileScreen(EntriesScreen):
    """Someone's name, bio, counts, posts and follows; ``f`` follows or unfollows."""

    VIEW = "Profile"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow/unfollow"),
        Binding("tab", "cycle", "Posts/following/followers"),
    ]
    DEFAULT_CSS = """
    ProfileScreen #top { height: auto; border-bottom: solid $accent; }
    ProfileScreen #card { height: auto; width: 1fr; padding: 0 2; }
    ProfileScreen #follow { margin: 0 2; display: none; }
    ProfileScreen #people { height: 1fr; display: none; }
    """
    SHOWS = ("posts", "following", "followers")

    def __init__(self, identity: str) -> None:
        super().__init__(cap=500)
        self.identity = identity
        self.profile: dict[str, Any] = {}
        self.shows = "posts"
        self.people: list[str] = []

    def compose_top(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield Static("", id="card")
            yield Button("Follow", id="follow", variant="primary", compact=True)
        yield OptionList(id="people")

    async def first_page(self) -> dict[str, Any]:
        client = self.tui.need_client()
        self.profile = dict(await client.profile(self.identity))
        self.identity = str(self.profile.get("identity") or self.identity)
        self.tui.names.learn(self.identity, self.profile.get("petname"), self.profile.get("name"))
        self._show_card()
        return dict(await client.feed(self.identity, limit=PAGE))

    async def page_before(self, cursor: str) -> dict[str, Any]:
        client = self.tui.need_client()
        return dict(await client.feed(self.identity, limit=PAGE, before=cursor))

    def _show_card(self) -> None:
        p = self.profile
        t = Text()
        t.append(self.tui.names.show(self.identity), style="bold cyan")
        if self.identity == self.tui.me:
            t.append("  (you)", style="cyan")
        elif self.identity in self.tui.following:
            t.append("  following", style="green")
        t.append(f"\n{self.identity}", style="dim")
        if p.get("petname"):
            t.append(f"\nyour name for them: {p['petname']}")
        if p.get("name"):
            t.append(f"\ncalls itself: ~{clean_name(str(p['name']))}", style="italic")
        if p.get("bio"):
            t.append(f"\n{p['bio']}")
        t.append(f"\nfollowing {p.get('following', 0)} · followers {p.get('followers', 0)}")
        flags = [f for f in ("blocked", "muted") if p.get(f)]
        if flags:
            t.append(f"  ({', '.join(flags)} by you)", style="bold red")
        if p.get("forked"):
            t.append(f"  [forked @{p.get('fork_seq')}]", style="bold magenta")
        t.append(f"\nshowing {self.shows} · tab switches · f follows/unfollows", style="dim")
        self.query_one("#card", Static).update(t)
        button = self.query_one("#follow", Button)
        button.display = self.identity != self.tui.me
        button.label = "Unfollow" if self.identity in self.tui.following else "Follow"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "follow":
            self.action_toggle_follow()

    def action_toggle_follow(self) -> None:
        if self.identity == self.tui.me:
            self.notify("that is you", severity="warning")
            return
        self.tui.toggle_follow(self.identity, on_done=self.reload)

    def action_cycle(self) -> None:
        self.shows = self.SHOWS[(self.SHOWS.index(self.shows) + 1) % len(self.SHOWS)]
        people = self.query_one("#people", OptionList)
        people.display = self.shows != "posts"
        self.entries.display = self.shows == "posts"
        self._show_card()
        if self.shows == "posts":
            self.entries.focus()
        else:
            self._load_people()
            people.focus()

    @work(exclusive=True, group="people")
    async def _load_people(self) -> None:
        client = self.tui.need_client()
        found: dict[str, Any]
        try:
            if self.shows == "following":
                found = dict(await client.following(self.identity))
            else:
                found = dict(await client.followers(self.identity))
        except APIError as exc:
            self.tui.failed(exc)
            return
        self.tui.names.learn_map(found.get("names"))
        self.people = [str(i) for i in found["items"]]
        people = self.query_one("#people", OptionList)
        people.set_options(
            [Option(Text(self.tui.names.show(i))) for i in self.people]
            or [Option(Text("nobody", style="dim italic"), disabled=True)]
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        # The entries' selection is handled by EntriesScreen's own handler.
        if event.option_list.id == "people" and 0 <= event.option_index < len(self.people):
            self.tui.open_profile(self.people[event.option_index])

    def status(self) -> str:
        """What the header says about this view."""
        return short_identity(self.identity)


class SearchScreen(EntriesScreen):
    """Full-text search of the posts held here, and of the people whose profiles match."""

    VIEW = "Search"
    DEFAULT_CSS = """
    SearchScreen #query { margin: 0 1; }
    SearchScreen #who { height: auto; max-height: 6; padding: 0 2; color: $text-muted; }
    """

    def __init__(self, query: str = "") -> None:
        super().__init__(cap=500)
        self.query_text = query
        self.empty = True

    def compose_top(self) -> ComposeResult:
        yield Input(
            value=self.query_text, placeholder='words or "a phrase"; enter searches', id="query"
        )
        yield Static("", id="who")

    def start(self) -> None:
        self.entries.empty_text = "type a query and press enter"
        self.entries.refresh_rows()
        self.query_one("#query", Input).focus()
        if self.query_text and self.tui.client is not None:
            self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        if self.query_text:
            self.entries.empty_text = "no posts match"
            self.reload()
            self.entries.focus()

    async def first_page(self) -> dict[str, Any]:
        client = self.tui.need_client()
        if not self.query_text:
            return {"items": [], "next": None}
        people: dict[str, Any] = {"items": []}
        try:
            people = dict(await client.search_people(self.query_text[:200], limit=5))
        except APIError as exc:
            # A query the people search refuses (too long, say) still searches posts.
            if exc.reason != "bad_query":
                raise
        who = [
            f"~{clean_name(str(p.get('name') or ''))} ({short_identity(str(p['identity']))})"
            for p in people.get("items") or ()
        ]
        self.query_one("#who", Static).update(Text("people: " + ", ".join(who) if who else ""))
        return dict(await client.search(self.query_text, limit=PAGE))

    async def page_before(self, cursor: str) -> dict[str, Any]:
        client = self.tui.need_client()
        return dict(await client.search(self.query_text, limit=PAGE, before=cursor))

    def status(self) -> str:
        """What the header says about this view."""
        return self.query_text

    def action_back(self) -> None:
        if self.focused is not None and self.focused.id == "query" and self.query_text:
            self.entries.focus()
            return
        super().action_back()
