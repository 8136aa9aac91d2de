"""``p2psocial tui`` is listed and helped like any command, and loads Textual only to run."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_startup import probe
from tests.daemons import run_cli


def test_tui_help_loads_no_textual(tmp_path: Path) -> None:
    code, packages = probe(tmp_path, "--data-dir", str(tmp_path / "none"), "tui", "--help")
    assert code == 0
    assert "textual" not in packages


def test_tui_is_listed() -> None:
    out = run_cli(Path("/nonexistent-p2psocial-dir"), "--help").stdout
    assert "tui" in out.split()
    assert "A full-screen client" in out
