"""The owner's side of the SDK: make a group or channel and register it with relays,
command it, decide on joins, add and remove relays (invite codes: chatrelay/invite_codes.py)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from chatrelay import group, links, members
from chatrelay import envelope as env
from chatrelay.connection import (
    MAX_PAGES, NONCE, RETRY_S, RelayClient, RelayInfo, relay_info, resolve_link, target_of_link,
)
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.items import Checked, Skipped, take
from chatrelay.links import ShortLink
from chatrelay.checker import relay_name
from chatrelay.state import OwnedGroup, RelayEntry, b64, unb64
from chatrelay.v1 import core_pb2, relay_pb2


async def register(
    client: RelayClient, relay: RelayInfo, profile: core_pb2.SignedEnvelope, group_id: bytes
) -> tuple[str, int]:
    """Registration steps 1 to 3; returns (group address, state). Idempotent."""
    registration_key = SigningKey.generate()  # made for this group and this relay only

    def request() -> relay_pb2.RegisterGroupRequest:  # signed anew each try
        body = relay_pb2.RegisterGroupBody(
            profile=profile, registration_key=bytes(registration_key.verify_key),
            nonce=os.urandom(NONCE), timestamp=int(time.time()),
        )
        return relay_pb2.RegisterGroupRequest(envelope=env.sign_message(registration_key, env.Domain.REGISTER, body))
    response = await client.call("RegisterGroup", request, retry_for_s=RETRY_S)  # one address however often
    checked, grant = env.verify_message(response.address, env.Domain.ADDRESS, relay_pb2.AddressGrant, "address grant")
    if checked.signer != relay.relay_key or grant.relay_key != relay.relay_key:
        raise ChatRelayError(Reason.UNKNOWN_SIGNER, "address grant is not signed by the relay of the relay link")
    if grant.group_id != group_id or not grant.group_address:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "address grant is for another group")
    return grant.group_address, response.state


async def owner_command(
    client: RelayClient, key: SigningKey, address: str, kind: int, *, profile=None,
    command_id: bytes | None = None, request_id: bytes = b"", member: bytes = b"", reason: str = "",
    invite_key: bytes = b"",
) -> relay_pb2.OwnerCommandResponse:
    body = relay_pb2.OwnerCommandBody(
        group_address=address, command_id=command_id or os.urandom(16), kind=kind, request_id=request_id,
        member=member, reason=reason, invite_key=invite_key, nonce=os.urandom(NONCE), timestamp=int(time.time()),
    )
    if profile is not None:
        body.profile.CopyFrom(profile)
    envelope = env.sign_message(key, env.Domain.OWNER_COMMAND, body)
    return await client.call("OwnerCommand", relay_pb2.OwnerCommandRequest(envelope=envelope))


async def create_group(
    relay_links: list[str], name: str, kind: group.GroupKind, join: group.JoinPolicy = group.JoinPolicy.OPEN,
    description: str = "", direct_messages: bool = False,
) -> OwnedGroup:
    """Make a group or channel, register it with each relay, activate it, store its link."""
    relays = [await relay_info(r) for r in relay_links]
    secrets, signed = group.create_group(
        kind, name, join=join, description=description, direct_messages=direct_messages
    )
    current = group.verify_profile(signed)
    entries: list[RelayEntry] = []
    for relay in relays:
        async with RelayClient(relay.target) as client:
            address, _ = await register(client, relay, signed, secrets.group_id)
        entries.append(RelayEntry(
            relay_link=str(relay.link), relay_key=b64(relay.relay_key), address=address, target=relay.target,
        ))
    # Step 4: the relays' addresses into the profile, version + 1, sent to each relay.
    refs = [
        core_pb2.RelayRef(relay_key=unb64(e.relay_key), relay_link=e.relay_link, group_address=e.address)
        for e in entries
    ]
    updated = group.next_version(secrets.owner_key, current, relays=refs)
    for entry in entries:
        async with RelayClient(entry.target) as client:
            response = await owner_command(
                client, secrets.owner_key, entry.address, relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE, profile=updated
            )
        entry.state = relay_pb2.GroupState.Name(response.state).removeprefix("GROUP_STATE_").lower()
    endpoints: dict[str, bytes] = {}  # host -> its relay's TLS pin, in the order given
    for relay in relays:
        for host, pin in relay.link.endpoints():
            endpoints.setdefault(host, pin or b"")
    hosts = list(endpoints)[: links.MAX_HOSTS]
    bundle = links.group_link(secrets, updated, hosts, pins=[endpoints[h] for h in hosts])
    for entry in entries:
        async with RelayClient(entry.target) as client:
            await client.store_link(secrets.owner_key, bundle)
    return OwnedGroup(
        group_id=secrets.group_id.hex(), kind=kind.value, name=name, link=str(bundle.link),
        owner_seed=b64(secrets.owner_seed), owner_id=b64(secrets.owner_id),
        intake_secret=b64(secrets.intake_secret),
        root_seed=b64(secrets.root_seed) if secrets.root_seed else None,
        profile=b64(env.encode(updated)), relays=entries, link_secret=b64(secrets.link_secret),
    )


async def _send_to_relays(owned: OwnedGroup, kind: int, first: RelayEntry | None = None,
                          **fields) -> Checked:
    """One command id for all relays: a retry anywhere is applied once there. `first`:
    the relay that gets it before the others. Every relay is tried, whatever another
    answered: the answers, with each relay that refused or was down in `.skipped` (a
    later version reaches it); the refusal is raised only when no relay took it."""
    key = SigningKey(unb64(owned.owner_seed))
    command_id = os.urandom(16)
    responses, errors = Checked(), []
    for entry in sorted(owned.relays, key=lambda e: e is not first):
        try:
            async with RelayClient(entry.target) as client:
                response = await owner_command(client, key, entry.address, kind, command_id=command_id, **fields)
        except ChatRelayError as exc:
            errors.append(exc)
            responses.skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
            continue
        entry.state = relay_pb2.GroupState.Name(response.state).removeprefix("GROUP_STATE_").lower()
        responses.append(response)
    if errors and not responses:
        raise errors[0]
    return responses


async def suspend(owned: OwnedGroup) -> list[relay_pb2.OwnerCommandResponse]:
    return await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_SUSPEND)


async def resume(owned: OwnedGroup) -> list[relay_pb2.OwnerCommandResponse]:
    return await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_RESUME)


def _owner_read(owned: OwnedGroup, address: str, since_seq: int = 0) -> core_pb2.SignedEnvelope:
    body = relay_pb2.OwnerReadBody(
        group_address=address, since_seq=since_seq, nonce=os.urandom(NONCE), timestamp=int(time.time())
    )
    return env.sign_message(SigningKey(unb64(owned.owner_seed)), env.Domain.OWNER_READ, body)


async def service_log(owned: OwnedGroup) -> list[tuple[RelayEntry, relay_pb2.ServiceLogEntry]]:
    """Every relay's service log, page by page (pages are sized in bytes)."""
    out = []
    for entry in owned.relays:
        since = 0
        async with RelayClient(entry.target) as client:
            for _ in range(MAX_PAGES):
                response = await client.call(
                    "ReadServiceLog", relay_pb2.ServiceLogRequest(envelope=_owner_read(owned, entry.address, since))
                )
                if not response.entries:
                    break
                out.extend((entry, e) for e in response.entries)
                since = response.entries[-1].seq
    return out


@dataclass(frozen=True, slots=True)
class PendingJoin:
    request_id: bytes
    display_name: str
    sign_key: bytes
    relay: str

    def __str__(self) -> str:
        # Hex, not base64url: an id starting with "-" would read as an option on a command line.
        return f"{self.request_id.hex()} {self.display_name or '(no name)'}"


async def pending(owned: OwnedGroup) -> Checked:
    """Join requests waiting for the owners, with the member keys as the member sealed
    them to the owners: a relay that swapped keys in the request is caught here. A
    request that does not check out is skipped, with its id and reason (`.skipped`):
    reject it by that id, and it is gone."""
    group_id = bytes.fromhex(owned.group_id)
    out: dict[bytes, PendingJoin] = {}
    skipped: dict[str, Skipped] = {}
    for entry in owned.relays:
        async with RelayClient(entry.target) as client:
            response = await client.call(
                "ListPending", relay_pb2.ListPendingRequest(envelope=_owner_read(owned, entry.address))
            )

        def check(item, relay=entry.relay_link) -> PendingJoin:
            body = members.verify_join(item.join, group_id)
            announced = members.open_announcement(body.sealed_announcement, unb64(owned.intake_secret), group_id)
            if announced.keys != body.keys:
                raise ChatRelayError(Reason.UNKNOWN_SIGNER, "join request keys differ from what the member sealed to the owners")
            return PendingJoin(request_id=item.request_id, display_name=announced.profile.display_name,
                               sign_key=body.keys.sign_key, relay=relay)
        taken = take(response.pending, check, lambda item: f"join request {item.request_id.hex()}")
        for join in taken:
            out.setdefault(join.request_id, join)
        for bad in taken.skipped:
            skipped.setdefault(bad.item, bad)
    return Checked(out.values(), skipped.values())


async def decide(owned: OwnedGroup, request_id_text: str, approve: bool, reason: str = "") -> None:
    """Approve or reject a pending join. An approval names the member's key as the member
    sealed it to the owners, so members can check who the owners let in. A rejection's
    `reason` is what the member is told when it asks again."""
    request_id = parse_request_id(request_id_text)
    if not approve:
        await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_REJECT_JOIN, request_id=request_id, reason=reason)
        return
    found = [p for p in await pending(owned) if p.request_id == request_id]
    if not found:
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no pending join request with this id")
    await _send_to_relays(
        owned, relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN, request_id=request_id, member=found[0].sign_key)


def parse_request_id(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 16:
        raise ChatRelayError(Reason.MALFORMED, f"request id is malformed: {text!r} is not 32 hex digits")
    return value


async def add_relay(owned: OwnedGroup, relay_link: str) -> RelayEntry:
    """Register with one more relay and publish it in a new profile version. Running it
    again changes nothing: the relay answers with the same address."""
    relay = await relay_info(relay_link)
    secrets_key = SigningKey(unb64(owned.owner_seed))
    current = await latest_profile(owned)
    async with RelayClient(relay.target) as client:
        address, _ = await register(client, relay, current.envelope, current.group_id)
    for entry in owned.relays:
        if entry.address == address and entry.relay_key == b64(relay.relay_key):
            return entry  # already there
    entry = RelayEntry(relay_link=str(relay.link), relay_key=b64(relay.relay_key), address=address, target=relay.target)
    refs = [*current.profile.relays, core_pb2.RelayRef(relay_key=relay.relay_key, relay_link=str(relay.link), group_address=address)]
    updated = group.next_version(secrets_key, current, relays=refs)
    owned.relays.append(entry)
    await publish(owned, updated, first=entry)  # active there before members hear of it
    revoked = [m for m in owned.invites if m.revoked]
    if revoked:  # what the owners revoked stays revoked there too
        async with RelayClient(entry.target) as client:
            for made in revoked:
                await owner_command(client, secrets_key, address, relay_pb2.OWNER_COMMAND_KIND_REVOKE_INVITE,
                                    invite_key=unb64(made.invite_key))
    return entry


async def publish(owned: OwnedGroup, updated: core_pb2.SignedEnvelope, first: RelayEntry | None = None) -> Checked:
    """A new profile version to every relay of the group (each puts it in the group's
    stream, where members find it) and into the link data, for those who join later.
    Kept as the owner's once any relay took it; `.skipped`: the relays that did not."""
    sent = await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE, first=first, profile=updated)
    owned.profile = b64(env.encode(updated))
    owned.name = group.verify_profile(updated).profile.name
    secrets = owned.secrets()
    link = ShortLink.parse(owned.link)
    bundle = links.group_link(secrets, updated, link.hosts, pins=link.pins)
    writers = list(group.verify_profile(updated).owners)  # the group's owners may each replace it
    for entry in owned.relays:
        try:
            async with RelayClient(entry.target) as client:
                await client.store_link(secrets.owner_key, bundle, writers)
        except ChatRelayError as exc:
            sent.skipped.append(Skipped(f"relay {relay_name(entry)}", exc.reason, exc.message))
    return sent


def current_profile(owned: OwnedGroup) -> group.VerifiedProfile:
    return group.verify_profile(env.decode(unb64(owned.profile)), group_id=bytes.fromhex(owned.group_id))


async def latest_profile(owned: OwnedGroup) -> group.VerifiedProfile:
    """The group's profile, taking a newer version another owner published (the link
    data holds it, checked against the group's root key and the update rule) before a
    new one is signed on top of it. The link unreachable, or holding what does not check
    out (a relay's garbage, a version no owner could sign over the one held): the one
    held, so no relay can stop the owners from signing the next."""
    held = current_profile(owned)
    try:
        found = (await resolve_link(ShortLink.parse(owned.link))).profile
        if found is None or found.version <= held.version:
            return held
        group.check_update(held, found)
    except ChatRelayError:
        return held
    owned.profile, owned.name = b64(env.encode(found.envelope)), found.profile.name
    known = {(e.relay_key, e.address): e for e in owned.relays}
    owned.relays = [known.get((b64(r.relay_key), r.group_address)) or RelayEntry(
        relay_link=r.relay_link, relay_key=b64(r.relay_key), address=r.group_address,
        target=target_of_link(ShortLink.parse(r.relay_link)), state="active") for r in found.profile.relays]
    return found


async def set_profile(owned: OwnedGroup, *, name: str | None = None, description: str | None = None,
                      join: group.JoinPolicy | None = None, direct_messages: bool | None = None,
                      slow_mode_s: int | None = None, max_post_bytes: int | None = None,
                      links: bool | None = None) -> "Published":
    """Change the name, description, settings or rules for members' posts (slow mode,
    largest post, links allowed): a new profile version, published (`Published`);
    nothing is sent when nothing changes."""
    current = await latest_profile(owned)
    changes: dict = {}
    if name is not None and name != current.profile.name:
        changes["name"] = name
    if description is not None and description != current.profile.description:
        changes["description"] = description
    settings = core_pb2.GroupSettings()
    settings.CopyFrom(current.profile.settings)
    if join is not None:
        settings.join = join.pb
    if direct_messages is not None:
        settings.direct_messages = direct_messages
    if slow_mode_s is not None:
        if not 0 <= slow_mode_s <= MAX_SLOW_MODE_S:
            raise ChatRelayError(Reason.MALFORMED, f"the slow mode is at most {MAX_SLOW_MODE_S // 86400} days, "
                                                   f"not {slow_mode_s} s")
        settings.slow_mode_s = slow_mode_s
    if max_post_bytes is not None:
        if not 0 <= max_post_bytes <= members.MAX_POST:
            raise ChatRelayError(Reason.MALFORMED, f"the largest post is 1 to {members.MAX_POST} bytes (0: no rule), "
                                                   f"not {max_post_bytes}")
        settings.max_post_bytes = max_post_bytes
    if links is not None:
        settings.no_links = not links
    if settings != current.profile.settings:
        changes["settings"] = settings
    if not changes:
        return Published(current.version)
    updated = group.next_version(SigningKey(unb64(owned.owner_seed)), current, **changes)
    group.verify_profile(updated)  # refuse to publish what nobody would accept (a name too long)
    sent = await publish(owned, updated)
    return Published(current.version + 1, sent.skipped)


MAX_SLOW_MODE_S = 30 * 86400


@dataclass(frozen=True, slots=True)
class Published:
    """A profile version as published: its number, and the relays that did not take it
    (a later version reaches them)."""

    version: int
    skipped: list = field(default_factory=list)


async def remove_member(owned: OwnedGroup, member: bytes) -> None:
    """Remove a member (by its Ed25519 key) from the group on every relay: its open
    streams end at once, and it reads and posts nothing more."""
    await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_REMOVE_MEMBER, member=member)


async def remove_relay(owned: OwnedGroup, relay_link: str) -> None:
    """Tell one relay to stop serving the group, and publish the profile without it."""
    link = ShortLink.parse(relay_link)
    gone = [e for e in owned.relays if e.relay_link == str(link)]
    if not gone:
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"{relay_link} is not a relay of this group")
    if len(gone) == len(owned.relays):
        raise ChatRelayError(Reason.NOT_ALLOWED, "a group keeps at least one relay; delete the group instead")
    key = SigningKey(unb64(owned.owner_seed))
    current = await latest_profile(owned)
    removed = {e.address for e in gone}
    refs = [r for r in current.profile.relays if r.group_address not in removed]
    updated = group.next_version(key, current, relays=refs)
    keep = [e for e in owned.relays if e.address not in removed]
    for entry in gone:
        async with RelayClient(entry.target) as client:
            await owner_command(client, key, entry.address, relay_pb2.OWNER_COMMAND_KIND_REMOVE_RELAY)
    owned.relays = keep
    await publish(owned, updated)


async def delete_group(owned: OwnedGroup) -> None:
    """Every relay stops serving the group and drops its posts."""
    await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_DELETE_GROUP)
