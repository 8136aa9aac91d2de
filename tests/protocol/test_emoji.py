"""The reaction rule (spec/protocol.md §5.4): a table, properties, and the spec's own table.

The reference the properties compare against is built from the spec text
alone: the Extended_Pictographic ranges are parsed out of spec/protocol.md and
the grammar is written as a regular expression, a second implementation that
shares no code with p2psocial/protocol/emoji.py.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2psocial.protocol.emoji import (
    EXTENDED_PICTOGRAPHIC,
    MAX_EMOJI_BYTES,
    MAX_EMOJI_CODE_POINTS,
    emoji_problem,
    is_emoji,
    is_pictographic,
)
from p2psocial.protocol.entries import create_entry, encode_payload
from p2psocial.protocol.errors import LocalUsageError, SchemaError
from p2psocial.protocol.identity import SigningKey
from p2psocial.protocol.kinds import validate_payload

REPO = Path(__file__).resolve().parents[2]
ID = bytes(range(32))
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"

ACCEPTED = [
    ("single", "👍"),
    ("single_bmp", "⭐"),
    ("text_style_heart", "❤"),
    ("heart_vs16", "❤️"),
    ("skin_tone", "👍🏽"),
    ("every_skin_tone", "✋🏻"),
    ("vs16_then_tone", "👍\ufe0f🏿"),
    ("zwj_family", "👨‍👩‍👧‍👦"),
    ("zwj_profession_tone", "🧑🏾‍🚀"),
    ("zwj_rainbow", "🏳️‍🌈"),
    ("zwj_pirate", "🏴‍☠️"),
    ("zwj_heart_on_fire", "❤️‍🔥"),
    ("kiss_two_tones", "🧑🏻‍❤️‍💋‍🧑🏼"),
    ("flag", "🇫🇷"),
    ("flag_unassigned_pair", "🇦🇦"),
    ("keycap", "1️⃣"),
    ("keycap_no_vs16", "#⃣"),
    ("keycap_star", "*️⃣"),
    ("england", ENGLAND),
    ("copyright", "©"),
    ("reserved_pictographic", "\U0001fc00"),
    ("sixteen", "😀" + "\u200d😀" * 7 + "\ufe0f"),
]

REFUSED = [
    ("empty", ""),
    ("text", "hello"),
    ("plus_one", "+1"),
    ("heart_ascii", "<3"),
    ("letter", "x"),
    ("digit", "7"),
    ("space", " "),
    ("two_emoji", "👍👍"),
    ("two_flags", "🇫🇷🇩🇪"),
    ("emoji_space", "👍 "),
    ("space_emoji", " 👍"),
    ("lone_modifier", "🏻"),
    ("two_modifiers", "👍🏻🏼"),
    ("modifier_then_vs16", "👍🏻\ufe0f"),
    ("lone_zwj", "\u200d"),
    ("leading_zwj", "\u200d👍"),
    ("trailing_zwj", "👍\u200d"),
    ("double_zwj", "👍\u200d\u200d👍"),
    ("zwj_letter", "👍\u200da"),
    ("lone_vs16", "\ufe0f"),
    ("double_vs16", "❤\ufe0f\ufe0f"),
    ("vs15", "❤\ufe0e"),
    ("lone_regional_indicator", "🇫"),
    ("three_regional_indicators", "🇫🇷🇪"),
    ("indicator_then_emoji", "🇫👍"),
    ("keycap_alone", "\u20e3"),
    ("keycap_letter", "a\ufe0f\u20e3"),
    ("keycap_double_vs16", "1\ufe0f\ufe0f\u20e3"),
    ("digit_vs16", "1\ufe0f"),
    ("combining_acute", "👍\u0301"),
    ("combining_enclosing", "👍\u20dd"),
    ("combining_alone", "\u0301"),
    ("tags_without_cancel", "\U0001f3f4\U000e0067\U000e0062"),
    ("cancel_only", "\U0001f3f4\U000e007f"),
    ("tags_on_other_base", "😀\U000e0067\U000e007f"),
    ("lone_cancel", "\U000e007f"),
    ("england_then_more", ENGLAND + "👍"),
    ("lone_surrogate", "\ud83d"),
    ("surrogate_pair_halves", "\ud83d\udc4d"),
    ("seventeen", "😀" + "\u200d😀" * 8),
    ("long_text", "x" * 17),
    ("very_long", "👍" * 100_000),
]


@pytest.mark.parametrize(("name", "text"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
def test_accepted(name: str, text: str) -> None:
    assert emoji_problem(text) is None
    assert is_emoji(text)
    validate_payload("react", {"target": ID, "emoji": text})


@pytest.mark.parametrize(("name", "text"), REFUSED, ids=[n for n, _ in REFUSED])
def test_refused(name: str, text: str) -> None:
    problem = emoji_problem(text)
    assert type(problem) is str and problem
    assert not is_emoji(text)
    with pytest.raises(SchemaError) as info:
        validate_payload("react", {"target": ID, "emoji": text})
    if text == "":
        assert info.value.reason == "too_short"
    elif len(text) > MAX_EMOJI_CODE_POINTS:
        assert info.value.reason == "too_long"
    else:
        assert info.value.reason == "not_emoji"
        assert "react.emoji must be exactly one emoji" in info.value.message


def test_publisher_refuses_with_a_local_error_naming_the_rule() -> None:
    with pytest.raises(LocalUsageError) as info:
        encode_payload("react", {"target": ID, "emoji": "hello"})
    assert info.value.reason == "not_emoji"
    assert info.value.message == (
        "payload: react.emoji must be exactly one emoji: U+0068 does not start an emoji"
    )
    key = SigningKey.from_seed(bytes(32))
    with pytest.raises(LocalUsageError):
        create_entry(
            key, seq=1, prev=None, timestamp=0, kind="react", payload={"target": ID, "emoji": "ok"}
        )


def test_length_is_checked_before_any_scan() -> None:
    # A megabyte of text is refused by its length alone, in constant time.
    text = "\u200d" * 1_000_000
    start = time.perf_counter()
    for _ in range(1000):
        assert emoji_problem(text) is not None
    assert time.perf_counter() - start < 1.0


def test_non_text_is_a_field_error() -> None:
    with pytest.raises(SchemaError) as info:
        validate_payload("react", {"target": ID, "emoji": b"\xf0\x9f\x91\x8d"})
    assert info.value.reason == "bad_field"


# ------------------------------------------------------------ the table in the spec


def _spec_ranges() -> list[tuple[int, int]]:
    text = (REPO / "spec" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("### 5.4") : text.index("## 6.")]
    block = section[section.index("Extended_Pictographic=Yes") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    out = []
    for item in block.split():
        first, _, last = item.partition("..")
        out.append((int(first, 16), int(last or first, 16)))
    return out


def test_the_module_table_is_the_spec_table() -> None:
    assert list(EXTENDED_PICTOGRAPHIC) == _spec_ranges()


def test_the_table_is_sorted_merged_and_leaves_out_the_components() -> None:
    ranges = list(EXTENDED_PICTOGRAPHIC)
    assert len(ranges) == 78
    for (a, b), (c, _) in itertools.pairwise(ranges):
        assert a <= b < c - 1  # sorted, disjoint, not adjacent
    for cp in (*range(0x1F3FB, 0x1F400), *range(0x1F1E6, 0x1F200), 0x200D, 0xFE0F, 0x23, 0x31):
        assert not is_pictographic(cp)
    for lo, hi in ranges:
        assert is_pictographic(lo) and is_pictographic(hi)
        assert not is_pictographic(lo - 1) and not is_pictographic(hi + 1)


# ------------------------------------------------------------ properties


def _reference() -> re.Pattern[str]:
    """The grammar of §5.4 as a regex over the spec's table (inputs are <= 16 code points)."""
    pict = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in _spec_ranges()
    )
    element = f"[{pict}]\ufe0f?[\U0001f3fb-\U0001f3ff]?"
    forms = [
        "[\U0001f1e6-\U0001f1ff]{2}",
        "[0-9#*]\ufe0f?\u20e3",
        "\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f",
        f"{element}(?:\u200d{element})*",
    ]
    return re.compile("(?:" + "|".join(forms) + ")")


REFERENCE = _reference()

#: Code points near the rule: components, bases at range edges, and others.
_NEAR = [
    0x200D, 0xFE0F, 0xFE0E, 0x20E3, 0x1F3FB, 0x1F3FF, 0x1F1E6, 0x1F1FF, 0x1F3F4,
    0xE0020, 0xE0067, 0xE007E, 0xE007F, 0x23, 0x2A, 0x30, 0x39, 0x61, 0x20, 0x301,
    0x1F44D, 0x2764, 0xA9, 0x1F000, 0x1FAFF, 0x1FB00, 0x1FC00, 0x1FFFD, 0x1FFFE, 0xD83D,
    *(cp for lo, hi in EXTENDED_PICTOGRAPHIC for cp in (lo - 1, lo, hi, hi + 1)),
]  # fmt: skip
_code_points = st.one_of(
    st.sampled_from(_NEAR), st.integers(0, 0x10FFFF), st.integers(0x1F000, 0x1FFFF)
)
_texts = st.lists(_code_points, max_size=20).map(lambda cps: "".join(map(chr, cps)))


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(_texts)
def test_matcher_agrees_with_the_spec_grammar(text: str) -> None:
    expected = len(text) <= MAX_EMOJI_CODE_POINTS and REFERENCE.fullmatch(text) is not None
    assert is_emoji(text) == expected


@settings(max_examples=800, deadline=None, derandomize=True)
@given(st.one_of(_texts, st.text(max_size=40)))
def test_only_the_typed_error_and_accepted_within_bounds(text: str) -> None:
    try:
        validate_payload("react", {"target": ID, "emoji": text})
    except SchemaError as exc:
        assert exc.reason in {"too_short", "too_long", "not_emoji"}
        return
    assert 1 <= len(text) <= MAX_EMOJI_CODE_POINTS
    assert len(text.encode("utf-8")) <= MAX_EMOJI_BYTES


_elements = st.builds(
    lambda base, vs, tone: base + vs + tone,
    st.sampled_from(["👍", "❤", "🧑", "🏳", "💋", "©", "🚀"]),
    st.sampled_from(["", "\ufe0f"]),
    st.sampled_from(["", "🏻", "🏿"]),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_elements, min_size=1, max_size=5))
def test_joined_elements_are_one_emoji_while_short_enough(elements: list[str]) -> None:
    text = "\u200d".join(elements)
    assert is_emoji(text) == (len(text) <= MAX_EMOJI_CODE_POINTS)
    assert not is_emoji(text + "\u200d")
    assert not is_emoji("".join(elements)) or len(elements) == 1
