"""Mentions and tags in post text: the token rules as a table, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from p2psocial.protocol.kinds import MAX_TAG_CHARS
from p2psocial.protocol.textrefs import (
    MAX_PETNAME_CHARS,
    TextRefs,
    find_text_refs,
    petname_problem,
    tag_key,
)

KEY = "p2ps1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqu2qq6t"

# text -> (mentions, tags)
CASES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("hello", (), ()),
    ("", (), ()),
    ("@alice hi", ("alice",), ()),
    ("hi @alice", ("alice",), ()),
    ("hi @Alice!", ("alice",), ()),
    ("thanks @alice.", ("alice",), ()),
    ("thanks @alice-", ("alice",), ()),
    ("(@alice) and [@bob]", ("alice", "bob"), ()),
    ('"@alice", @bob; @carol:', ("alice", "bob", "carol"), ()),
    ("@alice's post", ("alice",), ()),
    ("@alice.bob and @a_b-c", ("alice.bob", "a_b-c"), ()),
    ("mail me at ada@example.com", (), ()),
    ("@alice@bob", ("alice",), ()),
    ("@ alone", (), ()),
    ("@", (), ()),
    ("@.alice", (), ()),
    ("@_x", (), ()),
    ("https://example.org/@bob", (), ()),
    ("@" + "a" * MAX_PETNAME_CHARS, ("a" * MAX_PETNAME_CHARS,), ()),
    ("@" + "a" * (MAX_PETNAME_CHARS + 1), (), ()),
    (f"hi @{KEY}", (KEY,), ()),
    (f"hi @{KEY.upper()}.", (KEY,), ()),
    ("@p2ps1nonsense", ("p2ps1nonsense",), ()),
    ("@alice @ALICE @alice", ("alice",), ()),
    ("#rust", (), ("rust",)),
    ("I like #Rust and #rust and #RUST", (), ("Rust",)),
    ("#rust, #python. #go!", (), ("rust", "python", "go")),
    ("#under_score #dash-ed #trail- #trail_", (), ("under_score", "dash-ed", "trail")),
    ("issue #1 and #42", (), ()),
    ("#2024review", (), ("2024review",)),
    ("#日本語 と #Straße", (), ("日本語", "Straße")),
    ("#STRASSE #straße", (), ("STRASSE",)),
    ("a#b c&#39; x.org/#top", (), ()),
    ("#-no #_no", (), ()),
    ("#", (), ()),
    ("##double", (), ()),
    ("#" + "t" * MAX_TAG_CHARS, (), ("t" * MAX_TAG_CHARS,)),
    ("#" + "t" * (MAX_TAG_CHARS + 1), (), ()),
    ("@alice #rust @bob #go", ("alice", "bob"), ("rust", "go")),
    ("#tag@alice", (), ("tag",)),
    ("line\n@alice\t#x", ("alice",), ("x",)),
]


@pytest.mark.parametrize(("text", "mentions", "tags"), CASES)
def test_token_rules(text: str, mentions: tuple[str, ...], tags: tuple[str, ...]) -> None:
    refs = find_text_refs(text)
    assert (refs.mentions, refs.tags) == (mentions, tags)
    assert (refs.extra_mentions, refs.extra_tags) == (0, 0)


def test_nfc_spellings_are_one_tag() -> None:
    composed, decomposed = "#caf\u00e9", "#cafe\u0301"
    refs = find_text_refs(f"{decomposed} {composed}")
    assert refs.tags == ("caf\u00e9",)
    assert tag_key("Caf\u00e9") == tag_key("cafe\u0301".upper())


def test_limits_count_what_did_not_fit() -> None:
    text = " ".join(f"@user{i} #tag{i}" for i in range(20)) + " @user0 #TAG19"
    refs = find_text_refs(text, max_mentions=16, max_tags=3)
    assert refs.mentions == tuple(f"user{i}" for i in range(16))
    assert refs.tags == ("tag0", "tag1", "tag2")
    assert (refs.extra_mentions, refs.extra_tags) == (4, 17)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("alice", True),
        ("a", True),
        ("7", True),
        ("bob.smith", True),
        ("x_y-z", True),
        ("a" * MAX_PETNAME_CHARS, True),
        ("a" * (MAX_PETNAME_CHARS + 1), False),
        ("", False),
        ("Alice", False),
        ("al ice", False),
        ("alice.", False),
        ("-alice", False),
        ("_a", False),
        ("ålice", False),
        ("p2ps1", False),
        ("p2ps1abc", False),
        ("p2ps", True),
        ("~alice", False),
        ("@alice", False),
    ],
)
def test_petname_rules(name: str, ok: bool) -> None:
    assert (petname_problem(name) is None) is ok


@seed(19)
@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("@#aA1_.-p2s ~/é日\n\u0301"), max_size=300) | st.text(),
    st.integers(0, 20),
    st.integers(0, 20),
)
def test_never_raises_and_stays_within_limits(text: str, max_m: int, max_t: int) -> None:
    refs = find_text_refs(text, max_mentions=max_m, max_tags=max_t)
    assert isinstance(refs, TextRefs)
    assert len(refs.mentions) <= max_m and len(refs.tags) <= max_t
    assert len(set(refs.mentions)) == len(refs.mentions)
    assert len({tag_key(t) for t in refs.tags}) == len(refs.tags)
    for m in refs.mentions:
        assert m.startswith("p2ps1") or petname_problem(m) is None
        assert "@" + m in text.lower()
    for t in refs.tags:
        assert 1 <= len(t) <= MAX_TAG_CHARS and not t.isdigit()
    # Every reference found is also found with room for all of them.
    roomy = find_text_refs(text, max_mentions=1000, max_tags=1000)
    assert set(refs.mentions) <= set(roomy.mentions)
    assert len(roomy.mentions) == len(refs.mentions) + refs.extra_mentions
    assert len(roomy.tags) == len(refs.tags) + refs.extra_tags
