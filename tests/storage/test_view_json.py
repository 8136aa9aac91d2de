"""EntryView.to_json: the shape every API page item starts from (spec/client-api.md §5)."""

from __future__ import annotations

from typing import Any

import pytest

from p2psocial.protocol.identity import identity_to_text
from p2psocial.storage.model import EntryView, json_payload, json_payload_in_place

A = bytes(range(32))
B = bytes(range(1, 33))
E1 = b"\x11" * 32
E2 = b"\x22" * 32

BASE: dict[str, Any] = {
    "seq": 3,
    "timestamp": 1_600_000_000_000,
    "payload_state": "present",
    "deleted": False,
    "text": None,
    "reply_root": None,
    "reply_parent": None,
    "mentions": [],
    "tags": [],
    "target": None,
    "emoji": None,
    "payload": None,
    "reactions": {},
    "reposts": 0,
    "replies": 0,
    "depth": 0,
}


def view(kind: str, **fields: Any) -> EntryView:
    """An EntryView of entry E1 by A at seq 3, with ``fields`` set."""
    return EntryView(id=E1, author=A, seq=3, kind=kind, timestamp=1_600_000_000_000, **fields)


CASES: list[tuple[str, EntryView, dict[str, Any]]] = [
    (
        "reply with mentions, tags and counts",
        view(
            "post",
            text="hi",
            reply_root=E2,
            reply_parent=E2,
            mentions=[B],
            tags=["t"],
            payload={"text": "hi", "reply": {"root": E2, "parent": E2}, "mentions": [B]},
            reactions={"+": 2},
            reposts=1,
            replies=4,
        ),
        {
            "kind": "post",
            "text": "hi",
            "reply_root": E2.hex(),
            "reply_parent": E2.hex(),
            "mentions": [identity_to_text(B)],
            "tags": ["t"],
            "payload": {
                "text": "hi",
                "reply": {"root": E2.hex(), "parent": E2.hex()},
                "mentions": [B.hex()],
            },
            "reactions": {"+": 2},
            "reposts": 1,
            "replies": 4,
        },
    ),
    (
        "follow: the target is an identity",
        view(
            "follow",
            target=B,
            payload={"target": B},
        ),
        {"kind": "follow", "target": identity_to_text(B), "payload": {"target": B.hex()}},
    ),
    (
        "react: the target is an entry id",
        view(
            "react",
            target=E2,
            emoji="+",
            payload={"target": E2, "emoji": "+"},
        ),
        {
            "kind": "react",
            "target": E2.hex(),
            "emoji": "+",
            "payload": {"target": E2.hex(), "emoji": "+"},
        },
    ),
    (
        "deleted: no payload",
        view(
            "post",
            payload_state="deleted",
        ),
        {"kind": "post", "payload_state": "deleted", "deleted": True},
    ),
]


@pytest.mark.parametrize(("view", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_to_json(view: EntryView, expected: dict[str, Any]) -> None:
    want = {"id": E1.hex(), "author": identity_to_text(A), **BASE, **expected}
    got = view.to_json()
    assert got == want
    assert list(got) == [
        "id", "author", "seq", "kind", "timestamp", "payload_state", "deleted", "text",
        "reply_root", "reply_parent", "mentions", "tags", "target", "emoji", "payload",
        "reactions", "reposts", "replies", "depth",
    ]  # fmt: skip


def test_to_json_copies_the_view_lists() -> None:
    view = EntryView(
        id=E1, author=A, seq=1, kind="post", timestamp=1, tags=["a"], reactions={"+": 1}
    )
    js = view.to_json()
    js["tags"].append("b")
    js["reactions"]["-"] = 1
    assert view.tags == ["a"] and view.reactions == {"+": 1}


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "hi"},
        {"text": "re", "reply": {"root": E1, "parent": E2}, "mentions": [A, B], "tags": ["t"]},
        {"target": E1, "emoji": "+"},
        {"target": A, "reason": "spam", "n": 3, "ok": True, "none": None},
    ],
)
def test_json_payload_in_place_is_json_payload_without_a_copy(payload: dict[str, Any]) -> None:
    want = json_payload(payload)
    got = json_payload_in_place(payload)
    assert got is payload
    assert got == want
    assert list(got) == list(want)
