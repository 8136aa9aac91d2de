"""An in-memory stand-in for the daemon's async client, with fixed data.

Snapshot tests need a screen that is the same on every run: fixed entries,
fixed identities and a frozen clock. The fake answers the calls the TUI makes
with the shapes spec/client-api.md gives them, and records what was published.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

from p2psocial.errors import APIError

#: The frozen clock of the snapshots: 2026-12-02 12:00 UTC, in seconds.
NOW = 1_796_212_800.0

ME = "p2ps1qme00000000000000000000000000000000000000000000000000me0"
ADA = "p2ps1qada0000000000000000000000000000000000000000000000000ada"
BOB = "p2ps1qbob0000000000000000000000000000000000000000000000000bob"
EVE = "p2ps1qeve0000000000000000000000000000000000000000000000000eve"

NAMES = {
    ME: {"petname": None, "profile": "Me Myself"},
    ADA: {"petname": "ada", "profile": "Ada L."},
    BOB: {"petname": None, "profile": "Bob the builder"},
    EVE: {"petname": None, "profile": None},
}


def entry(n: int, author: str, text: str | None, ago_s: int, **extra: Any) -> dict[str, Any]:
    """An entry as the API shows it, ``ago_s`` seconds before :data:`NOW`."""
    e: dict[str, Any] = {
        "id": f"{n:02x}" * 32,
        "author": author,
        "seq": n,
        "kind": "post",
        "timestamp": int((NOW - ago_s) * 1000),
        "payload_state": "present",
        "deleted": False,
        "text": text,
        "reply_root": None,
        "reply_parent": None,
        "reply_to": None,
        "mentions": [],
        "tags": [],
        "target": None,
        "emoji": None,
        "payload": None,
        "reactions": {},
        "reposts": 0,
        "replies": 0,
        "depth": 0,
        "author_forked": False,
        "author_fork_seq": None,
        "author_name": NAMES.get(author, {"petname": None, "profile": None}),
        "names": {author: NAMES.get(author, {"petname": None, "profile": None})},
    }
    e.update(extra)
    return e


ROOT = entry(
    1,
    ADA,
    "Tomatoes: water in the morning or the evening? #garden",
    3 * 3600,
    replies=2,
    reactions={"🍅": 3, "👍": 1},
    tags=["garden"],
)
TIMELINE = [
    entry(6, ME, "Trying the new terminal client #tui", 5),
    entry(5, BOB, "Pushed a fix for the roof; the rain can come now.", 4 * 60, reposts=2),
    entry(4, ADA, None, 20 * 60, payload_state="deleted", deleted=True),
    entry(
        3,
        EVE,
        "my feed got forked, do not trust seq 9",
        2 * 3600,
        author_forked=True,
        author_fork_seq=9,
    ),
    entry(2, BOB, None, 2 * 86400, payload_state="absent"),
    ROOT,
]
THREAD = [
    {**ROOT, "depth": 0},
    entry(
        7,
        BOB,
        "Morning, before the heat.",
        2 * 3600,
        reply_to=ROOT["id"],
        reply_parent=ROOT["id"],
        reply_root=ROOT["id"],
        depth=1,
        replies=1,
    ),
    entry(
        8,
        ADA,
        "Thanks! Mornings it is.",
        3600,
        reply_to=f"{7:02x}" * 32,
        reply_parent=f"{7:02x}" * 32,
        reply_root=ROOT["id"],
        depth=2,
    ),
    entry(
        9,
        ME,
        "Evenings work for me, if it is not too damp.",
        1800,
        reply_to=ROOT["id"],
        reply_parent=ROOT["id"],
        reply_root=ROOT["id"],
        depth=1,
    ),
]
NOTIFICATIONS = [
    {
        **entry(10, ADA, "@me are you coming to the garden day?", 90, mentions=[ME]),
        "notification": "mention",
        "unread": True,
        "mark": "10",
    },
    {
        **entry(11, BOB, None, 600, kind="react", emoji="🎉", target=TIMELINE[0]["id"]),
        "notification": "react",
        "unread": True,
        "mark": "9",
    },
    {
        **entry(12, EVE, None, 7200, kind="follow", target=ME),
        "notification": "follow",
        "unread": False,
        "mark": "8",
    },
]


class FakeClient:
    """The calls the TUI makes, answered from the data above."""

    def __init__(self, timeline: list[dict[str, Any]] | None = None, *, page: int = 50) -> None:
        self.identity = ME
        self.timeline_items = list(TIMELINE if timeline is None else timeline)
        self.page = page
        self.posted: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.unread = 2
        self.following_set = {ADA, BOB, EVE}
        self._live_send, self._live_recv = anyio.create_memory_object_stream[dict[str, Any]](64)

    def _paged(self, items: list[dict[str, Any]], limit: int, before: str | None) -> dict[str, Any]:
        start = int(before) if before else 0
        chunk = items[start : start + min(limit, self.page)]
        end = start + len(chunk)
        return {"items": chunk, "next": str(end) if end < len(items) else None}

    async def status(self) -> dict[str, Any]:
        return {"identity": ME, "unread_notifications": self.unread}

    async def following(self, identity: str | None = None) -> dict[str, Any]:
        items = sorted(self.following_set) if identity in (None, ME) else [ME]
        return {"items": items, "names": {i: NAMES[i] for i in items}}

    async def followers(self, identity: str | None = None) -> dict[str, Any]:
        return {"items": [ADA, EVE], "names": {ADA: NAMES[ADA], EVE: NAMES[EVE]}}

    async def petnames(self) -> dict[str, Any]:
        return {"items": [{"name": "ada", "identity": ADA, "profile": "Ada L."}]}

    async def policy(self) -> dict[str, Any]:
        return {"muted": []}

    async def profile(self, identity: str | None = None) -> dict[str, Any]:
        who = identity or ME
        if who not in NAMES:
            raise APIError("no such identity", code="invalid_argument", reason="bad_identity")
        bio = {ADA: "Grows tomatoes; runs her own node.", ME: "Testing p2psocial."}.get(who)
        return {
            "identity": who,
            "name": NAMES[who]["profile"],
            "petname": NAMES[who]["petname"],
            "bio": bio,
            "following": 3,
            "followers": 2,
            "blocked": False,
            "muted": False,
            "forked": who == EVE,
            "fork_seq": 9 if who == EVE else None,
        }

    async def timeline(self, *, limit: int = 50, before: str | None = None) -> dict[str, Any]:
        self.calls.append(f"timeline {before}")
        return self._paged(self.timeline_items, limit, before)

    async def feed(
        self, identity: str | None = None, *, limit: int = 50, before: str | None = None
    ) -> dict[str, Any]:
        mine = [e for e in self.timeline_items if e["author"] == (identity or ME)]
        return self._paged(mine, limit, before)

    async def thread(self, id: str) -> dict[str, Any]:
        self.calls.append(f"thread {id}")
        return {"items": THREAD}

    async def search(
        self, query: str, *, author: str | None = None, limit: int = 50, before: str | None = None
    ) -> dict[str, Any]:
        words = query.lower().split()
        hits = [
            e
            for e in self.timeline_items + THREAD[1:]
            if e.get("text") and all(w in e["text"].lower() for w in words)
        ]
        return self._paged(hits, limit, before)

    async def search_people(
        self, query: str, *, limit: int = 20, before: str | None = None
    ) -> dict[str, Any]:
        hits = [
            {"identity": i, "name": n["profile"], "bio": None}
            for i, n in NAMES.items()
            if n["profile"] and query.lower() in n["profile"].lower()
        ]
        return {"items": hits, "next": None}

    async def notifications(
        self, *, limit: int = 50, before: str | None = None, unread: bool = False
    ) -> dict[str, Any]:
        page = self._paged(NOTIFICATIONS, limit, before)
        return {**page, "unread": self.unread, "mark": "10"}

    async def mark_notifications_read(self, *, upto: str | None = None) -> dict[str, Any]:
        self.unread = 0
        return {"mark": upto, "unread": 0}

    async def post(self, text: str, *, reply_to: str | None = None, **_: Any) -> dict[str, Any]:
        self.posted.append({"text": text, "reply_to": reply_to})
        return {"id": "ff" * 32, "seq": 99}

    async def react(self, target: str, emoji: str, *, force: bool = False) -> dict[str, Any]:
        self.posted.append({"react": target, "emoji": emoji})
        return {"id": "fe" * 32, "seq": 100}

    async def repost(self, target: str) -> dict[str, Any]:
        self.posted.append({"repost": target})
        return {"id": "fd" * 32, "seq": 101}

    async def delete(self, target: str) -> dict[str, Any]:
        self.posted.append({"delete": target})
        return {"id": "fc" * 32, "seq": 102}

    async def block(self, identity: str, **_: Any) -> dict[str, Any]:
        self.posted.append({"block": identity})
        return {"blocked": identity, "public": True}

    async def mute(self, identity: str) -> dict[str, Any]:
        self.posted.append({"mute": identity})
        return {"muted": identity}

    async def follow(self, identity: str) -> dict[str, Any]:
        self.following_set.add(identity)
        return {"id": "fb" * 32, "seq": 103}

    async def unfollow(self, identity: str) -> dict[str, Any]:
        self.following_set.discard(identity)
        return {"id": "fa" * 32, "seq": 104}

    async def watch(self, *, kinds: list[str] | None = None, **_: Any) -> AsyncIterator[Any]:
        if kinds == ["notification"]:
            return self._never()
        return self._live()

    async def _never(self) -> AsyncIterator[dict[str, Any]]:
        await anyio.sleep_forever()
        yield {}

    async def _live(self) -> AsyncIterator[dict[str, Any]]:
        async for event in self._live_recv:
            yield event

    def push_live(self, event: dict[str, Any]) -> None:
        """Deliver ``event`` as the timeline watch would."""
        self._live_send.send_nowait(event)


def connector(client: FakeClient) -> Any:
    """A connector for :class:`~p2psocial.tui.P2PSocialApp` that yields ``client``."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[FakeClient]:
        yield client

    return connect
