"""The daemon raises its soft open-files limit (a hole punch holds up to 256
sockets at once, spec/sync.md §12.9), never past the hard limit."""

from __future__ import annotations

import subprocess
import sys

import pytest

resource = pytest.importorskip("resource", reason="open-file limits are POSIX")

_PROBE = """
import resource, sys
from p2psocial.node.daemon import raise_open_files_limit
soft, hard = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
got = raise_open_files_limit(int(sys.argv[3]))
print(got, *resource.getrlimit(resource.RLIMIT_NOFILE))
"""


@pytest.mark.parametrize(
    "soft, hard, wanted, expect",
    [
        (256, 8192, 4096, (4096, 4096, 8192)),  # raised to what is wanted
        (256, 1000, 4096, (1000, 1000, 1000)),  # to the hard limit at most
        (5000, 8192, 4096, (5000, 5000, 8192)),  # never lowered
    ],
)
def test_the_soft_limit_is_raised_within_the_hard_one(
    soft: int, hard: int, wanted: int, expect: tuple[int, int, int]
) -> None:
    _, real_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if real_hard != resource.RLIM_INFINITY and real_hard < hard:
        pytest.skip(f"this process's hard limit ({real_hard}) is below {hard}")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(soft), str(hard), str(wanted)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert tuple(int(x) for x in out.split()) == expect
