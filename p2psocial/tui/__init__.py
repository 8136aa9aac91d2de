"""``p2psocial tui``: a full-screen terminal client of the running daemon (Textual).

A client like any other: it talks to the daemon through the typed async client
(p2psocial.client) and imports neither the node nor the store. Importing this
package loads Textual; the CLI imports it only when ``p2psocial tui`` runs.
"""

from __future__ import annotations

import os

from .app import P2PSocialApp

__all__ = ["P2PSocialApp", "run"]


def run(
    data_dir: str | os.PathLike[str] | None = None,
    api: str | os.PathLike[str] | None = None,
    *,
    start_command: str = "p2psocial daemon",
) -> None:
    """Run the TUI against the daemon of ``data_dir`` (or on socket ``api``) until quit.

    Args:
        data_dir: the node's data dir (default: the user's).
        api: the API socket, instead of the data dir's.
        start_command: what the "daemon down" screen tells the user to run.
    """
    from ..client import connect_async

    P2PSocialApp(lambda: connect_async(data_dir, api=api), start_command=start_command).run()
