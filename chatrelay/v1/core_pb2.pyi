from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GroupKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_KIND_UNSPECIFIED: _ClassVar[GroupKind]
    GROUP_KIND_GROUP: _ClassVar[GroupKind]
    GROUP_KIND_CHANNEL: _ClassVar[GroupKind]

class JoinPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOIN_POLICY_UNSPECIFIED: _ClassVar[JoinPolicy]
    JOIN_POLICY_OPEN: _ClassVar[JoinPolicy]
    JOIN_POLICY_APPROVAL: _ClassVar[JoinPolicy]
    JOIN_POLICY_INVITE_ONLY: _ClassVar[JoinPolicy]

class LinkKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_KIND_UNSPECIFIED: _ClassVar[LinkKind]
    LINK_KIND_RELAY: _ClassVar[LinkKind]
    LINK_KIND_GROUP: _ClassVar[LinkKind]
    LINK_KIND_CHANNEL: _ClassVar[LinkKind]
    LINK_KIND_CONTACT: _ClassVar[LinkKind]
    LINK_KIND_INVITATION: _ClassVar[LinkKind]

class ModerationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODERATION_KIND_UNSPECIFIED: _ClassVar[ModerationKind]
    MODERATION_KIND_DELETE_POST: _ClassVar[ModerationKind]
    MODERATION_KIND_REMOVE_MEMBER: _ClassVar[ModerationKind]
GROUP_KIND_UNSPECIFIED: GroupKind
GROUP_KIND_GROUP: GroupKind
GROUP_KIND_CHANNEL: GroupKind
JOIN_POLICY_UNSPECIFIED: JoinPolicy
JOIN_POLICY_OPEN: JoinPolicy
JOIN_POLICY_APPROVAL: JoinPolicy
JOIN_POLICY_INVITE_ONLY: JoinPolicy
LINK_KIND_UNSPECIFIED: LinkKind
LINK_KIND_RELAY: LinkKind
LINK_KIND_GROUP: LinkKind
LINK_KIND_CHANNEL: LinkKind
LINK_KIND_CONTACT: LinkKind
LINK_KIND_INVITATION: LinkKind
MODERATION_KIND_UNSPECIFIED: ModerationKind
MODERATION_KIND_DELETE_POST: ModerationKind
MODERATION_KIND_REMOVE_MEMBER: ModerationKind

class SignedEnvelope(_message.Message):
    __slots__ = ("domain", "body", "signer", "signature")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    domain: str
    body: bytes
    signer: bytes
    signature: bytes
    def __init__(self, domain: _Optional[str] = ..., body: _Optional[bytes] = ..., signer: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class OwnerAuth(_message.Message):
    __slots__ = ("owner_id", "owner_key", "signature")
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    owner_id: bytes
    owner_key: bytes
    signature: bytes
    def __init__(self, owner_id: _Optional[bytes] = ..., owner_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class GroupSettings(_message.Message):
    __slots__ = ("join", "direct_messages", "history_limit", "slow_mode_s", "max_post_bytes", "no_links")
    JOIN_FIELD_NUMBER: _ClassVar[int]
    DIRECT_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    SLOW_MODE_S_FIELD_NUMBER: _ClassVar[int]
    MAX_POST_BYTES_FIELD_NUMBER: _ClassVar[int]
    NO_LINKS_FIELD_NUMBER: _ClassVar[int]
    join: JoinPolicy
    direct_messages: bool
    history_limit: int
    slow_mode_s: int
    max_post_bytes: int
    no_links: bool
    def __init__(self, join: _Optional[_Union[JoinPolicy, str]] = ..., direct_messages: _Optional[bool] = ..., history_limit: _Optional[int] = ..., slow_mode_s: _Optional[int] = ..., max_post_bytes: _Optional[int] = ..., no_links: _Optional[bool] = ...) -> None: ...

class RelayRef(_message.Message):
    __slots__ = ("relay_key", "relay_link", "group_address")
    RELAY_KEY_FIELD_NUMBER: _ClassVar[int]
    RELAY_LINK_FIELD_NUMBER: _ClassVar[int]
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    relay_key: bytes
    relay_link: str
    group_address: str
    def __init__(self, relay_key: _Optional[bytes] = ..., relay_link: _Optional[str] = ..., group_address: _Optional[str] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("group_id", "root_key", "kind", "name", "description", "version", "owners", "relays", "settings", "intake_key", "moderators", "signed_at")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    RELAYS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    INTAKE_KEY_FIELD_NUMBER: _ClassVar[int]
    MODERATORS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    root_key: bytes
    kind: GroupKind
    name: str
    description: str
    version: int
    owners: _containers.RepeatedCompositeFieldContainer[OwnerAuth]
    relays: _containers.RepeatedCompositeFieldContainer[RelayRef]
    settings: GroupSettings
    intake_key: bytes
    moderators: _containers.RepeatedScalarFieldContainer[bytes]
    signed_at: int
    def __init__(self, group_id: _Optional[bytes] = ..., root_key: _Optional[bytes] = ..., kind: _Optional[_Union[GroupKind, str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., version: _Optional[int] = ..., owners: _Optional[_Iterable[_Union[OwnerAuth, _Mapping]]] = ..., relays: _Optional[_Iterable[_Union[RelayRef, _Mapping]]] = ..., settings: _Optional[_Union[GroupSettings, _Mapping]] = ..., intake_key: _Optional[bytes] = ..., moderators: _Optional[_Iterable[bytes]] = ..., signed_at: _Optional[int] = ...) -> None: ...

class FixedLinkData(_message.Message):
    __slots__ = ("kind", "root_key", "entity_id", "e2e_key", "secret")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROOT_KEY_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    E2E_KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    kind: LinkKind
    root_key: bytes
    entity_id: bytes
    e2e_key: bytes
    secret: bytes
    def __init__(self, kind: _Optional[_Union[LinkKind, str]] = ..., root_key: _Optional[bytes] = ..., entity_id: _Optional[bytes] = ..., e2e_key: _Optional[bytes] = ..., secret: _Optional[bytes] = ...) -> None: ...

class RelayInfo(_message.Message):
    __slots__ = ("name", "hosts", "forward_hosts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    FORWARD_HOSTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    hosts: _containers.RepeatedScalarFieldContainer[str]
    forward_hosts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., hosts: _Optional[_Iterable[str]] = ..., forward_hosts: _Optional[_Iterable[str]] = ...) -> None: ...

class ContactInfo(_message.Message):
    __slots__ = ("display_name", "hosts")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    hosts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, display_name: _Optional[str] = ..., hosts: _Optional[_Iterable[str]] = ...) -> None: ...

class LinkMutable(_message.Message):
    __slots__ = ("link_key", "version", "group_profile", "relay", "contact")
    LINK_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GROUP_PROFILE_FIELD_NUMBER: _ClassVar[int]
    RELAY_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    link_key: bytes
    version: int
    group_profile: SignedEnvelope
    relay: RelayInfo
    contact: ContactInfo
    def __init__(self, link_key: _Optional[bytes] = ..., version: _Optional[int] = ..., group_profile: _Optional[_Union[SignedEnvelope, _Mapping]] = ..., relay: _Optional[_Union[RelayInfo, _Mapping]] = ..., contact: _Optional[_Union[ContactInfo, _Mapping]] = ...) -> None: ...

class LinkData(_message.Message):
    __slots__ = ("fixed", "mutable")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    MUTABLE_FIELD_NUMBER: _ClassVar[int]
    fixed: bytes
    mutable: SignedEnvelope
    def __init__(self, fixed: _Optional[bytes] = ..., mutable: _Optional[_Union[SignedEnvelope, _Mapping]] = ...) -> None: ...

class InviteGrant(_message.Message):
    __slots__ = ("group_id", "invite_key", "uses", "expires_at", "shares")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INVITE_KEY_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    invite_key: bytes
    uses: int
    expires_at: int
    shares: _containers.RepeatedCompositeFieldContainer[InviteShare]
    def __init__(self, group_id: _Optional[bytes] = ..., invite_key: _Optional[bytes] = ..., uses: _Optional[int] = ..., expires_at: _Optional[int] = ..., shares: _Optional[_Iterable[_Union[InviteShare, _Mapping]]] = ...) -> None: ...

class InviteShare(_message.Message):
    __slots__ = ("relay_key", "uses")
    RELAY_KEY_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    relay_key: bytes
    uses: int
    def __init__(self, relay_key: _Optional[bytes] = ..., uses: _Optional[int] = ...) -> None: ...

class InviteReceipt(_message.Message):
    __slots__ = ("group_id", "invite_key", "member_key")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INVITE_KEY_FIELD_NUMBER: _ClassVar[int]
    MEMBER_KEY_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    invite_key: bytes
    member_key: bytes
    def __init__(self, group_id: _Optional[bytes] = ..., invite_key: _Optional[bytes] = ..., member_key: _Optional[bytes] = ...) -> None: ...

class InviteCode(_message.Message):
    __slots__ = ("invite_seed", "grant", "group_link")
    INVITE_SEED_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    GROUP_LINK_FIELD_NUMBER: _ClassVar[int]
    invite_seed: bytes
    grant: SignedEnvelope
    group_link: str
    def __init__(self, invite_seed: _Optional[bytes] = ..., grant: _Optional[_Union[SignedEnvelope, _Mapping]] = ..., group_link: _Optional[str] = ...) -> None: ...

class InviteProof(_message.Message):
    __slots__ = ("grant", "signature")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    grant: SignedEnvelope
    signature: bytes
    def __init__(self, grant: _Optional[_Union[SignedEnvelope, _Mapping]] = ..., signature: _Optional[bytes] = ...) -> None: ...

class MemberKeys(_message.Message):
    __slots__ = ("sign_key", "box_key")
    SIGN_KEY_FIELD_NUMBER: _ClassVar[int]
    BOX_KEY_FIELD_NUMBER: _ClassVar[int]
    sign_key: bytes
    box_key: bytes
    def __init__(self, sign_key: _Optional[bytes] = ..., box_key: _Optional[bytes] = ...) -> None: ...

class MemberProfile(_message.Message):
    __slots__ = ("display_name",)
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    def __init__(self, display_name: _Optional[str] = ...) -> None: ...

class KeyAnnouncement(_message.Message):
    __slots__ = ("group_id", "keys", "profile")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    keys: MemberKeys
    profile: MemberProfile
    def __init__(self, group_id: _Optional[bytes] = ..., keys: _Optional[_Union[MemberKeys, _Mapping]] = ..., profile: _Optional[_Union[MemberProfile, _Mapping]] = ...) -> None: ...

class JoinBody(_message.Message):
    __slots__ = ("group_id", "group_address", "keys", "profile", "sealed_announcement", "invite", "nonce", "timestamp", "approval", "invite_receipt")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    SEALED_ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    INVITE_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    INVITE_RECEIPT_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    group_address: str
    keys: MemberKeys
    profile: MemberProfile
    sealed_announcement: bytes
    invite: InviteProof
    nonce: bytes
    timestamp: int
    approval: SignedEnvelope
    invite_receipt: SignedEnvelope
    def __init__(self, group_id: _Optional[bytes] = ..., group_address: _Optional[str] = ..., keys: _Optional[_Union[MemberKeys, _Mapping]] = ..., profile: _Optional[_Union[MemberProfile, _Mapping]] = ..., sealed_announcement: _Optional[bytes] = ..., invite: _Optional[_Union[InviteProof, _Mapping]] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., approval: _Optional[_Union[SignedEnvelope, _Mapping]] = ..., invite_receipt: _Optional[_Union[SignedEnvelope, _Mapping]] = ...) -> None: ...

class PostBody(_message.Message):
    __slots__ = ("group_id", "body", "client_ts", "nonce")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    body: bytes
    client_ts: int
    nonce: bytes
    def __init__(self, group_id: _Optional[bytes] = ..., body: _Optional[bytes] = ..., client_ts: _Optional[int] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class ModerationBody(_message.Message):
    __slots__ = ("group_id", "kind", "message_id", "member", "ban", "delete_posts", "reason", "nonce", "timestamp")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    BAN_FIELD_NUMBER: _ClassVar[int]
    DELETE_POSTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    kind: ModerationKind
    message_id: bytes
    member: bytes
    ban: bool
    delete_posts: bool
    reason: str
    nonce: bytes
    timestamp: int
    def __init__(self, group_id: _Optional[bytes] = ..., kind: _Optional[_Union[ModerationKind, str]] = ..., message_id: _Optional[bytes] = ..., member: _Optional[bytes] = ..., ban: _Optional[bool] = ..., delete_posts: _Optional[bool] = ..., reason: _Optional[str] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class ReportContent(_message.Message):
    __slots__ = ("group_id", "post", "seq", "reason")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    POST_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    post: SignedEnvelope
    seq: int
    reason: str
    def __init__(self, group_id: _Optional[bytes] = ..., post: _Optional[_Union[SignedEnvelope, _Mapping]] = ..., seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
