"""The operator's limits: the policy for registrations (a relay may refuse a group, with
a reason the owner sees; DESIGN.md section 5, step 2) and the bounds of every group."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import VerifiedProfile

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    max_groups: int = 0  # 0: no limit
    deny_names: str = ""  # a regular expression, matched case-insensitively anywhere in the name
    denied_groups: frozenset[str] = field(default_factory=frozenset)  # group ids, hex

    def __post_init__(self) -> None:
        if self.deny_names:
            try:
                re.compile(self.deny_names)
            except re.error as exc:
                raise ChatRelayError(Reason.MALFORMED, f"--deny-names is not a regular expression: {exc}") from None

    def __str__(self) -> str:
        limit = self.max_groups or "no"
        return f"{limit} group limit, {len(self.denied_groups)} denied groups"

    def check(self, profile: VerifiedProfile, groups_now: int) -> None:
        name = profile.profile.name
        if _CONTROL.search(name) or name != name.strip():
            raise ChatRelayError(Reason.REFUSED, "group name has control characters or surrounding spaces")
        if profile.group_id.hex() in self.denied_groups:
            raise ChatRelayError(Reason.REFUSED, "this relay does not serve this group")
        if self.deny_names and re.search(self.deny_names, name, re.IGNORECASE):
            raise ChatRelayError(Reason.REFUSED, "this relay does not serve groups with such names")
        if self.max_groups and groups_now >= self.max_groups:
            raise ChatRelayError(Reason.REFUSED, f"this relay serves at most {self.max_groups} groups and is full")


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Bounds every group relay of one relay works within."""

    mailbox_size: int = 1024  # requests waiting per group before BUSY
    retention: int = 0  # posts kept per group; 0 keeps all
    post_limit: int = 15  # posts per member per window, in groups (owners are free)
    post_window_s: float = 60.0
    subscriber_lag: int = 4096  # posts a live stream may fall behind before it is cut off
    post_in_flight: int = 1  # calls carrying one group's posts a gateway has going to its shard at a time
    hot_posts_per_s: float = 0.0  # a group past this rate moves to a shard of its own; 0: never
    hot_check_s: float = 5.0  # the window of that rate
    policy: RelayPolicy = RelayPolicy()
