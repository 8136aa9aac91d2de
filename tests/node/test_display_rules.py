"""The owner's display rules on a page of entry views (node/reads.py)."""

from __future__ import annotations

from typing import Any

import pytest

from p2psocial.node.config import Policy
from p2psocial.node.reads import shown

ITEMS: list[dict[str, Any]] = [
    {"id": "1", "author": "p2ps1ann", "text": "hello"},
    {"id": "2", "author": "p2ps1ben", "text": "buy SPAM now"},
    {"id": "3", "author": "p2ps1cy", "text": None},
    {"id": "4", "author": "p2ps1ann", "text": "spam, and ann"},
]


@pytest.mark.parametrize(
    ("muted", "patterns", "ids"),
    [
        ([], [], ["1", "2", "3", "4"]),
        (["p2ps1ann"], [], ["2", "3"]),
        ([], ["spam"], ["1", "3"]),
        (["p2ps1cy"], ["^buy"], ["1", "4"]),
        ([], ["(", "hello"], ["2", "3", "4"]),  # a bad pattern hides nothing
    ],
)
def test_shown_applies_mutes_and_hide_patterns_in_order(
    muted: list[str], patterns: list[str], ids: list[str]
) -> None:
    policy = Policy(muted=muted, hide_patterns=patterns)
    assert [v["id"] for v in shown(policy, ITEMS)] == ids
