"""Python clients of a running daemon's local API.

Two flavours with the same methods, named and ordered as the Node's (one per
API method, see ``p2psocial.api.methods.METHODS`` and spec/client-api.md):

* :func:`connect` returns a blocking :class:`Client`, for scripts and threads;
* :func:`connect_async` returns an :class:`AsyncClient`, for trio and asyncio
  programs alike (it runs on anyio).

    with p2psocial.connect() as c:
        c.post("hello")
        for item in c.timeline(limit=10):      # walks every page, 10 at a time
            print(item["author"], item["text"])

Results are typed maps (:mod:`p2psocial.client.results`): plain dicts at run
time, as the daemon sent them. Paged methods return a page that also walks the
following pages when iterated. Failures raise :class:`~p2psocial.errors.APIError`
(``.code`` names the kind of failure); a daemon that is not running raises
:class:`DaemonNotRunning`, whose message names the socket tried and the
command that starts a daemon.

:func:`spawn_daemon` starts a ``p2psocial daemon`` process and waits for its
ready line; the demo, the benches and the tests start every daemon with it.

``MAX_TEXT_CHARS`` is the longest post text a daemon accepts, for programs
that refuse an over-long post before sending it (``p2psocial post`` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol import lazy_exports

if TYPE_CHECKING:
    from ..api.methods import PAGE_LIMIT_MAX
    from ..paths import socket_path
    from ..protocol.kinds import (
        MAX_BIO_CHARS,
        MAX_MENTIONS,
        MAX_NAME_CHARS,
        MAX_REASON_CHARS,
        MAX_TAG_CHARS,
        MAX_TAGS,
        MAX_TEXT_CHARS,
    )
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

#: Public name -> the module that defines it, imported on first access: the
#: blocking client never loads anyio (the async client's), and a program that
#: only reads a limit or catches DaemonNotRunning loads neither client.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PAGE_LIMIT_MAX": "..api.methods",
        "socket_path": "..paths",
        "MAX_BIO_CHARS": "..protocol.kinds",
        "MAX_MENTIONS": "..protocol.kinds",
        "MAX_NAME_CHARS": "..protocol.kinds",
        "MAX_REASON_CHARS": "..protocol.kinds",
        "MAX_TAG_CHARS": "..protocol.kinds",
        "MAX_TAGS": "..protocol.kinds",
        "MAX_TEXT_CHARS": "..protocol.kinds",
        "AsyncClient": ".aio",
        "connect_async": ".aio",
        "Client": ".blocking",
        "connect": ".blocking",
        "DaemonNotRunning": ".handshake",
        "DaemonProcess": ".spawn",
        "DaemonProcessError": ".spawn",
        "cli_argv": ".spawn",
        "daemon_argv": ".spawn",
        "daemon_env": ".spawn",
        "spawn_daemon": ".spawn",
        "stop_daemons": ".spawn",
    },
)


__all__ = [
    "MAX_BIO_CHARS",
    "MAX_MENTIONS",
    "MAX_NAME_CHARS",
    "MAX_REASON_CHARS",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "MAX_TEXT_CHARS",
    "PAGE_LIMIT_MAX",
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
