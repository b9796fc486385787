"""ConfigError → a rich gRPC status (google.rpc.Status with details), and nothing else.

A violation the caller caused (a request value) is INVALID_ARGUMENT with google.rpc.BadRequest;
anything else is FAILED_PRECONDITION with google.rpc.PreconditionFailure, each violation naming
the variable, flag or file key it came from. Both carry google.rpc.ErrorInfo with the reason.
Every message goes out with URL credentials (`user:pass@`) hidden.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .domain import ConfigError
from .redact import redact_text

ERROR_DOMAIN = "llmconfig.stigmer.ai"


def config_error_status(error: ConfigError) -> grpc.Status:
    if error.caused_by_request:
        violations = [v for v in error.violations if v.caused_by_request]
        code = code_pb2.INVALID_ARGUMENT
        detail: Message = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.subject, reason=v.reason.value, description=redact_text(v.message)
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
                    type=v.reason.value, subject=v.subject, description=redact_text(v.message)
                )
                for v in violations
            ]
        )
    info = error_details_pb2.ErrorInfo(
        reason=violations[0].reason.value,
        domain=ERROR_DOMAIN,
        metadata={"field": violations[0].field, "subject": violations[0].subject},
    )
    return rpc_status.to_status(
        status_pb2.Status(
            code=code,
            message=redact_text("; ".join(v.message for v in violations)),
            details=[_pack(detail), _pack(info)],
        )
    )


def denied_status(message: str, reason: str) -> grpc.Status:
    """PERMISSION_DENIED with the reason in google.rpc.ErrorInfo."""
    return _status(code_pb2.PERMISSION_DENIED, message, reason)


def bad_request_status(field: str, reason: str, message: str) -> grpc.Status:
    """INVALID_ARGUMENT for one request field, shaped like config_error_status's."""
    message = redact_text(message)
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=field, reason=reason, description=message)
    return _status(code_pb2.INVALID_ARGUMENT, message, reason,
                   error_details_pb2.BadRequest(field_violations=[violation]),
                   {"field": field, "subject": field})


def exhausted_status(message: str, reason: str) -> grpc.Status:
    """RESOURCE_EXHAUSTED: the server is at a limit; the caller may retry later."""
    return _status(code_pb2.RESOURCE_EXHAUSTED, message, reason)


def _status(code: int, message: str, reason: str, detail: Message | None = None,
            metadata: dict[str, str] | None = None) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    details = [_pack(detail)] if detail is not None else []
    return rpc_status.to_status(status_pb2.Status(
        code=code, message=redact_text(message), details=[*details, _pack(info)]
    ))


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
