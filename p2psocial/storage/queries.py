"""Read queries: timelines, feeds, threads, notifications, search.

Pagination. Lists are ordered newest first by (timestamp, id), or by seq for
an author's feed. A cursor encodes the last item's key; the next page holds
the items strictly older than it, so pages never overlap or skip, even while
entries are being added.

The home timeline (own + followed authors) uses one of two plans, chosen from
the share of entries its authors hold:

* *scan*: walk the global (ts, id) index of timeline entries newest first and
  keep rows whose feed is in the followed set. With 1,000 followed authors
  out of 2,000 about every second row matches, so a page of 50 reads ~100
  index rows.
* *merge*: for few or quiet followed authors, read each author's newest rows
  from the per-author (fid, ts, id) index and merge them. Cost: one index seek
  per author plus at most ``limit`` rows each.
"""

from __future__ import annotations

import heapq
import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from ..errors import LocalUsageError
from ..protocol.identity import identity_to_text
from .derived import SLOT_BITS as _SLOT_BITS
from .derived import decode_stored_payload
from .model import (
    AUTHOR_TARGET_KINDS,
    EntryView,
    MapPage,
    Page,
    decode_cursor,
    encode_cursor,
    json_payload_in_place,
)
from .schema import PSTATE

__all__ = [
    "PREFIX_SQL",
    "SEARCH_SQL",
    "feed",
    "get_entry",
    "ids_with_prefix",
    "mentions",
    "reaction_counts",
    "related",
    "search",
    "search_rows",
    "tagged",
    "thread",
    "timeline",
    "timeline_maps",
]

_STATE_NAMES = {v: k for k, v in PSTATE.items()}
_MAX_LIMIT = 500
_IN_CHUNK = 500  # bound on SQL parameters per IN (...) list
_RELATION_TABLES = frozenset({"follows", "blocks"})
_TOP = (1 << 62, b"")  # above every real (ts, id): timestamps are < 2**53

_VIEW_SQL = (
    "SELECT e.eid, e.id, f.author, e.seq, e.kind, e.ts, e.pstate, e.payload, e.target, e.root, "
    "CASE WHEN f.status = 'forked' THEN f.fork_seq END "
    "FROM entries e JOIN feeds f ON f.fid = e.fid WHERE e.eid IN (%s)"
)


def _limit(limit: int) -> int:
    if not 1 <= limit <= _MAX_LIMIT:
        raise LocalUsageError(f"limit must be in 1..{_MAX_LIMIT}", reason="bad_limit")
    return limit


def _bound(before: str | None) -> tuple[int, bytes]:
    return _TOP if before is None else decode_cursor(before)


def _view(row: tuple[Any, ...]) -> EntryView:
    _eid, id_, author, seq, kind, ts, pstate, payload, target, root, _fork_seq = row
    v = EntryView(
        id=id_, author=author, seq=seq, kind=kind, timestamp=ts, payload_state=_STATE_NAMES[pstate]
    )
    if kind == "post" and root is not None:
        # Kept for deleted replies too, so a thread shows their placeholder.
        v.reply_root, v.reply_parent = root, target
    if payload is None:
        return v
    value = decode_stored_payload(payload)
    v.payload = value
    if kind == "post":
        v.text = value.get("text")
        v.mentions = list(value.get("mentions", ()))
        v.tags = list(value.get("tags", ()))
    elif "target" in value and isinstance(value["target"], bytes):
        v.target = value["target"]
        if kind == "react":
            v.emoji = value.get("emoji")
    return v


#: Every field of an API map (:func:`_map`) in its order, with the value most
#: entries have. A map is a copy of this one with its own values set: copying
#: a map of 22 keys costs less than half as much as building one.
_MAP_TEMPLATE: dict[str, Any] = {
    "id": None,
    "author": None,
    "seq": None,
    "kind": None,
    "timestamp": None,
    "payload_state": None,
    "deleted": False,
    "text": None,
    "reply_root": None,
    "reply_parent": None,
    "mentions": None,
    "tags": None,
    "target": None,
    "emoji": None,
    "payload": None,
    "reactions": None,
    "reposts": 0,
    "replies": 0,
    "depth": 0,
    "reply_to": None,
    "author_forked": False,
    "author_fork_seq": None,
}


def _map(row: tuple[Any, ...]) -> dict[str, Any]:
    """The API's map of one row of ``_VIEW_SQL``, counts still zero (see :class:`MapPage`).

    The fields and their order are :func:`_view`'s then ``EntryView.to_json``'s,
    then ``reply_to``, ``author_forked`` and ``author_fork_seq``; a test holds
    the two paths to the same maps.
    """
    # Every entry of every home timeline page the API serves comes through
    # here: the template's defaults stand unless the row says otherwise.
    _eid, id_, author, seq, kind, ts, pstate, payload, target, root, fork_seq = row
    m = _MAP_TEMPLATE.copy()
    m["id"] = id_.hex()
    m["author"] = identity_to_text(author)
    m["seq"] = seq
    m["kind"] = kind
    m["timestamp"] = ts
    m["payload_state"] = state = _STATE_NAMES[pstate]
    if state == "deleted":
        m["deleted"] = True
    # Fresh containers: a caller may change one map's lists.
    m["mentions"] = []
    m["tags"] = []
    m["reactions"] = {}
    if fork_seq is not None:
        m["author_forked"] = True
        m["author_fork_seq"] = int(fork_seq)
    if kind == "post":
        if root is not None:
            m["reply_root"] = root.hex()
            if target:
                m["reply_parent"] = m["reply_to"] = target.hex()
        if payload is None:
            return m
        value = decode_stored_payload(payload)
        m["text"] = value.get("text")
        if value.get("mentions"):
            m["mentions"] = [identity_to_text(k) for k in value["mentions"]]
        if value.get("tags"):
            m["tags"] = list(value["tags"])
    elif payload is None:
        return m
    else:
        value = decode_stored_payload(payload)
        t = value.get("target")
        if type(t) is bytes:
            m["target"] = identity_to_text(t) if kind in AUTHOR_TARGET_KINDS else t.hex()
            if kind == "react":
                m["emoji"] = value.get("emoji")
    # The decoded payload belongs to this map alone: no copy.
    m["payload"] = json_payload_in_place(value)
    return m


def _rows(conn: sqlite3.Connection, eids: list[int]) -> Iterable[tuple[Any, ...]]:
    for i in range(0, len(eids), _IN_CHUNK):
        chunk = eids[i : i + _IN_CHUNK]
        yield from conn.execute(_VIEW_SQL % ",".join("?" * len(chunk)), chunk)


def _counts(conn: sqlite3.Connection, ids: list[bytes]) -> Iterable[tuple[Any, ...]]:
    """(target, kind, aux, count, distinct authors) of the replies, reposts and reactions of ``ids``."""
    for i in range(0, len(ids), _IN_CHUNK):
        id_chunk = ids[i : i + _IN_CHUNK]
        q = (
            "SELECT target, kind, aux, count(*), count(DISTINCT fid) FROM entries "
            f"WHERE target IN ({','.join('?' * len(id_chunk))}) "
            "AND kind IN ('post', 'react', 'repost') GROUP BY target, kind, aux"
        )
        yield from conn.execute(q, id_chunk)


def _views(
    conn: sqlite3.Connection, eids: list[int], forks: dict[bytes, int] | None = None
) -> list[EntryView]:
    """Views of ``eids`` in that order, with reaction/repost/reply counts.

    Args:
        forks: if given, filled with author -> fork seq for the views' forked
            authors, read in the same query (see :attr:`Page.forks`).
    """
    by_eid: dict[int, EntryView] = {}
    for r in _rows(conn, eids):
        by_eid[r[0]] = _view(r)
        if forks is not None and r[-1] is not None:
            forks[r[2]] = int(r[-1])
    views = [by_eid[e] for e in eids if e in by_eid]
    by_id = {v.id: v for v in views}
    for target, kind, aux, n, n_authors in _counts(conn, list(by_id)):
        v = by_id[target]
        if kind == "post":
            v.replies = n
        elif kind == "repost":
            v.reposts = n_authors
        elif aux is not None:
            v.reactions[aux] = n_authors
    return views


def _maps(conn: sqlite3.Connection, eids: list[int]) -> list[dict[str, Any]]:
    """:func:`_views` as the API's maps (:class:`MapPage`)."""
    by_eid: dict[int, dict[str, Any]] = {}
    by_id: dict[bytes, dict[str, Any]] = {}
    for r in _rows(conn, eids):
        by_eid[r[0]] = by_id[r[1]] = _map(r)
    maps = [by_eid[e] for e in eids if e in by_eid]
    for target, kind, aux, n, n_authors in _counts(conn, list(by_id)):
        m = by_id[target]
        if kind == "post":
            m["replies"] = n
        elif kind == "repost":
            m["reposts"] = n_authors
        elif aux is not None:
            m["reactions"][aux] = n_authors
    return maps


def _page(conn: sqlite3.Connection, keyed: list[tuple[int, bytes, int]], limit: int) -> Page:
    """keyed: (primary key, id, eid) newest first, up to limit + 1 of them."""
    more = len(keyed) > limit
    keyed = keyed[:limit]
    cursor = encode_cursor(keyed[-1][0], keyed[-1][1]) if more and keyed else None
    forks: dict[bytes, int] = {}
    return Page(_views(conn, [k[2] for k in keyed], forks), cursor, forks)


def _map_page(conn: sqlite3.Connection, keyed: list[tuple[int, bytes, int]], limit: int) -> MapPage:
    """:func:`_page` as a :class:`MapPage`."""
    more = len(keyed) > limit
    keyed = keyed[:limit]
    cursor = encode_cursor(keyed[-1][0], keyed[-1][1]) if more and keyed else None
    return MapPage(_maps(conn, [k[2] for k in keyed]), cursor)


def get_entry(conn: sqlite3.Connection, id_: bytes) -> EntryView | None:
    row = conn.execute("SELECT eid FROM entries WHERE id = ?", (id_,)).fetchone()
    if row is None:
        return None
    views = _views(conn, [row[0]])
    return views[0] if views else None


#: The ids in [lo, hi), in id order: a range over the unique index on ``id``.
PREFIX_SQL = (
    "SELECT id FROM entries INDEXED BY entries_id WHERE id >= ? AND id < ? ORDER BY id LIMIT ?"
)
_PREFIX_OPEN_SQL = "SELECT id FROM entries INDEXED BY entries_id WHERE id >= ? ORDER BY id LIMIT ?"
_HEX_RE = re.compile(r"[0-9a-fA-F]{1,64}\Z")


def _after_prefix(prefix: bytes) -> bytes | None:
    """The smallest byte string above every string starting with ``prefix``.

    None when there is none (``prefix`` is all 0xff): the range is open above.
    """
    head = prefix.rstrip(b"\xff")
    if not head:
        return None
    return head[:-1] + bytes([head[-1] + 1])


def ids_with_prefix(conn: sqlite3.Connection, prefix: str, limit: int) -> list[bytes]:
    """Ids of held entries whose hex form starts with ``prefix``, in id order, at most ``limit``.

    SQLite compares blobs bytewise, shorter first on a tie, so the ids starting
    with the bytes ``p`` are exactly those in ``[p, p + 1)``; an odd digit
    count widens the last nibble into ``[p0, pf + 1)``. Either way one range
    seek on the ``entries_id`` index, however many entries are held.

    Raises:
        LocalUsageError: ``prefix`` is not 1 to 64 hex digits (reason ``bad_id``).
    """
    if not isinstance(prefix, str) or not _HEX_RE.match(prefix):
        raise LocalUsageError(
            f"an id prefix must be 1 to 64 hex digits, not {prefix!r}", reason="bad_id"
        )
    if len(prefix) % 2:
        lo, top = bytes.fromhex(prefix + "0"), bytes.fromhex(prefix + "f")
    else:
        lo = top = bytes.fromhex(prefix)
    hi = _after_prefix(top)
    if hi is None:
        rows = conn.execute(_PREFIX_OPEN_SQL, (lo, limit))
    else:
        rows = conn.execute(PREFIX_SQL, (lo, hi, limit))
    return [r[0] for r in rows]


def reaction_counts(conn: sqlite3.Connection, id_: bytes) -> dict[str, int]:
    return {
        aux: n
        for aux, n in conn.execute(
            "SELECT aux, count(DISTINCT fid) FROM entries WHERE target = ? AND kind = 'react' "
            "AND aux IS NOT NULL GROUP BY aux",
            (id_,),
        )
    }


def _timeline_fids(conn: sqlite3.Connection, me: bytes) -> dict[int, int]:
    """fid -> n_entries of ``me`` and every author ``me`` follows (that we hold)."""
    rows = conn.execute(
        "SELECT fid, n_entries FROM feeds WHERE author = ? "
        "UNION SELECT f.fid, f.n_entries FROM follows fo JOIN feeds f ON f.author = fo.dst "
        "WHERE fo.src = ? AND fo.active = 1",
        (me, me),
    ).fetchall()
    return dict(rows)


def timeline_audience(conn: sqlite3.Connection, me: bytes) -> tuple[dict[int, int], int]:
    """(fid -> n_entries of the timeline's feeds, n_entries of all feeds): cacheable."""
    total = conn.execute("SELECT coalesce(sum(n_entries), 0) FROM feeds").fetchone()[0]
    return _timeline_fids(conn, me), int(total) or 1


def timeline(
    conn: sqlite3.Connection,
    me: bytes,
    *,
    limit: int = 50,
    before: str | None = None,
    audience: tuple[dict[int, int], int] | None = None,
) -> Page:
    limit = _limit(limit)
    return _page(conn, _timeline_keys(conn, me, limit, before, audience), limit)


def timeline_maps(
    conn: sqlite3.Connection,
    me: bytes,
    *,
    limit: int = 50,
    before: str | None = None,
    audience: tuple[dict[int, int], int] | None = None,
) -> MapPage:
    """:func:`timeline` as the API's maps (:class:`MapPage`)."""
    limit = _limit(limit)
    return _map_page(conn, _timeline_keys(conn, me, limit, before, audience), limit)


def _timeline_keys(
    conn: sqlite3.Connection,
    me: bytes,
    limit: int,
    before: str | None,
    audience: tuple[dict[int, int], int] | None,
) -> list[tuple[int, bytes, int]]:
    """(ts, id, eid) of the timeline's entries older than ``before``, newest first, up to limit + 1."""
    ts0, id0 = _bound(before)
    fids, total = audience if audience is not None else timeline_audience(conn, me)
    if not fids:
        return []
    share = sum(fids.values()) / total
    want = limit + 1
    keyed: list[tuple[int, bytes, int]] = []
    # Rows the scan is expected to read, against the merge's per-author seeks.
    if len(fids) > 16 and want / max(share, 1e-9) < 8 * (len(fids) + want):
        cur = conn.execute(
            "SELECT ts, id, eid, fid FROM entries INDEXED BY entries_tl_time "
            "WHERE tl = 1 AND (ts, id) < (?, ?) ORDER BY ts DESC, id DESC",
            (ts0, id0),
        )
        while len(keyed) < want:
            batch = cur.fetchmany(256)
            if not batch:
                break
            for ts, id_, eid, fid in batch:
                if fid in fids:
                    keyed.append((ts, id_, eid))
                    if len(keyed) >= want:
                        break
        cur.close()
    else:
        streams = []
        for fid in fids:
            rows = conn.execute(
                "SELECT ts, id, eid FROM entries INDEXED BY entries_tl_author "
                "WHERE fid = ? AND tl = 1 AND (ts, id) < (?, ?) ORDER BY ts DESC, id DESC LIMIT ?",
                (fid, ts0, id0, want),
            ).fetchall()
            if rows:
                streams.append(rows)
        for row in heapq.merge(*streams, key=lambda r: (r[0], r[1]), reverse=True):
            keyed.append(row)
            if len(keyed) >= want:
                break
    return keyed


def feed(
    conn: sqlite3.Connection,
    author: bytes,
    *,
    limit: int = 50,
    before: str | None = None,
    kinds: Iterable[str] | None = ("post", "repost"),
) -> Page:
    limit = _limit(limit)
    seq0 = _bound(before)[0]
    row = conn.execute("SELECT fid FROM feeds WHERE author = ?", (author,)).fetchone()
    if row is None:
        return Page([], None, {})
    params: list[Any] = [row[0], seq0]
    kind_sql = ""
    if kinds is not None:
        ks = list(kinds)
        kind_sql = " AND kind IN ({})".format(",".join("?" * len(ks)))
        params.extend(ks)
    params.append(limit + 1)
    rows = conn.execute(
        "SELECT seq, id, eid FROM entries WHERE fid = ? AND seq < ?"
        + kind_sql
        + " ORDER BY seq DESC LIMIT ?",
        params,
    ).fetchall()
    return _page(conn, rows, limit)


def _keyed_page(
    conn: sqlite3.Connection, table: str, column: str, key: object, limit: int, before: str | None
) -> Page:
    """A page of ``table`` (an index of (ts, id, eid) rows) where ``column`` is ``key``."""
    limit = _limit(limit)
    ts0, id0 = _bound(before)
    rows = conn.execute(
        f"SELECT ts, id, eid FROM {table} WHERE {column} = ? AND (ts, id) < (?, ?) "
        "ORDER BY ts DESC, id DESC LIMIT ?",
        (key, ts0, id0, limit + 1),
    ).fetchall()
    return _page(conn, rows, limit)


def mentions(
    conn: sqlite3.Connection, me: bytes, *, limit: int = 50, before: str | None = None
) -> Page:
    return _keyed_page(conn, "notify", "author", me, limit, before)


def tagged(
    conn: sqlite3.Connection, tag: str, *, limit: int = 50, before: str | None = None
) -> Page:
    return _keyed_page(conn, "tags", "tag", tag.casefold(), limit, before)


def related(conn: sqlite3.Connection, table: str, author: bytes, *, outgoing: bool) -> list[bytes]:
    """Authors linked to ``author`` by an active row of ``table`` (``follows``/``blocks``).

    Args:
        outgoing: the authors ``author`` names (``dst``), else those naming
            ``author`` (``src``); sorted.
    """
    if table not in _RELATION_TABLES:
        raise ValueError(f"not a relation table: {table!r}")
    have, want = ("src", "dst") if outgoing else ("dst", "src")
    return [
        r[0]
        for r in conn.execute(
            f"SELECT {want} FROM {table} WHERE {have} = ? AND active = 1 ORDER BY {want}",
            (author,),
        )
    ]


def fts_query(query: str) -> str:
    """Turn user text (words, "quoted phrases", word* prefixes) into an FTS5 query.

    Every word and phrase is quoted, so FTS5 operators and punctuation in the
    user's text cannot break the syntax; all terms must match.

    Raises:
        LocalUsageError: empty query or an unbalanced quote.
    """
    if query.count('"') % 2:
        raise LocalUsageError("search query has an unbalanced quote", reason="bad_query")
    terms: list[str] = []
    for i, part in enumerate(query.split('"')):
        if i % 2:  # inside quotes: a phrase
            if part.strip():
                terms.append('"' + part.strip() + '"')
            continue
        for word in part.split():
            prefix = word.endswith("*") and len(word) > 1
            word = word.rstrip("*")
            if word:
                terms.append('"' + word.replace('"', "") + '"' + ("*" if prefix else ""))
    if not terms:
        raise LocalUsageError("search query is empty", reason="bad_query")
    return " AND ".join(terms)


#: The search rows: every FTS match joined to its post, read in search-key
#: order (newest first, derived.search_key) within [lo, hi]. FTS5 walks the
#: rowids of a match in order and SQLite needs no sort, so the caller can stop
#: after a page. ``%s`` is the author filter.
SEARCH_SQL = (
    "SELECT e.ts, e.id, e.eid FROM post_fts "
    "JOIN search_keys k ON k.sk = post_fts.rowid JOIN entries e ON e.eid = k.eid "
    "WHERE post_fts MATCH ? AND post_fts.rowid >= ? AND post_fts.rowid <= ?%s "
    "ORDER BY post_fts.rowid DESC"
)
_MAX_KEY = (1 << 63) - 1


def search_rows(
    conn: sqlite3.Connection,
    match: str,
    *,
    fid: int | None = None,
    before: tuple[int, bytes] = _TOP,
    want: int = 51,
) -> list[tuple[int, bytes, int]]:
    """The ``want`` newest (ts, id, eid) of posts matching the FTS5 query ``match``.

    Newest first by (ts, id), strictly below ``before``, by author ``fid`` if
    given. Keys put each millisecond's posts together but not in id order
    (derived.assign_search_keys), so rows are read until a millisecond older
    than the ``want``-th row begins, and sorted; keys moved out of time order
    (negative: a flooded millisecond) are read apart and merged in.

    Raises:
        sqlite3.OperationalError: ``match`` is not a valid FTS5 query.
    """
    hi = min(((before[0] + 1) << _SLOT_BITS) - 1, _MAX_KEY)
    author_sql, extra = ("", ()) if fid is None else (" AND e.fid = ?", (fid,))
    rows: list[tuple[int, bytes, int]] = []
    cur = conn.execute(SEARCH_SQL % author_sql, (match, 0, hi, *extra))
    try:
        done = False
        # fetchmany steps the query for every row it returns: ask for a page
        # and the one row that usually ends it, then a few at a time.
        size = want + 1
        while not done and (batch := cur.fetchmany(size)):
            size = 8
            for row in batch:
                # Rows come by key, so by ts: once one is older than the
                # want-th kept, every later one is too.
                if len(rows) >= want and row[0] < rows[-1][0]:
                    done = True
                    break
                if (row[0], row[1]) < before:
                    rows.append(row)
    finally:
        cur.close()
    if conn.execute("SELECT 1 FROM search_keys WHERE sk < 0 LIMIT 1").fetchone() is not None:
        spilled = conn.execute(SEARCH_SQL % author_sql, (match, -_MAX_KEY, -1, *extra))
        rows.extend(r for r in spilled if (r[0], r[1]) < before)
    rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
    return rows[:want]


def search(
    conn: sqlite3.Connection,
    query: str,
    *,
    author: bytes | None = None,
    limit: int = 50,
    before: str | None = None,
) -> Page:
    limit = _limit(limit)
    bound = _bound(before)
    match = fts_query(query)
    fid = None
    if author is not None:
        row = conn.execute("SELECT fid FROM feeds WHERE author = ?", (author,)).fetchone()
        if row is None:
            return Page([], None, {})
        fid = row[0]
    try:
        rows = search_rows(conn, match, fid=fid, before=bound, want=limit + 1)
    except sqlite3.OperationalError as exc:
        raise LocalUsageError(f"bad search query: {exc}", reason="bad_query") from None
    return _page(conn, rows, limit)


def thread(conn: sqlite3.Connection, id_: bytes) -> list[EntryView]:
    row = conn.execute("SELECT eid, root FROM entries WHERE id = ?", (id_,)).fetchone()
    if row is None:
        return []
    root_id = row[1] if row[1] is not None else id_
    eids = [r[0] for r in conn.execute("SELECT eid FROM entries WHERE id = ?", (root_id,))]
    eids += [
        r[0]
        for r in conn.execute(
            "SELECT eid FROM entries WHERE root = ? AND kind = 'post'", (root_id,)
        )
    ]
    if not eids and row[1] is not None:
        eids = [row[0]]
    views = _views(conn, eids)
    root = next((v for v in views if v.id == root_id), None)
    present = {v.id for v in views}
    children: dict[bytes, list[EntryView]] = {}
    for v in views:
        if v is root:
            continue
        parent = v.reply_parent if v.reply_parent in present else root_id
        children.setdefault(parent, []).append(v)
    for kids in children.values():
        kids.sort(key=lambda v: (v.timestamp, v.id))
    out: list[EntryView] = []
    start_depth = 0
    if root is not None:
        out.append(root)
        start_depth = 1
    # Iterative depth-first walk; a reply chain can be long.
    stack = [(v, start_depth) for v in reversed(children.get(root_id, []))]
    seen: set[bytes] = {root_id}
    while stack:
        v, depth = stack.pop()
        if v.id in seen:
            continue
        seen.add(v.id)
        v.depth = depth
        out.append(v)
        stack.extend((c, depth + 1) for c in reversed(children.get(v.id, [])))
    return out
