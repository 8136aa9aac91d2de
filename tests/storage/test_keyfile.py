"""Key files: PKCS#8 PEM, mode 0600 whatever the umask, clear errors."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from p2psocial.protocol.errors import DecodeError
from p2psocial.protocol.identity import SigningKey
from p2psocial.storage.keyfile import read_key_file, write_key_file

KEY = SigningKey.from_seed(bytes(range(32)))


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Run the test with umask 000, so that only our own code keeps files private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("passphrase", [None, b"correct horse"], ids=["clear", "encrypted"])
def test_round_trip(tmp_path: Path, passphrase: bytes | None) -> None:
    path = tmp_path / "id.pem"
    write_key_file(path, KEY, passphrase)
    assert read_key_file(path, passphrase).public_key == KEY.public_key
    text = path.read_bytes()
    assert text.startswith(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----" if passphrase else b"-----BEGIN PRIVATE KEY-----"
    )


def test_encrypted_file_does_not_contain_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "id.pem"
    write_key_file(path, KEY, b"pw")
    clear = KEY.to_pem(None)
    assert path.read_bytes() != clear
    with pytest.raises(DecodeError):
        read_key_file(path, None)


@pytest.mark.usefixtures("permissive_umask")
@pytest.mark.parametrize("passphrase", [None, b"pw"], ids=["clear", "encrypted"])
def test_mode_is_0600_with_permissive_umask(tmp_path: Path, passphrase: bytes | None) -> None:
    path = tmp_path / "id.pem"
    write_key_file(path, KEY, passphrase)
    assert mode_of(path) == 0o600


@pytest.mark.usefixtures("permissive_umask")
def test_overwrite_replaces_and_keeps_0600(tmp_path: Path) -> None:
    path = tmp_path / "id.pem"
    # An existing world-readable file: after overwriting, the key must be private.
    path.write_bytes(b"old")
    path.chmod(0o644)
    other = SigningKey.from_seed(b"\x07" * 32)
    write_key_file(path, other, None, overwrite=True)
    assert mode_of(path) == 0o600
    assert read_key_file(path, None).public_key == other.public_key
    # No temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["id.pem"]


def test_refuses_to_overwrite_by_default(tmp_path: Path) -> None:
    path = tmp_path / "id.pem"
    write_key_file(path, KEY, None)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"id\.pem"):
        write_key_file(path, SigningKey.from_seed(b"\x01" * 32), None)
    assert path.read_bytes() == before


def test_overwrite_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new.pem"
    write_key_file(path, KEY, b"pw", overwrite=True)
    assert mode_of(path) == 0o600
    assert read_key_file(path, b"pw").public_key == KEY.public_key


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"
    with pytest.raises(FileNotFoundError, match=r"absent\.pem"):
        read_key_file(path, None)


def test_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_key_file(tmp_path / "nope" / "id.pem", KEY, None)


@pytest.mark.parametrize(
    "written,given,reason",
    [
        (b"right", b"wrong", "bad_key_file"),
        (b"right", None, "passphrase"),
        (None, b"unexpected", "passphrase"),
    ],
    ids=["wrong_passphrase", "missing_passphrase", "unexpected_passphrase"],
)
def test_passphrase_errors(
    tmp_path: Path, written: bytes | None, given: bytes | None, reason: str
) -> None:
    path = tmp_path / "id.pem"
    write_key_file(path, KEY, written)
    with pytest.raises(DecodeError) as info:
        read_key_file(path, given)
    assert info.value.reason == reason
    assert str(path) in info.value.message


def x25519_pem() -> bytes:
    return X25519PrivateKey.from_private_bytes(b"\x05" * 32).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    "content",
    [b"", b"not a key at all", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
    ids=["empty", "text", "bad_base64_body"],
)
def test_not_a_key(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "id.pem"
    path.write_bytes(content)
    with pytest.raises(DecodeError) as info:
        read_key_file(path, None)
    assert info.value.reason == "bad_key_file"
    assert str(path) in info.value.message


def test_other_key_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pem"
    path.write_bytes(x25519_pem())
    with pytest.raises(DecodeError, match="Ed25519") as info:
        read_key_file(path, None)
    assert str(path) in info.value.message


def test_huge_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.pem"
    path.write_bytes(b"A" * (65 * 1024))
    with pytest.raises(DecodeError, match="too large"):
        read_key_file(path, None)
