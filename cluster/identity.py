"""The relay's identity key, kept in the data dir: the key whose fingerprint is in the
relay link, so it must survive restarts."""

from __future__ import annotations

import os
import pathlib

from nacl.signing import SigningKey

from chatrelay.errors import ChatRelayError, Reason

KEY_FILE = "relay-identity.key"
OPERATOR_KEY_FILE = "operator.key"  # signs admin requests (`chatrelay status`, `top`, `move`)
LINK_FILE = "relay-link.txt"  # the relay link `chatrelay up` printed last, for the admin CLI


def load_or_create(data_dir: pathlib.Path, name: str = KEY_FILE) -> SigningKey:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / name
    if path.exists():
        return load_key(path)
    key = SigningKey.generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(bytes(key))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


def load_key(path: pathlib.Path) -> SigningKey:
    try:
        seed = path.read_bytes()
    except OSError as exc:
        raise ChatRelayError(Reason.MALFORMED, f"cannot read the key {path}: {exc.strerror}") from None
    if len(seed) != 32:
        raise ChatRelayError(Reason.MALFORMED, f"{path} is not a key file (32 bytes)")
    return SigningKey(seed)
