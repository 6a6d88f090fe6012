"""The client SDK (async): what owners and members run. Everything a relay sends is
checked here again: link data against the link, profiles against the root key and owner
chain, posts against the profile's owners."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import AsyncIterator

import grpc
from nacl.signing import SigningKey

from chatrelay import codec, group, invites, links, members
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import LinkKind, ShortLink
from chatrelay.members import MemberIdentity
from chatrelay.state import Membership, OwnedGroup, RelayEntry, b64, unb64
from chatrelay.status import from_rpc_error
from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc

DEFAULT_PORT = 7223
CALL_TIMEOUT_S = 30
RETRY_S = 30  # how long idempotent calls (registration, join) ride out a relay restarting
READ_RETRY_S = 1.0  # reads: one more try (a relay that is down is skipped soon after)
READS = frozenset({"ResolveLink", "History", "ReadServiceLog", "ListPending", "MemberKeys"})
NONCE = 16


def target_of(host: str) -> str:
    """host[:port] from a link -> a gRPC target."""
    if host.startswith("["):
        return host if "]:" in host else f"{host}:{DEFAULT_PORT}"
    return host if ":" in host else f"{host}:{DEFAULT_PORT}"


def target_of_link(link: ShortLink) -> str:
    """A gRPC target for every host of a relay's link: the gateways of one relay. Where
    all of them are IP addresses the channel fails over from one to the next (gRPC's
    pick_first over an address list); otherwise the first host."""
    targets = [target_of(h) for h in link.hosts]
    if len(targets) > 1:
        v4 = all(_is_ip(t.rpartition(":")[0], 4) for t in targets)
        v6 = all(t.startswith("[") and _is_ip(t.rpartition(":")[0].strip("[]"), 6) for t in targets)
        if v4 or v6:
            return ("ipv4:" if v4 else "ipv6:") + ",".join(targets)
    return targets[0]


def _is_ip(text: str, version: int) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


async def call_retrying(rpc, request, timeout: float = CALL_TIMEOUT_S, retry_for_s: float = 0.0):
    """A unary call, sent again while the relay answers UNAVAILABLE or BUSY (a gateway
    restarting or gone, a shard restarting, its registry reconnecting), for up to
    `retry_for_s` seconds; only for calls that are safe to repeat."""
    deadline = time.monotonic() + retry_for_s
    delay = 0.2
    while True:
        try:
            return await rpc(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
        if error.reason not in (Reason.UNAVAILABLE, Reason.BUSY) or time.monotonic() + delay > deadline:
            raise error
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


class RelayClient:
    """One relay's gateway over gRPC."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = relay_pb2_grpc.RelayServiceStub(self.channel)

    async def __aenter__(self) -> "RelayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def call(self, method: str, request, timeout: float = CALL_TIMEOUT_S, retry_for_s: float | None = None):
        """One call; an idempotent one may pass `retry_for_s` (see `call_retrying`).
        Reads are sent once more after a dropped connection, which reaches the next
        gateway of the relay link when the first one went away."""
        if retry_for_s is None:
            retry_for_s = READ_RETRY_S if method in READS else 0.0
        return await call_retrying(getattr(self.stub, method), request, timeout, retry_for_s)

    async def resolve(self, link: ShortLink) -> links.ResolvedLink:
        response = await self.call(
            "ResolveLink", relay_pb2.ResolveLinkRequest(lookup_id=links.derive(link.link_key).lookup_id)
        )
        return links.resolve(link, response.ciphertext)

    async def store_link(self, signer: SigningKey, bundle: links.LinkBundle) -> bool:
        body = relay_pb2.StoreLinkBody(
            lookup_id=bundle.lookup_id, ciphertext=bundle.ciphertext,
            nonce=os.urandom(NONCE), timestamp=int(time.time()),
        )
        envelope = env.sign_message(signer, env.Domain.LINK_STORE, body)
        response = await self.call("StoreLink", relay_pb2.StoreLinkRequest(envelope=envelope))
        return response.created

    async def post(self, address: str, envelope: core_pb2.SignedEnvelope) -> relay_pb2.PostAck:
        return await self.call("Post", relay_pb2.PostRequest(group_address=address, envelope=envelope))

    def subscribe(self, credential: core_pb2.SignedEnvelope, since_seq: int):
        return self.stub.Subscribe(relay_pb2.SubscribeRequest(credential=credential, since_seq=since_seq))


async def resolve_link(link: ShortLink) -> links.ResolvedLink:
    """Try each host of the link; the data is the same on each, and checked."""
    errors = []
    for host in link.hosts:
        async with RelayClient(target_of(host)) as client:
            try:
                return await client.resolve(link)
            except ChatRelayError as exc:
                if exc.reason not in (Reason.UNAVAILABLE, Reason.UNKNOWN_ADDRESS):
                    raise  # a host that returns bad data is caught, not skipped
                errors.append(f"{host}: {exc.message}")
    raise ChatRelayError(Reason.UNAVAILABLE, "no host of the link answered: " + "; ".join(errors))


@dataclass
class RelayInfo:
    link: ShortLink
    relay_key: bytes

    @property
    def target(self) -> str:
        return target_of_link(self.link)


async def relay_info(relay_link: str) -> RelayInfo:
    link = ShortLink.parse(relay_link)
    if link.kind is not LinkKind.RELAY:
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, f"{relay_link} is not a relay link (kind r)")
    resolved = await resolve_link(link)
    return RelayInfo(link=link, relay_key=resolved.fixed.root_key)


# ---- owners ---------------------------------------------------------------------------


async def register(
    client: RelayClient, relay: RelayInfo, profile: core_pb2.SignedEnvelope, group_id: bytes
) -> tuple[str, int]:
    """Registration steps 1 to 3; returns (group address, state). Idempotent."""
    registration_key = SigningKey.generate()  # made for this group and this relay only
    body = relay_pb2.RegisterGroupBody(
        profile=profile, registration_key=bytes(registration_key.verify_key),
        nonce=os.urandom(NONCE), timestamp=int(time.time()),
    )
    request = relay_pb2.RegisterGroupRequest(envelope=env.sign_message(registration_key, env.Domain.REGISTER, body))
    response = await client.call("RegisterGroup", request, retry_for_s=RETRY_S)  # one address however often
    checked, grant = env.verify_message(response.address, env.Domain.ADDRESS, relay_pb2.AddressGrant, "address grant")
    if checked.signer != relay.relay_key or grant.relay_key != relay.relay_key:
        raise ChatRelayError(Reason.UNKNOWN_SIGNER, "address grant is not signed by the relay of the relay link")
    if grant.group_id != group_id or not grant.group_address:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "address grant is for another group")
    return grant.group_address, response.state


async def owner_command(
    client: RelayClient, key: SigningKey, address: str, kind: int, *, profile=None,
    command_id: bytes | None = None, request_id: bytes = b"",
) -> relay_pb2.OwnerCommandResponse:
    body = relay_pb2.OwnerCommandBody(
        group_address=address, command_id=command_id or os.urandom(16), kind=kind,
        request_id=request_id, nonce=os.urandom(NONCE), timestamp=int(time.time()),
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
    hosts: list[str] = []
    for relay in relays:
        hosts.extend(h for h in relay.link.hosts if h not in hosts)
    bundle = links.group_link(secrets, updated, hosts[: links.MAX_HOSTS])
    for entry in entries:
        async with RelayClient(entry.target) as client:
            await client.store_link(secrets.owner_key, bundle)
    return OwnedGroup(
        group_id=secrets.group_id.hex(), kind=kind.value, name=name, link=str(bundle.link),
        owner_seed=b64(secrets.owner_seed), owner_id=b64(secrets.owner_id),
        intake_secret=b64(secrets.intake_secret),
        root_seed=b64(secrets.root_seed) if secrets.root_seed else None,
        profile=b64(env.encode(updated)), relays=entries,
    )


async def post(owned: OwnedGroup | Membership, text: str, *, retry_for_s: float = 0.0) -> list[relay_pb2.PostAck]:
    """Sign once, send to every relay of the group: members dedupe by message id.

    While no relay has acked, retries for up to `retry_for_s` seconds with the same
    signed post, so an ack lost on the way (a relay restarting) never makes a second post.
    """
    data = text.encode("utf-8")
    key = SigningKey(unb64(owned.owner_seed if isinstance(owned, OwnedGroup) else owned.sign_seed))
    envelope = members.sign_post(key, bytes.fromhex(owned.group_id), data)
    deadline = time.monotonic() + retry_for_s
    delay = 0.1
    while True:
        acks, errors = [], []
        for entry in owned.relays:
            async with RelayClient(entry.target) as client:
                try:
                    acks.append(await client.post(entry.address, envelope))
                except ChatRelayError as exc:
                    if exc.reason is not Reason.UNAVAILABLE:
                        raise
                    errors.append(exc)
        if acks:
            return acks
        if time.monotonic() >= deadline:
            raise errors[0] if errors else ChatRelayError(Reason.UNAVAILABLE, "the group has no relays")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _send_to_relays(owned: OwnedGroup, kind: int, **fields) -> list[relay_pb2.OwnerCommandResponse]:
    """One command id for all relays: a retry anywhere is applied once there."""
    key = SigningKey(unb64(owned.owner_seed))
    command_id = os.urandom(16)
    responses = []
    for entry in owned.relays:
        async with RelayClient(entry.target) as client:
            response = await owner_command(client, key, entry.address, kind, command_id=command_id, **fields)
        entry.state = relay_pb2.GroupState.Name(response.state).removeprefix("GROUP_STATE_").lower()
        responses.append(response)
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
    out = []
    for entry in owned.relays:
        async with RelayClient(entry.target) as client:
            response = await client.call(
                "ReadServiceLog", relay_pb2.ServiceLogRequest(envelope=_owner_read(owned, entry.address))
            )
        out.extend((entry, e) for e in response.entries)
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


async def pending(owned: OwnedGroup) -> list[PendingJoin]:
    """Join requests waiting for the owners, with the member keys as the member sealed
    them to the owners: a relay that swapped keys in the request is caught here."""
    group_id = bytes.fromhex(owned.group_id)
    out: dict[bytes, PendingJoin] = {}
    for entry in owned.relays:
        async with RelayClient(entry.target) as client:
            response = await client.call(
                "ListPending", relay_pb2.ListPendingRequest(envelope=_owner_read(owned, entry.address))
            )
        for item in response.pending:
            body = members.verify_join(item.join, group_id)
            announced = members.open_announcement(body.sealed_announcement, unb64(owned.intake_secret), group_id)
            if announced.keys != body.keys:
                raise ChatRelayError(Reason.UNKNOWN_SIGNER, "join request keys differ from what the member sealed to the owners")
            out.setdefault(item.request_id, PendingJoin(
                request_id=item.request_id, display_name=announced.profile.display_name,
                sign_key=body.keys.sign_key, relay=entry.relay_link,
            ))
    return list(out.values())


async def decide(owned: OwnedGroup, request_id_text: str, approve: bool) -> None:
    request_id = parse_request_id(request_id_text)
    kind = relay_pb2.OWNER_COMMAND_KIND_APPROVE_JOIN if approve else relay_pb2.OWNER_COMMAND_KIND_REJECT_JOIN
    await _send_to_relays(owned, kind, request_id=request_id)


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
    current = group.verify_profile(env.decode(unb64(owned.profile)), group_id=bytes.fromhex(owned.group_id))
    async with RelayClient(relay.target) as client:
        address, _ = await register(client, relay, current.envelope, current.group_id)
    for entry in owned.relays:
        if entry.address == address and entry.relay_key == b64(relay.relay_key):
            return entry  # already there
    entry = RelayEntry(relay_link=str(relay.link), relay_key=b64(relay.relay_key), address=address, target=relay.target)
    refs = [*current.profile.relays, core_pb2.RelayRef(relay_key=relay.relay_key, relay_link=str(relay.link), group_address=address)]
    updated = group.next_version(secrets_key, current, relays=refs)
    owned.relays.append(entry)
    await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE, profile=updated)
    owned.profile = b64(env.encode(updated))
    link = ShortLink.parse(owned.link)
    secrets = group.OwnerSecrets(
        group_id=current.group_id, owner_id=unb64(owned.owner_id), owner_seed=unb64(owned.owner_seed),
        intake_secret=unb64(owned.intake_secret),
    )
    bundle = links.group_link(secrets, updated, link.hosts)
    for e in owned.relays:
        async with RelayClient(e.target) as client:
            await client.store_link(secrets_key, bundle)
    return entry


async def remove_relay(owned: OwnedGroup, relay_link: str) -> None:
    """Tell one relay to stop serving the group, and publish the profile without it."""
    link = ShortLink.parse(relay_link)
    gone = [e for e in owned.relays if e.relay_link == str(link)]
    if not gone:
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"{relay_link} is not a relay of this group")
    if len(gone) == len(owned.relays):
        raise ChatRelayError(Reason.NOT_ALLOWED, "a group keeps at least one relay; delete the group instead")
    key = SigningKey(unb64(owned.owner_seed))
    current = group.verify_profile(env.decode(unb64(owned.profile)), group_id=bytes.fromhex(owned.group_id))
    removed = {e.address for e in gone}
    refs = [r for r in current.profile.relays if r.group_address not in removed]
    updated = group.next_version(key, current, relays=refs)
    keep = [e for e in owned.relays if e.address not in removed]
    for entry in gone:
        async with RelayClient(entry.target) as client:
            await owner_command(client, key, entry.address, relay_pb2.OWNER_COMMAND_KIND_REMOVE_RELAY)
    owned.relays = keep
    await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_UPDATE_PROFILE, profile=updated)
    owned.profile = b64(env.encode(updated))
    secrets = group.OwnerSecrets(
        group_id=current.group_id, owner_id=unb64(owned.owner_id), owner_seed=unb64(owned.owner_seed),
        intake_secret=unb64(owned.intake_secret),
    )
    bundle = links.group_link(secrets, updated, ShortLink.parse(owned.link).hosts)
    for entry in keep:
        async with RelayClient(entry.target) as client:
            await client.store_link(key, bundle)


async def delete_group(owned: OwnedGroup) -> None:
    """Every relay stops serving the group and drops its posts."""
    await _send_to_relays(owned, relay_pb2.OWNER_COMMAND_KIND_DELETE_GROUP)


def make_invite(owned: OwnedGroup, uses: int = 1, expires_in_s: int = 0) -> str:
    """Made offline: nothing is sent to any relay until the invitee joins."""
    secrets = group.OwnerSecrets(
        group_id=bytes.fromhex(owned.group_id), owner_id=unb64(owned.owner_id),
        owner_seed=unb64(owned.owner_seed), intake_secret=unb64(owned.intake_secret),
    )
    expires_at = int(time.time()) + expires_in_s if expires_in_s else 0
    return invites.make_invite(secrets, ShortLink.parse(owned.link), uses=uses, expires_at=expires_at).render()


# ---- members --------------------------------------------------------------------------


async def join(link_text: str, display_name: str = "") -> Membership:
    """Join by a group or channel link, or by an invite code (which carries the link and
    passes INVITE_ONLY and APPROVAL gates while every owner is offline)."""
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
    member = MemberIdentity.generate()  # a new identity per group: groups stay unlinked
    entries = []
    status = "member"
    for ref in profile.profile.relays:
        relay_link = ShortLink.parse(ref.relay_link)
        entry = RelayEntry(
            relay_link=ref.relay_link, relay_key=b64(ref.relay_key), address=ref.group_address,
            target=target_of_link(relay_link),
        )
        proof = invites.prove(invite, member.public.sign_key) if invite is not None else None
        request = members.join_request(
            member, profile.group_id, ref.group_address, profile.profile.intake_key, display_name, invite=proof
        )
        async with RelayClient(entry.target) as client:  # a join is by member key: asking again is safe
            response = await client.call("Join", relay_pb2.JoinRequest(envelope=request), retry_for_s=RETRY_S)
        if response.status == relay_pb2.JOIN_STATUS_PENDING_APPROVAL:
            status = "pending"
        elif response.status == relay_pb2.JOIN_STATUS_HELD and status == "member":
            status = "held"
        entry.state = "joined"
        entries.append(entry)
    return Membership(
        group_id=profile.group_id.hex(),
        kind="channel" if profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL else "group",
        name=profile.profile.name, link=str(link), sign_seed=b64(member.sign_seed),
        box_secret=b64(member.box_secret), display_name=display_name,
        profile=b64(env.encode(profile.envelope)), relays=entries, status=status,
    )


@dataclass(frozen=True, slots=True)
class ReceivedPost:
    seq: int
    author: bytes
    text: str
    message_id: bytes
    relay_ts: int

    def to_json(self) -> dict:
        return {
            "seq": self.seq, "author": codec.b64url(self.author), "text": self.text,
            "message_id": codec.b64url(self.message_id), "relay_ts": self.relay_ts,
        }


def _reader_key(who: OwnedGroup | Membership) -> SigningKey:
    return SigningKey(unb64(who.owner_seed if isinstance(who, OwnedGroup) else who.sign_seed))


def _credential(key: SigningKey, address: str) -> core_pb2.SignedEnvelope:
    body = relay_pb2.SubscribeBody(group_address=address, nonce=os.urandom(NONCE), timestamp=int(time.time()))
    return env.sign_message(key, env.Domain.SUBSCRIBE, body)


class PostChecker:
    """A member's own check of what relays deliver; dedupes across relays."""

    def __init__(self, who: OwnedGroup | Membership) -> None:
        self.profile = group.verify_profile(env.decode(unb64(who.profile)), group_id=bytes.fromhex(who.group_id))
        self.group_id = bytes.fromhex(who.group_id)
        self.channel = self.profile.profile.kind == core_pb2.GROUP_KIND_CHANNEL
        self.seen: set[bytes] = set()

    def check(self, delivery: relay_pb2.Delivery) -> ReceivedPost | None:
        allowed = self.profile.authorities() if self.channel else None
        body = members.verify_post(delivery.post, self.group_id, allowed=allowed)
        mid = members.message_id(delivery.post)
        if mid in self.seen:
            return None
        self.seen.add(mid)
        return ReceivedPost(
            seq=delivery.seq, author=delivery.post.signer, text=body.body.decode("utf-8", "replace"),
            message_id=mid, relay_ts=delivery.relay_ts,
        )


async def _read_relay(who, entry: RelayEntry, key: SigningKey) -> list[relay_pb2.Delivery]:
    pages: list[list[relay_pb2.Delivery]] = []
    before = 0
    async with RelayClient(entry.target) as client:
        for _ in range(1_000_000):  # bounded: each page moves `before` back
            request = relay_pb2.HistoryRequest(credential=_credential(key, entry.address), before_seq=before, limit=500)
            page = list((await client.call("History", request)).deliveries)
            if not page:
                break
            pages.append(page)
            before = page[0].seq
            if before <= 1:
                break
    return [d for page in reversed(pages) for d in page]


async def read_all(who: OwnedGroup | Membership) -> list[ReceivedPost]:
    """Every post the group's relays keep for this reader, oldest first, each once
    (posts reach every relay; the message id tells copies apart). A relay that is down
    is skipped while another answers."""
    key = _reader_key(who)
    checker = PostChecker(who)
    out: list[tuple[int, int, ReceivedPost]] = []
    errors = []
    for rank, entry in enumerate(who.relays):
        try:
            deliveries = await _read_relay(who, entry, key)
        except ChatRelayError as exc:
            if exc.reason is not Reason.UNAVAILABLE:
                raise
            errors.append(exc)
            continue
        for delivery in deliveries:
            post_ = checker.check(delivery)
            if post_ is not None:
                body = core_pb2.PostBody.FromString(delivery.post.body)
                out.append((body.client_ts, rank, post_))
    if errors and len(errors) == len(who.relays):
        raise errors[0]
    if len(who.relays) > 1:  # copies from several relays: the authors' clocks order them
        out.sort(key=lambda item: (item[0], item[1], item[2].seq))
    return [post_ for _, _, post_ in out]


async def follow(
    who: OwnedGroup | Membership, since_seq: int = 0, *, max_reconnects: int | None = None
) -> AsyncIterator[ReceivedPost]:
    """Stream posts from every relay of the group, each post once. Each relay's stream
    resumes after its own last post when it reconnects, so nothing is lost or repeated,
    and a relay that is down does not stop the others."""
    checker = PostChecker(who)
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
    tasks = [
        asyncio.create_task(_follow_relay(who, entry, since_seq, max_reconnects, queue))
        for entry in who.relays
    ]
    alive = len(tasks)
    try:
        while alive:
            item = await queue.get()
            if isinstance(item, BaseException):
                alive -= 1
                if alive == 0 or not (isinstance(item, ChatRelayError) and item.reason is Reason.UNAVAILABLE):
                    raise item
                continue
            post_ = checker.check(item)
            if post_ is not None:
                yield post_
    finally:
        for task in tasks:
            task.cancel()


async def _follow_relay(who, entry: RelayEntry, since_seq: int, max_reconnects, queue: asyncio.Queue) -> None:
    key = _reader_key(who)
    last = since_seq
    delay = 0.2
    reconnects = 0
    while True:
        client = RelayClient(entry.target)
        try:
            stream = client.subscribe(_credential(key, entry.address), last)
            async for batch in stream:
                delay = 0.2
                for delivery in batch.deliveries:
                    if delivery.seq <= last:
                        continue
                    await queue.put(delivery)
                    last = delivery.seq
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if error.reason is Reason.BEHIND:  # cut off for reading slowly: resume at once
                continue
            if error.reason is not Reason.UNAVAILABLE:
                await queue.put(error)
                return
        finally:
            await client.close()
        reconnects += 1
        if max_reconnects is not None and reconnects > max_reconnects:
            await queue.put(ChatRelayError(Reason.UNAVAILABLE, f"relay {entry.target} unreachable; gave up reconnecting"))
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
