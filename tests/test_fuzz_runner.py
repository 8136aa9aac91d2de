"""A slice of the fuzz bench (bench/fuzz.py) in the test suite.

The bench drives a million inputs into each decoder of untrusted bytes; here
every decoder gets 2,000 inputs from the fixed default seed. None may raise
anything but its typed error (STYLE §6), and each must both accept and reject
something, so that a mutator producing only garbage, or only valid inputs,
fails here instead of passing silently.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
INPUTS = 2000


def _load_bench() -> ModuleType:
    name = "p2psocial_bench_fuzz"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses and pickling (--jobs) look it up.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_bench()

#: Decoders this slice shows to raise an untyped error, reported and not yet
#: fixed. Strict: the test fails as soon as the bug is gone, so that the
#: entry is removed.
#: Decoders with a known uncaught exception, as strict xfails (each turns red
#: once fixed, so the entry is removed). None at the moment.
KNOWN_BUGS: dict[str, str] = {}


def _counts(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("seconds", "decode_seconds")}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n]))
        if n in KNOWN_BUGS
        else n
        for n in fuzz.decoder_names()
    ],
)
def test_decoder_slice(name: str) -> None:
    result = fuzz.run_target(name, INPUTS, fuzz.DEFAULT_SEED)
    examples = json.dumps(result.get("uncaught_examples"), indent=1)
    assert result["uncaught"] == 0, f"{name} raised untyped errors:\n{examples}"
    assert result["accepted"] + sum(result["rejected"].values()) == INPUTS
    target = fuzz.targets()[name]
    if target.can_accept:
        assert result["accepted"] > 0, f"{name}: the mutator never produced a valid input"
    if target.can_reject:
        assert result["rejected"], f"{name}: the mutator never produced an invalid input"


def test_every_untrusted_decoder_is_fuzzed() -> None:
    source = (REPO / "bench" / "fuzz.py").read_text()
    defined = {
        m
        for path in (REPO / "p2psocial").rglob("*.py")
        for m in re.findall(r"^def (\w+_untrusted)\(", path.read_text(), re.M)
    }
    assert defined, "no *_untrusted decoders found"
    missing = sorted(d for d in defined if d not in source)
    assert not missing, f"decoders not driven by bench/fuzz.py: {missing}"


def test_every_method_kind_and_reply_parser_has_a_decoder() -> None:
    from p2psocial.api.methods import METHODS as API_METHODS
    from p2psocial.protocol.dht import wire as dht_wire
    from p2psocial.protocol.kinds import KINDS

    names = set(fuzz.decoder_names())
    expected = {f"api_params.{m}" for m in API_METHODS}
    expected |= {f"dht_args.{m}" for m in dht_wire.METHODS}
    expected |= {f"payload.{k}" for k in KINDS} | {"payload.unknown"}
    expected |= {
        "dht_reply." + n.removeprefix("parse_").removesuffix("_reply")
        for n in dht_wire.__all__
        if n.startswith("parse_") and n != "parse_request_args"
    }
    expected.add("portmap_response")
    assert sorted(expected - names) == []


def test_runs_are_reproducible() -> None:
    a = fuzz.run_target("dht_serve", 400, 7)
    b = fuzz.run_target("dht_serve", 400, 7)
    c = fuzz.run_target("dht_serve", 400, 8)
    assert _counts(a) == _counts(b)
    assert _counts(a) != _counts(c)


def test_cli_prints_one_line_per_decoder_then_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--inputs", "300", "--decoders", "msgpack,dht_args", "--seed", "3"]
    assert fuzz.main([*argv, "--jobs", "1"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["decoder"] for x in lines[:-1]] == ["msgpack"] + [
        f"dht_args.{m}" for m in fuzz.DHT_METHODS
    ]
    for line in lines[:-1]:
        assert {"decoder", "inputs", "accepted", "rejected", "uncaught", "seconds"} <= set(line)
    summary = lines[-1]
    assert summary["bench"] == "fuzz" and summary["uncaught"] == 0
    assert summary["inputs"] == 300 * (len(lines) - 1)
    assert summary["msgpack_unpackb_per_s"] > 0 and summary["reference_inputs"] == 300

    # The same counts whatever the number of worker processes.
    assert fuzz.main([*argv, "--jobs", "2"]) == 0
    parallel = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [_counts(x) for x in parallel[:-1]] == [_counts(x) for x in lines[:-1]]


def test_uncaught_exceptions_are_reported_and_fail_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def make_run() -> Any:
        def run(data: bytes) -> None:
            if len(data) % 2:
                raise KeyError("planted bug")
            raise fuzz.DecodeError("even", reason="even")

        return run

    planted = fuzz.Target("planted", [b"\x92\x01\x02", b"\xa2ab"], make_run, (fuzz.DecodeError,))
    monkeypatch.setitem(fuzz.targets(), "planted", planted)
    assert fuzz.main(["--inputs", "200", "--decoders", "planted", "--jobs", "1"]) == 1
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    line, summary = out[0], out[-1]
    assert line["uncaught"] > 0 and line["rejected"]["even"] == 200 - line["uncaught"]
    assert summary["decoders_with_uncaught"] == ["planted"]
    example = summary["uncaught_examples"][0]
    assert example["decoder"] == "planted" and "planted bug" in example["exception"]
    assert len(bytes.fromhex(example["input_hex"])) % 2 == 1
    # The reported input reproduces the failure on its own.
    assert fuzz.main(["--replay", "planted", example["input_hex"]]) == 1
