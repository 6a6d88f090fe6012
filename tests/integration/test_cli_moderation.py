"""Moderation end to end with the CLI (issue 18), as owners, moderators and members run
it against a running relay: roles, deleting a post, removing and banning a member (whose
`read --follow` ends at once), the group's rules, the member and subscriber counts, and
what a relay forges, refused by members. Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import subprocess
import time

from chatrelay import client, members, moderation, state
from chatrelay.direct import fingerprint
from chatrelay.reader import reader_key
from chatrelay.v1 import core_pb2, relay_pb2

from hostile import HostileRelay
from realparts import Lines, cli

FOLLOW_S = 60  # bounds on a hang, not measures


async def run(*args) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(cli, *args)


async def ok(*args) -> str:
    done = await run(*args)
    assert done.returncode == 0, f"chatrelay {' '.join(args)}: {done.stderr}"
    return done.stdout


async def refused(*args) -> str:
    """The one line a refused command prints (it exits 2)."""
    done = await run(*args)
    assert (done.returncode, done.stdout, len(done.stderr.splitlines())) == (2, "", 1), done
    return done.stderr.strip()


def membership(path):
    return state.load(pathlib.Path(path)).memberships[0]


async def test_moderation_from_the_cli(relay, tmp_path):
    owner, ann, ben, cat = (str(tmp_path / f"{n}.json") for n in ("owner", "ann", "ben", "cat"))
    link = (await ok("group", "create", "--relay", relay.link, "--name", "Mods", "--state", owner)).strip()
    for path, name in ((ann, "Ann"), (ben, "Ben"), (cat, "Cat")):
        await ok("join", link, "--name", name, "--state", path)
    keys = {name: bytes(reader_key(membership(path)).verify_key) for path, name in ((ann, "Ann"), (ben, "Ben"), (cat, "Cat"))}

    # Roles, and the members as the owners see them.
    assert (await ok("role", "Ann", "moderator", "--state", owner)).strip() == f"{fingerprint(keys['Ann'])} is a moderator"
    rows = [line.split(" ") for line in (await ok("members", "--state", owner)).splitlines()]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (fingerprint(keys["Ann"]), "Ann", "moderator"), (fingerprint(keys["Ben"]), "Ben", "member"),
        (fingerprint(keys["Cat"]), "Cat", "member")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[3]) for r in rows)
    assert await refused("role", "Ann", "admin", "--state", owner) == (
        "chatrelay: Invalid value for '{moderator|member}': 'admin' is not one of 'moderator', 'member'. (see chatrelay role --help)")
    assert await refused("role", "Nobody", "moderator", "--state", owner) == (
        "chatrelay: no such member in this group (not_a_member)")
    assert await refused("members", "--state", ann) == (
        "chatrelay: this state file owns no group or channel; make one with `chatrelay channel create` (not_a_member)")

    # A moderator deletes a member's post: the relay serves it no more, members hide it and say who.
    seq = int((await ok("post", "spam", "--state", ben)).strip().removeprefix("posted #"))
    await ok("post", "kept", "--state", cat)
    assert (await ok("delete", str(seq), "--reason", "spam", "--state", ann)).strip() == (
        f"deleted #{seq} by {fingerprint(keys['Ben'])}: spam")
    lines = [json.loads(line) for line in (await ok("read", "--json", "--state", cat)).splitlines()]
    texts = [line["text"] for line in lines if "text" in line]
    said = [line["moderation"] for line in lines if "moderation" in line]
    assert texts == ["kept"]
    assert [(m["what"].split(" ")[0], m["what"].split(" ")[-1], m["by"]) for m in said] == [
        ("post", "deleted", f"moderator {fingerprint(keys['Ann'])}: spam")]
    owned = state.load(pathlib.Path(owner)).owned[0]
    history = relay_pb2.HistoryRequest(credential=client.credential(reader_key(owned), owned.relays[0].address))
    async with client.RelayClient(owned.relays[0].target) as c:
        served = [d.post.signer for d in (await c.call("History", history)).deliveries
                  if d.post.domain == "chatrelay/v1/post"]
    assert served == [keys["Cat"]]
    for args, said_line in (
        (["delete", "0", "--state", ann], "chatrelay: a post's seq is a number from 1, got 0 (malformed)"),
        (["delete", "x", "--state", ann], "chatrelay: Invalid value for 'SEQ': 'x' is not a valid integer. "
                                          "(see chatrelay delete --help)"),
        (["delete", str(seq), "--state", ann], f"chatrelay: no post #{seq} in the group (not_found)"),
        (["delete", str(seq + 1), "--state", cat],
         "chatrelay: moderation is not signed by an owner or a moderator of the group (unknown_signer)"),
        (["delete", str(seq + 1), "--reason", "r" * 501, "--state", ann],
         "chatrelay: moderation reason is 501 characters; at most 500 allowed (too_large)"),
    ):
        assert await refused(*args) == said_line

    # A banned member: its open stream ends at once with the reason; its key cannot join again.
    await ok("post", "hello", "--state", ben)
    follow = subprocess.Popen(["chatrelay", "read", "--follow", "--state", ben], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert [line.strip() for line in Lines(follow.stdout).take(2, FOLLOW_S)] == ["kept", "hello"]
        assert (await ok("remove", "Ben", "--ban", "--delete-posts", "--reason", "flooding", "--state", ann)
                ).strip() == "banned: Ben, posts deleted"
        assert follow.wait(timeout=FOLLOW_S) == 2
        said = follow.stderr.read().splitlines()  # what it read before (the removal may end it first), then why
        assert said[-1] == "chatrelay: removed from this group by its owners or moderators (not_a_member)"
        known = [re.escape("chatrelay: profile v3: 'Mods'"),
                 r"chatrelay: post [\w-]{12} deleted by moderator " + re.escape(f"{fingerprint(keys['Ann'])}: spam"),
                 re.escape(f"chatrelay: member {fingerprint(keys['Ben'])} banned with their posts by moderator "
                           f"{fingerprint(keys['Ann'])}: flooding")]
        assert all(any(re.fullmatch(k, line) for k in known) for line in said[:-1]), said
    finally:
        if follow.poll() is None:
            follow.kill()
    assert await refused("join", link, "--name", "Ben", "--state", ben) == "chatrelay: this key is banned from the group (banned)"
    assert await refused("remove", "Ann", "--state", ann) == (
        "chatrelay: a moderator cannot remove an owner or another moderator (not_allowed)")
    assert await refused("remove", "Cat", "--state", cat) == (
        "chatrelay: moderation is not signed by an owner or a moderator of the group (unknown_signer)")
    assert await refused("remove", "Ben", "--state", owner) == "chatrelay: no such member in this group (not_a_member)"

    # The rules: each refused by the relay with its reason; owners are free.
    assert (await ok("profile", "set", "--slow-mode", "1m", "--max-post", "20", "--links", "off", "--state", owner)
            ).strip() == "profile v4: Mods"
    assert await refused("post", "x" * 21, "--state", cat) == (
        "chatrelay: post is 21 bytes; the group's rules allow at most 20 (too_large)")
    assert await refused("post", "at www.a.io", "--state", cat) == (
        "chatrelay: the group's rules allow no links in posts (not_allowed)")
    await ok("post", "first", "--state", cat)
    assert re.fullmatch(r"chatrelay: the group's slow mode allows one post per 60 s; retry in (59|60) s \(rate_limited\)",
                        await refused("post", "second", "--state", cat))
    owners_post = int((await ok("post", "owners may: www.a.io", "--state", owner)).strip().removeprefix("posted #"))
    for args, said_line in (
        (["--slow-mode", "soon"], "chatrelay: --slow-mode must look like 90s, 30m, 12h or 7d, got 'soon' (malformed)"),
        (["--max-post", "99999"], "chatrelay: the largest post is 1 to 16384 bytes (0: no rule), not 99999 (malformed)"),
        (["--links", "maybe"], "chatrelay: Invalid value for '--links': 'maybe' is not one of 'on', 'off'. "
                               "(see chatrelay profile set --help)"),
    ):
        assert await refused("profile", "set", *args, "--state", owner) == said_line

    # Counts: the relays line of each relay says how many members and open streams.
    [row] = (await ok("relays", "--state", owner)).splitlines()
    assert row.split(" ")[2:] == ["active", "members=2", "subscribers=0"]

    # A report reaches the owners, sealed; a member leaves and is forgotten.
    assert (await ok("report", str(owners_post), "--reason", "off topic", "--state", cat)).strip() == (
        f"reported #{owners_post}")
    owner_key = bytes(reader_key(owned).verify_key)
    assert (await ok("reports", "--state", owner)).splitlines() == [
        f"{fingerprint(keys['Cat'])} reported #{owners_post} by {fingerprint(owner_key)}: off topic | owners may: www.a.io"]
    assert await refused("report", str(owners_post), "--state", cat) == (
        "chatrelay: Missing option '--reason'. (see chatrelay report --help)")
    assert await refused("report", str(owners_post), "--reason", "x", "--state", owner) == (
        "chatrelay: this state file has joined no group; join one with `chatrelay join LINK` (not_a_member)")
    assert await refused("reports", "--state", cat) == (
        "chatrelay: this state file owns no group or channel; make one with `chatrelay channel create` (not_a_member)")
    assert (await ok("leave", "--state", ann)).strip() == "left: Mods"
    assert await refused("read", "--state", ann) == (
        "chatrelay: this state file has joined no group; join one with `chatrelay join LINK` (not_a_member)")
    assert await refused("leave", "--state", ann) == (
        "chatrelay: this state file has joined no group; join one with `chatrelay join LINK` (not_a_member)")
    [row] = (await ok("relays", "--state", owner)).splitlines()
    assert row.split(" ")[3:] == ["members=1", "subscribers=0"]

    # What a relay forges is refused by members: a deletion no moderator signed, a post against the rules.
    hostile = await HostileRelay().start()
    try:
        cat_member = membership(cat)
        group_id = bytes.fromhex(cat_member.group_id)
        genuine = members.sign_post(reader_key(cat_member), group_id, b"genuine")
        forged_deletion = moderation.sign(reader_key(cat_member), group_id, core_pb2.MODERATION_KIND_DELETE_POST,
                                          message_id=members.message_id(genuine))
        against_rules = members.sign_post(reader_key(cat_member), group_id, b"see www.a.io",
                                          client_ts=int(time.time() * 1000) + 1000)
        hostile.deliveries = [relay_pb2.Delivery(seq=i + 1, post=e, message_id=members.item_id(e), relay_ts=1)
                              for i, e in enumerate((genuine, forged_deletion, against_rules))]
        async with client.RelayClient(owned.relays[0].target) as c:
            for name in ("Cat",):  # what the real relay shows of the author
                request = relay_pb2.MemberKeysRequest(
                    credential=client.credential(reader_key(owned), owned.relays[0].address), member=keys[name])
                hostile.admissions.extend((await c.call("MemberKeys", request)).members)
        through = tmp_path / "through-hostile.json"
        await ok("read", "--state", cat)  # Cat holds the version with the rules
        state.save(through, state.State(memberships=[hostile.serving(membership(cat))]))
        read = await run("read", "--state", str(through))
        where = hostile.target.rsplit("@", 1)[-1]
        assert (read.returncode, read.stdout) == (0, "genuine\n")
        assert read.stderr.splitlines() == [
            f"chatrelay: skipped item 2 at {where}: moderation is not signed by an owner or a moderator of the group "
            "(unknown_signer)",
            f"chatrelay: skipped post 3 at {where}: the group's rules allow no links in posts (not_allowed)",
        ]
    finally:
        await hostile.stop()
