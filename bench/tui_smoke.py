"""Smoke run: ``p2psocial tui`` in a real terminal (tmux), its screen captured as text.

Starts a daemon in a temporary data dir, publishes a few posts, runs
``p2psocial --data-dir DIR tui`` in a detached tmux session of ``--size``
columns x rows, waits for the newest post to be on screen, and prints the
screen; then opens the help overlay and the compose box and prints those.
``--out FILE`` also writes the captures there, and ``--svg FILE`` saves a
screenshot of the home view (Textual's SVG export, from the same app run
headless here). ``--data-dir DIR`` uses that data dir (a node that
``p2psocial demo --keep`` left, say) instead of a fresh one, and publishes
nothing in it. Exits non-zero if the TUI does not show the newest post
within ``--timeout`` seconds.

Run: ``python bench/tui_smoke.py [--size 100x30] [--out FILE] [--svg FILE]
[--data-dir DIR]`` (needs tmux).
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

from p2psocial.client import cli_argv, connect, connect_async, daemon_env, spawn_daemon

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
    """Run ``argv`` in a new detached tmux session with exactly ``env``; kill it on exit."""
    name = f"p2ps-tui-{os.getpid()}-{time.monotonic_ns()}"
    command = " ".join(shlex.quote(a) for a in argv)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # env -i: the command gets exactly ``env``, not the tmux server's own
    # environment (which, started from some shell, may say PYTHONDONTWRITEBYTECODE).
    new = ["tmux", "new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1])]
    # The tmux server exits with its last session; a session started while it
    # shuts down fails, so a failed start is tried again a few times.
    for attempt in range(10):
        done = subprocess.run(
            [*new, f"env -i {exports} {command}"], capture_output=True, check=False
        )
        if done.returncode == 0:
            break
        if attempt == 9:
            raise RuntimeError(f"tmux new-session failed: {done.stderr.decode(errors='replace')}")
        time.sleep(0.1)
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


def save_svg(api: str, path: Path, size: tuple[int, int]) -> None:
    """Run the TUI headless against the daemon at ``api`` and save its home view as SVG."""
    import asyncio

    from p2psocial.tui import P2PSocialApp

    app = P2PSocialApp(lambda: connect_async(api=api))

    async def shoot() -> None:
        async with asyncio.timeout(60), app.run_test(size=size) as pilot:
            while not app.home.entries.window.loaded or not app.sub_title.count("you:"):
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            app.save_screenshot(filename=path.name, path=str(path.parent))

    asyncio.run(shoot())


def newest_line(api: str) -> str:
    """The first words of the newest post on the timeline, as the TUI shows them."""
    with connect(api=api) as client:
        for e in client.timeline(limit=50)["items"]:
            if e.get("text"):
                return str(e["text"]).splitlines()[0][:40]
    raise SystemExit("the timeline holds no post to wait for")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="100x30", help="COLUMNSxROWS of the terminal")
    ap.add_argument("--out", default=None, help="also write the captured screens here")
    ap.add_argument("--svg", default=None, help="save a screenshot of the home view here")
    ap.add_argument("--data-dir", default=None, help="an initialised data dir to use as it is")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed")
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="p2ps-tui-smoke-"))
    shots: list[str] = []
    try:
        data_dir = Path(args.data_dir) if args.data_dir else work / "node"
        if not args.data_dir:
            subprocess.run(cli_argv("init", data_dir=data_dir), check=True, capture_output=True)
        with spawn_daemon(data_dir, log=work / "daemon.log") as daemon:
            api = daemon.info["api"]
            if args.data_dir:
                last = newest_line(api)
            else:
                with connect(api=api) as client:
                    client.set_profile(name="Smoke Tester", bio="runs the tmux smoke test")
                    first = client.post("the first post, to have something to scroll #smoke")
                    client.post("a reply, shown as one", reply_to=first["id"])
                    client.react(first["id"], "🎉")
                    last = "the newest post: if you can read this, the TUI is up"
                    client.post(last)
            if args.svg:
                save_svg(api, Path(args.svg).resolve(), (cols, rows))
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
