"""A slow, independent reading of an Ed25519 public key, for checking ours.

It decodes the way RFC 8032 §5.1.3 lays out (a square root by exponentiation,
x computed and tested against the curve equation), then decides small order
by curve arithmetic: double the point three times and compare with the
neutral element. p2psocial.protocol.identity decides the same questions
without computing x (a Jacobi symbol, and a list of the five small-order y
values), so agreement between the two is evidence for both.
"""

from __future__ import annotations

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
NEUTRAL = (0, 1)

Point = tuple[int, int]


def encode(y: int, sign: int = 0) -> bytes:
    """The 32-byte encoding with low 255 bits ``y`` (any value < 2^255) and sign bit ``sign``."""
    return (y | (sign << 255)).to_bytes(32, "little")


def decode(encoded: bytes) -> Point | str:
    """RFC 8032 §5.1.3: the point (x, y), or "non_canonical" / "off_curve"."""
    n = int.from_bytes(encoded, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= P:
        return "non_canonical"
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    vxx = v * x * x % P
    if vxx == (-u) % P:
        x = x * SQRT_M1 % P
    elif vxx != u:
        return "off_curve"
    if x == 0 and sign:
        return "non_canonical"
    if x & 1 != sign:
        x = P - x
    assert on_curve((x, y))
    return x, y


def on_curve(pt: Point) -> bool:
    x, y = pt
    return (-x * x + y * y - 1 - D * x * x * y * y) % P == 0


def add(a: Point, b: Point) -> Point:
    """Affine addition on -x^2 + y^2 = 1 + d x^2 y^2 (complete: no exceptions)."""
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
    return x3, y3


def times8(pt: Point) -> Point:
    for _ in range(3):
        pt = add(pt, pt)
    return pt


def expected_reason(encoded: bytes) -> str | None:
    """What spec/protocol.md §3 rules 2-4 say of a 32-byte key: a reason, or None (usable)."""
    pt = decode(encoded)
    if pt == "non_canonical":
        return "non_canonical_key"
    if pt == "off_curve":
        return "invalid_key"
    assert not isinstance(pt, str)
    if times8(pt) == NEUTRAL:
        return "small_order_key"
    return None
