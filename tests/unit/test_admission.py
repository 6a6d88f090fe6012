"""A client's check that an author is a member (chatrelay/admission.py): what a relay
shows for a key must prove the group's join policy let it in; anything else is
`not_a_member`, with what failed."""

from __future__ import annotations

import os
import time

from nacl.signing import SigningKey

from chatrelay import admission, group, invites, links, members
from chatrelay import envelope as env
from chatrelay.errors import Reason
from chatrelay.group import GroupKind, JoinPolicy
from chatrelay.members import MemberIdentity
from chatrelay.v1 import relay_pb2

from helpers import refused


class Group:
    def __init__(self, policy: JoinPolicy) -> None:
        self.secrets, signed = group.create_group(GroupKind.GROUP, "Club", join=policy)
        self.profile = group.verify_profile(signed)
        self.link = links.group_link(self.secrets, signed, ["relay.example:7223"]).link

    def join(self, member: MemberIdentity, invite: invites.Invite | None = None, *, proof_for: bytes = b"",
             group_id: bytes = b"") -> relay_pb2.MemberAdmission:
        """`member`'s own join; with `invite`, a proof of the invite key for `proof_for`
        (the member's key unless told)."""
        proof = invites.prove(invite, proof_for or member.public.sign_key) if invite is not None else None
        signed = members.join_request(member, group_id or self.profile.group_id, "address", self.profile.profile.intake_key,
                                      "Ann", invite=proof)
        return relay_pb2.MemberAdmission(join=signed)

    def approval(self, member: bytes, *, by: SigningKey | None = None,
                 kind: int = relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN) -> relay_pb2.MemberAdmission:
        body = relay_pb2.OwnerCommandBody(group_address="address", command_id=os.urandom(16), kind=kind,
                                          request_id=os.urandom(16), member=member, nonce=os.urandom(16),
                                          timestamp=int(time.time()))
        return relay_pb2.MemberAdmission(
            approval=env.sign_message(by or self.secrets.owner_key, env.Domain.OWNER_COMMAND, body))


def not_a_member(g: Group, author: bytes, shown: relay_pb2.MemberAdmission | None) -> str:
    return refused(Reason.NOT_MEMBER, admission.check, g.profile, author, shown).message


def test_the_owners_need_nothing_more():
    g = Group(JoinPolicy.INVITE_ONLY)
    assert admission.check(g.profile, g.profile.profile.root_key, None) is None
    assert admission.check(g.profile, bytes(g.secrets.owner_key.verify_key), None) is None


def test_in_an_open_group_the_members_own_join_admits_it():
    g = Group(JoinPolicy.OPEN)
    ann = MemberIdentity.generate()
    body = admission.check(g.profile, ann.public.sign_key, g.join(ann))
    assert body.keys == ann.public and body.profile.display_name == "Ann"


def test_an_author_that_never_joined_is_not_a_member():
    g = Group(JoinPolicy.OPEN)
    forged = MemberIdentity.generate().public.sign_key
    assert not_a_member(g, forged, None) == "never joined: no signed join of this key"
    assert not_a_member(g, forged, relay_pb2.MemberAdmission()) == "never joined: no signed join of this key"


def test_another_members_join_or_a_join_that_does_not_check_out_admits_nobody():
    g = Group(JoinPolicy.OPEN)
    ann, forged = MemberIdentity.generate(), MemberIdentity.generate()
    assert not_a_member(g, forged.public.sign_key, g.join(ann)) == "the join shown for it is another member's"
    elsewhere = g.join(forged, group_id=os.urandom(32))
    assert not_a_member(g, forged.public.sign_key, elsewhere) == \
        "its join does not check out: join request is for another group"
    tampered = g.join(forged)
    tampered.join.signature = bytes(64)
    assert not_a_member(g, forged.public.sign_key, tampered).startswith("its join does not check out: ")


def test_in_an_approval_group_an_owners_approval_naming_the_member_admits_it():
    g = Group(JoinPolicy.APPROVAL)
    ann = MemberIdentity.generate()
    key = ann.public.sign_key
    assert not_a_member(g, key, g.join(ann)) == \
        "joined without an owner's approval, in a group that takes members by approval"
    shown = g.join(ann)
    shown.MergeFrom(g.approval(key))
    assert admission.check(g.profile, key, shown).keys == ann.public


def test_an_approval_of_another_member_by_a_stranger_or_of_another_kind_admits_nobody():
    g = Group(JoinPolicy.APPROVAL)
    ann, forged = MemberIdentity.generate(), MemberIdentity.generate()
    key = forged.public.sign_key
    for approval, message in (
        (g.approval(ann.public.sign_key), "its approval admits another member"),
        (g.approval(key, by=forged.signing_key), "its approval is not signed by an owner of the group"),
        (g.approval(key, kind=relay_pb2.OWNER_COMMAND_KIND_REJECT_JOIN), "its approval admits another member"),
    ):
        shown = g.join(forged)
        shown.MergeFrom(approval)
        assert not_a_member(g, key, shown) == message
    shown = g.join(forged)
    shown.approval.CopyFrom(env.sign_message(g.secrets.owner_key, env.Domain.POST, relay_pb2.OwnerCommandBody()))
    assert not_a_member(g, key, shown).startswith("its approval does not check out: ")


def test_an_invite_admits_in_any_group_and_is_the_only_way_into_an_invite_only_one():
    for policy in (JoinPolicy.OPEN, JoinPolicy.APPROVAL, JoinPolicy.INVITE_ONLY):
        g = Group(policy)
        ann = MemberIdentity.generate()
        invite = invites.make_invite(g.secrets, g.link)
        assert admission.check(g.profile, ann.public.sign_key, g.join(ann, invite)).keys == ann.public
    forged = MemberIdentity.generate()
    assert not_a_member(g, forged.public.sign_key, g.join(forged)) == \
        "joined without an invite, in a group that takes members by invite only"


def test_an_invite_proof_made_for_another_member_or_used_after_it_expired_admits_nobody():
    g = Group(JoinPolicy.INVITE_ONLY)
    ann, forged = MemberIdentity.generate(), MemberIdentity.generate()
    invite = invites.make_invite(g.secrets, g.link)
    copied = g.join(forged, invite, proof_for=ann.public.sign_key)  # Ann's proof, in the forged join
    assert not_a_member(g, forged.public.sign_key, copied) == \
        "its invite does not check out: joiner does not hold the invite key"
    expired = invites.make_invite(g.secrets, g.link, expires_at=int(time.time()) - 10)
    assert not_a_member(g, forged.public.sign_key, g.join(forged, expired)) == \
        "its invite does not check out: invite has expired"


def test_an_invite_good_when_the_member_joined_stays_good_after_it_expired(monkeypatch):
    """Checked at the member's signed join time, not the reader's: a member admitted by an
    invite that has expired since stays a member."""
    g = Group(JoinPolicy.INVITE_ONLY)
    ann = MemberIdentity.generate()
    now = int(time.time())
    invite = invites.make_invite(g.secrets, g.link, expires_at=now - 50)  # expired by now
    with monkeypatch.context() as m:
        m.setattr(members.time, "time", lambda: now - 100)  # Ann joined before it expired
        shown = g.join(ann, invite)
    assert admission.check(g.profile, ann.public.sign_key, shown).keys == ann.public
