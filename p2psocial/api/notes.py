"""Sentences for people that the daemon and its clients both show."""

from __future__ import annotations

__all__ = ["NOTIFICATION_LABELS", "fork_note"]

#: What each kind of notification (spec/client-api.md §5b) says its author did.
NOTIFICATION_LABELS = {
    "reply": "replied to you",
    "mention": "mentioned you",
    "react": "reacted to your post",
    "repost": "reposted your post",
    "follow": "followed you",
}


def fork_note(fork_seq: int) -> str:
    """What a forked feed means, in one sentence for people."""
    return (
        f"the author signed two different entries at seq {fork_seq}; this node holds the "
        "proof and accepts no more entries of this feed at or above that seq, and other "
        "nodes may show the rival history"
    )
