"""RelayService: each request is read once for what routes it (the group or queue
address in its signed body; the group relay verifies the signature), routed to the shard
that serves it, and its refusal mapped to a gRPC status.

Posts take turns per group through the gateway's coalescer; subscriber streams read
their group's tail on this gateway (`cluster/stream.py`); link data and registrations
are handled here, with no shard involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay import members
from chatrelay.actors import queues, tracing
from chatrelay.actors.calls import CheckReader, GroupCall, PostBatch, QueueCall, Refused, refusal
from chatrelay.actors.placement import home_shard
from chatrelay.actors.registration import Registrar
from chatrelay.actors.registry import Registry
from chatrelay.cluster.coalescer import Coalescer
from chatrelay.cluster.link_store import LinkStore
from chatrelay.cluster.quotas import ConnectionQuotas, OpeningStreams, ReaderStreams
from chatrelay.cluster.replay import ReplayGuard
from chatrelay.cluster.router import ShardRouter
from chatrelay.cluster.stream import Streams
from chatrelay.cluster.tail import BATCH, TAIL_WINDOW, Traced
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.status import to_status
from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc

log = logging.getLogger(__name__)

QUEUE_POLL_S = 0.5
RETRY_HINT_MS = 200  # told to senders refused with BUSY or UNAVAILABLE
POST_IN_FLIGHT = 1  # calls carrying one group's posts to its shard at a time, per gateway (the default)
POSTS_WAITING = 256  # posts of one group waiting for that at most; more are refused BUSY
POST_BATCH = 64  # waiting posts of one group that go on together in one shard call
REGISTER_BATCH = 256  # registrations of one home shard that go on together

# What routes each call: the signed field, its body, its domain, and what to call it.
ROUTES = {
    relay_pb2.OwnerCommandRequest: ("envelope", relay_pb2.OwnerCommandBody, env.Domain.OWNER_COMMAND, "owner command"),
    relay_pb2.JoinRequest: ("envelope", core_pb2.JoinBody, env.Domain.JOIN, "join request"),
    relay_pb2.HistoryRequest: ("credential", relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE, "credential"),
    relay_pb2.ServiceLogRequest: ("envelope", relay_pb2.OwnerReadBody, env.Domain.OWNER_READ, "owner read"),
    relay_pb2.ListPendingRequest: ("envelope", relay_pb2.OwnerReadBody, env.Domain.OWNER_READ, "owner read"),
    relay_pb2.MemberKeysRequest: ("credential", relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE, "credential"),
    relay_pb2.DirectInvitationRequest: (
        "envelope", relay_pb2.DirectInvitationBody, env.Domain.DIRECT_INVITATION, "direct invitation"),
    relay_pb2.DirectInboxRequest: ("credential", relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE, "credential"),
    relay_pb2.SubscribeRequest: ("credential", relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE, "credential"),
    relay_pb2.ListMembersRequest: ("envelope", relay_pb2.OwnerReadBody, env.Domain.OWNER_READ, "owner read"),
    relay_pb2.ListReportsRequest: ("envelope", relay_pb2.OwnerReadBody, env.Domain.OWNER_READ, "owner read"),
    relay_pb2.ListInvitesRequest: ("envelope", relay_pb2.OwnerReadBody, env.Domain.OWNER_READ, "owner read"),
    relay_pb2.ReportRequest: ("envelope", relay_pb2.ReportBody, env.Domain.REPORT, "report"),
    relay_pb2.LeaveRequest: ("envelope", relay_pb2.LeaveBody, env.Domain.LEAVE, "leave request"),
}


def peek(envelope, cls, domain: env.Domain, what: str):
    """Read the routing fields of a body; the owning group relay verifies the signature."""
    if envelope.domain != domain.value:
        raise ChatRelayError(Reason.WRONG_DOMAIN, f"{what} must be signed for {domain.value}")
    return codec.parse(cls, envelope.body, what, env.body_limit(domain))


def group_address(request) -> str:
    field, cls, domain, what = ROUTES[type(request)]
    return peek(getattr(request, field), cls, domain, what).group_address


async def guard(context, coro):
    """A call's answer, or its refusal as a gRPC status (with a retry hint where trying
    again helps); a bug is logged and answered with a plain INTERNAL."""
    try:
        return await coro
    except ChatRelayError as exc:
        await abort(context, exc)
    except Exception:
        log.exception("gateway call failed")
        await context.abort(grpc.StatusCode.INTERNAL, "internal relay error")


async def abort(context, exc: ChatRelayError) -> None:
    hint = getattr(exc, "retry_after_ms", RETRY_HINT_MS if exc.reason in (Reason.BUSY, Reason.UNAVAILABLE) else 0)
    await context.abort_with_status(
        to_status(exc, retry_after_ms=hint, resume_after_seq=getattr(exc, "resume_after_seq", None))
    )


class RelayServicer(relay_pb2_grpc.RelayServiceServicer):
    def __init__(
        self, registry: Registry, shards: list, subscriber_lag: int = TAIL_WINDOW, find_shard=None, metrics=None,
        post_in_flight: int = POST_IN_FLIGHT, *, registrar: Registrar,
    ) -> None:
        self.registry = registry
        self.router = ShardRouter(registry, shards, find_shard)
        self.links = LinkStore(registry, registrar.limits.freshness_s)
        limits = registrar.limits
        self.quotas = ConnectionQuotas({
            "registrations": limits.registrations_per_minute, "link stores": limits.link_stores_per_minute,
            "queues": limits.queues_per_minute,
        }, per_second={"registrations": limits.registrations_per_second})
        self.readers = ReaderStreams(limits.streams_per_reader)
        self.opening = OpeningStreams()
        self.replays = ReplayGuard(limits.freshness_s)
        self.registrar = registrar
        self.registrations = Coalescer(self._register_many, batch=REGISTER_BATCH, linger=True)
        self.posts = Coalescer(
            self._send_posts, in_flight=post_in_flight, batch=POST_BATCH, waiting=POSTS_WAITING,
            total=limits.gateway_waiting or None,
            refuse=lambda: ChatRelayError(Reason.BUSY, "too many posts are waiting for this group or gateway; retry in a moment"),
        )
        self.traced = Traced()  # posts' span contexts until their delivery, when tracing
        self.streams = Streams(self.router, subscriber_lag, metrics, self.traced, limits.fanout_linger_s)

    # ---- links ----------------------------------------------------------------------

    async def _once(self, what: str, envelope: core_pb2.SignedEnvelope, timestamp: int | None, call):
        """`call()`, for a signed request the gateway has not taken yet (see ReplayGuard)."""
        return await self.replays.once(what, ReplayGuard.key(envelope.signature), timestamp, call)

    async def StoreLink(self, request, context):
        async def run():
            self.quotas.take(context.peer(), "link stores")
            body = peek(request.envelope, relay_pb2.StoreLinkBody, env.Domain.LINK_STORE, "link store")
            created = await self._once(
                "link store", request.envelope, body.timestamp, lambda: self.links.store(request.envelope))
            return relay_pb2.StoreLinkResponse(created=created)
        return await guard(context, run())

    async def ResolveLink(self, request, context):
        async def run():
            return relay_pb2.ResolveLinkResponse(ciphertext=await self.links.resolve(request.lookup_id))
        return await guard(context, run())

    # ---- registration -----------------------------------------------------------------

    async def RegisterGroup(self, request, context):
        async def run():
            self.quotas.take(context.peer(), "registrations")
            body = peek(request.envelope, relay_pb2.RegisterGroupBody, env.Domain.REGISTER, "registration")
            profile = peek(body.profile, core_pb2.Profile, env.Domain.PROFILE, "profile")
            # One lane a home shard, so that concurrent registrations of a group meet in one batch.
            lane = home_shard(profile.group_id, len(self.router.shards))
            return await self._once(
                "registration", request.envelope, body.timestamp, lambda: self.registrations(lane, request.envelope))
        return await guard(context, run())

    async def _register_many(self, lane: int, envelopes: list) -> list:
        try:
            return await self.registrar.register_many(envelopes)
        except Exception as exc:
            raise refusal(exc) from None

    # ---- posts ------------------------------------------------------------------------

    async def Post(self, request, context):
        async def run():
            if request.envelope.domain != env.Domain.POST.value:
                raise ChatRelayError(Reason.WRONG_DOMAIN, "a post must be signed for chatrelay/v1/post")
            if not request.envelope.signature:
                raise ChatRelayError(Reason.BAD_SIGNATURE, "post is not signed")
            carried = None
            if tracing.enabled():  # the post's trace goes to its shard, and on to its delivery here
                from opentelemetry import trace

                self.traced.put(members.message_id(request.envelope), trace.get_current_span().get_span_context())
                carried = tracing.carrier()
            return await self.posts(request.group_address, (request.envelope, carried))
        return await guard(context, run())

    async def _send_posts(self, address: str, items: list) -> list:
        """Posts of one group in one shard call (following the group if it moves): each
        post's ack, or the refusal of it."""
        carried = tuple(c for _, c in items)
        batch = PostBatch(address, tuple(e for e, _ in items), carried if any(carried) else ())
        outcomes = await self.router.post(batch)
        return [o.error() if isinstance(o, Refused) else o.value for o in outcomes]

    # ---- the other calls of a group: routed by the address in their signed body ----------

    async def _routed(self, request, context):
        async def run():
            address = group_address(request)
            return await self.router.gathered(address, GroupCall(address, request))
        return await guard(context, run())

    async def _routed_once(self, request, context):
        """A call that changes a group: taken once (see ReplayGuard)."""
        async def run():
            field, cls, domain, what = ROUTES[type(request)]
            envelope = getattr(request, field)
            body = peek(envelope, cls, domain, what)
            call = GroupCall(body.group_address, request)
            return await self._once(
                what, envelope, body.timestamp, lambda: self.router.gathered(body.group_address, call))
        return await guard(context, run())

    History = ReadServiceLog = ListPending = MemberKeys = DirectInbox = ListReports = ListInvites = _routed
    OwnerCommand = Join = SendDirectInvitation = Report = Leave = _routed_once

    async def Moderate(self, request, context):
        """Routed by the address it is sent to (the group relay checks that the signed
        body names the group there), and taken once."""
        async def run():
            body = peek(request.envelope, core_pb2.ModerationBody, env.Domain.MODERATION, "moderation")
            call = GroupCall(request.group_address, request)
            return await self._once(
                "moderation", request.envelope, body.timestamp,
                lambda: self.router.gathered(request.group_address, call))
        return await guard(context, run())

    async def ListMembers(self, request, context):
        """The shard's page of members, with the read streams of the group open on every
        gateway of the relay."""
        async def run():
            address = group_address(request)
            response = await self.router.gathered(address, GroupCall(address, request))
            response.subscribers = await self.subscribers_of(address)
            return response
        return await guard(context, run())

    async def subscribers_of(self, address: str) -> int:
        """Read streams of the group open here (the gateway actor counts every gateway's)."""
        return self.streams.group_subscribers(address)

    async def Subscribe(self, request, context):
        try:
            address = group_address(request)
            opened = time.monotonic()  # a removal the tail learns of after this ends the stream
            self.opening.enter(opened)
            page = self.streams.page_wanted(address)  # the first stream of the group here: its page with the check
            try:
                info = await self.router.gathered(address, CheckReader(
                    address, request.credential, request.since_seq, BATCH if page else 0))
            finally:
                self.opening.leave()
                if page:
                    self.streams.page_asked(address)
            self.readers.open(info.reader)
        except ChatRelayError as exc:
            await abort(context, exc)
            return
        try:
            async with contextlib.aclosing(
                self.streams.follow(address, max(request.since_seq, info.floor), info.last_seq, info.reader, opened,
                                    info.page)
            ) as batches:
                async for batch in batches:
                    yield batch
        except ChatRelayError as exc:
            await abort(context, exc)
        finally:
            self.readers.close(info.reader)

    # ---- queues of 1:1 connections: placed by address hash, they never move ----------

    async def _queue(self, address: str, request):
        return await self.router.call(self.router.queue_shard(address), QueueCall(request))

    async def CreateQueue(self, request, context):
        async def run():
            self.quotas.take(context.peer(), "queues")
            body = peek(request.envelope, relay_pb2.CreateQueueBody, env.Domain.QUEUE_CREATE, "queue request")
            address = codec.b64url(body.queue_id) if body.queue_id else ""
            return await self._once("queue request", request.envelope, body.timestamp,
                                    lambda: self._queue(address, request))
        return await guard(context, run())

    async def RequestConnection(self, request, context):
        key = ReplayGuard.key(queues.request_id(request.body))  # unsigned: what it asks, not its nonce
        return await guard(context, self.replays.once(
            "connection request", key, None, lambda: self._queue(request.body.queue_address, request)))

    async def SendQueue(self, request, context):
        async def run():
            body = peek(request.envelope, relay_pb2.QueueSendBody, env.Domain.QUEUE_SEND, "queue message")
            return await self._once("queue message", request.envelope, body.timestamp,
                                    lambda: self._queue(body.queue_address, request))
        return await guard(context, run())

    async def ReadQueue(self, request, context):
        """Everything after since_seq; with follow, keeps polling for more."""
        try:
            body = peek(request.envelope, relay_pb2.QueueReadBody, env.Domain.QUEUE_READ, "queue read")
            while True:
                messages = await self._queue(body.queue_address, request)
                if messages:  # a page is cut by count or bytes: the next read tells whether more came
                    yield relay_pb2.QueueBatch(messages=messages)
                    # The owner's signature covers since_seq, so pages past the first are
                    # read with the same credential and filtered by the shard.
                    advanced = relay_pb2.ReadQueueRequest()
                    advanced.CopyFrom(request)
                    advanced.after_seq = messages[-1].seq
                    request = advanced
                    continue
                if not request.follow:
                    return
                await asyncio.sleep(QUEUE_POLL_S)
        except ChatRelayError as exc:
            await abort(context, exc)

    # ---- this gateway ---------------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        return self.streams.subscribers


    def close(self) -> None:
        self.router.close()
        self.posts.close()
        self.streams.close()
