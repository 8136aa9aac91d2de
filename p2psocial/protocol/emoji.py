"""What a reaction may be: exactly one emoji (spec/protocol.md §5.4).

The rule is a small grammar over code points, a subset of the emoji
sequences of Unicode's UTS #51, chosen so that another implementation can
reproduce it from the spec alone:

* an *element* is one Extended_Pictographic code point, then at most one
  VS16 (U+FE0F), then at most one skin-tone modifier (U+1F3FB..U+1F3FF);
* a *ZWJ sequence* is one or more elements joined by single U+200D;
* a *flag* is exactly two regional indicators (U+1F1E6..U+1F1FF);
* a *keycap* is one of ``0-9 # *``, an optional VS16, then U+20E3;
* a *tag sequence* is U+1F3F4, one or more tag characters
  (U+E0020..U+E007E), then CANCEL TAG (U+E007F).

The whole text must be one of these, and at most :data:`MAX_EMOJI_CODE_POINTS`
code points. The bound is checked first, so the matcher never looks at more
than 16 code points; the matcher itself is one left-to-right pass with no
backtracking. Whether a sequence is *recommended* (RGI) is deliberately not
part of the rule: that list grows every year, and peers on different Unicode
versions must still agree.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

__all__ = [
    "EXTENDED_PICTOGRAPHIC",
    "MAX_EMOJI_BYTES",
    "MAX_EMOJI_CODE_POINTS",
    "emoji_problem",
    "is_emoji",
    "is_pictographic",
]

#: Longest emoji accepted, in code points. The longest recommended sequence
#: (a kiss with two skin tones) takes 10, a subdivision flag 7; 16 leaves
#: room for longer valid ZWJ and subdivision-flag sequences while keeping the
#: matcher's work constant. It is also the old text limit of ``react.emoji``,
#: so what was ``too_long`` before stays ``too_long``.
MAX_EMOJI_CODE_POINTS = 16

#: Longest emoji accepted, in bytes of UTF-8: 16 code points of at most 4
#: bytes each. Implied by the code point bound; stated for byte-level readers.
MAX_EMOJI_BYTES = 64

VS16 = 0xFE0F
ZWJ = 0x200D
KEYCAP = 0x20E3
BLACK_FLAG = 0x1F3F4
CANCEL_TAG = 0xE007F
_KEYCAP_BASES = frozenset(b"0123456789#*")

#: Extended_Pictographic=Yes from emoji-data.txt of Unicode 15.0.0, as
#: inclusive (first, last) code point ranges, sorted and merged. The property
#: reserves whole unassigned stretches of the emoji blocks, so emoji added by
#: later Unicode versions fall inside these ranges already.
EXTENDED_PICTOGRAPHIC: tuple[tuple[int, int], ...] = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA),
    (0x231A, 0x231B), (0x2328, 0x2328), (0x2388, 0x2388), (0x23CF, 0x23CF),
    (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB),
    (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2605),
    (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712),
    (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747),
    (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757),
    (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0),
    (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F), (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A),
    (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA), (0x1F400, 0x1F53D), (0x1F546, 0x1F64F),
    (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF), (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip

_FIRSTS = tuple(first for first, _ in EXTENDED_PICTOGRAPHIC)


def is_pictographic(cp: int) -> bool:
    """True if code point ``cp`` is in :data:`EXTENDED_PICTOGRAPHIC`."""
    i = bisect_right(_FIRSTS, cp) - 1
    return i >= 0 and cp <= EXTENDED_PICTOGRAPHIC[i][1]


def _regional(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _modifier(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF


def _tag(cp: int) -> bool:
    return 0xE0020 <= cp <= 0xE007E


def _utf8_size(cps: Sequence[int]) -> int:
    # Counted, not encoded: a local caller's text may hold lone surrogates,
    # which str.encode would refuse with an exception of its own.
    return sum(1 if c < 0x80 else 2 if c < 0x800 else 3 if c < 0x10000 else 4 for c in cps)


def _zwj_sequence(cps: Sequence[int]) -> str | None:
    i, n = 0, len(cps)
    while True:
        if not is_pictographic(cps[i]):
            where = "does not start an emoji" if i == 0 else "after a joiner is not pictographic"
            return f"U+{cps[i]:04X} {where}"
        i += 1
        if i < n and cps[i] == VS16:
            i += 1
        if i < n and _modifier(cps[i]):
            i += 1
        if i == n:
            return None
        if cps[i] != ZWJ:
            return f"U+{cps[i]:04X} follows a complete emoji (one emoji only)"
        i += 1
        if i == n:
            return "it ends with a zero-width joiner"


def emoji_problem(text: str) -> str | None:
    """Why ``text`` is not exactly one emoji (§5.4), or None if it is one.

    The length bound is checked before anything else, so the work is bounded
    by :data:`MAX_EMOJI_CODE_POINTS` whatever the input; the match is one
    pass without backtracking. Never raises, for any str.
    """
    if not text:
        return "it is empty"
    if len(text) > MAX_EMOJI_CODE_POINTS:
        return f"it has {len(text)} code points; at most {MAX_EMOJI_CODE_POINTS} form one emoji"
    cps = [ord(c) for c in text]
    if _utf8_size(cps) > MAX_EMOJI_BYTES:  # pragma: no cover - implied by the bound above
        return f"it is over {MAX_EMOJI_BYTES} bytes of UTF-8"
    first, n = cps[0], len(cps)
    if _regional(first):
        if n == 2 and _regional(cps[1]):
            return None
        return "a flag is exactly two regional indicators"
    if first in _KEYCAP_BASES:
        if cps[1:] in ([KEYCAP], [VS16, KEYCAP]):
            return None
        return "a keycap is 0-9, # or *, an optional U+FE0F, then U+20E3"
    if first == BLACK_FLAG and n > 1 and (_tag(cps[1]) or cps[1] == CANCEL_TAG):
        if n >= 3 and cps[-1] == CANCEL_TAG and all(_tag(c) for c in cps[1:-1]):
            return None
        return "a tag sequence is U+1F3F4, tag characters, then U+E007F"
    return _zwj_sequence(cps)


def is_emoji(text: str) -> bool:
    """True if ``text`` is exactly one emoji under the rule of §5.4."""
    return emoji_problem(text) is None
