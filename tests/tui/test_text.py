"""Names, relative times, entry markers and @/# completion: the TUI's pure parts."""

from __future__ import annotations

import pytest

from p2psocial.tui.completion import candidates, reference_at_end
from p2psocial.tui.names import Names, short_identity
from p2psocial.tui.render import ago, entry_text, markers
from tests.tui.fake import ADA, BOB, EVE, NOW, entry

NOW_MS = int(NOW * 1000)


@pytest.mark.parametrize(
    ("ago_s", "shown"),
    [
        (-30, "now"),
        (0, "now"),
        (9, "now"),
        (42, "42s"),
        (5 * 60 + 3, "5m"),
        (3 * 3600, "3h"),
        (6 * 86400, "6d"),
        (40 * 86400, "2026-10-23"),
    ],
)
def test_relative_times(ago_s: int, shown: str) -> None:
    assert ago(NOW_MS - ago_s * 1000, NOW) == shown


def test_names_petname_bare_self_chosen_marked_else_short_key() -> None:
    names = Names()
    names.learn(ADA, "ada", "Ada L.")
    names.learn(BOB, None, "ada")  # a self-chosen name that copies a petname
    assert names.show(ADA) == "ada"
    assert names.show(BOB) == f"~ada ({short_identity(BOB)})"
    assert names.show(EVE) == short_identity(EVE)
    assert not names.knows(EVE)


def test_self_chosen_names_lose_control_characters() -> None:
    names = Names()
    names.learn(BOB, None, "Bob\u202e\u0007 the\n  builder" + "x" * 40)
    shown = names.show(BOB)
    assert "\u202e" not in shown and "\u0007" not in shown and "\n" not in shown
    assert shown.startswith("~Bob the builder")
    assert "…" in shown


def test_names_are_learnt_from_pages() -> None:
    names = Names()
    e = entry(1, ADA, "hi #Garden", 0, tags=["Garden"], names={BOB: {"petname": "bob"}})
    names.learn_entry(e)
    assert names.show(ADA) == "ada"
    assert names.show(BOB) == "bob"
    assert names.tag_candidates("gar") == ["Garden"]


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("hi @al", ("@", "al")),
        ("@", ("@", "")),
        ("see #gar", ("#", "gar")),
        ("mail ada@example", None),
        ("x.org/#top", None),
        ("done ", None),
        ("hi @al ", None),
        ("(@bo", ("@", "bo")),
    ],
)
def test_the_reference_being_typed(text: str, ref: tuple[str, str] | None) -> None:
    assert reference_at_end(text) == ref


def test_completion_offers_petnames_then_self_chosen_names_then_tags() -> None:
    names = Names()
    names.learn(ADA, "ada", "Ada L.")
    names.learn(BOB, None, "Adalbert")
    names.learn_entry(entry(2, ADA, "x", 0, tags=["adventure"]))
    found = candidates("hi @ad", names)
    assert found[0] == ("hi @ada", "@ada")
    assert found[1] == (f"hi @{BOB}", f"~Adalbert ({short_identity(BOB)})")
    assert candidates("#adv", names) == [("#adventure", "#adventure")]
    assert candidates("hi @ada", names) == [(f"hi @{BOB}", f"~Adalbert ({short_identity(BOB)})")]
    assert candidates("hello", names) == []


def test_markers_of_deleted_withheld_and_forked_entries() -> None:
    assert markers(entry(1, ADA, None, 0, payload_state="deleted", deleted=True)) == [
        ("[deleted]", "bold red")
    ]
    assert [m for m, _ in markers(entry(1, ADA, None, 0, payload_state="absent"))] == ["[withheld]"]
    assert [m for m, _ in markers(entry(1, ADA, None, 0, payload_state="dropped"))] == [
        "[withheld]"
    ]
    forked = entry(1, EVE, "x", 0, author_forked=True, author_fork_seq=9)
    assert [m for m, _ in markers(forked)] == ["[forked @9]"]
    assert markers(entry(1, ADA, "fine", 0)) == []


def test_an_entry_block_names_its_author_and_counts() -> None:
    names = Names()
    names.learn(ADA, "ada", None)
    e = entry(1, ADA, "hello\nworld", 120, replies=2, reposts=1, reactions={"🍅": 3})
    text = entry_text(e, names, now_s=NOW, unread=True).plain
    assert text.splitlines()[0] == "● ada  2m"
    assert "    hello" in text and "    world" in text
    assert "↩ 2" in text and "⟳ 1" in text and "🍅 3" in text
