"""Key files: an Ed25519 private key as PKCS#8 PEM, readable by its owner only.

A key file is created with mode 0600 from its first byte: ``os.open`` with
``O_CREAT | O_EXCL`` and an explicit mode, then ``fchmod`` because the process
umask can only remove bits, and a permissive umask must never matter here.
Replacing an existing key goes through a fresh temporary file in the same
directory (also 0600) and an atomic ``os.replace``, so a crash leaves either
the old key or the new one, never a half-written file or a readable copy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..protocol.errors import DecodeError
from ..protocol.identity import SigningKey

__all__ = ["KEY_FILE_MODE", "read_key_file", "write_key_file"]

#: Owner read/write, nobody else anything.
KEY_FILE_MODE = 0o600

# Refuse to load absurd files: a PEM Ed25519 key, even encrypted, is < 1 KiB.
_MAX_KEY_FILE_SIZE = 64 * 1024


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (which must not exist) with mode 0600 and write ``data``."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, KEY_FILE_MODE)
    try:
        # The mode given to os.open is masked by the umask, which can only
        # remove permissions; fchmod makes the result exact regardless.
        os.fchmod(fd, KEY_FILE_MODE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def write_key_file(
    path: str | os.PathLike[str],
    key: SigningKey,
    passphrase: bytes | None,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``key`` to ``path`` as PKCS#8 PEM with mode 0600.

    Args:
        path: where to write the key.
        key: the private key.
        passphrase: encrypt the PEM with it (cryptography's best available
            scheme) when given and non-empty; None or b"" writes it in clear.
        overwrite: replace an existing file (atomically, via a temporary file
            and a rename). Without it an existing file is never touched.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: the directory is missing or not writable.
    """
    target = Path(path)
    pem = key.to_pem(passphrase)
    if not overwrite:
        try:
            _write_new(target, pem)
        except FileExistsError:
            raise FileExistsError(
                f"key file {target} already exists; refusing to overwrite it"
            ) from None
        return
    # A name unique to this process and attempt; O_EXCL guarantees we never
    # write into somebody else's file.
    for attempt in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{attempt}.tmp")
        try:
            _write_new(tmp, pem)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 stale temporary files
        raise FileExistsError(f"cannot create a temporary file next to {target}")
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_key_file(path: str | os.PathLike[str], passphrase: bytes | None) -> SigningKey:
    """Load the private key stored at ``path``.

    Args:
        path: a file written by :func:`write_key_file` (or any PKCS#8 PEM
            Ed25519 key).
        passphrase: the passphrase if the file is encrypted, else None.

    Returns:
        The key.

    Raises:
        FileNotFoundError: there is no file at ``path`` (the path is in the message).
        DecodeError: the file is not an Ed25519 PEM key, or the passphrase is
            wrong or missing; the message names the path, ``reason`` is
            ``passphrase`` or ``bad_key_file``.
    """
    target = Path(path)
    try:
        with open(target, "rb") as f:
            data = f.read(_MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"key file {target} does not exist") from None
    if len(data) > _MAX_KEY_FILE_SIZE:
        raise DecodeError(f"key file {target} is too large to be a key", reason="bad_key_file")
    try:
        return SigningKey.from_pem(data, passphrase)
    except DecodeError as exc:
        raise DecodeError(f"{target}: {exc.message}", reason=exc.reason) from None
