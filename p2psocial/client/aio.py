"""The async client: runs under trio or asyncio (through anyio).

One reader task routes replies and events to the calls waiting for them, so
calls may run concurrently from several tasks. Its methods are the blocking
:class:`~p2psocial.client.Client`'s, awaited, with the same signatures and
docstrings.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, cast

import anyio
from anyio.abc import SocketStream, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

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
from .blocking import Client
from .handshake import check_hello, not_running, raise_error
from .results import (
    AsyncPage,
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

__all__ = ["AsyncClient", "connect_async"]

#: Events a watch buffers for a task that is slow to take them; beyond it they are missed.
WATCH_BUFFER = 256


class AsyncClient:
    """An async client of the daemon, for trio and asyncio programs alike.

    Open it with :func:`connect_async`. Calls may run concurrently from several tasks.
    """

    def __init__(self, stream: SocketStream, path: Path) -> None:
        self._stream = stream
        self._path = path
        self._buf = FrameBuffer()
        self._next_id = 1
        self._pending: dict[int, MemoryObjectSendStream[dict[str, Any]]] = {}
        self._send_lock = anyio.Lock()
        #: Set once the reader has stopped: no reply can come any more.
        self._done = False
        #: The daemon's identity in text form.
        self.identity = ""

    async def _read(self) -> dict[str, Any] | None:
        while True:
            try:
                body = self._buf.next_frame()
                if body is not None:
                    return decode_frame_payload_untrusted(body)
                try:
                    data = await self._stream.receive(65536)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return None
                self._buf.feed(data)
            except DecodeError as exc:
                raise APIError(f"bad frame from daemon: {exc.message}", code="protocol") from None

    async def _send(self, msg: dict[str, Any]) -> None:
        async with self._send_lock:
            try:
                await self._stream.send(encode_frame(msg))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                # The daemon went: callers get the typed error, as for a
                # connection that ended while they waited.
                raise self._closed() from None

    async def _reader(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                msg = await self._read()
                if msg is None:
                    break
                chan = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
                if chan is not None:
                    # A watcher that does not keep up misses events.
                    with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError):
                        chan.send_nowait(msg)
        finally:
            self._done = True
            for chan in self._pending.values():
                chan.close()

    def _closed(self) -> APIError:
        return APIError(f"the daemon at {self._path} closed the connection", code="closed")

    async def _open(
        self, method: str, params: dict[str, Any], buffer: int
    ) -> tuple[int, MemoryObjectReceiveStream[dict[str, Any]], dict[str, Any]]:
        """Send a request; return its id, the stream of its replies and the first reply."""
        req_id = self._next_id
        self._next_id += 1
        send, recv = anyio.create_memory_object_stream[dict[str, Any]](buffer)
        if self._done:
            # The connection ended before this request: its reader, which
            # closes the streams of waiting requests, is gone already.
            send.close()
            recv.close()
            raise self._closed()
        self._pending[req_id] = send
        try:
            await self._send({"id": req_id, "method": method, "params": params})
            try:
                first = await recv.receive()
            except anyio.EndOfStream:
                raise self._closed() from None
            raise_error(first)
        except BaseException:
            self._pending.pop(req_id, None)
            recv.close()
            raise
        return req_id, recv, first

    async def call(self, method: str, **params: Any) -> Any:
        """Call one API method and return its result."""
        req_id, recv, reply = await self._open(method, params, 1)
        self._pending.pop(req_id, None)
        recv.close()
        return reply.get("result")

    async def _ask(self, method: str, params: dict[str, Any]) -> Any:
        return await self.call(method, **{k: v for k, v in params.items() if v is not None})

    async def _page(self, method: str, params: dict[str, Any]) -> AsyncPage:
        async def fetch(cursor: str) -> dict[str, Any]:
            return cast("dict[str, Any]", await self._ask(method, {**params, "before": cursor}))

        return AsyncPage(await self._ask(method, params), fetch)

    # -- publishing -------------------------------------------------------------

    async def post(
        self,
        text: str,
        *,
        reply_to: str | None = None,
        mentions: Iterable[str] = (),
        tags: Iterable[str] = (),
        lang: str | None = None,
    ) -> Published:
        params = {"text": text, "reply_to": reply_to, "lang": lang}
        return cast(
            "Published",
            await self._ask("post", {**params, "mentions": list(mentions), "tags": list(tags)}),
        )

    async def react(self, target: str, emoji: str, *, force: bool = False) -> Published:
        return cast(
            "Published",
            await self._ask("react", {"target": target, "emoji": emoji, "force": force or None}),
        )

    async def repost(self, target: str) -> Published:
        return cast("Published", await self._ask("repost", {"target": target}))

    async def delete(self, target: str) -> Published:
        return cast("Published", await self._ask("delete", {"target": target}))

    async def set_profile(self, *, name: str | None = None, bio: str | None = None) -> Published:
        return cast("Published", await self._ask("set_profile", {"name": name, "bio": bio}))

    # -- graph and policy ---------------------------------------------------------

    async def follow(self, identity: str) -> Published:
        return cast("Published", await self._ask("follow", {"identity": identity}))

    async def unfollow(self, identity: str) -> Published:
        return cast("Published", await self._ask("unfollow", {"identity": identity}))

    async def block(
        self, identity: str, *, public: bool = True, reason: str | None = None
    ) -> Blocked:
        params = {"identity": identity, "public": public, "reason": reason}
        return cast("Blocked", await self._ask("block", params))

    async def unblock(self, identity: str) -> Unblocked:
        return cast("Unblocked", await self._ask("unblock", {"identity": identity}))

    async def mute(self, identity: str) -> Muted:
        return cast("Muted", await self._ask("mute", {"identity": identity}))

    async def unmute(self, identity: str) -> Unmuted:
        return cast("Unmuted", await self._ask("unmute", {"identity": identity}))

    async def policy(self) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._ask("policy", {}))

    async def set_policy(self, key: str, value: Any) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._ask("set_policy", {"key": key, "value": value}))

    async def explain(self, id: str) -> Explained:
        return cast("Explained", await self._ask("explain", {"id": id}))

    # -- reading ------------------------------------------------------------------

    async def timeline(self, *, limit: int = 50, before: str | None = None) -> AsyncPage:
        return await self._page("timeline", {"limit": limit, "before": before})

    async def feed(
        self,
        identity: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
        kinds: list[str] | None = None,
    ) -> AsyncPage:
        params = {"identity": identity, "kinds": kinds, "limit": limit, "before": before}
        return await self._page("feed", params)

    async def thread(self, id: str) -> Thread:
        return cast("Thread", await self._ask("thread", {"id": id}))

    async def mentions(self, *, limit: int = 50, before: str | None = None) -> AsyncPage:
        return await self._page("mentions", {"limit": limit, "before": before})

    async def search(
        self, query: str, *, author: str | None = None, limit: int = 50, before: str | None = None
    ) -> AsyncPage:
        return await self._page(
            "search", {"query": query, "author": author, "limit": limit, "before": before}
        )

    async def profile(self, identity: str | None = None) -> Profile:
        return cast("Profile", await self._ask("profile", {"identity": identity}))

    async def following(self, identity: str | None = None) -> Identities:
        return cast("Identities", await self._ask("following", {"identity": identity}))

    async def followers(self, identity: str | None = None) -> Identities:
        return cast("Identities", await self._ask("followers", {"identity": identity}))

    # -- peers and status -----------------------------------------------------------

    async def peers(self) -> Peers:
        return cast("Peers", await self._ask("peers", {}))

    async def connect(self, host: str, port: int) -> Connected:
        return cast("Connected", await self._ask("connect", {"host": host, "port": port}))

    async def invite(
        self, *, expires_in: int | None = None, recommend: list[str] | None = None
    ) -> dict[str, Any]:
        """This node's invite: one signed line with its identity and addresses."""
        return cast(
            "dict[str, Any]",
            await self._ask("invite", {"expires_in": expires_in, "recommend": recommend}),
        )

    async def accept_invite(self, invite: str) -> dict[str, Any]:
        """Check an invite, follow its identity, connect to its node and seed the DHT."""
        return cast("dict[str, Any]", await self._ask("accept_invite", {"invite": invite}))

    async def notifications(
        self, *, limit: int = 50, before: str | None = None, unread: bool = False
    ) -> AsyncPage:
        """Replies, mentions, reactions, reposts and follows of this identity, newest first."""
        return await self._page(
            "notifications", {"limit": limit, "before": before, "unread": unread or None}
        )

    async def mark_notifications_read(self, *, upto: str | None = None) -> dict[str, Any]:
        """Mark notifications read up to ``upto`` (a page's ``mark``), or all of them."""
        return cast("dict[str, Any]", await self._ask("mark_notifications_read", {"upto": upto}))

    async def suggest(self, *, limit: int = 20) -> dict[str, Any]:
        """People followed by those this identity follows, most-followed first."""
        return cast("dict[str, Any]", await self._ask("suggest", {"limit": limit}))

    async def search_people(
        self, query: str, *, limit: int = 20, before: str | None = None
    ) -> AsyncPage:
        """Profiles held here whose name or bio contains ``query``, case-insensitively."""
        return await self._page("search_people", {"query": query, "limit": limit, "before": before})

    async def set_petname(self, name: str, identity: str) -> dict[str, Any]:
        """Give an identity a petname: local and private, never published."""
        return cast(
            "dict[str, Any]", await self._ask("set_petname", {"name": name, "identity": identity})
        )

    async def petnames(self) -> dict[str, Any]:
        """Every petname: ``{"items": [{"name", "identity", "profile"}]}``, by name."""
        return cast("dict[str, Any]", await self._ask("petnames", {}))

    async def remove_petname(self, name: str) -> dict[str, Any]:
        """Forget a petname."""
        return cast("dict[str, Any]", await self._ask("remove_petname", {"name": name}))

    async def sync_progress(self, identity: str | None = None) -> dict[str, Any]:
        """How far each wanted feed (or only ``identity``'s) has caught up."""
        return cast("dict[str, Any]", await self._ask("sync_progress", {"identity": identity}))

    async def status(self) -> Status:
        return cast("Status", await self._ask("status", {}))

    async def statistics(self) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._ask("statistics", {}))

    # -- watching -------------------------------------------------------------------

    async def watch(
        self,
        *,
        kinds: list[str] | None = None,
        authors: list[str] | None = None,
        mentions_me: bool = False,
    ) -> AsyncIterator[Entry]:
        """Subscribe to new entries; returns once the subscription is active.

        Use as ``async for event in await client.watch(mentions_me=True):``.
        Filters as for :meth:`Client.watch`. A task that falls more than
        ``WATCH_BUFFER`` events behind misses events.
        """
        filters = {"kinds": kinds, "authors": authors, "mentions_me": mentions_me or None}
        params = {k: v for k, v in filters.items() if v is not None}
        req_id, recv, _ = await self._open("watch", params, WATCH_BUFFER)
        return self._events(req_id, recv)

    async def _events(
        self, req_id: int, recv: MemoryObjectReceiveStream[dict[str, Any]]
    ) -> AsyncIterator[Entry]:
        try:
            async for msg in recv:
                raise_error(msg)
                if "event" in msg:
                    yield msg["event"]
        finally:
            # Events still in flight for this id are discarded by the reader.
            self._pending.pop(req_id, None)
            recv.close()


def _share_docs() -> None:
    """Give each AsyncClient method the docstring of its blocking twin (written once)."""
    for name, method in vars(AsyncClient).items():
        twin = getattr(Client, name, None)
        if callable(method) and not name.startswith("_") and method.__doc__ is None and twin:
            method.__doc__ = twin.__doc__


_share_docs()


@contextlib.asynccontextmanager
async def connect_async(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    api: str | os.PathLike[str] | None = None,
) -> AsyncIterator[AsyncClient]:
    """``async with connect_async() as client:``: an async client of the daemon.

    Works under trio and asyncio alike (whichever runs the calling code).

    Raises:
        DaemonNotRunning: nothing answers on the socket.
        APIError: the daemon speaks another API version.
    """
    path = socket_path(data_dir, api)
    try:
        stream = await anyio.connect_unix(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        why = "socket not found" if isinstance(exc, FileNotFoundError) else "connection refused"
        raise not_running(path, why) from None
    async with stream:
        client = AsyncClient(stream, path)
        await client._send({"api": API_NAME, "version": API_VERSION})
        hello = await client._read()
        if hello is None:
            raise client._closed()
        client.identity = check_hello(hello, path)["identity"]
        async with anyio.create_task_group() as tasks:
            await tasks.start(client._reader)
            try:
                yield client
            finally:
                tasks.cancel_scope.cancel()
