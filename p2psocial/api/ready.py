"""The line a daemon prints on stderr once every service listens.

Format: ``p2psocial ready`` followed by space-separated ``key=value`` fields
(``identity``, ``node_id``, ``dht``, ``peer``, ``api``). Values contain no
spaces. Tools that start a daemon (``p2psocial demo``, the benches, the tests)
wait for this line and read the addresses from it.
"""

from __future__ import annotations

__all__ = ["READY_PREFIX", "format_ready_line", "parse_ready_line"]

READY_PREFIX = "p2psocial ready"


def format_ready_line(**fields: object) -> str:
    """The ready line carrying ``fields`` in the order given."""
    return " ".join([READY_PREFIX, *(f"{k}={v}" for k, v in fields.items())])


def parse_ready_line(line: str) -> dict[str, str] | None:
    """The key=value fields of a daemon's ready line, or None for any other line."""
    if not line.startswith(READY_PREFIX):
        return None
    return dict(kv.split("=", 1) for kv in line[len(READY_PREFIX) :].split() if "=" in kv)
