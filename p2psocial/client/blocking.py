"""The blocking client: one Unix socket, one request at a time."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..api.protocol import (
    API_NAME,
    API_VERSION,
    FrameBuffer,
    decode_frame_payload_untrusted,
    encode_frame,
)
from ..errors import APIError
from ..paths import socket_path
from ..protocol.errors import DecodeError
from .handshake import check_hello, not_running, raise_error
from .pages import Page

if TYPE_CHECKING:
    # Types only: the TypedDicts cost start-up time and no command needs them.
    from .results import (
        Blocked,
        Connected,
        Entry,
        Explained,
        Identities,
        Muted,
        Peers,
        Profile,
        Published,
        Status,
        Thread,
        Unblocked,
        Unmuted,
    )

__all__ = ["Client", "connect"]


class Client:
    """A blocking client. Not thread-safe: use one per thread.

    A client that is iterating :meth:`watch` should not make other calls until
    the iteration ends; open a second client for that.
    """

    def __init__(self, sock: socket.socket, path: Path, timeout: float | None) -> None:
        self._sock = sock
        self._path = path
        self._buf = FrameBuffer()
        self._next_id = 1
        self._sock.settimeout(timeout)
        self._sock.sendall(encode_frame({"api": API_NAME, "version": API_VERSION}))
        hello = check_hello(self._read(), path)
        #: The daemon's identity in text form.
        self.identity: str = hello["identity"]

    def _read(self) -> dict[str, Any]:
        while True:
            try:
                body = self._buf.next_frame()
                if body is not None:
                    return decode_frame_payload_untrusted(body)
                try:
                    data = self._sock.recv(65536)
                except TimeoutError:
                    raise APIError("the daemon did not answer in time", code="timeout") from None
                if not data:
                    raise APIError(
                        f"the daemon at {self._path} closed the connection", code="closed"
                    )
                self._buf.feed(data)
            except DecodeError as exc:
                raise APIError(f"bad frame from daemon: {exc.message}", code="protocol") from None

    def call(self, method: str, **params: Any) -> Any:
        """Call one API method and return its result."""
        req_id = self._next_id
        self._next_id += 1
        self._sock.sendall(encode_frame({"id": req_id, "method": method, "params": params}))
        while True:
            msg = self._read()
            if msg.get("id") in (req_id, None):
                raise_error(msg)
                return msg.get("result")

    def _ask(self, method: str, params: dict[str, Any]) -> Any:
        """Call ``method`` with the parameters that are not None."""
        return self.call(method, **{k: v for k, v in params.items() if v is not None})

    def _page(self, method: str, params: dict[str, Any]) -> Page:
        def fetch(cursor: str) -> dict[str, Any]:
            return cast("dict[str, Any]", self._ask(method, {**params, "before": cursor}))

        return Page(self._ask(method, params), fetch)

    # -- publishing -------------------------------------------------------------

    def post(
        self,
        text: str,
        *,
        reply_to: str | None = None,
        mentions: Iterable[str] = (),
        tags: Iterable[str] = (),
        lang: str | None = None,
    ) -> Published:
        """Publish a post, optionally as a reply, with mentions and tags.

        Returns:
            ``{"id": hex, "seq": int}``.

        Raises:
            APIError: code ``invalid_argument`` for a text too long (the
                message gives the limit), an unknown reply target or a
                malformed identity.
        """
        params = {"text": text, "reply_to": reply_to, "lang": lang}
        return cast(
            "Published",
            self._ask("post", {**params, "mentions": list(mentions), "tags": list(tags)}),
        )

    def react(self, target: str, emoji: str, *, force: bool = False) -> Published:
        """React to an entry with an emoji.

        Args:
            force: react even to an id this node has never seen.
        """
        return cast(
            "Published",
            self._ask("react", {"target": target, "emoji": emoji, "force": force or None}),
        )

    def repost(self, target: str) -> Published:
        """Repost an entry to this identity's followers."""
        return cast("Published", self._ask("repost", {"target": target}))

    def delete(self, target: str) -> Published:
        """Delete one of this identity's own entries, on every conforming node.

        Raises:
            APIError: code ``invalid_argument`` if the entry is unknown to the
                daemon or is somebody else's.
        """
        return cast("Published", self._ask("delete", {"target": target}))

    def set_profile(self, *, name: str | None = None, bio: str | None = None) -> Published:
        """Publish a new profile; fields left None keep their previous value."""
        return cast("Published", self._ask("set_profile", {"name": name, "bio": bio}))

    # -- graph and policy ---------------------------------------------------------

    def follow(self, identity: str) -> Published:
        """Follow an identity: publish a follow entry and start replicating its feed."""
        return cast("Published", self._ask("follow", {"identity": identity}))

    def unfollow(self, identity: str) -> Published:
        """Stop following an identity (its entries already held are kept)."""
        return cast("Published", self._ask("unfollow", {"identity": identity}))

    def block(self, identity: str, *, public: bool = True, reason: str | None = None) -> Blocked:
        """Block an identity: purge and refuse its payloads on this node.

        Args:
            public: also publish a ``block`` entry, so that subscribers of this
                identity's blocklist adopt it; False keeps it in local policy only.
        """
        params = {"identity": identity, "public": public, "reason": reason}
        return cast("Blocked", self._ask("block", params))

    def unblock(self, identity: str) -> Unblocked:
        """Lift a block (public blocks get an ``unblock`` entry)."""
        return cast("Unblocked", self._ask("unblock", {"identity": identity}))

    def mute(self, identity: str) -> Muted:
        """Hide an identity from this owner's timelines (still stored and relayed)."""
        return cast("Muted", self._ask("mute", {"identity": identity}))

    def unmute(self, identity: str) -> Unmuted:
        """Show a muted identity again."""
        return cast("Unmuted", self._ask("unmute", {"identity": identity}))

    def policy(self) -> dict[str, Any]:
        """This node's moderation policy (the [policy] table of config.toml)."""
        return cast("dict[str, Any]", self._ask("policy", {}))

    def set_policy(self, key: str, value: Any) -> dict[str, Any]:
        """Change one policy setting and save it to config.toml.

        Returns the new policy.
        ``blocked`` and ``muted`` are changed with block/unblock and mute/unmute,
        which also act on stored data.
        """
        return cast("dict[str, Any]", self._ask("set_policy", {"key": key, "value": value}))

    def explain(self, id: str) -> Explained:
        """Why this node holds, hides or refused an entry: which rule, and whose list."""
        return cast("Explained", self._ask("explain", {"id": id}))

    # -- reading ------------------------------------------------------------------

    def timeline(self, *, limit: int = 50, before: str | None = None) -> Page:
        """Own and followed authors' entries, newest first (muted authors hidden).

        ``limit`` is the page size; iterating the result walks every page.
        """
        return self._page("timeline", {"limit": limit, "before": before})

    def feed(
        self,
        identity: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
        kinds: list[str] | None = None,
    ) -> Page:
        """One author's entries, newest first. Peeks at the network when not followed.

        Args:
            kinds: entry kinds to include; default posts and reposts; ``["*"]`` for all.

        Returns:
            A page (iterating it walks every page), plus ``forked`` and
            ``fork_seq``: whether the node holds a proof that the author signed
            two different entries at one seq, and the seq the feed is frozen at.
        """
        params = {"identity": identity, "kinds": kinds, "limit": limit, "before": before}
        return self._page("feed", params)

    def thread(self, id: str) -> Thread:
        """A post with its nested replies, in tree order (each item has a depth)."""
        return cast("Thread", self._ask("thread", {"id": id}))

    def mentions(self, *, limit: int = 50, before: str | None = None) -> Page:
        """Replies to this identity's posts and posts mentioning it, newest first."""
        return self._page("mentions", {"limit": limit, "before": before})

    def search(
        self, query: str, *, author: str | None = None, limit: int = 50, before: str | None = None
    ) -> Page:
        """Full-text search over held posts (words and "phrases")."""
        return self._page(
            "search", {"query": query, "author": author, "limit": limit, "before": before}
        )

    def profile(self, identity: str | None = None) -> Profile:
        """An identity's latest profile, with follow counts as seen by this node."""
        return cast("Profile", self._ask("profile", {"identity": identity}))

    def following(self, identity: str | None = None) -> Identities:
        """Identities this identity follows (from the follow entries held here)."""
        return cast("Identities", self._ask("following", {"identity": identity}))

    def followers(self, identity: str | None = None) -> Identities:
        """Identities seen following this identity."""
        return cast("Identities", self._ask("followers", {"identity": identity}))

    # -- peers and status -----------------------------------------------------------

    def peers(self) -> Peers:
        """Connected peers."""
        return cast("Peers", self._ask("peers", {}))

    def connect(self, host: str, port: int) -> Connected:
        """Open a peer link to host:port now (besides DHT discovery)."""
        return cast("Connected", self._ask("connect", {"host": host, "port": port}))

    def invite(
        self, *, expires_in: int | None = None, recommend: list[str] | None = None
    ) -> dict[str, Any]:
        """This node's invite: one signed line with its identity and addresses."""
        return cast(
            "dict[str, Any]",
            self._ask("invite", {"expires_in": expires_in, "recommend": recommend}),
        )

    def accept_invite(self, invite: str) -> dict[str, Any]:
        """Check an invite, follow its identity, connect to its node and seed the DHT."""
        return cast("dict[str, Any]", self._ask("accept_invite", {"invite": invite}))

    def notifications(
        self, *, limit: int = 50, before: str | None = None, unread: bool = False
    ) -> Page:
        """Replies, mentions, reactions, reposts and follows of this identity, newest first."""
        return self._page(
            "notifications", {"limit": limit, "before": before, "unread": unread or None}
        )

    def mark_notifications_read(self, *, upto: str | None = None) -> dict[str, Any]:
        """Mark notifications read up to ``upto`` (a page's ``mark``), or all of them."""
        return cast("dict[str, Any]", self._ask("mark_notifications_read", {"upto": upto}))

    def suggest(self, *, limit: int = 20) -> dict[str, Any]:
        """People followed by those this identity follows, most-followed first."""
        return cast("dict[str, Any]", self._ask("suggest", {"limit": limit}))

    def search_people(self, query: str, *, limit: int = 20, before: str | None = None) -> Page:
        """Profiles held here whose name or bio contains ``query``, case-insensitively."""
        return self._page("search_people", {"query": query, "limit": limit, "before": before})

    def set_petname(self, name: str, identity: str) -> dict[str, Any]:
        """Give an identity a petname: local and private, never published."""
        return cast(
            "dict[str, Any]", self._ask("set_petname", {"name": name, "identity": identity})
        )

    def petnames(self) -> dict[str, Any]:
        """Every petname: ``{"items": [{"name", "identity", "profile"}]}``, by name."""
        return cast("dict[str, Any]", self._ask("petnames", {}))

    def remove_petname(self, name: str) -> dict[str, Any]:
        """Forget a petname."""
        return cast("dict[str, Any]", self._ask("remove_petname", {"name": name}))

    def sync_progress(self, identity: str | None = None) -> dict[str, Any]:
        """How far each wanted feed (or only ``identity``'s) has caught up."""
        return cast("dict[str, Any]", self._ask("sync_progress", {"identity": identity}))

    def status(self) -> Status:
        """Identity, addresses and counts (the shape ``p2psocial status --json`` prints)."""
        return cast("Status", self._ask("status", {}))

    def statistics(self) -> dict[str, Any]:
        """Counters of every service (drops, rejections, traffic)."""
        return cast("dict[str, Any]", self._ask("statistics", {}))

    # -- watching -------------------------------------------------------------------

    def watch(
        self,
        *,
        kinds: list[str] | None = None,
        authors: list[str] | None = None,
        mentions_me: bool = False,
        idle_timeout: float | None = None,
    ) -> Iterator[Entry]:
        """Subscribe to new entries, then iterate over them as the daemon stores them.

        The subscription is active when this returns, so nothing stored after
        the call is missed. Iteration blocks between events; with
        ``idle_timeout`` it raises APIError (code ``timeout``) after that many
        seconds without one.

        Args:
            kinds: kind names to include (default: all).
            authors: identities to include (default: all).
            mentions_me: only entries that mention or reply to this identity.
        """
        filters = {"kinds": kinds, "authors": authors, "mentions_me": mentions_me or None}
        req_id = self._next_id
        self._next_id += 1
        params = {k: v for k, v in filters.items() if v is not None}
        self._sock.sendall(encode_frame({"id": req_id, "method": "watch", "params": params}))
        while True:
            msg = self._read()
            if msg.get("id") in (req_id, None):
                raise_error(msg)
                break
        self._sock.settimeout(idle_timeout)
        return self._events(req_id)

    def _events(self, req_id: int) -> Iterator[Entry]:
        while True:
            msg = self._read()
            if msg.get("id") not in (req_id, None):
                continue
            raise_error(msg)
            if "event" in msg:
                yield msg["event"]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    api: str | os.PathLike[str] | None = None,
    timeout: float | None = 30.0,
    wait: float = 0.0,
) -> Client:
    """Connect to the daemon of ``data_dir`` (or the socket ``api``).

    Args:
        wait: keep retrying for this many seconds while the daemon starts.

    Raises:
        DaemonNotRunning: nothing answers on the socket (within ``wait``).
        APIError: the daemon speaks another API version.
    """
    path = socket_path(data_dir, api)
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(path))
            return Client(sock, path, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            if time.monotonic() >= deadline:
                why = (
                    "socket not found"
                    if isinstance(exc, FileNotFoundError)
                    else "connection refused"
                )
                raise not_running(path, why) from None
            time.sleep(0.1)
        except BaseException:
            sock.close()
            raise
