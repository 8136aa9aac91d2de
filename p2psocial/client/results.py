"""What the clients' methods return: typed maps, and pages that walk on by themselves.

Every result is a plain ``dict`` at run time, as the daemon sent it, so code
that indexes it (``result["id"]``), calls ``.get`` on it or passes it to
``json.dumps`` keeps working. The TypedDicts below only tell an editor and mypy
which keys to expect (spec/client-api.md §5 and §6).

A paged method (``timeline``, ``feed``, ``mentions``, ``search``) returns a
:class:`Page` (blocking client) or an :class:`AsyncPage` (async client): the
first page as a ``dict`` subclass, with ``page["items"]`` and ``page["next"]``
as before, that also walks the following pages when iterated:

    for entry in client.timeline():          # every entry, page after page
        ...
    async for entry in await aclient.timeline():
        ...

Iterating a page is the one place it differs from a dict, whose iteration
yields its keys: a page yields entries. ``page.keys()``, ``page.items()``,
``dict(page)``, ``{**page}`` and ``json.dumps(page)`` still see the two (or,
for ``feed``, four) keys of the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, NotRequired, TypedDict

__all__ = [
    "AsyncPage",
    "Blocked",
    "Connected",
    "Entry",
    "Explained",
    "Identities",
    "Muted",
    "Page",
    "Peers",
    "Profile",
    "Published",
    "Status",
    "Thread",
    "Unblocked",
    "Unmuted",
]


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


class Published(TypedDict):
    """A new entry of the owner's feed: its id (64 hex) and seq."""

    id: str
    seq: int


class Blocked(TypedDict):
    """``block``: who, whether it was published, and the block entry when it was."""

    blocked: str
    public: bool
    id: NotRequired[str]
    seq: NotRequired[int]


class Unblocked(TypedDict):
    """``unblock``: who, and the ``unblock`` entry published."""

    unblocked: str
    id: str
    seq: int


class Muted(TypedDict):
    """``mute``: the identity now hidden from timelines."""

    muted: str


class Unmuted(TypedDict):
    """``unmute``: the identity shown again."""

    unmuted: str


class Connected(TypedDict):
    """``connect``: the ``host:port`` a peer link is now open to."""

    connected: str


class Fork(TypedDict):
    """A forked feed listed by ``status``."""

    identity: str
    fork_seq: int


class Status(TypedDict):
    """``status``: identity, addresses and counts."""

    identity: str
    node_id: str
    dht_addr: str | None
    peer_addr: str | None
    api: str | None
    peers: int
    feeds: int
    forked_feeds: int
    forks: list[Fork]
    uptime_s: int


class Profile(TypedDict):
    """``profile``: an identity's latest profile and counts as seen by the node."""

    identity: str
    name: str | None
    bio: str | None
    following: int
    followers: int
    blocked: bool
    muted: bool
    forked: bool
    fork_seq: int | None


class Identities(TypedDict):
    """``following`` and ``followers``: identities in text form."""

    items: list[str]


class Peers(TypedDict):
    """``peers``: one map per connected peer (node_id, host, port, direction, ...)."""

    items: list[dict[str, Any]]


class Thread(TypedDict):
    """``thread``: the root, then its replies in tree order (each with ``depth``)."""

    items: list[Entry]


class Explained(TypedDict):
    """``explain``: whether the node holds an entry and why (one sentence per rule)."""

    id: str
    held: bool
    why: list[str]
    author: NotRequired[str]
    kind: NotRequired[str]
    deleted: NotRequired[bool]
    author_forked: NotRequired[bool]
    author_fork_seq: NotRequired[int | None]


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
