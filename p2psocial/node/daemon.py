"""``p2psocial daemon``: one node in the foreground, logging to stderr.

* One daemon per data dir, enforced by an flock on ``daemon.lock``.
* Prints one ready line on stderr once every service listens.
* Then says what it does at INFO (:mod:`.activity`): links made and lost,
  feeds caught up, relaying, and a summary line every ten minutes; no kind
  of line more often than once a minute.
* SIGINT or SIGTERM shuts down gracefully (well within 2 s); a second signal
  exits at once.
* On exit, the API socket and the lock file are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import TextIO

import trio

from ..api.ready import format_ready_line
from ..errors import NodeError, P2PSocialError
from .activity import ActivityReporter
from .config import NodeConfig
from .node import open_node

__all__ = ["daemon_lock", "run_daemon"]

log = logging.getLogger("p2psocial.daemon")


@contextlib.contextmanager
def daemon_lock(config: NodeConfig) -> Iterator[None]:
    """Hold the data dir's daemon lock, or raise NodeError naming the holder."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    path = config.lock_path
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise NodeError(
                f"another p2psocial daemon (pid {holder}) is already running on {config.data_dir}",
                reason="locked",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)


def _remember_ports(config: NodeConfig, dht_port: int, peer_port: int) -> None:
    """Write the ports this run bound into config.toml, leaving the rest as saved."""
    saved = NodeConfig.load(config.data_dir)
    saved.port, saved.dht_port = peer_port, dht_port
    try:
        saved.save()
    except OSError as exc:
        log.warning("could not keep the ports in %s: %s", saved.config_path, exc)
        return
    log.info("ports kept for the next start: peer %d, dht %d", peer_port, dht_port)


async def _serve(
    config: NodeConfig, out: TextIO, remember_ports: bool, summary_interval: float | None
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            node_scope = trio.CancelScope()

            async def watch_signals() -> None:
                count = 0
                async for signum in signals:
                    count += 1
                    if count == 1:
                        log.info("%s received, shutting down", signal.Signals(signum).name)
                        node_scope.cancel()
                    else:
                        log.warning("second signal: exiting immediately")
                        os._exit(128 + signum)

            nursery.start_soon(watch_signals)
            with node_scope:
                async with open_node(config) as node:
                    if remember_ports and node.dht_addr and node.peer_addr:
                        config.dht_port, config.port = node.dht_addr[1], node.peer_addr[1]
                        await trio.to_thread.run_sync(
                            _remember_ports, config, config.dht_port, config.port
                        )
                    st = await node.status()
                    print(
                        format_ready_line(
                            identity=st["identity"],
                            node_id=st["node_id"],
                            dht=st["dht_addr"],
                            peer=st["peer_addr"],
                            api=st["api"],
                        ),
                        file=out,
                        flush=True,
                    )
                    reporter = ActivityReporter(
                        node.replicator, node.dht, summary_every=summary_interval
                    )
                    await reporter.run()
            nursery.cancel_scope.cancel()
    log.info("stopped")


def run_daemon(
    config: NodeConfig,
    *,
    out: TextIO = sys.stderr,
    remember_ports: bool = False,
    summary_interval: float | None = None,
) -> None:
    """Run a node until SIGINT/SIGTERM.

    Args:
        remember_ports: write the ports this run binds into config.toml (for
            a first start with no ports configured).
        summary_interval: seconds between summary lines; default
            :func:`~p2psocial.node.activity.summary_interval` (600, or
            ``P2PSOCIAL_TEST_SUMMARY_INTERVAL`` in tests).

    Raises:
        NodeError: the data dir is locked by another daemon, the identity is
            missing, a service cannot start (e.g. a port in use), or a test
            interval variable is not a positive number.
    """
    with daemon_lock(config):
        raise_open_files_limit()
        try:
            trio.run(_serve, config, out, remember_ports, summary_interval)
        except BaseExceptionGroup as group:
            # trio wraps what a service raised on the way out of each nursery;
            # the user needs the one error that says what is wrong.
            cause = _user_error(group)
            if cause is None:
                raise
            raise cause from None
        except OSError as exc:
            raise NodeError(f"cannot start: {exc}", reason="os_error") from None


#: Open files a daemon wants: its links, API clients, a hole punch's sockets
#: (spec/sync.md §12.9: up to 256 at once), the store.
WANTED_OPEN_FILES = 4096


def raise_open_files_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise the soft limit of open files towards ``wanted``, within the hard limit.

    Many systems start processes with a soft limit of 1,024 and a far higher
    hard one; a daemon may raise its own soft limit, as servers commonly do.

    Returns:
        The soft limit now (unchanged where it cannot be raised).
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return soft
        log.debug("open files limit raised from %d to %d", soft, target)
        return target
    return soft


def _user_error(group: BaseExceptionGroup[BaseException]) -> NodeError | P2PSocialError | None:
    """The first error of ``group`` a user can act on, or None if it holds a bug."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, P2PSocialError):
            return exc
    for exc in leaves:
        if isinstance(exc, OSError):
            return NodeError(f"cannot start: {exc}", reason="os_error")
    return None
