"""Ed25519 identities: keys, text form, PEM, and strict signature verification.

A *user identity* (signs content) and a *node key* (identifies a node in the DHT
and on peer links) are both plain Ed25519 key pairs; only their use differs.

Strict verification (spec/protocol.md §3) refuses everything that lets two
implementations disagree about a signature, or lets one signature pass for
several keys and messages:

1. the public key A is a canonical point encoding (y < p, and the sign bit is
   clear where x = 0), is not of small order (order dividing 8), and names a
   point on the curve: the *key rules*, :func:`check_public_key`;
2. the signature's R is canonical and not of small order;
3. the scalar S is below the group order L;
4. the cofactorless equation [S]B = R + [k]A holds, as checked by OpenSSL
   through ``cryptography``.

``cryptography`` does 3 and 4 and rejects some non-canonical R, but it accepts
small-order A and R, and ``from_public_bytes`` does not even check that A is on
the curve (such a key then fails every signature as a plain ``mismatch``), so
1 and 2 are ours. Canonicity and small order need no curve arithmetic: the
small-order points are few, and are identified by their y coordinate alone.
Whether A is on the curve is one Jacobi symbol (whether (y^2 - 1)/(d y^2 + 1)
has a square root), and the verdict per key is cached, so a feed's author is
examined once, not once per entry.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from cryptography.exceptions import InternalError, UnsupportedAlgorithm
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import bech32
from .errors import DecodeError, InvalidSignature, LocalUsageError

__all__ = [
    "IDENTITY_HRP",
    "KEY_MESSAGES",
    "KEY_REASONS",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "SigningKey",
    "check_public_key",
    "identity_from_text",
    "identity_to_text",
    "node_id_from_public_key",
    "public_key_problem",
    "verify_strict",
]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
IDENTITY_HRP = "p2ps"

# Field and group constants of edwards25519 (RFC 8032 §5.1).
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_Y_MASK = (1 << 255) - 1


def _sqrt_mod_p(a: int) -> int | None:
    """A square root of ``a`` modulo p (p = 5 mod 8), or None if there is none."""
    r = pow(a, (_P + 3) // 8, _P)
    if r * r % _P == a % _P:
        return r
    r = r * pow(2, (_P - 1) // 4, _P) % _P
    return r if r * r % _P == a % _P else None


def _small_order_ys() -> frozenset[int]:
    """y coordinates of the eight points whose order divides 8.

    Order 1 and 2: (0, 1) and (0, -1). Order 4: (+-sqrt(-1), 0), so y = 0.
    Order 8: doubling gives a point with y = 0, which on -x^2 + y^2 = 1 + d x^2 y^2
    forces y^2 = -x^2 and so d*y^4 + 2*y^2 - 1 = 0; solve for y^2, then y.
    """
    ys = {0, 1, _P - 1}
    s = _sqrt_mod_p(1 + _D)
    assert s is not None
    inv_d = pow(_D, _P - 2, _P)
    for y2 in ((-1 + s) * inv_d % _P, (-1 - s) * inv_d % _P):
        y = _sqrt_mod_p(y2)
        if y is not None:
            ys.update({y, _P - y})
    assert len(ys) == 5, ys
    return frozenset(ys)


_SMALL_ORDER_Y = _small_order_ys()

#: The reasons the key rules give, in the order they are checked (spec §3, rules 2-4).
KEY_REASONS = ("non_canonical_key", "small_order_key", "invalid_key")
#: A message for each of KEY_REASONS.
KEY_MESSAGES = {
    "non_canonical_key": "public key is not a canonical point encoding",
    "small_order_key": "public key is a point of small order",
    "invalid_key": "public key is not a point on the curve",
}


def _point_problem(encoded: bytes) -> str | None:
    """Return 'non_canonical' or 'small_order' for a bad point encoding, else None."""
    n = int.from_bytes(encoded, "little")
    y = n & _Y_MASK
    if y >= _P:
        return "non_canonical"
    if y in _SMALL_ORDER_Y:
        # x = 0 exactly when y = +-1; a set sign bit there is a second encoding
        # of the same point.
        if (n >> 255) and y in (1, _P - 1):
            return "non_canonical"
        return "small_order"
    return None


def _is_square_mod_p(a: int) -> bool:
    """Whether ``a`` is a square modulo p (0 included), from its Jacobi symbol.

    The same verdict as Euler's criterion a^((p-1)/2) != -1, but a binary
    Euclid-style loop costs a seventh of that 255-bit exponentiation in CPython.
    """
    n = _P
    a %= n
    t = 1
    while a:
        # Pull out the factors of two: (2/n) = -1 exactly when n = 3 or 5 mod 8.
        z = (a & -a).bit_length() - 1
        a >>= z
        if z & 1 and (n & 7) in (3, 5):
            t = -t
        # Quadratic reciprocity for odd a and n: a sign flip iff both are 3 mod 4.
        if (a & n & 3) == 3:
            t = -t
        a, n = n % a, a
    # n ends as gcd(a, p): 1, or p when a was 0 (and 0 = 0^2).
    return n != 1 or t == 1


def _on_curve(y: int) -> bool:
    """Whether -x^2 + y^2 = 1 + d x^2 y^2 has a solution x for this y < p.

    x^2 = u / v with u = y^2 - 1 and v = d y^2 + 1 (v is never 0: -1/d is not a
    square). RFC 8032 §5.1.3 decoding succeeds exactly when u / v is a square,
    which is when u * v is one; x itself is never needed.
    """
    yy = y * y % _P
    return _is_square_mod_p((yy - 1) * (_D * yy + 1))


@lru_cache(maxsize=8192)
def public_key_problem(public_key: bytes) -> str | None:
    """The first key rule a 32-byte key breaks, as its reason code, or None if usable.

    The verdict half of :func:`check_public_key`, for hot paths that have
    already checked the type and length (entry decoding). It is cached in both
    directions: every entry of a feed after the first, and a hostile peer
    repeating one bad key, cost a dictionary lookup.

    Args:
        public_key: exactly 32 bytes (a ``bytes`` object; not checked here).

    Returns:
        None, or one of :data:`KEY_REASONS`.
    """
    problem = _point_problem(public_key)
    if problem is not None:
        return f"{problem}_key"
    if not _on_curve(int.from_bytes(public_key, "little") & _Y_MASK):
        return "invalid_key"
    return None


def check_public_key(public_key: bytes) -> None:
    """Check a 32-byte Ed25519 public key against the key rules (spec/protocol.md §3).

    The encoding must be canonical (y < p; no sign bit on x = 0), must not be
    one of the points of small order, and must decode to a point on the curve.
    Keys of mixed order (a large-order point plus a small component) pass, as
    the spec requires.

    Args:
        public_key: the encoded key as received.

    Returns:
        None; success is the absence of an exception.

    Raises:
        InvalidSignature: with ``reason`` ``bad_length`` (not 32 bytes),
            ``non_canonical_key``, ``small_order_key`` or ``invalid_key``.
    """
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidSignature("public key must be 32 bytes", reason="bad_length")
    problem = public_key_problem(public_key)
    if problem is not None:
        raise InvalidSignature(KEY_MESSAGES[problem], reason=problem)


@lru_cache(maxsize=4096)
def _load_public_key(public_key: bytes) -> Ed25519PublicKey:
    """The OpenSSL key object for a key that passes the key rules (length checked)."""
    problem = public_key_problem(public_key)
    if problem is not None:
        raise InvalidSignature(KEY_MESSAGES[problem], reason=problem)
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:  # pragma: no cover - OpenSSL takes any 32 bytes today
        raise InvalidSignature(KEY_MESSAGES["invalid_key"], reason="invalid_key") from None


def verify_strict(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Verify an Ed25519 signature under the strict policy of spec/protocol.md §3.

    Args:
        public_key: 32-byte encoded A.
        signature: 64 bytes, R followed by S.
        message: the exact signed bytes (domain tag included by the caller).

    Returns:
        None; success is the absence of an exception.

    Raises:
        InvalidSignature: with ``reason`` one of ``bad_length``,
            ``non_canonical_key``, ``small_order_key``, ``invalid_key``,
            ``non_canonical_r``, ``small_order_r``, ``s_out_of_range``,
            ``mismatch``.
    """
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidSignature("public key must be 32 bytes", reason="bad_length")
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature("signature must be 64 bytes", reason="bad_length")
    key = _load_public_key(public_key)
    check_signature_encoding(signature)
    try:
        key.verify(signature, message)
    except _CryptoInvalidSignature:
        raise InvalidSignature("signature does not verify", reason="mismatch") from None


def check_signature_encoding(signature: bytes) -> None:
    """The cheap half of strict verification: R canonical and not small order, S < L.

    Batch verification applies this to every entry of a run, and the full
    check only to the run's top entry.
    """
    problem = _point_problem(signature[:32])
    if problem is not None:
        raise InvalidSignature(f"signature R is {problem.replace('_', ' ')}", reason=f"{problem}_r")
    if int.from_bytes(signature[32:], "little") >= _L:
        raise InvalidSignature("signature S is not below the group order", reason="s_out_of_range")


class SigningKey:
    """An Ed25519 private key, for a user identity or a node.

    The private half never appears in ``repr`` or logs.
    """

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        #: The 32-byte encoded public key.
        self.public_key: bytes = key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's randomness."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key whose RFC 8032 secret is the 32-byte ``seed`` (tests, vectors)."""
        if len(seed) != 32:
            raise LocalUsageError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (which must already start with its domain tag)."""
        return self._key.sign(message)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available scheme when given a passphrase."""
        enc: serialization.KeySerializationEncryption
        if passphrase:
            enc = serialization.BestAvailableEncryption(passphrase)
        else:
            enc = serialization.NoEncryption()
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Load a PKCS#8 PEM key.

        Raises:
            DecodeError: not a PEM Ed25519 key, or the passphrase is wrong or missing.
        """
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except TypeError as exc:
            # cryptography says "Password was not given but private key is
            # encrypted" or the reverse; both are worth showing the user.
            raise DecodeError(f"key file: {exc}", reason="passphrase") from None
        except ValueError as exc:
            raise DecodeError(
                f"key file is unreadable or the passphrase is wrong ({exc})", reason="bad_key_file"
            ) from None
        except (UnsupportedAlgorithm, InternalError) as exc:
            # A PKCS#8 key of an algorithm OpenSSL does not know, or whose key
            # bytes it cannot set up (found by bench/fuzz.py): not our key.
            raise DecodeError(
                f"key file does not hold a usable Ed25519 key ({exc})", reason="bad_key_file"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise DecodeError("key file does not hold an Ed25519 key", reason="bad_key_file")
        return cls(key)

    def __repr__(self) -> str:
        return f"SigningKey(public={identity_to_text(self.public_key)})"


#: Identities whose text form is kept (least recently used dropped first):
#: the authors of a few pages, or of a home timeline's 1,000 followed feeds,
#: fit; about 200 bytes each, so at most about 3 MiB however many identities
#: peers send.
IDENTITY_TEXT_CACHE_SIZE = 16384


def _identity_text(public_key: bytes) -> str:
    """The uncached encoder behind :func:`identity_to_text` (length checked)."""
    return bech32.bech32m_encode(IDENTITY_HRP, public_key)


# Pages render the same authors again and again, and bech32m's checksum is
# pure-Python work per character; the cache is bounded so that a peer sending
# ever new identities evicts old texts instead of growing memory.
_cached_identity_text = lru_cache(maxsize=IDENTITY_TEXT_CACHE_SIZE)(_identity_text)


def identity_to_text(public_key: bytes) -> str:
    """The text form of an identity: bech32m with the prefix ``p2ps`` (spec/protocol.md §1.2).

    Texts are cached per key, in a bounded LRU of
    :data:`IDENTITY_TEXT_CACHE_SIZE` keys.

    Args:
        public_key: 32 bytes (any bytes-like value).

    Raises:
        LocalUsageError: not 32 bytes.
    """
    if type(public_key) is not bytes:
        public_key = bytes(public_key)
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise LocalUsageError("an identity is a 32-byte public key")
    return _cached_identity_text(public_key)


def identity_from_text(text: str) -> bytes:
    """Parse an identity's text form (spec/protocol.md §1.2).

    The generic bech32m rules with the prefix ``p2ps``, after ignoring leading
    and trailing white space; then the data must be exactly 32 bytes with
    strict padding, and a key that passes the key rules. Parsed texts are
    cached in a bounded LRU (:data:`IDENTITY_TEXT_CACHE_SIZE`); refusals are
    not cached.

    Raises:
        DecodeError: saying what is wrong, with ``reason`` ``bad_type``,
            ``bad_length``, ``mixed_case``, ``wrong_prefix``,
            ``bad_character``, ``bad_checksum``, ``bad_padding`` or a key
            reason (a key that can never verify anything).
    """
    if not isinstance(text, str):
        raise DecodeError("not a valid identity: expected text", reason="bad_type")
    # str() of a str subclass: the cache keys are plain, immutable strings.
    return _cached_identity_key(str(text).strip())


def _identity_key(text: str) -> bytes:
    """The uncached parser behind :func:`identity_from_text` (``text`` stripped)."""
    try:
        _, data = bech32.decode(text, hrp=IDENTITY_HRP)
        raw = bech32.from_5bit(data)
    except DecodeError as exc:
        raise DecodeError(f"not a valid identity: {exc.message}", reason=exc.reason) from None
    if len(raw) != PUBLIC_KEY_SIZE:
        raise DecodeError(
            f"not a valid identity: holds {len(raw)} bytes, expected {PUBLIC_KEY_SIZE}",
            reason="bad_length",
        )
    try:
        check_public_key(raw)
    except InvalidSignature as exc:
        raise DecodeError(f"not a valid identity: {exc.message}", reason=exc.reason) from None
    return raw


# Only parsed identities are kept (lru_cache does not keep exceptions), each
# at most 90 characters after stripping, so the cache is bounded in bytes too.
_cached_identity_key = lru_cache(maxsize=IDENTITY_TEXT_CACHE_SIZE)(_identity_key)


def node_id_from_public_key(public_key: bytes) -> bytes:
    """The 160-bit DHT node id: the first 20 bytes of SHA-256(node public key)."""
    return hashlib.sha256(public_key).digest()[:20]
