"""The README's "Embedding" examples, run exactly as written against a real daemon.

Each ```python block of the section is written to a file and run with this
interpreter. The only thing a test chooses is which daemon the examples find:
``P2PSOCIAL_HOME`` names its data dir, as it would for a user. The trio
example's own node lives in ``./embedded-node``, so each example runs in a
fresh working directory.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

import p2psocial
from p2psocial.paths import IDENTITY_FILE
from tests.daemons import Daemon, cli_env, running_daemon, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def embedding_blocks(lang: str) -> list[str]:
    """The ``lang`` code blocks of README.md between "## Embedding" and the next section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Embedding\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{lang}\n(.*?)^```$", section, flags=re.S | re.M)


def python_example(marker: str) -> str:
    [block] = [b for b in embedding_blocks("python") if marker in b]
    return block


class Running:
    """An example as a process, with its stdout collected line by line as it comes."""

    def __init__(self, code: str, cwd: Path, daemon: Daemon) -> None:
        script = cwd / "example.py"
        script.write_text(code, encoding="utf-8")
        env = cli_env()
        env["P2PSOCIAL_HOME"] = str(daemon.data_dir)
        # -u: a pipe would otherwise hold the example's prints back.
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(script)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._err: list[str] = []
        # One reader per pipe, and nothing else reads them (communicate()
        # would race the stdout reader for lines).
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe: IO[str] | None, into: list[str]) -> None:
        assert pipe is not None
        for line in pipe:
            into.append(line.rstrip("\n"))

    def printed(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        """Wait for the exit; returns the exit status and stderr."""
        self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout)
        return self.proc.returncode, "".join(line + "\n" for line in self._err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("readme") / "node") as d:
        yield d


MARKERS = ["p2psocial.connect()", "asyncio.run(main())", "p2psocial.run_embedded(main)"]


def test_the_section_has_the_examples_it_promises() -> None:
    blocks = embedding_blocks("python")
    assert len(blocks) == len(MARKERS)
    for marker in MARKERS:
        assert sum(marker in b for b in blocks) == 1, marker


def test_blocking_example(daemon: Daemon, tmp_path: Path) -> None:
    run = Running(python_example("p2psocial.connect()"), tmp_path, daemon)
    try:
        wait_for(lambda: run.printed("hello from a script"), what="the timeline printed")
        with p2psocial.connect(daemon.data_dir) as c:
            # The example subscribes after printing; mention until it has.
            wait_for(
                lambda: (
                    c.post("are you there?", mentions=[c.identity])
                    and run.printed("new mention: are you there?")
                ),
                interval=0.3,
                what="the mention printed by the watch",
            )
    finally:
        run.kill()


def test_asyncio_example(daemon: Daemon, tmp_path: Path) -> None:
    run = Running(python_example("asyncio.run(main())"), tmp_path, daemon)
    try:
        status, err = run.finish()
        assert status == 0, err
        assert run.printed("hello from asyncio")
    finally:
        run.kill()


def test_trio_example_joins_through_the_daemon_and_stops_on_ctrl_c(
    daemon: Daemon, tmp_path: Path
) -> None:
    run = Running(python_example("p2psocial.run_embedded(main)"), tmp_path, daemon)
    try:
        wait_for(lambda: run.printed("posted "), timeout=30, what="the embedded node's post")
        # Its own node, with an identity made on first use: not the daemon's.
        assert (tmp_path / "embedded-node" / IDENTITY_FILE).exists()
        assert not run.printed(daemon.info["identity"])
        run.proc.send_signal(signal.SIGINT)
        status, err = run.finish()
        assert status == 130
        assert err.strip().splitlines() == ["interrupted: the node stopped"], err
    finally:
        run.kill()


def test_reply_bot_fails_at_once_without_a_daemon(tmp_path: Path) -> None:
    [command] = [b for b in embedding_blocks("sh") if "reply_bot.py" in b]
    assert command.split("#")[0].split() == ["python", "examples/reply_bot.py"]
    env = cli_env()
    env["P2PSOCIAL_HOME"] = str(tmp_path / "no-daemon")
    proc = subprocess.run(
        [sys.executable, "examples/reply_bot.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=5,  # it used to wait 10 s in silence
    )
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert (
        "no p2psocial daemon" in line and f"p2psocial --data-dir {tmp_path / 'no-daemon'}" in line
    )
