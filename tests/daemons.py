"""Real ``p2psocial daemon`` processes for end-to-end tests.

Each daemon gets its own data dir, listens on 127.0.0.1 with ports chosen by
the OS, and is driven only through the CLI or the client, as users drive it.
``Daemon(..., as_user=True)`` instead passes no --listen, --port or
--dht-port, so it runs on exactly the defaults a user gets.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from p2psocial.api.ready import READY_PREFIX
from p2psocial.client import DaemonProcess, DaemonProcessError, cli_argv, daemon_env, spawn_daemon

__all__ = ["READY_PREFIX", "Daemon", "cli_env", "cli_json", "run_cli", "wait_for"]


def cli_env() -> dict[str, str]:
    """The environment of every command a test runs: no P2PSOCIAL_* variable, no
    colour, no LAN discovery (test daemons must not announce on the host's
    links, nor meet each other there; tests of it turn it on), and no port
    mapping (its requests would leave for this machine's router)."""
    return daemon_env(NO_COLOR="1", P2PSOCIAL_LAN_DISCOVERY="off", P2PSOCIAL_PORTMAP_GATEWAY="none")


def run_cli(
    data_dir: Path, *args: str, input: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``p2psocial --data-dir DATA_DIR ARGS`` and return the finished process."""
    proc = subprocess.run(
        cli_argv(*args, data_dir=data_dir),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"p2psocial {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return proc


def cli_json(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    """Run a command with --json and parse its JSON lines."""
    out = run_cli(data_dir, "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Daemon:
    """One daemon process. Call :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bootstrap: list[str] | None = None,
        peers: list[str] | None = None,
        as_user: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.as_user = as_user
        self.bootstrap = bootstrap or []
        self.peers = peers or []
        self.env = env
        self.process: DaemonProcess | None = None
        self.info: dict[str, str] = {}

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc if self.process is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def init(self) -> str:
        out = run_cli(self.data_dir, "--json", "init").stdout
        return str(json.loads(out)["identity"])

    def start(self, timeout: float = 20.0) -> dict[str, str]:
        # as_user: no --listen, --port or --dht-port, exactly as a user runs it.
        listen, port = (None, None) if self.as_user else ("127.0.0.1", 0)
        self.info = {}
        try:
            self.process = spawn_daemon(
                self.data_dir,
                listen=listen,
                port=port,
                dht_port=port,
                bootstrap=self.bootstrap,
                peers=self.peers,
                env=self.env or cli_env(),
                log=self.log_path,
                ready_timeout=timeout,
            )
        except DaemonProcessError as exc:
            raise AssertionError(f"{exc.message}:\n{self.log()}") from None
        self.info = self.process.info
        return self.info

    def addr(self, which: str) -> str:
        """This daemon's ``"dht"`` or ``"peer"`` address as another local node
        should dial it (a wildcard bind is reached through loopback)."""
        assert self.process is not None
        return self.process.addr(which)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Signal the daemon and wait; returns how long it took to exit."""
        assert self.process is not None
        try:
            took = self.process.stop(sig, timeout)
        except DaemonProcessError as exc:
            raise AssertionError(f"{exc.message}:\n{self.log()}") from None
        self.info = {} if sig != signal.SIGKILL else self.info
        return took

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
        self.kill()


@contextlib.contextmanager
def running_daemon(data_dir: Path) -> Iterator[Daemon]:
    """An initialised daemon in ``data_dir``, started, and stopped on exit."""
    d = Daemon(data_dir)
    d.init()
    with d:
        d.start()
        yield d


def wait_for(
    predicate: Any, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
