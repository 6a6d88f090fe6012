import pytest
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay.errors import MalformedError, Reason, TooLargeError
from chatrelay.v1 import core_pb2

from helpers import refused


@pytest.fixture
def key():
    return SigningKey.generate()


def test_sign_then_verify_returns_body_and_signer(key):
    signed = env.sign(key, env.Domain.POST, b"hello")
    checked = env.verify(signed, env.Domain.POST)
    assert checked.body == b"hello"
    assert checked.signer == bytes(key.verify_key)


def test_signature_covers_domain_then_body(key):
    signed = env.sign(key, env.Domain.POST, b"hello")
    key.verify_key.verify(b"chatrelay/v1/post\x00hello", signed.signature)


def test_wrong_domain_is_refused(key):
    signed = env.sign(key, env.Domain.POST, b"hello")
    err = refused(Reason.WRONG_DOMAIN, env.verify, signed, env.Domain.PROFILE)
    assert "chatrelay/v1/post" in err.message


def test_relabelled_domain_breaks_the_signature(key):
    signed = env.sign(key, env.Domain.POST, b"hello")
    signed.domain = env.Domain.PROFILE.value
    refused(Reason.BAD_SIGNATURE, env.verify, signed, env.Domain.PROFILE)


@pytest.mark.parametrize("field", ["body", "signature", "signer"])
def test_each_tampered_byte_is_refused(key, field):
    signed = env.sign(key, env.Domain.POST, b"a post of some length")
    original = getattr(signed, field)
    for i in range(len(original)):
        tampered = core_pb2.SignedEnvelope()
        tampered.CopyFrom(signed)
        raw = bytearray(original)
        raw[i] ^= 0x01
        setattr(tampered, field, bytes(raw))
        refused(Reason.BAD_SIGNATURE, env.verify, tampered, env.Domain.POST)


def test_truncated_encoding_is_refused_at_every_length(key):
    data = env.encode(env.sign(key, env.Domain.POST, b"x" * 100))
    for cut in range(len(data)):
        with pytest.raises((MalformedError,)) as info:
            env.verify(env.decode(data[:cut]), env.Domain.POST)
        assert info.value.reason is Reason.MALFORMED


def test_oversized_envelope_is_refused_before_parsing():
    err = refused(Reason.TOO_LARGE, env.decode, b"\x00" * (env.MAX_ENVELOPE + 1))
    assert isinstance(err, TooLargeError)
    assert err.size == env.MAX_ENVELOPE + 1 and err.limit == env.MAX_ENVELOPE


def test_oversized_body_is_refused_on_sign_and_verify(key):
    limit = env.body_limit(env.Domain.PROFILE)
    refused(Reason.TOO_LARGE, env.sign, key, env.Domain.PROFILE, b"x" * (limit + 1))
    body = b"x" * (limit + 1)
    signature = key.sign(env.signed_message(env.Domain.PROFILE.value, body)).signature
    big = core_pb2.SignedEnvelope(
        domain=env.Domain.PROFILE.value, body=body, signer=bytes(key.verify_key), signature=signature
    )
    refused(Reason.TOO_LARGE, env.verify, big, env.Domain.PROFILE)


def test_short_signer_or_signature_is_malformed(key):
    signed = env.sign(key, env.Domain.POST, b"hello")
    signed.signature = signed.signature[:63]
    err = refused(Reason.MALFORMED, env.verify, signed, env.Domain.POST)
    assert "signature must be 64 bytes" in err.message
    signed = env.sign(key, env.Domain.POST, b"hello")
    signed.signer = b""
    err = refused(Reason.MALFORMED, env.verify, signed, env.Domain.POST)
    assert "signer must be 32 bytes" in err.message


def test_garbage_bytes_are_malformed():
    refused(Reason.MALFORMED, env.decode, b"\xff\xff\xff")
