"""Fixtures of the NAT testbed (tests/nat/README.md): the lab, UDP probes and
daemons run inside its namespaces.

Without root, ``ip netns`` or nftables the tests skip with the reason; with
``P2PSOCIAL_REQUIRE_NAT=1`` (set by .ci/run) that is a failure instead.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from p2psocial.client import DaemonProcess, DaemonProcessError
from p2psocial.client.spawn import daemon_argv
from tests.daemons import cli_env, run_cli

from . import netlab


def require_testbed() -> None:
    """Skip (or fail, under P2PSOCIAL_REQUIRE_NAT=1) when the testbed cannot run."""
    reason = netlab.unavailable_reason()
    if reason is None:
        return
    if os.environ.get("P2PSOCIAL_REQUIRE_NAT") == "1":
        pytest.fail(f"P2PSOCIAL_REQUIRE_NAT=1, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def lab() -> Iterator[netlab.Lab]:
    """One testbed per test module, removed afterwards whatever happens."""
    require_testbed()
    with netlab.Lab() as built:
        yield built
    assert built.leftovers() == []


#: Bytes read from each process's stdout but not yet returned as a line.
_PENDING: weakref.WeakKeyDictionary[subprocess.Popen[str], bytearray] = weakref.WeakKeyDictionary()


def read_event(proc: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, Any]:
    """The next JSON line ``proc`` prints, within ``timeout`` seconds.

    Reads the pipe's descriptor directly and keeps what follows the line for the
    next call: a buffered ``readline`` may swallow two lines at once, and a
    select on the descriptor would then wait for data that already arrived.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = _PENDING.setdefault(proc, bytearray())
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in pending:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"no output from {proc.args!r} within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                err = proc.stderr.read() if proc.stderr is not None else ""
                raise AssertionError(f"{proc.args!r} ended without output: {err}")
            pending += chunk
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    event: dict[str, Any] = json.loads(line)
    return event


def serve(lab: netlab.Lab, ns: str, bind: str, seconds: float = 30) -> subprocess.Popen[str]:
    """A UDP server in ``ns`` that answers each datagram with where it came from."""
    p = lab.popen(ns, *lab.probe_argv("serve", "--bind", bind, "--seconds", str(seconds)))
    assert "ready" in read_event(p)
    return p


def seen_by(lab: netlab.Lab, ns: str, bind: str, targets: Sequence[str]) -> dict[str, str]:
    """Send from ``bind`` in ``ns`` to each target; returns target -> the
    address the target saw the datagram come from."""
    args = ["probe", "--bind", bind, "--seconds", "5"]
    for t in targets:
        args += ["--to", t]
    out = lab.run(ns, *lab.probe_argv(*args))
    seen = {}
    for line in out.splitlines():
        ev = json.loads(line)
        if "data" in ev:
            seen[ev["from"]] = json.loads(ev["data"])["seen"]
    return seen


def knock(lab: netlab.Lab, ns: str, bind: str, to: str, seconds: float = 3) -> dict[str, Any]:
    """Send to ``to`` from ``bind`` in ``ns``: {"result": reply|refused|unreachable|timeout}."""
    out = lab.run(
        ns, *lab.probe_argv("knock", "--bind", bind, "--to", to, "--seconds", str(seconds))
    )
    result: dict[str, Any] = json.loads(out)
    return result


class NsDaemon:
    """A ``p2psocial daemon`` running in a namespace; its API socket is in its
    data dir, which the test (in the root namespace) reaches directly."""

    def __init__(self, lab: netlab.Lab, ns: str, ip: str, data_dir: Path) -> None:
        self.lab, self.ns, self.ip, self.data_dir = lab, ns, ip, data_dir
        self.identity = ""
        self.process: DaemonProcess | None = None

    def start(
        self,
        bootstrap: Sequence[str] = (),
        timeout: float = 30,
        env: dict[str, str] | None = None,
        *,
        portmap_gateway: str | None = None,
    ) -> NsDaemon:
        """Start the daemon (in ``env``, default the tests' :func:`cli_env`).
        Test daemons map no port unless ``portmap_gateway`` is given: "" for the
        default route's gateway, or HOST:PORT (spec/portmap.md)."""
        env = dict(env or cli_env())
        if portmap_gateway is not None:
            env["P2PSOCIAL_PORTMAP_GATEWAY"] = portmap_gateway
        out = run_cli(self.data_dir, "--json", "init").stdout
        self.identity = str(json.loads(out)["identity"])
        argv = daemon_argv(self.data_dir, listen="0.0.0.0", port=0, dht_port=0, bootstrap=bootstrap)
        log = self.data_dir.parent / f"{self.data_dir.name}.log"
        with log.open("ab") as out_file:
            offset = out_file.tell()
            proc = subprocess.Popen(
                self.lab.exec_argv(self.ns, *argv),
                stdin=subprocess.DEVNULL,
                stdout=out_file,
                stderr=out_file,
                env=env,
            )
        self.process = DaemonProcess(proc, log, offset)
        try:
            self.process.wait_ready(timeout)
        except DaemonProcessError as exc:
            raise AssertionError(f"{exc.message}:\n{self.process.log()}") from None
        return self

    def port(self, which: str) -> int:
        """The port of ``"dht_addr"`` or ``"peer_addr"``."""
        return int(self.status()[which].rpartition(":")[2])

    def addr(self, which: str) -> str:
        """``ip:port`` of this daemon's ``"dht_addr"`` or ``"peer_addr"`` on its namespace's address."""
        return f"{self.ip}:{self.port(which)}"

    def status(self) -> dict[str, Any]:
        [st] = self.cli_json("status")
        return st

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.data_dir, *args, check=check)

    def cli_json(self, *args: str) -> list[dict[str, Any]]:
        out = run_cli(self.data_dir, "--json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process is not None and self.process.proc.poll() is None:
            try:
                self.process.stop()
            except DaemonProcessError:
                self.process.kill()

    def log(self) -> str:
        return self.process.log() if self.process is not None else ""


def start_daemons(lab: netlab.Lab, base: Path, started: dict[str, NsDaemon]) -> None:
    """Start a daemon on each public host (pub1 first, the others bootstrapping
    from it), then one in each home bootstrapping from all three; each goes into
    ``started`` (by host or home name) as soon as it runs, so the caller can stop
    them all whatever happens."""
    ns, ip = lab.public["pub1"]
    started["pub1"] = NsDaemon(lab, ns, ip, base / "pub1").start()
    boot = [started["pub1"].addr("dht_addr")]
    for name in ("pub2", "pub3"):
        ns, ip = lab.public[name]
        started[name] = NsDaemon(lab, ns, ip, base / name).start(boot)
    boot = [started[n].addr("dht_addr") for n in ("pub1", "pub2", "pub3")]
    for name, home in lab.homes.items():
        started[name] = NsDaemon(lab, home.host_ns, home.host_ip, base / name).start(boot)
