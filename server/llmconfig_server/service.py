"""llmconfig.v1.LLMConfigService on the server's state: every call reads the current snapshot
once and is answered from it alone; watch streams follow the state from snapshot to snapshot.

The handlers are registered from the service's descriptor, so an RPC added to the proto and
not implemented here stops the server at start instead of being silently absent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from llmconfig.v1 import llmconfig_pb2 as pb

from .access import Caller, Denied, audit_secret, require_secrets
from .answers import Answer
from .domain import ConfigError
from .errors import config_error_status
from .servicer import SERVICE_NAME, overrides_of, response_of
from .state import ServerState, Snapshot

log = logging.getLogger(__name__)

_DESCRIPTOR: Final = pb.DESCRIPTOR.services_by_name["LLMConfigService"]
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class LLMConfigService:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        # A hook for metrics: called with the token name each time a key is handed out.
        self.on_secret: Callable[[str], None] = lambda token: None

    # -- ResolveLLMConfig: bytes in, bytes out, answered from the snapshot's cache --------

    async def resolve(self, raw: bytes, context: _Context) -> bytes:
        snapshot = self.state.current
        if (answer := snapshot.answers.get(raw)) is not None:
            if answer.secret:
                await self._hand_over_secret(context, "ResolveLLMConfig", *answer.secret)
            return answer.data
        request = await _parse(pb.ResolveLLMConfigRequest, raw, context)
        if request.include_secrets:
            await _authorize_secrets(context, "include_secrets")
        response = await snapshot.servicer.ResolveLLMConfig(request, context)
        response.warnings.extend(snapshot.warnings)
        secret = None
        if request.include_secrets and response.config.api_key:
            secret = (response.config.provider, response.config.api_key_hint)
            await self._hand_over_secret(context, "ResolveLLMConfig", *secret)
        answer = Answer(response.SerializeToString(), secret)
        snapshot.answers.put(raw, answer)
        return answer.data

    # -- CheckProviderHealth ------------------------------------------------------------

    async def check_health(self, raw: bytes, context: _Context) -> bytes:
        request = await _parse(pb.CheckProviderHealthRequest, raw, context)
        snapshot = self.state.current
        response = await snapshot.servicer.CheckProviderHealth(request, context)
        return response.SerializeToString()

    # -- WatchLLMConfig -----------------------------------------------------------------

    async def watch(self, raw: bytes, context: _Context) -> AsyncIterator[bytes]:
        request = await _parse(pb.WatchLLMConfigRequest, raw, context)
        caller = await _authorize_secrets(context, "include_secrets") \
            if request.include_secrets else None
        version = self.state.version
        event = _event(self.state.current, request)
        last = event.SerializeToString()
        if not (event.HasField("config") and request.known_revision
                and event.config.revision == request.known_revision):
            yield self._sent(event, last, caller, context)
        while True:
            version = await self.state.changed(version)
            if self.state.closed:
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    "the server is shutting down; reconnect with "
                                    "known_revision (the llmconfig client does)")
            event = _event(self.state.current, request)
            data = event.SerializeToString()
            if data != last:  # a reload that leaves the caller's resolution alone sends nothing
                last = data
                yield self._sent(event, data, caller, context)

    def _sent(self, event: pb.WatchLLMConfigEvent, data: bytes, caller: Caller | None,
              context: _Context) -> bytes:
        if caller is not None and event.HasField("config") and event.config.config.api_key:
            audit_secret(caller, context.peer(), "WatchLLMConfig", event.config.config.provider,
                         event.config.config.api_key_hint)
            self.on_secret(caller.name)
        return data

    async def _hand_over_secret(self, context: _Context, rpc: str, provider: str,
                                key_hint: str) -> None:
        """Check the caller may have the key (again, for a remembered answer) and audit it."""
        caller = await _authorize_secrets(context, "include_secrets")
        audit_secret(caller, context.peer(), rpc, provider, key_hint)
        self.on_secret(caller.name)

    # -- registration --------------------------------------------------------------------

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """One handler per RPC of the proto's service; raises if the proto has one we lack."""
        implemented: dict[str, grpc.RpcMethodHandler] = {
            "ResolveLLMConfig": grpc.unary_unary_rpc_method_handler(self.resolve),
            "CheckProviderHealth": grpc.unary_unary_rpc_method_handler(self.check_health),
            "WatchLLMConfig": grpc.unary_stream_rpc_method_handler(self.watch),
        }
        declared = {method.name for method in _DESCRIPTOR.methods}
        if missing := sorted(declared - set(implemented)):
            raise NotImplementedError(f"{SERVICE_NAME} declares {', '.join(missing)}, which "
                                      "the server does not implement")
        return implemented

    def add_to(self, server: grpc.aio.Server) -> None:
        # Bytes in, bytes out: requests are parsed by the handlers, so bad bytes are an
        # INVALID_ARGUMENT like any other bad input, and cached answers skip protobuf.
        handlers = self.handlers()
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)


def _event(snapshot: Snapshot, request: pb.WatchLLMConfigRequest) -> pb.WatchLLMConfigEvent:
    """What ResolveLLMConfig would answer for `request` on `snapshot`, as a watch event."""
    try:
        resolution = snapshot.resolver.resolve(request.mode, overrides_of(request))
    except ConfigError as exc:
        return pb.WatchLLMConfigEvent(error=_status_message(config_error_status(exc)))
    response = response_of(resolution, include_secrets=request.include_secrets)
    response.warnings.extend(snapshot.warnings)
    return pb.WatchLLMConfigEvent(config=response)


def _status_message(status: grpc.Status) -> status_pb2.Status:
    """The google.rpc.Status a unary call would carry in its trailers."""
    details = dict(status.trailing_metadata)[_STATUS_DETAILS_KEY]
    return status_pb2.Status.FromString(details)


async def _parse(message: Any, raw: bytes, context: _Context) -> Any:
    try:
        return message.FromString(raw)
    except DecodeError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request is not a valid {message.DESCRIPTOR.full_name}")


async def _authorize_secrets(context: _Context, what: str) -> Caller:
    try:
        return require_secrets(what)
    except Denied as exc:
        await context.abort(exc.status.code, exc.status.details, exc.status.trailing_metadata)
        raise AssertionError("context.abort returned") from None  # it raises
