"""Joining a group (the member's side): by a group or channel link, or by an invite code,
at every relay the group lists; a relay added later is joined with what admitted the
member at the others (an approval, the invite and the receipt of the relay that counted
its use)."""

from __future__ import annotations

from chatrelay import admission, group, invites, members
from chatrelay import envelope as env
from chatrelay.checker import reader_key, shown_members
from chatrelay.connection import RETRY_S, RelayClient, one_member, resolve_link, target_of_link
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import LinkKind, ShortLink
from chatrelay.members import MemberIdentity
from chatrelay.state import Membership, OwnedGroup, RelayEntry, b64, unb64
from chatrelay.v1 import core_pb2, relay_pb2


async def join(link_text: str, display_name: str = "", *, known: list[Membership] = ()) -> Membership:
    """Join by a group or channel link, or by an invite code (which carries the link and
    passes INVITE_ONLY and APPROVAL gates while every owner is offline). A group of
    `known` (memberships held already) is joined again with the same keys: the group
    knows the member as it was (a banned key stays refused). The link's resolution and
    the joins share one connection per relay (`one_member`)."""
    async with one_member():
        return await _join(link_text, display_name, known)


async def _join(link_text: str, display_name: str, known: list[Membership]) -> Membership:
    invite = None
    if link_text.strip().startswith(invites.PREFIX):
        invite = invites.parse_invite(link_text)
        link = invite.group_link
    else:
        link = ShortLink.parse(link_text)
    if link.kind not in (LinkKind.GROUP, LinkKind.CHANNEL):
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, "only group (g) and channel (c) links can be joined")
    resolved = await resolve_link(link)
    profile = resolved.profile
    if invite is not None and invite.grant.group_id != profile.group_id:
        raise ChatRelayError(Reason.BAD_INVITE, "invite code is for another group than its link")
    if not profile.profile.relays:
        raise ChatRelayError(Reason.NOT_ACTIVE, "this group has no relays yet")
    again = next((m for m in known if m.group_id == profile.group_id.hex()), None)
    member = (MemberIdentity.generate() if again is None  # a new identity per group: groups stay unlinked
              else MemberIdentity(sign_seed=unb64(again.sign_seed), box_secret=unb64(again.box_secret)))
    entries: dict[bytes, RelayEntry] = {}
    status, receipt, refusal = "member", None, None
    for ref in _invite_order(profile, invite):
        try:
            entry, response = await join_relay(member, profile, ref, display_name, invite, receipt=receipt)
        except ChatRelayError as exc:
            if invite is None or receipt is not None or not _try_next(exc, ref, profile, invite):
                raise
            refusal = exc
            entries[ref.relay_key] = RelayEntry(  # joined later with the receipt (ensure_joined)
                relay_link=ref.relay_link, relay_key=b64(ref.relay_key), address=ref.group_address,
                target=target_of_link(ShortLink.parse(ref.relay_link)), state="new")
            continue
        if response.status == relay_pb2.JOIN_STATUS_PENDING_APPROVAL:
            status = "pending"
        elif response.status == relay_pb2.JOIN_STATUS_HELD and status == "member":
            status = "held"
        if receipt is None and response.HasField("invite_receipt") and _receipt_holds(response.invite_receipt,
                                                                                       invite, member, profile):
            receipt = response.invite_receipt
        entries[ref.relay_key] = entry
    if refusal is not None and receipt is None and status == "member":
        raise refusal  # no relay holding a share took it
    return Membership(
        group_id=profile.group_id.hex(),
        kind="channel" if profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL else "group",
        name=profile.profile.name, link=str(link), sign_seed=b64(member.sign_seed),
        box_secret=b64(member.box_secret), display_name=display_name,
        profile=b64(env.encode(profile.envelope)), status=status,
        relays=[entries[r.relay_key] for r in profile.profile.relays if r.relay_key in entries],
        invite_receipt=b64(env.encode(receipt)) if receipt is not None else "",
    )


def _receipt_holds(receipt: core_pb2.SignedEnvelope, invite, member: MemberIdentity,
                   profile: group.VerifiedProfile) -> bool:
    """Whether the receipt a relay gave would admit this member at the others (one that
    would not is not kept: the next relay holding a share gives one)."""
    try:
        invites.check_receipt(receipt, invite.grant, member.public.sign_key, profile)
    except ChatRelayError:
        return False
    return True


def _invite_order(profile: group.VerifiedProfile, invite) -> list[core_pb2.RelayRef]:
    """The relays to join, those holding a share of the invite's uses first (the first
    that takes it gives the receipt the others admit the member with)."""
    relays = list(profile.profile.relays)
    if invite is None or not invite.grant.shares:
        return relays
    return sorted(relays, key=lambda r: invites.share_at(invite.grant, r.relay_key) == 0)


def _try_next(exc: ChatRelayError, ref: core_pb2.RelayRef, profile: group.VerifiedProfile, invite) -> bool:
    """Whether a relay's refusal of an invite leaves it to another relay of the group: its
    share used up or none, or the relay down, while another one holds a share."""
    if exc.reason not in (Reason.BAD_INVITE, Reason.UNAVAILABLE) or not invite.grant.shares:
        return False
    return any(invites.share_at(invite.grant, r.relay_key) for r in profile.profile.relays
               if r.relay_key != ref.relay_key)


async def join_relay(member: MemberIdentity, profile: group.VerifiedProfile, ref: core_pb2.RelayRef,
                     display_name: str, invite=None, *, proof: core_pb2.InviteProof | None = None,
                     approval: core_pb2.SignedEnvelope | None = None, receipt: core_pb2.SignedEnvelope | None = None,
                     ) -> tuple[RelayEntry, relay_pb2.JoinResponse]:
    """Join the group at one of its relays; the entry for the state file and the answer.
    `invite`: the code joined with; `proof`, `approval`, `receipt`: what admitted this
    member at another relay of the group (the receipt: of the relay that counted its
    invite's use)."""
    entry = RelayEntry(
        relay_link=ref.relay_link, relay_key=b64(ref.relay_key), address=ref.group_address,
        target=target_of_link(ShortLink.parse(ref.relay_link)),
    )
    if invite is not None:
        proof = invites.prove(invite, member.public.sign_key)

    def request() -> relay_pb2.JoinRequest:  # signed anew each try
        return relay_pb2.JoinRequest(envelope=members.join_request(
            member, profile.group_id, ref.group_address, profile.profile.intake_key, display_name, invite=proof,
            approval=approval, receipt=receipt if proof is not None else None,
        ))
    async with RelayClient(entry.target) as client:  # a join is by member key: asking again is safe
        response = await client.call("Join", request, retry_for_s=RETRY_S)
    if response.status == relay_pb2.JOIN_STATUS_REJECTED:
        raise ChatRelayError(Reason.REFUSED, f"the owners refused the join: {response.reason}" if response.reason
                             else "the owners refused the join")
    entry.state = "joined"
    return entry, response


async def ensure_joined(who: OwnedGroup | Membership, entry: RelayEntry) -> None:
    """A member joins a relay the owners added since it joined, with the keys it joined
    with, before it reads there."""
    if not isinstance(who, Membership) or entry.state == "joined":
        return
    member = MemberIdentity(sign_seed=unb64(who.sign_seed), box_secret=unb64(who.box_secret))
    profile = group.verify_profile(env.decode(unb64(who.profile)), group_id=bytes.fromhex(who.group_id))
    ref = core_pb2.RelayRef(relay_key=unb64(entry.relay_key), relay_link=entry.relay_link, group_address=entry.address)
    proof = approval = None
    if profile.profile.settings.join != core_pb2.JOIN_POLICY_OPEN:  # what let it in elsewhere lets it in here
        joined, shown = await _own_admission(who, profile)
        if joined is not None:
            proof = joined.invite if joined.HasField("invite") else None
            approval = shown.approval if shown.HasField("approval") else None
    receipt = env.decode(unb64(who.invite_receipt)) if who.invite_receipt else None
    _, response = await join_relay(member, profile, ref, who.display_name, proof=proof, approval=approval,
                                   receipt=receipt)
    if response.status == relay_pb2.JOIN_STATUS_HELD:  # not active there yet: joined again on the next try
        raise ChatRelayError(Reason.UNAVAILABLE, "the relay holds the join until the group is active there")
    if response.status == relay_pb2.JOIN_STATUS_PENDING_APPROVAL:  # asked again on the next read
        raise ChatRelayError(Reason.NOT_MEMBER, "the join waits for the owners' approval at this relay")
    entry.state = "joined"


async def _own_admission(who: Membership, profile: group.VerifiedProfile
                         ) -> tuple[core_pb2.JoinBody | None, relay_pb2.MemberAdmission | None]:
    """This member's join and approval, as a relay it joined before shows them, checked
    (chatrelay/admission.py): a relay that shows something else is passed over."""
    key = reader_key(who)
    me = bytes(key.verify_key)
    for other in who.relays:
        if other.state != "joined":
            continue
        try:
            shown = await shown_members(key, other, member=me)
            found = next((m for m in shown if m.join.signer == me), None)
            joined = admission.check(profile, me, found)
        except ChatRelayError:
            continue  # down, forgot it, or shows what does not check out: another may show it
        if joined is not None:
            return joined, found
    return None, None
