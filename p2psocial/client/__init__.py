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

:func:`spawn_daemon` starts a ``p2psocial daemon`` process and waits for its
ready line; the demo, the benches and the tests start every daemon with it.

``MAX_TEXT_CHARS`` is the longest post text a daemon accepts, for programs
that refuse an over-long post before sending it (``p2psocial post`` does).
"""

from __future__ import annotations

from ..paths import socket_path
from ..protocol.kinds import MAX_TEXT_CHARS
from .aio import AsyncClient, connect_async
from .blocking import Client, connect
from .handshake import DaemonNotRunning
from .spawn import (
    DaemonProcess,
    DaemonProcessError,
    cli_argv,
    daemon_argv,
    daemon_env,
    spawn_daemon,
    stop_daemons,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "AsyncClient",
    "Client",
    "DaemonNotRunning",
    "DaemonProcess",
    "DaemonProcessError",
    "cli_argv",
    "connect",
    "connect_async",
    "daemon_argv",
    "daemon_env",
    "socket_path",
    "spawn_daemon",
    "stop_daemons",
]
