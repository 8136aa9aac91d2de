"""The testbed's own helpers, checked without the testbed (no root needed)."""

from __future__ import annotations

import subprocess
import sys
import time

from .conftest import read_event

#: Writes two events in one write, then stays alive (bounded) with nothing more to say.
TWO_AT_ONCE = (
    "import sys, time\n"
    'sys.stdout.write(\'{"n": 1}\\n{"n": 2}\\n\'); sys.stdout.flush()\n'
    "time.sleep(20)\n"
)


def test_read_event_returns_a_line_already_read_ahead() -> None:
    # Both lines reach the pipe together, so the first read buffers the second:
    # it must be returned at once, not after the writer exits.
    p = subprocess.Popen([sys.executable, "-c", TWO_AT_ONCE], stdout=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        assert read_event(p, timeout=5) == {"n": 1}
        assert read_event(p, timeout=5) == {"n": 2}
        assert time.monotonic() - start < 5
    finally:
        p.kill()
        p.wait(timeout=5)
