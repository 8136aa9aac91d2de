"""The rows a list keeps: a window of pages over a long, newest-first timeline.

Theory. The daemon pages a timeline newest first; page *k* is asked for with
the ``next`` cursor of page *k-1* (page 0 with none). The window keeps a run of
consecutive pages and at most ``cap`` rows. Moving the cursor near the bottom
asks for the next older page; once over the cap, the newest kept page is
dropped and its cursor remembered, so moving back near the top asks for it
again and drops the oldest kept page instead. Memory is then bounded by
``cap`` rows plus one cursor per page dropped, however far one scrolls.

Live entries (from ``watch``) go on top when the window holds the newest page;
otherwise they are only counted as new, and shown when the view returns to the
top (:meth:`Window.reset`). Entries are told apart by id: a page that repeats
a row kept already (a live entry fetched again) does not show it twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NEAR", "Window"]

#: Rows from either end at which the next page is asked for.
NEAR = 10
#: Cursors of dropped pages remembered (a page holds up to 500 rows, so this
#: reaches far beyond any scroll a person makes).
CURSORS_KEPT = 100_000


@dataclass
class _Page:
    before: str | None
    items: list[dict[str, Any]]
    next: str | None


@dataclass
class Window:
    """The kept pages of one timeline and the live entries not shown yet."""

    cap: int = 500
    pages: list[_Page] = field(default_factory=list)
    #: ``before`` cursors of the pages dropped above the kept ones, oldest drop last.
    above: list[str | None] = field(default_factory=list)
    #: Live entries not shown because the window is not at the top.
    new_count: int = 0
    unread: set[str] = field(default_factory=set)
    loaded: bool = False
    #: Set when the window must be reset from a fresh first page.
    stale: bool = False

    # -- what is shown ----------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """The kept entries, newest first."""
        return [e for page in self.pages for e in page.items]

    def __len__(self) -> int:
        return sum(len(p.items) for p in self.pages)

    @property
    def at_top(self) -> bool:
        """Whether the newest page is kept (live entries can show)."""
        return not self.above

    @property
    def older(self) -> str | None:
        """The cursor of the next older page, or None at the end of the timeline."""
        return self.pages[-1].next if self.pages else None

    def want(self, index: int) -> tuple[str, str | None] | None:
        """The page to ask for with the cursor on row ``index``, if any.

        Returns:
            ``("older", cursor)``, ``("newer", cursor)`` or None.
        """
        if not self.loaded:
            return None
        if index >= len(self) - NEAR and self.older is not None:
            return ("older", self.older)
        if index < NEAR and self.above:
            return ("newer", self.above[-1])
        return None

    # -- changes ------------------------------------------------------------------

    def reset(self, page: Mapping[str, Any]) -> None:
        """Start over from the first (newest) page."""
        self.pages = [_Page(None, list(page.get("items") or []), page.get("next"))]
        self.above.clear()
        self.new_count = 0
        self.unread.clear()
        self.loaded = True
        self.stale = False

    def _ids(self) -> set[str]:
        return {str(e.get("id")) for page in self.pages for e in page.items}

    def add_older(self, before: str, page: Mapping[str, Any]) -> int:
        """Append the page asked for with ``before``; returns rows dropped at the top.

        A page whose cursor is not the last page's ``next`` is stale (asked
        for before a reset) and changes nothing.
        """
        if self.older != before:
            return 0
        seen = self._ids()
        items = [e for e in page.get("items") or [] if str(e.get("id")) not in seen]
        self.pages.append(_Page(before, items, page.get("next")))
        dropped = 0
        while len(self) > self.cap and len(self.pages) > 1:
            gone = self.pages.pop(0)
            dropped += len(gone.items)
            if len(self.above) < CURSORS_KEPT:
                self.above.append(gone.before)
            self.unread.difference_update(str(e.get("id")) for e in gone.items)
        return dropped

    def add_newer(self, before: str | None, page: Mapping[str, Any]) -> int:
        """Put back on top the dropped page asked for with ``before``; returns rows added.

        A page that is not the last one dropped is stale and changes nothing.
        """
        if not self.above or self.above[-1] != before:
            return 0
        self.above.pop()
        seen = self._ids()
        items = [e for e in page.get("items") or [] if str(e.get("id")) not in seen]
        self.pages.insert(0, _Page(before, items, page.get("next")))
        while len(self) > self.cap and len(self.pages) > 1:
            self.pages.pop()
        return len(items)

    def add_live(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Live entries, newest last; returns how many went on top (the rest are counted)."""
        shown = 0
        seen = self._ids()
        for e in entries:
            key = str(e.get("id"))
            if key in seen:
                continue
            if not self.at_top or not self.pages:
                self.new_count += 1
                continue
            self.pages[0].items.insert(0, dict(e))
            self.unread.add(key)
            seen.add(key)
            shown += 1
        while len(self) > self.cap and len(self.pages) > 1:
            self.pages.pop()
        if len(self) > self.cap:
            # One page over the cap: its cursor no longer follows its last
            # kept row, so the view starts over from a fresh first page.
            del self.pages[0].items[self.cap :]
            self.stale = True
        return shown

    def replace(self, entry: Mapping[str, Any]) -> bool:
        """Swap in a fresher view of a kept entry (same id); returns whether it was kept."""
        key = entry.get("id")
        for page in self.pages:
            for i, e in enumerate(page.items):
                if e.get("id") == key:
                    page.items[i] = dict(entry)
                    return True
        return False

    def seen(self, index: int) -> bool:
        """The row at ``index`` has been looked at: it is no longer unread."""
        rows = self.rows()
        if 0 <= index < len(rows):
            key = str(rows[index].get("id"))
            if key in self.unread:
                self.unread.discard(key)
                return True
        return False
