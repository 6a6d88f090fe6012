"""AdminService: what an operator sees of a running relay, and moves it can order.

Every call carries an AdminBody signed by the operator key the relay was started with
(`operator.key` in its data dir, made by the first `chatrelay up`). Rates are measured
by the gateway itself: it reads every shard's counters twice, `window_ms` apart.
Per-group figures (addresses, rates) are here and only here: metric labels name no
group.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from chatrelay import envelope as env
from chatrelay.actors.figures import GatewayStats, ShardStats
from chatrelay.cluster.replay import ReplayGuard
from chatrelay.cluster.servicer import guard
from chatrelay.actors.takedowns import check_reason
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.v1 import relay_pb2, relay_pb2_grpc


ADMIN_SKEW_S = 600
DEFAULT_WINDOW_MS = 1000
MAX_WINDOW_MS = 10_000
DEFAULT_TOP = 10
MAX_TOP = 1000


@dataclass
class Snapshot:
    """Every shard's and gateway's figures at one moment."""

    at: float
    shards: dict[int, ShardStats | str] = field(default_factory=dict)  # index -> stats, or why there are none
    gateways: list[GatewayStats | str] = field(default_factory=list)


@dataclass
class ClusterView:
    """How an admin call reaches the rest of the relay (Ray calls, in a gateway actor).

    shard_stats(groups): {index: ShardStats or an exception} for every running shard;
    gateway_stats(groups): [GatewayStats or an exception] for every gateway, this one included
    (with `groups`, their figures by group as well);
    move(address, to_index): the index the group is now served by;
    placed_groups(): how many groups the registry places; nodes(): Ray nodes alive."""

    shard_stats: Callable[[bool], Awaitable[dict]]
    gateway_stats: Callable[[bool], Awaitable[list]]
    move: Callable[[str, int], Awaitable[int]]
    placed_groups: Callable[[], Awaitable[int]]
    take_down: Callable[[str, str | None], Awaitable[str]] = lambda address, reason: _refuse()
    taken_down: Callable[[], Awaitable[dict]] = lambda: _nothing()
    nodes: Callable[[], Awaitable[int]] = lambda: _zero()
    relay_link: Callable[[], Awaitable[str]] = lambda: _empty()
    registry: str = "embedded"
    store: str = "embedded"


async def _zero() -> int:
    return 0


async def _nothing() -> dict:
    return {}


async def _refuse() -> str:
    raise ChatRelayError(Reason.NOT_ALLOWED, "this relay takes no takedowns")


async def _empty() -> str:
    return ""


class AdminServicer(relay_pb2_grpc.AdminServiceServicer):
    def __init__(self, operator_key: bytes | None, view: ClusterView) -> None:
        self.operator_key = operator_key
        self.view = view
        self.replays = ReplayGuard(ADMIN_SKEW_S)

    def check(self, envelope, method: str, now: float | None = None) -> relay_pb2.AdminBody:
        """The request's signature, signer, call and clock; its body."""
        checked, body = env.verify_message(envelope, env.Domain.ADMIN, relay_pb2.AdminBody, "admin request")
        if self.operator_key is None:
            raise ChatRelayError(Reason.NOT_ALLOWED, "this relay was started without an operator key")
        if checked.signer != self.operator_key:
            raise ChatRelayError(Reason.UNKNOWN_SIGNER, "admin request is not signed by this relay's operator key")
        if body.method != method:
            raise ChatRelayError(Reason.MALFORMED, f"admin request was signed for {body.method or 'no call'!r}, not {method!r}")
        now = time.time() if now is None else now
        if abs(now - body.timestamp) > ADMIN_SKEW_S:
            raise ChatRelayError(Reason.BAD_SIGNATURE, "admin request is too old or from the future; check the clock")
        if body.window_ms > MAX_WINDOW_MS:
            raise ChatRelayError(Reason.MALFORMED, f"window_ms must be at most {MAX_WINDOW_MS}, got {body.window_ms}")
        return body

    async def snapshot(self, groups: bool) -> Snapshot:
        shards, gateways = await asyncio.gather(self.view.shard_stats(groups), self.view.gateway_stats(groups))
        return Snapshot(
            at=time.monotonic(),
            shards={i: s if isinstance(s, ShardStats) else _text(s) for i, s in shards.items()},
            gateways=[g if isinstance(g, GatewayStats) else _text(g) for g in gateways],
        )

    async def measured(self, body: relay_pb2.AdminBody, groups: bool) -> tuple[Snapshot, Snapshot]:
        """Two snapshots `window_ms` apart; with `groups`, each group's figures too."""
        first = await self.snapshot(groups)
        await asyncio.sleep((body.window_ms or DEFAULT_WINDOW_MS) / 1000)
        return first, await self.snapshot(groups)

    async def status(self, envelope) -> relay_pb2.StatusResponse:
        body = self.check(envelope, "Status")
        (first, last), placed, nodes, link = await asyncio.gather(
            self.measured(body, groups=False), self.view.placed_groups(), self.view.nodes(), self.view.relay_link(),
        )
        window = last.at - first.at
        out = relay_pb2.StatusResponse(
            relay_link=link, groups=placed, window_seconds=round(window, 3),
            registry=self.view.registry, store=self.view.store, nodes=nodes,
            taken_down=[relay_pb2.TakenDown(group_address=a, reason=r) for a, r in sorted((await self.view.taken_down()).items())],
        )
        healthy = True
        for index, now in sorted(last.shards.items()):
            before = first.shards.get(index)
            shard = out.shards.add(shard_id=str(index), index=index)
            if isinstance(now, str):
                shard.healthy, shard.error, healthy = False, now, False
                continue
            shard.MergeFrom(relay_pb2.ShardStatus(
                node_id=now.process.node_id, groups=now.group_count, mailbox_depth=now.mailbox_depth, healthy=True,
                pid=now.process.pid, rss_bytes=now.process.rss_bytes, posts_accepted=now.posts_accepted,
                moved_out=now.moved_out,
                posts_per_second=_rate(_grew(getattr(before, "posts_accepted", None), now.posts_accepted), window),
            ))
            out.groups_loaded += shard.groups
            out.posts_accepted += now.posts_accepted
            out.posts_per_second += shard.posts_per_second
        for i, now in enumerate(last.gateways):
            before = first.gateways[i] if i < len(first.gateways) else None
            gateway = out.gateways.add()
            if isinstance(now, str):
                gateway.healthy, gateway.error, healthy = False, now, False
                continue
            gateway.MergeFrom(relay_pb2.GatewayStatus(
                node_id=now.process.node_id, subscribers=now.subscribers, deliveries=now.deliveries, tails=now.tails,
                cut_off=now.cut_off, healthy=True, pid=now.process.pid, rss_bytes=now.process.rss_bytes,
                deliveries_per_second=_rate(_grew(getattr(before, "deliveries", None), now.deliveries), window),
            ))
            out.subscribers += gateway.subscribers
            out.deliveries += gateway.deliveries
            out.deliveries_per_second += gateway.deliveries_per_second
        out.health = "serving" if healthy else "degraded"
        out.posts_per_second = round(out.posts_per_second, 3)
        out.deliveries_per_second = round(out.deliveries_per_second, 3)
        return out

    async def top(self, envelope, limit: int) -> relay_pb2.TopResponse:
        body = self.check(envelope, "Top")
        limit = limit or body.limit or DEFAULT_TOP
        if limit > MAX_TOP:
            raise ChatRelayError(Reason.MALFORMED, f"limit must be at most {MAX_TOP}, got {limit}")
        first, last = await self.measured(body, groups=True)
        window = last.at - first.at
        before_posts = {g.address: g.posts_accepted for s in _live(first.shards.values()) for g in s.groups}
        before_deliveries: dict[str, int] = {}
        subscribers: dict[str, int] = {}
        deliveries: dict[str, int] = {}
        for g in _live(first.gateways):
            for address, figures in g.groups:
                before_deliveries[address] = before_deliveries.get(address, 0) + figures.deliveries
        for g in _live(last.gateways):
            for address, figures in g.groups:
                subscribers[address] = subscribers.get(address, 0) + figures.subscribers
                deliveries[address] = deliveries.get(address, 0) + figures.deliveries
        loads = []
        for index, shard in last.shards.items():
            for g in () if isinstance(shard, str) else shard.groups:
                posted = _grew(before_posts.get(g.address), g.posts_accepted)
                delivered = _grew(before_deliveries.get(g.address), deliveries.get(g.address, 0))
                loads.append(relay_pb2.GroupLoad(
                    group_address=g.address, shard_id=str(index), posts_accepted=g.posts_accepted,
                    posts_per_second=_rate(posted, window), deliveries_per_second=_rate(delivered, window),
                    subscribers=subscribers.get(g.address, 0), mailbox_depth=g.mailbox_depth,
                    last_seq=g.last_seq, members=g.members, state=g.state,
                ))
        loads.sort(key=lambda g: (-g.posts_per_second, -g.deliveries_per_second, -g.mailbox_depth,
                                  -g.posts_accepted, g.group_address))
        return relay_pb2.TopResponse(groups=loads[:limit], window_seconds=round(window, 3))

    # ---- the gRPC methods ---------------------------------------------------------------

    async def Status(self, request, context):
        return await guard(context, self.status(request.envelope))

    async def Top(self, request, context):
        return await guard(context, self.top(request.envelope, request.limit))

    async def MoveGroup(self, request, context):
        async def run():
            body = self.check(request.envelope, "MoveGroup")
            if not body.group_address:
                raise ChatRelayError(Reason.MALFORMED, "MoveGroup needs a group address")
            index = await self.replays.once(  # a move is taken once
                "admin request", ReplayGuard.key(request.envelope.signature), None,
                lambda: self.view.move(body.group_address, body.to_shard))
            return relay_pb2.MoveGroupResponse(shard_id=str(index))
        return await guard(context, run())


    async def TakeDown(self, request, context):
        return await guard(context, self.take_down(request.envelope, "TakeDown"))

    async def Restore(self, request, context):
        return await guard(context, self.take_down(request.envelope, "Restore"))

    async def take_down(self, envelope, method: str) -> relay_pb2.TakeDownResponse:
        body = self.check(envelope, method)
        if not body.group_address:
            raise ChatRelayError(Reason.MALFORMED, f"{method} needs a group address")
        reason = check_reason(body.reason) if method == "TakeDown" else None
        if method == "Restore" and body.reason:
            raise ChatRelayError(Reason.MALFORMED, "Restore takes no reason")
        now = await self.replays.once(  # taken once
            "admin request", ReplayGuard.key(envelope.signature), None,
            lambda: self.view.take_down(body.group_address, reason))
        return relay_pb2.TakeDownResponse(group_address=body.group_address, taken_down=now)


def _live(stats):
    """The stats that came (not the reasons why some did not)."""
    return [s for s in stats if not isinstance(s, str)]


def _grew(before: int | None, now: int) -> int:
    """Counted since the first reading (0 if the counter started again meanwhile)."""
    if before is None or now < before:
        return 0
    return now - before


def _rate(count: int, window: float) -> float:
    return round(count / window, 3) if window > 0 else 0.0


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
