"""Shared test helpers: locating the public vectors in ../shared/vectors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

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
