"""A shard verifies a reader's credential once (actors/verified_readers.py): the same
bytes for the same group are looked up after that, and everything that can change is
checked again each time; a forged, foreign, stale or malformed credential is refused as
before."""

from __future__ import annotations

import time

import pytest
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay.actors.owner_commands import CREDENTIAL_SKEW_S
from chatrelay.actors.records import MemberStatus
from chatrelay.actors.verified_readers import VerifiedReaders
from chatrelay.checker import credential
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2
from test_group_relay import active_group


@pytest.fixture
def verifications(monkeypatch):
    """The signature checks of reader credentials made from here on."""
    made = []
    real = env.verify_message

    def counted(envelope, domain, cls, what):
        if domain is env.Domain.SUBSCRIBE:
            made.append(envelope.signature)
        return real(envelope, domain, cls, what)

    monkeypatch.setattr(env, "verify_message", counted)
    return made


def refused(relay, cred, **kwargs) -> tuple[Reason, str]:
    with pytest.raises(ChatRelayError) as info:
        relay.check_reader(cred, **kwargs)
    return info.value.reason, info.value.message


async def test_a_credential_seen_again_is_not_verified_again(ctx, verifications):
    _, relay = await active_group(ctx)
    reader = SigningKey.generate()
    relay.members[bytes(reader.verify_key)] = MemberStatus.MEMBER
    cred = credential(reader, relay.address)
    assert [relay.check_reader(cred) for _ in range(3)] == [bytes(reader.verify_key)] * 3
    assert verifications == [cred.signature]
    fresh = credential(reader, relay.address)  # another nonce: other bytes, verified
    assert relay.check_reader(fresh) == bytes(reader.verify_key)
    assert verifications == [cred.signature, fresh.signature]
    assert (ctx.readers.hits, ctx.readers.misses) == (2, 2)
    await relay.stop()


async def test_a_remembered_credential_is_still_refused_once_too_old(ctx):
    secrets, relay = await active_group(ctx)
    cred = credential(secrets.owner_key, relay.address)
    assert relay.check_reader(cred) == bytes(secrets.owner_key.verify_key)
    later = time.time() + CREDENTIAL_SKEW_S + 5
    assert refused(relay, cred, now=later) == (
        Reason.BAD_SIGNATURE, "credential is too old or from the future; check the clock")
    await relay.stop()


async def test_a_reader_banned_after_its_credential_was_verified_is_refused(ctx):
    _, relay = await active_group(ctx)
    reader = SigningKey.generate()
    key = bytes(reader.verify_key)
    relay.members[key] = MemberStatus.MEMBER
    cred = credential(reader, relay.address)
    assert relay.check_reader(cred) == key
    relay.members[key] = MemberStatus.BANNED
    assert refused(relay, cred) == (Reason.BANNED, "this key is banned from the group")
    del relay.members[key]  # removed
    assert refused(relay, cred) == (Reason.NOT_MEMBER, "reader is not a member of this group")
    await relay.stop()


async def test_a_remembered_credential_is_for_its_own_group_only(ctx, verifications):
    secrets, mine = await active_group(ctx, "mine")
    _, other = await active_group(ctx, "other")
    cred = credential(secrets.owner_key, mine.address)
    mine.check_reader(cred)
    assert refused(other, cred) == (Reason.GROUP_MISMATCH, "credential is for another group address")
    assert len(verifications) == 2  # the other group verified it for itself
    await mine.stop()
    await other.stop()


async def test_a_forged_copy_of_a_remembered_credential_is_verified_and_refused(ctx):
    secrets, relay = await active_group(ctx)
    cred = credential(secrets.owner_key, relay.address)
    relay.check_reader(cred)
    forged = type(cred)()
    forged.CopyFrom(cred)
    forged.signature = bytes(64)  # the same body, signer and domain
    assert refused(relay, forged) == (Reason.BAD_SIGNATURE, "chatrelay/v1/subscribe signature is not valid")
    stranger = SigningKey.generate()  # the same body under another key's name
    forged.CopyFrom(cred)
    forged.signer = bytes(stranger.verify_key)
    assert refused(relay, forged) == (Reason.BAD_SIGNATURE, "chatrelay/v1/subscribe signature is not valid")
    assert len(ctx.readers) == 1
    await relay.stop()


async def test_a_malformed_credential_is_refused_and_not_remembered(ctx):
    secrets, relay = await active_group(ctx)
    garbage = env.sign(secrets.owner_key, env.Domain.SUBSCRIBE, b"\xff\xff not a body")
    assert refused(relay, garbage)[0] is Reason.MALFORMED
    body = relay_pb2.SubscribeBody(group_address=relay.address, timestamp=int(time.time()) + 2 * CREDENTIAL_SKEW_S)
    ahead = env.sign_message(secrets.owner_key, env.Domain.SUBSCRIBE, body)
    assert refused(relay, ahead) == (
        Reason.BAD_SIGNATURE, "credential is too old or from the future; check the clock")
    assert len(ctx.readers) == 0
    await relay.stop()


def test_remembered_credentials_are_bounded_and_the_oldest_go_first():
    verified = VerifiedReaders(kept=4)
    keys = [bytes([i]) * 32 for i in range(10)]
    for i, key in enumerate(keys):
        verified.put(key, b"signer", i)
        assert len(verified) <= 4
    assert [verified.get(k) is not None for k in keys] == [False] * 6 + [True] * 4
    assert verified.get(keys[-1]) == (b"signer", 9)


def test_the_key_binds_the_group_address_and_every_byte():
    cred = credential(SigningKey.generate(), "addr-a")
    same = type(cred).FromString(cred.SerializeToString())
    assert VerifiedReaders.key("addr-a", cred) == VerifiedReaders.key("addr-a", same)
    assert VerifiedReaders.key("addr-a", cred) != VerifiedReaders.key("addr-b", cred)
    other = type(cred)()
    other.CopyFrom(cred)
    other.body = cred.body + b"\x00"
    assert VerifiedReaders.key("addr-a", cred) != VerifiedReaders.key("addr-a", other)


def test_a_stream_shows_its_credential_again_while_fresh_and_signs_anew_when_refused_as_old():
    from chatrelay.checker import StreamCredential

    key = SigningKey.generate()
    shown = StreamCredential(key, "addr-a")
    first = shown.current()
    assert shown.current() is first and shown.current() is first
    env.verify_message(first, env.Domain.SUBSCRIBE, relay_pb2.SubscribeBody, "credential")  # a good one
    stale = ChatRelayError(Reason.BAD_SIGNATURE, "credential is too old or from the future; check the clock")
    assert shown.refused(stale)  # shown before: worth one try with a new one
    fresh = shown.current()
    assert fresh is not first and fresh.signature != first.signature
    assert not shown.refused(stale)  # a new one refused too: the clocks differ, said to the caller
    assert not shown.refused(ChatRelayError(Reason.NOT_MEMBER, "reader is not a member of this group"))
    always_new = StreamCredential(key, "addr-a", reuse_s=-1.0)
    assert always_new.current() is not always_new.current()


async def test_a_strangers_credential_is_refused_each_time_and_never_remembered(ctx, verifications):
    _, relay = await active_group(ctx)
    stranger = SigningKey.generate()
    cred = credential(stranger, relay.address)
    for _ in range(2):
        assert refused(relay, cred) == (Reason.NOT_MEMBER, "reader is not a member of this group")
    assert len(ctx.readers) == 0 and verifications == [cred.signature] * 2
    await relay.stop()


def test_each_shards_checks_verified_and_remembered_are_exported_as_a_counter():
    from chatrelay.actors.figures import ProcessInfo, ShardStats
    from test_chart import exported_lines

    def shard(index, verified, remembered):
        return ShardStats(shard=index, group_count=1, moved_out=0, mailbox_depth=0, posts_accepted=0,
                          process=ProcessInfo(pid=1, rss_bytes=0), readers_verified=verified,
                          readers_remembered=remembered)

    figures = {0: shard(0, 7, 100_000), 1: shard(1, 3, 0)}
    assert exported_lines("chatrelay_shard_reader_checks", shard_figures=lambda: figures) == {
        'chatrelay_shard_reader_checks_total{chatrelay_check="verified",chatrelay_shard="0"} 7.0',
        'chatrelay_shard_reader_checks_total{chatrelay_check="remembered",chatrelay_shard="0"} 100000.0',
        'chatrelay_shard_reader_checks_total{chatrelay_check="verified",chatrelay_shard="1"} 3.0',
        'chatrelay_shard_reader_checks_total{chatrelay_check="remembered",chatrelay_shard="1"} 0.0',
    }
