"""Resolution, joins, reads and posts through a relay of one's own (issue 19): `join --via` reaches the
hosting relay through the forwarding relay's tunnel, TLS end to end to the hosting relay,
so the hosting relay's access log holds the forwarding relay's address and never the
client's, and the forwarding relay holds neither the link data nor the request; reads
and posts of that membership go the same way. A relay that does not forward says so."""

from __future__ import annotations

import json
import os
import pathlib

from chatrelay import client
from chatrelay.group import GroupKind

from realparts import cli, start_relay

FORWARD_SOURCE = "127.0.0.7"  # where the forwarding relay's tunnels leave from; the client is at 127.0.0.1


def peers(data_dir: str, since: int = 0) -> list[tuple[str, str]]:
    """(method, peer address) of each call in the relay's access log, after line `since`."""
    lines = (pathlib.Path(data_dir) / "access.log").read_text().splitlines()[since:]
    return [(line.split()[2], line.split()[3].rpartition(":")[0]) for line in lines]


def test_a_join_through_ones_own_relay_hides_the_client_from_the_hosting_relay(ray_session, tmp_path):
    import asyncio

    from chatrelay.cluster import up

    hosting = start_relay(tmp_path / "hosting", access_log=True)
    mine = start_relay(tmp_path / "mine", forward="127.0.0.1:0", forward_private=True, forward_source=FORWARD_SOURCE)
    marker = "MARKER" + os.urandom(6).hex()
    state = str(tmp_path / "member.json")
    try:
        owned = asyncio.run(client.create_group([hosting.link], f"Group {marker}", GroupKind.GROUP))
        asyncio.run(client.post(owned, f"post {marker}"))
        before = len(peers(hosting.config.data_dir))
        assert {peer for _, peer in peers(hosting.config.data_dir)} == {"ipv4:127.0.0.1"}  # the owner, directly

        joined = cli("join", owned.link, "--name", f"Mia {marker}", "--via", mine.link, "--state", state)
        assert (joined.returncode, joined.stdout, joined.stderr) == (0, f"joined: Group {marker}\n", "")
        read = cli("read", "--json", "--state", state)
        assert (read.returncode, read.stderr) == (0, "")  # the bridges end quietly with the command
        assert [json.loads(line)["text"] for line in read.stdout.splitlines()] == [f"post {marker}"]
        assert json.load(open(state))["memberships"][0]["via"] == mine.link

        posted = cli("post", f"reply {marker}", "--state", state)
        assert (posted.returncode, posted.stderr) == (0, "")

        calls = peers(hosting.config.data_dir, before)
        assert {"ResolveLink", "Join", "History", "Post"} <= {method for method, _ in calls}, calls
        assert {peer for _, peer in calls} == {f"ipv4:{FORWARD_SOURCE}"}  # never the client's 127.0.0.1

        data = pathlib.Path(mine.config.data_dir)  # the forwarding relay kept none of it
        files = [p for p in data.rglob("*") if p.is_file()]
        assert files and not [p for p in files if marker.encode() in p.read_bytes()]
        assert not (data / "access.log").exists()

        # The configured default: `relays config via` names the relay joins go through.
        other = str(tmp_path / "other.json")
        assert cli("relays", "config", "add", mine.link, "--state", other).returncode == 0
        chosen = cli("relays", "config", "via", mine.link, "--state", other)
        assert (chosen.returncode, chosen.stdout) == (0, "joins go through chatrelay\n"), chosen.stderr
        before = len(peers(hosting.config.data_dir))
        assert cli("join", owned.link, "--state", other).returncode == 0
        assert {peer for _, peer in peers(hosting.config.data_dir, before)} == {f"ipv4:{FORWARD_SOURCE}"}
        assert cli("relays", "config", "list", "--state", other).stdout.endswith(" via\n")

        direct = cli("join", owned.link, "--via", hosting.link, "--state", str(tmp_path / "third.json"))
        assert (direct.returncode, direct.stdout, direct.stderr) == (2, "", (
            "chatrelay: the relay chatrelay does not forward (its operator has not turned forwarding on) "
            "(not_allowed)\n"))
    finally:
        up.stop(mine, ray_shutdown=False)
        up.stop(hosting, ray_shutdown=False)
