"""The data dir's modes (cluster/identity.py): tightened at every start, except keys that
already allow nobody else anything, as a Kubernetes Secret mounts them (read-only,
0400), which chmod could not change, and paths of another owner that cannot be changed
(a Secret's keys and the data dir's volume, as Kubernetes mounts them with fsGroup for
a pod running as a user of its own: tests/integration/test_image_build.py runs that)."""

from __future__ import annotations

import os
import stat

from chatrelay import tls
from chatrelay.cluster import identity


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_data_dir_is_tightened_and_read_only_keys_are_left_as_they_are(tmp_path):
    data = tmp_path / "relay"
    data.mkdir()
    os.chmod(data, 0o755)
    (data / "messages.db").write_bytes(b"x")
    os.chmod(data / "messages.db", 0o644)
    (data / identity.KEY_FILE).write_bytes(bytes(32))
    os.chmod(data / identity.KEY_FILE, 0o400)
    identity.secure_data_dir(data)
    assert (mode(data), mode(data / "messages.db"), mode(data / identity.KEY_FILE)) == (0o700, 0o600, 0o400)


def refuse_chmod(monkeypatch, error: OSError) -> None:
    monkeypatch.setattr(identity.os, "chmod", lambda path, mode: (_ for _ in ()).throw(error))


def test_what_another_owner_mounted_and_cannot_be_changed_is_left(tmp_path, monkeypatch):
    data = tmp_path / "relay"
    data.mkdir()
    (data / identity.KEY_FILE).write_bytes(bytes(32))
    os.chmod(data, 0o2777)  # a volume with fsGroup
    os.chmod(data / identity.KEY_FILE, 0o440)  # a Secret's key with fsGroup
    other = os.geteuid() + 4242
    os.chown(data, other, -1)
    os.chown(data / identity.KEY_FILE, other, -1)
    refuse_chmod(monkeypatch, PermissionError(1, "Operation not permitted"))
    identity.secure_data_dir(data)
    assert (mode(data), mode(data / identity.KEY_FILE)) == (0o2777, 0o440)


def test_what_is_ours_and_cannot_be_tightened_stops_the_start(tmp_path, monkeypatch):
    import pytest

    data = tmp_path / "relay"
    data.mkdir()
    (data / "messages.db").write_bytes(b"x")
    os.chmod(data, 0o700)
    os.chmod(data / "messages.db", 0o644)
    refuse_chmod(monkeypatch, OSError(30, "Read-only file system"))
    with pytest.raises(OSError) as caught:
        identity.secure_data_dir(data)
    assert caught.value.errno == 30


def test_the_tls_key_is_made_once_and_its_pin_is_its_certificates(tmp_path):
    key_pem, cert_pem = identity.load_or_create_tls(tmp_path)
    assert identity.load_or_create_tls(tmp_path) == (key_pem, cert_pem)
    assert mode(tmp_path / identity.TLS_KEY_FILE) == 0o600 and mode(tmp_path / identity.TLS_CERT_FILE) == 0o600
    assert len(tls.pin_of_pem(cert_pem)) == tls.PIN_SIZE
    other_key, other_cert = tls.make_certificate()
    assert tls.pin_of_pem(other_cert) != tls.pin_of_pem(cert_pem)


def test_a_node_without_the_tls_key_says_where_it_should_be(tmp_path):
    import pytest

    from chatrelay.errors import ChatRelayError, Reason

    with pytest.raises(ChatRelayError) as caught:
        identity.load_tls(tmp_path)
    assert caught.value.reason is Reason.UNAVAILABLE
    assert caught.value.message == (
        f"the relay's TLS key is not on this node ({tmp_path / identity.TLS_KEY_FILE}: No such file or directory): "
        "every relay node needs the data dir's keys (on Kubernetes, the chart's relay.keysSecret)"
    )
