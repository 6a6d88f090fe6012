"""What a relay keeps in the registry, and under which keys.

Every key is per group address or per group id; nothing names an owner, so nothing
ties two groups of one owner together.
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass

from chatrelay import codec
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2

MAX_ADDRESS = 64  # characters of a group or queue address (the relay makes 22)


def check_address(address, what: str = "group") -> str:
    """An address as a caller gave it, or the refusal any address this relay did not make
    gets: nothing says whether a longer or odd one could exist."""
    if not isinstance(address, str) or not 0 < len(address) <= MAX_ADDRESS:
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"no {what} at this address")
    return address


class GroupState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


STATE_PB = {
    GroupState.PENDING: relay_pb2.GROUP_STATE_PENDING,
    GroupState.ACTIVE: relay_pb2.GROUP_STATE_ACTIVE,
    GroupState.SUSPENDED: relay_pb2.GROUP_STATE_SUSPENDED,
    GroupState.REMOVED: relay_pb2.GROUP_STATE_REMOVED,
}


class Change(enum.StrEnum):
    """What moves a group from one state to another (DESIGN.md section 5)."""

    PROFILE = "profile"  # a new profile version that does not name this relay's address
    ACTIVATE = "activate"  # a new profile version naming this relay's address
    SUSPEND = "suspend"
    RESUME = "resume"
    REMOVE = "remove"  # the relay removed from the group, or the group deleted


def transition(state: GroupState, change: Change) -> GroupState:
    """The one place where a group's state changes: its next state, or the refusal."""
    if change is Change.ACTIVATE:
        return GroupState.ACTIVE if state is GroupState.PENDING else state
    if change is Change.PROFILE:
        return state
    if change is Change.REMOVE:
        return GroupState.REMOVED
    if state not in (GroupState.ACTIVE, GroupState.SUSPENDED):
        raise ChatRelayError(Reason.NOT_ACTIVE, f"group is {state.value} here")
    return GroupState.SUSPENDED if change is Change.SUSPEND else GroupState.ACTIVE


class MemberStatus(enum.StrEnum):
    MEMBER = "member"
    PENDING = "pending"  # waiting for an owner's approval
    BANNED = "banned"  # removed by the owners or a moderator, and refused at every join
    REJECTED = "rejected"  # the owners rejected its join: asked again, it is told why
    REMOVED = "removed"  # removed, or left: it may join again, but an approval it had admits it no more


def group_key(group_id: bytes) -> bytes:
    return b"groups/" + group_id.hex().encode()


def address_key(address: str) -> bytes:
    return b"addresses/" + address.encode()


def placement_key(address: str) -> bytes:
    return b"placement/" + address.encode()


PLACEMENT_PREFIX = b"placement/"
TAKEDOWN_PREFIX = b"takedowns/"  # the groups this relay's operator took down, for status


def takedown_key(address: str) -> bytes:
    return TAKEDOWN_PREFIX + address.encode()

RELAY_LINK = b"relay/link"  # the relay's own link, as `chatrelay up` printed it last


def shard_key(index: int) -> bytes:
    """Held, under the shard's registry lease, by the one live instance of a shard."""
    return b"shards/" + str(index).encode()

GROUP_COUNT = b"stats/groups"  # how many groups this relay serves: a number, nothing more


# Members and invite uses were registry keys before the member store (actors/member_store.py):
# read only to move them there (GroupRelay.fence) or count them (Joins._consume_invite).
def member_key(address: str, sign_key: bytes) -> bytes:
    return b"members/" + address.encode() + b"/" + codec.b64url(sign_key).encode()


def member_prefix(address: str) -> bytes:
    return b"members/" + address.encode() + b"/"


def invite_key(address: str, key: bytes) -> bytes:
    return b"invites/" + address.encode() + b"/" + codec.b64url(key).encode()


def link_key(lookup_id: bytes) -> bytes:
    return b"links/" + codec.b64url(lookup_id).encode()


def held_cursor_key(address: str) -> bytes:
    return b"held-cursor/" + address.encode()


def held_stream(address: str) -> str:
    return "held/" + address


def direct_stream(address: str, member: bytes) -> str:
    return "direct/" + address + "/" + codec.b64url(member)


def post_stream(address: str) -> str:
    return "posts/" + address


def service_stream(address: str) -> str:
    return "service/" + address


def report_stream(address: str) -> str:
    return "reports/" + address


def _b(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass(slots=True)
class GroupRecord:
    group_id: bytes
    address: str
    state: GroupState
    registration_key: bytes
    profile: bytes  # the signed profile envelope, serialized as received
    taken_down: str = ""  # the operator's reason while the group is taken down on this relay

    def dumps(self) -> bytes:
        # Spelled out rather than asdict, which deep-copies every field (the profile too).
        d = {"address": self.address, "group_id": _b(self.group_id), "profile": _b(self.profile),
             "registration_key": _b(self.registration_key), "state": self.state.value}
        if self.taken_down:
            d["taken_down"] = self.taken_down
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def loads(cls, data: bytes) -> "GroupRecord":
        d = json.loads(data)
        return cls(
            group_id=_unb(d["group_id"]), address=d["address"], state=GroupState(d["state"]),
            registration_key=_unb(d["registration_key"]), profile=_unb(d["profile"]),
            taken_down=d.get("taken_down", ""),
        )


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """Link data as the relay keeps it: the ciphertext, the key that stored it first and
    the writers its last store named (only those may replace it), and the version its
    owner signed (only a newer or equal one may replace it; 0 for records kept before
    versions)."""

    owner: bytes
    data: bytes
    version: int = 0
    writers: tuple[bytes, ...] = ()

    def dumps(self) -> bytes:
        return json.dumps(
            {"owner": codec.b64url(self.owner), "data": codec.b64url(self.data), "version": self.version,
             "writers": [codec.b64url(w) for w in self.writers]}
        ).encode()

    @classmethod
    def loads(cls, value: bytes) -> "LinkRecord":
        d = json.loads(value)
        return cls(
            owner=codec.unb64url(d["owner"], "stored link owner"), data=codec.unb64url(d["data"], "stored link data"),
            version=int(d.get("version", 0)),
            writers=tuple(codec.unb64url(w, "stored link writer") for w in d.get("writers", [])),
        )


@dataclass(slots=True)
class MemberRecord:
    box_key: bytes
    display_name: str
    status: MemberStatus
    joined_ms: int
    request_id: bytes = b""
    join: bytes = b""  # the signed join request: owners decide on it, members check it
    approval: bytes = b""  # the owner's signed APPROVE_JOIN naming the member (APPROVAL groups)
    note: str = ""  # REJECTED: the owners' reason

    def dumps(self) -> bytes:
        # Spelled out rather than asdict, which deep-copies every field: a join writes one.
        return json.dumps({
            "approval": _b(self.approval), "box_key": _b(self.box_key), "display_name": self.display_name,
            "join": _b(self.join), "joined_ms": self.joined_ms, "note": self.note,
            "request_id": _b(self.request_id), "status": self.status,
        }).encode()

    @classmethod
    def loads(cls, data: bytes) -> "MemberRecord":
        d = json.loads(data)
        for name in ("box_key", "request_id", "join", "approval"):
            d[name] = _unb(d.get(name, ""))
        d["status"] = MemberStatus(d["status"])
        return cls(**d)
