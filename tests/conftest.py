"""Shared test helpers: locating the public vectors in ../shared/vectors."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# A suite started in the background by a non-interactive shell (``cmd &``)
# inherits SIGINT ignored, and so would every daemon, demo and CLI the tests
# start: the tests that interrupt one with SIGINT would see it carry on. The
# suite takes Python's own handler back, so the processes it starts get the
# default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# CI runs every property with a fixed seed, so a red run can be reproduced and
# a green one means the same examples passed; locally the default profile
# explores new examples on every run (and prints how to reproduce a failure).
settings.register_profile(
    "ci", derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("default", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Nodes started in-process must not announce on the host's links either
# (tests/daemons.py keeps it off for daemon processes).
os.environ["P2PSOCIAL_LAN_DISCOVERY"] = "off"
# Nodes the tests start in this process map no port at the machine's router
# (spec/portmap.md): its requests would leave the machine. Daemons get the
# same from tests/daemons.py's cli_env; a test that maps names its gateway.
os.environ["P2PSOCIAL_PORTMAP_GATEWAY"] = "none"

REPO = Path(__file__).resolve().parent.parent
SHARED_VECTORS = REPO.parent / "shared" / "vectors"


def load_shared_vector(relpath: str) -> Any:
    """Load a JSON file from ../shared/vectors, or skip (fail in CI) if absent.

    A fresh clone has no ../shared; CI sets P2PSOCIAL_REQUIRE_VECTORS=1 so that
    a missing vector is a failure there, never a silent skip.
    """
    path = SHARED_VECTORS / relpath
    if not path.is_file():
        msg = (
            f"public vector {path} is not present (it lives outside the repo, in ../shared/vectors)"
        )
        if os.environ.get("P2PSOCIAL_REQUIRE_VECTORS") == "1":
            pytest.fail(msg + " and P2PSOCIAL_REQUIRE_VECTORS=1 requires it")
        pytest.skip(msg)
    return json.loads(path.read_text(encoding="utf-8"))
