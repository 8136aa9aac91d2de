"""What both clients share: the hello exchange and turning error replies into exceptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import APIError

__all__ = ["DaemonNotRunning", "check_hello", "not_running", "raise_error"]


class DaemonNotRunning(APIError):
    """No daemon answers on the API socket."""


def not_running(path: Path, why: str) -> DaemonNotRunning:
    """The error for a socket nobody answers on; it names the command that starts a daemon."""
    data_dir = path.parent
    return DaemonNotRunning(
        f"no p2psocial daemon at {path} ({why}); start one with: p2psocial --data-dir {data_dir} daemon",
        code="daemon_not_running",
    )


def raise_error(msg: dict[str, Any]) -> None:
    """Raise the :class:`APIError` an error reply carries; return if ``msg`` is not one."""
    err = msg.get("error")
    if isinstance(err, dict):
        raise APIError(
            str(err.get("message", "error")),
            code=str(err.get("code", "error")),
            reason=err.get("reason"),
        )


def check_hello(msg: dict[str, Any], path: Path) -> dict[str, Any]:
    """The daemon's hello, checked to speak our API name and version.

    Raises:
        APIError: an error reply, or another API or version.
    """
    # Imported here, not above: the CLI imports DaemonNotRunning for every
    # command, --help included, and the frame codec is not light.
    from ..api.protocol import API_NAME, API_VERSION

    raise_error(msg)
    if msg.get("api") != API_NAME or msg.get("version") != API_VERSION:
        raise APIError(
            f"{path} answered with an unexpected handshake {msg!r}", code="version_mismatch"
        )
    return msg
