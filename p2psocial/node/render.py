"""Entries as the local API shows them: EntryViews made into maps.

Every page the API serves renders its entries here, one map per entry, so
this is on the path of every read; names are added after
(:meth:`p2psocial.node.names.Names.annotate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..protocol.identity import identity_to_text
from ..storage import AsyncStore, EntryView
from ..storage.model import AUTHOR_TARGET_KINDS, json_payload

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
    # Every page the API serves makes one of these per entry: one literal,
    # no intermediate map (tests/node/test_view_render.py holds it to
    # EntryView.to_json).
    kind = view.kind
    target: Any = view.target
    if target is not None:
        target = identity_to_text(target) if kind in AUTHOR_TARGET_KINDS else target.hex()
    payload = view.payload
    mentions = view.mentions
    reply_root = view.reply_root
    reply_parent = view.reply_parent.hex() if view.reply_parent else None
    state = view.payload_state
    return {
        "id": view.id.hex(),
        "author": identity_to_text(view.author),
        "seq": view.seq,
        "kind": kind,
        "timestamp": view.timestamp,
        "payload_state": state,
        "deleted": state == "deleted",
        "text": view.text,
        "reply_root": reply_root.hex() if reply_root else None,
        "reply_parent": reply_parent,
        "mentions": [identity_to_text(m) for m in mentions] if mentions else [],
        "tags": list(view.tags) if view.tags else [],
        "target": target,
        "emoji": view.emoji,
        "payload": None if payload is None else json_payload(payload),
        "reactions": dict(view.reactions) if view.reactions else {},
        "reposts": view.reposts,
        "replies": view.replies,
        "depth": view.depth,
        "reply_to": reply_parent,
        "author_forked": fork_seq is not None,
        "author_fork_seq": fork_seq,
    }


async def render_views(store: AsyncStore, views: Iterable[EntryView]) -> list[dict[str, Any]]:
    """EntryViews as the API shows them, each saying whether its author's feed is forked."""
    views = list(views)
    forks = await store.forked_feeds({v.author for v in views}) if views else {}
    return [view_json(v, fork_seq=forks.get(v.author)) for v in views]
