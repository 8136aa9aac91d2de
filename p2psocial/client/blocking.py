"""The blocking client: one Unix socket, one request at a time."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
                raise_error(msg)
                break
        self._sock.settimeout(idle_timeout)
        return self._events(req_id)

    def _events(self, req_id: int) -> Iterator[dict[str, Any]]:
        while True:
            msg = self._read()
            if msg.get("id") not in (req_id, None):
                continue
            raise_error(msg)
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
                raise not_running(path, why) from None
            time.sleep(0.1)
        except BaseException:
            sock.close()
            raise
