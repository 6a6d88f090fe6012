"""RelayShard: one process hosting many GroupRelays, and the queues of 1:1 connections
placed on it.

A plain class; `chatrelay.actors.factory` makes it a Ray actor. Gateways call `serve`
with a typed call (`actors/calls.py`) and get an Outcome back. The shard serves only
while it holds its lease (`actors/lease.py`); its groups load on their first call and
move between shards (`actors/placement.py`), hot ones by the policy in
`actors/hot_groups.py`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from chatrelay.actors import records, tracing
from chatrelay.actors.calls import (
    CheckReader, Done, GroupCall, MoveGroup, Outcome, PostBatch, QueueCall, ReaderInfo, ReadPosts,
    Refused, ShardCall, ShardCalls, ShardPosts, TakeDown, guarded, unpack,
)
from chatrelay.actors.config import ClusterConfig, Storage
from chatrelay.actors.group_relay import GroupRelay, RelayContext
from chatrelay.actors.hot_groups import HotGroups
from chatrelay.actors.lease import LEASE_TTL_S, ShardLease
from chatrelay.actors.placement import ShardGroups
from chatrelay.actors.figures import ProcessInfo, ShardStats
from chatrelay.actors.queues import QueueStore
from chatrelay.actors.shard_socket import ShardSocketServer
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2

log = logging.getLogger(__name__)

MAX_SHARD_BATCHES = 1024  # groups' batches in one ShardPosts call
MAX_SHARD_CALLS = 1024  # groups' calls in one ShardCalls call


class ShardHost(Protocol):
    """What a shard asks of the cluster it runs in (Ray, in `chatrelay.actors.factory`)."""

    async def start_shard(self, index: int):
        """A shard of its own for a hot group, once it serves; its handle."""

    def stop_self(self) -> None: ...

    def node_id(self) -> str: ...

    def restarted(self) -> bool:
        """Whether this instance was started again because the one before died."""

    async def report(self, shard: "RelayShard") -> None:
        """Record the shard's figures (`figures()`) for the cluster's metrics, until cancelled."""


class RelayShard:
    def __init__(self, index: int, config: ClusterConfig, storage: Storage, host: ShardHost | None = None) -> None:
        self.index = index
        self.config = config
        self.storage = storage
        self.host = host
        self.ctx: RelayContext | None = None
        self.lease: ShardLease | None = None
        self.groups = ShardGroups(index, self._serving, self._confirm_lease)
        self._tasks: list[asyncio.Task] = []
        self._socket: ShardSocketServer | None = None  # for the gateways on this node, once one asks
        self._handlers = {
            GroupCall: self._group_call, PostBatch: self._post_batch, ShardPosts: self._shard_posts,
            ShardCalls: self._shard_calls,
            ReadPosts: self._read,
            CheckReader: self._check_reader, QueueCall: self._queue_call, MoveGroup: self._move,
            TakeDown: self._take_down,
        }

    def __str__(self) -> str:
        return f"relay shard {self.index} ({len(self.groups)} groups)"

    async def start(self) -> int:
        if self.ctx is None:
            tracing.setup(self.config.traces, f"shard-{self.index}")
            self.ctx = RelayContext(
                identity=self.storage.identity(self.config),
                registry=self.storage.registry(self.config),
                log=self.storage.message_log(self.config),
                members=self.storage.member_store(self.config),
                limits=self.config.limits,
            )
            self.lease = ShardLease(self.ctx.registry, records.shard_key(self.index), self._lease_lost,
                                    take_over=self.host is not None and self.host.restarted())
            self.lease.start()
            if self.config.limits.unload_idle_s > 0:
                self._tasks.append(asyncio.create_task(self._unload_idle(), name="unload-idle"))
            if self.host is not None:
                self._tasks.append(asyncio.create_task(self.host.report(self), name="shard-metrics"))
                limits = self.config.limits
                if limits.hot_posts_per_s > 0:
                    policy = HotGroups(
                        self.groups, self.config.shards, limits.hot_posts_per_s, limits.hot_check_s,
                        self.host.start_shard, self._stop,
                    )
                    self._tasks.append(asyncio.create_task(policy.run(), name="hot-groups"))
        return self.index

    async def ready(self) -> bool:
        """Started, and holding the shard's lease (an earlier instance that died without
        letting it go holds it until its TTL runs out)."""
        await self.start()
        await asyncio.wait_for(self.lease.held.wait(), LEASE_TTL_S * 3)
        return True

    async def _serving(self) -> RelayContext:
        await self.start()
        await self.lease.check()
        return self.ctx

    async def _confirm_lease(self) -> None:
        await self.lease.confirm()

    def _lease_lost(self) -> None:
        log.warning("relay shard %d lost its lease; its groups load again when it is back", self.index)
        self.groups.let_go()

    async def release(self) -> bool:
        """Let the lease go (a clean stop), so the next instance serves at once."""
        if self._socket is not None:
            await self._socket.close()
            self._socket = None
        if self.lease is not None:
            await self.lease.release()
        return True

    async def socket_endpoint(self) -> tuple[str, str]:
        """(node id, path) of the Unix socket that gateways on this node call this shard
        through (`actors/shard_socket.py`), opened on the first ask; ("", "") outside a
        cluster node."""
        node = self.host.node_id() if self.host is not None else ""
        if not node:
            return "", ""
        if self._socket is None:
            socket = ShardSocketServer(self.serve)
            await socket.start()  # a failure is the gateway's to see: it calls through Ray
            self._socket = socket
        return node, self._socket.path

    async def _unload_idle(self) -> None:
        """Every quarter of --unload-idle (1 s to 60 s), let go of the groups idle that long."""
        after_s = self.config.limits.unload_idle_s
        while True:
            await asyncio.sleep(min(60.0, max(1.0, after_s / 4)))
            if self.groups.unload_idle(after_s):
                log.debug("relay shard %d let go of idle groups; %d loaded", self.index, len(self.groups))

    async def _stop(self) -> None:
        await self.release()
        await asyncio.to_thread(self.host.stop_self)

    # ---- calls --------------------------------------------------------------------------

    async def serve(self, call: ShardCall | bytes) -> Outcome:
        """A typed call, or one packed for the Ray seam (`calls.pack`, as gateways send)."""
        if isinstance(call, bytes):
            unpacked = unpack(call)
            if unpacked is None:
                return Refused(Reason.MALFORMED, "a relay shard takes packed shard calls only")
            call = unpacked
        handler = self._handlers.get(type(call))
        if handler is None:
            return Refused(Reason.MALFORMED, f"a relay shard takes no {type(call).__name__}")
        return await handler(call)

    async def _group_call(self, call: GroupCall) -> Outcome:
        """A request for one group: its group relay checks the signature (and that the
        signed body names this group) and answers."""
        answer = _GROUP_REQUESTS.get(type(call.request))
        if answer is None:
            return Refused(Reason.MALFORMED, f"no group request {type(call.request).__name__}")

        async def run():
            return await answer(await self.groups.get(call.address), call.request)
        return await guarded(run())

    async def _post_batch(self, call: PostBatch) -> Outcome:
        """Posts of one group, as a gateway sends them, into its mailbox as one item: one
        outcome each, in order (Done with the ack, or Refused).

        If the batch met the group moving away, the whole call is answered MovedAway and
        the gateway sends it again where the group went: the posts appended here already
        are recognised there by their message ids and answered with the same seq."""
        if call.carried and len(call.carried) != len(call.posts):
            return Refused(Reason.MALFORMED, "a post batch carries one trace context a post, or none")
        spans = tracing.consumer_spans("chatrelay.shard.post", call.carried, {"chatrelay.shard": self.index})

        async def run():
            return await (await self.groups.get(call.address)).post_many(list(call.posts))
        outcome = await guarded(run())
        if isinstance(outcome, Done):
            outcome = Done([Refused.of(r) if isinstance(r, ChatRelayError) else Done(r) for r in outcome.value])
        tracing.end_spans(spans, outcome)
        return outcome

    async def _shard_posts(self, call: ShardPosts) -> Outcome:
        """Batches of several groups, each into its group's mailbox at once (so they meet in
        the store's next commits): Done with one outcome a batch, in order."""
        if not 0 < len(call.batches) <= MAX_SHARD_BATCHES or not all(
                isinstance(b, PostBatch) for b in call.batches):
            return Refused(Reason.MALFORMED, f"shard posts carry 1 to {MAX_SHARD_BATCHES} post batches")
        return Done(tuple(await asyncio.gather(*(self._post_batch(b) for b in call.batches))))

    async def _shard_calls(self, call: ShardCalls) -> Outcome:
        """Calls of several groups, each handed on at once as if it came alone (a group's
        joins meet in its mailbox, and go in as a run): Done with one outcome a call."""
        if not 0 < len(call.calls) <= MAX_SHARD_CALLS or not all(
                isinstance(c, (GroupCall, CheckReader)) for c in call.calls):
            return Refused(Reason.MALFORMED, f"shard calls carry 1 to {MAX_SHARD_CALLS} group calls or reader checks")
        return Done(tuple(await asyncio.gather(*(self._handlers[type(c)](c) for c in call.calls))))

    async def _read(self, call: ReadPosts) -> Outcome:
        async def run():
            return await (await self.groups.get(call.address)).tail_read(call)
        return await guarded(run())

    async def _check_reader(self, call: CheckReader) -> Outcome:
        async def run():
            relay = await self.groups.get(call.address)
            reader = relay.check_reader(call.credential)
            floor, last_seq = relay.history_floor(reader), relay.last_seq
            after = max(call.since_seq, floor)
            page = tuple(await relay.read(after, call.page_limit)) if call.page_limit > 0 and after < last_seq else ()
            return ReaderInfo(reader=reader, floor=floor, last_seq=last_seq, page=page)
        return await guarded(run())

    async def _take_down(self, call: TakeDown) -> Outcome:
        async def run():
            return await (await self.groups.get(call.address)).take_down(call.reason)
        return await guarded(run())

    async def _move(self, call: MoveGroup) -> Outcome:
        return await guarded(self.groups.move(call.address, call.to_index))

    async def _queue_call(self, call: QueueCall) -> Outcome:
        answer = _QUEUE_REQUESTS.get(type(call.request))
        if answer is None:
            return Refused(Reason.MALFORMED, f"no queue request {type(call.request).__name__}")
        await self.start()
        return await guarded(answer(QueueStore(self.ctx), call.request))

    # ---- figures ------------------------------------------------------------------------

    def figures(self) -> tuple[int, int, int]:
        """Groups loaded, requests waiting in their mailboxes, posts accepted."""
        return len(self.groups), _mailbox_depth(self.groups.loaded), self.ctx.tally["posts"]

    async def stats(self, groups: bool = True) -> ShardStats:
        """This shard's process and its loaded groups (their count only, unless `groups`)."""
        loaded = list(self.groups.loaded.values())
        return ShardStats(
            shard=self.index, group_count=len(loaded), moved_out=self.groups.moved_out,
            mailbox_depth=_mailbox_depth(self.groups.loaded), posts_accepted=sum(g.posts_accepted for g in loaded),
            process=ProcessInfo.here(self.host.node_id() if self.host else ""),
            groups=tuple(g.stats() for g in loaded) if groups else (),
            readers_verified=self.ctx.readers.misses if self.ctx else 0,
            readers_remembered=self.ctx.readers.hits if self.ctx else 0,
        )


def _mailbox_depth(groups: dict[str, GroupRelay]) -> int:
    """Requests waiting in the mailboxes of a shard's groups."""
    return sum(len(g.mailbox) for g in groups.values())


async def _history(relay: GroupRelay, req: relay_pb2.HistoryRequest):
    reader = relay.check_reader(req.credential)
    return relay_pb2.HistoryResponse(deliveries=await relay.history(reader, req.before_seq, req.limit or 100))


async def _service_log(relay: GroupRelay, req: relay_pb2.ServiceLogRequest):
    body = relay.check_owner_read(req.envelope)
    return relay_pb2.ServiceLogResponse(entries=await relay.service_log(body.since_seq))


async def _list_pending(relay: GroupRelay, req: relay_pb2.ListPendingRequest):
    relay.check_owner_read(req.envelope)
    return relay_pb2.ListPendingResponse(pending=await relay.pending())


async def _member_keys(relay: GroupRelay, req: relay_pb2.MemberKeysRequest):
    relay.check_reader(req.credential)
    return relay_pb2.MemberKeysResponse(members=await relay.member_admissions(req.member, req.display_name))


async def _direct_inbox(relay: GroupRelay, req: relay_pb2.DirectInboxRequest):
    reader = relay.check_reader(req.credential)
    return relay_pb2.DirectInboxResponse(invitations=await relay.direct_inbox(reader, req.after_seq))


async def _owner_command(relay: GroupRelay, req: relay_pb2.OwnerCommandRequest):
    return await relay.owner_command(req.envelope)


async def _join(relay: GroupRelay, req: relay_pb2.JoinRequest):
    return await relay.join(req.envelope)


async def _direct_invitation(relay: GroupRelay, req: relay_pb2.DirectInvitationRequest):
    return await relay.direct_invitation(req.envelope)


async def _moderate(relay: GroupRelay, req: relay_pb2.ModerateRequest):
    return await relay.moderate(req.envelope)


async def _report(relay: GroupRelay, req: relay_pb2.ReportRequest):
    return await relay.report(req.envelope)


async def _list_reports(relay: GroupRelay, req: relay_pb2.ListReportsRequest):
    body = relay.check_owner_read(req.envelope)
    return relay_pb2.ListReportsResponse(reports=await relay.reports(body.since_seq))


async def _list_invites(relay: GroupRelay, req: relay_pb2.ListInvitesRequest):
    relay.check_owner_read(req.envelope)
    return relay_pb2.ListInvitesResponse(invites=await relay.invite_uses())


async def _leave(relay: GroupRelay, req: relay_pb2.LeaveRequest):
    return await relay.leave(req.envelope)


async def _list_members(relay: GroupRelay, req: relay_pb2.ListMembersRequest):
    relay.check_owner_read(req.envelope)
    return await relay.listed_members(req.counts_only)


_GROUP_REQUESTS = {
    relay_pb2.OwnerCommandRequest: _owner_command, relay_pb2.JoinRequest: _join,
    relay_pb2.HistoryRequest: _history, relay_pb2.ServiceLogRequest: _service_log,
    relay_pb2.ListPendingRequest: _list_pending, relay_pb2.MemberKeysRequest: _member_keys,
    relay_pb2.DirectInvitationRequest: _direct_invitation, relay_pb2.DirectInboxRequest: _direct_inbox,
    relay_pb2.ModerateRequest: _moderate, relay_pb2.ListMembersRequest: _list_members,
    relay_pb2.ReportRequest: _report, relay_pb2.ListReportsRequest: _list_reports, relay_pb2.LeaveRequest: _leave,
    relay_pb2.ListInvitesRequest: _list_invites,
}

_QUEUE_REQUESTS = {
    relay_pb2.CreateQueueRequest: lambda queues, req: queues.create(req.envelope),
    relay_pb2.ConnectionRequest: lambda queues, req: queues.request(req.body),
    relay_pb2.SendQueueRequest: lambda queues, req: queues.send(req.envelope),
    relay_pb2.ReadQueueRequest: lambda queues, req: queues.read(req.envelope, req.after_seq),
}
