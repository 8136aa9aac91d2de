"""Finding people among what this node holds: follow suggestions and profile search.

Theory. There is no directory to ask. A node knows the identities whose
feeds it holds (followed authors, their follows when ``hops`` is 2, peeks) and
the follow entries in those feeds. So:

* a *suggestion* is an identity followed by identities the owner follows,
  ranked by how many of them follow it (friends of friends, the only social
  signal a node has without asking anyone);
* a *people search* matches the profiles held here, by name and bio.

Both read the derived ``follows`` and ``profiles`` tables only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import LocalUsageError
from .derived import decode_stored_payload

__all__ = [
    "MAX_PEOPLE_QUERY",
    "PeoplePage",
    "Person",
    "profile_names",
    "search_people",
    "suggest",
]

#: Characters of a people search, after trimming.
MAX_PEOPLE_QUERY = 200
_MAX_LIMIT = 500
#: Profiles decoded per round of a people search.
_SCAN_BATCH = 500
#: How many of the owner's follows a suggestion names as the reason.
_VIA = 3


@dataclass(frozen=True, slots=True)
class Person:
    """An identity with its profile fields as held here (None when no profile is held)."""

    author: bytes
    name: str | None
    bio: str | None
    #: For suggestions: how many of the owner's follows follow this identity.
    followed_by: int = 0
    #: For suggestions: up to three of those follows.
    via: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class PeoplePage:
    """A page of people; ``next_cursor`` is the ``before`` of the next page."""

    items: list[Person]
    next_cursor: str | None


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= _MAX_LIMIT:
        raise LocalUsageError(f"limit must be in 1..{_MAX_LIMIT}", reason="bad_limit")
    return limit


def profile_names(
    conn: sqlite3.Connection, authors: Iterable[bytes]
) -> dict[bytes, tuple[str | None, str | None]]:
    """author -> (name, bio) of the latest profile held, for those of ``authors`` with one."""
    wanted = list(dict.fromkeys(authors))
    out: dict[bytes, tuple[str | None, str | None]] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        for author, payload in conn.execute(
            "SELECT p.author, e.payload FROM profiles p JOIN entries e ON e.eid = p.eid "
            f"WHERE p.author IN ({','.join('?' * len(chunk))}) AND e.payload IS NOT NULL",
            chunk,
        ):
            value = decode_stored_payload(payload)
            out[author] = (value.get("name"), value.get("bio"))
    return out


def suggest(
    conn: sqlite3.Connection, me: bytes, *, exclude: Iterable[bytes] = (), limit: int = 20
) -> list[Person]:
    """Identities followed by those ``me`` follows, most-followed first.

    Never suggests ``me``, an identity ``me`` follows, or one in ``exclude``
    (the caller passes the blocked and muted). Ties go by identity bytes, so
    the order is stable.

    Raises:
        LocalUsageError: ``limit`` out of 1..500.
    """
    _check_limit(limit)
    shut = set(exclude)
    rows = conn.execute(
        "SELECT f2.dst, count(*) AS n FROM follows f1 "
        "JOIN follows f2 ON f2.src = f1.dst AND f2.active = 1 "
        "WHERE f1.src = ? AND f1.active = 1 AND f2.dst != ? "
        "AND f2.dst NOT IN (SELECT dst FROM follows WHERE src = ? AND active = 1) "
        "GROUP BY f2.dst ORDER BY n DESC, f2.dst LIMIT ?",
        (me, me, me, limit + len(shut)),
    ).fetchall()
    picked = [(dst, n) for dst, n in rows if dst not in shut][:limit]
    names = profile_names(conn, [dst for dst, _ in picked])
    out = []
    for dst, n in picked:
        via = conn.execute(
            "SELECT f1.dst FROM follows f1 JOIN follows f2 ON f2.src = f1.dst "
            "WHERE f1.src = ? AND f1.active = 1 AND f2.dst = ? AND f2.active = 1 "
            "ORDER BY f1.dst LIMIT ?",
            (me, dst, _VIA),
        ).fetchall()
        name, bio = names.get(dst, (None, None))
        out.append(Person(dst, name, bio, int(n), tuple(r[0] for r in via)))
    return out


def _parse_after(before: str | None) -> bytes:
    if before is None:
        return b""
    try:
        raw = bytes.fromhex(before)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise LocalUsageError("malformed pagination cursor", reason="bad_cursor")
    return raw


def search_people(
    conn: sqlite3.Connection, query: str, *, limit: int = 20, before: str | None = None
) -> PeoplePage:
    """Profiles held here whose name or bio contains ``query``, case-insensitively.

    Ordered by identity bytes; ``before`` is the cursor of the previous page
    (the name says where the next page starts, as for every other list).

    Raises:
        LocalUsageError: an empty or over-long query (reason ``bad_query``),
            ``limit`` out of 1..500, or a malformed cursor.
    """
    _check_limit(limit)
    needle = query.strip().casefold()
    if not needle:
        raise LocalUsageError("empty people search", reason="bad_query")
    if len(needle) > MAX_PEOPLE_QUERY:
        raise LocalUsageError(
            f"a people search is at most {MAX_PEOPLE_QUERY} characters", reason="bad_query"
        )
    after = _parse_after(before)
    found: list[Person] = []
    while len(found) <= limit:
        rows = conn.execute(
            "SELECT p.author, e.payload FROM profiles p JOIN entries e ON e.eid = p.eid "
            "WHERE p.author > ? AND e.payload IS NOT NULL ORDER BY p.author LIMIT ?",
            (after, _SCAN_BATCH),
        ).fetchall()
        for author, payload in rows:
            value = decode_stored_payload(payload)
            name, bio = value.get("name"), value.get("bio")
            if any(isinstance(t, str) and needle in t.casefold() for t in (name, bio)):
                found.append(Person(author, name, bio))
        if len(rows) < _SCAN_BATCH:
            break
        after = rows[-1][0]
    more = len(found) > limit
    found = found[:limit]
    return PeoplePage(found, found[-1].author.hex() if more else None)
