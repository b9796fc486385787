"""Typed errors: every non-OK status becomes one of these, carrying the server's violations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing the server found wrong. `subject` is the request field path
    (`overrides.temperature`) or the variable, flag or file key a bad server value came from."""

    subject: str
    reason: str
    description: str


class LLMConfigError(Exception):
    """Base of every error the client raises."""

    def __init__(self, code: grpc.StatusCode, message: str,
                 violations: tuple[Violation, ...] = (), reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = violations
        self.reason = reason


class ConfigInvalid(LLMConfigError):
    """INVALID_ARGUMENT: something the caller sent is wrong (see `violations`)."""


class PreconditionFailed(LLMConfigError):
    """FAILED_PRECONDITION: the server's own configuration cannot serve this request."""


class Unauthenticated(LLMConfigError):
    """UNAUTHENTICATED: the server requires a token and got none, or one it does not know.
    Give the client one: `token=` / `token_file=`, or STIGMER_LLMCONFIG_TOKEN_FILE."""


class PermissionDenied(LLMConfigError):
    """PERMISSION_DENIED: the server refuses this request: the token lacks a scope (`reason`
    SCOPE_MISSING, the message names the scope) or the probe target is not approved."""


class ServiceUnavailable(LLMConfigError):
    """UNAVAILABLE (after retries) or DEADLINE_EXCEEDED: the service could not be reached."""


class Unimplemented(LLMConfigError):
    """UNIMPLEMENTED: the server is older than this client."""


_BY_CODE: dict[grpc.StatusCode, type[LLMConfigError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: ConfigInvalid,
    grpc.StatusCode.FAILED_PRECONDITION: PreconditionFailed,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: ServiceUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: ServiceUnavailable,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def from_rpc_error(error: grpc.RpcError) -> LLMConfigError:
    code: grpc.StatusCode = error.code()
    return _typed(code, error.details() or code.name, _details_of(error))


def _details_of(error: grpc.RpcError) -> Iterable[any_pb2.Any]:
    """The google.rpc.Status details in the trailers; none when they are missing or cannot be
    read (not a Status, or not the call's status): the code and message still say what
    happened, so a newer or broken server never turns an error into a traceback."""
    try:
        status = rpc_status.from_call(error)
    except Exception:  # DecodeError, ValueError: whatever the bytes were
        return ()
    return status.details if status else ()


def from_status(status: status_pb2.Status) -> LLMConfigError:
    """A google.rpc.Status carried in a message (a watch event's error) as a typed error."""
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code),
                grpc.StatusCode.UNKNOWN)
    return _typed(code, status.message or code.name, status.details)


def _typed(code: grpc.StatusCode, message: str, details: Iterable[any_pb2.Any],
           ) -> LLMConfigError:
    violations: list[Violation] = []
    reason = ""
    for detail in details:
        try:
            found, found_reason = _read(detail)
        except Exception:  # a detail that does not parse is skipped
            continue
        violations += found
        reason = found_reason or reason
    cls = _BY_CODE.get(code, LLMConfigError)
    return cls(code, message, tuple(violations), reason)


def _read(detail: any_pb2.Any) -> tuple[list[Violation], str]:
    """The violations and the reason one status detail carries (none for other kinds)."""
    if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
        bad = error_details_pb2.BadRequest()
        detail.Unpack(bad)
        return [Violation(v.field, v.reason, v.description) for v in bad.field_violations], ""
    if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
        failure = error_details_pb2.PreconditionFailure()
        detail.Unpack(failure)
        return [Violation(v.subject, v.type, v.description) for v in failure.violations], ""
    if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
        info = error_details_pb2.ErrorInfo()
        detail.Unpack(info)
        return [], info.reason
    return [], ""
