"""Real ``p2psocial daemon`` processes for end-to-end tests.

Each daemon gets its own data dir, listens on 127.0.0.1 with ports chosen by
the OS, and is driven only through the CLI or the client, as users drive it.
``Daemon(..., as_user=True)`` instead passes no --listen, --port or
--dht-port, so it runs on exactly the defaults a user gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

READY_PREFIX = "p2psocial ready"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("P2PSOCIAL_HOME", "P2PSOCIAL_PASSPHRASE", "P2PSOCIAL_API", "P2PSOCIAL_JSON"):
        env.pop(key, None)
    env["NO_COLOR"] = "1"
    return env


def run_cli(
    data_dir: Path, *args: str, input: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``p2psocial --data-dir DATA_DIR ARGS`` and return the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "p2psocial", "--data-dir", str(data_dir), *args],
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
    ) -> None:
        self.data_dir = data_dir
        self.as_user = as_user
        self.bootstrap = bootstrap or []
        self.peers = peers or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, str] = {}

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def init(self) -> str:
        out = run_cli(self.data_dir, "--json", "init").stdout
        return str(json.loads(out)["identity"])

    def start(self, timeout: float = 20.0) -> dict[str, str]:
        args = [
            sys.executable,
            "-m",
            "p2psocial",
            "--data-dir",
            str(self.data_dir),
            "daemon",
        ]
        if not self.as_user:
            args += ["--listen", "127.0.0.1", "--port", "0", "--dht-port", "0"]
        for b in self.bootstrap:
            args += ["--bootstrap", b]
        for p in self.peers:
            args += ["--peer", p]
        self.info = {}
        offset = len(self.log())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=cli_env()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            for line in self.log()[offset:].splitlines():
                if line.startswith(READY_PREFIX):
                    self.info = dict(
                        kv.split("=", 1) for kv in line[len(READY_PREFIX) :].split() if "=" in kv
                    )
            if self.info:
                return self.info
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready within {timeout} s:\n{self.log()}")

    def addr(self, which: str) -> str:
        """This daemon's ``"dht"`` or ``"peer"`` address as another local node
        should dial it (a wildcard bind is reached through loopback)."""
        host, _, port = self.info[which].rpartition(":")
        if host in ("0.0.0.0", "[::]", "::"):
            host = "127.0.0.1"
        return f"{host}:{port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Signal the daemon and wait; returns how long it took to exit."""
        assert self.proc is not None
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"daemon did not stop within {timeout} s:\n{self.log()}"
                ) from None
        self.info = {} if sig != signal.SIGKILL else self.info
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
        self.kill()


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
