"""ConfigError → a rich gRPC status (google.rpc.Status with details), and nothing else.

A violation the caller caused (a request value) is INVALID_ARGUMENT with google.rpc.BadRequest;
anything else is FAILED_PRECONDITION with google.rpc.PreconditionFailure, each violation naming
the variable, flag or file key it came from. Both carry google.rpc.ErrorInfo with the reason,
whose metadata names every violation (see `_every`).
Every message goes out with URL credentials (`user:pass@`) hidden, and clipped: messages quote
the caller's values, and a status travels in metadata, which gRPC clients refuse past 8–16 KiB
(the caller would see RESOURCE_EXHAUSTED "metadata size exceeds hard limit" instead of the error).
"""

from __future__ import annotations

from typing import Any, NamedTuple, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from llmconfig_server.resolve.domain import ConfigError, Violation
from llmconfig_server.support.redact import redact_text

ERROR_DOMAIN = "llmconfig.stigmer.ai"
# UTF-8 bytes; the message is sent twice (grpc-message, percent-encoded, and in
# grpc-status-details-bin with the details), which keeps the whole under the 8 KiB soft limit.
_MESSAGE_LIMIT = 1000
_DESCRIPTION_LIMIT = 300


def config_error_status(error: ConfigError) -> grpc.Status:
    if error.caused_by_request:
        violations = [v for v in error.violations if v.caused_by_request]
        code = code_pb2.INVALID_ARGUMENT
        detail: Message = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.subject, reason=v.reason.value,
                    description=_shown(v.message, _DESCRIPTION_LIMIT),
                )
                for v in violations
            ]
        )
    else:
        violations = list(error.violations)
        code = code_pb2.FAILED_PRECONDITION
        detail = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=v.reason.value, subject=v.subject,
                    description=_shown(v.message, _DESCRIPTION_LIMIT),
                )
                for v in violations
            ]
        )
    info = error_details_pb2.ErrorInfo(
        reason=violations[0].reason.value, domain=ERROR_DOMAIN, metadata=_every(violations))
    return rpc_status.to_status(
        status_pb2.Status(
            code=code,
            message=_shown("; ".join(v.message for v in violations), _MESSAGE_LIMIT),
            details=[_pack(detail), _pack(info)],
        )
    )


def _every(violations: list[Violation]) -> dict[str, str]:
    """ErrorInfo metadata naming every violation, in the order of the BadRequest or
    PreconditionFailure list: `field` and `subject` for the first (whose reason is the
    ErrorInfo's own), `field_N`, `subject_N` and `reason_N` for the N-th from 2 on. A client
    whose google.rpc.BadRequest has no FieldViolation.reason (Debian's Go genproto, older
    googleapis) reads every reason here."""
    metadata = {"field": violations[0].field, "subject": violations[0].subject}
    for number, violation in enumerate(violations[1:], start=2):
        metadata |= {f"field_{number}": violation.field, f"subject_{number}": violation.subject,
                     f"reason_{number}": violation.reason.value}
    return metadata


def denied_status(message: str, reason: str) -> grpc.Status:
    """PERMISSION_DENIED with the reason in google.rpc.ErrorInfo."""
    return _status(code_pb2.PERMISSION_DENIED, message, reason)


def bad_request_status(field: str, reason: str, message: str) -> grpc.Status:
    """INVALID_ARGUMENT for one request field, shaped like config_error_status's."""
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=field, reason=reason, description=_shown(message, _DESCRIPTION_LIMIT))
    return _status(code_pb2.INVALID_ARGUMENT, message, reason,
                   error_details_pb2.BadRequest(field_violations=[violation]),
                   {"field": field, "subject": field})


def exhausted_status(message: str, reason: str, metadata: dict[str, str] | None = None,
                     retry_after: float = 1.0) -> grpc.Status:
    """RESOURCE_EXHAUSTED: the server is at a limit; retry in `retry_after` seconds, said in
    google.rpc.RetryInfo and in `grpc-retry-pushback-ms`, which gRPC's retries honour (the
    llmconfig client retries RESOURCE_EXHAUSTED)."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after * 1e9))
    status = _status(code_pb2.RESOURCE_EXHAUSTED, message, reason,
                     error_details_pb2.RetryInfo(retry_delay=delay), metadata)
    return _Status(status.code, status.details, (
        *status.trailing_metadata, ("grpc-retry-pushback-ms", str(int(retry_after * 1000)))))


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _status(code: int, message: str, reason: str, detail: Message | None = None,
            metadata: dict[str, str] | None = None) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    details = [_pack(detail)] if detail is not None else []
    return rpc_status.to_status(status_pb2.Status(
        code=code, message=_shown(message, _MESSAGE_LIMIT), details=[*details, _pack(info)]
    ))


def _shown(text: str, limit: int) -> str:
    """`text` as a status may carry it: credentials hidden, valid UTF-8 (an environment value
    can hold undecodable bytes), at most `limit` bytes."""
    encoded = redact_text(text).encode("utf-8", "backslashreplace")
    shown = encoded[:limit].decode("utf-8", "ignore")
    return shown if len(encoded) <= limit else shown + "…"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status,
                     ) -> NoReturn:
    """End the call with `status` (its details travel in the trailers)."""
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("context.abort returned")  # it raises; this keeps type checkers honest
