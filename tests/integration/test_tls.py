"""TLS on the gateway, pinned in the links (issue 15): a relay put on another relay's
address is refused by every client that holds a link or state naming the first; one
side in plaintext fails with a clear error; an on-path observer sees only ciphertext."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from nacl.signing import SigningKey

from chatrelay import client, connection, members, tls
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.links import ShortLink
from chatrelay.state import unb64

from realparts import cli, start_relay


async def test_a_relay_put_on_the_same_address_is_refused(ray_session, tmp_path):
    from chatrelay.cluster import up
    from chatrelay.cluster.harness import free_port

    listen = f"127.0.0.1:{free_port()}"
    first = await asyncio.to_thread(start_relay, tmp_path / "first", shards=1, listen=listen)
    try:
        owned = await client.create_group([first.link], "Pinned", GroupKind.CHANNEL)
        await client.post(owned, "from the owner")
    finally:
        await asyncio.to_thread(up.stop, first, ray_shutdown=False)
    impostor = await asyncio.to_thread(start_relay, tmp_path / "impostor", shards=1, listen=listen)
    try:
        assert impostor.address == first.address and impostor.pin != first.pin
        with pytest.raises(ChatRelayError) as joining:  # a new member, from the link alone
            await client.join(owned.link, "Bob")
        assert joining.value.reason is Reason.RELAY_IDENTITY_MISMATCH
        assert f"presented a key with fingerprint {tls.render_pin(impostor.pin)}" in joining.value.message
        with pytest.raises(ChatRelayError) as posting:  # the owner, pinned by its state
            await client.post(owned, "to the impostor")
        assert posting.value.reason is Reason.RELAY_IDENTITY_MISMATCH
        # The impostor's own link works: nothing here refuses TLS as such.
        assert (await client.relay_info(impostor.link)).link == ShortLink.parse(impostor.link)
    finally:
        await asyncio.to_thread(up.stop, impostor, ray_shutdown=False)


async def test_plaintext_on_one_side_only_fails_clearly(ray_session, relay, tmp_path):
    from chatrelay.cluster import up

    plain = await asyncio.to_thread(start_relay, tmp_path / "plain", shards=1, insecure=True)
    try:
        assert ShortLink.parse(plain.link).pins == ()  # nothing to pin: it has no TLS key
        with pytest.raises(ChatRelayError) as tls_client:
            await client.relay_info(plain.link)
        assert tls_client.value.reason is Reason.TLS_MISMATCH
        assert "does not answer TLS" in tls_client.value.message and "pass --insecure here too" in tls_client.value.message
        connection.set_insecure(True)
        try:
            assert (await client.relay_info(plain.link)).target == plain.address  # both sides plaintext
            with pytest.raises(ChatRelayError) as plain_client:
                await client.relay_info(relay.link)
            assert plain_client.value.reason is Reason.TLS_MISMATCH
            assert "speaks TLS, and this client runs with --insecure: drop --insecure" in plain_client.value.message
        finally:
            connection.set_insecure(False)
    finally:
        await asyncio.to_thread(up.stop, plain, ray_shutdown=False)


def test_the_cli_says_which_side_is_plaintext(relay, tmp_path):
    insecure = cli("--insecure", "channel", "create", "--relay", relay.link, "--name", "N",
                   "--state", str(tmp_path / "o.json"))
    assert insecure.returncode == 2
    assert insecure.stderr.endswith("speaks TLS, and this client runs with --insecure: drop --insecure (tls_mismatch)\n")
    with_env = cli("channel", "create", "--relay", relay.link, "--name", "N", "--state", str(tmp_path / "o.json"),
                   env={"CHATRELAY_INSECURE": "1"})
    assert with_env.returncode == 2 and with_env.stderr == insecure.stderr


def test_the_tls_key_stays_in_the_data_dir_and_the_link_pins_it(relay):
    data = relay.config.data_dir
    for name in ("tls.key", "tls.crt"):
        assert stat.S_IMODE(os.stat(os.path.join(data, name)).st_mode) == 0o600
    with open(os.path.join(data, "tls.crt"), "rb") as f:
        assert tls.pin_of_pem(f.read()) == relay.pin
    assert ShortLink.parse(relay.link).pins == (relay.pin,)


async def test_an_observer_on_the_path_reads_no_post(relay):
    """A forwarder between client and relay, as on-path hardware would sit: the client
    reaches the relay through it (its pin still holds: TLS ends at the relay), and what
    passes through carries neither the post nor the group's address."""
    seen = bytearray()
    upstream_host, upstream_port = relay.address.rsplit(":", 1)

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                seen.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def forward(reader, writer):
        up_reader, up_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        owned = await client.create_group([relay.link], "Observed", GroupKind.CHANNEL)
        via = connection.RelayClient(tls.join_target(relay.pin, f"127.0.0.1:{port}"))
        secret = b"meet at the old mill at nine"
        async with via:
            ack = await via.post(owned.relays[0].address, members.sign_post(
                SigningKey(unb64(owned.owner_seed)), bytes.fromhex(owned.group_id), secret))
        assert ack.seq == 1
        assert len(seen) > 1000  # the handshake and the call went through the forwarder
        assert secret not in seen and owned.relays[0].address.encode() not in seen
    finally:
        server.close()
        await server.wait_closed()


def test_no_secret_travels_as_an_actor_argument(relay):
    """What `chatrelay up` hands its shard and gateway actors (Ray pickles it to every
    node) holds none of the relay's secrets: each node reads them from its data dir."""
    import pickle

    from chatrelay.cluster.storage import LocalStorage

    data = relay.config.data_dir
    secrets = {}
    for name in ("relay-identity.key", "operator.key", "tls.key"):
        with open(os.path.join(data, name), "rb") as f:
            secrets[name] = f.read()
    arguments = pickle.dumps((relay.config, LocalStorage()))
    for name, secret in secrets.items():
        assert secret not in arguments, name
    tls_key_body = b"".join(secrets["tls.key"].splitlines()[1:-1])
    assert tls_key_body[:40] not in arguments.replace(b"\n", b"")
