"""The Noise Protocol Framework, sans-IO: handshake and transport states.

One suite only, ``25519_ChaChaPoly_SHA256`` (Noise spec revision 34, §12.1,
§12.3, §12.5), with a generic pattern engine: a handshake is a list of token
lists (§7), and :class:`Handshake` walks it, one message per call. The
peer-link uses ``Noise_XX_25519_ChaChaPoly_SHA256``; the other patterns of §7
(one-way, fundamental, deferred) and the ``pskN`` modifiers (§9) run too, so
that every public vector of the suite can check the engine.

Theory of the handshake states
------------------------------
A handshake is *ready* (it is our turn to write, or to read), *complete* (all
messages done; :meth:`Handshake.split` is allowed once) or *dead*. A
``read_message`` that raises for any reason, and a ``write_message`` that
fails after it started to change the state, make it dead: every later call
raises ``NoiseError("noise_state")``, so a half-failed handshake can never
yield a session. A write refused before any work (out of turn, too long)
leaves the state as it was.

Nothing here opens a socket, reads a clock or starts a thread. Randomness is
used for one thing, a fresh ephemeral key when none is given.

Low-order keys: X25519 with a low-order peer key gives an all-zero result.
§12.1 lets an implementation either accept such keys or reject them; we
reject them, with ``NoiseError("noise_bad_key")``, because a zero DH output
adds nothing secret to the chaining key (the session would rest on the other
DHs alone), and cryptography refuses to return it anyway. The error surfaces
at the first DH that uses the key, which may be inside ``write_message``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import LocalUsageError, ProtocolError

__all__ = [
    "DH_SIZE",
    "HASH_SIZE",
    "MAX_MESSAGE",
    "MAX_NONCE",
    "PATTERNS",
    "PROTOCOL_NAME",
    "SUITE",
    "TAG_SIZE",
    "CipherState",
    "Handshake",
    "NoiseError",
    "generate_private",
    "public_key",
]

#: The suite of every protocol this module speaks (§8 names).
SUITE = "25519_ChaChaPoly_SHA256"
#: The peer-link protocol.
PROTOCOL_NAME: bytes = b"Noise_XX_25519_ChaChaPoly_SHA256"
#: Noise's limit on any message, ciphertext and tag included (§3).
MAX_MESSAGE: int = 65535
#: ChaCha20-Poly1305 authentication tag.
TAG_SIZE: int = 16
#: X25519 public key and shared secret.
DH_SIZE: int = 32
#: SHA-256 output (HASHLEN, §4.3).
HASH_SIZE = 32
#: 2^64-1 is reserved (§5.1): no message may use it; REKEY does (§4.2).
MAX_NONCE = 2**64 - 1

_PSK_SIZE = 32
_ZEROS = bytes(32)

# Handshake patterns (§7.4 one-way, §7.5 fundamental, §7.6 deferred), as
# (initiator pre-message, responder pre-message, messages). Messages alternate
# initiator, responder, initiator, ...; tokens are space-separated.
PATTERNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "N": ("", "s", ("e es",)),
    "K": ("s", "s", ("e es ss",)),
    "X": ("", "s", ("e es s ss",)),
    "NN": ("", "", ("e", "e ee")),
    "NK": ("", "s", ("e es", "e ee")),
    "NX": ("", "", ("e", "e ee s es")),
    "XN": ("", "", ("e", "e ee", "s se")),
    "XK": ("", "s", ("e es", "e ee", "s se")),
    "XX": ("", "", ("e", "e ee s es", "s se")),
    "KN": ("s", "", ("e", "e ee se")),
    "KK": ("s", "s", ("e es ss", "e ee se")),
    "KX": ("s", "", ("e", "e ee se s es")),
    "IN": ("", "", ("e s", "e ee se")),
    "IK": ("", "s", ("e es s ss", "e ee se")),
    "IX": ("", "", ("e s", "e ee se s es")),
    "NK1": ("", "s", ("e", "e ee es")),
    "NX1": ("", "", ("e", "e ee s", "es")),
    "X1N": ("", "", ("e", "e ee", "s", "se")),
    "X1K": ("", "s", ("e es", "e ee", "s", "se")),
    "XK1": ("", "s", ("e", "e ee es", "s se")),
    "X1K1": ("", "s", ("e", "e ee es", "s", "se")),
    "X1X": ("", "", ("e", "e ee s es", "s", "se")),
    "XX1": ("", "", ("e", "e ee s", "es s se")),
    "X1X1": ("", "", ("e", "e ee s", "es s", "se")),
    "K1N": ("s", "", ("e", "e ee", "se")),
    "K1K": ("s", "s", ("e es", "e ee", "se")),
    "KK1": ("s", "s", ("e", "e ee se es")),
    "K1K1": ("s", "s", ("e", "e ee es", "se")),
    "K1X": ("s", "", ("e", "e ee s es", "se")),
    "KX1": ("s", "", ("e", "e ee se s", "es")),
    "K1X1": ("s", "", ("e", "e ee s", "se es")),
    "I1N": ("", "", ("e s", "e ee", "se")),
    "I1K": ("", "s", ("e es s", "e ee", "se")),
    "IK1": ("", "s", ("e s", "e ee se es")),
    "I1K1": ("", "s", ("e s", "e ee es", "se")),
    "I1X": ("", "", ("e s", "e ee s es", "se")),
    "IX1": ("", "", ("e s", "e ee se s", "es")),
    "I1X1": ("", "", ("e s", "e ee s", "se es")),
}


class NoiseError(ProtocolError):
    """A Noise handshake or transport message is refused.

    Reasons: ``noise_decrypt`` (authentication failed), ``noise_bad_message``
    (wrong length or shape), ``noise_bad_key`` (a low-order X25519 key),
    ``noise_state`` (a call out of order, or on a dead handshake),
    ``noise_too_long`` (over :data:`MAX_MESSAGE`), ``noise_nonce_exhausted``.
    """

    reason = "noise"


# ---------------------------------------------------------------- primitives


def generate_private() -> bytes:
    """A fresh X25519 private key (32 bytes from the OS's CSPRNG)."""
    return os.urandom(DH_SIZE)


def _private(raw: bytes) -> X25519PrivateKey:
    if len(raw) != DH_SIZE:
        raise LocalUsageError(f"an X25519 private key is {DH_SIZE} bytes, not {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def _public_of(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key(static_private: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key.

    Raises:
        LocalUsageError: the key is not 32 bytes.
    """
    return _public_of(_private(static_private))


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        # cryptography refuses an all-zero shared secret (a low-order key).
        raise NoiseError("low-order X25519 public key", reason="noise_bad_key") from None


def _hash(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def _hmac(key: bytes, data: bytes) -> bytes:
    m = hmac.HMAC(key, hashes.SHA256())
    m.update(data)
    return m.finalize()


def _hkdf(chaining_key: bytes, ikm: bytes, outputs: int) -> list[bytes]:
    """HKDF as §4.3 defines it: HMAC-SHA256 extract, then chained expands."""
    temp = _hmac(chaining_key, ikm)
    out: list[bytes] = []
    prev = b""
    for i in range(1, outputs + 1):
        prev = _hmac(temp, prev + bytes([i]))
        out.append(prev)
    return out


def _nonce(n: int) -> bytes:
    # §12.3: 32 bits of zeros, then the 64-bit counter, little-endian.
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


# ---------------------------------------------------------------- CipherState


class CipherState:
    """A key and a 64-bit nonce: one direction of a Noise channel (§5.1).

    Without a key (inside a handshake, before the first DH) it passes data
    through unchanged, as the spec requires. The states :meth:`Handshake.split`
    returns always hold a key.
    """

    __slots__ = ("_aead", "_key", "_n")

    def __init__(self, key: bytes | None = None, nonce: int = 0) -> None:
        if key is not None and len(key) != 32:
            raise LocalUsageError(f"a ChaChaPoly key is 32 bytes, not {len(key)}")
        self._key = key
        self._aead = ChaCha20Poly1305(key) if key is not None else None
        self._n = nonce

    @property
    def has_key(self) -> bool:
        """Whether a key is set (otherwise data passes through)."""
        return self._key is not None

    @property
    def nonce(self) -> int:
        """The nonce the next message will use (= messages done so far)."""
        return self._n

    def _set_nonce(self, n: int) -> None:
        # Test-only path (the spec's SetNonce): lets a test reach the limit.
        self._n = n

    def _check_nonce(self) -> None:
        if self._n >= MAX_NONCE:
            raise NoiseError("nonce space exhausted", reason="noise_nonce_exhausted")

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt one message with associated data ``ad``; the nonce advances.

        Raises:
            NoiseError: ``noise_too_long`` if the ciphertext would exceed
                :data:`MAX_MESSAGE` (checked first); ``noise_nonce_exhausted``.
        """
        if self._aead is None:
            if len(plaintext) > MAX_MESSAGE:
                raise NoiseError("message too long", reason="noise_too_long")
            return plaintext
        if len(plaintext) > MAX_MESSAGE - TAG_SIZE:
            raise NoiseError("message too long", reason="noise_too_long")
        self._check_nonce()
        out = self._aead.encrypt(_nonce(self._n), plaintext, ad)
        self._n += 1
        return out

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt and authenticate one message; the nonce advances on success only.

        Raises:
            NoiseError: ``noise_too_long`` (over :data:`MAX_MESSAGE`, checked
                first), ``noise_bad_message`` (shorter than a tag),
                ``noise_nonce_exhausted``, ``noise_decrypt`` (bad tag: the
                message is forged, replayed, reordered or corrupt).
        """
        if len(ciphertext) > MAX_MESSAGE:
            raise NoiseError("message too long", reason="noise_too_long")
        if self._aead is None:
            return ciphertext
        if len(ciphertext) < TAG_SIZE:
            raise NoiseError("message shorter than a tag", reason="noise_bad_message")
        self._check_nonce()
        try:
            out = self._aead.decrypt(_nonce(self._n), ciphertext, ad)
        except InvalidTag:
            raise NoiseError("message failed authentication", reason="noise_decrypt") from None
        self._n += 1
        return out

    def rekey(self) -> None:
        """Replace the key with REKEY(k) (§4.2, §11.3); the nonce is unchanged.

        Raises:
            NoiseError: ``noise_state`` if there is no key.
        """
        if self._aead is None:
            raise NoiseError("rekey without a key", reason="noise_state")
        new = self._aead.encrypt(_nonce(MAX_NONCE), _ZEROS, b"")[:32]
        self._key = new
        self._aead = ChaCha20Poly1305(new)


# ---------------------------------------------------------------- SymmetricState


class _Symmetric:
    """The chaining key, the handshake hash and the handshake cipher (§5.2)."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASH_SIZE:
            self.h = protocol_name.ljust(HASH_SIZE, b"\x00")
        else:
            self.h = _hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, ikm, 2)
        self.cipher = CipherState(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def mix_key_and_hash(self, ikm: bytes) -> None:
        self.ck, temp_h, temp_k = _hkdf(self.ck, ikm, 3)
        self.mix_hash(temp_h)
        self.cipher = CipherState(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        out = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(out)
        return out

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        out = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return out

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = _hkdf(self.ck, b"", 2)
        return CipherState(k1), CipherState(k2)


# ---------------------------------------------------------------- HandshakeState


def _parse_pattern(pattern: str) -> tuple[str, str, list[list[str]], int]:
    """(initiator pre, responder pre, messages, psk count) of a pattern name.

    Accepts a base pattern of :data:`PATTERNS` with ``pskN`` modifiers joined
    by ``+`` (§9.2): psk0 goes first in the first message, pskN (N >= 1) last
    in message N.
    """
    base = pattern
    modifiers: list[str] = []
    for i, ch in enumerate(pattern):
        if ch.islower():
            base, modifiers = pattern[:i], pattern[i:].split("+")
            break
    if base not in PATTERNS:
        raise LocalUsageError(f"unknown Noise handshake pattern {pattern!r}")
    pre_i, pre_r, msgs = PATTERNS[base]
    messages = [m.split() for m in msgs]
    for mod in modifiers:
        if not (mod.startswith("psk") and mod[3:].isdigit()):
            raise LocalUsageError(f"unsupported pattern modifier {mod!r} in {pattern!r}")
        n = int(mod[3:])
        if n == 0:
            messages[0].insert(0, "psk")
        elif n <= len(messages):
            messages[n - 1].append("psk")
        else:
            raise LocalUsageError(f"{mod} is past the last message of {base}")
    return pre_i, pre_r, messages, len(modifiers)


class Handshake:
    """One side of a Noise handshake (§5.3), bytes in and bytes out.

    Args:
        initiator: whether this side sends the first message.
        static_private: our X25519 static private key (32 bytes); may be None
            only for a pattern that never uses our static key.
        prologue: data both sides must agree on, bound into the hash.
        pattern: a pattern of :data:`PATTERNS`, optionally with ``pskN``
            modifiers (``"XX"``, ``"IK"``, ``"NNpsk0+psk2"``).
        ephemeral_private: a fixed ephemeral key, for tests and vectors only;
            by default a fresh one is drawn when the pattern first needs it.
        remote_static: the peer's static public key, where the pattern has it
            as a pre-message (``N``, ``K``, ``X``, ``*K``, ``K*``); refused
            otherwise.
        protocol_name: the full protocol name; if given, it must be the one
            ``pattern`` and this suite make.
        psks: the pre-shared keys (32 bytes each) of the psk modifiers, in
            the order their tokens occur.

    Raises:
        LocalUsageError: unknown pattern, wrong key sizes, a missing or
            unexpected key.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        static_private: bytes | None,
        prologue: bytes = b"",
        pattern: str = "XX",
        ephemeral_private: bytes | None = None,
        remote_static: bytes | None = None,
        protocol_name: bytes | None = None,
        psks: Sequence[bytes] = (),
    ) -> None:
        pre_i, pre_r, messages, psk_count = _parse_pattern(pattern)
        name = f"Noise_{pattern}_{SUITE}".encode()
        if protocol_name is not None and protocol_name != name:
            raise LocalUsageError(f"protocol name {protocol_name!r} is not {name!r}")
        if len(psks) != psk_count or any(len(p) != _PSK_SIZE for p in psks):
            raise LocalUsageError(f"{pattern} needs {psk_count} pre-shared keys of 32 bytes")
        pre_peer = pre_i if not initiator else pre_r
        if static_private is None and _uses_own_static(pre_i, pre_r, messages, initiator):
            raise LocalUsageError(f"{pattern} needs our static key")
        if ("s" in pre_peer.split()) != (remote_static is not None):
            need = "needs" if "s" in pre_peer.split() else "takes no"
            raise LocalUsageError(f"{pattern} {need} remote_static")
        if remote_static is not None and len(remote_static) != DH_SIZE:
            raise LocalUsageError(f"a remote static key is {DH_SIZE} bytes")
        self._initiator = initiator
        self._s = _private(static_private) if static_private is not None else None
        self._s_pub = _public_of(self._s) if self._s is not None else None
        self._e = _private(ephemeral_private) if ephemeral_private is not None else None
        self._rs = remote_static
        self._re: bytes | None = None
        self._psks = list(psks)
        self._psk_mode = psk_count > 0
        self._messages = messages
        self._index = 0
        self._dead = False
        self._split_done = False
        self._sym = _Symmetric(name)
        self._sym.mix_hash(prologue)
        # Pre-message keys are hashed initiator's first, then the responder's (§5.3).
        for owner_is_initiator, pre in ((True, pre_i), (False, pre_r)):
            for token in pre.split():
                if token != "s":
                    raise LocalUsageError(f"unsupported pre-message token {token!r}")
                mine = owner_is_initiator == initiator
                key = self._static_public() if mine else remote_static
                assert key is not None
                self._sym.mix_hash(key)

    # ------------------------------------------------------------ properties

    @property
    def complete(self) -> bool:
        """All handshake messages are done (and the handshake is not dead)."""
        return not self._dead and self._index >= len(self._messages)

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static X25519 public key, once known (pre-message or read).

        None on a dead handshake: a failed handshake vouches for no key.
        """
        return None if self._dead else self._rs

    @property
    def handshake_hash(self) -> bytes:
        """The handshake hash h; final (the channel binding value) once complete."""
        return self._sym.h

    @property
    def our_turn(self) -> bool:
        """Whether the next call must be :meth:`write_message`."""
        return (self._index % 2 == 0) == self._initiator

    # ------------------------------------------------------------ messages

    def _static_public(self) -> bytes:
        if self._s_pub is None:
            raise LocalUsageError("this pattern needs our static key")
        return self._s_pub

    def _check_ready(self, writing: bool) -> None:
        if self._dead:
            raise NoiseError("handshake failed earlier", reason="noise_state")
        if self._index >= len(self._messages):
            raise NoiseError("handshake already complete", reason="noise_state")
        if self.our_turn != writing:
            verb = "read" if writing else "write"
            raise NoiseError(f"it is our turn to {verb}", reason="noise_state")

    def _layout(self, tokens: Sequence[str]) -> tuple[int, bool]:
        """(bytes before the payload, whether the payload is encrypted)."""
        keyed = self._sym.cipher.has_key
        size = 0
        for t in tokens:
            if t == "e":
                size += DH_SIZE
                keyed = keyed or self._psk_mode
            elif t == "s":
                size += DH_SIZE + (TAG_SIZE if keyed else 0)
            else:
                keyed = True
        return size, keyed

    def _dh_token(self, token: str) -> None:
        ini = self._initiator
        if token == "ee":
            local, remote = self._e, self._re
        elif token == "ss":
            local, remote = self._s, self._rs
        elif (token == "es") == ini:
            local, remote = self._e, self._rs
        else:
            local, remote = self._s, self._re
        if local is None or remote is None:
            raise NoiseError(f"{token} before its keys are known", reason="noise_state")
        self._sym.mix_key(_dh(local, remote))

    def write_message(self, payload: bytes = b"") -> bytes:
        """Our next handshake message, carrying ``payload``.

        Returns:
            The message bytes to send.

        Raises:
            NoiseError: ``noise_state`` when it is not our turn (or the
                handshake is complete or dead), ``noise_too_long`` if the
                message would exceed :data:`MAX_MESSAGE` (both before any
                work); ``noise_bad_key`` if a key the peer sent is low-order
                (the handshake is dead then).
        """
        self._check_ready(writing=True)
        tokens = self._messages[self._index]
        fixed, keyed = self._layout(tokens)
        if fixed + len(payload) + (TAG_SIZE if keyed else 0) > MAX_MESSAGE:
            raise NoiseError("handshake message too long", reason="noise_too_long")
        try:
            out = bytearray()
            for t in tokens:
                if t == "e":
                    if self._e is None:
                        self._e = X25519PrivateKey.generate()
                    pub = _public_of(self._e)
                    out += pub
                    self._sym.mix_hash(pub)
                    if self._psk_mode:
                        self._sym.mix_key(pub)
                elif t == "s":
                    out += self._sym.encrypt_and_hash(self._static_public())
                elif t == "psk":
                    self._sym.mix_key_and_hash(self._psks.pop(0))
                else:
                    self._dh_token(t)
            out += self._sym.encrypt_and_hash(payload)
        except BaseException:
            self._dead = True
            raise
        self._index += 1
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """Process the peer's next handshake message.

        Returns:
            The payload it carried.

        Raises:
            NoiseError: on any bad input (``noise_too_long``,
                ``noise_bad_message``, ``noise_decrypt``, ``noise_bad_key``)
                or call out of turn (``noise_state``). After it raises, the
                handshake is dead. Any other exception is a bug.
        """
        try:
            return self._read(message)
        except BaseException:
            self._dead = True
            raise

    def _read(self, message: bytes) -> bytes:
        self._check_ready(writing=False)
        if len(message) > MAX_MESSAGE:
            raise NoiseError("handshake message too long", reason="noise_too_long")
        tokens = self._messages[self._index]
        fixed, keyed = self._layout(tokens)
        if len(message) < fixed + (TAG_SIZE if keyed else 0):
            raise NoiseError("handshake message too short", reason="noise_bad_message")
        data = bytes(message)
        pos = 0
        for t in tokens:
            if t == "e":
                self._re = data[pos : pos + DH_SIZE]
                pos += DH_SIZE
                self._sym.mix_hash(self._re)
                if self._psk_mode:
                    self._sym.mix_key(self._re)
            elif t == "s":
                size = DH_SIZE + (TAG_SIZE if self._sym.cipher.has_key else 0)
                self._rs = self._sym.decrypt_and_hash(data[pos : pos + size])
                pos += size
            elif t == "psk":
                self._sym.mix_key_and_hash(self._psks.pop(0))
            else:
                self._dh_token(t)
        payload = self._sym.decrypt_and_hash(data[pos:])
        self._index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """The transport states, (ours to send, ours to receive), for this side.

        Allowed once, after the handshake is complete (a second pair would
        reuse the same keys and nonces).

        Raises:
            NoiseError: ``noise_state`` before completion, when dead, or on a
                second call.
        """
        if not self.complete or self._split_done:
            raise NoiseError("split before the handshake is complete", reason="noise_state")
        self._split_done = True
        c1, c2 = self._sym.split()
        return (c1, c2) if self._initiator else (c2, c1)


def _uses_own_static(
    pre_i: str, pre_r: str, messages: Sequence[Sequence[str]], initiator: bool
) -> bool:
    """Whether this side's static key appears in the pattern (sent, pre-known or in a DH)."""
    if "s" in (pre_i if initiator else pre_r).split():
        return True
    mine = {"ss", "se"} if initiator else {"ss", "es"}
    for i, m in enumerate(messages):
        if any(t in mine for t in m) or ("s" in m and (i % 2 == 0) == initiator):
            return True
    return False
