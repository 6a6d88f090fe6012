"""What a shard and a gateway report of themselves, for the admin API and the metrics:
frozen dataclasses, as everything that crosses the Ray seam."""

from __future__ import annotations

import os
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    rss_bytes: int  # 0 where /proc is not there to read
    node_id: str = ""  # the Ray node's ("" outside Ray)

    @classmethod
    def here(cls, node_id: str = "") -> "ProcessInfo":
        """This process; `node_id` as the caller knows it."""
        try:
            with open("/proc/self/statm", "rb") as f:
                rss_pages = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            rss_pages = 0
        return cls(pid=os.getpid(), rss_bytes=rss_pages * _PAGE, node_id=node_id)


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One group loaded in a shard."""

    address: str
    state: str
    last_seq: int
    members: int
    mailbox_depth: int
    posts_accepted: int  # since the group was loaded here
    held_refused: int


@dataclass(frozen=True, slots=True)
class ShardStats:
    shard: int
    group_count: int
    moved_out: int
    mailbox_depth: int
    posts_accepted: int
    process: ProcessInfo
    groups: tuple[GroupFigures, ...] = ()  # only when asked for
    readers_verified: int = 0  # reader credentials whose signature the shard checked
    readers_remembered: int = 0  # reader credentials it had let in before: not checked again


@dataclass(frozen=True, slots=True)
class StreamFigures:
    """One group's streams on a gateway."""

    subscribers: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class GatewayStats:
    subscribers: int
    deliveries: int
    tails: int
    cut_off: int
    process: ProcessInfo
    groups: tuple[tuple[str, StreamFigures], ...] = ()  # (address, figures), only when asked for
