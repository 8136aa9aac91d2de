"""Byte-stream helpers for the relay: exact reads, and a stream with bytes put back.

The link port serves several transports (spec/sync.md §10.1, §11), so the
first six bytes of an inbound connection are read before anyone knows who
handles it. :class:`PrefixedStream` hands those bytes, and any read past
them, to whoever does.
"""

from __future__ import annotations

import trio

__all__ = ["PrefixedStream", "StreamEnded", "StreamReader"]

_CHUNK = 64 * 1024


class StreamEnded(Exception):
    """The stream ended (``eof``) or broke (``broken``) before the bytes wanted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StreamReader:
    """Reads exact byte counts from a trio stream, keeping what came after.

    Args:
        stream: the connection.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()

    async def exactly(self, n: int) -> bytes:
        """The next ``n`` bytes; the caller bounds the time.

        Raises:
            StreamEnded: the stream ended (``eof``) or broke (``broken``) first.
        """
        while len(self._buf) < n:
            try:
                data = await self.stream.receive_some(_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise StreamEnded("broken") from exc
            if not data:
                raise StreamEnded("eof")
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def rest(self) -> bytes:
        """The bytes read past the last :meth:`exactly`, handed over once."""
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def stream_with_rest(self) -> PrefixedStream:
        """The stream, with :meth:`rest` put back in front of it."""
        return PrefixedStream(self.stream, self.rest())


class PrefixedStream(trio.abc.Stream):
    """A trio stream whose first reads return ``prefix``.

    Args:
        stream: the underlying connection (closed with this one).
        prefix: bytes already read from it.
    """

    def __init__(self, stream: trio.abc.Stream, prefix: bytes = b"") -> None:
        self.inner = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The prefix first (up to ``max_bytes``), then the stream's own bytes."""
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            await trio.lowlevel.checkpoint()
            return out
        return bytes(await self.inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send on the underlying stream."""
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As the underlying stream's."""
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self.inner.aclose()
