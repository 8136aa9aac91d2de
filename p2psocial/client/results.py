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

from typing import Any, NotRequired, TypedDict

# The pages live in their own small module: the blocking client imports them
# at start-up, and the TypedDicts here are for editors and mypy only.
from .pages import AsyncPage, Entry, Page

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
    #: Observed addresses and dial-back (spec/dht.md 4.4, 4.5); older daemons omit them.
    reachability: NotRequired[str]
    nat_mapping: NotRequired[str]
    observed_addrs: NotRequired[list[str]]
    reachable: NotRequired[str]


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
    """``peers``: one map per connected peer (node_id, host, port, direction, path, ...)."""

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
