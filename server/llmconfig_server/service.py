"""llmconfig.v1.LLMConfigService on the server's state: every call reads the current snapshot
once and is answered from it alone; watch streams follow the state from snapshot to snapshot,
counted against --max-watch-streams, sharing each snapshot's events with the streams that
asked the same, and authorized again at every swap (a revoked token's stream ends then).

The handlers are registered from the service's descriptor, so an RPC added to the proto and
not implemented here stops the server at start instead of being silently absent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig_server.access.guard import (
    TRUSTED,
    Caller,
    Denied,
    audit_secret,
    authorize_again,
    check_transport,
    current_caller,
    require_secrets,
)
from llmconfig_server.access.unix_peers import UnixPeers
from llmconfig_server.health.checker import ProbeRequestInvalid, ProbesBusy, ProbeTargetDenied
from llmconfig_server.live.answers import Answer, Event
from llmconfig_server.live.state import ServerState, Snapshot
from llmconfig_server.resolve import network
from llmconfig_server.resolve.domain import ConfigError, Violation
from llmconfig_server.resolve.parsing import request_control_character
from llmconfig_server.rpc.convert import (
    SERVICE_NAME,
    health_response_of,
    models_response_of,
    overrides_of,
    response_of,
    runner_response_of,
)
from llmconfig_server.rpc.errors import (
    abort_with,
    bad_request_status,
    config_error_status,
    denied_status,
    exhausted_status,
)
from llmconfig_server.rpc.streams import WatchBudget, is_anonymous
from llmconfig_server.sources.layers import request_mode
from llmconfig_server.support.redact import has_credentials

if TYPE_CHECKING:
    from llmconfig_server.health.model_lists import Refresher

log = logging.getLogger(__name__)

_DESCRIPTOR: Final = pb.DESCRIPTOR.services_by_name["LLMConfigService"]
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
# WatchLLMConfig's initial metadata: the revision of the caller's resolution when the stream
# opened ("" when it is an error), sent before any event.
REVISION_HEADER: Final = "llmconfig-revision"

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# With the UNAVAILABLE of a stopping server: come back in a second (gRPC's retries and the
# llmconfig client's watch honour it), when this server is gone and its successor is up —
# not into the last moments of this one, where a call that reaches the transport as it stops
# is cut off as CANCELLED.
SHUTDOWN_PUSHBACK: Final = (("grpc-retry-pushback-ms", "1000"),)


class LLMConfigService:
    def __init__(self, state: ServerState, budget: WatchBudget | None = None) -> None:
        self.state = state
        options = state.inputs.options
        self.container_host = options.container_host
        self.trust_loopback = options.access.trust_loopback
        self.budget = budget or WatchBudget()
        self.unix_peers = UnixPeers(str(item.path) for item in options.listeners
                                    if item.path is not None)
        # A hook for metrics: called with the token name each time a key is handed out.
        self.on_secret: Callable[[str], None] = lambda token: None
        # Lists the providers' models on request (set by app.start).
        self.refresher: Refresher | None = None

    async def _current(self, context: _Context) -> Snapshot:
        """The snapshot a new call is answered from; a stopping server refuses the call
        (UNAVAILABLE with pushback: come back to its successor)."""
        if self.state.closed:
            await _refuse_new_call(context)
        return self.state.current

    # -- ResolveLLMConfig: bytes in, bytes out, answered from the snapshot's cache --------

    async def resolve(self, raw: bytes, context: _Context) -> bytes:
        snapshot = await self._current(context)
        if (answer := snapshot.answers.get(raw)) is not None:
            if answer.secret:
                await self._hand_over_secret(context, "ResolveLLMConfig", *answer.secret)
            return answer.data
        request = await _parse(pb.ResolveLLMConfigRequest, raw, context)
        caller = await self._secrets_caller(request, context)
        response = await _answered(context, self._llm_response, snapshot, request)
        secret = None
        if caller is not None and (secret := secret_of(response)) is not None:
            await self._hand_over(caller, context, "ResolveLLMConfig", *secret)
        answer = Answer(response.SerializeToString(), secret)
        snapshot.answers.put(raw, answer)
        return answer.data

    # -- CheckProviderHealth ------------------------------------------------------------

    async def check_health(self, raw: bytes, context: _Context) -> bytes:
        snapshot = await self._current(context)
        # The caller's scope was checked before this handler ran (AccessGuard): a remembered
        # answer goes only where the same request would be answered uncached.
        if (data := snapshot.health.answer(raw)) is not None:
            return data
        request = await _parse(pb.CheckProviderHealthRequest, raw, context)
        if request.base_url:  # a container's view of a configured URL is checked as that URL
            request.base_url = network.server_view(request.base_url, self.container_host,
                                                   snapshot.health.allowed_targets)
        try:
            report = await snapshot.health.check(
                provider=request.provider, base_url=request.base_url, model=request.model,
                mode=request.mode, refresh=request.refresh,
                time_remaining=context.time_remaining(),
                answer_key=None if request.refresh else raw)
        except ConfigError as exc:
            await abort_with(context, config_error_status(exc))
        except ProbeTargetDenied as exc:
            await abort_with(context, denied_status(str(exc), "PROBE_TARGET_NOT_ALLOWED"))
        except ProbeRequestInvalid as exc:
            await abort_with(context, bad_request_status(exc.field, exc.reason, exc.message))
        except ProbesBusy as exc:
            await abort_with(context, exhausted_status(str(exc), "TOO_MANY_CHECKS_IN_FLIGHT"))
        return health_response_of(report).SerializeToString()

    # -- ResolveRunnerConfig ------------------------------------------------------------

    async def resolve_runner(self, raw: bytes, context: _Context) -> bytes:
        snapshot = await self._current(context)
        request = await _parse(pb.ResolveRunnerConfigRequest, raw, context)
        caller = await self._secrets_caller(request, context)
        response = await _answered(context, self._runner_response, snapshot, request)
        if caller is not None:
            config = response.config
            secrets = [(provider, hint) for provider, hint, present in (
                (response.llm.config.provider, response.llm.config.api_key_hint,
                 response.llm.config.api_key_present),
                ("stigmer-backend", config.backend.api_key_hint, config.backend.api_key_present),
                ("daytona", config.sandbox.daytona_api_key_hint,
                 config.sandbox.daytona_api_key_present),
                ("redis", "", config.redis.password_present)) if present]
            for provider, hint in secrets:  # the transport is the same for all: one refuses
                await self._hand_over(caller, context, "ResolveRunnerConfig", provider, hint)
        return response.SerializeToString()

    def _runner_response(self, snapshot: Snapshot, request: pb.ResolveRunnerConfigRequest,
                         ) -> pb.ResolveRunnerConfigResponse:
        """The runner's answer, or ConfigError listing every problem of its runner and LLM
        parts together (the request's own problems alone, first)."""
        net = network.parse_network(request.network)
        problems: list[Violation] = []
        llm = runner_resolution = None
        try:
            llm = self._llm_response(snapshot, request, overrides_field="llm_overrides")
        except ConfigError as exc:
            if exc.caused_by_request:
                raise
            problems += exc.violations
        try:
            runner_resolution = snapshot.resolver.resolve_runner(
                request.mode, request.session_id, net, self.container_host)
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

    # -- ListModels -----------------------------------------------------------------------

    async def list_models(self, raw: bytes, context: _Context) -> bytes:
        await self._current(context)
        request = await _parse(pb.ListModelsRequest, raw, context)
        catalog = self.state.current.resolver.catalog
        if request.provider and request.provider not in catalog.providers:
            known = catalog.known_providers_text()
            await abort_with(context, bad_request_status(
                "provider", "UNKNOWN_PROVIDER",
                f"provider {request.provider[:64]!r} is not known; use one of: {known}"))
        try:
            mode = request_mode(request.mode) if request.mode else ""
        except ConfigError as exc:
            await abort_with(context, config_error_status(exc))
        providers = [request.provider] if request.provider else list(catalog.names)
        if request.refresh and self.refresher is not None:
            remaining = context.time_remaining()
            # Answer before the caller's deadline: listing gets most of it, never all of it.
            budget = None if remaining is None else max(remaining * 0.75 - 0.1, 0.0)
            await self.refresher.refresh(providers, budget, "ListModels refresh")
        return models_response_of(self.state.current, providers, mode).SerializeToString()

    # -- WatchLLMConfig -----------------------------------------------------------------

    async def watch(self, raw: bytes, context: _Context) -> AsyncIterator[bytes]:
        await self._current(context)
        request = await _parse(pb.WatchLLMConfigRequest, raw, context)
        caller = await self._authorize_secrets(context) if request.include_secrets \
            else current_caller()
        anonymous = is_anonymous(context.peer(), has_token=caller is not TRUSTED)
        if (refused := self.budget.acquire(anonymous)) is not None:
            await abort_with(context, refused)
        try:
            question = _question(raw, request)
            version = self.state.version
            event = self._shared_event(self.state.current, question, request)
            # The stream is open: say so, with the revision it starts from, before any event —
            # a client that resumed with the revision it knows learns at once that it is
            # current, although no event comes (docs/live.md).
            await context.send_initial_metadata(((REVISION_HEADER, event.revision),))
            if not (event.revision and event.revision == request.known_revision):
                yield await self._sent(event, caller, context)
            last = event.data
            while True:
                version = await self.state.changed(version)
                if self.state.closed:
                    await context.abort(grpc.StatusCode.UNAVAILABLE,
                                        "the server is shutting down; reconnect with "
                                        "known_revision (the llmconfig client does)",
                                        SHUTDOWN_PUSHBACK)
                # Whether or not this swap changes the event: a token removed or descoped
                # now ends the stream now.
                caller = await self._authorize_again(caller, request, context)
                event = self._shared_event(self.state.current, question, request)
                if event.data != last:  # a reload that leaves this resolution alone: nothing
                    last = event.data
                    yield await self._sent(event, caller, context)
        finally:
            self.budget.release(anonymous)
            self.state.done_waiting()

    def _shared_event(self, snapshot: Snapshot, question: bytes,
                      request: pb.WatchLLMConfigRequest) -> Event:
        """The event for `question` on `snapshot`: computed by the first stream that asks,
        then the same bytes for every other stream that asks the same."""
        event = snapshot.events.get(question)
        if event is None:
            event = self._event(snapshot, request)
            snapshot.events.put(question, event)
        return event

    def _event(self, snapshot: Snapshot, request: pb.WatchLLMConfigRequest) -> Event:
        """What ResolveLLMConfig would answer for `request` on `snapshot`, as a watch event."""
        try:
            response = self._llm_response(snapshot, request)
        except ConfigError as exc:
            error = pb.WatchLLMConfigEvent(error=_status_message(config_error_status(exc)))
            return Event(error.SerializeToString(), "")
        return Event(pb.WatchLLMConfigEvent(config=response).SerializeToString(),
                     response.revision, secret_of(response) if request.include_secrets else None)

    async def _sent(self, event: Event, caller: Caller, context: _Context) -> bytes:
        if event.secret is not None:
            await self._hand_over(caller, context, "WatchLLMConfig", *event.secret)
        return event.data

    async def _authorize_again(self, caller: Caller, request: pb.WatchLLMConfigRequest,
                               context: _Context) -> Caller:
        """The stream's caller as the token table of this moment sees it; the stream ends
        UNAUTHENTICATED / PERMISSION_DENIED when its token was removed or descoped."""
        try:
            caller = authorize_again(caller)
            if request.include_secrets:
                caller = require_secrets(caller=caller)
        except Denied as exc:
            await abort_with(context, exc.status)
        return caller

    async def _hand_over_secret(self, context: _Context, rpc: str, provider: str,
                                key_hint: str) -> None:
        """Check the caller may have the key (again, for a remembered answer) and audit it."""
        caller = await self._authorize_secrets(context)
        await self._hand_over(caller, context, rpc, provider, key_hint)

    async def _secrets_caller(self, request: Any, context: _Context) -> Caller | None:
        """The caller allowed the keys a request asks for (None when it asks for none)."""
        return await self._authorize_secrets(context) if request.include_secrets else None

    async def _authorize_secrets(self, context: _Context) -> Caller:
        try:
            return require_secrets()
        except Denied as exc:
            await abort_with(context, exc.status)

    async def _hand_over(self, caller: Caller, context: _Context, rpc: str, provider: str,
                         key_hint: str) -> None:
        """An answer carrying a secret goes to `caller` over this transport: check, audit."""
        try:
            check_transport(caller, context.peer(), self.trust_loopback)
        except Denied as exc:
            await abort_with(context, exc.status)
        self._audit(caller, context, rpc, provider, key_hint)

    def _audit(self, caller: Caller, context: _Context, rpc: str, provider: str,
               key_hint: str) -> None:
        peer = context.peer()
        uid = self.unix_peers.describe() if peer.startswith("unix:") else None
        audit_secret(caller, peer, rpc, provider, key_hint, uid)
        self.on_secret(caller.name)

    # -- registration --------------------------------------------------------------------

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """One handler per RPC of the proto's service; raises if the proto has one we lack."""
        implemented: dict[str, grpc.RpcMethodHandler] = {
            "ResolveLLMConfig": grpc.unary_unary_rpc_method_handler(self.resolve),
            "CheckProviderHealth": grpc.unary_unary_rpc_method_handler(self.check_health),
            "WatchLLMConfig": grpc.unary_stream_rpc_method_handler(self.watch),
            "ResolveRunnerConfig": grpc.unary_unary_rpc_method_handler(self.resolve_runner),
            "ListModels": grpc.unary_unary_rpc_method_handler(self.list_models),
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


R = TypeVar("R")


async def _answered(context: _Context, answer: Callable[[Snapshot, Any], R], snapshot: Snapshot,
                   request: Any) -> R:
    """`answer(snapshot, request)`, a ConfigError turned into its rich status."""
    try:
        return answer(snapshot, request)
    except ConfigError as exc:
        await abort_with(context, config_error_status(exc))


def _status_message(status: grpc.Status) -> status_pb2.Status:
    """The google.rpc.Status a unary call would carry in its trailers."""
    details = dict(status.trailing_metadata)[_STATUS_DETAILS_KEY]
    return status_pb2.Status.FromString(details)


async def _parse(message: Any, raw: bytes, context: _Context) -> Any:
    """The request, once it is one and none of its strings holds a control or format
    character (INVALID_ARGUMENT naming the field, whichever RPC and field)."""
    try:
        request = message.FromString(raw)
    except DecodeError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request is not a valid {message.DESCRIPTOR.full_name}")
    if (violation := request_control_character(request)) is not None:
        await abort_with(context, config_error_status(ConfigError([violation])))
    return request


def secret_of(response: pb.ResolveLLMConfigResponse) -> tuple[str, str] | None:
    """(provider, key hint) when an answer made with include_secrets carries a secret: the
    key, or credentials inside its URLs."""
    config = response.config
    if config.api_key:
        return config.provider, config.api_key_hint
    if has_credentials(config.base_url) or has_credentials(config.openai_base_url):
        return config.provider, "(URL credentials)"
    return None


def _question(raw: bytes, request: pb.WatchLLMConfigRequest) -> bytes:
    """What a watch request asks, whatever revision its caller knows: streams asking the same
    share one event per snapshot."""
    if not request.known_revision:
        return raw
    asked = pb.WatchLLMConfigRequest()
    asked.CopyFrom(request)
    asked.known_revision = ""
    return asked.SerializeToString(deterministic=True)
