import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay import group, links, tls
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import GroupKind
from chatrelay.links import LinkKind, ShortLink
from chatrelay.v1 import core_pb2

from helpers import refused
from strategies import short_links

HOST = "relay1.example.com:7223"


def make_group_link(kind=GroupKind.CHANNEL, hosts=(HOST,)):
    secrets, signed = group.create_group(kind, "Weather")
    return secrets, signed, links.group_link(secrets, signed, hosts)


def make_contact_link(kind):
    return links.contact_link(
        kind, SigningKey.generate(), os.urandom(16), bytes(PrivateKey.generate().public_key), "Alice", [HOST]
    )


def every_kind():
    _, _, channel = make_group_link(GroupKind.CHANNEL)
    _, _, grp = make_group_link(GroupKind.GROUP)
    relay = links.relay_link(SigningKey.generate(), "relay", [HOST])
    return {
        LinkKind.CHANNEL: channel,
        LinkKind.GROUP: grp,
        LinkKind.RELAY: relay,
        LinkKind.CONTACT: make_contact_link(LinkKind.CONTACT),
        LinkKind.INVITATION: make_contact_link(LinkKind.INVITATION),
    }


@pytest.mark.parametrize("kind", list(LinkKind))
def test_round_trip_of_every_kind(kind):
    bundle = every_kind()[kind]
    text = str(bundle.link)
    assert text.startswith(f"https://{HOST}/{kind.value}#")
    parsed = ShortLink.parse(text)
    assert parsed == bundle.link
    resolved = links.resolve(parsed, bundle.ciphertext)
    assert resolved.fixed.kind == kind.pb
    assert links.derive(parsed.link_key).lookup_id == bundle.lookup_id
    if kind in (LinkKind.GROUP, LinkKind.CHANNEL):
        assert resolved.profile.profile.name == "Weather"
    else:
        assert resolved.signer == resolved.fixed.root_key


def test_group_link_with_one_host_fits_in_80_characters():
    # SimpleX ships 69 with smp4.simplex.im; the bound holds for hosts up to 26 characters.
    for host in ("smp4.simplex.im", "127.0.0.1:7223", "relay1.example.com:7223", "h" * 26):
        for kind in (GroupKind.GROUP, GroupKind.CHANNEL):
            text = str(make_group_link(kind, hosts=(host,))[2].link)
            assert len(text) <= 80, text
    assert len(str(make_group_link(hosts=("smp4.simplex.im",))[2].link)) == 69


def test_one_time_invitation_fits_in_110_characters():
    text = str(make_contact_link(LinkKind.INVITATION).link)
    assert len(text) <= 110, text


def test_several_hosts_go_in_h():
    _, _, bundle = make_group_link(hosts=("a.example", "b.example:8000", "[::1]:9"))
    text = str(bundle.link)
    assert text.endswith("?h=b.example:8000,[::1]:9")
    assert ShortLink.parse(text).hosts == ("a.example", "b.example:8000", "[::1]:9")


def test_chatrelay_scheme_round_trips():
    link = ShortLink(LinkKind.GROUP, bytes(32), ("h.example",), scheme="chatrelay")
    assert str(link).startswith("chatrelay://h.example/g#")
    assert ShortLink.parse(str(link)) == link


def test_relay_cannot_read_link_data_without_the_link():
    secrets, signed, bundle = make_group_link()
    # What the relay holds: lookup id and ciphertext. The profile name is not in it.
    assert b"Weather" not in bundle.ciphertext
    assert bundle.lookup_id not in bundle.ciphertext
    assert bundle.link.link_key not in bundle.ciphertext + bundle.lookup_id


def test_every_tampered_byte_of_stored_data_is_refused():
    _, _, bundle = make_group_link()
    for i in range(len(bundle.ciphertext)):
        tampered = bytearray(bundle.ciphertext)
        tampered[i] ^= 0x80
        refused(Reason.LINK_DECRYPT_FAILED, links.resolve, bundle.link, bytes(tampered))


def reencrypt(bundle, data):
    """What a relay that learned the link could store instead."""
    return links.encrypt(bundle.link.link_key, data)


def test_substituted_fixed_data_is_refused():
    _, _, bundle = make_group_link()
    _, _, other = make_group_link()
    data = core_pb2.LinkData(fixed=other.data.fixed, mutable=bundle.data.mutable)
    err = refused(Reason.LINK_HASH_MISMATCH, links.resolve, bundle.link, reencrypt(bundle, data))
    assert err.message == "link data does not hash to the link key"


def test_mutable_data_of_another_link_is_refused():
    secrets, signed, bundle = make_group_link()
    # The same owner's valid mutable data, made for a different link of the same group.
    other = links.group_link(secrets, signed, ("other.example",))
    data = core_pb2.LinkData(fixed=bundle.data.fixed, mutable=other.data.mutable)
    if other.link.link_key == bundle.link.link_key:  # hosts are not in fixed data
        data.mutable.CopyFrom(bundle.data.mutable)
        data.mutable.signature = bytes(64)
        refused(Reason.BAD_SIGNATURE, links.resolve, bundle.link, reencrypt(bundle, data))
    else:
        refused(Reason.LINK_HASH_MISMATCH, links.resolve, bundle.link, reencrypt(bundle, data))


def test_substituted_profile_signed_by_the_relay_is_refused():
    secrets, signed, bundle = make_group_link()
    relay = SigningKey.generate()
    profile = core_pb2.Profile.FromString(signed.body)
    profile.name = "Not the weather"
    profile.version = 2
    fake_profile = group.sign_profile(relay, profile)
    mutable = core_pb2.LinkMutable(link_key=bundle.link.link_key, version=2, group_profile=fake_profile)
    data = core_pb2.LinkData(fixed=bundle.data.fixed, mutable=env.sign_message(relay, env.Domain.LINK, mutable))
    refused(Reason.UNKNOWN_SIGNER, links.resolve, bundle.link, reencrypt(bundle, data))


def test_profile_of_another_group_is_refused():
    secrets, signed, bundle = make_group_link()
    other_secrets, other_signed = group.create_group(GroupKind.CHANNEL, "Weather")
    mutable = core_pb2.LinkMutable(link_key=bundle.link.link_key, version=1, group_profile=other_signed)
    data = core_pb2.LinkData(
        fixed=bundle.data.fixed, mutable=env.sign_message(other_secrets.owner_key, env.Domain.LINK, mutable)
    )
    refused(Reason.GROUP_MISMATCH, links.resolve, bundle.link, reencrypt(bundle, data))


def test_link_data_of_another_kind_is_refused():
    _, _, bundle = make_group_link(GroupKind.CHANNEL)
    as_group = ShortLink(LinkKind.GROUP, bundle.link.link_key, bundle.link.hosts)
    refused(Reason.LINK_KIND_MISMATCH, links.resolve, as_group, bundle.ciphertext)


def test_contact_link_signed_by_another_key_is_refused():
    bundle = make_contact_link(LinkKind.CONTACT)
    mutable = core_pb2.LinkMutable.FromString(bundle.data.mutable.body)
    data = core_pb2.LinkData(
        fixed=bundle.data.fixed, mutable=env.sign_message(SigningKey.generate(), env.Domain.LINK, mutable)
    )
    refused(Reason.UNKNOWN_SIGNER, links.resolve, bundle.link, reencrypt(bundle, data))


def _byte_fields(message, out):
    """Every bytes value in a message tree, descending into embedded bodies."""
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for v in values:
            if isinstance(v, bytes):
                out.add(v)
            elif hasattr(v, "ListFields"):
                _byte_fields(v, out)
    return out


def _link_values(bundle):
    out = set()
    _byte_fields(bundle.data, out)
    _byte_fields(core_pb2.FixedLinkData.FromString(bundle.data.fixed), out)
    mutable = core_pb2.LinkMutable.FromString(bundle.data.mutable.body)
    _byte_fields(mutable, out)
    _byte_fields(core_pb2.Profile.FromString(mutable.group_profile.body), out)
    return out | {bundle.lookup_id, bundle.link.link_key, bundle.ciphertext}


def test_two_groups_of_one_owner_have_unrelated_links():
    _, _, a = make_group_link()
    _, _, b = make_group_link()
    values_a, values_b = _link_values(a), _link_values(b)
    assert len(values_a) > 10  # keys, ids, signatures, bodies
    assert values_a.isdisjoint(values_b)
    assert str(a.link)[:-44] == str(b.link)[:-44]  # same host and kind, nothing else


@pytest.mark.parametrize(
    "text, reason, message",
    [
        ("", Reason.BAD_LINK, "link is empty"),
        ("   ", Reason.BAD_LINK, "link is empty"),
        ("hello", Reason.BAD_LINK, "link must start with https:// or chatrelay://"),
        ("ftp://h/g#" + "A" * 43, Reason.BAD_LINK, "link must start with https:// or chatrelay://"),
        ("https://h/g", Reason.BAD_LINK, "link has no '#' before its key"),
        ("https://h/x#" + "A" * 43, Reason.UNKNOWN_LINK_KIND, "unknown link kind 'x'; expected one of r, g, c, a, i"),
        ("https://h/g#" + "A" * 42, Reason.BAD_LINK, "link key must be 32 bytes"),
        ("https://h/g#" + "A" * 42 + "B", Reason.BAD_LINK, "link key is not base64url"),
        ("https://h/g#" + "A" * 44, Reason.BAD_LINK, "link key must be 32 bytes"),
        ("https://h/g#" + "A" * 41, Reason.BAD_LINK, "link key is not base64url"),
        ("https://h/g#" + "A" * 43 + "?x=1", Reason.BAD_LINK, "link query must be f=PIN&h=[PIN@]HOST[,…], each once"),
        ("https://h/g#" + "A" * 43 + "?h=a&h=b", Reason.BAD_LINK, "link query must be f=PIN&h=[PIN@]HOST[,…], each once"),
        ("https://h/g#" + "A" * 43 + "?f=" + "A" * 42, Reason.BAD_LINK, "relay key fingerprint must be 32 bytes"),
        ("https://h/g#" + "A" * 43 + "?f=" + "*" * 43, Reason.BAD_LINK, "relay key fingerprint is not base64url"),
        ("https://h/g#" + "A" * 43 + "?h=" + "A" * 43 + "@", Reason.BAD_LINK, "link host is empty"),
        ("https://" + "A" * 43 + "@h/g#" + "A" * 43, Reason.BAD_LINK, "link must look like https://HOST/KIND#KEY"),
        ("https://h/g#" + "A" * 43 + "?h=h", Reason.BAD_LINK, "a link names each host once"),
        ("https://h_1/g#" + "A" * 43, Reason.BAD_LINK, "link host 'h_1' is not a valid host name"),
        ("https://h:0/g#" + "A" * 43, Reason.BAD_LINK, "link host 'h:0' has a bad port"),
        ("https://h:70000/g#" + "A" * 43, Reason.BAD_LINK, "link host 'h:70000' has a bad port"),
        ("https:///g#" + "A" * 43, Reason.BAD_LINK, "link host is empty"),
        ("https://[zz]/g#" + "A" * 43, Reason.BAD_LINK, "link host '[zz]' is not a valid IPv6 address"),
        ("https://h/g/x#" + "A" * 43, Reason.BAD_LINK, "link must look like https://HOST/KIND#KEY"),
        ("https://h?q/g#" + "A" * 43, Reason.BAD_LINK, "link must look like https://HOST/KIND#KEY"),
    ],
)
def test_malformed_links_are_refused_with_a_clear_message(text, reason, message):
    err = refused(reason, ShortLink.parse, text)
    assert err.message == message


def test_ten_kilobyte_link_is_refused_by_size():
    err = refused(Reason.TOO_LARGE, ShortLink.parse, "https://h/g#" + "A" * 10_000)
    assert err.message == "link is 10012 characters; at most 2048 allowed"


def test_too_many_hosts_are_refused():
    hosts = ",".join(f"h{i}.example" for i in range(8))
    err = refused(Reason.BAD_LINK, ShortLink.parse, "https://h/g#" + "A" * 43 + "?h=" + hosts)
    assert err.message == "a link names 1 to 8 hosts"


@given(short_links)
def test_parse_render_round_trip(link):
    assert ShortLink.parse(link.render()) == link


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_no_random_text_crashes_the_link_parser(text):
    try:
        ShortLink.parse(text)
    except ChatRelayError:
        pass


@given(
    st.sampled_from(["https://", "chatrelay://", "HTTPS://", ""]),
    st.text(alphabet="ab1.:-[]/#?h=,_AZ", max_size=80),
)
@settings(max_examples=500)
def test_no_link_like_text_crashes_the_link_parser(prefix, rest):
    try:
        link = ShortLink.parse(prefix + rest)
    except ChatRelayError:
        return
    assert ShortLink.parse(link.render()) == link


@given(st.binary(max_size=600))
def test_no_random_stored_data_crashes_resolve(data):
    link = ShortLink(LinkKind.GROUP, os.urandom(32), ("h.example",))
    with pytest.raises(ChatRelayError):
        links.resolve(link, data)


@given(st.binary(max_size=2000))
def test_no_random_bytes_crash_the_envelope_parser(data):
    try:
        env.verify(env.decode(data), env.Domain.POST)
    except ChatRelayError:
        pass


@given(st.binary(max_size=2000))
def test_no_random_plaintext_crashes_resolve_after_decryption(data):
    """A relay holding the link could store any bytes, encrypted properly."""
    _, _, bundle = make_group_link()
    framed = len(data).to_bytes(2, "big") + data
    from nacl.secret import SecretBox

    ciphertext = bytes(SecretBox(links.derive(bundle.link.link_key).enc_key).encrypt(framed))
    with pytest.raises(ChatRelayError):
        links.resolve(bundle.link, ciphertext)


@pytest.mark.parametrize("hosts, target", [
    (("127.0.0.11:7223",), "127.0.0.11:7223"),
    (("127.0.0.11:7223", "127.0.0.12"), "ipv4:127.0.0.11:7223,127.0.0.12:7223"),
    (("[::1]:7301", "[::1]:7302"), "ipv6:[::1]:7301,[::1]:7302"),
    (("relay.example.org", "127.0.0.12:7223"), "relay.example.org:7223"),
])
def test_a_relays_gateways_become_one_failover_target(hosts, target):
    from chatrelay.client import target_of_link

    link = links.ShortLink(kind=links.LinkKind.RELAY, link_key=bytes(32), hosts=hosts)
    assert target_of_link(link) == target



@pytest.mark.parametrize("target, turn, turned", [
    ("ipv4:127.0.0.11:7223,127.0.0.12:7223", 1, "ipv4:127.0.0.12:7223,127.0.0.11:7223"),
    ("ipv4:127.0.0.11:7223,127.0.0.12:7223", 2, "ipv4:127.0.0.11:7223,127.0.0.12:7223"),
    ("ipv6:[::1]:7301,[::1]:7302,[::1]:7303", 1, "ipv6:[::1]:7302,[::1]:7303,[::1]:7301"),
    ("127.0.0.11:7223", 3, "127.0.0.11:7223"),
])
def test_a_channel_opened_anew_after_a_gateway_went_away_tries_the_next_first(target, turn, turned):
    from chatrelay import tls

    assert tls.turned(target, turn) == turned
    pin = bytes(range(32))
    assert tls.turned(tls.join_target(pin, target), turn) == tls.join_target(pin, turned)

def what_a_relay_can_compute(signed: core_pb2.SignedEnvelope, kind: LinkKind) -> bytes:
    """The link key from what a relay stores of a group: its profile (root key, group id,
    kind), all of the fixed data but the owners' secret."""
    profile = group.verify_profile(signed)
    fixed = core_pb2.FixedLinkData(kind=kind.pb, root_key=profile.profile.root_key, entity_id=profile.group_id)
    return links.link_key_of(fixed.SerializeToString(deterministic=True))


@pytest.mark.parametrize("kind", [GroupKind.CHANNEL, GroupKind.GROUP])
def test_a_relay_that_knows_the_profile_cannot_compute_the_link_key(kind):
    secrets, signed, bundle = make_group_link(kind)
    link_kind = LinkKind.CHANNEL if kind is GroupKind.CHANNEL else LinkKind.GROUP
    assert len(secrets.link_secret) == group.LINK_SECRET_SIZE
    assert what_a_relay_can_compute(signed, link_kind) != bundle.link.link_key
    # ... while the owners, who keep the secret, make the same link again for a new profile.
    assert links.group_link(secrets, signed, (HOST,)).link.link_key == bundle.link.link_key


def test_two_groups_links_never_share_a_secret_and_contact_links_have_one():
    a, _, _ = make_group_link()
    b, _, _ = make_group_link()
    assert a.link_secret != b.link_secret
    fixed = core_pb2.FixedLinkData.FromString(make_contact_link(LinkKind.CONTACT).data.fixed)
    assert len(fixed.secret) == group.LINK_SECRET_SIZE


def test_a_secret_of_another_size_is_refused():
    secrets, signed, bundle = make_group_link()
    fixed = core_pb2.FixedLinkData.FromString(bundle.data.fixed)
    fixed.secret = b"short"
    fixed_bytes = fixed.SerializeToString(deterministic=True)
    data = core_pb2.LinkData(fixed=fixed_bytes, mutable=bundle.data.mutable)
    link = ShortLink(bundle.link.kind, links.link_key_of(fixed_bytes), bundle.link.hosts)
    err = refused(Reason.MALFORMED, links.resolve, link, links.encrypt(link.link_key, data))
    assert err.message == "fixed link data is malformed: secret must be 32 bytes"


PIN_A, PIN_B = bytes(range(32)), bytes(range(32, 64))


def test_pins_stand_beside_their_hosts_and_come_back_from_the_text():
    link = ShortLink(kind=LinkKind.GROUP, link_key=bytes(32), hosts=("a.example", "b.example", "c.example"),
                     pins=(PIN_A, b"", PIN_B))
    text = link.render()
    assert text == ("https://a.example/g#" + "A" * 43 + "?f=" + tls.render_pin(PIN_A)
                    + "&h=b.example," + tls.render_pin(PIN_B) + "@c.example")
    assert ShortLink.parse(text) == link
    assert link.endpoints() == [("a.example", PIN_A), ("b.example", None), ("c.example", PIN_B)]
    assert ShortLink.parse(link.render(pinned=False)).pins == ()


def test_a_pin_per_host_or_none():
    err = refused(Reason.BAD_LINK, ShortLink, kind=LinkKind.GROUP, link_key=bytes(32), hosts=("a", "b"), pins=(PIN_A,))
    assert err.message == "a link has one key fingerprint per host, or none"
    err = refused(Reason.BAD_LINK, ShortLink, kind=LinkKind.GROUP, link_key=bytes(32), hosts=("a",), pins=(b"x",))
    assert err.message == "relay key fingerprint must be 32 bytes"


@pytest.mark.parametrize("kind", [LinkKind.CHANNEL, LinkKind.GROUP])
def test_a_link_with_one_host_of_26_characters_keeps_to_80_and_130_characters(kind):
    """Issue 15's length bars: 80 characters where the client knows the relay, 130 with
    the relay's key fingerprint in the link."""
    host = "relays-01.example.org:7223"
    assert len(host) == 26
    secrets, signed = group.create_group(GroupKind.CHANNEL if kind is LinkKind.CHANNEL else GroupKind.GROUP, "Weather")
    bundle = links.group_link(secrets, signed, [host], pins=[PIN_A])
    assert len(bundle.link.render(pinned=False)) <= 80
    assert len(bundle.link.render()) <= 130
    assert ShortLink.parse(bundle.link.render()).pins == (PIN_A,)


def test_a_relay_link_pins_every_gateway_with_the_one_key():
    bundle = links.relay_link(SigningKey.generate(), "r", ["127.0.0.1:7001", "127.0.0.1:7002"], pin=PIN_A)
    assert bundle.link.pins == (PIN_A, PIN_A)
    from chatrelay.client import target_of_link

    assert target_of_link(bundle.link) == tls.render_pin(PIN_A) + "@ipv4:127.0.0.1:7001,127.0.0.1:7002"
