"""A hostile relay, built in the test: a real gRPC server on a loopback port, with a TLS
key pinned as any relay's is, that answers a reader's calls (History, Subscribe,
MemberKeys) with whatever the test gives it: genuine items taken from a real relay,
and forged ones. And a stranger's call whose bytes are no request."""

from __future__ import annotations

import asyncio
import copy

import grpc

from chatrelay import tls
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.state import Membership
from chatrelay.status import to_status
from chatrelay.v1 import core_pb2, relay_pb2, relay_pb2_grpc

STREAM_OPEN_S = 30  # how long a Subscribe stays open after its batch: the test ends it sooner


class HostileRelay(relay_pb2_grpc.RelayServiceServicer):
    def __init__(self) -> None:
        self.deliveries: list[relay_pb2.Delivery] = []  # in seq order
        self.admissions: list[relay_pb2.MemberAdmission] = []
        self.seen: list[tuple[str, str]] = []  # (group address, peer) of each History call
        self.refusal: ChatRelayError | None = None  # what it answers every post with
        self.server: grpc.aio.Server | None = None
        self.target = ""

    async def start(self, insecure: bool = False) -> "HostileRelay":
        """Serving on a free loopback port: TLS with a key of its own, or, `insecure`,
        plaintext (for a client run with --insecure)."""
        self.server = grpc.aio.server()
        relay_pb2_grpc.add_RelayServiceServicer_to_server(self, self.server)
        if insecure:
            port = self.server.add_insecure_port("127.0.0.1:0")
            self.target = f"127.0.0.1:{port}"
        else:
            key, cert = tls.make_certificate()
            port = self.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
            self.target = tls.join_target(tls.pin_of_pem(cert), f"127.0.0.1:{port}")
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop(None)

    def serving(self, who: Membership) -> Membership:
        """`who`, reading the group through this relay only (at the same group address)."""
        moved = copy.deepcopy(who)
        moved.relays = moved.relays[:1]
        moved.relays[0].target = self.target
        return moved

    def beside(self, who: Membership) -> Membership:
        """`who`, with this relay first in its relay list, the group's own after it."""
        both = copy.deepcopy(who)
        both.relays = self.serving(who).relays + both.relays
        return both

    def post(self, seq: int, post: core_pb2.SignedEnvelope) -> None:
        self.deliveries.append(relay_pb2.Delivery(seq=seq, post=post, relay_ts=seq))

    async def Post(self, request, context):
        await context.abort_with_status(to_status(self.refusal or ChatRelayError(Reason.UNAVAILABLE, "not taking posts")))

    async def History(self, request, context):
        self.seen.append((relay_pb2.SubscribeBody.FromString(request.credential.body).group_address, context.peer()))
        before = request.before_seq or float("inf")
        page = [d for d in self.deliveries if d.seq < before][-(request.limit or 500):]
        return relay_pb2.HistoryResponse(deliveries=page)

    async def Subscribe(self, request, context):
        yield relay_pb2.DeliveryBatch(deliveries=[d for d in self.deliveries if d.seq > request.since_seq])
        await asyncio.sleep(STREAM_OPEN_S)

    async def MemberKeys(self, request, context):
        found = [a for a in self.admissions
                 if (request.member and a.join.signer == request.member)
                 or (request.display_name and _name(a) == request.display_name)]
        if not found:
            await context.abort_with_status(to_status(ChatRelayError(Reason.NOT_MEMBER, "no such member in this group")))
        return relay_pb2.MemberKeysResponse(members=found)


def _name(admission: relay_pb2.MemberAdmission) -> str:
    return core_pb2.JoinBody.FromString(admission.join.body).profile.display_name


def delivery(seq: int, envelope: core_pb2.SignedEnvelope) -> relay_pb2.Delivery:
    """An item as a relay delivers it: what a hostile relay serves."""
    return relay_pb2.Delivery(seq=seq, post=envelope, message_id=b"\0" * 32, relay_ts=1)


def garbage_post(relay_link: str, method: str = "Post", expect=grpc.StatusCode.INVALID_ARGUMENT) -> None:
    """A call (Post, or the stream Subscribe, or a method that is not there) whose bytes
    are no request, as a stranger may send; refused with `expect`."""
    from chatrelay.client import target_of_link
    from chatrelay.connection import channel_args
    from chatrelay.links import ShortLink

    address, credentials, options = asyncio.run(channel_args(target_of_link(ShortLink.parse(relay_link))))
    with grpc.secure_channel(address, credentials, options=options) as channel:
        path = f"/chatrelay.v1.RelayService/{method}"
        if method == "Subscribe":
            call = channel.unary_stream(path, request_serializer=bytes, response_deserializer=bytes)
            send = lambda: list(call(b"\xff\xff not a request", timeout=10))  # noqa: E731
        else:
            call = channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)
            send = lambda: call(b"\xff\xff not a request", timeout=10)  # noqa: E731
        try:
            send()
        except grpc.RpcError as exc:
            assert exc.code() == expect
        else:
            raise AssertionError(f"a garbage {method} was accepted")
