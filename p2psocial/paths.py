"""Where a node keeps its files, and where its local API listens.

The data dir holds everything a node owns::

    identity.pem   the user identity key (PKCS#8 PEM, 0600, optionally encrypted)
    identity.txt   the identity's text form (p2ps1...), for ``p2psocial id`` and for people
    node.pem       the node key (identifies this node in the DHT and on peer links)
    config.toml    settings and moderation policy
    node.db        the SQLite store
    api.sock       the local API socket (0600), while a daemon runs
    daemon.lock    held by the running daemon

Where the data dir is: ``--data-dir``, else ``$P2PSOCIAL_HOME``, else the
platform's user data dir (via platformdirs).

This module sits below the client, the CLI and the node, which all follow the
same rules; it imports nothing else of the package, and platformdirs only
when it is asked for the default data dir.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "API_SOCKET",
    "CONFIG_FILE",
    "DB_FILE",
    "IDENTITY_FILE",
    "IDENTITY_TEXT_FILE",
    "LOCK_FILE",
    "NODE_KEY_FILE",
    "resolve_data_dir",
    "socket_path",
]

CONFIG_FILE = "config.toml"
IDENTITY_FILE = "identity.pem"
IDENTITY_TEXT_FILE = "identity.txt"
NODE_KEY_FILE = "node.pem"
DB_FILE = "node.db"
API_SOCKET = "api.sock"
LOCK_FILE = "daemon.lock"


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data dir: the explicit argument, else $P2PSOCIAL_HOME, else platformdirs."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("P2PSOCIAL_HOME")
    if env:
        return Path(env).expanduser()
    # Imported here: every command that names its data dir (or the daemon's
    # socket) never pays for platformdirs, which loads the platform module.
    import platformdirs

    return Path(platformdirs.user_data_dir("p2psocial", appauthor=False))


def socket_path(
    data_dir: str | os.PathLike[str] | None = None, api: str | os.PathLike[str] | None = None
) -> Path:
    """The API socket: ``api`` if given, else ``api.sock`` in the data dir."""
    if api:
        return Path(api).expanduser()
    return resolve_data_dir(data_dir) / API_SOCKET
