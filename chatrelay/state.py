"""The CLI's state file: one identity's keys, the groups it owns and those it joined.

Written atomically (temporary file, fsync, rename) with mode 0600. It holds only this
identity's secrets: per-group owner keys, per-group member keys.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import tempfile
from dataclasses import asdict, dataclass, field

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import OwnerSecrets

FORMAT = 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass
class RelayEntry:
    relay_link: str
    relay_key: str  # b64
    address: str
    target: str  # host:port to dial
    state: str = "pending"


@dataclass
class MadeInvite:
    """An invite code this owner made: what `chatrelay invite list` follows and `invite
    revoke` names. The code itself (its private key) is not kept."""

    id: str  # the first 12 hex digits of the code's key
    invite_key: str  # b64
    uses: int
    shares: dict[str, int] = field(default_factory=dict)  # relay key (b64) -> uses it counts
    expires_at: int = 0  # unix seconds; 0 = never
    made_at: int = 0
    revoked: bool = False


@dataclass
class OwnedGroup:
    group_id: str  # hex
    kind: str
    name: str
    link: str
    owner_seed: str
    owner_id: str
    intake_secret: str
    root_seed: str | None
    profile: str  # b64 of the latest signed profile envelope
    relays: list[RelayEntry] = field(default_factory=list)
    link_secret: str = ""  # b64; "" for groups made before links had a secret
    invites: list[MadeInvite] = field(default_factory=list)

    def secrets(self) -> OwnerSecrets:
        """What this owner holds for the group, as the protocol core takes it."""
        return OwnerSecrets(
            group_id=bytes.fromhex(self.group_id), owner_id=unb64(self.owner_id), owner_seed=unb64(self.owner_seed),
            intake_secret=unb64(self.intake_secret), link_secret=unb64(self.link_secret),
        )


@dataclass
class DirectInvitation:
    """A direct invitation another member sent me in a group: it waits for my consent
    (`chatrelay dm accept ID`); nothing is dialled before."""

    id: str  # hex, as `dm accept` takes it
    name: str  # the name the inviting member uses in the group
    message: str
    link: str  # the one-time invitation to connect to, on one of the group's relays
    member: str  # the inviting member's key (b64)


@dataclass
class Membership:
    group_id: str
    kind: str
    name: str
    link: str
    sign_seed: str
    box_secret: str
    display_name: str
    profile: str
    relays: list[RelayEntry] = field(default_factory=list)
    status: str = "member"
    direct_seq: int = 0  # direct invitations read so far
    invitations: list[DirectInvitation] = field(default_factory=list)  # waiting for my consent
    invite_receipt: str = ""  # b64: the relay's receipt of the invite that admitted me, for the group's others
    via: str = ""  # a relay link: the group's relays are reached through its forwarding (`join --via`)


@dataclass
class Address:
    """A contact address (a) or one-time invitation (i) this identity made."""

    kind: str  # "a" or "i"
    link: str
    queue: str
    target: str
    owner_seed: str  # Ed25519: owns the queue, signs the link data
    e2e_secret: str  # X25519: requests are boxed to its public half
    display_name: str
    read_seq: int = 0  # requests read so far: the next read acknowledges them, and the relay deletes them
    handled: dict[str, str] = field(default_factory=dict)  # request id -> accepted/rejected
    waiting: dict[str, dict] = field(default_factory=dict)  # request id -> the request, until decided
    auto_accept: str = ""  # for a direct invitation: the member (key, b64) it was sent to
    others: dict[str, int] = field(default_factory=dict)  # the queue on further relays: target -> read so far
    owner_for: str = ""  # an owner invitation (`owner add`): the group (id, hex) whose owner it makes

    def targets(self) -> list[tuple[str, int]]:
        """Each relay holding the queue, and the requests read there so far."""
        return [(self.target, self.read_seq), *self.others.items()]

    def mark_read(self, target: str, seq: int) -> None:
        if target == self.target:
            self.read_seq = max(self.read_seq, seq)
        else:
            self.others[target] = max(self.others.get(target, 0), seq)

    def used_up(self) -> bool:
        """A one-time invitation whose first request I accepted."""
        return self.kind == "i" and "accepted" in self.handled.values()


@dataclass
class Contact:
    """A 1:1 connection: I read `my_queue`, I send to `their_queue`, Box end to end."""

    name: str
    my_queue: str
    my_target: str
    my_seed: str  # Ed25519 owning my queue and signing what I send
    my_box_secret: str  # X25519
    their_queue: str = ""  # empty until the other side accepts
    their_target: str = ""
    their_box_key: str = ""  # X25519 public
    first_box_key: str = ""  # the address key the acceptance comes boxed from
    read_seq: int = 0
    status: str = "waiting"  # waiting, connected, refused
    member: str = ""  # for a direct connection made in a group: the other member's key (b64)
    owner_seed: str = ""  # asked to become an owner (`owner accept`): my owner key for that group (b64)
    handover: dict = field(default_factory=dict)  # what the owner who added me sent: taken up by `chatrelay owners`


@dataclass
class ConfiguredRelay:
    """A relay this identity chose to use (`chatrelay relays config add`): groups and
    channels made without `--relay` are registered with these."""

    link: str
    name: str  # as the relay's own link data gives it
    relay_key: str  # b64, the relay's identity key, as its link data gives it
    pins: list[str] = field(default_factory=list)  # its TLS certificate's fingerprints, as the link carries them


@dataclass
class State:
    owned: list[OwnedGroup] = field(default_factory=list)
    memberships: list[Membership] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    relays: list[ConfiguredRelay] = field(default_factory=list)
    via: str = ""  # a configured relay's link: `join` goes through its forwarding unless told otherwise

    def find_relay(self, which: str) -> ConfiguredRelay:
        """A configured relay by its link or its name."""
        for relay in self.relays:
            if which in (relay.link, relay.name):
                return relay
        known = ", ".join(repr(r.name) for r in self.relays) or "none yet"
        raise ChatRelayError(Reason.UNKNOWN_ADDRESS, f"no relay {which!r} in this state file's configuration "
                                                     f"(configured: {known})")

    def unique_contact_name(self, name: str) -> str:
        """`name`, or `name 2`, `name 3`… where a contact has it already."""
        taken = {c.name for c in self.contacts}
        if name not in taken:
            return name
        return next((f"{name} {i}" for i in range(2, 10_000) if f"{name} {i}" not in taken), name)

    def find_contact(self, name: str) -> Contact:
        for c in self.contacts:
            if c.name == name:
                return c
        known = ", ".join(repr(c.name) for c in self.contacts) or "none yet"
        raise ChatRelayError(Reason.NOT_MEMBER, f"no contact {name!r} in this state file (contacts: {known})")

    def find_owned(self, which: str | None) -> OwnedGroup:
        return _pick(self.owned, which, "owns no group or channel; make one with `chatrelay channel create`")

    def find_joined(self, which: str | None) -> Membership:
        """A group this identity joined (not one it owns)."""
        return _pick(self.memberships, which, "has joined no group; join one with `chatrelay join LINK`")

    def find_membership(self, which: str | None) -> Membership | OwnedGroup:
        both = [*self.memberships, *self.owned]
        return _pick(both, which, "has joined no group; join one with `chatrelay join LINK`")


def _pick(items, which, empty_message):
    if not items:
        raise ChatRelayError(Reason.NOT_MEMBER, f"this state file {empty_message}")
    if which is None:
        if len(items) > 1:
            names = ", ".join(repr(i.name) for i in items)
            raise ChatRelayError(Reason.MALFORMED, f"several groups in this state file ({names}); name one with --group")
        return items[0]
    for item in items:
        if which in (item.name, item.link, item.group_id):
            return item
    raise ChatRelayError(Reason.NOT_MEMBER, f"no group {which!r} in this state file")


def load(path: pathlib.Path) -> State:
    if not path.exists():
        return State()
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        if raw.get("format") != FORMAT:
            raise ValueError(f"unknown format {raw.get('format')!r}")
        return State(
            owned=[OwnedGroup(**{**g, "relays": [RelayEntry(**r) for r in g["relays"]],
                                 "invites": [MadeInvite(**i) for i in g.get("invites", [])]}) for g in raw["owned"]],
            memberships=[Membership(**{**m, "relays": [RelayEntry(**r) for r in m["relays"]],
                                       "invitations": [DirectInvitation(**i) for i in m.get("invitations", [])]})
                         for m in raw["memberships"]],
            addresses=[Address(**a) for a in raw.get("addresses", [])],
            contacts=[Contact(**c) for c in raw.get("contacts", [])],
            relays=[ConfiguredRelay(**r) for r in raw.get("relays", [])],
            via=raw.get("via", ""),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ChatRelayError(Reason.MALFORMED, f"state file {path} is not a chatrelay state file: {exc}") from None


def save(path: pathlib.Path, state: State) -> None:
    data = json.dumps({"format": FORMAT, **asdict(state)}, indent=1, sort_keys=True).encode()
    path = pathlib.Path(path)
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
