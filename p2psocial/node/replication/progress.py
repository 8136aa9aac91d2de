"""How far each wanted feed has caught up: the ``sync_progress`` API method.

A feed newly followed is caught up newest-first (spec/sync.md 5.6), so "have
N of H" is not enough to tell whether a timeline is worth showing yet: the
answer also says whether the recent part (the newest ``recent`` entries up to
the best known head) is held. The best known head is the highest of what the
store holds and what linked peers are known to hold (their clocks, and the
answers to our catch-up requests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ...protocol.identity import identity_to_text

__all__ = ["ProgressStore", "progress_rows"]


class ProgressStore(Protocol):
    """The store read the rows need (``p2psocial.storage.AsyncStore``)."""

    async def sync_progress(
        self, tops: dict[bytes, int], recent: int
    ) -> dict[bytes, tuple[int, int, int, int]]: ...


async def progress_rows(
    store: ProgressStore,
    authors: Iterable[bytes],
    known: Mapping[bytes, tuple[int, bool]],
    recent: int,
) -> list[dict[str, Any]]:
    """One row per author, in the order given.

    Args:
        authors: the feeds to report.
        known: author -> (highest seq peers are known to hold, caught up
            newest-first on some link right now); absent means (0, False).
        recent: the size of the recent part.

    Returns:
        Rows ``{"identity", "held", "contiguous", "head", "recent",
        "recent_held", "recent_complete", "complete", "catching"}``: entries
        held, the contiguous head, the best known head (0: nothing known),
        the size of the recent part for that head and how much of it is held,
        and whether the recent part and the whole feed are held.
    """
    order = list(dict.fromkeys(authors))
    tops = {a: known.get(a, (0, False))[0] for a in order}
    rows = await store.sync_progress(tops, recent)
    out: list[dict[str, Any]] = []
    for a in order:
        held, contiguous, head, recent_held = rows.get(a, (0, 0, tops[a], 0))
        want = min(recent, head)
        out.append(
            {
                "identity": identity_to_text(a),
                "held": held,
                "contiguous": contiguous,
                "head": head,
                "recent": want,
                "recent_held": recent_held,
                "recent_complete": head > 0 and recent_held >= want,
                "complete": head > 0 and contiguous >= head,
                "catching": known.get(a, (0, False))[1],
            }
        )
    return out
