"""One bad item never stops a reader (issue 16): what a relay or another person sends is
taken item by item; an item that fails to parse or verify is skipped and reported once
with its reason, and the items around it go on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, TypeVar

from chatrelay.errors import ChatRelayError, Reason

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Skipped:
    item: str  # which item, as the user can name it (a request id, a seq)
    reason: Reason
    message: str

    def __str__(self) -> str:
        return f"skipped {self.item}: {self.message} ({self.reason})"

    def to_json(self) -> dict:
        return {"item": self.item, "reason": self.reason.value, "message": self.message}


class Checked(list):
    """The items that passed, in order (a list as any other); `skipped`: those that did
    not, each with its reason."""

    def __init__(self, items: Iterable = (), skipped: Iterable[Skipped] = ()) -> None:
        super().__init__(items)
        self.skipped: list[Skipped] = list(skipped)


def _keep(out: Checked, label: str, result) -> None:
    if isinstance(result, ChatRelayError):
        out.skipped.append(Skipped(label, result.reason, result.message))
    elif result is not None:
        out.append(result)


def take(items: Iterable[T], check: Callable[[T], R], name: Callable[[T], str]) -> Checked:
    """`check(item)` for each item: its result where it passes (None: nothing to keep),
    else the refusal it raised, as a Skipped named by `name(item)`."""
    out = Checked()
    for item in items:
        try:
            result = check(item)
        except ChatRelayError as exc:
            result = exc
        _keep(out, name(item), result)
    return out


async def take_async(items: Iterable[T], check: Callable[[T], Awaitable[R]], name: Callable[[T], str]) -> Checked:
    """`take`, for checks that wait (one item at a time, in order)."""
    out = Checked()
    for item in items:
        try:
            result = await check(item)
        except ChatRelayError as exc:
            result = exc
        _keep(out, name(item), result)
    return out
