"""Fork proofs made during one ingest transaction.

Theory. A fork proof must convince every other node on its own, but batch
verification vouches for an inner entry through the hash link of the entry
above it, not through its own signature (spec/protocol.md §6.2). So both
halves of a proof get the full signature check here, however they were
authenticated before. A pair that fails it proves nothing: the rival is
refused as ``unprovable_fork`` and the feed is not frozen.

When the held entry at a seq fails that check, two rivals of the same batch
that each pass it still prove the fork without it (for instance both halves
of a gossiped proof): the first is kept aside until the second comes.
"""

from __future__ import annotations

from ..protocol.entries import Entry, decode_entry_untrusted
from ..protocol.errors import ProtocolError
from ..protocol.feeds import detect_fork
from .batch import Item, rejected
from .model import Outcome

__all__ = ["ForkJudge"]


class ForkJudge:
    """Decides whether a second entry at a seq proves a fork; one per transaction."""

    def __init__(self) -> None:
        #: Entry id -> whether its own signature passes the full check.
        self._verified_alone: dict[bytes, bool] = {}
        #: (author, seq) -> a rival there that verified alone but found no
        #: partner for a proof (the held entry's own signature failed).
        self._lone_rival: dict[tuple[bytes, int], Item] = {}

    def vouch(self, id_: bytes) -> None:
        """Note that entry ``id_`` has just passed the full check of its own signature."""
        self._verified_alone[id_] = True

    def verifies_alone(self, e: Entry) -> bool:
        """Whether ``e``'s own signature passes the full check (cached per id)."""
        ok = self._verified_alone.get(e.id)
        if ok is None:
            try:
                e.verify()
            except ProtocolError:
                ok = False
            else:
                ok = True
            self._verified_alone[e.id] = ok
        return ok

    def judge(self, it: Item, other: bytes | Item, outcomes: list[Outcome | None]) -> bytes | None:
        """Judge ``it``, an authentic entry at a seq already taken by ``other``.

        Args:
            it: the rival; its run (or its own signature) has verified.
            other: the held entry's bytes, or the batch's first item at that seq.
            outcomes: filled for ``it`` (and for a rival kept aside earlier).

        Returns:
            The fork proof's bytes when the fork is proven (the caller records
            it and freezes the feed); None when it is not.
        """
        e = it.entry
        if isinstance(other, Item):
            out = outcomes[other.index]
            if out is None or out.status != "stored":
                outcomes[it.index] = rejected(it, "seq_conflict")
                return None
            held = other.entry
        else:
            held = decode_entry_untrusted(other)
        if not self.verifies_alone(e):
            # Authentic through its run, but no proof can be built from it.
            outcomes[it.index] = rejected(it, "unprovable_fork")
            return None
        partner = held
        earlier: Item | None = None
        if not self.verifies_alone(held):
            key = (e.author, e.seq)
            earlier = self._lone_rival.get(key)
            if earlier is None:
                self._lone_rival[key] = it
                outcomes[it.index] = rejected(it, "unprovable_fork")
                return None
            partner = earlier.entry
        proof = detect_fork(partner, e)
        if proof is None:
            outcomes[it.index] = rejected(it, "seq_conflict")
            return None
        outcomes[it.index] = rejected(it, "fork")
        if earlier is not None:
            outcomes[earlier.index] = rejected(earlier, "fork")
        return proof.to_bytes()
