"""Running a node inside a program: a ready config, and Ctrl-C that stops it quietly.

    async def main():
        config = p2psocial.embedded_config("my-bot", bootstrap=["192.0.2.7:4001"])
        async with p2psocial.open_node(config) as node:
            ...

    p2psocial.run_embedded(main)

:func:`embedded_config` gives a program its own node without ``p2psocial
init`` or edits to config.toml; :func:`run_embedded` is ``trio.run`` that ends
on Ctrl-C with one line instead of the traceback of every task it cancelled.
"""

from __future__ import annotations

import gc
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TextIO

import trio

from ..paths import resolve_data_dir
from .config import NodeConfig
from .keys import create_keys

__all__ = ["INTERRUPTED_EXIT", "embedded_config", "run_embedded"]

#: The exit status after Ctrl-C, as a shell reports a process ended by SIGINT.
INTERRUPTED_EXIT = 130

_WILDCARDS = ("0.0.0.0", "::", "[::]")


def _dialable(addr: str) -> str:
    """``addr`` as a node on this machine dials it: a wildcard bind through loopback."""
    host, sep, port = addr.rpartition(":")
    return f"127.0.0.1:{port}" if sep and host in _WILDCARDS else addr


def embedded_config(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    bootstrap: Iterable[str] = (),
    serve_api: bool = False,
) -> NodeConfig:
    """The config of a node that a program runs itself, ready to pass to ``open_node``.

    Reads the data dir's config.toml when there is one, and on first use
    creates the data dir and an identity (unencrypted), as ``p2psocial init``
    would. A program's node should have a data dir of its own: two nodes must
    not share one, so do not point this at a running daemon's.

    Args:
        data_dir: the node's data dir (default: P2PSOCIAL_HOME or the platform default).
        bootstrap: DHT addresses (``host:port``) to join through, added to
            config.toml's; a wildcard host as a local daemon's ``status``
            prints it (``0.0.0.0:4001``) is dialled through loopback.
        serve_api: also serve the local API on the data dir's socket.

    Raises:
        NodeError: config.toml is unreadable or has a wrongly typed value.
        OSError: the data dir cannot be created or written.
    """
    config = NodeConfig.load(resolve_data_dir(data_dir))
    if not config.identity_path.exists():
        create_keys(config, None)
    for addr in bootstrap:
        if _dialable(addr) not in config.bootstrap:
            config.bootstrap.append(_dialable(addr))
    config.serve_api = serve_api
    return config


def _only_interrupts(group: BaseExceptionGroup[BaseException]) -> bool:
    matched, rest = group.split(KeyboardInterrupt)
    return matched is not None and rest is None


def run_embedded(main: Callable[..., Awaitable[Any]], *args: Any, err: TextIO | None = None) -> Any:
    """``trio.run(main, *args)``, where Ctrl-C stops everything with one line.

    Every task is cancelled as usual, so an ``open_node`` inside ``main``
    closes its store and sockets on the way out. Then one line goes to stderr
    and the program exits with status 130 instead of printing the
    KeyboardInterrupt of each task trio cancelled.

    Returns:
        What ``main`` returned.

    Raises:
        SystemExit: with status 130 after Ctrl-C.
    """
    try:
        return trio.run(main, *args)
    except KeyboardInterrupt:
        pass
    except BaseExceptionGroup as group:
        # A real error raised beside the interrupt must still be seen.
        if not _only_interrupts(group):
            raise
    # An interrupt can come as a task is spawned: its coroutine, never run,
    # then lingers in a reference cycle of the torn-down run and warns at
    # exit. Collect the run's leftovers now, quietly: they were cancelled.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)
        gc.collect()
    print("interrupted: the node stopped", file=err or sys.stderr, flush=True)
    raise SystemExit(INTERRUPTED_EXIT)
