"""Registrations that arrive together are created in one registry transaction
(`actors/registration.py: Registrar.register_many`), on the embedded registry and on etcd."""

from __future__ import annotations

import os
import time

from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay import group
from chatrelay.actors import records
from chatrelay.actors.registration import REGISTER_BATCH, Registrar
from chatrelay.actors.placement import home_shard
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.v1 import relay_pb2


def registration(signed_profile) -> tuple:
    key = SigningKey.generate()
    body = relay_pb2.RegisterGroupBody(
        profile=signed_profile, registration_key=bytes(key.verify_key),
        nonce=os.urandom(16), timestamp=int(time.time()),
    )
    return env.sign_message(key, env.Domain.REGISTER, body)


def granted_address(registrar: Registrar, answer) -> str:
    assert isinstance(answer, relay_pb2.RegisterGroupResponse), answer
    checked, grant = env.verify_message(answer.address, env.Domain.ADDRESS, relay_pb2.AddressGrant, "grant")
    assert checked.signer == registrar.relay_key
    return grant.group_address


async def test_a_batch_answers_each_registration_in_order(registry):
    registrar = Registrar(identity=SigningKey.generate(), registry=registry, shards=3)
    made = [group.create_group(GroupKind.GROUP, f"g{i}") for i in range(REGISTER_BATCH + 8)]
    known_secrets, known_signed = group.create_group(GroupKind.CHANNEL, "known")
    known_address = granted_address(registrar, (await registrar.register_many([registration(known_signed)]))[0])
    tampered = registration(made[0][1])
    tampered.body = tampered.body[:-1] + bytes([tampered.body[-1] ^ 1])

    envelopes = [registration(signed) for _, signed in made]  # more than one transaction holds
    envelopes += [registration(made[3][1]), registration(known_signed), tampered]
    answers = await registrar.register_many(envelopes)

    assert len(answers) == len(envelopes)
    addresses = [granted_address(registrar, a) for a in answers[:-1]]
    assert len(set(addresses[:len(made)])) == len(made)
    assert addresses[len(made)] == addresses[3]  # the same group twice in a batch: one address
    assert addresses[len(made) + 1] == known_address  # registered before: its address again
    assert isinstance(answers[-1], ChatRelayError) and answers[-1].reason is Reason.BAD_SIGNATURE
    for (secrets, _), address in zip(made, addresses):
        record = records.GroupRecord.loads((await registry.get(records.group_key(secrets.group_id))).value)
        assert record.address == address
        assert (await registry.get(records.placement_key(address))).value == str(home_shard(secrets.group_id, 3)).encode()
        assert (await registry.get(records.address_key(address))).value == secrets.group_id.hex().encode()
    assert len(await registry.get_prefix(records.PLACEMENT_PREFIX)) == len(made) + 1
