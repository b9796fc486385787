"""llmconfig.v1.LLMConfigService on the server's state: every call reads the current snapshot
once and is answered from it alone; watch streams follow the state from snapshot to snapshot.

The handlers are registered from the service's descriptor, so an RPC added to the proto and
not implemented here stops the server at start instead of being silently absent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, NoReturn, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from llmconfig.v1 import llmconfig_pb2 as pb

from . import network, runner
from .access import Caller, Denied, audit_secret, require_secrets
from .answers import Answer
from .domain import ConfigError, Origin, Source, Violation
from .errors import abort_with, config_error_status
from .servicer import SERVICE_NAME, overrides_of, response_of, runner_response_of
from .sources import request_mode
from .state import ServerState, Snapshot

log = logging.getLogger(__name__)

_DESCRIPTOR: Final = pb.DESCRIPTOR.services_by_name["LLMConfigService"]
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# With the UNAVAILABLE of a stopping server: come back in a second (gRPC's retries and the
# llmconfig client's watch honour it), when this server is gone and its successor is up —
# not into the last moments of this one, where a call that reaches the transport as it stops
# is cut off as CANCELLED.
SHUTDOWN_PUSHBACK: Final = (("grpc-retry-pushback-ms", "1000"),)


class LLMConfigService:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.container_host = state.inputs.options.container_host
        # A hook for metrics: called with the token name each time a key is handed out.
        self.on_secret: Callable[[str], None] = lambda token: None

    # -- ResolveLLMConfig: bytes in, bytes out, answered from the snapshot's cache --------

    async def resolve(self, raw: bytes, context: _Context) -> bytes:
        if self.state.closed:
            await _refuse_new_call(context)
        snapshot = self.state.current
        if (answer := snapshot.answers.get(raw)) is not None:
            if answer.secret:
                await self._hand_over_secret(context, "ResolveLLMConfig", *answer.secret)
            return answer.data
        request = await _parse(pb.ResolveLLMConfigRequest, raw, context)
        caller = await _authorize_secrets(context, "include_secrets") \
            if request.include_secrets else None
        try:
            response = self._llm_response(snapshot, request)
        except ConfigError as exc:
            await abort_with(context, config_error_status(exc))
        secret = None
        if caller is not None and response.config.api_key:
            secret = (response.config.provider, response.config.api_key_hint)
            self._audit(caller, context, "ResolveLLMConfig", *secret)
        answer = Answer(response.SerializeToString(), secret)
        snapshot.answers.put(raw, answer)
        return answer.data

    # -- CheckProviderHealth ------------------------------------------------------------

    async def check_health(self, raw: bytes, context: _Context) -> bytes:
        if self.state.closed:
            await _refuse_new_call(context)
        request = await _parse(pb.CheckProviderHealthRequest, raw, context)
        snapshot = self.state.current
        if request.base_url:  # a container's view of a configured URL is checked as that URL
            request.base_url = network.server_view(request.base_url, self.container_host,
                                                   snapshot.health.allowed_targets)
        response = await snapshot.servicer.CheckProviderHealth(request, context)
        return response.SerializeToString()

    # -- ResolveRunnerConfig ------------------------------------------------------------

    async def resolve_runner(self, raw: bytes, context: _Context) -> bytes:
        if self.state.closed:
            await _refuse_new_call(context)
        snapshot = self.state.current
        request = await _parse(pb.ResolveRunnerConfigRequest, raw, context)
        caller = await _authorize_secrets(context, "include_secrets") \
            if request.include_secrets else None
        try:
            response = self._runner_response(snapshot, request)
        except ConfigError as exc:
            await abort_with(context, config_error_status(exc))
        if caller is not None:
            config = response.config
            for provider, hint, present in (
                    (response.llm.config.provider, response.llm.config.api_key_hint,
                     response.llm.config.api_key_present),
                    ("stigmer-backend", config.backend.api_key_hint,
                     config.backend.api_key_present),
                    ("daytona", config.sandbox.daytona_api_key_hint,
                     config.sandbox.daytona_api_key_present),
                    ("redis", "", config.redis.password_present)):
                if present:
                    self._audit(caller, context, "ResolveRunnerConfig", provider, hint)
        return response.SerializeToString()

    def _runner_response(self, snapshot: Snapshot, request: pb.ResolveRunnerConfigRequest,
                         ) -> pb.ResolveRunnerConfigResponse:
        """The runner's answer, or ConfigError listing every problem of its runner and LLM
        parts together (the request's own problems alone, first)."""
        net = network.parse_network(request.network)
        mode = request_mode(request.mode) if request.mode else snapshot.resolver.default_mode
        mode_origin = Origin("mode", Source.REQUEST, "request mode") if request.mode else \
            Origin("mode", snapshot.resolver.sources.mode.source,
                   snapshot.resolver.sources.mode.detail)
        problems: list[Violation] = []
        llm = runner_resolution = None
        try:
            llm = self._llm_response(snapshot, request, overrides_field="llm_overrides")
        except ConfigError as exc:
            if exc.caused_by_request:
                raise
            problems += exc.violations
        try:
            runner_resolution = runner.resolve(snapshot.runner, mode, mode_origin,
                                               request.session_id, net, self.container_host)
        except ConfigError as exc:
            if exc.caused_by_request:
                raise
            problems += exc.violations
        if problems:
            raise ConfigError(problems)
        assert llm is not None and runner_resolution is not None
        response = runner_response_of(runner_resolution, include_secrets=request.include_secrets)
        response.llm.CopyFrom(llm)
        response.warnings.extend(snapshot.warnings)
        response.revision = hashlib.sha256(
            f"{runner_resolution.revision}\x1f{llm.revision}".encode()).hexdigest()[:12]
        return response

    def _llm_response(self, snapshot: Snapshot, request: Any,
                      overrides_field: str = "overrides") -> pb.ResolveLLMConfigResponse:
        """What ResolveLLMConfig answers `request` on `snapshot` (with the snapshot's
        warnings), as the caller's network sees it; raises ConfigError."""
        net = network.parse_network(request.network)
        overrides = overrides_of(request, overrides_field)
        resolution = snapshot.resolver.resolve(request.mode, overrides)
        if net == network.DOCKER:
            resolution = network.resolution_for_container(resolution, self.container_host)
        response = response_of(resolution, include_secrets=request.include_secrets)
        response.warnings.extend(snapshot.warnings)
        return response

    # -- WatchLLMConfig -----------------------------------------------------------------

    async def watch(self, raw: bytes, context: _Context) -> AsyncIterator[bytes]:
        if self.state.closed:
            await _refuse_new_call(context)
        request = await _parse(pb.WatchLLMConfigRequest, raw, context)
        caller = await _authorize_secrets(context, "include_secrets") \
            if request.include_secrets else None
        version = self.state.version
        event = self._event(self.state.current, request)
        last = event.SerializeToString()
        if not (event.HasField("config") and request.known_revision
                and event.config.revision == request.known_revision):
            yield self._sent(event, last, caller, context)
        while True:
            version = await self.state.changed(version)
            if self.state.closed:
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    "the server is shutting down; reconnect with "
                                    "known_revision (the llmconfig client does)",
                                    SHUTDOWN_PUSHBACK)
            event = self._event(self.state.current, request)
            data = event.SerializeToString()
            if data != last:  # a reload that leaves the caller's resolution alone sends nothing
                last = data
                yield self._sent(event, data, caller, context)

    def _event(self, snapshot: Snapshot, request: pb.WatchLLMConfigRequest,
               ) -> pb.WatchLLMConfigEvent:
        """What ResolveLLMConfig would answer for `request` on `snapshot`, as a watch event."""
        try:
            return pb.WatchLLMConfigEvent(config=self._llm_response(snapshot, request))
        except ConfigError as exc:
            return pb.WatchLLMConfigEvent(error=_status_message(config_error_status(exc)))

    def _sent(self, event: pb.WatchLLMConfigEvent, data: bytes, caller: Caller | None,
              context: _Context) -> bytes:
        if caller is not None and event.HasField("config") and event.config.config.api_key:
            self._audit(caller, context, "WatchLLMConfig", event.config.config.provider,
                        event.config.config.api_key_hint)
        return data

    async def _hand_over_secret(self, context: _Context, rpc: str, provider: str,
                                key_hint: str) -> None:
        """Check the caller may have the key (again, for a remembered answer) and audit it."""
        caller = await _authorize_secrets(context, "include_secrets")
        self._audit(caller, context, rpc, provider, key_hint)

    def _audit(self, caller: Caller, context: _Context, rpc: str, provider: str,
               key_hint: str) -> None:
        audit_secret(caller, context.peer(), rpc, provider, key_hint)
        self.on_secret(caller.name)

    # -- registration --------------------------------------------------------------------

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """One handler per RPC of the proto's service; raises if the proto has one we lack."""
        implemented: dict[str, grpc.RpcMethodHandler] = {
            "ResolveLLMConfig": grpc.unary_unary_rpc_method_handler(self.resolve),
            "CheckProviderHealth": grpc.unary_unary_rpc_method_handler(self.check_health),
            "WatchLLMConfig": grpc.unary_stream_rpc_method_handler(self.watch),
            "ResolveRunnerConfig": grpc.unary_unary_rpc_method_handler(self.resolve_runner),
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


async def _refuse_new_call(context: _Context) -> NoReturn:
    """Once the server is stopping, new calls are answered UNAVAILABLE — which clients retry,
    elsewhere or after the restart — instead of being cut off as CANCELLED by the transport
    when it stops. (Health and reflection still answer: NOT_SERVING.)"""
    await context.abort(grpc.StatusCode.UNAVAILABLE,
                        "the server is shutting down; retry (the llmconfig client does)",
                        SHUTDOWN_PUSHBACK)
    raise AssertionError("context.abort returned")  # it raises


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
        await abort_with(context, exc.status)
