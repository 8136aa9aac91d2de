"""Entries as the local API shows them: EntryViews made into maps.

Every page the API serves renders its entries here, one map per entry, so
this is on the path of every read; names are added after
(:meth:`p2psocial.node.names.Names.annotate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..storage import AsyncStore, EntryView

__all__ = ["render_views", "view_json"]


def view_json(view: EntryView, *, fork_seq: int | None) -> dict[str, Any]:
    """An EntryView as the API shows it, before names (:meth:`Names.annotate`).

    :meth:`EntryView.to_json`'s fields, in its order, then ``reply_to`` (the
    parent id), and ``author_forked`` and ``author_fork_seq``: whether the
    author's feed is forked on this node, and the seq it is frozen at
    (spec/client-api.md §5).

    Args:
        fork_seq: the author's fork seq (``Store.forked_feeds``), or None when
            the feed is not forked. Required, so no view leaves it out by accident.
    """
    m = view.to_json()
    m["reply_to"] = m["reply_parent"]
    m["author_forked"] = fork_seq is not None
    m["author_fork_seq"] = fork_seq
    return m


async def render_views(store: AsyncStore, views: Iterable[EntryView]) -> list[dict[str, Any]]:
    """EntryViews as the API shows them, each saying whether its author's feed is forked."""
    views = list(views)
    forks = await store.forked_feeds({v.author for v in views}) if views else {}
    return [view_json(v, fork_seq=forks.get(v.author)) for v in views]
