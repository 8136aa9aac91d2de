"""The list of entries every view shows, over a :class:`~.window.Window`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from .names import Names
from .render import entry_text, notification_text
from .window import Window

__all__ = ["EntryList"]


class EntryList(OptionList):
    """Entries, one block each, with the cursor on one; pages load as it nears an end.

    The rows live in :attr:`window`; after changing it call :meth:`refresh_rows`.
    """

    DEFAULT_CSS = """
    EntryList { height: 1fr; border: none; padding: 0 1; }
    """

    BINDINGS = [  # noqa: RUF012  (Textual reads a class-level list)
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    class NeedPage(Message):
        """The cursor is near an end: ask for the ``direction`` page at ``cursor``."""

        def __init__(self, entries: EntryList, direction: str, cursor: str | None) -> None:
            super().__init__()
            self.entries = entries
            self.direction = direction
            self.cursor = cursor

    def __init__(
        self,
        names: Names,
        now: Callable[[], float],
        *,
        cap: int = 500,
        notifications: bool = False,
        tree: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.names = names
        self.now = now
        self.window = Window(cap=cap)
        self.as_notifications = notifications
        self.as_tree = tree
        self._asked: tuple[str, str | None] | None = None
        self._quiet = False
        self.empty_text = "nothing to show yet"

    @property
    def entry(self) -> dict[str, Any] | None:
        """The entry under the cursor."""
        rows = self.window.rows()
        i = self.highlighted
        return rows[i] if i is not None and 0 <= i < len(rows) else None

    def _entry_block(self, e: Mapping[str, Any]) -> Text:
        now = self.now()
        if self.as_notifications:
            return notification_text(e, self.names, now_s=now)
        unread = str(e.get("id")) in self.window.unread
        depth = int(e.get("depth") or 0) if self.as_tree else 0
        return entry_text(e, self.names, now_s=now, unread=unread, indent=depth)

    def refresh_rows(self, *, keep: str | None = None, shift: int = 0) -> None:
        """Show the window's rows again, the cursor staying on the same entry.

        Args:
            keep: the id to put the cursor on (default: the one under it now).
            shift: rows added above (+) or dropped above (-), when the entry
                under the cursor is not found.
        """
        current = self.entry
        want = keep or (str(current["id"]) if current else None)
        old = self.highlighted or 0
        rows = self.window.rows()
        options = [Option(self._entry_block(e)) for e in rows]
        if not options:
            options = [Option(Text(self.empty_text, style="dim italic"), disabled=True)]
        self.set_options(options)
        index = next((i for i, e in enumerate(rows) if e.get("id") == want), None)
        if index is None:
            index = max(0, min(len(rows) - 1, old + shift))
        if rows:
            # Putting the cursor back is not the reader looking at the row.
            self._quiet = True
            try:
                self.highlighted = index
            finally:
                self._quiet = False
            self.scroll_to_highlight()
        self._asked = None

    def watch_highlighted(self, highlighted: int | None) -> None:
        """Mark the row seen and ask for a page when near an end."""
        super().watch_highlighted(highlighted)
        if highlighted is None:
            return
        if not self._quiet and self.window.seen(highlighted):
            rows = self.window.rows()
            if 0 <= highlighted < len(rows):
                self.replace_option_prompt_at_index(
                    highlighted, self._entry_block(rows[highlighted])
                )
        want = self.window.want(highlighted)
        if want is not None and want != self._asked:
            self._asked = want
            self.post_message(self.NeedPage(self, *want))
