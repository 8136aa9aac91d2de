"""Smoke run: ``p2psocial tui`` in a real terminal (tmux), its screen captured as text.

Starts a daemon in a temporary data dir, publishes a few posts, runs
``p2psocial --data-dir DIR tui`` in a detached tmux session of ``--size``
columns x rows, waits for the newest post to be on screen, and prints the
screen; then opens the help overlay and the compose box and prints those.
``--out FILE`` also writes the captures there. Exits non-zero if the TUI does
not show the post within ``--timeout`` seconds.

Run: ``python bench/tui_smoke.py [--size 100x30] [--out FILE]`` (needs tmux).
Also used by bench/tui.py, which times the same start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2psocial.client import cli_argv, connect, daemon_env, spawn_daemon

__all__ = ["Tmux", "tmux_session"]

#: Seconds between screen captures while waiting.
POLL_S = 0.01


class Tmux:
    """One detached tmux session running a command in a terminal of a fixed size."""

    def __init__(self, name: str) -> None:
        self.name = name

    def capture(self) -> str:
        """The screen's text now."""
        done = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout

    def keys(self, *keys: str) -> None:
        """Type ``keys`` (tmux key names: ``q``, ``Enter``, ``Escape``, ``?``)."""
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, text: str, timeout: float) -> float:
        """Seconds until ``text`` is on screen.

        Raises:
            TimeoutError: not within ``timeout`` seconds (the last screen in the message).
        """
        start = time.perf_counter()
        while True:
            if text in self.capture():
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{text!r} not on screen after {timeout} s:\n{self.capture()}")
            time.sleep(POLL_S)


@contextlib.contextmanager
def tmux_session(argv: list[str], size: tuple[int, int], env: dict[str, str]) -> Iterator[Tmux]:
    """Run ``argv`` in a new detached tmux session; kill the session on exit."""
    name = f"p2ps-tui-{os.getpid()}-{time.monotonic_ns()}"
    command = " ".join(shlex.quote(a) for a in argv)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            str(size[0]),
            "-y",
            str(size[1]),
            f"env {exports} {command}",
        ],
        check=True,
    )
    try:
        yield Tmux(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False, capture_output=True)


def tui_env() -> dict[str, str]:
    """What the TUI runs with: the daemon's environment, a colour terminal."""
    env = {
        k: v
        for k, v in daemon_env().items()
        if k.startswith(("P2PSOCIAL", "PYTHON", "PATH", "HOME", "VIRTUAL_ENV", "LANG", "LC_"))
    }
    env["TERM"] = "xterm-256color"
    env.pop("NO_COLOR", None)
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="100x30", help="COLUMNSxROWS of the terminal")
    ap.add_argument("--out", default=None, help="also write the captured screens here")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed")
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="p2ps-tui-smoke-"))
    shots: list[str] = []
    try:
        data_dir = work / "node"
        subprocess.run(cli_argv("init", data_dir=data_dir), check=True, capture_output=True)
        with spawn_daemon(data_dir, log=work / "daemon.log") as daemon:
            with connect(api=daemon.info["api"]) as client:
                client.set_profile(name="Smoke Tester", bio="runs the tmux smoke test")
                client.post("the first post, to have something to scroll #smoke")
                client.post("a second one: names instead of keys, times relative")
                last = "the newest post: if you can read this, the TUI is up"
                client.post(last)
            argv = cli_argv("tui", data_dir=data_dir)
            with tmux_session(argv, (cols, rows), tui_env()) as tmux:
                took = tmux.wait_for(last, args.timeout)
                shots.append(f"--- home ({took:.2f} s to the first screen) ---\n{tmux.capture()}")
                tmux.keys("?")
                tmux.wait_for("Everywhere", args.timeout)
                shots.append(f"--- help ---\n{tmux.capture()}")
                # A lone escape byte followed at once by "c" reads as alt+c.
                tmux.keys("Escape")
                time.sleep(0.3)
                tmux.keys("c")
                tmux.wait_for("New post", args.timeout)
                tmux.keys("-l", "typing in the compose box #sm")
                tmux.wait_for("29/2000", args.timeout)
                shots.append(f"--- compose ---\n{tmux.capture()}")
                tmux.keys("Escape")
                time.sleep(0.3)
                tmux.keys("q")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(shots)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
