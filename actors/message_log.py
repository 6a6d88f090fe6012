"""The message log: durable, per-stream sequences of records (posts, service log
entries, held join requests, queues).

`MessageLog` is the interface the relay logic needs; its backends live in `cluster/`
(`SqliteMessageLog`, the embedded default; `PostgresMessageLog`). `append` returns only
after the records are durable, so an ack sent after it is never lost.

Fencing: a shard that loads a group claims it in the store (`claim`), which raises the
group's epoch; every write for the group carries that `Fence`, and the store refuses one
whose epoch is no longer the group's (`Fenced`), in the same transaction as the write.
So a shard that lost a group (moved, or its lease ran out while it was paused) cannot
write to it, however late its lease logic notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, TypeVar, runtime_checkable

from chatrelay.actors.calls import Moved

READ_LIMIT = 500  # records the relay reads from its log at once
PAGE_BYTES = 1 << 20  # what one answer to a client holds at most: a quarter of its 4 MiB receive limit
RECORD_OVERHEAD = 32  # what an item adds to its record's bytes in an answer (seq, time, id), at most

T = TypeVar("T")


def record_size(record: "LogRecord") -> int:
    return len(record.data) + len(record.key or b"") + RECORD_OVERHEAD


def fit(items: Sequence[T], size: Callable[[T], int] = record_size, *, newest: bool = False,
        budget: int = PAGE_BYTES) -> list[T]:
    """A page of `items` within `budget` bytes, whatever their sizes: the longest run from
    the oldest (or, with `newest`, up to the newest); one item at least, so a reader's
    cursor always moves on."""
    total = taken = 0
    for item in (reversed(items) if newest else items):
        total += size(item)
        if taken and total > budget:
            break
        taken += 1
    return list(items[len(items) - taken:] if newest else items[:taken])


@dataclass(frozen=True, slots=True)
class LogRecord:
    seq: int
    data: bytes
    ts: int  # milliseconds since the epoch, when appended
    key: bytes | None = None

    def __str__(self) -> str:
        return f"#{self.seq} ({len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class Fence:
    """What a write for a group carries: the group (its address) and the epoch its shard
    claimed when it loaded the group."""

    owner: str
    epoch: int


class Fenced(Moved):
    """The store refused a write: another shard has claimed the group since this one did.
    Nothing of the write is stored; the caller lets the group go (it is served elsewhere)."""

    def __init__(self, fence: Fence, current: int) -> None:
        super().__init__(f"group {fence.owner} was claimed again (epoch {current}, this shard holds {fence.epoch})")
        self.fence, self.current = fence, current


@dataclass(frozen=True, slots=True)
class Appended:
    seqs: tuple[int, ...]
    duplicates: tuple[bool, ...]  # True where the key was in the stream already


@runtime_checkable
class MessageLog(Protocol):
    async def append(
        self, stream: str, records: list[bytes], keys: list[bytes | None] | None = None,
        fence: Fence | None = None,
    ) -> Appended:
        """Durable when it returns; refused with `Fenced` (nothing stored) when `fence` is
        no longer its group's epoch."""
        ...

    async def claim(self, owner: str) -> int:
        """Raise `owner`'s epoch and return it: writes fenced with an earlier one are
        refused from now on."""
        ...

    async def read(self, stream: str, after_seq: int = 0, limit: int = 500) -> list[LogRecord]: ...

    async def read_before(self, stream: str, before_seq: int = 0, limit: int = 100) -> list[LogRecord]: ...

    async def find(self, stream: str, keys: list[bytes]) -> dict[bytes, int]:
        """The seq of each of `keys` the stream holds, or held: the key of a trimmed
        record is kept for a day, and `append` answers it as a duplicate meanwhile."""
        ...

    async def last_seq(self, stream: str) -> int: ...

    async def usage(self, stream: str, after_seq: int = 0) -> tuple[int, int]:
        """(records, bytes of their data) the stream holds after `after_seq`."""
        ...

    async def trim(self, stream: str, through_seq: int) -> int: ...

    async def erase(self, stream: str, keys: list[bytes]) -> int:
        """Drop the records with these keys (a deleted post); how many there were. The
        keys are kept as trimmed ones are: `append` answers them as duplicates."""
        ...

    async def close(self) -> None: ...
