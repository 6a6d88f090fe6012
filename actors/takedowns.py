"""The operator's takedown of a group on this relay (issue 18): while it lasts, the
group's joins, posts and reads are refused with reason taken_down and the operator's
words; its owners still read their service log, where a notice says it was taken down
and, later, restored. Part of GroupRelay."""

from __future__ import annotations

import hashlib
import logging
import os
import time

from chatrelay import envelope as env
from chatrelay import moderation
from chatrelay.actors import records
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2

log = logging.getLogger(__name__)

MAX_REASON = moderation.MAX_REASON  # characters of the operator's reason
NOTICE_KEY = b"notice/"  # the keys of the relay's own entries in a service log
ENTRY = b"entry\x00"  # a service log record that is a ServiceLogEntry (an owner command with its outcome)
NOTICE_EVERY_S = 60.0  # refusals of one kind and reason: one notice a minute at most, with how many since


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ChatRelayError(Reason.MALFORMED, "a takedown needs a reason, which whoever is refused is shown")
    if len(reason) > MAX_REASON:
        raise ChatRelayError(Reason.MALFORMED, f"a takedown's reason is at most {MAX_REASON} characters, got {len(reason)}")
    return reason


class Takedowns:
    def check_not_taken_down(self) -> None:
        if self.record.taken_down:
            raise ChatRelayError(Reason.TAKEN_DOWN, f"taken down on this relay by its operator: {self.record.taken_down}")

    async def tell_owners(self, kind: str, text: str, key: bytes | None = None) -> None:
        """The relay's own word in the group's service log."""
        notice = relay_pb2.RelayNotice(kind=kind, text=text)
        await self.ctx.log.append(records.service_stream(self.address), [notice.SerializeToString()],
                                  keys=[key or NOTICE_KEY + os.urandom(12)], fence=await self.fence())

    async def note_refusal(self, kind: str, exc: ChatRelayError) -> None:
        """A join or post this relay refused, for the owners to hear of: at most one
        notice a kind and reason a minute, saying how many since the last (a flood of
        refusals writes little). Failing to write it changes no answer."""
        if exc.reason in (Reason.UNAVAILABLE, Reason.BUSY):
            return  # the relay's own trouble, not the group's
        count = self.refusals.setdefault((kind, exc.reason), [0, -NOTICE_EVERY_S])
        count[0] += 1
        now = time.monotonic()
        if now - count[1] < NOTICE_EVERY_S:
            return
        times, count[0], count[1] = count[0], 0, now
        what = "join" if kind == "join_refused" else "post"
        try:
            await self.tell_owners(kind, f"{times} {what}{'s' if times > 1 else ''} refused: {exc.message} "
                                         f"({exc.reason.value})")
        except Exception as failed:  # noqa: BLE001  (the refusal stands whatever happens here)
            log.warning("could not write a notice for the owners of %s: %s", self.address, failed)

    async def take_down(self, reason: str | None) -> str:
        """Take the group down for `reason`, or restore it (None); the reason it is taken
        down for after (empty once restored). Doing it again changes nothing."""
        return await self.call(self._take_down, reason)

    async def _take_down(self, reason: str | None) -> str:
        wanted = "" if reason is None else check_reason(reason)
        if wanted == self.record.taken_down:
            return wanted
        # The owners' notice first, keyed by what changes from which record: if the record
        # cannot be saved, the same change asked again finds its notice there already.
        notice = relay_pb2.RelayNotice(kind="taken_down" if wanted else "restored", text=wanted)
        key = NOTICE_KEY + hashlib.sha256(notice.SerializeToString() + str(self.mod_revision).encode()).digest()[:12]
        await self.tell_owners(notice.kind, notice.text, key)
        await self._save(self.record.state, self.record.profile, self.profile, taken_down=wanted)
        self.wake_readers()  # streams of a group taken down end now, with the reason
        if not wanted:
            self._schedule_drain()  # joins held meanwhile are admitted now
        return wanted


def service_entry(record) -> relay_pb2.ServiceLogEntry:
    """A service log record as an entry: an owner command with its outcome, or the
    relay's own notice. (An earlier version kept a command's envelope alone: "applied".)"""
    if record.key and record.key.startswith(NOTICE_KEY):
        return relay_pb2.ServiceLogEntry(
            seq=record.seq, applied_at=record.ts, outcome="notice",
            notice=relay_pb2.RelayNotice.FromString(record.data))
    if record.data.startswith(ENTRY):
        entry = relay_pb2.ServiceLogEntry.FromString(record.data[len(ENTRY):])
        entry.seq, entry.applied_at = record.seq, record.ts
        return entry
    return relay_pb2.ServiceLogEntry(seq=record.seq, command=env.decode(record.data), applied_at=record.ts, outcome="applied")


def command_record(envelope, outcome: str) -> bytes:
    """What the service log keeps of an owner command: as signed, with what it did."""
    return ENTRY + relay_pb2.ServiceLogEntry(command=envelope, outcome=outcome).SerializeToString()
