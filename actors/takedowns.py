"""The operator's takedown of a group on this relay (issue 18): while it lasts, the
group's joins, posts and reads are refused with reason taken_down and the operator's
words; its owners still read their service log, where a notice says it was taken down
and, later, restored. Part of GroupRelay."""

from __future__ import annotations

import hashlib

from chatrelay import envelope as env
from chatrelay.actors import records
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2

MAX_REASON = 500  # characters of the operator's reason
NOTICE_KEY = b"notice/"  # the keys of the relay's own entries in a service log


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

    async def take_down(self, reason: str | None) -> str:
        """Take the group down for `reason`, or restore it (None); the reason it is taken
        down for after (empty once restored). Doing it again changes nothing."""
        return await self.call(self._take_down, reason)

    async def _take_down(self, reason: str | None) -> str:
        wanted = "" if reason is None else check_reason(reason)
        if wanted == self.record.taken_down:
            return wanted
        fence = await self.fence()
        # The owners' notice first, keyed by what changes from which record: if the record
        # cannot be saved, the same change asked again finds its notice there already.
        notice = relay_pb2.RelayNotice(kind="taken_down" if wanted else "restored", text=wanted)
        key = NOTICE_KEY + hashlib.sha256(notice.SerializeToString() + str(self.mod_revision).encode()).digest()[:12]
        await self.ctx.log.append(records.service_stream(self.address), [notice.SerializeToString()], keys=[key],
                                  fence=fence)
        await self._save(self.record.state, self.record.profile, self.profile, taken_down=wanted)
        self.wake_readers()  # streams of a group taken down end now, with the reason
        if not wanted:
            self._schedule_drain()  # joins held meanwhile are admitted now
        return wanted


def service_entry(record) -> relay_pb2.ServiceLogEntry:
    """A service log record as an entry: an owner command, or the relay's own notice."""
    if record.key and record.key.startswith(NOTICE_KEY):
        return relay_pb2.ServiceLogEntry(
            seq=record.seq, applied_at=record.ts, outcome="notice",
            notice=relay_pb2.RelayNotice.FromString(record.data))
    return relay_pb2.ServiceLogEntry(seq=record.seq, command=env.decode(record.data), applied_at=record.ts, outcome="applied")
