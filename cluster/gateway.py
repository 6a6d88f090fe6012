"""The gRPC gateway: validates input, routes by group address to the owning shard, and
fans posts out to its own subscribers.

Stateless apart from caches: the routing table comes from the registry, and each group
with subscribers here has one GroupTail that long-polls the shard, so a post costs one
shard call per gateway, not one per subscriber.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay import links, members
from chatrelay.actors import tracing
from chatrelay.errors import ChatRelayError, MalformedError, Reason
from chatrelay.status import to_status
from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc
from chatrelay.actors import records
from chatrelay.actors.group_relay import Moved
from chatrelay.actors.registration import Registrar
from chatrelay.actors.placement import home_shard
from chatrelay.actors.shard import refusal, unwrap
from chatrelay.actors.coalescer import settle
from chatrelay.actors.registry import Get, Put, Registry, absent, unchanged_since

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
TAIL_WAIT_S = 5.0
BATCH = 200
CALL_ATTEMPTS = 20
MOVE_ATTEMPTS = 40  # about 15 s of following a group that moves
QUEUE_POLL_S = 0.5
RETRY_HINT_MS = 200  # told to senders refused with BUSY or UNAVAILABLE
POST_IN_FLIGHT = 1  # calls carrying one group's posts to its shard at a time, per gateway (the default)
POSTS_WAITING = 256  # posts of one group waiting for that at most; more are refused BUSY
POST_BATCH = 64  # waiting posts of one group that go on together in one shard call
# Calls that gRPC has taken in but the gateway's event loop has not picked up yet. Past
# gRPC's own defaults (1,000, and all past 3,000) it ends new calls at once with
# CANCELLED, which a burst of subscribers (re)opening their streams reaches.
PENDING_CALLS = 20_000
TAIL_WINDOW = 4096  # newest posts of a group kept in a gateway for its subscribers


def shard_for(key: bytes, shards: int) -> int:
    return home_shard(key, shards)


class ShardRouter:
    """Address -> shard index, from the registry's placement records."""

    def __init__(self, registry: Registry, shards: list, find_shard=None) -> None:
        self.registry = registry
        self.shards = shards
        self.find_shard = find_shard  # index -> handle, for shards of their own beyond `shards`
        self.extra: dict[int, object] = {}
        self.table: dict[str, int] = {}
        self._watch: asyncio.Task | None = None

    def start_watch(self) -> None:
        """Keep the cached table fresh when groups are placed or moved."""
        self._watch = asyncio.create_task(self._follow(), name="placement-watch")

    async def _follow(self) -> None:
        from chatrelay.actors.registry import EventKind

        while True:
            try:
                async for event in self.registry.watch_prefix(records.PLACEMENT_PREFIX):
                    address = event.key[len(records.PLACEMENT_PREFIX):].decode()
                    if event.kind is EventKind.PUT:
                        self.table[address] = int(event.value)
                    else:
                        self.table.pop(address, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the registry restarting: forget the cache, watch again
                log.warning("placement watch broke, restarting: %s", exc)
                self.table.clear()
                await asyncio.sleep(1.0)

    def close(self) -> None:
        if self._watch:
            self._watch.cancel()

    async def index(self, address: str) -> int:
        if not isinstance(address, str) or not 0 < len(address) <= 64:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
        index = self.table.get(address)
        if index is None:
            try:
                entry = await self.registry.get(records.placement_key(address))
            except Exception as exc:  # the registry restarting (etcd down): callers retry
                raise ChatRelayError(Reason.UNAVAILABLE, f"registry unavailable: {type(exc).__name__}") from None
            if entry is None:
                raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
            index = int(entry.value)
            self.table[address] = index
        return index

    async def call(self, index: int, method: str, *args):
        """Call a shard, riding out its restart; refusals come back as ChatRelayError."""
        import ray.exceptions

        delay = 0.05
        for attempt in range(CALL_ATTEMPTS):
            try:
                outcome = await getattr(self._handle(index), method).remote(*args)
                return unwrap(outcome)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                self.extra.pop(index, None)  # a shard of its own that stopped: look it up again
                if attempt == CALL_ATTEMPTS - 1:
                    raise ChatRelayError(Reason.UNAVAILABLE, f"relay shard unavailable: {exc}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _handle(self, index: int):
        if 0 <= index < len(self.shards):
            return self.shards[index]
        handle = self.extra.get(index)
        if handle is None:
            try:
                handle = self.extra[index] = self.find_shard(index)
            except Exception:  # not started (yet), or no finder: the caller may retry
                raise ChatRelayError(Reason.UNAVAILABLE, f"relay shard {index} is not running") from None
        return handle

    async def call_address(self, address: str, method: str, *args):
        """Call the shard serving `address`; while the group moves between shards, read
        its placement again and follow it."""
        delay = 0.01
        for _ in range(MOVE_ATTEMPTS):
            try:
                return await self.call(await self.index(address), method, *args)
            except Moved:
                self.table.pop(address, None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
        raise ChatRelayError(Reason.UNAVAILABLE, "the group is moving between relay shards; retry")


class Batcher:
    """Calls of one kind that arrive together are done as one: `many(lane, requests)`
    answers a list of outcomes in order, each the call's result or the exception it
    raises.

    A lone call leaves at the next turn of the event loop and waits for nothing. While
    `in_flight` batches of a lane are on their way, calls to it gather into the next
    batch, which leaves when one of those comes back (or when it is full): under load
    the batches grow by themselves, as in a group commit."""

    def __init__(self, many, limit: int = 256, in_flight: int = 1) -> None:
        self.many = many
        self.limit = limit
        self.max_in_flight = in_flight
        self.pending: dict[int, list[tuple[object, asyncio.Future]]] = {}
        self.in_flight: dict[int, int] = {}
        self.batches = 0  # sent, and the calls in them: their ratio is the mean batch size
        self.calls = 0

    async def call(self, lane: int, request):
        future = asyncio.get_running_loop().create_future()
        batch = self.pending.setdefault(lane, [])
        batch.append((request, future))
        if len(batch) >= self.limit:
            self._send(lane)
        elif len(batch) == 1 and self.in_flight.get(lane, 0) < self.max_in_flight:
            asyncio.get_running_loop().call_soon(self._send, lane)
        return await future

    def _send(self, lane: int) -> None:
        batch = self.pending.pop(lane, None)
        if batch:
            self.in_flight[lane] = self.in_flight.get(lane, 0) + 1
            self.batches += 1
            self.calls += len(batch)
            asyncio.create_task(self._deliver(lane, batch))

    async def _deliver(self, lane: int, batch) -> None:
        try:
            outcomes = await self.many(lane, [r for r, _ in batch])
        except Exception as exc:  # the whole batch failed: each caller sees it
            for _, future in batch:
                settle(future, exc)
        else:
            for (_, future), outcome in zip(batch, outcomes):
                settle(future, outcome)
        finally:
            self.in_flight[lane] -= 1
            if self.pending.get(lane):  # gathered while this batch was away
                self._send(lane)


class PostGate:
    """Fair turns for posts at a gateway: at most `in_flight` calls carrying one group's
    posts go on to its shard at a time. Posts that arrive meanwhile wait here, in
    arrival order, holding no CPU, and go on together as one call (up to `batch`) when a
    turn ends; past `waiting` waiting, the group's senders (and only they) are refused
    with BUSY.

    A flooded group thus never has more than `in_flight` calls in the gateway's loop and
    its shard's mailbox, so the posts of every other group pass it there.

    `send(address, items)` makes the call: `items` is a list of (request, carried), and
    it returns one result per item, each the answer or the ChatRelayError refusing it."""

    def __init__(self, send, in_flight: int, waiting: int, batch: int = POST_BATCH) -> None:
        if in_flight < 1 or waiting < 0 or batch < 1:
            raise ValueError("in_flight 1 or more, waiting 0 or more, batch 1 or more")
        self.send = send
        self.in_flight = in_flight
        self.waiting = waiting
        self.batch = batch
        self._groups: dict[str, list] = {}  # address -> [calls going on, deque of waiting posts]
        self._calls: set[asyncio.Task] = set()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._groups)

    async def __call__(self, address: str, request, carried=None):
        """The answer to one post, sent in the group's turn."""
        gate = self._groups.get(address)
        if gate is None:
            gate = self._groups[address] = [0, collections.deque()]
        answer = asyncio.get_running_loop().create_future()
        if gate[0] < self.in_flight:
            gate[0] += 1
            self._call(address, gate, [(request, carried, answer)])
        elif len(gate[1]) >= self.waiting:
            self.refused += 1
            raise ChatRelayError(Reason.BUSY, "this group has too many posts waiting; retry in a moment")
        else:
            gate[1].append((request, carried, answer))
        return await answer  # a caller that goes away before its turn: its post is not sent

    def _call(self, address: str, gate: list, posts: list) -> None:
        task = asyncio.create_task(self._turn(address, gate, posts))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _turn(self, address: str, gate: list, posts: list) -> None:
        while posts:
            try:
                results = await self.send(address, [(request, carried) for request, carried, _ in posts])
            except asyncio.CancelledError:
                for _, _, answer in posts:
                    answer.cancel()
                raise
            except Exception as exc:
                results = [exc] * len(posts)
            for (_, _, answer), result in zip(posts, results):
                settle(answer, result)
            waiting = gate[1]
            posts = []
            while waiting and len(posts) < self.batch:
                post = waiting.popleft()
                if not post[2].done():  # its caller is still there
                    posts.append(post)
        gate[0] -= 1
        if gate[0] == 0 and not gate[1]:
            del self._groups[address]

    def close(self) -> None:
        for task in list(self._calls):
            task.cancel()


class Traced:
    """Span contexts of posts this gateway took, by message id, until its tail of the
    group receives them for delivery (bounded: the oldest are let go)."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.contexts: collections.OrderedDict[bytes, object] = collections.OrderedDict()

    def put(self, message_id: bytes, span_context) -> None:
        self.contexts[message_id] = span_context
        while len(self.contexts) > self.LIMIT:
            self.contexts.popitem(last=False)

    def delivered(self, deliveries, subscribers: int) -> None:
        """A `chatrelay.deliver` span, child of the post's, for each post traced here."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanKind

        for d in deliveries:
            span_context = self.contexts.pop(d.message_id, None)
            if span_context is None:
                continue
            parent = trace.set_span_in_context(NonRecordingSpan(span_context))
            tracing.tracer().start_span("chatrelay.deliver", context=parent, kind=SpanKind.PRODUCER, attributes={
                "messaging.system": "chatrelay", "messaging.operation.name": "deliver",
                "chatrelay.seq": d.seq, "chatrelay.subscribers": subscribers,
            }).end()


class GroupTail:
    """The newest posts of one group, shared by every subscriber of it on this gateway."""

    def __init__(self, router: ShardRouter, address: str, start_after: int, traced: "Traced | None" = None) -> None:
        self.router = router
        self.traced = traced
        self.address = address
        self.after = start_after
        self.buffer: collections.deque[relay_pb2.Delivery] = collections.deque(maxlen=TAIL_WINDOW)
        self.changed = asyncio.Condition()
        self.subscribers = 0
        self.delivered = 0  # posts written to this gateway's streams of the group
        self.task = asyncio.create_task(self._run(), name=f"tail-{address}")

    async def _run(self) -> None:
        while True:
            try:
                raw = await self.router.call_address(self.address, "read", self.address, self.after, BATCH, TAIL_WAIT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever broke, the subscribers wait on this loop
                log.warning("tail of a group failed, retrying: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if raw:
                deliveries = [relay_pb2.Delivery.FromString(r) for r in raw]
                if self.traced is not None and tracing.enabled():
                    self.traced.delivered(deliveries, self.subscribers)
                async with self.changed:
                    self.buffer.extend(deliveries)
                    self.after = deliveries[-1].seq
                    self.changed.notify_all()

    async def after_seq(self, seq: int, wait_s: float) -> list[relay_pb2.Delivery]:
        """Posts after `seq`: from memory when recent, from the shard's log when older."""
        if not self.holds(seq):  # fell behind the window: catch up from the log
            raw = await self.router.call_address(self.address, "read", self.address, seq, BATCH, 0.0)
            return [relay_pb2.Delivery.FromString(r) for r in raw]
        if self.after <= seq:
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait_for(lambda: self.after > seq), wait_s)
                except asyncio.TimeoutError:
                    return []
        return [d for d in self.buffer if d.seq > seq][:BATCH]

    def holds(self, seq: int) -> bool:
        """Whether a stream at `seq` reads from this window (not from the log)."""
        oldest = self.buffer[0].seq if self.buffer else self.after + 1
        return seq + 1 >= oldest

    def close(self) -> None:
        self.task.cancel()


async def guard(context, coro):
    """A call's answer, or its refusal as a gRPC status (with a retry hint where trying
    again helps); a bug is logged and answered with a plain INTERNAL."""
    try:
        return await coro
    except ChatRelayError as exc:
        hint = RETRY_HINT_MS if exc.reason in (Reason.BUSY, Reason.UNAVAILABLE) else 0
        await context.abort_with_status(to_status(exc, retry_after_ms=hint))
    except Exception:
        log.exception("gateway call failed")
        await context.abort(grpc.StatusCode.INTERNAL, "internal relay error")


class RelayServicer(relay_pb2_grpc.RelayServiceServicer):
    def __init__(
        self, registry: Registry, shards: list, subscriber_lag: int = TAIL_WINDOW, find_shard=None, metrics=None,
        post_in_flight: int = POST_IN_FLIGHT, *, registrar: Registrar,
    ) -> None:
        self.registry = registry
        self.metrics = metrics  # a GatewayMetrics, or None
        self.subscriber_lag = subscriber_lag
        self.router = ShardRouter(registry, shards, find_shard)
        self.registrar = registrar
        self.registrations = Batcher(self._register_many)
        self.posts = PostGate(self._send_posts, post_in_flight, POSTS_WAITING)
        self.traced = Traced()  # posts' span contexts until their delivery, when tracing
        self.tails: dict[str, GroupTail] = {}
        self.subscribers = 0
        self.deliveries = 0
        self.cut_off = 0

    # ---- links ----------------------------------------------------------------------

    async def StoreLink(self, request, context):
        return await self._guard(context, self._store_link(request))

    async def _store_link(self, request):
        checked, body = env.verify_message(
            request.envelope, env.Domain.LINK_STORE, relay_pb2.StoreLinkBody, "link store request"
        )
        if len(body.lookup_id) != links.LOOKUP_ID_SIZE:
            raise MalformedError("link store request", f"lookup id must be {links.LOOKUP_ID_SIZE} bytes")
        if len(body.ciphertext) > links.MAX_CIPHERTEXT:
            raise ChatRelayError(Reason.TOO_LARGE, f"link data is over {links.MAX_CIPHERTEXT} bytes")
        key = records.link_key(body.lookup_id)
        value = json.dumps({"owner": codec.b64url(checked.signer), "data": codec.b64url(body.ciphertext)}).encode()
        entry = await self.registry.get(key)
        if entry is None:
            result = await self.registry.transaction([absent(key)], [Put(key, value)], [Get(key)])
            if result.succeeded:
                return relay_pb2.StoreLinkResponse(created=True)
            entry = result.gets[0]
        if json.loads(entry.value)["owner"] != codec.b64url(checked.signer):
            raise ChatRelayError(Reason.NOT_ALLOWED, "this link's data belongs to another key")
        result = await self.registry.transaction([unchanged_since(key, entry.mod_revision)], [Put(key, value)])
        if not result.succeeded:
            raise ChatRelayError(Reason.BUSY, "link data changed concurrently; retry")
        return relay_pb2.StoreLinkResponse(created=False)

    async def ResolveLink(self, request, context):
        async def run():
            if len(request.lookup_id) != links.LOOKUP_ID_SIZE:
                raise MalformedError("lookup id", f"must be {links.LOOKUP_ID_SIZE} bytes")
            entry = await self.registry.get(records.link_key(request.lookup_id))
            if entry is None:
                raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no link data here for this link")
            data = codec.unb64url(json.loads(entry.value)["data"], "stored link data")
            return relay_pb2.ResolveLinkResponse(ciphertext=data)
        return await self._guard(context, run())

    # ---- registration and owners ------------------------------------------------------

    async def RegisterGroup(self, request, context):
        async def run():
            body = _peek(request.envelope, relay_pb2.RegisterGroupBody, env.Domain.REGISTER, "registration")
            profile = _peek(body.profile, core_pb2.Profile, env.Domain.PROFILE, "profile")
            # One lane a home shard, so that concurrent registrations of a group meet in one batch.
            return await self.registrations.call(shard_for(profile.group_id, len(self.router.shards)), request.envelope)
        return await self._guard(context, run())

    async def _register_many(self, lane: int, envelopes: list) -> list:
        try:
            return await self.registrar.register_many(envelopes)
        except Exception as exc:
            raise refusal(exc) from None

    async def OwnerCommand(self, request, context):
        return await self._routed(
            context, request, "envelope", relay_pb2.OwnerCommandBody, env.Domain.OWNER_COMMAND,
            "owner command", "owner_command", relay_pb2.OwnerCommandResponse,
        )

    # ---- members ----------------------------------------------------------------------

    async def Join(self, request, context):
        return await self._routed(
            context, request, "envelope", core_pb2.JoinBody, env.Domain.JOIN,
            "join request", "join", relay_pb2.JoinResponse,
        )

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
            return await self.posts(request.group_address, request.SerializeToString(), carried)
        return await self._guard(context, run())

    async def _send_posts(self, address: str, items: list) -> list:
        """Posts of one group in one shard call (following the group if it moves): each
        post's ack, or the refusal of it."""
        outcomes = await self.router.call_address(
            address, "post_many", [request for request, _ in items], [carried for _, carried in items]
        )
        results = []
        for outcome in outcomes:
            try:
                results.append(relay_pb2.PostAck.FromString(unwrap(outcome)))
            except ChatRelayError as exc:
                results.append(exc)
        return results

    async def History(self, request, context):
        return await self._routed(
            context, request, "credential", relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE,
            "credential", "history", relay_pb2.HistoryResponse,
        )

    async def ReadServiceLog(self, request, context):
        return await self._routed(
            context, request, "envelope", relay_pb2.OwnerReadBody, env.Domain.OWNER_READ,
            "owner read", "service_log", relay_pb2.ServiceLogResponse,
        )

    async def ListPending(self, request, context):
        return await self._routed(
            context, request, "envelope", relay_pb2.OwnerReadBody, env.Domain.OWNER_READ,
            "owner read", "list_pending", relay_pb2.ListPendingResponse,
        )

    async def MemberKeys(self, request, context):
        return await self._routed(
            context, request, "credential", relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE,
            "credential", "member_keys", relay_pb2.MemberKeysResponse,
        )

    async def SendDirectInvitation(self, request, context):
        return await self._routed(
            context, request, "envelope", relay_pb2.DirectInvitationBody, env.Domain.DIRECT_INVITATION,
            "direct invitation", "direct_invitation", relay_pb2.DirectInvitationResponse,
        )

    async def DirectInbox(self, request, context):
        return await self._routed(
            context, request, "credential", relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE,
            "credential", "direct_inbox", relay_pb2.DirectInboxResponse,
        )

    # ---- queues of 1:1 connections: placed by address hash, they never move ----------

    async def _queue_call(self, address: str, method: str, request) -> bytes:
        if not isinstance(address, str) or not 0 < len(address) <= 64:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no queue at this address")
        index = shard_for(address.encode(), len(self.router.shards))
        return await self.router.call(index, method, request.SerializeToString())

    async def CreateQueue(self, request, context):
        async def run():
            body = _peek(request.envelope, relay_pb2.CreateQueueBody, env.Domain.QUEUE_CREATE, "queue request")
            address = codec.b64url(body.queue_id) if body.queue_id else ""
            return relay_pb2.CreateQueueResponse.FromString(await self._queue_call(address, "create_queue", request))
        return await self._guard(context, run())

    async def RequestConnection(self, request, context):
        async def run():
            raw = await self._queue_call(request.body.queue_address, "request_connection", request)
            return relay_pb2.ConnectionRequestAck.FromString(raw)
        return await self._guard(context, run())

    async def SendQueue(self, request, context):
        async def run():
            body = _peek(request.envelope, relay_pb2.QueueSendBody, env.Domain.QUEUE_SEND, "queue message")
            return relay_pb2.SendQueueResponse.FromString(await self._queue_call(body.queue_address, "send_queue", request))
        return await self._guard(context, run())

    async def ReadQueue(self, request, context):
        """Everything after since_seq; with follow, keeps polling for more."""
        try:
            body = _peek(request.envelope, relay_pb2.QueueReadBody, env.Domain.QUEUE_READ, "queue read")
            while True:
                raw = await self._queue_call(body.queue_address, "read_queue", request)
                if raw:
                    messages = [relay_pb2.QueueMessage.FromString(r) for r in raw]
                    yield relay_pb2.QueueBatch(messages=messages)
                    # The owner's signature covers since_seq, so pages past the first are
                    # read with the same credential and filtered here.
                    last = messages[-1].seq
                    if len(raw) < 500 and not request.follow:
                        return
                    advanced = relay_pb2.ReadQueueRequest()
                    advanced.CopyFrom(request)
                    advanced.after_seq = last
                    request = advanced
                    continue
                if not request.follow:
                    return
                await asyncio.sleep(QUEUE_POLL_S)
        except ChatRelayError as exc:
            await context.abort_with_status(to_status(exc))

    async def Subscribe(self, request, context):
        try:
            body = _peek(request.credential, relay_pb2.SubscribeBody, env.Domain.SUBSCRIBE, "credential")
            address = body.group_address
            info = await self.router.call_address(
                address, "check_reader", address, relay_pb2.SubscribeRequest(credential=request.credential).SerializeToString()
            )
        except ChatRelayError as exc:
            await context.abort_with_status(to_status(exc))
            return
        seq = max(request.since_seq, info["floor"])
        tail = self.tails.get(address)
        if tail is None or tail.task.done():
            tail = self.tails[address] = GroupTail(self.router, address, info["last_seq"], self.traced)
        tail.subscribers += 1
        self.subscribers += 1
        # A stream catches up from the log as long as it needs to; once it has read from
        # the shared window it may lag at most `subscriber_lag` posts, or it is cut off
        # with its position, so that a slow reader costs the group nothing.
        was_live = False
        try:
            while True:
                behind = tail.after - seq
                if was_live and behind > self.subscriber_lag:
                    self.cut_off += 1
                    if self.metrics is not None:
                        self.metrics.cut_off.add(1)
                    exc = ChatRelayError(
                        Reason.BEHIND, f"this stream fell {behind} posts behind; subscribe again after seq {seq}"
                    )
                    await context.abort_with_status(to_status(exc, resume_after_seq=seq))
                    return
                try:
                    deliveries = await tail.after_seq(seq, TAIL_WAIT_S)
                except ChatRelayError as exc:
                    await context.abort_with_status(to_status(exc))
                    return
                was_live = was_live or tail.holds(seq)
                if not deliveries:
                    continue
                seq = deliveries[-1].seq
                self.deliveries += len(deliveries)
                tail.delivered += len(deliveries)
                if self.metrics is not None:
                    self.metrics.deliveries.add(len(deliveries))
                yield relay_pb2.DeliveryBatch(deliveries=deliveries, last_seq=seq)
        finally:
            self.subscribers -= 1
            tail.subscribers -= 1
            if tail.subscribers == 0 and self.tails.get(address) is tail:
                tail.close()
                del self.tails[address]

    # ---- plumbing -----------------------------------------------------------------------

    async def _routed(self, context, request, field, body_cls, domain, what, method, response_cls):
        """The shape of most calls: read the group address from the signed body, call the
        shard that owns it, parse its answer. The shard verifies the signature."""
        async def run():
            body = _peek(getattr(request, field), body_cls, domain, what)
            raw = await self.router.call_address(body.group_address, method, request.SerializeToString())
            return response_cls.FromString(raw)
        return await self._guard(context, run())

    async def _guard(self, context, coro):
        return await guard(context, coro)

    def stats(self, groups: bool = False) -> dict:
        """This gateway's streams; with `groups`, by group address (those with streams)."""
        out = {
            "subscribers": self.subscribers, "deliveries": self.deliveries, "tails": len(self.tails),
            "cut_off": self.cut_off,
        }
        if groups:
            out["groups"] = {
                address: {"subscribers": t.subscribers, "deliveries": t.delivered} for address, t in self.tails.items()
            }
        return out

    def close(self) -> None:
        self.router.close()
        self.posts.close()
        for tail in self.tails.values():
            tail.close()
        self.tails.clear()


def _peek(envelope, cls, domain: env.Domain, what: str):
    """Read the routing fields of a body; the owning group relay verifies the signature."""
    if envelope.domain != domain.value:
        raise ChatRelayError(Reason.WRONG_DOMAIN, f"{what} must be signed for {domain.value}")
    return codec.parse(cls, envelope.body, what, env.body_limit(domain))


async def serve(
    registry: Registry, shards: list, listen: str, subscriber_lag: int = TAIL_WINDOW, find_shard=None,
    metrics=None, admin=None, post_in_flight: int = POST_IN_FLIGHT, *, registrar: Registrar,
) -> tuple[grpc.aio.Server, int, RelayServicer]:
    """The gateway's gRPC server. `registrar` registers groups; `metrics` (a
    GatewayMetrics) times and counts calls; `admin(servicer)` makes the AdminService,
    served beside the relay's."""
    from chatrelay.actors import tracing
    from chatrelay.cluster.metrics import MetricsInterceptor

    watched = metrics is not None or tracing.enabled()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST), ("grpc.so_reuseport", 0),
            ("grpc.server.max_pending_requests", PENDING_CALLS), ("grpc.server.max_pending_requests_hard_limit", 2 * PENDING_CALLS),
        ],
        interceptors=[MetricsInterceptor(metrics)] if watched else None,
    )
    servicer = RelayServicer(registry, shards, subscriber_lag, find_shard, metrics, post_in_flight, registrar=registrar)
    servicer.router.start_watch()
    relay_pb2_grpc.add_RelayServiceServicer_to_server(servicer, server)
    if admin is not None:
        relay_pb2_grpc.add_AdminServiceServicer_to_server(admin(servicer), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        relay_pb2.DESCRIPTOR.services_by_name["RelayService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ) + ((relay_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,) if admin is not None else ())
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise ChatRelayError(Reason.UNAVAILABLE, f"cannot listen on {listen}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(names[0], health_pb2.HealthCheckResponse.SERVING)
    return server, port, servicer

