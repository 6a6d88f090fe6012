"""The client's own relays (issue 19): `chatrelay relays config add|list|remove`, kept in
the state file with each relay's key and TLS fingerprint; `channel create` and `group
create` without --relay use them; a relay link given to `join` or `connect` is offered
for the configuration and refused as a group or contact. Bad input: one line, exit 2."""

from __future__ import annotations

import asyncio
import json

from chatrelay import tls
from chatrelay.links import ShortLink

from realparts import cli


async def run(*args):
    return await asyncio.to_thread(cli, *args)


async def refused(*args) -> str:
    done = await run(*args)
    assert (done.returncode, done.stdout, len(done.stderr.splitlines())) == (2, "", 1), done
    return done.stderr.strip()


async def test_relays_of_ones_own_make_groups_without_relay_flags(relay, tmp_path):
    me, other = str(tmp_path / "me.json"), str(tmp_path / "other.json")
    assert (await run("relays", "config", "list", "--state", me)).stdout == ""
    assert await refused("channel", "create", "--name", "News", "--state", me) == (
        "chatrelay: no relay given and none configured: pass --relay RELAY_LINK, or add one with "
        "`chatrelay relays config add RELAY_LINK` (malformed)")

    added = await run("relays", "config", "add", relay.link, "--state", me)
    assert added.returncode == 0, added.stderr
    name = added.stdout.split(" ")[1]
    assert added.stdout == f"added: {name} {relay.link}\n"
    again = await run("relays", "config", "add", relay.link, "--state", me)
    assert again.stdout == f"already configured: {name} {relay.link}\n"
    pin = tls.render_pin(ShortLink.parse(relay.link).pins[0])
    assert (await run("relays", "config", "list", "--state", me)).stdout == f"{name} {relay.link} {pin}\n"
    kept = json.load(open(me))["relays"]
    assert [(r["link"], r["pins"]) for r in kept] == [(relay.link, [pin])]

    made = await run("channel", "create", "--name", "News", "--state", me)
    assert made.returncode == 0, made.stderr
    assert [r["relay_link"] for r in json.load(open(me))["owned"][0]["relays"]] == [relay.link]
    group = await run("group", "create", "--name", "Club", "--state", me)
    assert group.returncode == 0, group.stderr
    [row] = (await run("relays", "--group", "Club", "--state", me)).stdout.splitlines()
    assert row.startswith(f"{relay.link} ") and " active members=0 " in row

    for command in (("join", relay.link), ("connect", relay.link)):
        what = "a group or channel" if command[0] == "join" else "a contact address or invitation"
        assert await refused(*command, "--state", other) == (
            f"chatrelay: this is a relay link, not {what}: add it to the relays you use with "
            f"`chatrelay relays config add {relay.link}` (link_kind_mismatch)")
    group_link = made.stdout.strip()
    assert await refused("relays", "config", "add", group_link, "--state", other) == (
        f"chatrelay: {group_link} is not a relay link (kind r) (link_kind_mismatch)")
    assert await refused("relays", "config", "add", "not a link", "--state", other) == (
        "chatrelay: link must start with https:// or chatrelay:// (bad_link)")
    real = ShortLink.parse(relay.link)
    other_pin = tls.render_pin(b"\x01" * tls.PIN_SIZE)  # the fingerprint of a certificate the relay does not have
    forged = relay.link.replace(tls.render_pin(real.pins[0]), other_pin)
    assert forged != relay.link
    host = ShortLink.parse(relay.link).hosts[0]
    assert await refused("relays", "config", "add", forged, "--state", other) == (
        f"chatrelay: no host of the link answered: {host}: the relay at {host} presented a key with fingerprint "
        f"{tls.render_pin(real.pins[0])}, not {other_pin} as its link says: "
        "another server is on that address (relay_identity_mismatch)")
    assert not (tmp_path / "other.json").exists()  # nothing refused was kept

    assert (await run("relays", "config", "remove", name, "--state", me)).stdout == f"removed: {name}\n"
    assert await refused("relays", "config", "remove", relay.link, "--state", me) == (
        f"chatrelay: no relay {relay.link!r} in this state file's configuration (configured: none yet) (unknown_address)")
    assert await refused("relays", "--group", "Club") == "chatrelay: Missing option '--state'. (see chatrelay relays --help)"
