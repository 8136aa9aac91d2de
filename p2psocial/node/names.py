"""Names instead of keys: the owner's petnames, and the names entry views carry.

Theory. Three kinds of name can stand for an identity, with different trust:

* a **petname** is the owner's own name for an identity, set with
  ``set_name``. It is local and private: stored in this node's database,
  never published or sent to a peer. Only the owner can make one, so a
  petname is the one name that may be shown bare (``alice``).
* a **profile name** is what the identity's owner calls itself in its
  ``profile`` entry. Anyone can choose any profile name, "alice" included,
  so renderings mark it as self-chosen (the CLI shows ``~alice`` with the
  short key) and never let it pass for a petname.
* otherwise the identity's **short key** is shown.

:class:`Names` holds every petname in memory (loaded at start, changed on
set and remove; at most ``MAX_PETNAMES``) so that resolving a name costs a
dict lookup, and caches profile names per author (at most
``PROFILE_CACHE``), dropping an author's entry when a new profile (or a
delete, or a block) of theirs is stored, so a page of entries costs at most
one batched query for the authors it has not seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio

from ..protocol.bech32 import bech32m_decode
from ..protocol.entries import Entry
from ..protocol.errors import DecodeError, LocalUsageError
from ..protocol.identity import IDENTITY_HRP, identity_to_text
from ..protocol.textrefs import IDENTITY_PREFIX, petname_problem
from ..storage import AsyncStore
from .views import parse_identity

__all__ = ["AUTHOR_TARGET_KINDS", "MAX_PETNAMES", "PROFILE_CACHE", "Names"]

#: Petnames one node keeps: each costs ~200 bytes of memory, held always.
MAX_PETNAMES = 10_000
#: Authors whose profile name is cached; the cache is emptied when full.
PROFILE_CACHE = 4096
#: Kinds whose ``target`` is an identity.
AUTHOR_TARGET_KINDS = frozenset({"follow", "unfollow", "block", "unblock"})
#: Not in the profile cache (None there means: no usable profile name held).
_UNKNOWN: Any = object()


def _looked_up_key(text: str) -> bytes | None:
    """The key an identity's text form stands for, for a profile-name lookup.

    Only the bech32m form and the length are checked, not the curve point
    (``identity_from_text`` does that, at ~0.5 ms a key): the texts here are
    the ones this node rendered from keys it holds, and a key found here only
    selects rows; nothing is verified with it.
    """
    try:
        raw = bech32m_decode(text, IDENTITY_HRP)
    except DecodeError:
        return None
    return raw if len(raw) == 32 else None


class Names:
    """Petnames and profile names for one node.

    Args:
        store: the node's store (the ``petnames`` table and profiles).
    """

    def __init__(
        self,
        store: AsyncStore,
        *,
        max_petnames: int = MAX_PETNAMES,
        profile_cache: int = PROFILE_CACHE,
    ) -> None:
        self._store = store
        self._max_petnames = max_petnames
        self._cache_size = profile_cache
        self._by_name: dict[str, bytes] = {}
        #: identity text form -> petname.
        self._by_text: dict[str, str] = {}
        self._loaded = False
        self._lock = trio.Lock()
        #: identity text form -> profile name (None: no usable one held).
        self._profiles: dict[str, str | None] = {}
        # Bumped whenever cached profile names may be stale, so that a lookup
        # that raced with a new profile does not cache what it read before it.
        self._generation = 0

    async def load(self) -> None:
        """Read the petnames from the store (again)."""
        rows = await self._store.load_petnames()
        self._by_name = dict(rows)
        self._by_text = {identity_to_text(key): name for name, key in rows}
        self._loaded = True

    async def _ensure_loaded(self) -> None:
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    await self.load()

    # -- resolving -------------------------------------------------------------

    async def resolve(self, value: str | bytes) -> bytes:
        """The identity ``value`` names: an identity's text form, raw 32 bytes,
        or a petname (any case, with or without a leading ``@``).

        Raises:
            LocalUsageError: ``unknown_name`` for a well-formed petname this
                node does not hold; ``bad_identity`` for anything else that is
                not an identity.
        """
        await self._ensure_loaded()
        return self.resolve_now(value)

    def resolve_now(self, value: str | bytes) -> bytes:
        """:meth:`resolve` without waiting: the petnames must be loaded
        (:func:`~p2psocial.node.node.open_node` loads them at start)."""
        if isinstance(value, bytes) or not isinstance(value, str):
            return parse_identity(value)
        text = value.strip()
        if text.lower().startswith(IDENTITY_PREFIX):
            return parse_identity(text)
        name = text.removeprefix("@").lower()
        key = self._by_name.get(name)
        if key is not None:
            return key
        if petname_problem(name) is None:
            raise LocalUsageError(
                f"no petname {name!r} on this node: give the identity (p2ps1...), "
                "or set the name first (name set)",
                reason="unknown_name",
            )
        raise LocalUsageError(
            f"{text[:80]!r} is neither an identity (p2ps1...) nor a petname",
            reason="bad_identity",
        )

    # -- the owner's petnames --------------------------------------------------

    async def set(self, name: str, identity: str | bytes) -> dict[str, Any]:
        """Make ``name`` the petname of ``identity`` (replacing the one it had).

        Returns:
            ``{"name", "identity", "previous"}``: ``previous`` is the petname
            the identity had before, or None.

        Raises:
            LocalUsageError: ``bad_name`` (see :func:`petname_problem`),
                ``name_taken`` (the name already names another identity),
                ``too_many_names``, or a malformed identity.
        """
        if not isinstance(name, str):
            raise LocalUsageError("a petname is text", reason="bad_name")
        name = name.strip().lower()
        problem = petname_problem(name)
        if problem is not None:
            raise LocalUsageError(f"{problem}: {name[:80]!r}", reason="bad_name")
        key = await self.resolve(identity)
        async with self._lock:
            if not self._loaded:
                await self.load()
            text = identity_to_text(key)
            holder = self._by_name.get(name)
            if holder is not None and holder != key:
                raise LocalUsageError(
                    f"{name!r} already names {identity_to_text(holder)}; remove it first (name rm)",
                    reason="name_taken",
                )
            if text not in self._by_text and len(self._by_name) >= self._max_petnames:
                raise LocalUsageError(
                    f"this node holds {self._max_petnames} petnames, its limit; remove some first",
                    reason="too_many_names",
                )
            previous = await self._store.set_petname(name, key)
            if previous is not None:
                self._by_name.pop(previous, None)
            self._by_name[name] = key
            self._by_text[text] = name
        return {"name": name, "identity": text, "previous": previous}

    async def remove(self, name: str) -> dict[str, Any]:
        """Forget a petname.

        Returns:
            ``{"removed": name, "identity": text}``.

        Raises:
            LocalUsageError: ``unknown_name``: no such petname.
        """
        folded = name.strip().removeprefix("@").lower() if isinstance(name, str) else ""
        async with self._lock:
            if not self._loaded:
                await self.load()
            if folded not in self._by_name:
                raise LocalUsageError(
                    f"no petname {folded[:80]!r} on this node", reason="unknown_name"
                )
            key = await self._store.remove_petname(folded)
            held = self._by_name.pop(folded)
            self._by_text.pop(identity_to_text(held), None)
        return {"removed": folded, "identity": identity_to_text(key or held)}

    async def listing(self) -> dict[str, Any]:
        """Every petname, by name, with the profile name its identity chose."""
        await self._ensure_loaded()
        texts = {identity_to_text(key): name for name, key in sorted(self._by_name.items())}
        profiles = await self._profile_names(texts)
        items = [
            {"name": name, "identity": text, "profile": profiles.get(text)}
            for text, name in texts.items()
        ]
        return {"items": items}

    def petname(self, identity: str) -> str | None:
        """The petname of an identity (text form), or None (call after a resolve or load)."""
        return self._by_text.get(identity)

    # -- profile names ---------------------------------------------------------

    def entries_stored(self, entries: Iterable[Entry]) -> None:
        """Entries were just stored: forget the cached names they may change (never blocks)."""
        for entry in entries:
            if entry.kind in ("profile", "delete"):
                self._profiles.pop(identity_to_text(entry.author), None)
                self._generation += 1

    def forget_profiles(self) -> None:
        """Drop every cached profile name (blocks purge profiles)."""
        self._profiles.clear()
        self._generation += 1

    async def _profile_names(self, texts: Iterable[str]) -> dict[str, str | None]:
        wanted = list(dict.fromkeys(texts))
        missing = [t for t in wanted if t not in self._profiles]
        found: dict[str, str | None] = {}
        if missing:
            generation = self._generation
            keys: dict[bytes, str] = {}
            for t in missing:
                key = _looked_up_key(t)
                if key is not None:
                    keys[key] = t
            rows = await self._store.profile_names(keys)
            found = {t: None for t in missing}
            for key, (name, _bio) in rows.items():
                if isinstance(name, str) and name and key in keys:
                    found[keys[key]] = name
            if generation == self._generation:
                if len(self._profiles) + len(found) > self._cache_size:
                    # A new map, not clear(): a page being annotated still
                    # reads the names it found in the old one (annotate).
                    self._profiles = {}
                self._profiles.update(found)
        return {t: found[t] if t in found else self._profiles.get(t) for t in wanted}

    # -- renderings ------------------------------------------------------------

    async def annotate(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add the names to entry views (in place; spec/client-api.md §5).

        Each item gets ``author_name`` (``{"petname", "profile"}``) and
        ``names``: the same pair for every identity the entry names (its
        author, its mentions, and the target of a follow or block), in that
        order.
        """
        await self._ensure_loaded()
        # Every page the API serves comes through here, and its authors'
        # names are nearly always cached: one pass fills every pair in from
        # the cache and notes the identities it lacks; only then, at most one
        # store call for those, whose pairs are filled in after. ``cached`` is
        # the cache as it was before that call: one that empties the cache
        # replaces it with a new map, and the pairs filled in already stand.
        cached = self._profiles
        by_text = self._by_text
        missing: list[str] = []
        for item in items:
            names: dict[str, dict[str, str | None]] = {}
            author = item.get("author")
            author_name = None
            if type(author) is str:
                profile = cached.get(author, _UNKNOWN)
                if profile is _UNKNOWN:
                    missing.append(author)
                    profile = None
                author_name = names[author] = {"petname": by_text.get(author), "profile": profile}
            named = item.get("mentions") or ()
            if item.get("kind") in AUTHOR_TARGET_KINDS:
                named = [*named, item.get("target")]
            for t in named:
                if type(t) is str and t not in names:
                    profile = cached.get(t, _UNKNOWN)
                    if profile is _UNKNOWN:
                        missing.append(t)
                        profile = None
                    names[t] = {"petname": by_text.get(t), "profile": profile}
            item["names"] = names
            item["author_name"] = author_name
        if missing:
            found = await self._profile_names(missing)
            for item in items:
                for t, pair in item["names"].items():
                    if t in found:
                        pair["profile"] = found[t]
        return items

    async def annotate_page(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with its ``items`` annotated (see :meth:`annotate`)."""
        await self.annotate(result.get("items") or [])
        return result

    async def identity_names(self, texts: Iterable[str]) -> dict[str, dict[str, str | None]]:
        """identity text -> ``{"petname", "profile"}``, for lists of identities."""
        await self._ensure_loaded()
        wanted = list(texts)
        profiles = await self._profile_names(wanted)
        return {t: {"petname": self._by_text.get(t), "profile": profiles.get(t)} for t in wanted}
