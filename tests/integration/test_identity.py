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


async def test_the_data_dir_and_every_file_in_it_are_the_relay_users_alone(ray_session, tmp_path):
    """0700 and 0600 from the first start, and a data dir of an older version (0755 with
    a 0644 file) is tightened when the relay starts on it."""
    import asyncio
    import os

    from chatrelay import client
    from chatrelay.cluster import up
    from chatrelay.group import GroupKind

    from realparts import start_relay

    data = tmp_path / "relay"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "left-behind.txt").write_text("from an older version")
    os.chmod(data / "left-behind.txt", 0o644)
    running = await asyncio.to_thread(start_relay, data)
    try:
        owned = await client.create_group([running.link], "Private files", GroupKind.CHANNEL)
        await client.post(owned, "written to the message log")
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in data.iterdir()}
    finally:
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    assert {"registry.db", "messages.db", identity.KEY_FILE, identity.OPERATOR_KEY_FILE, identity.LINK_FILE,
            "left-behind.txt"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != "0o600"} == {}
