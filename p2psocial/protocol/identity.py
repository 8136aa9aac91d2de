"""Ed25519 identities: keys, text form, PEM, and strict signature verification.

A *user identity* (signs content) and a *node key* (identifies a node in the DHT
and on peer links) are both plain Ed25519 key pairs; only their use differs.

Strict verification (spec/protocol.md §3) refuses everything that lets two
implementations disagree about a signature, or lets one signature pass for
several keys and messages:

1. the public key A and the signature's R are canonical point encodings
   (y < p, and the sign bit is clear where x = 0);
2. neither A nor R is a point of small order (order dividing 8);
3. the scalar S is below the group order L;
4. the cofactorless equation [S]B = R + [k]A holds, as checked by OpenSSL
   through ``cryptography``.

``cryptography`` already does 3 and 4 and rejects some non-canonical R, but it
accepts small-order A and R, so steps 1 and 2 are ours. They cost two integer
conversions and a set lookup, no curve arithmetic: the small-order points are
few, and are identified by their y coordinate alone.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .bech32 import bech32m_decode, bech32m_encode
from .errors import DecodeError, InvalidSignature, LocalUsageError

__all__ = [
    "IDENTITY_HRP",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "SigningKey",
    "identity_from_text",
    "identity_to_text",
    "node_id_from_public_key",
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


@lru_cache(maxsize=4096)
def _load_public_key(public_key: bytes) -> Ed25519PublicKey:
    problem = _point_problem(public_key)
    if problem is not None:
        raise InvalidSignature(
            f"public key is {problem.replace('_', ' ')}", reason=f"{problem}_key"
        )
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise InvalidSignature("public key is not a curve point", reason="invalid_key") from None


def check_public_key(public_key: bytes) -> None:
    """Raise :class:`InvalidSignature` unless ``public_key`` passes the strict key rules."""
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidSignature("public key must be 32 bytes", reason="bad_length")
    _load_public_key(public_key)


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
        if not isinstance(key, Ed25519PrivateKey):
            raise DecodeError("key file does not hold an Ed25519 key", reason="bad_key_file")
        return cls(key)

    def __repr__(self) -> str:
        return f"SigningKey(public={identity_to_text(self.public_key)})"


def identity_to_text(public_key: bytes) -> str:
    """The text form of an identity: bech32m with the prefix ``p2ps``."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise LocalUsageError("an identity is a 32-byte public key")
    return bech32m_encode(IDENTITY_HRP, public_key)


def identity_from_text(text: str) -> bytes:
    """Parse an identity's text form.

    Raises:
        DecodeError: saying what is wrong (prefix, character, checksum, length,
            or a key that can never verify anything).
    """
    try:
        raw = bech32m_decode(text, IDENTITY_HRP)
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


def node_id_from_public_key(public_key: bytes) -> bytes:
    """The 160-bit DHT node id: the first 20 bytes of SHA-256(node public key)."""
    return hashlib.sha256(public_key).digest()[:20]
