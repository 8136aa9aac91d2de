"""run_embedded's Ctrl-C path (p2psocial/node/embed.py) in a real interpreter:
one line on stderr and status 130, even when the interrupted run leaves a
task's coroutine behind that was never started (a task spawned as the
interrupt came; seen once in CI under load as a RuntimeWarning at exit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import p2psocial

    async def never_started():
        pass

    async def main():
        # What an interrupted run can leave: a coroutine, in a reference
        # cycle, that no task ever ran.
        leftovers = [never_started()]
        leftovers.append(leftovers)
        raise KeyboardInterrupt

    p2psocial.run_embedded(main)
    """
)


def test_ctrl_c_prints_one_line_and_exits_130_with_leftover_coroutines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == ["interrupted: the node stopped"], done.stderr
