"""The local API server: a Unix socket in the data dir, mode 0600.

The wire format and the method table are sans-IO and shared with the client
(:mod:`p2psocial.api`); this module is the node's I/O around them.

Each connection: handshake (version check), then requests handled
concurrently (at most MAX_INFLIGHT at a time per connection), each response
and watch event written by the task that has it, one frame at a time (a
lock per connection). A malformed frame gets an error reply and the
connection is closed; it never affects the daemon or other clients.
"""

from __future__ import annotations

import contextlib
import logging
import os
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

import trio

from ..api.methods import METHODS, check_params
from ..api.protocol import (
    API_NAME,
    API_VERSION,
    FrameBuffer,
    decode_frame_payload_untrusted,
    encode_frame,
)
from ..errors import NodeError, StorageError
from ..protocol.errors import DecodeError, LocalUsageError, P2PSocialError
from .foreground import Foreground
from .views import WatchFilter

__all__ = ["APIServer", "ServedNode"]

log = logging.getLogger("p2psocial.api")

MAX_INFLIGHT = 16
MAX_WATCHES = 8
#: Concurrent client connections; one more is told so and closed.
MAX_CONNECTIONS = 64
HANDSHAKE_TIMEOUT = 10


class ServedNode(Protocol):
    """What the server needs of the node it serves.

    Besides these, every name in :data:`p2psocial.api.methods.METHODS` (but
    ``watch`` and ``unwatch``, which the server handles) is called as an async
    method of the node with the request's params as keyword arguments.
    """

    @property
    def identity_text(self) -> str: ...

    @property
    def foreground(self) -> Foreground: ...

    def subscribe(
        self, flt: WatchFilter
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[dict[str, Any]]]: ...


def error_reply(req_id: Any, code: str, message: str, reason: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if reason:
        err["reason"] = reason
    return {"id": req_id, "error": err}


def _error_from_exception(req_id: Any, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, LocalUsageError):
        return error_reply(req_id, "invalid_argument", exc.message, exc.reason)
    if isinstance(exc, StorageError):
        return error_reply(req_id, "storage_error", exc.message, exc.reason)
    if isinstance(exc, NodeError):
        return error_reply(req_id, "node_error", exc.message, exc.reason)
    if isinstance(exc, P2PSocialError):
        return error_reply(req_id, "invalid_argument", exc.message, exc.reason)
    return error_reply(req_id, "internal", f"internal error: {type(exc).__name__}")


class _Frames:
    """Writes one connection's frames (replies and events), whole and one at a time.

    The task that has a reply writes it: no writer task and channel between,
    which cost every request two more task switches. The tasks that may
    write at once are bounded (MAX_INFLIGHT calls, MAX_WATCHES watches and
    the request loop); a client that reads too slowly holds them in
    ``send`` until it reads, as a full channel did.

    A write cancelled part way (a watch ended while its event waited for a
    slow client to read) leaves a partial frame on the stream, after which
    the client could read nothing right: the whole connection is then ended
    (``connection``, the scope of its tasks).
    """

    __slots__ = ("_connection", "_lock", "_stream")

    def __init__(self, stream: trio.SocketStream, connection: trio.CancelScope) -> None:
        self._stream = stream
        self._connection = connection
        self._lock = trio.Lock()

    async def send(self, msg: dict[str, Any]) -> None:
        """Encode ``msg`` and write it; a reply over the frame limit becomes an error reply.

        Raises:
            trio.BrokenResourceError: the client went.
        """
        try:
            frame = encode_frame(msg)
        except LocalUsageError:  # over the frame limit
            frame = encode_frame(
                error_reply(msg.get("id"), "internal", "reply exceeds the frame limit")
            )
        # The lock's fast path takes no schedule point: send_all has its own.
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()
        try:
            await self._stream.send_all(frame)
        except trio.Cancelled:
            self._connection.cancel()
            raise
        finally:
            self._lock.release()


class APIServer:
    """Serves one Node over a Unix socket."""

    def __init__(self, node: ServedNode, path: Path) -> None:
        self.node = node
        self.path = Path(path)
        self.stats = {
            "connections": 0,
            "refused": 0,
            "requests": 0,
            "errors": 0,
            "malformed": 0,
            "internal_errors": 0,
        }
        self._open = 0

    async def run(self, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            # A stale socket from a crashed daemon; the daemon lock proves that
            # no live daemon owns it.
            os.unlink(self.path)
        # Created 0600 from the start: the umask applies at bind time.
        old = os.umask(0o177)
        try:
            await sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise NodeError(
                f"cannot create the local API socket {self.path}: {exc.strerror or exc}"
                + (
                    " (the path is too long for a Unix socket; use --api)"
                    if len(str(self.path)) > 100
                    else ""
                ),
                reason="api_socket",
            ) from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(64)
        listener = trio.SocketListener(sock)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(self.path)
                while True:
                    stream = await listener.accept()
                    if self._open >= MAX_CONNECTIONS:
                        self.stats["refused"] += 1
                        nursery.start_soon(self._refuse, stream)
                    else:
                        self._open += 1
                        nursery.start_soon(self._serve_connection, stream)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            sock.close()

    async def _refuse(self, stream: trio.SocketStream) -> None:
        async with stream:
            with (
                trio.move_on_after(HANDSHAKE_TIMEOUT),
                contextlib.suppress(trio.BrokenResourceError),
            ):
                await stream.send_all(
                    encode_frame(
                        error_reply(
                            None,
                            "too_many_connections",
                            f"at most {MAX_CONNECTIONS} clients at once",
                        )
                    )
                )

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve_one(stream)
        except Exception:
            # A bug while serving one client ends that client's connection
            # only; it is logged with its traceback and counted, never
            # silent, and the daemon and other clients go on.
            self.stats["internal_errors"] += 1
            log.exception("API connection failed")
        finally:
            self._open -= 1

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        self.stats["connections"] += 1
        buf = FrameBuffer()
        try:
            async with stream, trio.open_nursery() as nursery:
                send = _Frames(stream, nursery.cancel_scope)
                with trio.move_on_after(HANDSHAKE_TIMEOUT):
                    hello = await self._read_message(stream, buf, send)
                    if hello is not None and self._handshake_ok(hello):
                        await send.send(
                            {
                                "api": API_NAME,
                                "version": API_VERSION,
                                "identity": self.node.identity_text,
                            }
                        )
                    elif hello is not None:
                        await send.send(
                            error_reply(
                                None,
                                "version_mismatch",
                                f"this daemon speaks {API_NAME} API version {API_VERSION}; the client "
                                f"sent api={hello.get('api')!r} version={hello.get('version')!r}",
                            )
                        )
                        return
                    else:
                        return
                # Requests still running when the loop ends (EOF, a malformed
                # frame) write their replies before the nursery and the
                # stream close.
                await self._request_loop(stream, buf, send, nursery)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            # The client went (closed, or reset with a reply unread): that
            # connection ends, and that is all. Its tasks fail as a group.
            pass

    @staticmethod
    def _handshake_ok(hello: dict[str, Any]) -> bool:
        return hello.get("api") == API_NAME and hello.get("version") == API_VERSION

    async def _read_message(
        self,
        stream: trio.SocketStream,
        buf: FrameBuffer,
        send: _Frames,
    ) -> dict[str, Any] | None:
        """The next message, or None at EOF or after a malformed frame (reply sent)."""
        while True:
            try:
                body = buf.next_frame()
                if body is not None:
                    return decode_frame_payload_untrusted(body)
                data = await stream.receive_some(65536)
                if not data:
                    return None
                buf.feed(data)
            except DecodeError as exc:
                self.stats["malformed"] += 1
                await send.send(error_reply(None, "malformed_frame", exc.message))
                return None

    async def _request_loop(
        self,
        stream: trio.SocketStream,
        buf: FrameBuffer,
        send: _Frames,
        nursery: trio.Nursery,
    ) -> None:
        inflight = trio.Semaphore(MAX_INFLIGHT)
        watches: dict[int, trio.CancelScope] = {}
        while True:
            msg = await self._read_message(stream, buf, send)
            if msg is None:
                # EOF or a malformed frame: stop streaming; requests already
                # running still get their replies before the writer finishes.
                for scope in list(watches.values()):
                    scope.cancel()
                return
            self.stats["requests"] += 1
            try:
                await self._dispatch(msg, send, nursery, inflight, watches)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise
            except Exception:
                # A bug in handling one request ends that request only.
                self.stats["internal_errors"] += 1
                log.exception("API request failed before dispatch")
                req_id = msg.get("id")
                await send.send(
                    error_reply(
                        req_id if type(req_id) is int else None, "internal", "internal error"
                    )
                )

    async def _dispatch(
        self,
        msg: dict[str, Any],
        send: _Frames,
        nursery: trio.Nursery,
        inflight: trio.Semaphore,
        watches: dict[int, trio.CancelScope],
    ) -> None:
        """Check one request and start it (or reply with why it cannot run)."""
        req_id = msg.get("id")
        method = msg.get("method")
        params = msg.get("params", {})
        if not isinstance(req_id, int) or isinstance(req_id, bool):
            await send.send(error_reply(None, "invalid_request", "request needs an integer id"))
            return
        if type(method) is not str:
            await send.send(error_reply(req_id, "invalid_request", "method must be a string"))
            return
        if method not in METHODS:
            await send.send(error_reply(req_id, "unknown_method", f"no method {method!r}"))
            return
        problem = check_params(method, params)
        if problem:
            await send.send(error_reply(req_id, "invalid_params", problem))
            return
        params = {k: v for k, v in params.items() if v is not None}
        if method == "watch":
            if req_id in watches:
                # The id names the subscription; a second one under it would
                # escape the watch limit and could never be unwatched.
                await send.send(
                    error_reply(req_id, "invalid_request", f"id {req_id} already names a watch")
                )
                return
            if len(watches) >= MAX_WATCHES:
                await send.send(error_reply(req_id, "too_many_watches", f"at most {MAX_WATCHES}"))
                return
            scope = trio.CancelScope()
            watches[req_id] = scope
            nursery.start_soon(self._watch, req_id, params, send, scope, watches)
            return
        if method == "unwatch":
            found = watches.pop(params["subscription"], None)
            if found is not None:
                found.cancel()
            await send.send({"id": req_id, "result": {"unwatched": found is not None}})
            return
        # A free slot is taken without a schedule point (the usual case: the
        # loop yields in its next read anyway); a full connection waits.
        try:
            inflight.acquire_nowait()
        except trio.WouldBlock:
            await inflight.acquire()
        nursery.start_soon(self._call, req_id, method, params, send, inflight)

    async def _call(
        self,
        req_id: int,
        method: str,
        params: dict[str, Any],
        send: _Frames,
        inflight: trio.Semaphore,
    ) -> None:
        try:
            try:
                with self.node.foreground.request():
                    result = await getattr(self.node, method)(**params)
                reply: dict[str, Any] = {"id": req_id, "result": result}
            except Exception as exc:
                self.stats["errors"] += 1
                if not isinstance(exc, P2PSocialError):
                    self.stats["internal_errors"] += 1
                    log.exception("API method %s failed", method)
                reply = _error_from_exception(req_id, exc)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send.send(reply)
        finally:
            inflight.release()

    async def _watch(
        self,
        req_id: int,
        params: dict[str, Any],
        send: _Frames,
        scope: trio.CancelScope,
        watches: dict[int, trio.CancelScope],
    ) -> None:
        try:
            with scope:
                try:
                    flt = WatchFilter.from_params(params)
                except P2PSocialError as exc:
                    await send.send(_error_from_exception(req_id, exc))
                    return
                async with self.node.subscribe(flt) as events:
                    await send.send({"id": req_id, "result": {"subscription": req_id}})
                    async for event in events:
                        await send.send({"id": req_id, "event": event})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            watches.pop(req_id, None)
