"""Python clients of a running daemon's local API.

Two flavours with the same methods (one per API method, see
``p2psocial.api.methods.METHODS`` and spec/client-api.md):

* :func:`connect` returns a blocking :class:`Client`, for scripts, threads,
  and asyncio programs (call it from a worker thread);
* :func:`connect_async` returns an :class:`AsyncClient` for trio programs.

    with p2psocial.connect() as c:
        c.post(text="hello")
        for item in c.timeline(limit=10)["items"]:
            print(item["author"], item["text"])

Parameters are keyword arguments named as in the API table. Results are
JSON-friendly maps. Failures raise :class:`~p2psocial.errors.APIError`
(``.code`` names the kind of failure); a daemon that is not running raises
:class:`DaemonNotRunning`, whose message names the socket tried and the
command that starts a daemon.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import trio

from .api.methods import METHODS
from .api.protocol import (
    API_NAME,
    API_VERSION,
    FrameBuffer,
    decode_frame_payload_untrusted,
    encode_frame,
)
from .errors import APIError
from .paths import socket_path
from .protocol.errors import DecodeError

__all__ = ["AsyncClient", "Client", "DaemonNotRunning", "connect", "connect_async", "socket_path"]


class DaemonNotRunning(APIError):
    """No daemon answers on the API socket."""


def _not_running(path: Path, why: str) -> DaemonNotRunning:
    data_dir = path.parent
    return DaemonNotRunning(
        f"no p2psocial daemon at {path} ({why}); start one with: p2psocial --data-dir {data_dir} daemon",
        code="daemon_not_running",
    )


def _raise_error(msg: dict[str, Any]) -> None:
    err = msg.get("error")
    if isinstance(err, dict):
        raise APIError(
            str(err.get("message", "error")),
            code=str(err.get("code", "error")),
            reason=err.get("reason"),
        )


def _handshake_reply(msg: dict[str, Any], path: Path) -> dict[str, Any]:
    _raise_error(msg)
    if msg.get("api") != API_NAME or msg.get("version") != API_VERSION:
        raise APIError(
            f"{path} answered with an unexpected handshake {msg!r}", code="version_mismatch"
        )
    return msg


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
        hello = _handshake_reply(self._read(), path)
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
                _raise_error(msg)
                return msg.get("result")

    def watch(
        self, *, idle_timeout: float | None = None, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Subscribe to new entries, then iterate over them as the daemon stores them.

        The subscription is active when this returns, so nothing stored after
        the call is missed. Iteration blocks between events; with
        ``idle_timeout`` it raises APIError (code ``timeout``) after that many
        seconds without one.

        Args:
            filters: ``kinds`` (list of kind names), ``authors`` (identities),
                ``mentions_me`` (bool).
        """
        req_id = self._next_id
        self._next_id += 1
        self._sock.sendall(encode_frame({"id": req_id, "method": "watch", "params": filters}))
        while True:
            msg = self._read()
            if msg.get("id") in (req_id, None):
                _raise_error(msg)
                break
        self._sock.settimeout(idle_timeout)
        return self._events(req_id)

    def _events(self, req_id: int) -> Iterator[dict[str, Any]]:
        while True:
            msg = self._read()
            if msg.get("id") not in (req_id, None):
                continue
            _raise_error(msg)
            if "event" in msg:
                yield msg["event"]

    def __getattr__(self, name: str) -> Any:
        if name in METHODS and name not in ("watch", "unwatch"):

            def method(**params: Any) -> Any:
                return self.call(name, **params)

            method.__name__ = name
            return method
        raise AttributeError(name)

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
                raise _not_running(path, why) from None
            time.sleep(0.1)
        except BaseException:
            sock.close()
            raise


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
            _raise_error(msg)
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
            _raise_error(first)
        except BaseException:
            self._pending.pop(req_id, None)
            raise
        return self._events(req_id, recv)

    async def _events(
        self, req_id: int, recv: trio.MemoryReceiveChannel[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async for msg in recv:
                _raise_error(msg)
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
        raise _not_running(path, why) from None
    async with stream:
        client = AsyncClient(stream, path)
        await client._send({"api": API_NAME, "version": API_VERSION})
        hello = await client._read()
        if hello is None:
            raise APIError(f"the daemon at {path} closed the connection", code="closed")
        client.identity = _handshake_reply(hello, path)["identity"]
        async with trio.open_nursery() as nursery:
            await nursery.start(client._reader)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
