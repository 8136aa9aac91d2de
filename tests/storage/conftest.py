from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psocial.storage import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "node.db")
    try:
        yield s
    finally:
        s.close()
