"""Registration, steps 1 to 3 of DESIGN.md section 5: one dedicated address per group,
however often asked, made by a registry transaction on the group id.

The gateway that takes a RegisterGroup does it. Registering needs only the relay's
identity (to sign the grant), the registry and the operator's policy, and the shard that
will serve the group is named in the records it writes (the group's placement). So no
shard is called: a registration costs no Ray call, and the shard loads the group from
the registry when the first call for its address comes.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from nacl.signing import SigningKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay import group
from chatrelay.actors import records
from chatrelay.actors.policy import RelayLimits
from chatrelay.actors.records import STATE_PB, GroupRecord, GroupState
from chatrelay.actors.placement import home_shard
from chatrelay.actors.registry import Get, Put, Registry, absent, unchanged_since
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2

ADDRESS_BYTES = 16
REGISTER_BATCH = 32  # groups per registry transaction (etcd allows 128 operations in one)
CAS_ATTEMPTS = 100


def new_address() -> str:
    """A fresh group address. Never one that starts with "-": on a command line
    (`chatrelay move ADDRESS`) it would read as an option (1 in 64 did)."""
    for _ in range(64):
        address = codec.b64url(os.urandom(ADDRESS_BYTES))
        if not address.startswith("-"):
            return address
    raise RuntimeError("no address without a leading '-' in 64 draws")  # 1 in 64**64


def checked_registration(
    envelope: core_pb2.SignedEnvelope,
) -> tuple[relay_pb2.RegisterGroupBody, group.VerifiedProfile]:
    """A registration's signature, key and profile, checked."""
    checked, body = env.verify_message(envelope, env.Domain.REGISTER, relay_pb2.RegisterGroupBody, "registration")
    if checked.signer != body.registration_key:
        raise ChatRelayError(Reason.UNKNOWN_SIGNER, "registration is not signed by its registration key")
    return body, group.verify_profile(body.profile)


def fresh_record(body: relay_pb2.RegisterGroupBody, profile: group.VerifiedProfile) -> GroupRecord:
    """The records of a group new to this relay: a fresh address, PENDING."""
    return GroupRecord(
        group_id=profile.group_id, address=new_address(), state=GroupState.PENDING,
        registration_key=body.registration_key, profile=env.encode(body.profile),
    )


@dataclass(frozen=True, slots=True)
class Registrar:
    """Registers groups for one relay; `shards` is its count of base shards, over which
    new groups are placed by their id (`home_shard`)."""

    identity: SigningKey
    registry: Registry
    limits: RelayLimits = RelayLimits()
    shards: int = 1

    @property
    def relay_key(self) -> bytes:
        return bytes(self.identity.verify_key)

    async def register_many(
        self, envelopes: list[core_pb2.SignedEnvelope],
    ) -> list[relay_pb2.RegisterGroupResponse | ChatRelayError]:
        """Several registrations at once, one answer (or refusal) each, in order.

        The CPU work of a batch (signature checks, the new records, their grants) is done
        on a worker thread (signing and checking let go of the GIL), so the gateway's
        event loop goes on with its streams meanwhile. New groups that arrive together
        are created in one registry transaction; if any of them exists already (or the
        relay counts its groups), each goes on its own (`_register_checked`)."""
        answers: list = [None] * len(envelopes)
        batch: dict[bytes, tuple] = {}
        alone: list[tuple[int, relay_pb2.RegisterGroupBody, group.VerifiedProfile]] = []
        counting = self.limits.policy.max_groups > 0
        for i, prepared in enumerate(await asyncio.to_thread(self._prepare, envelopes)):
            if isinstance(prepared, ChatRelayError):
                answers[i] = prepared
                continue
            body, profile, puts, grant = prepared
            if counting or profile.group_id in batch or not self._allowed(profile):
                alone.append((i, body, profile))  # the policy may still take a group it serves
            else:
                batch[profile.group_id] = (i, body, profile, puts, grant)
        items = list(batch.values())
        for start in range(0, len(items), REGISTER_BATCH):
            chunk = items[start:start + REGISTER_BATCH]
            result = await self.registry.transaction(
                [absent(records.group_key(profile.group_id)) for _, _, profile, _, _ in chunk],
                [put for _, _, _, puts, _ in chunk for put in puts],
            )
            if result.succeeded:
                for i, _, _, _, grant in chunk:
                    answers[i] = grant
            else:  # one of them exists: each on its own (their grants made here go unused)
                alone.extend((i, body, profile) for i, body, profile, _, _ in chunk)
        alone.sort(key=lambda item: item[0])

        async def one(i, body, profile):
            try:
                answers[i] = await self._register_checked(body, profile)
            except ChatRelayError as exc:
                answers[i] = exc
        await asyncio.gather(*(one(*item) for item in alone))
        return answers

    def _prepare(self, envelopes: list) -> list:
        """Each envelope checked, with the records and grant of a new group for it (used
        if the group is new); or its refusal."""
        out = []
        for envelope in envelopes:
            try:
                body, profile = checked_registration(envelope)
            except ChatRelayError as exc:
                out.append(exc)
                continue
            fresh = fresh_record(body, profile)
            out.append((body, profile, self._record_puts(fresh), self.granted(fresh)))
        return out

    async def _register_checked(
        self, body: relay_pb2.RegisterGroupBody, profile: group.VerifiedProfile,
    ) -> relay_pb2.RegisterGroupResponse:
        key = records.group_key(profile.group_id)
        record = None
        # The group count is kept only where the operator limits it: it is one key that
        # every registration would otherwise contend on.
        counting = self.limits.policy.max_groups > 0
        existing = None
        for _ in range(CAS_ATTEMPTS):  # compare-and-swap on the group (and the relay's group count)
            if existing is not None:
                record = GroupRecord.loads(existing.value)
                break
            counter = await self.registry.get(records.GROUP_COUNT) if counting else None
            count = int(counter.value) if counter else 0
            try:
                self.limits.policy.check(profile, count)
            except ChatRelayError:
                existing = await self.registry.get(key)  # a group it serves already is not new
                if existing is None:
                    raise
                continue
            fresh = fresh_record(body, profile)
            compare = [absent(key)]
            puts = self._record_puts(fresh)
            if counting:
                compare.append(
                    absent(records.GROUP_COUNT) if counter is None
                    else unchanged_since(records.GROUP_COUNT, counter.mod_revision)
                )
                puts.append(Put(records.GROUP_COUNT, str(count + 1).encode()))
            result = await self.registry.transaction(compare, puts, [Get(key)])
            if result.succeeded:
                record = fresh
                break
            existing = result.gets[0]  # registered meanwhile (or the count moved: None)
        if record is None:
            raise ChatRelayError(Reason.BUSY, "registrations are racing; retry")
        return self.granted(record)

    def _allowed(self, profile) -> bool:
        try:
            self.limits.policy.check(profile, 0)
        except ChatRelayError:
            return False
        return True

    def _record_puts(self, record: GroupRecord) -> list[Put]:
        return [
            Put(records.group_key(record.group_id), record.dumps()),
            Put(records.address_key(record.address), record.group_id.hex().encode()),
            Put(records.placement_key(record.address), str(home_shard(record.group_id, self.shards)).encode()),
        ]

    def granted(self, record: GroupRecord) -> relay_pb2.RegisterGroupResponse:
        """The answer to a registration: the address, signed by this relay."""
        grant = relay_pb2.AddressGrant(
            group_id=record.group_id, group_address=record.address,
            relay_key=self.relay_key, registration_key=record.registration_key,
        )
        return relay_pb2.RegisterGroupResponse(
            address=env.sign_message(self.identity, env.Domain.ADDRESS, grant), state=STATE_PB[record.state],
        )
