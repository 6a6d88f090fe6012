"""The relay's identity key, kept in the data dir: the key whose fingerprint is in the
relay link, so it must survive restarts."""

from __future__ import annotations

import os
import pathlib

from nacl.signing import SigningKey

from chatrelay.errors import ChatRelayError, Reason

KEY_FILE = "relay-identity.key"


def load_or_create(data_dir: pathlib.Path) -> SigningKey:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    if path.exists():
        seed = path.read_bytes()
        if len(seed) != 32:
            raise ChatRelayError(Reason.MALFORMED, f"{path} is not a relay identity key (32 bytes)")
        return SigningKey(seed)
    key = SigningKey.generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(bytes(key))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key
