"""The CLI scenario of the README, as a user runs it: `chatrelay up` in its own process
(with its own Ray), then channel create, post, join, read, and read --follow across a
restart of `chatrelay up`. Once with the embedded registry, once with a real etcd."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest
from nacl.signing import SigningKey

from chatrelay import codec
from chatrelay.links import ShortLink

from realparts import Lines, Up, cli, free_port, ok

@pytest.mark.parametrize("backend", ["embedded", "etcd"])
def test_channel_from_create_to_follow_across_a_restart(backend, tmp_path, request):
    etcd = request.getfixturevalue("etcd_server").url if backend == "etcd" else None
    data, port = tmp_path / "relay", free_port()
    owner, bob, carol = (str(tmp_path / f"{n}.json") for n in ("owner", "bob", "carol"))
    up = Up(data, port, etcd)
    follower = None
    try:
        link = ok("channel", "create", "--relay", up.link, "--name", "Weather", "--state", owner).strip()
        # Issue 15's bars: at most 130 characters with the relay's TLS pin, 80 without.
        assert link.startswith(f"https://127.0.0.1:{port}/c#") and len(link) <= 130
        assert len(ShortLink.parse(link).render(pinned=False)) <= 80 and ShortLink.parse(link).pins
        assert ok("link", "parse", link)
        assert "joined: Weather" in ok("join", link, "--state", bob, "--name", "Bob")
        for i in range(5):
            assert ok("post", "--state", owner, f"post {i}").strip() == f"posted #{i + 1}"
        assert ok("read", "--state", bob).splitlines() == [f"post {i}" for i in range(5)]

        follower = subprocess.Popen(
            ["chatrelay", "read", "--state", bob, "--follow", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        follow_lines = Lines(follower.stdout)
        first = follow_lines.take(5, 30)
        assert [json.loads(l)["seq"] for l in first] == [1, 2, 3, 4, 5]

        up.stop()  # the relay goes away while the follower waits
        ok_after_stop = cli("post", "--state", owner, "while down", timeout=120)
        assert ok_after_stop.returncode == 2
        relay_link = up.link
        up = Up(data, port, etcd)  # same data dir, same port
        assert up.link == relay_link  # same identity, same relay link
        for i in range(5, 10):
            ok("post", "--state", owner, f"post {i}")
        rest = follow_lines.take(5, 60)
        records = [json.loads(l) for l in first + rest]
        assert [r["seq"] for r in records] == list(range(1, 11))
        assert [r["text"] for r in records] == [f"post {i}" for i in range(10)]
        assert {"seq", "author", "text"} <= set(records[0])

        # A member who joins after the restart reads everything, in order.
        ok("join", link, "--state", carol)
        assert ok("read", "--state", carol).splitlines() == [f"post {i}" for i in range(10)]
        # The state files hold only their own identity's secrets.
        owner_state, bob_state = json.load(open(owner)), json.load(open(bob))
        assert owner_state["memberships"] == [] and bob_state["owned"] == []
        assert oct(os.stat(bob).st_mode & 0o777) == "0o600"
    finally:
        if follower is not None:
            follower.kill()
            follower.wait(timeout=10)
        up.stop()


def test_group_management_from_the_cli(tmp_path):
    one, two = Up(tmp_path / "one", free_port()), Up(tmp_path / "two", free_port())
    owner, bob, carol = (str(tmp_path / f"{n}.json") for n in ("owner", "bob", "carol"))
    try:
        link = ok("group", "create", "--relay", one.link, "--name", "Club", "--join", "approval", "--state", owner).strip()
        assert "/g#" in link
        assert ok("join", link, "--state", bob, "--name", "Bob").strip() == "waiting for the owners to approve: Club"
        [line] = ok("pending", "--state", owner).splitlines()
        request_id, name = line.split(" ", 1)
        assert name == "Bob"
        assert ok("approve", request_id, "--state", owner).strip() == "approved"
        assert ok("pending", "--state", owner) == ""
        eves = [str(tmp_path / f"eve{i}.json") for i in range(2)]
        for eve in eves:  # two of one name: each named by its key too
            ok("join", link, "--state", eve, "--name", "Eve")
        keys = [codec.b64url(bytes(SigningKey(base64.b64decode(json.load(open(e))["memberships"][0]["sign_seed"]))
                                   .verify_key)) for e in eves]
        waiting = dict(reversed(line.split(" ", 1)) for line in ok("pending", "--state", owner).splitlines())
        assert sorted(waiting) == sorted(f"Eve#{key[:12]}" for key in keys)
        assert ok("reject", waiting[f"Eve#{keys[0][:12]}"], "--reason", "one Eve is enough", "--state", owner
                  ).strip() == "rejected"
        again = cli("join", link, "--state", eves[0], "--name", "Eve")  # with the keys she joined with
        assert (again.returncode, again.stderr) == (
            2, "chatrelay: the owners refused the join: one Eve is enough (refused)\n")
        ok("post", "--state", bob, "hello from Bob")  # members post in groups
        assert ok("read", "--state", owner).splitlines() == ["hello from Bob"]

        assert ok("suspend", "--state", owner).strip() == "suspended: new members are refused"
        refused = cli("join", link, "--state", carol)
        assert refused.returncode == 2
        assert refused.stderr == "chatrelay: the owners have suspended new members for now (refused)\n"
        ok("resume", "--state", owner)
        log = [l.split(" ", 2)[2] for l in ok("log", "--state", owner).splitlines()]
        assert [(line.split(" ")[0], line.split(": ", 1)[1]) for line in log] == [
            ("update_profile", "profile v2, group active"), ("approve_join", "member admitted"),
            ("reject_join", "join rejected: one Eve is enough"), ("suspend", "group suspended"),
            ("relay:", "join_refused: 1 join refused: the owners have suspended new members for now (refused)"),
            ("resume", "group active")]

        first = ok("relay", "add", two.link, "--state", owner).split()
        again = ok("relay", "add", two.link, "--state", owner).split()
        assert first[1] == again[1] and first[2] == "active"
        rows = [l.split() for l in ok("relays", "--state", owner).splitlines()]
        assert [r[0] for r in rows] == [one.link, two.link] and {r[2] for r in rows} == {"active"}
        bad = cli("approve", "not-an-id!", "--state", owner)
        assert bad.returncode == 2 and bad.stderr.startswith("chatrelay: request id is malformed")

        # Changes reach members: Bob learns of the second relay from the first, joins it with
        # the owners' approval he has, and reads and posts on both.
        read = cli("read", "--state", bob)
        assert (read.returncode, read.stdout, read.stderr) == (
            0, "hello from Bob\n", f"chatrelay: profile v3: 'Club'; relay added {two.link}\n")
        assert [(r["relay_link"], r["state"]) for r in json.load(open(bob))["memberships"][0]["relays"]] == [
            (one.link, "joined"), (two.link, "joined")]
        posted = cli("post", "--state", bob, "on both relays")
        assert (posted.returncode, posted.stderr) == (0, "")
        assert ok("profile", "set", "--name", "Club 2", "--description", "for tests", "--direct-messages", "on",
                  "--state", owner).strip() == "profile v4: Club 2"
        lines = [json.loads(line) for line in ok("read", "--json", "--state", bob).splitlines()]
        assert [line.get("profile", {}).get("name") or line.get("text") for line in lines] == [
            "Club 2", "hello from Bob", "on both relays"]
        assert json.load(open(bob))["memberships"][0]["name"] == "Club 2"
        for args, said in (
            ([], "chatrelay: nothing to change: give --name, --description, --join, --direct-messages, --slow-mode, "
                 "--max-post or --links\n"),
            (["--name", ""], "chatrelay: profile name must be 1 to 100 characters (bad_profile)\n"),
            (["--join", "everyone"], "chatrelay: Invalid value for '--join': 'everyone' is not one of 'open', "
                                     "'approval', 'invite'. (see chatrelay profile set --help)\n"),
        ):
            refused = cli("profile", "set", *args, "--state", owner)
            assert (refused.returncode, refused.stderr) == (2, said)

        assert ok("relay", "remove", one.link, "--state", owner).strip() == f"removed {one.link}; 1 relay(s) serve the group"
        assert [l.split()[0] for l in ok("relays", "--state", owner).splitlines()] == [two.link]
        read = cli("read", "--state", bob)  # the first relay has dropped the group; the second says so
        assert read.stderr == f"chatrelay: profile v5: 'Club 2'; relay removed {one.link}\n", read.stderr
        assert [r["relay_link"] for r in json.load(open(bob))["memberships"][0]["relays"]] == [two.link]
        last = cli("relay", "remove", two.link, "--state", owner)
        assert (last.returncode, last.stderr) == (
            2, "chatrelay: a group keeps at least one relay; delete the group instead (not_allowed)\n")
        other = cli("relay", "remove", one.link, "--state", owner)
        assert (other.returncode, other.stderr) == (2, f"chatrelay: {one.link} is not a relay of this group (unknown_address)\n")
        assert cli("relay", "remove", "not a link", "--state", owner).returncode == 2
        assert ok("group", "delete", "--state", owner).strip() == "deleted: Club 2"
        gone = cli("join", link, "--state", carol)  # through the relay left, which deleted it
        assert gone.returncode == 2 and gone.stderr.endswith("(not_active)\n"), gone.stderr
        assert json.load(open(owner))["owned"] == []
        again = cli("group", "delete", "--state", owner)
        assert again.returncode == 2 and again.stderr.startswith("chatrelay: ") and len(again.stderr.splitlines()) == 1
    finally:
        one.stop()
        two.stop()


def test_contacts_from_the_cli(tmp_path):
    up = Up(tmp_path / "relay", free_port())
    alice, bob, carol = (str(tmp_path / f"{n}.json") for n in ("alice", "bob", "carol"))
    try:
        address = ok("address", "create", "--relay", up.link, "--name", "Alice", "--state", alice).strip()
        assert "/a#" in address
        assert ok("connect", address, "--state", bob, "--name", "Bob", "--message", "hello Alice").startswith("request sent to Alice")
        [line] = ok("requests", "--state", alice).splitlines()
        request_id, rest = line.split(" ", 1)
        assert rest == "Bob: hello Alice"
        assert ok("accept", request_id, "--state", alice).strip() == "connected: Bob"
        assert ok("requests", "--state", alice) == ""
        assert ok("inbox", "--state", bob).splitlines() == ["Alice: Alice accepted the connection"]
        assert ok("contacts", "--state", bob).splitlines() == ["Alice\tconnected"]
        ok("send", "Alice", "hi there", "--state", bob)
        assert ok("inbox", "--state", alice).splitlines() == ["Bob: hi there"]
        missing = cli("send", "Zed", "x", "--state", bob)
        assert missing.returncode == 2
        assert missing.stderr == "chatrelay: no contact 'Zed' in this state file (contacts: 'Alice') (not_a_member)\n"

        once = ok("invitation", "create", "--relay", up.link, "--name", "Alice", "--state", alice).strip()
        assert "/i#" in once
        ok("connect", once, "--state", carol, "--name", "Carol")
        second = cli("connect", once, "--state", bob, "--name", "Bob again")
        assert second.returncode == 2
        assert second.stderr == "chatrelay: this one-time invitation has already been used (refused)\n"
        [line] = ok("requests", "--state", alice).splitlines()
        assert ok("reject", line.split()[0], "--state", alice).strip() == "rejected"
        assert ok("requests", "--state", alice) == ""

        # Direct messages in a group that allows them, negotiated on demand.
        ann, ben = str(tmp_path / "ann.json"), str(tmp_path / "ben.json")
        link = ok("group", "create", "--relay", up.link, "--name", "Street", "--direct-messages", "--state", alice).strip()
        ok("join", link, "--state", ann, "--name", "Ann")
        ok("join", link, "--state", ben, "--name", "Ben")
        assert ok("dm", "Ben", "hi Ben", "--state", ann).startswith("direct invitation sent to Ben")
        [line] = ok("inbox", "--state", ben).splitlines()
        assert line.startswith("Ann invites you to talk directly: hi Ben (chatrelay dm accept ")
        assert ok("inbox", "--state", ann) == ""  # nothing happens before Ben says yes
        invitation_id = line.removesuffix(")").rsplit(" ", 1)[1]
        assert ok("dm", "accept", invitation_id, "--state", ben).startswith("connecting to Ann")
        unknown = cli("dm", "accept", invitation_id, "--state", ben)
        assert unknown.returncode == 2 and unknown.stderr == (
            f"chatrelay: no direct invitation {invitation_id!r} waiting; `chatrelay inbox` lists them (unknown_address)\n")
        assert ok("inbox", "--state", ann).splitlines() == ["Ben connected directly"]
        assert ok("dm", "Ann", "hello Ann", "--state", ben).splitlines() == [
            "Ann: Ann accepted the connection", "sent",
        ]
        assert ok("inbox", "--state", ann).splitlines() == ["Ben: hello Ann"]
    finally:
        up.stop()


def test_inbox_follow_shows_messages_as_they_come(tmp_path):
    """`inbox --follow` polls each contact's queue about once a second, each at a phase
    of its own, and prints what arrives, one a line."""
    up = Up(tmp_path / "relay", free_port())
    alice, bob = str(tmp_path / "alice.json"), str(tmp_path / "bob.json")
    follower = None
    try:
        address = ok("address", "create", "--relay", up.link, "--name", "Alice", "--state", alice).strip()
        ok("connect", address, "--state", bob, "--name", "Bob")
        [line] = ok("requests", "--state", alice).splitlines()
        ok("accept", line.split()[0], "--state", alice)
        follower = subprocess.Popen(["chatrelay", "inbox", "--follow", "--state", bob],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines = Lines(follower.stdout)
        assert lines.take(1, 60) == ["Alice: Alice accepted the connection\n"]
        ok("send", "Bob", "one", "--state", alice)
        ok("send", "Bob", "two", "--state", alice)
        assert lines.take(2, 60) == ["Alice: one\n", "Alice: two\n"]
    finally:
        if follower is not None:
            follower.kill()
            follower.wait(timeout=10)
        up.stop()
