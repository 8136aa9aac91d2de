"""The node's two keys in its data dir: creating them, and reading them with errors that
say what to do."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import NodeError
from ..paths import IDENTITY_TEXT_FILE
from ..protocol.errors import DecodeError
from ..protocol.identity import SigningKey, identity_to_text
from ..storage.keyfile import read_key_file, write_key_file
from .config import NodeConfig

__all__ = ["create_keys", "load_keys"]


def create_keys(config: NodeConfig, passphrase: bytes | None, *, overwrite: bool = False) -> str:
    """Write a new identity key and node key into the data dir, and identity.txt.

    The data dir is created if needed and made owner-only (0700); the key
    files are 0600, the identity key encrypted when ``passphrase`` is given.

    Returns:
        The new identity in text form.

    Raises:
        FileExistsError: a key file exists and ``overwrite`` is False.
        OSError: the data dir cannot be written.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.data_dir, 0o700)
    identity = SigningKey.generate()
    write_key_file(config.identity_path, identity, passphrase, overwrite=overwrite)
    write_key_file(config.node_key_path, SigningKey.generate(), None, overwrite=overwrite)
    text = identity_to_text(identity.public_key)
    (config.data_dir / IDENTITY_TEXT_FILE).write_text(text + "\n")
    return text


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(64)
    except OSError:
        return b""


def load_keys(config: NodeConfig) -> tuple[SigningKey, SigningKey]:
    """Read the identity and node keys from the data dir.

    Returns:
        ``(identity_key, node_key)``.

    Raises:
        NodeError: a key is missing or unreadable; the message names ``p2psocial init``.
    """
    keys = []
    for path in (config.identity_path, config.node_key_path):
        try:
            keys.append(
                read_key_file(path, config.passphrase if path == config.identity_path else None)
            )
        except FileNotFoundError:
            raise NodeError(
                f"no identity in {config.data_dir} ({path.name} is missing); "
                f"create one with: p2psocial --data-dir {config.data_dir} init",
                reason="no_identity",
            ) from None
        except DecodeError as exc:
            if exc.reason == "passphrase" or b"ENCRYPTED" in _head(path):
                raise NodeError(
                    f"cannot unlock {path}: the passphrase is wrong or missing (give it with "
                    "P2PSOCIAL_PASSPHRASE, --passphrase-file, or at the prompt)",
                    reason="bad_passphrase",
                ) from None
            # Never suggest `init --force` here: it makes a new identity and
            # the one in this file (and every follower of it) is lost.
            raise NodeError(
                f"cannot read {path}: {exc.message}; restore it from a backup",
                reason="bad_identity",
            ) from None
    return keys[0], keys[1]
