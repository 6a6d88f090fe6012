"""RelayShard: one process hosting many GroupRelays.

A plain class; `chatrelay.actors.factory` makes it a Ray actor. Its methods take and
return serialized protobuf bytes, and return refusals as values (see `Outcome`), so
nothing depends on exceptions surviving a trip between processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Protocol

from nacl.signing import SigningKey

from chatrelay import codec
from chatrelay import envelope as env
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import core_pb2, relay_pb2
from chatrelay.actors import records, tracing
from chatrelay.actors.config import ClusterConfig, Storage
from chatrelay.actors.group_relay import GroupRelay, Moved, RelayContext
from chatrelay.actors.placement import home_shard, own_shard_index
from chatrelay.actors.proc import process_info
from chatrelay.actors.records import GroupRecord
from chatrelay.actors.registry import Put, absent, unchanged_since

log = logging.getLogger(__name__)

# ("ok", payload) or ("error", reason, message)
Outcome = tuple


def ok(payload: Any = None) -> Outcome:
    return ("ok", payload)


def error(exc: ChatRelayError) -> Outcome:
    return ("error", exc.reason.value, exc.message)


def unwrap(outcome: Outcome):
    """Caller side: the payload, or the relay's refusal raised as ChatRelayError (or
    Moved: the group is served by another shard now)."""
    if outcome[0] == "ok":
        return outcome[1]
    if outcome[0] == "moved":
        raise Moved()
    raise ChatRelayError(Reason(outcome[1]), outcome[2])


async def guarded(coro) -> Outcome:
    try:
        return ok(await coro)
    except Moved:
        return ("moved",)
    except Exception as exc:
        return error(refusal(exc))


def refusal(exc: Exception) -> ChatRelayError:
    """What a caller is told of an exception: a refusal as it is; storage that failed
    (etcd down, …) as UNAVAILABLE, which a client tries again."""
    if isinstance(exc, ChatRelayError):
        return exc
    if isinstance(exc, (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return ChatRelayError(Reason.UNAVAILABLE, f"relay storage unavailable: {type(exc).__name__}")
    log.exception("relay call failed", exc_info=exc)  # the registry client's own errors, and bugs
    return ChatRelayError(Reason.UNAVAILABLE, f"relay error: {type(exc).__name__}")


class ShardHost(Protocol):
    """What a shard asks of the cluster it runs in (Ray, in `chatrelay.actors.factory`):
    a shard of its own for a hot group, and its own stop once its groups went home."""

    def start_shard(self, index: int): ...

    def stop_self(self) -> None: ...

    def node_id(self) -> str: ...

    async def report(self, shard: "RelayShard") -> None:
        """Record the shard's figures (`figures()`) for the cluster's metrics, until cancelled."""


class RelayShard:
    def __init__(self, index: int, config: ClusterConfig, storage: Storage, host: ShardHost | None = None) -> None:
        self.index = index
        self.config = config
        self.storage = storage
        self.host = host
        self.ctx: RelayContext | None = None
        self.groups: dict[str, GroupRelay] = {}
        self._loading: dict[str, asyncio.Task] = {}
        self._moving: set[str] = set()
        self._watching: asyncio.Task | None = None
        self.moved_out = 0
        self._lease: int | None = None
        self._lease_until = 0.0  # monotonic time until which this instance may serve
        self._lease_task: asyncio.Task | None = None
        self._leased = asyncio.Event()
        self._report_task: asyncio.Task | None = None
        self.own_shards: dict[int, object] = {}  # shards of their own started for hot groups

    def __str__(self) -> str:
        return f"relay shard {self.index} ({len(self.groups)} groups)"

    async def start(self) -> int:
        if self.ctx is None:
            tracing.setup(self.config.traces, f"shard-{self.index}")
            self.ctx = RelayContext(
                identity=SigningKey(self.config.relay_key_seed),
                registry=self.storage.registry(self.config),
                log=self.storage.message_log(self.config),
                limits=self.config.limits,
            )
        if self._lease_task is None:
            self._lease_task = asyncio.create_task(self._hold_lease(), name="shard-lease")
            if self.host is not None:
                self._report_task = asyncio.create_task(self.host.report(self), name="shard-metrics")
        if self._watching is None and self.config.limits.hot_posts_per_s > 0 and self.host is not None:
            if self.index < self.config.shards:
                self._watching = asyncio.create_task(self._move_hot_groups(), name="hot-groups")
            else:
                self._watching = asyncio.create_task(self._return_when_cool(), name="cool-groups")
        return self.index

    async def ready(self) -> bool:
        """Started, and holding the shard's lease (an earlier instance that died without
        letting it go holds it until its TTL runs out)."""
        await self.start()
        await asyncio.wait_for(self._leased.wait(), LEASE_TTL_S * 3)
        return True

    # ---- the shard's lease: one live instance serves a shard index ----------------------

    async def _hold_lease(self) -> None:
        registry = self.ctx.registry
        key = records.shard_key(self.index)
        while True:
            sent = time.monotonic()
            try:
                if self._lease is None:
                    lease = await registry.lease_grant(LEASE_TTL_S)
                    result = await registry.transaction(
                        [absent(key)], [Put(key, str(os.getpid()).encode(), lease=lease)]
                    )
                    if result.succeeded:
                        self._lease = lease
                        self._lease_until = sent + LEASE_TTL_S - LEASE_MARGIN_S
                        self._leased.set()
                    else:  # another instance holds it, live or until its lease runs out
                        await registry.lease_revoke(lease)
                else:
                    await registry.lease_refresh(self._lease)
                    self._lease_until = sent + LEASE_TTL_S - LEASE_MARGIN_S
            except asyncio.CancelledError:
                raise
            except LookupError:  # our lease ran out in the registry: another may serve now
                self._lose_lease()
            except Exception as exc:  # the registry unreachable: the deadline fences us
                log.warning("shard lease not renewed: %s", exc)
            await asyncio.sleep(LEASE_REFRESH_S)

    def _lose_lease(self) -> None:
        log.warning("relay shard %d lost its lease; its groups load again when it is back", self.index)
        self._lease = None
        self._leased.clear()
        for relay in self.groups.values():
            relay.closing = True
        self.groups.clear()

    async def _check_lease(self) -> None:
        """Serve only while holding the lease. A call that comes while a new instance
        waits out an earlier one's lease waits too (bounded), as for a restart."""
        await self.start()
        if self._lease is None:
            try:
                await asyncio.wait_for(self._leased.wait(), LEASE_TTL_S * 2)
            except asyncio.TimeoutError:
                pass
        if self._lease is None or time.monotonic() > self._lease_until:
            raise ChatRelayError(
                Reason.UNAVAILABLE, "this relay shard does not hold its registry lease right now; retry"
            )

    async def release(self) -> bool:
        """Let the lease go (a clean stop), so the next instance serves at once."""
        if self._lease_task is not None:
            self._lease_task.cancel()
        lease, self._lease = self._lease, None
        self._leased.clear()
        if lease is not None:
            await self.ctx.registry.lease_revoke(lease)
        return True

    async def _group(self, address: str) -> GroupRelay:
        await self._check_lease()
        if address in self._moving:
            raise Moved()
        relay = self.groups.get(address)
        if relay is not None:
            return relay
        task = self._loading.get(address)
        if task is None:
            task = asyncio.create_task(self._load(address))
            self._loading[address] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(address, None)

    async def _load(self, address: str) -> GroupRelay:
        await self.start()
        registry = self.ctx.registry
        if not isinstance(address, str) or not 0 < len(address) <= 64:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
        gid, placed = await asyncio.gather(
            registry.get(records.address_key(address)), registry.get(records.placement_key(address))
        )
        if gid is None:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
        if placed is not None and int(placed.value) != self.index:
            raise Moved()  # the group is another shard's: only one serves it
        entry = await registry.get(records.group_key(bytes.fromhex(gid.value.decode())))
        if entry is None:
            raise ChatRelayError(Reason.UNKNOWN_ADDRESS, "no group at this address")
        relay = GroupRelay(self.ctx, GroupRecord.loads(entry.value), entry.mod_revision)
        await relay.start()
        self.groups[address] = relay
        return relay

    # ---- moving groups between shards ---------------------------------------------------

    async def move(self, address: str, to_index: int) -> Outcome:
        """Hand a group this shard serves to shard `to_index`.

        The group takes no new requests and finishes those in its mailbox; then its
        placement record is switched, compared against the revision this shard read, so
        exactly one shard serves the group at any moment (callers in between are told
        Moved and retry). Posts are appended to the shared log only by the serving shard,
        so none is lost or reordered; the new shard continues the same sequence.
        """
        async def run():
            if not isinstance(to_index, int) or to_index < 0:
                raise ChatRelayError(Reason.MALFORMED, f"no relay shard {to_index!r}")
            if to_index == self.index:
                return self.index
            relay = await self._group(address)
            key = records.placement_key(address)
            self._moving.add(address)
            try:
                await relay.close_for_move()
                entry = await self.ctx.registry.get(key)
                if entry is not None and int(entry.value) != self.index:
                    raise Moved()
                compare = [unchanged_since(key, entry.mod_revision)] if entry else [absent(key)]
                result = await self.ctx.registry.transaction(compare, [Put(key, str(to_index).encode())])
                if not result.succeeded:
                    raise ChatRelayError(Reason.BUSY, "the group's placement changed meanwhile; retry")
            except BaseException:
                relay.closing = False  # not moved: it stays here
                raise
            finally:
                self._moving.discard(address)
            self.groups.pop(address, None)
            relay.wake_readers()
            self.moved_out += 1
            log.info("moved a group to shard %d", to_index)
            return to_index
        return await guarded(run())

    async def _every_window(self, act, failed: str) -> None:
        """Every `hot_check_s`: `await act(rates)`, with the posts/s of each group loaded
        through the whole last window, until `act` returns True. A failed round is logged
        and the next window tries again."""
        window = self.config.limits.hot_check_s
        seen: dict[str, int] = {}
        while True:
            await asyncio.sleep(window)
            try:
                counts = {a: g.posts_accepted for a, g in self.groups.items()}
                rates = {a: (n - seen[a]) / window for a, n in counts.items() if a in seen}
                seen = counts
                if await act(rates):
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(failed)

    async def _move_hot_groups(self) -> None:
        """A group past `hot_posts_per_s` goes to a shard of its own."""
        async def act(rates: dict[str, float]) -> bool:
            for address, rate in rates.items():
                if rate < self.config.limits.hot_posts_per_s:
                    continue
                if len(self.groups) < 2:
                    break  # alone here already
                target = own_shard_index(self.config.shards, address)
                # Held here: Ray stops an actor once every handle of its creator is gone.
                shard = self.own_shards[target] = self.host.start_shard(target)
                await shard.ready.remote()
                unwrap(await self.move(address, target))
            return False
        await self._every_window(act, "moving a hot group failed (it stays where it was)")

    async def _return_when_cool(self) -> None:
        """A shard of its own: once its groups have stayed under half of `hot_posts_per_s`
        for COOL_CHECKS windows in a row, they go home (the shard their registration placed
        them on) and this shard stops, so that it costs no process while they are quiet."""
        cool = 0

        async def act(rates: dict[str, float]) -> bool:
            nonlocal cool
            hot = any(r >= self.config.limits.hot_posts_per_s / 2 for r in rates.values())
            cool = 0 if hot or not self.groups else cool + 1
            if cool < COOL_CHECKS:
                return False
            for address, relay in list(self.groups.items()):
                unwrap(await self.move(address, home_shard(relay.record.group_id, self.config.shards)))
            if self.groups:
                return False
            log.info("relay shard %d: its groups went home; stopping", self.index)
            await self.release()
            await asyncio.to_thread(self.host.stop_self)
            return True
        await self._every_window(act, "returning a cooled group failed (it stays here)")

    async def _on_group(self, envelope, body_cls, what: str, action) -> Outcome:
        """The shape of most calls: the signed body names the group address; the group's
        relay checks the signature and does `action(relay, body)`."""
        async def run():
            body = _body(envelope, body_cls, what)
            relay = await self._group(body.group_address)
            return await action(relay, body)
        return await guarded(self._serialized(run()))

    async def owner_command(self, request: bytes) -> Outcome:
        req = relay_pb2.OwnerCommandRequest.FromString(request)
        return await self._on_group(
            req.envelope, relay_pb2.OwnerCommandBody, "owner command",
            lambda relay, body: relay.owner_command(req.envelope),
        )

    async def join(self, request: bytes) -> Outcome:
        req = relay_pb2.JoinRequest.FromString(request)
        return await self._on_group(
            req.envelope, core_pb2.JoinBody, "join request", lambda relay, body: relay.join(req.envelope)
        )

    async def post(self, request: bytes, carried: dict | None = None) -> Outcome:
        """A post to its group; `carried`: the gateway's trace context, when tracing."""
        req = relay_pb2.PostRequest.FromString(request)

        async def run():
            relay = await self._group(req.group_address)
            return await relay.post(req.envelope)
        if not carried:
            return await guarded(self._serialized(run()))
        from opentelemetry.trace import SpanKind

        with tracing.tracer().start_as_current_span(
            "chatrelay.shard.post", context=tracing.context_of(carried), kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "chatrelay", "messaging.operation.name": "post",
                        "chatrelay.shard": self.index},
        ) as span:
            outcome = await guarded(self._serialized(run()))
            span.set_attribute("chatrelay.outcome", outcome[0] if outcome[0] == "ok" else str(outcome[1:2]))
            return outcome

    async def post_many(self, requests: list[bytes], carried: list | None = None) -> Outcome:
        """Posts (of one group, as a gateway sends them) into their mailbox together, so
        that they are appended in one turn; one outcome each, in order.

        If any of them met the group moving away, the whole call is answered "moved" and
        the gateway sends it again where the group went: the posts appended here already
        are recognised there by their message ids and answered with the same seq."""
        if not isinstance(requests, list) or not (carried is None or isinstance(carried, list) and len(carried) == len(requests)):
            return error(ChatRelayError(Reason.MALFORMED, "post_many takes a list of requests and one context each"))
        outcomes = await asyncio.gather(*(self.post(r, c) for r, c in zip(requests, carried or [None] * len(requests))))
        if any(outcome[0] == "moved" for outcome in outcomes):
            return ("moved",)
        return ok(list(outcomes))

    async def check_reader(self, address: str, credential: bytes) -> Outcome:
        async def run():
            relay = await self._group(address)
            reader = relay.check_reader(relay_pb2.SubscribeRequest.FromString(credential).credential)
            return {"reader": reader, "floor": relay.history_floor(reader), "last_seq": relay.last_seq}
        return await guarded(run())

    async def read(self, address: str, after_seq: int, limit: int = 500, wait_s: float = 0.0) -> Outcome:
        """Internal: posts after `after_seq` for a gateway that checked its reader."""
        async def run():
            relay = await self._group(address)
            deliveries = await relay.read(after_seq, limit, wait_s)
            return [d.SerializeToString() for d in deliveries]
        return await guarded(run())

    async def history(self, request: bytes) -> Outcome:
        req = relay_pb2.HistoryRequest.FromString(request)

        async def action(relay, body):
            reader = relay.check_reader(req.credential)
            deliveries = await relay.history(reader, req.before_seq, req.limit or 100)
            return relay_pb2.HistoryResponse(deliveries=deliveries)
        return await self._on_group(req.credential, relay_pb2.SubscribeBody, "credential", action)

    async def service_log(self, request: bytes) -> Outcome:
        req = relay_pb2.ServiceLogRequest.FromString(request)

        async def action(relay, body):
            relay.check_owner_read(req.envelope)
            return relay_pb2.ServiceLogResponse(entries=await relay.service_log(body.since_seq))
        return await self._on_group(req.envelope, relay_pb2.OwnerReadBody, "owner read", action)

    async def list_pending(self, request: bytes) -> Outcome:
        req = relay_pb2.ListPendingRequest.FromString(request)

        async def action(relay, body):
            relay.check_owner_read(req.envelope)
            return relay_pb2.ListPendingResponse(pending=relay.pending())
        return await self._on_group(req.envelope, relay_pb2.OwnerReadBody, "owner read", action)

    async def member_keys(self, request: bytes) -> Outcome:
        req = relay_pb2.MemberKeysRequest.FromString(request)

        async def action(relay, body):
            relay.check_reader(req.credential)
            return relay_pb2.MemberKeysResponse(join=relay.member_join(req.member, req.display_name))
        return await self._on_group(req.credential, relay_pb2.SubscribeBody, "credential", action)

    async def direct_invitation(self, request: bytes) -> Outcome:
        req = relay_pb2.DirectInvitationRequest.FromString(request)
        return await self._on_group(
            req.envelope, relay_pb2.DirectInvitationBody, "direct invitation",
            lambda relay, body: relay.direct_invitation(req.envelope),
        )

    async def direct_inbox(self, request: bytes) -> Outcome:
        req = relay_pb2.DirectInboxRequest.FromString(request)

        async def action(relay, body):
            reader = relay.check_reader(req.credential)
            return relay_pb2.DirectInboxResponse(invitations=await relay.direct_inbox(reader, req.after_seq))
        return await self._on_group(req.credential, relay_pb2.SubscribeBody, "credential", action)

    # ---- queues of 1:1 connections -------------------------------------------------

    def _queues(self):
        from chatrelay.actors.queues import QueueStore

        return QueueStore(self.ctx)

    async def create_queue(self, request: bytes) -> Outcome:
        await self.start()
        req = relay_pb2.CreateQueueRequest.FromString(request)
        return await guarded(self._serialized(self._queues().create(req.envelope)))

    async def request_connection(self, request: bytes) -> Outcome:
        await self.start()
        req = relay_pb2.ConnectionRequest.FromString(request)
        return await guarded(self._serialized(self._queues().request(req.body)))

    async def send_queue(self, request: bytes) -> Outcome:
        await self.start()
        req = relay_pb2.SendQueueRequest.FromString(request)
        return await guarded(self._serialized(self._queues().send(req.envelope)))

    async def read_queue(self, request: bytes) -> Outcome:
        await self.start()
        req = relay_pb2.ReadQueueRequest.FromString(request)
        return await guarded(self._queues().read(req.envelope, req.after_seq))

    def figures(self) -> tuple[int, int, int]:
        """Groups loaded, requests waiting in their mailboxes, posts accepted."""
        return len(self.groups), _mailbox_depth(self.groups), self.ctx.tally["posts"]

    async def stats(self, groups: bool = True) -> dict:
        """This shard's process and its loaded groups (their count only, unless `groups`)."""
        loaded = list(self.groups.values())
        out = {
            "shard": self.index, "group_count": len(loaded), "moved_out": self.moved_out,
            "mailbox_depth": _mailbox_depth(self.groups),
            "posts_accepted": sum(g.posts_accepted for g in loaded),
            "process": process_info(self.host.node_id() if self.host else ""),
        }
        if groups:
            out["groups"] = [g.stats() for g in loaded]
        return out

    @staticmethod
    async def _serialized(coro):
        """Protobuf results cross the process boundary as bytes."""
        result = await coro
        return result.SerializeToString() if hasattr(result, "SerializeToString") else result


LEASE_TTL_S = 5
LEASE_REFRESH_S = 1.0
LEASE_MARGIN_S = 2.0  # stop serving this long before the lease could run out
COOL_CHECKS = 6  # windows in a row under half the hot threshold before a group goes home


def _mailbox_depth(groups: dict[str, GroupRelay]) -> int:
    """Requests waiting in the mailboxes of a shard's groups."""
    return sum(len(g.mailbox or ()) for g in groups.values())


def _body(envelope: core_pb2.SignedEnvelope, cls, what: str):
    """Peek at a body to route it; the group relay verifies the signature before use."""
    return codec.parse(cls, envelope.body, what, env.body_limit(env.Domain(envelope.domain))
                       if envelope.domain in env.Domain._value2member_map_ else env.DEFAULT_BODY_LIMIT)
