"""Reports and leaving, at a relay (issue 18). A member reports a post to the group's
owners: what it reports and why is sealed to the owners' intake key, so the relay keeps
it and learns only who reported; the owners read the reports with an owner read. A
member that leaves is forgotten: its record goes, its streams end. Part of GroupRelay."""

from __future__ import annotations

import time

from chatrelay import envelope as env
from chatrelay import members
from chatrelay.actors import records
from chatrelay.actors.message_log import READ_LIMIT, fit
from chatrelay.actors.owner_commands import CREDENTIAL_SKEW_S
from chatrelay.errors import ChatRelayError, Reason, TooLargeError
from chatrelay.v1 import core_pb2, relay_pb2

MAX_SEALED = 20 * 1024  # a sealed report: the post (16 KiB at most) and a reason
REPORTS_PER_HOUR = 20  # a member's reports, at most
REPORT_WINDOW_S = 3600.0
REPORTS_KEPT = 10_000  # the newest a group's relay keeps for its owners


class Reports:
    async def report(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.ReportResponse:
        return await self.call(self._report, envelope)

    def _signed_by_member(self, envelope, domain: env.Domain, cls, what: str):
        """A member's signed request for this group's address, within the clock skew."""
        checked, body = env.verify_message(envelope, domain, cls, what)
        if body.group_address != self.address:
            raise ChatRelayError(Reason.GROUP_MISMATCH, f"{what} is for another group address")
        if abs(time.time() - body.timestamp) > CREDENTIAL_SKEW_S:
            raise ChatRelayError(Reason.STALE, f"{what} is too old or from the future; check the clock")
        if not self.is_member(checked.signer):
            raise ChatRelayError(Reason.NOT_MEMBER, f"{what} is not signed by a member of this group")
        return checked.signer, body

    async def _report(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.ReportResponse:
        self.serving()
        reporter, body = self._signed_by_member(envelope, env.Domain.REPORT, relay_pb2.ReportBody, "report")
        if not body.sealed:
            raise ChatRelayError(Reason.MALFORMED, "a report carries what it reports, sealed to the owners")
        if len(body.sealed) > MAX_SEALED:
            raise TooLargeError("sealed report", len(body.sealed), MAX_SEALED)
        stream = records.report_stream(self.address)
        item = members.item_id(envelope)
        held = await self.ctx.log.find(stream, [item])
        if item in held:  # sent again: the same report, once
            return relay_pb2.ReportResponse(seq=held[item])
        clock = time.monotonic()
        if self.recent_reports.count(reporter, clock) >= REPORTS_PER_HOUR:
            raise ChatRelayError(Reason.RATE_LIMITED, f"at most {REPORTS_PER_HOUR} reports an hour")
        appended = await self.ctx.log.append(stream, [env.encode(envelope)], keys=[item], fence=await self.fence())
        self.recent_reports.add(reporter, clock)
        seq = appended.seqs[0]
        if seq > REPORTS_KEPT and seq % 100 == 0:  # the oldest go, in steps
            await self.ctx.log.trim(stream, seq - REPORTS_KEPT)
        return relay_pb2.ReportResponse(seq=seq)

    async def reports(self, since_seq: int) -> list[relay_pb2.ReceivedReport]:
        rows = fit(await self.ctx.log.read(records.report_stream(self.address), since_seq, READ_LIMIT))
        return [relay_pb2.ReceivedReport(seq=r.seq, report=env.decode(r.data), received_at=r.ts) for r in rows]

    async def leave(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.LeaveResponse:
        return await self.call(self._leave, envelope)

    async def _leave(self, envelope: core_pb2.SignedEnvelope) -> relay_pb2.LeaveResponse:
        """The member goes, by its own word: its record is deleted and its open streams
        end. Asked again, it is no member any more: refused not_a_member."""
        if envelope.signer in self.profile.authorities():
            raise ChatRelayError(Reason.NOT_ALLOWED, "an owner does not leave a group; delete it instead")
        member, _ = self._signed_by_member(envelope, env.Domain.LEAVE, relay_pb2.LeaveBody, "leave request")
        await self.forget_member(member, await self.fence())
        return relay_pb2.LeaveResponse()
