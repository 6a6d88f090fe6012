"""Invite codes the owner controls (issue 19): a code's uses split between the group's
relays, so the total is never exceeded though no relay asks another; the relay that
counted a member's use gives it a receipt the others admit it with (that member only);
`invite list` shows the uses at each relay; a revocation every relay honours, with
reason `revoked`. Real relays on loopback, the CLI as a user runs it."""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest
from nacl.signing import SigningKey

from chatrelay import client, group, invites, members
from chatrelay import envelope as env
from chatrelay.checker import relay_name
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.members import MemberIdentity
from chatrelay.state import load, unb64
from chatrelay.v1 import relay_pb2

from realparts import cli, start_relay


async def refused(coro) -> tuple[Reason, str]:
    with pytest.raises(ChatRelayError) as info:
        await coro
    return info.value.reason, info.value.message


async def join_at(entry, profile, who: MemberIdentity, code: str, receipt=None) -> relay_pb2.JoinResponse:
    """A join sent straight to one relay, as a hostile member would send it."""
    request = relay_pb2.JoinRequest(envelope=members.join_request(
        who, profile.group_id, entry.address, profile.profile.intake_key, "x",
        invite=invites.prove(invites.parse_invite(code), who.public.sign_key), receipt=receipt))
    async with client.RelayClient(entry.target) as c:
        return await c.call("Join", request)


async def test_a_code_s_uses_are_split_between_two_relays_and_revoked_at_both(relay, ray_session, tmp_path):
    from chatrelay.cluster import up

    second = await asyncio.to_thread(start_relay, tmp_path / "second")
    try:
        owned = await client.create_group([relay.link, second.link], "Club", GroupKind.GROUP, JoinPolicy.INVITE_ONLY)
        first_at, second_at = owned.relays
        profile = group.verify_profile(env.decode(unb64(owned.profile)))

        # A single use: counted by the first relay; the member is in at both, one person in total.
        once = client.make_invite(owned)
        ann = await client.join(once, "Ann")
        assert ([e.state for e in ann.relays], bool(ann.invite_receipt)) == (["joined", "joined"], True)
        assert await refused(client.join(once, "Bob")) == (Reason.BAD_INVITE, "this invite has been used up")
        bob = MemberIdentity.generate()
        assert await refused(join_at(second_at, profile, bob, once)) == (
            Reason.BAD_INVITE, "this invite's uses are at the group's other relays: join there")
        anns = env.decode(unb64(ann.invite_receipt))
        assert await refused(join_at(second_at, profile, bob, once, receipt=anns)) == (
            Reason.BAD_INVITE, "invite receipt admits another member")
        own = invites.receipt(SigningKey.generate(), invites.parse_invite(once).grant, bob.public.sign_key)
        assert await refused(join_at(second_at, profile, bob, once, receipt=own)) == (
            Reason.BAD_INVITE, "invite receipt is not signed by a relay of the group")
        acks = await client.post(ann, "hello")
        assert (len(acks), acks.skipped) == (2, [])

        # Two uses, one at each relay: the second joiner is counted by the second relay, and
        # joins the first with its receipt when it reads; a third is refused.
        twice = client.make_invite(owned, uses=2)
        carl = await client.join(twice, "Carl")
        dan = await client.join(twice, "Dan")
        assert ([e.state for e in carl.relays], [e.state for e in dan.relays]) == (
            ["joined", "joined"], ["new", "joined"])
        assert await refused(client.join(twice, "Eve")) == (
            Reason.BAD_INVITE, "this invite's uses at this relay are used up")
        read = await client.read_all(dan)
        assert ([p.text for p in read], read.skipped, [e.state for e in dan.relays]) == (
            ["hello"], [], ["joined", "joined"])

        listed = await client.list_invites(owned)
        assert listed.skipped == []
        assert [(s.used, [(r.share, r.used, r.revoked) for r in s.relays]) for s in listed] == [
            (1, [(1, 1, False)]), (2, [(1, 1, False), (1, 1, False)])]

        # Revoked: refused by both relays with reason `revoked`, receipts or not; members
        # it admitted stay.
        five = client.make_invite(owned, uses=5)
        fay = await client.join(five, "Fay")
        made = owned.invites[-1]
        revoked = await client.revoke_invite(owned, made)
        assert (len(revoked), revoked.skipped, made.revoked) == (2, [], True)
        assert await refused(client.join(five, "Gus")) == (Reason.REVOKED, "the owners revoked this invite")
        gus = MemberIdentity.generate()
        fays = env.decode(unb64(fay.invite_receipt))
        for entry, receipt in ((first_at, None), (second_at, None), (second_at, fays)):
            assert await refused(join_at(entry, profile, gus, five, receipt=receipt)) == (
                Reason.REVOKED, "the owners revoked this invite")
        assert (await client.post(fay, "still in")).skipped == []
        listed = await client.list_invites(owned)
        assert [(s.used, [r.revoked for r in s.relays]) for s in listed][2] == (1, [True, True])
    finally:
        await asyncio.to_thread(up.stop, second, ray_shutdown=False)


async def test_a_revocation_must_be_signed_by_an_owner_and_name_a_key(relay):
    owned = await client.create_group([relay.link], "Guarded", GroupKind.GROUP, JoinPolicy.INVITE_ONLY)
    [entry] = owned.relays
    code = client.make_invite(owned)
    key = invites.parse_invite(code).invite_key
    async with client.RelayClient(entry.target) as c:
        assert await refused(client.owner_command(
            c, SigningKey.generate(), entry.address, relay_pb2.OWNER_COMMAND_KIND_REVOKE_INVITE, invite_key=key)) == (
            Reason.UNKNOWN_SIGNER, "owner command is not signed by an owner of the group")
        assert await refused(client.owner_command(
            c, SigningKey(unb64(owned.owner_seed)), entry.address, relay_pb2.OWNER_COMMAND_KIND_REVOKE_INVITE,
            invite_key=key[:5])) == (Reason.MALFORMED, "an invite key is 32 bytes, got 5")
    member = await client.join(code, "still fine")  # neither revoked it
    assert member.status == "member"


def test_invite_codes_from_the_cli(relay, tmp_path):
    state = str(tmp_path / "owner.json")

    def run(*args):
        return cli(*args, "--state", state)

    made = run("group", "create", "--relay", relay.link, "--name", "Club", "--join", "invite")
    assert made.returncode == 0, made.stderr
    assert run("invite", "list").stdout == "no invite codes made for Club; make one with `chatrelay invite create`\n"
    created = run("invite", "create", "--uses", "2")
    assert created.returncode == 0, created.stderr
    code = created.stdout.strip()
    [kept] = json.load(open(state))["owned"][0]["invites"]
    name = relay_name(load(pathlib.Path(state)).owned[0].relays[0])
    assert created.stderr == f"invite {kept['id']}: 2 uses, 2 at {name}\n"
    assert code.startswith(invites.PREFIX) and invites.parse_invite(code).invite_key.hex().startswith(kept["id"])

    joined = cli("join", code, "--state", str(tmp_path / "member.json"))
    assert joined.returncode == 0, joined.stderr
    listed = run("invite", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"{kept['id']}  1/2 used  never expires", f"  {name}: 1/2"]

    revoked = run("invite", "revoke", kept["id"])
    assert (revoked.returncode, revoked.stdout, revoked.stderr) == (0, f"revoked {kept['id']} at 1 of 1 relays\n", "")
    assert run("invite", "list").stdout.splitlines()[0] == f"{kept['id']}  1/2 used  revoked"
    again = cli("join", code, "--state", str(tmp_path / "late.json"))
    assert (again.returncode, again.stderr) == (2, "chatrelay: the owners revoked this invite (revoked)\n")

    for bad, said in (
        ("xyz", "an invite id is 12 hex digits, got 'xyz' (malformed)"),
        ("0" * 12, "no invite '000000000000' in this state file; `chatrelay invite list` shows them (unknown_address)"),
    ):
        done = run("invite", "revoke", bad)
        assert (done.returncode, done.stdout, done.stderr) == (2, "", f"chatrelay: {said}\n")
