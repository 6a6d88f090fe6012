"""A turn of VERIFY_APART posts or more has its signatures checked on a worker thread
(actors/group_relay.py, `_verify_posts`), so that a flooded group's batch does not hold
its shard's loop from other groups: each post is still refused or acked exactly as when
checked inline, in order."""

from __future__ import annotations

from nacl.signing import SigningKey

from chatrelay import members
from chatrelay.actors import group_relay
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2

from test_group_relay import active_group


def forged(envelope):
    """The post as it was, its signature replaced."""
    return type(envelope)(domain=envelope.domain, signer=envelope.signer, body=envelope.body, signature=bytes(64))


def outcome(result):
    if isinstance(result, relay_pb2.PostAck):
        return ("ack", result.seq)
    assert isinstance(result, ChatRelayError)
    return (result.reason, result.message)


COUNT = group_relay.VERIFY_APART + 2
REFUSED = {
    2: (Reason.BAD_SIGNATURE, "chatrelay/v1/post signature is not valid"),
    4: (Reason.GROUP_MISMATCH, "post is for another group"),
    6: (Reason.NOT_ALLOWED, "only owners post in a channel"),
}


def turn(secrets, other_group: bytes) -> list:
    """COUNT posts of the owner, but the third with a forged signature, the fifth for
    another group and the seventh by a key that is no owner (the group is a channel)."""
    posts = [members.sign_post(secrets.owner_key, secrets.group_id, f"p{i}".encode()) for i in range(COUNT)]
    posts[2] = forged(posts[2])
    posts[4] = members.sign_post(secrets.owner_key, other_group, b"elsewhere")
    posts[6] = members.sign_post(SigningKey.generate(), secrets.group_id, b"stranger")
    return posts


def expected(first_seq: int) -> list:
    """Each post's answer: its refusal, or an ack with the next seq from `first_seq`."""
    out, seq = [], first_seq
    for i in range(COUNT):
        if i in REFUSED:
            out.append(REFUSED[i])
        else:
            out.append(("ack", seq))
            seq += 1
    return out


async def test_a_turn_checked_apart_is_answered_as_one_checked_inline(ctx, monkeypatch):
    secrets, relay = await active_group(ctx, "apart")
    other, _ = await active_group(ctx, "other")
    checked_apart = []
    real = group_relay._verify_posts

    def spy(envelopes, group_id):
        checked_apart.append(len(envelopes))
        return real(envelopes, group_id)

    monkeypatch.setattr(group_relay, "_verify_posts", spy)
    apart = await relay.post_many(turn(secrets, other.group_id))
    assert checked_apart == [COUNT]
    monkeypatch.setattr(group_relay, "VERIFY_APART", COUNT + 1)  # the same turn, checked inline
    inline = await relay.post_many(turn(secrets, other.group_id))
    assert checked_apart == [COUNT]
    accepted = COUNT - len(REFUSED)
    assert [outcome(r) for r in apart] == expected(1)
    assert [outcome(r) for r in inline] == expected(accepted + 1)
    await relay.stop()
