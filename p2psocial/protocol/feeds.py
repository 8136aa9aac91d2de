"""Feed rules: hash-linked chains, batch verification, and fork proofs.

Theory (spec/protocol.md §6). A feed is the sequence of an author's entries
with seq 1, 2, 3, ...; entry n > 1 names entry n-1 by id in ``prev``. Because
an id is the SHA-256 of the whole entry (signature included), a valid signature
on entry b authenticates b, and with it the exact bytes of b-1 (through
``prev``), and so on down the run. So a contiguous run a..b whose links all hold
is authentic if the signature of b alone verifies: one signature check plus one
hash per entry, instead of one signature check per entry.

Every entry's signature must still be *well-formed* (strict encoding checks,
which cost no curve arithmetic), so no stored signature is malleable.

A fork is two entries with the same (author, seq) and different ids, each with
a valid signature: the author signed two histories. The pair itself is the
proof; any node can check it with no other context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import encoding
from .encoding import Limits
from .entries import MAX_ENTRY_SIZE, Entry, decode_entry_untrusted
from .errors import ChainError, DecodeError, ForkError
from .identity import _SMALL_ORDER_Y, check_signature_encoding

__all__ = [
    "ForkProof",
    "check_link",
    "decode_fork_proof_untrusted",
    "detect_fork",
    "verify_run",
]


def check_link(prev: Entry, entry: Entry) -> None:
    """Check that ``entry`` directly follows ``prev`` in the same feed.

    Raises:
        ForkError: same author and seq but a different id (call
            :func:`detect_fork` to get the proof once both are verified).
        ChainError: different author, seq not prev.seq + 1, or prev id mismatch.
    """
    if entry.author != prev.author:
        raise ChainError("entries are from different authors", reason="wrong_author")
    if entry.seq != prev.seq + 1:
        if entry.seq == prev.seq and entry.id != prev.id:
            raise ForkError(f"two different entries claim seq {entry.seq}")
        raise ChainError(f"seq {entry.seq} does not follow {prev.seq}", reason="seq_gap")
    if entry.prev != prev.id:
        raise ChainError(
            f"seq {entry.seq} names a different previous entry than the one held",
            reason="prev_mismatch",
        )


_P = 2**255 - 19
#: Every 32-byte R that check_signature_encoding refuses: its verdict depends
#: only on y (the low 255 bits) and x's sign bit, and it refuses exactly the
#: y >= p (non-canonical) and the y of the points of small order, with either
#: sign bit. A set lookup instead of two 256-bit conversions per entry, on the
#: catch-up hot path; tests/protocol/test_properties.py checks it against the rule.
_BAD_R = frozenset(
    (y | sign << 255).to_bytes(32, "little")
    for y in (*range(_P, 2**255), *_SMALL_ORDER_Y)
    for sign in (0, 1)
)


def verify_run(run: Sequence[Entry], anchor: Entry | None = None) -> None:
    """Authenticate a contiguous run of one feed with one signature check.

    Args:
        run: entries of one author with consecutive seqs, oldest first.
        anchor: the already-authenticated entry just below ``run[0]``, if any.
            Without one, ``run[0]`` must be seq 1 or the caller accepts the run
            as a detached segment (spec §6.3) authenticated by its top entry.

    Raises:
        ChainError: a link, seq or author is wrong anywhere in the run.
        InvalidSignature: a malformed signature anywhere, or the top entry's
            signature does not verify.
    """
    if not run:
        return
    prev = anchor
    bad_r = _BAD_R
    for entry in run:
        if prev is not None and (
            entry.prev != prev.id or entry.seq != prev.seq + 1 or entry.author != prev.author
        ):
            check_link(prev, entry)  # raises the precise error
        sig = entry.signature
        if sig[63] >= 0x10 or sig[:32] in bad_r:
            check_signature_encoding(sig)
        prev = entry
    run[-1].verify()


#: The msgpack-level limits of a fork proof (spec/protocol.md §6.5): its size
#: and depth. That it is exactly two byte strings is a shape rule
#: (``bad_fork_proof``), and how long each may be is the entry rule
#: (``too_large``), so the per-element limits are only the size itself: an
#: array of one element and one of three are refused alike (issue 11).
MAX_FORK_PROOF_SIZE = 2 * MAX_ENTRY_SIZE + 16
_FORK_LIMITS = Limits(
    max_size=MAX_FORK_PROOF_SIZE,
    max_depth=1,
    max_container_len=MAX_FORK_PROOF_SIZE,
    max_str_len=MAX_FORK_PROOF_SIZE,
    max_bin_len=MAX_FORK_PROOF_SIZE,
)


@dataclass(frozen=True, slots=True)
class ForkProof:
    """Two validly signed entries with the same author and seq but different ids."""

    first: Entry
    second: Entry

    @property
    def author(self) -> bytes:
        return self.first.author

    @property
    def seq(self) -> int:
        return self.first.seq

    def to_bytes(self) -> bytes:
        """Canonical msgpack array of the two entries' bytes, ordered by id."""
        return encoding.encode([self.first.to_bytes(), self.second.to_bytes()])


def detect_fork(a: Entry, b: Entry) -> ForkProof | None:
    """Return a fork proof if ``a`` and ``b`` (both already verified) conflict."""
    if a.author != b.author or a.seq != b.seq or a.id == b.id:
        return None
    first, second = (a, b) if a.id < b.id else (b, a)
    return ForkProof(first, second)


def decode_fork_proof_untrusted(data: bytes) -> ForkProof:
    """Decode and fully verify a fork proof received from a peer.

    The rules of spec/protocol.md §6.5 in the order of the reason table (§9,
    rows F1-F7): msgpack rules, shape, each entry's decoding (first, then
    second), the same entry twice, id order, author and seq, then each
    entry's signature (first, then second).

    Raises:
        DecodeError: malformed bytes or entries, or entries not in id order.
        InvalidSignature: either entry's signature fails.
        ChainError: the two entries do not conflict (different author or seq,
            or identical).
    """
    value = encoding.decode_untrusted(data, _FORK_LIMITS)
    if type(value) is not list or len(value) != 2 or any(type(v) is not bytes for v in value):
        raise DecodeError("fork proof must be an array of two entries", reason="bad_fork_proof")
    a = decode_entry_untrusted(value[0])
    b = decode_entry_untrusted(value[1])
    if a.id == b.id:
        raise ChainError("fork proof holds the same entry twice", reason="not_a_fork")
    if not a.id < b.id:
        raise DecodeError("fork proof entries are not ordered by id", reason="non_canonical")
    if a.author != b.author or a.seq != b.seq:
        raise ChainError(
            "fork proof entries are not for the same author and seq", reason="not_a_fork"
        )
    a.verify()
    b.verify()
    return ForkProof(a, b)
