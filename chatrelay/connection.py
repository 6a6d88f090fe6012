"""Connections to relays: a RelayClient owns its gRPC channel (never one TCP connection
shared with another client: no group can be tied to another by its connection), except
the clients of one member of one group inside `one_member`, and sends again, by one
retry policy, the calls that are safe to repeat."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import time
from dataclasses import dataclass

import grpc
from grpc_status import rpc_status
from nacl.signing import SigningKey

from chatrelay import envelope as env
from chatrelay import forwarding, links, tls
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import LinkKind, ShortLink
from chatrelay.retry import Backoff
from chatrelay.status import from_rpc_error
from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc

DEFAULT_PORT = 7223
CALL_TIMEOUT_S = 30
RETRY_S = 30  # how long idempotent calls (registration, join) ride out a relay restarting
READ_RETRY_S = 1.0  # reads: one more try (a relay that is down is skipped soon after)
READS = frozenset({"ResolveLink", "History", "ReadServiceLog", "ListPending", "MemberKeys"})
NONCE = 16
MAX_PAGES = 10_000  # pages a reader reads in one go at the most (pages are sized in bytes)
RETRIES = Backoff(first_s=0.2, max_s=2.0)  # a relay restarting: UNAVAILABLE or BUSY for a while
# Each channel its own subchannels: gRPC's global pool would share one TCP connection
# between two clients of one target.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


class _Channels:
    """The channels the RelayClients inside one `one_member` share, one per target."""

    def __init__(self) -> None:
        self.open: dict[tuple, grpc.aio.Channel] = {}
        self.retired: list[grpc.aio.Channel] = []  # broken ones: closed at the end, not under a call

    def retire(self, key: tuple, channel: grpc.aio.Channel) -> None:
        if self.open.get(key) is channel:
            del self.open[key]
            self.retired.append(channel)

    async def close(self) -> None:
        for channel in [*self.open.values(), *self.retired]:
            await channel.close()
        self.open.clear()
        self.retired.clear()


_shared: contextvars.ContextVar[_Channels | None] = contextvars.ContextVar("shared_channels", default=None)


@contextlib.asynccontextmanager
async def one_member():
    """Inside: the calls of ONE member of ONE group (resolving its link, joining, then
    following or posting) share one connection per relay, instead of a TLS handshake
    each; closed at the end. A relay learns nothing it did not know: the calls are of
    one member of one group. Never wrap two groups or two members in one: their shared
    connection would tie them together. Nested, the outer one holds."""
    if _shared.get() is not None:
        yield
        return
    channels = _Channels()
    token = _shared.set(channels)
    try:
        yield
    finally:
        _shared.reset(token)
        await channels.close()


def target_of(host: str, pin: bytes | None = None) -> str:
    """host[:port] from a link, and its pin -> `[PIN@]HOST:PORT`, what a RelayClient takes."""
    if host.startswith("["):
        address = host if "]:" in host else f"{host}:{DEFAULT_PORT}"
    else:
        address = host if ":" in host else f"{host}:{DEFAULT_PORT}"
    return tls.join_target(pin, address)


def target_of_link(link: ShortLink) -> str:
    """A target for every host of a relay's link: the gateways of one relay, which hold
    one key. Where all of them are IP addresses with the same pin, the channel fails over
    from one to the next (`tls.failover_target`); otherwise the first host."""
    targets = [target_of(h) for h in link.hosts]
    if len(set(link.pins)) > 1:
        targets = targets[:1]
    return tls.join_target(link.pin(0), tls.failover_target(targets))


SHORT_WAIT_MS = 2_000  # a rate limit that asks to wait no longer than this is waited out


def retryable(exc: Exception) -> bool:
    """A refusal that trying again may get past: a gateway restarting or gone, a shard
    restarting, its registry reconnecting, a group with too much waiting, a relay-wide
    rate that frees up within a moment (not a quota that asks to wait a minute)."""
    if not isinstance(exc, ChatRelayError):
        return False
    if exc.reason is Reason.RATE_LIMITED:
        return 0 < getattr(exc, "retry_after_ms", 0) <= SHORT_WAIT_MS
    return exc.reason in (Reason.UNAVAILABLE, Reason.BUSY)


async def call_retrying(rpc, request, timeout: float = CALL_TIMEOUT_S, retry_for_s: float = 0.0,
                        retries: Backoff = RETRIES):
    """A unary call, sent again while the relay answers UNAVAILABLE or BUSY, for up to
    `retry_for_s` seconds; only for calls that are safe to repeat."""
    async def once():
        try:
            return await rpc(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
    if retry_for_s <= 0:
        return await once()
    return await retries.within(retry_for_s).run(once, retryable)


# Plaintext to relays: only where the relay runs with --insecure too (`chatrelay
# --insecure`, CHATRELAY_INSECURE=1); never by default.
INSECURE_ENV = "CHATRELAY_INSECURE"
_insecure = os.environ.get(INSECURE_ENV, "") not in ("", "0")


def set_insecure(value: bool) -> None:
    global _insecure
    _insecure = value


def insecure() -> bool:
    return _insecure


async def channel_args(target: str, options=CHANNEL_OPTIONS) -> tuple[str, grpc.ChannelCredentials | None, list]:
    """(HOST:PORT, credentials, options) for a gRPC channel to `[PIN@]HOST:PORT`: TLS
    trusting only the pinned key, or where there is no pin, the system's roots and the
    host name; credentials None (plaintext) only in insecure mode."""
    pin, address = tls.split_target(target)
    if _insecure:
        return address, None, list(options)
    if pin is None:
        await tls.fetch_certificate(address, verify=True)  # refused clearly, not by a gRPC timeout
        return address, grpc.ssl_channel_credentials(), list(options)
    root = await tls.pinned_root(address, pin)
    return address, grpc.ssl_channel_credentials(root_certificates=root), [
        *options, ("grpc.ssl_target_name_override", tls.SERVER_NAME),
    ]


async def open_channel(target: str, options=CHANNEL_OPTIONS) -> grpc.aio.Channel:
    """An asyncio gRPC channel to `[PIN@]HOST:PORT` (see `channel_args`)."""
    address, credentials, options = await channel_args(target, options)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


async def diagnose(target: str) -> ChatRelayError | None:
    """Why a relay that looks unreachable may in truth be refused: in insecure mode, it
    speaks TLS; pinned, another key now answers on its address (a certificate checked
    earlier in this process is checked again). None where it is just unreachable, and
    while reaching relays through a forwarding relay (a look of its own would reach the
    relay directly, and show it the client's address)."""
    if forwarding.current.get() is not None:
        return None
    pin, address = tls.split_target(target)
    if _insecure:
        if await tls.speaks_tls(address):
            return ChatRelayError(Reason.TLS_MISMATCH, (
                f"the relay at {address} speaks TLS, and this client runs with --insecure: drop --insecure"
            ))
        return None
    if pin is None:
        return None
    tls.forget(address, pin)
    try:
        await tls.pinned_root(address, pin)
    except ChatRelayError as exc:
        if exc.reason in (Reason.RELAY_IDENTITY_MISMATCH, Reason.TLS_MISMATCH):
            return exc
    return None


async def diagnosed(target: str, call):
    """The answer of `call` (an awaitable gRPC call to `target`); where it fails as
    unreachable, the refusal `diagnose` finds instead, if any."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.UNAVAILABLE:
            found = await diagnose(target)
            if found is not None:
                raise found from None
        raise


def dropped(exc: grpc.aio.AioRpcError) -> bool:
    """Whether a call failed for want of a connection (UNAVAILABLE with no reason of the
    relay's: a relay that refuses says why)."""
    return exc.code() is grpc.StatusCode.UNAVAILABLE and rpc_status.from_call(exc) is None


class RelayClient:
    """One relay's gateway over gRPC, at `[PIN@]HOST:PORT` (see `open_channel`); the
    channel opens at the first call."""

    def __init__(self, target: str, retries: Backoff = RETRIES, stub=relay_pb2_grpc.RelayServiceStub) -> None:
        self.target = target
        self.retries = retries
        self.make_stub = stub  # the service: the relay's, or its AdminService
        self.channel: grpc.aio.Channel | None = None
        self.stub = None
        self.turn = 0  # gateways of the relay link gone away under this client: the next is tried first
        self._opening: asyncio.Lock | None = None  # calls that find no channel open one, together
        self._shared: tuple | None = None  # (pool, key) of a channel of `one_member`'s, which this client does not close

    async def open(self) -> "RelayClient":
        if self.channel is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:  # the first calls at once: one channel, not one each
                if self.channel is None:
                    await self._open()
        return self

    async def _open(self) -> None:
        target = tls.turned(self.target, self.turn)
        via = forwarding.current.get()
        pool = _shared.get()
        key = (target, via)  # the Via itself, not its id: an id is reused once its Via is gone
        channel = pool.open.get(key) if pool is not None else None
        if channel is None:
            channel = await self._new_channel(target, via)
            if pool is not None:
                found = pool.open.setdefault(key, channel)
                if found is not channel:  # another client opened one meanwhile: it is kept, this one ends
                    await channel.close()
                    channel = found
        if pool is not None:
            self._shared = (pool, key)
        self.channel = channel
        self.stub = self.make_stub(channel)

    async def _new_channel(self, target: str, via) -> grpc.aio.Channel:
        if via is not None:  # through a relay of one's own: this relay never sees the client
            if _insecure:
                raise ChatRelayError(Reason.TLS_MISMATCH, "forwarding carries TLS only: it does not work with --insecure")
            pin, address = tls.split_target(target)
            if pin is None:
                raise ChatRelayError(Reason.TLS_MISMATCH, f"forwarding reaches a relay by the key its link pins; "
                                                          f"the link of {address} names none")
            target = tls.join_target(pin, await via.bridge(address))
        return await open_channel(target)

    async def __aenter__(self) -> "RelayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self, broken: bool = False) -> None:
        """`broken`: the relay was unreachable on it; a channel shared in `one_member`
        is then left for a new one (and closed at the end of it), not kept for the next
        client."""
        if self.channel is not None:
            if self._shared is None:
                await self.channel.close()
            elif broken:
                self._shared[0].retire(self._shared[1], self.channel)
            self.channel = self.stub = self._shared = None

    async def call(self, method: str, request, timeout: float = CALL_TIMEOUT_S, retry_for_s: float | None = None):
        """One call; an idempotent one may pass `retry_for_s` (see `call_retrying`), and
        then gives `request` as a function that signs it anew (a relay refuses a signed
        request it has taken as `replayed`, and an answer may be lost after it took it).
        Reads are sent once more after a dropped connection, which reaches the next
        gateway of the relay link when the first one went away."""
        if retry_for_s is None:
            retry_for_s = READ_RETRY_S if method in READS else 0.0
        async def rpc(message, timeout):
            await self.open()  # inside the retries: a relay restarting may not answer TLS yet
            if callable(message):  # a request signed anew for each try: a relay takes each once
                message = message()
            channel = self.channel
            try:
                return await diagnosed(self.target, getattr(self.stub, method)(message, timeout=timeout))
            except grpc.aio.AioRpcError as exc:
                # The next try opens anew, from the next gateway; once for the calls that
                # were on the channel together (not a channel another of them opened since).
                if dropped(exc) and self.channel is channel:
                    await self.close(broken=True)
                    self.turn += 1
                raise
        return await call_retrying(rpc, request, timeout, retry_for_s, self.retries)

    async def resolve(self, link: ShortLink) -> links.ResolvedLink:
        response = await self.call(
            "ResolveLink", relay_pb2.ResolveLinkRequest(lookup_id=links.derive(link.link_key).lookup_id)
        )
        return links.resolve(link, response.ciphertext)

    async def store_link(self, signer: SigningKey, bundle: links.LinkBundle, writers: list[bytes] = ()) -> bool:
        """`writers`: the keys that may replace the data after this (a group's owners)."""
        body = relay_pb2.StoreLinkBody(
            lookup_id=bundle.lookup_id, ciphertext=bundle.ciphertext,
            nonce=os.urandom(NONCE), timestamp=int(time.time()), version=bundle.version,
            writers=[w for w in writers if w != bytes(signer.verify_key)],
        )
        envelope = env.sign_message(signer, env.Domain.LINK_STORE, body)
        response = await self.call("StoreLink", relay_pb2.StoreLinkRequest(envelope=envelope))
        return response.created

    async def post(self, address: str, envelope: core_pb2.SignedEnvelope) -> relay_pb2.PostAck:
        return await self.call("Post", relay_pb2.PostRequest(group_address=address, envelope=envelope))

    def subscribe(self, credential: core_pb2.SignedEnvelope, since_seq: int):
        """The Subscribe stream (after `open`)."""
        return self.stub.Subscribe(relay_pb2.SubscribeRequest(credential=credential, since_seq=since_seq))


async def resolve_link(link: ShortLink) -> links.ResolvedLink:
    """Try each host of the link; the data is the same on each, and checked."""
    errors = []
    for host, pin in link.endpoints():
        async with RelayClient(target_of(host, pin)) as client:
            try:
                return await client.resolve(link)
            except ChatRelayError as exc:
                if exc.reason not in (Reason.UNAVAILABLE, Reason.UNKNOWN_ADDRESS, Reason.RELAY_IDENTITY_MISMATCH,
                                      Reason.TLS_MISMATCH):
                    raise  # a host that returns bad data is caught, not skipped
                errors.append(exc)
    text = "; ".join(f"{host}: {exc.message}" for host, exc in zip(link.hosts, errors))
    # A host holding another key is the finding to report, over hosts that were down.
    reasons = [exc.reason for exc in errors if exc.reason in (Reason.RELAY_IDENTITY_MISMATCH, Reason.TLS_MISMATCH)]
    raise ChatRelayError(reasons[0] if reasons else Reason.UNAVAILABLE, "no host of the link answered: " + text)


@dataclass
class RelayInfo:
    link: ShortLink
    relay_key: bytes
    name: str = ""  # as the relay's link data gives it
    forward_hosts: tuple[str, ...] = ()  # where it forwards its clients' connections; none: it does not

    @property
    def target(self) -> str:
        return target_of_link(self.link)


async def relay_info(relay_link: str) -> RelayInfo:
    link = ShortLink.parse(relay_link)
    if link.kind is not LinkKind.RELAY:
        raise ChatRelayError(Reason.LINK_KIND_MISMATCH, f"{relay_link} is not a relay link (kind r)")
    resolved = await resolve_link(link)
    return RelayInfo(link=link, relay_key=resolved.fixed.root_key, name=resolved.mutable.relay.name,
                     forward_hosts=tuple(resolved.mutable.relay.forward_hosts))


@contextlib.asynccontextmanager
async def forwarded(relay_link: str | None):
    """Every relay this task reaches, reached through the forwarding of `relay_link` (a
    relay one uses: chatrelay/forwarding.py); None, directly."""
    if not relay_link:
        yield None
        return
    info = await relay_info(relay_link)  # one's own relay: reached directly
    via = forwarding.via_of(relay_link, info.name, info.forward_hosts)
    token = forwarding.current.set(via)
    try:
        yield via
    finally:
        forwarding.current.reset(token)
        await via.close()

