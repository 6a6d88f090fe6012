"""Groups and channels: the per-group root key, the owner chain and the signed, versioned
group profile (DESIGN.md sections 2 and 3).

Every group gets a root key of its own and every owner a key made for that group only,
so nothing relates two groups of one person.
"""

from __future__ import annotations

import enum
import hashlib
import os
import time
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2

MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_OWNERS = 32
MAX_RELAYS = 16
MAX_MODERATORS = 64
OWNER_ID_SIZE = 16


class GroupKind(enum.StrEnum):
    GROUP = "group"
    CHANNEL = "channel"

    @property
    def pb(self) -> int:
        return core_pb2.GROUP_KIND_GROUP if self is GroupKind.GROUP else core_pb2.GROUP_KIND_CHANNEL


class JoinPolicy(enum.StrEnum):
    OPEN = "open"
    APPROVAL = "approval"
    INVITE_ONLY = "invite"

    @property
    def pb(self) -> int:
        return {
            JoinPolicy.OPEN: core_pb2.JOIN_POLICY_OPEN,
            JoinPolicy.APPROVAL: core_pb2.JOIN_POLICY_APPROVAL,
            JoinPolicy.INVITE_ONLY: core_pb2.JOIN_POLICY_INVITE_ONLY,
        }[self]


def group_id_of(root_key: bytes) -> bytes:
    return hashlib.sha256(root_key).digest()


def owner_auth_message(group_id: bytes, owner_id: bytes, owner_key: bytes) -> bytes:
    return env.signed_message(env.Domain.OWNER.value, group_id + owner_id + owner_key)


def make_owner_auth(
    signer: SigningKey, group_id: bytes, owner_id: bytes, owner_key: bytes
) -> core_pb2.OwnerAuth:
    signature = signer.sign(owner_auth_message(group_id, owner_id, owner_key)).signature
    return core_pb2.OwnerAuth(owner_id=owner_id, owner_key=owner_key, signature=signature)


def verify_owner_chain(profile: core_pb2.Profile) -> dict[bytes, bytes]:
    """Check that each owner is signed by the root or an earlier owner.

    Returns {owner_key: owner_id} of the valid chain; raises BAD_OWNER_CHAIN otherwise.
    """
    if len(profile.owners) > MAX_OWNERS:
        raise ChatRelayError(Reason.BAD_OWNER_CHAIN, f"at most {MAX_OWNERS} owners allowed")
    trusted: list[bytes] = [profile.root_key]
    owners: dict[bytes, bytes] = {}
    for position, auth in enumerate(profile.owners):
        if len(auth.owner_id) != OWNER_ID_SIZE or len(auth.owner_key) != env.KEY_SIZE:
            raise ChatRelayError(
                Reason.BAD_OWNER_CHAIN, f"owner {position} has a malformed id or key"
            )
        if auth.owner_key in owners or auth.owner_id in owners.values():
            raise ChatRelayError(Reason.BAD_OWNER_CHAIN, f"owner {position} is listed twice")
        message = owner_auth_message(profile.group_id, auth.owner_id, auth.owner_key)
        if not any(_valid(key, message, auth.signature) for key in trusted):
            raise ChatRelayError(
                Reason.BAD_OWNER_CHAIN,
                f"owner {position} is not signed by the root or an earlier owner",
            )
        owners[auth.owner_key] = auth.owner_id
        trusted.append(auth.owner_key)
    return owners


def _valid(key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class VerifiedProfile:
    """A profile whose signature, signer and owner chain checked out."""

    profile: core_pb2.Profile = field(compare=False)
    envelope: core_pb2.SignedEnvelope = field(compare=False)
    signer: bytes
    owners: dict[bytes, bytes] = field(compare=False)

    @property
    def group_id(self) -> bytes:
        return self.profile.group_id

    @property
    def version(self) -> int:
        return self.profile.version

    def authorities(self) -> set[bytes]:
        """Keys that may sign for the group: the root and every owner of the chain."""
        return {self.profile.root_key, *self.owners}

    def __str__(self) -> str:
        return f"profile {self.profile.name!r} v{self.profile.version}"


def verify_profile(
    envelope: core_pb2.SignedEnvelope,
    *,
    root_key: bytes | None = None,
    group_id: bytes | None = None,
) -> VerifiedProfile:
    """Verify a signed profile; `root_key`/`group_id` pin it to a group known already."""
    checked, profile = env.verify_message(envelope, env.Domain.PROFILE, core_pb2.Profile, "profile")
    if len(profile.root_key) != env.KEY_SIZE:
        raise ChatRelayError(Reason.BAD_PROFILE, "profile root key must be 32 bytes")
    if profile.group_id != group_id_of(profile.root_key):
        raise ChatRelayError(Reason.GROUP_MISMATCH, "profile group id is not the hash of its root key")
    if root_key is not None and profile.root_key != root_key:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "profile belongs to another group (root key differs)")
    if group_id is not None and profile.group_id != group_id:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "profile belongs to another group")
    _check_fields(profile)
    owners = verify_owner_chain(profile)
    if checked.signer != profile.root_key and checked.signer not in owners:
        raise ChatRelayError(
            Reason.UNKNOWN_SIGNER, "profile is signed by a key that is neither root nor owner"
        )
    return VerifiedProfile(profile=profile, envelope=envelope, signer=checked.signer, owners=owners)


def _check_fields(profile: core_pb2.Profile) -> None:
    if profile.kind not in (core_pb2.GROUP_KIND_GROUP, core_pb2.GROUP_KIND_CHANNEL):
        raise ChatRelayError(Reason.BAD_PROFILE, "profile kind must be group or channel")
    if not 0 < len(profile.name) <= MAX_NAME:
        raise ChatRelayError(Reason.BAD_PROFILE, f"profile name must be 1 to {MAX_NAME} characters")
    if len(profile.description) > MAX_DESCRIPTION:
        raise ChatRelayError(
            Reason.BAD_PROFILE, f"profile description must be at most {MAX_DESCRIPTION} characters"
        )
    if profile.version < 1:
        raise ChatRelayError(Reason.BAD_PROFILE, "profile version starts at 1")
    if len(profile.relays) > MAX_RELAYS:
        raise ChatRelayError(Reason.BAD_PROFILE, f"at most {MAX_RELAYS} relays allowed")
    if profile.settings.join not in (
        core_pb2.JOIN_POLICY_OPEN,
        core_pb2.JOIN_POLICY_APPROVAL,
        core_pb2.JOIN_POLICY_INVITE_ONLY,
    ):
        raise ChatRelayError(Reason.BAD_PROFILE, "profile join policy is not set")
    if len(profile.intake_key) != env.KEY_SIZE:
        raise ChatRelayError(Reason.BAD_PROFILE, "profile intake key must be 32 bytes")
    moderators = list(profile.moderators)
    if len(moderators) > MAX_MODERATORS:
        raise ChatRelayError(Reason.BAD_PROFILE, f"at most {MAX_MODERATORS} moderators allowed")
    if any(len(key) != env.KEY_SIZE for key in moderators) or len(set(moderators)) != len(moderators):
        raise ChatRelayError(Reason.BAD_PROFILE, "profile moderators must be distinct 32-byte keys")
    if profile.root_key in moderators or any(a.owner_key in moderators for a in profile.owners):
        raise ChatRelayError(Reason.BAD_PROFILE, "an owner is not listed as a moderator")


def check_update(current: VerifiedProfile, new: VerifiedProfile) -> None:
    """A relay or member accepts `new` over `current` only for the same group, newer, and
    removing only owners its signer may remove (`check_removals`)."""
    if new.group_id != current.group_id or new.profile.root_key != current.profile.root_key:
        raise ChatRelayError(Reason.GROUP_MISMATCH, "profile update is for another group")
    if new.version <= current.version:
        raise ChatRelayError(
            Reason.STALE_PROFILE_VERSION,
            f"profile version {new.version} is not newer than {current.version}",
        )
    check_removals(current, new)


def owner_parents(profile: core_pb2.Profile) -> dict[bytes, bytes]:
    """{owner key: the key that signed it in} for a chain `verify_owner_chain` passed: the
    root or an earlier owner."""
    trusted, parents = [profile.root_key], {}
    for auth in profile.owners:
        message = owner_auth_message(profile.group_id, auth.owner_id, auth.owner_key)
        parents[auth.owner_key] = next(key for key in trusted if _valid(key, message, auth.signature))
        trusted.append(auth.owner_key)
    return parents


def may_remove(profile: core_pb2.Profile, signer: bytes, owner: bytes,
               parents: dict[bytes, bytes] | None = None) -> bool:
    """An owner is removed (or signed in anew) by the root, or by an owner it descends
    from in the chain (who signed it in, or signed in one who did). `parents`: the
    profile's `owner_parents`, where the caller has them."""
    if signer == profile.root_key:
        return True
    parents = owner_parents(profile) if parents is None else parents
    key = parents.get(owner)
    for _ in range(MAX_OWNERS + 1):  # bounded: a chain has at most MAX_OWNERS links
        if key is None or key == profile.root_key:
            return False
        if key == signer:
            return True
        key = parents.get(key)
    return False


def check_removals(current: VerifiedProfile, new: VerifiedProfile) -> None:
    """Refuse a version that drops an owner its signer had no right to remove, or keeps
    one signed in anew by another (which would make the signer its parent, and let it
    remove that owner next)."""
    before, after = owner_parents(current.profile), None
    for owner, owner_id in current.owners.items():
        if owner not in new.owners:
            changed = "is removed"
        else:
            after = owner_parents(new.profile) if after is None else after
            if after[owner] == before[owner] and new.owners[owner] == owner_id:
                continue
            changed = "is signed in anew"
        if not may_remove(current.profile, new.signer, owner, before):
            raise ChatRelayError(Reason.BAD_OWNER_CHAIN, (
                f"owner {owner_id.hex()} {changed} by a key that is neither the root "
                "nor an owner before it in the chain"))


LINK_SECRET_SIZE = 32


@dataclass(frozen=True, slots=True)
class OwnerSecrets:
    """What one owner holds for one group: all of it made for this group only."""

    group_id: bytes
    owner_id: bytes
    owner_seed: bytes
    intake_secret: bytes  # X25519 private key shared by the owners
    root_seed: bytes | None = None  # kept by the creator; None for later owners
    link_secret: bytes = b""  # in the group link's fixed data, so no relay can compute its key

    @property
    def owner_key(self) -> SigningKey:
        return SigningKey(self.owner_seed)

    @property
    def root_key(self) -> SigningKey | None:
        return None if self.root_seed is None else SigningKey(self.root_seed)

    @property
    def intake_key(self) -> PrivateKey:
        return PrivateKey(self.intake_secret)

    def __repr__(self) -> str:  # never print secrets
        return f"OwnerSecrets(group_id={self.group_id.hex()[:12]}…)"

    __str__ = __repr__


def create_group(
    kind: GroupKind,
    name: str,
    *,
    description: str = "",
    join: JoinPolicy = JoinPolicy.OPEN,
    direct_messages: bool = False,
    history_limit: int = 0,
) -> tuple[OwnerSecrets, core_pb2.SignedEnvelope]:
    """Make a new group: fresh root, owner and intake keys; profile version 1 signed by
    the first owner."""
    root = SigningKey.generate()
    owner = SigningKey.generate()
    intake = PrivateKey.generate()
    root_key = bytes(root.verify_key)
    group_id = group_id_of(root_key)
    owner_id = os.urandom(OWNER_ID_SIZE)
    profile = core_pb2.Profile(
        group_id=group_id,
        root_key=root_key,
        kind=kind.pb,
        name=name,
        description=description,
        version=1,
        owners=[make_owner_auth(root, group_id, owner_id, bytes(owner.verify_key))],
        settings=core_pb2.GroupSettings(
            join=join.pb, direct_messages=direct_messages, history_limit=history_limit
        ),
        intake_key=bytes(intake.public_key),
        signed_at=int(time.time()),
    )
    signed = sign_profile(owner, profile)
    verify_profile(signed)  # refuse to hand out what nobody would accept (e.g. a long name)
    secrets = OwnerSecrets(
        group_id=group_id,
        owner_id=owner_id,
        owner_seed=bytes(owner),
        intake_secret=bytes(intake),
        root_seed=bytes(root),
        link_secret=os.urandom(LINK_SECRET_SIZE),
    )
    return secrets, signed


def sign_profile(key: SigningKey, profile: core_pb2.Profile) -> core_pb2.SignedEnvelope:
    return env.sign_message(key, env.Domain.PROFILE, profile)


def next_version(
    key: SigningKey, current: VerifiedProfile, **changes
) -> core_pb2.SignedEnvelope:
    """Sign version+1 of `current` with `changes` applied to its fields (relays, name, …)."""
    profile = core_pb2.Profile()
    profile.CopyFrom(current.profile)
    for name, value in changes.items():
        if name in ("relays", "owners", "moderators"):
            profile.ClearField(name)
            getattr(profile, name).extend(value)
        elif name == "settings":
            profile.settings.CopyFrom(value)
        else:
            setattr(profile, name, value)
    profile.version = current.version + 1
    profile.signed_at = int(time.time())
    return sign_profile(key, profile)
