from chatrelay.cluster import identity


def test_relay_identity_is_made_once_and_kept(tmp_path):
    first = identity.load_or_create(tmp_path)
    second = identity.load_or_create(tmp_path)
    assert bytes(first) == bytes(second)
    assert oct((tmp_path / identity.KEY_FILE).stat().st_mode & 0o777) == "0o600"


def test_a_corrupt_identity_file_is_refused(tmp_path):
    (tmp_path / identity.KEY_FILE).write_bytes(b"short")
    import pytest

    from chatrelay.errors import ChatRelayError, Reason

    with pytest.raises(ChatRelayError) as info:
        identity.load_or_create(tmp_path)
    assert info.value.reason is Reason.MALFORMED
