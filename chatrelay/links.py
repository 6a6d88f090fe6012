"""Short, MITM-resistant links (DESIGN.md section 4).

A short link carries `link_key = SHA-256(fixed link data)` and the hosts that store the
data. A relay stores `secretbox(enc_key, link data)` under `lookup_id`, both derived from
the link key: it can withhold the data, but can neither read it without the link nor
substitute it, since resolving checks the hash and the signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox
from nacl.signing import SigningKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay import group
from chatrelay.errors import ChatRelayError, MalformedError, Reason, TooLargeError
from chatrelay.short_links import MAX_HOSTS, LinkKind, ShortLink  # noqa: F401  (the text form, used with all here)
from chatrelay.v1 import core_pb2

LOOKUP_ID_SIZE = 24
MAX_FIXED = 512
MAX_LINK_DATA = 12 * 1024
PAD_BLOCK = 256
MAX_CIPHERTEXT = MAX_LINK_DATA + PAD_BLOCK + SecretBox.NONCE_SIZE + SecretBox.MACBYTES


# ---- derivation and encryption ------------------------------------------------------


def _hkdf(key: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(b"chatrelay/v1/link-kdf", key, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


@dataclass(frozen=True, slots=True)
class LinkSecrets:
    lookup_id: bytes = field(repr=False)
    enc_key: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"lookup {codec.b64url(self.lookup_id)}"


def derive(link_key: bytes) -> LinkSecrets:
    """One-way: knowing lookup_id (what a relay indexes by) tells nothing of enc_key."""
    return LinkSecrets(
        lookup_id=_hkdf(link_key, b"chatrelay/v1/lookup-id", LOOKUP_ID_SIZE),
        enc_key=_hkdf(link_key, b"chatrelay/v1/enc-key", SecretBox.KEY_SIZE),
    )


def link_key_of(fixed: bytes) -> bytes:
    return hashlib.sha256(fixed).digest()


def encrypt(link_key: bytes, data: core_pb2.LinkData) -> bytes:
    plain = data.SerializeToString(deterministic=True)
    if len(plain) > MAX_LINK_DATA:
        raise TooLargeError("link data", len(plain), MAX_LINK_DATA)
    # Pad to a block so stored sizes say little about the profile inside.
    framed = len(plain).to_bytes(2, "big") + plain
    framed += b"\x00" * (-len(framed) % PAD_BLOCK)
    return bytes(SecretBox(derive(link_key).enc_key).encrypt(framed))


def decrypt(link_key: bytes, ciphertext: bytes) -> core_pb2.LinkData:
    if len(ciphertext) > MAX_CIPHERTEXT:
        raise TooLargeError("stored link data", len(ciphertext), MAX_CIPHERTEXT)
    try:
        framed = SecretBox(derive(link_key).enc_key).decrypt(bytes(ciphertext))
    except (CryptoError, ValueError, TypeError):
        raise ChatRelayError(
            Reason.LINK_DECRYPT_FAILED, "stored link data does not decrypt with this link's key"
        ) from None
    size = int.from_bytes(framed[:2], "big")
    if len(framed) < 2 + size or any(framed[2 + size :]):
        raise MalformedError("link data", "bad padding")
    return codec.parse(core_pb2.LinkData, framed[2 : 2 + size], "link data", MAX_LINK_DATA)


# ---- making and resolving links -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkBundle:
    """A new link with what a host must store for it."""

    link: ShortLink
    data: core_pb2.LinkData = field(compare=False, repr=False)
    lookup_id: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    version: int = 1  # of the mutable part: a host refuses to replace it with an older one

    def __str__(self) -> str:
        return str(self.link)


def make_link(
    kind: LinkKind,
    fixed: core_pb2.FixedLinkData,
    signer: SigningKey,
    hosts: tuple[str, ...] | list[str],
    *,
    version: int = 1,
    group_profile: core_pb2.SignedEnvelope | None = None,
    relay: core_pb2.RelayInfo | None = None,
    contact: core_pb2.ContactInfo | None = None,
    scheme: str = "https",
    pins: tuple[bytes, ...] | list[bytes] = (),
) -> LinkBundle:
    fixed_bytes = fixed.SerializeToString(deterministic=True)
    link_key = link_key_of(fixed_bytes)
    mutable = core_pb2.LinkMutable(link_key=link_key, version=version)
    if group_profile is not None:
        mutable.group_profile.CopyFrom(group_profile)
    if relay is not None:
        mutable.relay.CopyFrom(relay)
    if contact is not None:
        mutable.contact.CopyFrom(contact)
    data = core_pb2.LinkData(
        fixed=fixed_bytes, mutable=env.sign_message(signer, env.Domain.LINK, mutable)
    )
    link = ShortLink(kind=kind, link_key=link_key, hosts=tuple(hosts), scheme=scheme, pins=tuple(pins))
    return LinkBundle(
        link=link,
        data=data,
        lookup_id=derive(link_key).lookup_id,
        ciphertext=encrypt(link_key, data),
        version=version,
    )


def group_link(
    secrets: group.OwnerSecrets,
    profile_envelope: core_pb2.SignedEnvelope,
    hosts: tuple[str, ...] | list[str],
    pins: tuple[bytes, ...] | list[bytes] = (),
) -> LinkBundle:
    """The link of a group or channel: fixed = (kind, root key, group id, the owners'
    link secret). A relay knows all of it but the secret."""
    verified = group.verify_profile(profile_envelope, group_id=secrets.group_id)
    kind = LinkKind.CHANNEL if verified.profile.kind == core_pb2.GROUP_KIND_CHANNEL else LinkKind.GROUP
    fixed = core_pb2.FixedLinkData(
        kind=kind.pb, root_key=verified.profile.root_key, entity_id=verified.group_id, secret=secrets.link_secret,
    )
    return make_link(
        kind, fixed, secrets.owner_key, hosts,
        version=verified.version, group_profile=profile_envelope, pins=pins,
    )


def relay_link(
    identity: SigningKey, name: str, hosts: tuple[str, ...] | list[str], pin: bytes = b"",
    forward_hosts: tuple[str, ...] | list[str] = (),
) -> LinkBundle:
    """The link of a relay: its identity key is in the fixed data, so in the link key;
    `pin`, its TLS key's fingerprint, stands beside each host (one relay, one key);
    `forward_hosts`, where it forwards its clients' connections (cluster/forwarder.py)."""
    fixed = core_pb2.FixedLinkData(kind=core_pb2.LINK_KIND_RELAY, root_key=bytes(identity.verify_key))
    info = core_pb2.RelayInfo(name=name, hosts=list(hosts), forward_hosts=list(forward_hosts))
    return make_link(LinkKind.RELAY, fixed, identity, hosts, relay=info, pins=[pin] * len(hosts) if pin else ())


def contact_link(
    kind: LinkKind,
    address_key: SigningKey,
    queue_id: bytes,
    e2e_key: bytes,
    display_name: str,
    hosts: tuple[str, ...] | list[str],
    pins: tuple[bytes, ...] | list[bytes] = (),
) -> LinkBundle:
    """A multi-use contact address (a) or a one-time invitation (i)."""
    if kind not in (LinkKind.CONTACT, LinkKind.INVITATION):
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, "contact links are of kind a or i")
    fixed = core_pb2.FixedLinkData(
        kind=kind.pb, root_key=bytes(address_key.verify_key), entity_id=queue_id, e2e_key=e2e_key,
        secret=os.urandom(group.LINK_SECRET_SIZE),  # the relay holding the queue knows the rest
    )
    info = core_pb2.ContactInfo(display_name=display_name, hosts=list(hosts))
    return make_link(kind, fixed, address_key, hosts, contact=info, pins=pins)


@dataclass(frozen=True, slots=True)
class ResolvedLink:
    """Link data that decrypted, matched the link's hash and carried valid signatures."""

    link: ShortLink
    fixed: core_pb2.FixedLinkData = field(compare=False)
    mutable: core_pb2.LinkMutable = field(compare=False)
    signer: bytes
    profile: group.VerifiedProfile | None = None

    def __str__(self) -> str:
        return f"{self.link} ({self.profile or self.mutable.WhichOneof('content')})"


def resolve(link: ShortLink, ciphertext: bytes) -> ResolvedLink:
    """Decrypt what a host returned for `link` and check it end to end."""
    data = decrypt(link.link_key, ciphertext)
    if len(data.fixed) > MAX_FIXED:
        raise TooLargeError("fixed link data", len(data.fixed), MAX_FIXED)
    if link_key_of(data.fixed) != link.link_key:
        raise ChatRelayError(Reason.LINK_HASH_MISMATCH, "link data does not hash to the link key")
    fixed = codec.parse(core_pb2.FixedLinkData, data.fixed, "fixed link data", MAX_FIXED)
    if LinkKind.from_pb(fixed.kind) is not link.kind:
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, "link data is of another kind than the link")
    if len(fixed.root_key) != env.KEY_SIZE:
        raise MalformedError("fixed link data", "root key must be 32 bytes")
    if len(fixed.secret) not in (0, group.LINK_SECRET_SIZE):
        raise MalformedError("fixed link data", f"secret must be {group.LINK_SECRET_SIZE} bytes")
    checked, mutable = env.verify_message(
        data.mutable, env.Domain.LINK, core_pb2.LinkMutable, "link mutable data"
    )
    if mutable.link_key != link.link_key:
        raise ChatRelayError(Reason.LINK_HASH_MISMATCH, "mutable link data belongs to another link")
    content = mutable.WhichOneof("content")
    profile = None
    if link.kind in (LinkKind.GROUP, LinkKind.CHANNEL):
        if content != "group_profile":
            raise MalformedError("link mutable data", "a group link must carry a profile")
        profile = group.verify_profile(
            mutable.group_profile, root_key=fixed.root_key, group_id=fixed.entity_id
        )
        want = core_pb2.GROUP_KIND_CHANNEL if link.kind is LinkKind.CHANNEL else core_pb2.GROUP_KIND_GROUP
        if profile.profile.kind != want:
            raise ChatRelayError(Reason.LINK_KIND_MISMATCH, "profile kind differs from the link kind")
        if checked.signer not in profile.authorities():
            raise ChatRelayError(
                Reason.UNKNOWN_SIGNER, "link data is signed by a key that is neither root nor owner"
            )
    else:
        expected = "relay" if link.kind is LinkKind.RELAY else "contact"
        if content != expected:
            raise MalformedError("link mutable data", f"a {link.kind.name.lower()} link must carry {expected} info")
        if checked.signer != fixed.root_key:
            raise ChatRelayError(Reason.UNKNOWN_SIGNER, "link data is not signed by the link's key")
        if link.kind is not LinkKind.RELAY and len(fixed.e2e_key) != env.KEY_SIZE:
            raise MalformedError("fixed link data", "e2e key must be 32 bytes")
    return ResolvedLink(link=link, fixed=fixed, mutable=mutable, signer=checked.signer, profile=profile)
