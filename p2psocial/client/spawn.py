"""Start ``p2psocial daemon`` processes and wait until they serve.

Programs that run daemons of their own (``p2psocial demo``, the benches, the
end-to-end tests) start them here, so that the command line, the environment
and the wait for readiness are written once. A daemon's stdout and stderr go
to a log file; it is ready when its ready line (:mod:`p2psocial.api.ready`)
appears there, and that line gives its addresses.

    with spawn_daemon(data_dir) as daemon:
        with connect(api=daemon.info["api"]) as client:
            client.post(text="hello")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..api.ready import parse_ready_line
from ..errors import LocalUsageError, NodeError

__all__ = [
    "READY_TIMEOUT",
    "STOP_TIMEOUT",
    "DaemonProcess",
    "DaemonProcessError",
    "cli_argv",
    "daemon_argv",
    "daemon_env",
    "spawn_daemon",
    "stop_daemons",
]

#: Seconds a daemon gets to print its ready line. A start opens the store,
#: binds two ports and joins the DHT: well under a second when idle, a few on
#: a loaded test machine.
READY_TIMEOUT = 20.0
#: Seconds a daemon gets to shut down after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
_POLL_S = 0.05

PathLike = str | os.PathLike[str]


class DaemonProcessError(NodeError):
    """A daemon started by :func:`spawn_daemon` exited early, was not ready in
    time, or did not stop when asked (``reason``: ``exited``, ``not_ready`` or
    ``stop_timeout``). The message is one line; :meth:`DaemonProcess.log` has the rest."""


def cli_argv(*args: str, data_dir: PathLike | None = None) -> list[str]:
    """The argv of ``p2psocial [--data-dir DATA_DIR] ARGS`` run by this interpreter."""
    argv = [sys.executable, "-m", "p2psocial"]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    return [*argv, *args]


def daemon_argv(
    data_dir: PathLike | None,
    *,
    listen: str | None = "127.0.0.1",
    port: int | None = 0,
    dht_port: int | None = 0,
    bootstrap: Sequence[str] = (),
    peers: Sequence[str] = (),
    log_level: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv of ``p2psocial daemon`` for ``data_dir``.

    The defaults give a daemon for a local network of test or demo nodes: on
    127.0.0.1, on ports the OS picks. ``None`` leaves a setting out of the
    command line, so config.toml (or the built-in default) applies, as it
    does for a user; ``data_dir=None`` likewise means the user's data dir.

    Args:
        bootstrap: DHT addresses (``--bootstrap``, one each).
        peers: peer-link addresses (``--peer``, one each).
        log_level: ``--log-level``.
        extra_args: appended after everything else.
    """
    args = ["daemon"]
    for option, value in (("--listen", listen), ("--port", port), ("--dht-port", dht_port)):
        if value is not None:
            args += [option, str(value)]
    for b in bootstrap:
        args += ["--bootstrap", b]
    for p in peers:
        args += ["--peer", p]
    if log_level is not None:
        args += ["--log-level", log_level]
    return cli_argv(*args, *extra_args, data_dir=data_dir)


def daemon_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any ``P2PSOCIAL_*`` variable, plus ``overrides``.

    The command reads its options from ``P2PSOCIAL_<OPTION>`` variables and
    the key passphrase from ``P2PSOCIAL_PASSPHRASE``: a daemon started for a
    given data dir must not take another data dir, socket or passphrase from
    the caller's environment.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2PSOCIAL_")}
    env.update(overrides)
    return env


class DaemonProcess:
    """A ``p2psocial daemon`` process started by :func:`spawn_daemon`.

    As a context manager it stops the daemon on exit.
    """

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, log_offset: int) -> None:
        #: The process; its ``returncode`` is set once it has exited.
        self.proc = proc
        #: The file the daemon's stdout and stderr go to.
        self.log_path = log_path
        #: The ready line's fields (``identity``, ``node_id``, ``dht``,
        #: ``peer``, ``api``); empty until :meth:`wait_ready` returns.
        self.info: dict[str, str] = {}
        #: The ready line itself, once seen.
        self.ready_line: str | None = None
        self._offset = log_offset
        self._read_to = log_offset
        self._partial = b""

    def _new_lines(self) -> list[str]:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._read_to)
                data = f.read()
        except FileNotFoundError:
            return []
        self._read_to += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def _scan(self) -> bool:
        for line in self._new_lines():
            info = parse_ready_line(line)
            if info is not None:
                self.info, self.ready_line = info, line
                return True
        return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, str]:
        """Block until the daemon prints its ready line; return its fields.

        Raises:
            DaemonProcessError: the daemon exited first (``exited``) or was
                not ready within ``timeout`` seconds (``not_ready``).
        """
        deadline = time.monotonic() + timeout
        while not self.info:
            exited = self.proc.poll() is not None
            if self._scan():
                break
            if exited:
                raise DaemonProcessError(
                    f"the daemon exited with code {self.proc.returncode} before it was ready",
                    reason="exited",
                )
            if time.monotonic() >= deadline:
                raise DaemonProcessError(
                    f"the daemon was not ready within {timeout:g} s", reason="not_ready"
                )
            time.sleep(_POLL_S)
        return self.info

    def log(self) -> str:
        """What this daemon has written to its log file so far."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def addr(self, which: str) -> str:
        """The ``"dht"`` or ``"peer"`` address as another local program should
        dial it (a wildcard bind is reached through loopback)."""
        host, _, port = self.info[which].rpartition(":")
        if host in ("0.0.0.0", "[::]", "::"):
            host = "127.0.0.1"
        return f"{host}:{port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> float:
        """Send ``sig`` and wait for the daemon to exit; return the seconds it took.

        Raises:
            DaemonProcessError: it did not exit within ``timeout`` seconds
                (``stop_timeout``); it has been killed by then.
        """
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise DaemonProcessError(
                    f"the daemon did not stop within {timeout:g} s and was killed",
                    reason="stop_timeout",
                ) from None
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL the daemon if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_daemon(
    data_dir: PathLike | None,
    *,
    listen: str | None = "127.0.0.1",
    port: int | None = 0,
    dht_port: int | None = 0,
    bootstrap: Sequence[str] = (),
    peers: Sequence[str] = (),
    log_level: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log: PathLike | None = None,
    wait: bool = True,
    ready_timeout: float = READY_TIMEOUT,
) -> DaemonProcess:
    """Start ``p2psocial daemon`` for ``data_dir`` (initialised already).

    The command line is :func:`daemon_argv` of the same arguments. To start
    several daemons at once, pass ``wait=False`` and call
    :meth:`DaemonProcess.wait_ready` on each afterwards.

    Args:
        env: the daemon's whole environment; default :func:`daemon_env`.
        log: the file its stdout and stderr are appended to; default
            ``daemon.log`` in the data dir (which must then be given).
        wait: return only once the daemon is ready.

    Raises:
        LocalUsageError: neither ``data_dir`` nor ``log`` is given.
        DaemonProcessError: with ``wait``, as :meth:`DaemonProcess.wait_ready`;
            the daemon is killed before this is raised.
        OSError: the log file cannot be opened.
    """
    if log is None:
        if data_dir is None:
            raise LocalUsageError("spawn_daemon needs log= when data_dir is None")
        log = Path(data_dir) / "daemon.log"
    log_path = Path(log)
    argv = daemon_argv(
        data_dir,
        listen=listen,
        port=port,
        dht_port=dht_port,
        bootstrap=bootstrap,
        peers=peers,
        log_level=log_level,
        extra_args=extra_args,
    )
    # Appending keeps the logs of earlier runs; the ready line is looked for
    # only past the end they had.
    with log_path.open("ab") as out:
        offset = out.tell()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=dict(env) if env is not None else daemon_env(),
        )
    daemon = DaemonProcess(proc, log_path, offset)
    if wait:
        try:
            daemon.wait_ready(ready_timeout)
        except BaseException:
            daemon.kill()
            raise
    return daemon


def stop_daemons(daemons: Iterable[DaemonProcess], timeout: float = STOP_TIMEOUT) -> None:
    """Stop several daemons at once: SIGTERM to all, then wait for each.

    A daemon still running ``timeout`` seconds after the signal is killed.
    Never raises for a daemon that is slow to stop: this is for clean-up.
    A daemon gets one signal only (a second one makes it exit at once,
    skipping its clean shutdown).
    """
    running = [d for d in daemons if d.proc.poll() is None]
    for d in running:
        d.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for d in running:
        try:
            d.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            d.kill()
