"""Pages of a paged method's results (re-exported by :mod:`p2psocial.client.results`).

A page is the ``dict`` the daemon sent (``items``, ``next``) that also walks
the following pages when iterated; see :mod:`p2psocial.client.results`.
Kept apart (with :class:`Entry`, the type of their items) from the other TypedDicts there, which cost start-up time to define and
which no command needs at run time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypedDict

__all__ = ["AsyncPage", "Entry", "Page"]


class Entry(TypedDict):
    """An entry as the API shows it (spec/client-api.md §5)."""

    id: str
    author: str
    seq: int
    kind: str
    timestamp: int
    payload_state: str
    deleted: bool
    text: str | None
    reply_root: str | None
    reply_parent: str | None
    reply_to: str | None
    mentions: list[str]
    tags: list[str]
    target: str | None
    emoji: str | None
    payload: Any
    reactions: dict[str, int]
    reposts: int
    replies: int
    depth: int
    author_forked: bool
    author_fork_seq: int | None


class _PageBase(dict[str, Any]):
    """One page as the daemon sent it, plus the means to ask for the next one."""

    @property
    def entries(self) -> list[Entry]:
        """This page's entries, newest first."""
        items: list[Entry] = self["items"]
        return items

    @property
    def next_cursor(self) -> str | None:
        """The cursor of the following (older) page; None on the last page."""
        cursor: str | None = self.get("next")
        return cursor


class Page(_PageBase):
    """A page of a blocking client's paged method; iterating it walks every page."""

    def __init__(
        self, result: Mapping[str, Any], fetch: Callable[[str], Mapping[str, Any]]
    ) -> None:
        super().__init__(result)
        self._fetch = fetch

    def pages(self) -> Iterator[Page]:
        """This page, then each following page, asked for as the iteration gets there."""
        page: Page = self
        while True:
            yield page
            cursor = page.next_cursor
            if cursor is None or not page.entries:
                return
            page = Page(self._fetch(cursor), self._fetch)

    # A page is a dict (for code that indexes or dumps it) whose iteration
    # yields entries, as a paged result should; mypy sees the clash on purpose.
    def __iter__(self) -> Iterator[Entry]:  # type: ignore[override]
        for page in self.pages():
            yield from page.entries


class AsyncPage(_PageBase):
    """A page of an async client's paged method; ``async for`` walks every page.

    Plain ``for`` yields this page's entries only (it cannot wait for the next).
    """

    def __init__(
        self, result: Mapping[str, Any], fetch: Callable[[str], Awaitable[Mapping[str, Any]]]
    ) -> None:
        super().__init__(result)
        self._fetch = fetch

    async def pages(self) -> AsyncIterator[AsyncPage]:
        """This page, then each following page, asked for as the iteration gets there."""
        page: AsyncPage = self
        while True:
            yield page
            cursor = page.next_cursor
            if cursor is None or not page.entries:
                return
            page = AsyncPage(await self._fetch(cursor), self._fetch)

    def __iter__(self) -> Iterator[Entry]:  # type: ignore[override]
        return iter(self.entries)

    async def __aiter__(self) -> AsyncIterator[Entry]:
        async for page in self.pages():
            for entry in page.entries:
                yield entry
