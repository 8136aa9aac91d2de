"""The trio client: one reader task routes replies and events to the calls waiting for them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from ..api.methods import METHODS
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

__all__ = ["AsyncClient", "connect_async"]


class AsyncClient:
    """A trio client; calls may run concurrently from several tasks."""

    def __init__(self, stream: trio.SocketStream, path: Path) -> None:
        self._stream = stream
        self._path = path
        self._buf = FrameBuffer()
        self._next_id = 1
        self._pending: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._send_lock = trio.Lock()
        self.identity = ""

    async def _read(self) -> dict[str, Any] | None:
        while True:
            try:
                body = self._buf.next_frame()
                if body is not None:
                    return decode_frame_payload_untrusted(body)
                data = await self._stream.receive_some(65536)
                if not data:
                    return None
                self._buf.feed(data)
            except DecodeError as exc:
                raise APIError(f"bad frame from daemon: {exc.message}", code="protocol") from None

    async def _send(self, msg: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._stream.send_all(encode_frame(msg))

    async def _reader(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            while True:
                msg = await self._read()
                if msg is None:
                    break
                chan = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
                if chan is not None:
                    # A watcher that does not keep up misses events.
                    with contextlib.suppress(trio.WouldBlock):
                        chan.send_nowait(msg)
        finally:
            for chan in self._pending.values():
                chan.close()

    async def call(self, method: str, **params: Any) -> Any:
        """Call one API method and return its result."""
        req_id = self._next_id
        self._next_id += 1
        send, recv = trio.open_memory_channel[dict[str, Any]](1)
        self._pending[req_id] = send
        try:
            await self._send({"id": req_id, "method": method, "params": params})
            try:
                msg = await recv.receive()
            except trio.EndOfChannel:
                raise APIError(
                    f"the daemon at {self._path} closed the connection", code="closed"
                ) from None
            raise_error(msg)
            return msg.get("result")
        finally:
            del self._pending[req_id]

    async def watch(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Subscribe to new entries; returns once the subscription is active.

        Use as ``async for event in await client.watch(mentions_me=True):``.
        Filters as for :meth:`Client.watch`.
        """
        req_id = self._next_id
        self._next_id += 1
        send, recv = trio.open_memory_channel[dict[str, Any]](256)
        self._pending[req_id] = send
        try:
            await self._send({"id": req_id, "method": "watch", "params": filters})
            try:
                first = await recv.receive()
            except trio.EndOfChannel:
                raise APIError(
                    f"the daemon at {self._path} closed the connection", code="closed"
                ) from None
            raise_error(first)
        except BaseException:
            self._pending.pop(req_id, None)
            raise
        return self._events(req_id, recv)

    async def _events(
        self, req_id: int, recv: trio.MemoryReceiveChannel[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async for msg in recv:
                raise_error(msg)
                if "event" in msg:
                    yield msg["event"]
        finally:
            # Events still in flight for this id are discarded by the reader.
            self._pending.pop(req_id, None)

    def __getattr__(self, name: str) -> Any:
        if name in METHODS and name not in ("watch", "unwatch"):

            async def method(**params: Any) -> Any:
                return await self.call(name, **params)

            method.__name__ = name
            return method
        raise AttributeError(name)


@contextlib.asynccontextmanager
async def connect_async(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    api: str | os.PathLike[str] | None = None,
) -> AsyncIterator[AsyncClient]:
    """``async with connect_async() as client:`` — a trio client of the daemon.

    Raises:
        DaemonNotRunning: nothing answers on the socket.
        APIError: the daemon speaks another API version.
    """
    path = socket_path(data_dir, api)
    try:
        stream = await trio.open_unix_socket(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        why = "socket not found" if isinstance(exc, FileNotFoundError) else "connection refused"
        raise not_running(path, why) from None
    async with stream:
        client = AsyncClient(stream, path)
        await client._send({"api": API_NAME, "version": API_VERSION})
        hello = await client._read()
        if hello is None:
            raise APIError(f"the daemon at {path} closed the connection", code="closed")
        client.identity = check_hello(hello, path)["identity"]
        async with trio.open_nursery() as nursery:
            await nursery.start(client._reader)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
