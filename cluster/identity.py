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
TLS_KEY_FILE = "tls.key"  # the gateways' TLS key: its fingerprint is in the relay's links
TLS_CERT_FILE = "tls.crt"


DIR_MODE = 0o700  # the data dir: the relay's keys, registry and messages are nobody else's
FILE_MODE = 0o600


def secure_data_dir(data_dir: pathlib.Path) -> None:
    """Make the data dir if need be, and keep it and every file in it to the relay's user
    (a dir from an older version had 0755 and 0644)."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(str(data_dir), DIR_MODE)
    for folder, dirs, files in os.walk(data_dir):
        for name in dirs:
            _tighten(os.path.join(folder, name), DIR_MODE)
        for name in files:
            _tighten(os.path.join(folder, name), FILE_MODE)


def _tighten(path: str, mode: int) -> None:
    """Take away what group and others may do; a path that allows them nothing is left
    as it is (keys mounted read-only from a Kubernetes Secret, 0400). A path of another
    owner that cannot be changed is a mount of the operator's, left as it is: a Secret's
    keys (root, group fsGroup, 0440) or the volume of the data dir (root, fsGroup, 2777)
    as Kubernetes mounts them for a pod that runs as a user of its own."""
    status = os.stat(path)
    if not status.st_mode & 0o077:
        return
    try:
        os.chmod(path, mode)
    except OSError:  # not ours to change (EPERM), or read-only (EROFS)
        if status.st_uid == os.geteuid():
            raise


def write_private(path: pathlib.Path, data: bytes) -> None:
    """Write a file of the data dir atomically, readable by the relay's user only."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_create(data_dir: pathlib.Path, name: str = KEY_FILE) -> SigningKey:
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path = data_dir / name
    if path.exists():
        return load_key(path)
    key = SigningKey.generate()
    write_private(path, bytes(key))
    return key


def load_key(path: pathlib.Path) -> SigningKey:
    try:
        seed = path.read_bytes()
    except OSError as exc:
        raise ChatRelayError(Reason.MALFORMED, f"cannot read the key {path}: {exc.strerror}") from None
    if len(seed) != 32:
        raise ChatRelayError(Reason.MALFORMED, f"{path} is not a key file (32 bytes)")
    return SigningKey(seed)


NOT_ON_THIS_NODE = "every relay node needs the data dir's keys (on Kubernetes, the chart's relay.keysSecret)"


def load_identity(data_dir: pathlib.Path, relay_key: bytes) -> SigningKey:
    """The relay's identity key, read from the data dir on this node (on Kubernetes, the
    chart's keys Secret mounted there): the key that signs grants and is in the relay link."""
    path = data_dir / KEY_FILE
    if not path.exists():
        raise ChatRelayError(Reason.UNAVAILABLE, f"the relay's identity key is not on this node ({path}): {NOT_ON_THIS_NODE}")
    key = load_key(path)
    if bytes(key.verify_key) != relay_key:
        raise ChatRelayError(Reason.UNAVAILABLE, f"{path} holds another relay's identity key than this relay's")
    return key


def load_or_create_tls(data_dir: pathlib.Path) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of the relay's gateways, made at the first start."""
    from chatrelay import tls

    key_path, cert_path = data_dir / TLS_KEY_FILE, data_dir / TLS_CERT_FILE
    if not key_path.exists() or not cert_path.exists():
        key_pem, cert_pem = tls.make_certificate()
        write_private(cert_path, cert_pem)
        write_private(key_path, key_pem)
    return load_tls(data_dir)


def load_tls(data_dir: pathlib.Path) -> tuple[bytes, bytes]:
    """The TLS key and certificate `chatrelay up` made, read on the node that serves with
    them (they never travel as actor arguments)."""
    try:
        return (data_dir / TLS_KEY_FILE).read_bytes(), (data_dir / TLS_CERT_FILE).read_bytes()
    except OSError as exc:
        raise ChatRelayError(
            Reason.UNAVAILABLE, f"the relay's TLS key is not on this node ({exc.filename}: {exc.strerror}): {NOT_ON_THIS_NODE}"
        ) from None
