"""The operator's limits: the policy for registrations (a relay may refuse a group, with
a reason the owner sees; DESIGN.md section 5, step 2) and the bounds of every group."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.group import VerifiedProfile
from chatrelay.settings import DEFAULTS, Settings

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    max_groups: int = DEFAULTS.max_groups  # 0: no limit
    deny_names: str = DEFAULTS.deny_names  # a regular expression, matched case-insensitively anywhere in the name
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
    """Bounds every group relay of one relay works within (see `Settings` for each)."""

    mailbox_size: int = DEFAULTS.mailbox_size
    freshness_s: float = DEFAULTS.freshness_s
    idle_timeout_s: float = DEFAULTS.idle_timeout_s
    handshake_timeout_s: float = DEFAULTS.handshake_timeout_s
    keepalive_s: float = DEFAULTS.keepalive_s
    streams_per_connection: int = DEFAULTS.streams_per_connection
    registrations_per_minute: int = DEFAULTS.registrations_per_minute
    link_stores_per_minute: int = DEFAULTS.link_stores_per_minute
    queues_per_minute: int = DEFAULTS.queues_per_minute
    registrations_per_second: int = DEFAULTS.registrations_per_second
    queue_records: int = DEFAULTS.queue_records
    queue_bytes: int = DEFAULTS.queue_bytes
    streams_per_reader: int = DEFAULTS.streams_per_reader
    gateway_waiting: int = DEFAULTS.gateway_waiting
    retention: int = DEFAULTS.retention
    post_limit: int = DEFAULTS.post_limit
    post_window_s: float = DEFAULTS.post_window_s
    subscriber_lag: int = DEFAULTS.subscriber_lag
    fanout_linger_s: float = DEFAULTS.fanout_linger_s
    post_in_flight: int = DEFAULTS.post_in_flight
    hot_posts_per_s: float = DEFAULTS.hot_posts_per_s
    hot_check_s: float = DEFAULTS.hot_check_s
    unload_idle_s: float = DEFAULTS.unload_idle_s
    policy: RelayPolicy = RelayPolicy()

    @classmethod
    def of(cls, settings: Settings, policy: RelayPolicy) -> "RelayLimits":
        names = [f.name for f in dataclasses.fields(cls) if f.name != "policy"]
        return cls(**{name: getattr(settings, name) for name in names}, policy=policy)
