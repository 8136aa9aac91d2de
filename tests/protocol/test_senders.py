"""The sender choice of capability ``ebt`` (spec/sync.md §13, rules 1-4) on
its own: links are plain strings, and a fake answers for them (open, ebt,
the modes sent) so that every decision is a row of a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from p2psocial.protocol.senders import SenderChoice

F = b"f" * 32


@dataclass
class Links:
    """What the choice asks of its caller, for links named by strings."""

    open: set[str] = field(default_factory=lambda: {"a", "b", "c", "plain"})
    ebt: set[str] = field(default_factory=lambda: {"a", "b", "c"})
    #: (link, feed) -> the last mode sent (True: active)
    modes: dict[tuple[str, bytes], bool] = field(default_factory=dict)
    sent: list[tuple[str, bool]] = field(default_factory=list)
    #: links whose standby the session holds back (its pacing)
    paced: set[str] = field(default_factory=set)
    head: int = 0

    def usable(self, link: str) -> bool:
        return link in self.open and link in self.ebt

    def is_open(self, link: str) -> bool:
        return link in self.open

    def standing_by(self, link: str, author: bytes) -> bool:
        return self.modes.get((link, author), True) is False

    def head_of(self, author: bytes) -> int:
        return self.head

    def set_mode(self, link: str, author: bytes, active: bool) -> bool:
        if self.modes.get((link, author), True) == active or (not active and link in self.paced):
            return False
        self.modes[link, author] = active
        self.sent.append((link, active))
        return True

    def choice(self) -> SenderChoice[str]:
        return SenderChoice(_Port(self))


class _Port:
    """The :class:`SenderPort` over :class:`Links` (``head`` is a field there)."""

    def __init__(self, links: Links) -> None:
        self.links = links
        self.usable = links.usable
        self.is_open = links.is_open
        self.standing_by = links.standing_by
        self.set_mode = links.set_mode
        self.head = links.head_of


# Each row: deliveries (link, new, live) in order -> the modes sent, and the
# active link after them.
DELIVERIES = [
    # Rule 1: the first link to deliver becomes active; nothing is sent.
    ([("a", True, True)], [], "a"),
    # Rule 2: a live duplicate from another link puts that link on standby.
    ([("a", True, True), ("b", False, True)], [("b", False)], "a"),
    # A catch-up batch's duplicate (its overlap entry) changes nothing.
    ([("a", True, True), ("b", False, False)], [], "a"),
    # Rule 2, the sender was slower: it stands by, the first one sends.
    ([("a", True, True), ("b", True, True), ("a", False, True)], [("a", False)], "b"),
    # A link without ebt never becomes active and is never asked anything.
    ([("plain", True, True), ("plain", False, True)], [], None),
    # ... but when it was first, the slow sender still stands by, leaving no
    # active link (the plain link pushes anyway).
    ([("a", True, True), ("plain", True, True), ("a", False, True)], [("a", False)], None),
    # A duplicate of the one sender, with nobody faster: nothing to do.
    ([("a", True, True), ("a", False, True)], [], "a"),
]


@pytest.mark.parametrize(("steps", "sent", "active"), DELIVERIES)
def test_rules_1_and_2(
    steps: list[tuple[str, bool, bool]], sent: list[Any], active: str | None
) -> None:
    links = Links()
    choice = links.choice()
    for link, new, live in steps:
        choice.delivered(link, F, new=new, live=live, now=0.0)
    assert links.sent == sent
    assert choice.active(F) == active


def test_a_paced_standby_is_asked_again_at_the_next_duplicate() -> None:
    links = Links(paced={"b"})
    choice = links.choice()
    choice.delivered("a", F, new=True, live=True, now=0.0)
    choice.delivered("b", F, new=False, live=True, now=0.0)
    assert links.sent == [] and choice.standby(F) == []
    links.paced.clear()
    choice.delivered("b", F, new=False, live=True, now=0.0)
    assert links.sent == [("b", False)] and choice.standby(F) == ["b"]


def _two_standing_by(links: Links) -> SenderChoice[str]:
    choice = links.choice()
    choice.delivered("a", F, new=True, live=True, now=0.0)
    choice.delivered("b", F, new=False, live=True, now=0.0)
    choice.delivered("c", F, new=False, live=True, now=0.0)
    assert choice.standby(F) == ["b", "c"]
    links.sent.clear()
    return choice


@pytest.mark.parametrize(
    ("head", "wait", "sent", "active"),
    [
        # Rule 3: ahead for switch_after, and we have not caught up: switch.
        (4, 1.0, [("b", True), ("a", False)], "b"),
        (4, 0.9, [], "a"),  # not long enough yet
        (10, 1.0, [], "a"),  # our head reached what b stated: no switch
    ],
)
def test_rule_3_a_standby_peer_ahead_for_switch_after_becomes_the_sender(
    head: int, wait: float, sent: list[Any], active: str
) -> None:
    links = Links()
    choice = _two_standing_by(links)
    choice.ahead("b", F, 9, 10.0)
    choice.ahead("b", F, 10, 10.5)  # a later note keeps the first time
    assert choice.busy()
    links.head = head
    choice.tick(10.0 + wait)
    assert links.sent == sent
    assert choice.active(F) == active
    # Pending: b's claim, or, once b was made the sender, its promise.
    assert choice.busy() is (head < 10)


def test_rule_3_a_broken_promise_hands_the_feed_on_and_distrusts_the_liar() -> None:
    """b claims seq 9 and is made the sender; our head stays at 4 for another
    switch_after: b stands by again, another standby link takes the feed,
    and b's next claims for it are not believed for distrust_for."""
    links = Links(head=4)
    choice = _two_standing_by(links)
    choice.ahead("b", F, 9, 10.0)
    choice.tick(11.0)
    assert choice.active(F) == "b"
    links.sent.clear()
    choice.tick(11.9)
    assert links.sent == []  # within its promise
    choice.tick(12.0)
    assert ("b", False) in links.sent
    assert choice.active(F) in ("a", "c")
    assert links.modes[choice.active(F), F] is True  # told to push
    assert choice.statistics()["promises_broken"] == 1
    choice.ahead("b", F, 2**53 - 1, 12.5)
    assert choice.statistics()["haves_distrusted"] == 1
    choice.tick(20.0)
    assert choice.active(F) != "b"
    choice.ahead("b", F, 9, 72.5)  # believed again after distrust_for (60 s)
    assert choice.statistics()["haves_distrusted"] == 1
    assert choice.busy()


def test_rule_3_ignores_haves_of_links_not_on_standby() -> None:
    links = Links()
    choice = _two_standing_by(links)
    choice.ahead("a", F, 9, 0.0)  # the sender itself
    choice.ahead("plain", F, 9, 0.0)
    assert not choice.busy()


@pytest.mark.parametrize(
    ("gone", "closed", "sent", "active", "replaced"),
    [
        # Rule 4: the sender ends; the oldest usable standby link takes over.
        ("a", {"a"}, [("b", True)], "b", 1),
        ("a", {"a", "b"}, [("c", True)], "c", 1),  # b is closing too
        ("b", {"b"}, [], "a", 0),  # a standby link ends: nothing to replace
    ],
)
def test_rule_4_a_standby_link_takes_over_when_the_sender_ends(
    gone: str, closed: set[str], sent: list[Any], active: str, replaced: int
) -> None:
    links = Links()
    choice = _two_standing_by(links)
    links.open -= closed
    choice.link_gone(gone, 0.0)
    assert links.sent == sent
    assert choice.active(F) == active
    assert choice.statistics()["senders_replaced"] == replaced
    assert gone not in choice.standby(F)
