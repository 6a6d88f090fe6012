from chatrelay.v1 import core_pb2 as _core_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GroupState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_STATE_UNSPECIFIED: _ClassVar[GroupState]
    GROUP_STATE_PENDING: _ClassVar[GroupState]
    GROUP_STATE_ACTIVE: _ClassVar[GroupState]
    GROUP_STATE_SUSPENDED: _ClassVar[GroupState]
    GROUP_STATE_REMOVED: _ClassVar[GroupState]

class OwnerCommandKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OWNER_COMMAND_KIND_UNSPECIFIED: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_UPDATE_PROFILE: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_SUSPEND: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_RESUME: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_REMOVE_RELAY: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_DELETE_GROUP: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_APPROVE_JOIN: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_REJECT_JOIN: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_REMOVE_MEMBER: _ClassVar[OwnerCommandKind]
    OWNER_COMMAND_KIND_REVOKE_INVITE: _ClassVar[OwnerCommandKind]

class JoinStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOIN_STATUS_UNSPECIFIED: _ClassVar[JoinStatus]
    JOIN_STATUS_ACCEPTED: _ClassVar[JoinStatus]
    JOIN_STATUS_PENDING_APPROVAL: _ClassVar[JoinStatus]
    JOIN_STATUS_HELD: _ClassVar[JoinStatus]
    JOIN_STATUS_REJECTED: _ClassVar[JoinStatus]
GROUP_STATE_UNSPECIFIED: GroupState
GROUP_STATE_PENDING: GroupState
GROUP_STATE_ACTIVE: GroupState
GROUP_STATE_SUSPENDED: GroupState
GROUP_STATE_REMOVED: GroupState
OWNER_COMMAND_KIND_UNSPECIFIED: OwnerCommandKind
OWNER_COMMAND_KIND_UPDATE_PROFILE: OwnerCommandKind
OWNER_COMMAND_KIND_SUSPEND: OwnerCommandKind
OWNER_COMMAND_KIND_RESUME: OwnerCommandKind
OWNER_COMMAND_KIND_REMOVE_RELAY: OwnerCommandKind
OWNER_COMMAND_KIND_DELETE_GROUP: OwnerCommandKind
OWNER_COMMAND_KIND_APPROVE_JOIN: OwnerCommandKind
OWNER_COMMAND_KIND_REJECT_JOIN: OwnerCommandKind
OWNER_COMMAND_KIND_REMOVE_MEMBER: OwnerCommandKind
OWNER_COMMAND_KIND_REVOKE_INVITE: OwnerCommandKind
JOIN_STATUS_UNSPECIFIED: JoinStatus
JOIN_STATUS_ACCEPTED: JoinStatus
JOIN_STATUS_PENDING_APPROVAL: JoinStatus
JOIN_STATUS_HELD: JoinStatus
JOIN_STATUS_REJECTED: JoinStatus

class StoreLinkBody(_message.Message):
    __slots__ = ("lookup_id", "ciphertext", "nonce", "timestamp", "version", "writers")
    LOOKUP_ID_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WRITERS_FIELD_NUMBER: _ClassVar[int]
    lookup_id: bytes
    ciphertext: bytes
    nonce: bytes
    timestamp: int
    version: int
    writers: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, lookup_id: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., version: _Optional[int] = ..., writers: _Optional[_Iterable[bytes]] = ...) -> None: ...

class StoreLinkRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class StoreLinkResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class ResolveLinkRequest(_message.Message):
    __slots__ = ("lookup_id",)
    LOOKUP_ID_FIELD_NUMBER: _ClassVar[int]
    lookup_id: bytes
    def __init__(self, lookup_id: _Optional[bytes] = ...) -> None: ...

class ResolveLinkResponse(_message.Message):
    __slots__ = ("ciphertext",)
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    def __init__(self, ciphertext: _Optional[bytes] = ...) -> None: ...

class RegisterGroupBody(_message.Message):
    __slots__ = ("profile", "registration_key", "nonce", "timestamp")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_KEY_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    profile: _core_pb2.SignedEnvelope
    registration_key: bytes
    nonce: bytes
    timestamp: int
    def __init__(self, profile: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., registration_key: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class AddressGrant(_message.Message):
    __slots__ = ("group_id", "group_address", "relay_key", "registration_key")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RELAY_KEY_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_KEY_FIELD_NUMBER: _ClassVar[int]
    group_id: bytes
    group_address: str
    relay_key: bytes
    registration_key: bytes
    def __init__(self, group_id: _Optional[bytes] = ..., group_address: _Optional[str] = ..., relay_key: _Optional[bytes] = ..., registration_key: _Optional[bytes] = ...) -> None: ...

class RegisterGroupRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class RegisterGroupResponse(_message.Message):
    __slots__ = ("address", "state")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    address: _core_pb2.SignedEnvelope
    state: GroupState
    def __init__(self, address: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., state: _Optional[_Union[GroupState, str]] = ...) -> None: ...

class OwnerCommandBody(_message.Message):
    __slots__ = ("group_address", "command_id", "kind", "profile", "request_id", "reason", "nonce", "timestamp", "member", "invite_key")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    INVITE_KEY_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    command_id: bytes
    kind: OwnerCommandKind
    profile: _core_pb2.SignedEnvelope
    request_id: bytes
    reason: str
    nonce: bytes
    timestamp: int
    member: bytes
    invite_key: bytes
    def __init__(self, group_address: _Optional[str] = ..., command_id: _Optional[bytes] = ..., kind: _Optional[_Union[OwnerCommandKind, str]] = ..., profile: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., request_id: _Optional[bytes] = ..., reason: _Optional[str] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., member: _Optional[bytes] = ..., invite_key: _Optional[bytes] = ...) -> None: ...

class OwnerCommandRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class OwnerCommandResponse(_message.Message):
    __slots__ = ("state", "applied_before", "log_seq")
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LOG_SEQ_FIELD_NUMBER: _ClassVar[int]
    state: GroupState
    applied_before: bool
    log_seq: int
    def __init__(self, state: _Optional[_Union[GroupState, str]] = ..., applied_before: _Optional[bool] = ..., log_seq: _Optional[int] = ...) -> None: ...

class OwnerReadBody(_message.Message):
    __slots__ = ("group_address", "since_seq", "nonce", "timestamp")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQ_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    since_seq: int
    nonce: bytes
    timestamp: int
    def __init__(self, group_address: _Optional[str] = ..., since_seq: _Optional[int] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class ServiceLogEntry(_message.Message):
    __slots__ = ("seq", "command", "applied_at", "outcome", "notice")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    command: _core_pb2.SignedEnvelope
    applied_at: int
    outcome: str
    notice: RelayNotice
    def __init__(self, seq: _Optional[int] = ..., command: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., applied_at: _Optional[int] = ..., outcome: _Optional[str] = ..., notice: _Optional[_Union[RelayNotice, _Mapping]] = ...) -> None: ...

class RelayNotice(_message.Message):
    __slots__ = ("kind", "text")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    text: str
    def __init__(self, kind: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ServiceLogRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class ServiceLogResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ServiceLogEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ServiceLogEntry, _Mapping]]] = ...) -> None: ...

class JoinPending(_message.Message):
    __slots__ = ("request_id", "join", "received_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    join: _core_pb2.SignedEnvelope
    received_at: int
    def __init__(self, request_id: _Optional[bytes] = ..., join: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., received_at: _Optional[int] = ...) -> None: ...

class ListPendingRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class ListPendingResponse(_message.Message):
    __slots__ = ("pending",)
    PENDING_FIELD_NUMBER: _ClassVar[int]
    pending: _containers.RepeatedCompositeFieldContainer[JoinPending]
    def __init__(self, pending: _Optional[_Iterable[_Union[JoinPending, _Mapping]]] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("status", "request_id", "reason", "invite_receipt")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INVITE_RECEIPT_FIELD_NUMBER: _ClassVar[int]
    status: JoinStatus
    request_id: bytes
    reason: str
    invite_receipt: _core_pb2.SignedEnvelope
    def __init__(self, status: _Optional[_Union[JoinStatus, str]] = ..., request_id: _Optional[bytes] = ..., reason: _Optional[str] = ..., invite_receipt: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class PostRequest(_message.Message):
    __slots__ = ("group_address", "envelope")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, group_address: _Optional[str] = ..., envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class PostAck(_message.Message):
    __slots__ = ("seq", "message_id")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    seq: int
    message_id: bytes
    def __init__(self, seq: _Optional[int] = ..., message_id: _Optional[bytes] = ...) -> None: ...

class SubscribeBody(_message.Message):
    __slots__ = ("group_address", "nonce", "timestamp")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    nonce: bytes
    timestamp: int
    def __init__(self, group_address: _Optional[str] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("credential", "since_seq")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQ_FIELD_NUMBER: _ClassVar[int]
    credential: _core_pb2.SignedEnvelope
    since_seq: int
    def __init__(self, credential: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., since_seq: _Optional[int] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("seq", "post", "message_id", "relay_ts")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    POST_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RELAY_TS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    post: _core_pb2.SignedEnvelope
    message_id: bytes
    relay_ts: int
    def __init__(self, seq: _Optional[int] = ..., post: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., message_id: _Optional[bytes] = ..., relay_ts: _Optional[int] = ...) -> None: ...

class DeliveryBatch(_message.Message):
    __slots__ = ("deliveries", "last_seq")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    last_seq: int
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., last_seq: _Optional[int] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("credential", "before_seq", "limit")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    credential: _core_pb2.SignedEnvelope
    before_seq: int
    limit: int
    def __init__(self, credential: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., before_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class DirectInvitationBody(_message.Message):
    __slots__ = ("group_address", "to_member", "sealed", "nonce", "timestamp")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    to_member: bytes
    sealed: bytes
    nonce: bytes
    timestamp: int
    def __init__(self, group_address: _Optional[str] = ..., to_member: _Optional[bytes] = ..., sealed: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class DirectInvitationRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class DirectInvitationResponse(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class MemberKeysRequest(_message.Message):
    __slots__ = ("credential", "member", "display_name")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    credential: _core_pb2.SignedEnvelope
    member: bytes
    display_name: str
    def __init__(self, credential: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., member: _Optional[bytes] = ..., display_name: _Optional[str] = ...) -> None: ...

class MemberAdmission(_message.Message):
    __slots__ = ("join", "approval")
    JOIN_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    join: _core_pb2.SignedEnvelope
    approval: _core_pb2.SignedEnvelope
    def __init__(self, join: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., approval: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class MemberKeysResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[MemberAdmission]
    def __init__(self, members: _Optional[_Iterable[_Union[MemberAdmission, _Mapping]]] = ...) -> None: ...

class ModerateRequest(_message.Message):
    __slots__ = ("group_address", "envelope")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, group_address: _Optional[str] = ..., envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class ModerateResponse(_message.Message):
    __slots__ = ("seq", "applied_before")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    APPLIED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    applied_before: bool
    def __init__(self, seq: _Optional[int] = ..., applied_before: _Optional[bool] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ("envelope", "counts_only")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    counts_only: bool
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., counts_only: _Optional[bool] = ...) -> None: ...

class ListedMember(_message.Message):
    __slots__ = ("admission", "joined_at")
    ADMISSION_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    admission: MemberAdmission
    joined_at: int
    def __init__(self, admission: _Optional[_Union[MemberAdmission, _Mapping]] = ..., joined_at: _Optional[int] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members", "total", "subscribers")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[ListedMember]
    total: int
    subscribers: int
    def __init__(self, members: _Optional[_Iterable[_Union[ListedMember, _Mapping]]] = ..., total: _Optional[int] = ..., subscribers: _Optional[int] = ...) -> None: ...

class ReportBody(_message.Message):
    __slots__ = ("group_address", "sealed", "nonce", "timestamp")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    sealed: bytes
    nonce: bytes
    timestamp: int
    def __init__(self, group_address: _Optional[str] = ..., sealed: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class ListInvitesRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class InviteUses(_message.Message):
    __slots__ = ("invite_key", "used", "revoked_at")
    INVITE_KEY_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    invite_key: bytes
    used: int
    revoked_at: int
    def __init__(self, invite_key: _Optional[bytes] = ..., used: _Optional[int] = ..., revoked_at: _Optional[int] = ...) -> None: ...

class ListInvitesResponse(_message.Message):
    __slots__ = ("invites",)
    INVITES_FIELD_NUMBER: _ClassVar[int]
    invites: _containers.RepeatedCompositeFieldContainer[InviteUses]
    def __init__(self, invites: _Optional[_Iterable[_Union[InviteUses, _Mapping]]] = ...) -> None: ...

class ListReportsRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class ReceivedReport(_message.Message):
    __slots__ = ("seq", "report", "received_at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    report: _core_pb2.SignedEnvelope
    received_at: int
    def __init__(self, seq: _Optional[int] = ..., report: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., received_at: _Optional[int] = ...) -> None: ...

class ListReportsResponse(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[ReceivedReport]
    def __init__(self, reports: _Optional[_Iterable[_Union[ReceivedReport, _Mapping]]] = ...) -> None: ...

class LeaveBody(_message.Message):
    __slots__ = ("group_address", "nonce", "timestamp")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    nonce: bytes
    timestamp: int
    def __init__(self, group_address: _Optional[str] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DirectInboxRequest(_message.Message):
    __slots__ = ("credential", "after_seq")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    credential: _core_pb2.SignedEnvelope
    after_seq: int
    def __init__(self, credential: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., after_seq: _Optional[int] = ...) -> None: ...

class DirectInvitationDelivery(_message.Message):
    __slots__ = ("seq", "invitation")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    seq: int
    invitation: _core_pb2.SignedEnvelope
    def __init__(self, seq: _Optional[int] = ..., invitation: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class DirectInboxResponse(_message.Message):
    __slots__ = ("invitations",)
    INVITATIONS_FIELD_NUMBER: _ClassVar[int]
    invitations: _containers.RepeatedCompositeFieldContainer[DirectInvitationDelivery]
    def __init__(self, invitations: _Optional[_Iterable[_Union[DirectInvitationDelivery, _Mapping]]] = ...) -> None: ...

class CreateQueueBody(_message.Message):
    __slots__ = ("kind", "queue_id", "nonce", "timestamp")
    KIND_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    kind: _core_pb2.LinkKind
    queue_id: bytes
    nonce: bytes
    timestamp: int
    def __init__(self, kind: _Optional[_Union[_core_pb2.LinkKind, str]] = ..., queue_id: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class CreateQueueRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class CreateQueueResponse(_message.Message):
    __slots__ = ("queue_address",)
    QUEUE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    queue_address: str
    def __init__(self, queue_address: _Optional[str] = ...) -> None: ...

class ConnectionRequestBody(_message.Message):
    __slots__ = ("queue_address", "sender_key", "boxed", "nonce")
    QUEUE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SENDER_KEY_FIELD_NUMBER: _ClassVar[int]
    BOXED_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    queue_address: str
    sender_key: bytes
    boxed: bytes
    nonce: bytes
    def __init__(self, queue_address: _Optional[str] = ..., sender_key: _Optional[bytes] = ..., boxed: _Optional[bytes] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class ConnectionRequest(_message.Message):
    __slots__ = ("body",)
    BODY_FIELD_NUMBER: _ClassVar[int]
    body: ConnectionRequestBody
    def __init__(self, body: _Optional[_Union[ConnectionRequestBody, _Mapping]] = ...) -> None: ...

class ConnectionRequestAck(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    def __init__(self, request_id: _Optional[bytes] = ...) -> None: ...

class QueueMessage(_message.Message):
    __slots__ = ("seq", "request_id", "sender_key", "boxed", "received_at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_KEY_FIELD_NUMBER: _ClassVar[int]
    BOXED_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    request_id: bytes
    sender_key: bytes
    boxed: bytes
    received_at: int
    def __init__(self, seq: _Optional[int] = ..., request_id: _Optional[bytes] = ..., sender_key: _Optional[bytes] = ..., boxed: _Optional[bytes] = ..., received_at: _Optional[int] = ...) -> None: ...

class QueueReadBody(_message.Message):
    __slots__ = ("queue_address", "since_seq", "nonce", "timestamp")
    QUEUE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQ_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    queue_address: str
    since_seq: int
    nonce: bytes
    timestamp: int
    def __init__(self, queue_address: _Optional[str] = ..., since_seq: _Optional[int] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class ReadQueueRequest(_message.Message):
    __slots__ = ("envelope", "follow", "after_seq")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    follow: bool
    after_seq: int
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., follow: _Optional[bool] = ..., after_seq: _Optional[int] = ...) -> None: ...

class QueueBatch(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[QueueMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[QueueMessage, _Mapping]]] = ...) -> None: ...

class QueueSendBody(_message.Message):
    __slots__ = ("queue_address", "boxed", "nonce", "timestamp")
    QUEUE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BOXED_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    queue_address: str
    boxed: bytes
    nonce: bytes
    timestamp: int
    def __init__(self, queue_address: _Optional[str] = ..., boxed: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class SendQueueRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class SendQueueResponse(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class AdminBody(_message.Message):
    __slots__ = ("nonce", "timestamp", "method", "window_ms", "limit", "group_address", "to_shard", "reason")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TO_SHARD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    timestamp: int
    method: str
    window_ms: int
    limit: int
    group_address: str
    to_shard: int
    reason: str
    def __init__(self, nonce: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., method: _Optional[str] = ..., window_ms: _Optional[int] = ..., limit: _Optional[int] = ..., group_address: _Optional[str] = ..., to_shard: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ShardStatus(_message.Message):
    __slots__ = ("shard_id", "node_id", "groups", "mailbox_depth", "healthy", "index", "pid", "rss_bytes", "posts_accepted", "posts_per_second", "moved_out", "error")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    POSTS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    POSTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MOVED_OUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    shard_id: str
    node_id: str
    groups: int
    mailbox_depth: int
    healthy: bool
    index: int
    pid: int
    rss_bytes: int
    posts_accepted: int
    posts_per_second: float
    moved_out: int
    error: str
    def __init__(self, shard_id: _Optional[str] = ..., node_id: _Optional[str] = ..., groups: _Optional[int] = ..., mailbox_depth: _Optional[int] = ..., healthy: _Optional[bool] = ..., index: _Optional[int] = ..., pid: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., posts_accepted: _Optional[int] = ..., posts_per_second: _Optional[float] = ..., moved_out: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class GatewayStatus(_message.Message):
    __slots__ = ("node_id", "subscribers", "deliveries", "tails", "cut_off", "deliveries_per_second", "pid", "rss_bytes", "healthy", "error")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    TAILS_FIELD_NUMBER: _ClassVar[int]
    CUT_OFF_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    subscribers: int
    deliveries: int
    tails: int
    cut_off: int
    deliveries_per_second: float
    pid: int
    rss_bytes: int
    healthy: bool
    error: str
    def __init__(self, node_id: _Optional[str] = ..., subscribers: _Optional[int] = ..., deliveries: _Optional[int] = ..., tails: _Optional[int] = ..., cut_off: _Optional[int] = ..., deliveries_per_second: _Optional[float] = ..., pid: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., healthy: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("relay_link", "shards", "groups", "subscribers", "posts_per_second", "deliveries_per_second", "health", "gateways", "groups_loaded", "posts_accepted", "deliveries", "window_seconds", "registry", "nodes", "store", "taken_down")
    RELAY_LINK_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    POSTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    GATEWAYS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_LOADED_FIELD_NUMBER: _ClassVar[int]
    POSTS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    TAKEN_DOWN_FIELD_NUMBER: _ClassVar[int]
    relay_link: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardStatus]
    groups: int
    subscribers: int
    posts_per_second: float
    deliveries_per_second: float
    health: str
    gateways: _containers.RepeatedCompositeFieldContainer[GatewayStatus]
    groups_loaded: int
    posts_accepted: int
    deliveries: int
    window_seconds: float
    registry: str
    nodes: int
    store: str
    taken_down: _containers.RepeatedCompositeFieldContainer[TakenDown]
    def __init__(self, relay_link: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardStatus, _Mapping]]] = ..., groups: _Optional[int] = ..., subscribers: _Optional[int] = ..., posts_per_second: _Optional[float] = ..., deliveries_per_second: _Optional[float] = ..., health: _Optional[str] = ..., gateways: _Optional[_Iterable[_Union[GatewayStatus, _Mapping]]] = ..., groups_loaded: _Optional[int] = ..., posts_accepted: _Optional[int] = ..., deliveries: _Optional[int] = ..., window_seconds: _Optional[float] = ..., registry: _Optional[str] = ..., nodes: _Optional[int] = ..., store: _Optional[str] = ..., taken_down: _Optional[_Iterable[_Union[TakenDown, _Mapping]]] = ...) -> None: ...

class TakenDown(_message.Message):
    __slots__ = ("group_address", "reason")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    reason: str
    def __init__(self, group_address: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GroupLoad(_message.Message):
    __slots__ = ("group_address", "posts_per_second", "subscribers", "mailbox_depth", "shard_id", "posts_accepted", "deliveries_per_second", "last_seq", "members", "state")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    POSTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    POSTS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    posts_per_second: float
    subscribers: int
    mailbox_depth: int
    shard_id: str
    posts_accepted: int
    deliveries_per_second: float
    last_seq: int
    members: int
    state: str
    def __init__(self, group_address: _Optional[str] = ..., posts_per_second: _Optional[float] = ..., subscribers: _Optional[int] = ..., mailbox_depth: _Optional[int] = ..., shard_id: _Optional[str] = ..., posts_accepted: _Optional[int] = ..., deliveries_per_second: _Optional[float] = ..., last_seq: _Optional[int] = ..., members: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class TopRequest(_message.Message):
    __slots__ = ("envelope", "limit")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    limit: int
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class TopResponse(_message.Message):
    __slots__ = ("groups", "window_seconds")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupLoad]
    window_seconds: float
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupLoad, _Mapping]]] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class MoveGroupRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class MoveGroupResponse(_message.Message):
    __slots__ = ("shard_id",)
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    shard_id: str
    def __init__(self, shard_id: _Optional[str] = ...) -> None: ...

class TakeDownRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _core_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_core_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class TakeDownResponse(_message.Message):
    __slots__ = ("group_address", "taken_down")
    GROUP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TAKEN_DOWN_FIELD_NUMBER: _ClassVar[int]
    group_address: str
    taken_down: str
    def __init__(self, group_address: _Optional[str] = ..., taken_down: _Optional[str] = ...) -> None: ...
