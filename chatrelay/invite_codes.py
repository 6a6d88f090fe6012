"""The owner's side of invite codes: made offline with their uses split between the
group's relays (chatrelay/invites.py), kept in the state file, followed (the uses each
relay counted) and revoked (an owner command every relay of the group honours)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from chatrelay import group, invites
from chatrelay import envelope as env
from chatrelay.checker import relay_name
from chatrelay.connection import RelayClient
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.items import Checked, Skipped
from chatrelay.links import ShortLink
from chatrelay.owner import _owner_read, _send_to_relays
from chatrelay.state import MadeInvite, OwnedGroup, b64, unb64
from chatrelay.v1 import relay_pb2

ID_DIGITS = 12  # an invite's id: the first hex digits of its key


def make_invite(owned: OwnedGroup, uses: int = 1, expires_in_s: int = 0) -> str:
    """Made offline: nothing is sent to any relay until the invitee joins. Its uses are
    split between the relays the group's current profile lists, and it is kept in
    `owned.invites` (save the state after)."""
    profile = group.verify_profile(env.decode(unb64(owned.profile)), group_id=bytes.fromhex(owned.group_id))
    now = int(time.time())
    expires_at = now + expires_in_s if expires_in_s else 0
    invite = invites.make_invite(owned.secrets(), ShortLink.parse(owned.link), uses=uses, expires_at=expires_at,
                                 relays=[r.relay_key for r in profile.profile.relays])
    owned.invites.append(MadeInvite(
        id=invite.invite_key.hex()[:ID_DIGITS], invite_key=b64(invite.invite_key), uses=uses,
        shares={b64(s.relay_key): s.uses for s in invite.grant.shares}, expires_at=expires_at, made_at=now,
    ))
    return invite.render()


def find_invite(owned: list[OwnedGroup], code_id: str) -> tuple[OwnedGroup, MadeInvite]:
    """An invite this identity made, by its id (or a longer prefix of its key in hex)."""
    wanted = code_id.strip().lower()
    if len(wanted) < ID_DIGITS or any(c not in "0123456789abcdef" for c in wanted):
        raise ChatRelayError(Reason.MALFORMED, f"an invite id is {ID_DIGITS} hex digits, got {code_id!r}")
    for g in owned:
        for made in g.invites:
            if unb64(made.invite_key).hex().startswith(wanted):
                return g, made
    raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"no invite {code_id!r} in this state file; "
                                                 "`chatrelay invite list` shows them")


@dataclass(frozen=True, slots=True)
class RelayUses:
    relay: str  # its name
    share: int  # the uses it may count
    used: int | None  # None: the relay did not answer
    revoked: bool


@dataclass(frozen=True, slots=True)
class InviteStatus:
    made: MadeInvite
    relays: tuple[RelayUses, ...]

    @property
    def used(self) -> int:
        return sum(r.used or 0 for r in self.relays)


async def list_invites(owned: OwnedGroup) -> Checked:
    """Each invite made for the group, with the uses each relay counted (a relay down is
    in `.skipped`, its uses unknown)."""
    counted: dict[str, dict[bytes, relay_pb2.InviteUses]] = {}
    skipped: list[Skipped] = []
    for entry in owned.relays:
        if entry.state == "removed":
            continue
        try:
            async with RelayClient(entry.target) as client:
                response = await client.call(
                    "ListInvites", relay_pb2.ListInvitesRequest(envelope=_owner_read(owned, entry.address)))
        except ChatRelayError as exc:
            skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
            continue
        counted[entry.relay_key] = {u.invite_key: u for u in response.invites}
    out = Checked(skipped=skipped)
    for made in owned.invites:
        key = unb64(made.invite_key)
        rows = []
        for entry in owned.relays:
            if entry.state == "removed" or (made.shares and entry.relay_key not in made.shares):
                continue  # a relay with no share counts none of its uses
            share = made.shares.get(entry.relay_key, made.uses)
            here = counted.get(entry.relay_key)
            found = here.get(key) if here is not None else None
            rows.append(RelayUses(relay=relay_name(entry), share=share,
                                  used=None if here is None else (found.used if found else 0),
                                  revoked=bool(found and found.revoked_at)))
        out.append(InviteStatus(made=made, relays=tuple(rows)))
    return out


async def revoke_invite(owned: OwnedGroup, made: MadeInvite) -> Checked:
    """A signed revocation to every relay of the group (those with no share too: the
    code's receipts admit members there). The answers, with the relays that refused or
    were down in `.skipped`; raised when no relay took it."""
    answers = await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_REVOKE_INVITE,
                                    invite_key=unb64(made.invite_key))
    made.revoked = True
    return answers
