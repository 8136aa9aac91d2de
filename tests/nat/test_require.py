"""Without the testbed's needs the NAT tests skip, saying why; under
P2PSOCIAL_REQUIRE_NAT=1 (.ci/run) they fail instead."""

from __future__ import annotations

import pytest

from . import conftest, netlab


def test_missing_needs_skip_with_the_reason_or_fail_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(netlab, "unavailable_reason", lambda: "the NAT testbed needs root")
    monkeypatch.delenv("P2PSOCIAL_REQUIRE_NAT", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        conftest.require_testbed()
    monkeypatch.setenv("P2PSOCIAL_REQUIRE_NAT", "1")
    with pytest.raises(pytest.fail.Exception, match="P2PSOCIAL_REQUIRE_NAT=1, but the NAT"):
        conftest.require_testbed()
