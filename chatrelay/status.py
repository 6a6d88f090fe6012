"""ChatRelayError <-> gRPC status, with the reason in a google.rpc.ErrorInfo detail.

Shared by the gateway (raising) and the client SDK (reading); not part of the pure core.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from chatrelay.errors import ChatRelayError, Reason

DOMAIN = "chatrelay"

CODES: dict[Reason, grpc.StatusCode] = {
    Reason.UNKNOWN_ADDRESS: grpc.StatusCode.NOT_FOUND,
    Reason.NOT_ALLOWED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.NOT_MEMBER: grpc.StatusCode.PERMISSION_DENIED,
    Reason.UNKNOWN_SIGNER: grpc.StatusCode.PERMISSION_DENIED,
    Reason.NOT_ACTIVE: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.TAKEN_DOWN: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.REFUSED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.STALE_PROFILE_VERSION: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.BUSY: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.QUOTA_EXCEEDED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.BEHIND: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.REPLAYED: grpc.StatusCode.ALREADY_EXISTS,
}


def code_for(reason: Reason) -> grpc.StatusCode:
    return CODES.get(reason, grpc.StatusCode.INVALID_ARGUMENT)


def to_status(error: ChatRelayError, retry_after_ms: int = 0, resume_after_seq: int | None = None) -> grpc.Status:
    """The status for a refusal; `retry_after_ms` and `resume_after_seq` (a stream cut
    off for falling behind: subscribe again after this seq) go into the ErrorInfo."""
    code = code_for(error.reason)
    info = error_details_pb2.ErrorInfo(reason=error.reason.value, domain=DOMAIN)
    if retry_after_ms:
        info.metadata["retry_after_ms"] = str(retry_after_ms)
    if resume_after_seq is not None:
        info.metadata["resume_after_seq"] = str(resume_after_seq)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)


def from_rpc_error(exc: grpc.RpcError) -> ChatRelayError:
    """A client's view of a failed call: the relay's reason where it sent one."""
    status = rpc_status.from_call(exc) if hasattr(exc, "trailing_metadata") else None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == DOMAIN:
                try:
                    error = ChatRelayError(Reason(info.reason), status.message)
                except ValueError:
                    break
                hint = info.metadata.get("retry_after_ms", "")
                error.retry_after_ms = int(hint) if hint.isdigit() else 0
                return error
    code = exc.code() if hasattr(exc, "code") else None
    # CANCELLED here was not this client's doing (its own cancel raises CancelledError):
    # the relay's side or the transport dropped the call, and trying again is right.
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return ChatRelayError(Reason.UNAVAILABLE, f"relay unreachable: {exc.details() if hasattr(exc, 'details') else exc}")
    return ChatRelayError(Reason.MALFORMED, f"relay call failed: {code}: {exc.details() if hasattr(exc, 'details') else exc}")

