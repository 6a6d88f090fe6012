import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from chatrelay.errors import ChatRelayError, Reason
from chatrelay.status import code_for, from_rpc_error, to_status


def details(status: grpc.Status) -> tuple[status_pb2.Status, error_details_pb2.ErrorInfo]:
    [(key, raw)] = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    proto = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    assert proto.details[0].Unpack(info)
    return proto, info


def test_a_refusal_carries_its_reason_and_message():
    status = to_status(ChatRelayError(Reason.NOT_ALLOWED, "only owners post in a channel"))
    assert status.code == grpc.StatusCode.PERMISSION_DENIED
    assert status.details == "only owners post in a channel"
    proto, info = details(status)
    assert (info.reason, info.domain) == ("not_allowed", "chatrelay")
    assert proto.message == "only owners post in a channel"
    assert "retry_after_ms" not in info.metadata


def test_a_busy_group_says_when_to_retry():
    status = to_status(ChatRelayError(Reason.BUSY, "this group's mailbox is full"), retry_after_ms=200)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    _, info = details(status)
    assert info.metadata["retry_after_ms"] == "200"


def test_a_stream_cut_off_for_falling_behind_says_where_to_resume():
    status = to_status(ChatRelayError(Reason.BEHIND, "this stream fell 60 posts behind"), resume_after_seq=41)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    _, info = details(status)
    assert (info.reason, info.metadata["resume_after_seq"]) == ("behind", "41")
    assert "retry_after_ms" not in info.metadata


def test_codes_for_reasons():
    assert code_for(Reason.UNKNOWN_ADDRESS) == grpc.StatusCode.NOT_FOUND
    assert code_for(Reason.RATE_LIMITED) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_for(Reason.UNAVAILABLE) == grpc.StatusCode.UNAVAILABLE
    assert code_for(Reason.MALFORMED) == grpc.StatusCode.INVALID_ARGUMENT  # bad input by default


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED])
def test_calls_dropped_on_the_way_are_worth_retrying(code):
    exc = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="dropped")
    error = from_rpc_error(exc)
    assert (error.reason, error.message) == (Reason.UNAVAILABLE, "relay unreachable: dropped")


def test_a_call_failing_without_a_reason_is_reported_with_its_code():
    exc = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(), details="boom")
    error = from_rpc_error(exc)
    assert (error.reason, error.message) == (Reason.MALFORMED, "relay call failed: StatusCode.INTERNAL: boom")
