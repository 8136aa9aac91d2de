"""The testbed always cleans up: a failing test, an interrupt (SIGINT), and a
killed run (SIGKILL, swept by the next run) leave no namespace behind."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from . import netlab
from .conftest import read_event, require_testbed

ROOT = Path(__file__).resolve().parents[2]
#: Builds a lab, says its tag, and waits (bounded) to be interrupted.
HOLDER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tests.nat import netlab
with netlab.Lab() as lab:
    p = lab.popen(lab.public["pub1"][0], "sleep", "60")
    print(json.dumps({"tag": lab.tag, "inner_pid": p.pid}), flush=True)
    time.sleep(60)
"""


@pytest.fixture(autouse=True)
def _testbed() -> None:
    require_testbed()


def test_a_failing_block_removes_every_namespace() -> None:
    with pytest.raises(ZeroDivisionError), netlab.Lab() as lab:
        assert len(lab.leftovers()) == len(lab.namespaces) > 10
        inner = lab.popen(lab.public["pub1"][0], "sleep", "60")
        _ = 1 / 0
    assert lab.leftovers() == []
    assert inner.poll() is not None


def _holder() -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ROOT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ev = read_event(p, timeout=60)
    return p, str(ev["tag"])


def _with_tag(tag: str) -> list[str]:
    return [ns for ns in netlab._namespaces() if ns.startswith(tag)]


def test_an_interrupted_run_cleans_up() -> None:
    p, tag = _holder()
    try:
        assert _with_tag(tag)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    finally:
        p.kill()
    assert _with_tag(tag) == []


def test_a_killed_run_is_swept_by_the_next() -> None:
    p, tag = _holder()
    try:
        p.kill()
        p.wait(timeout=30)
        left = _with_tag(tag)
        assert left  # nothing ran to clean up ...
    finally:
        p.kill()
    swept = netlab.sweep_stale()  # ... until the next run starts
    assert set(left) <= set(swept)
    assert _with_tag(tag) == []
