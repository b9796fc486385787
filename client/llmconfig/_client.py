"""`Client` (blocking) and `AsyncClient` (asyncio): one channel each; use them as context
managers. Every non-OK status is raised as a typed `LLMConfigError`.

`_BaseClient` holds what the two share, as httpx's BaseClient does: the settings, the request
builders (the six override keywords are spelled once, in `Overrides`) and the watched memory.
The two subclasses only make the calls, blocking or awaited."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, TypedDict, Unpack

import grpc

from ._channel import (
    CHANNEL_OPTIONS,
    DEFAULT_TIMEOUT,
    TLS_REQUIRED,
    check_cleartext,
    network_or_default,
    security_from,
    speaks_tls,
    target_or_default,
    tls_required_message,
)
from ._convert import (
    change_from_proto,
    health_from_proto,
    health_request,
    models_from_proto,
    models_request,
    resolve_request,
    resolved_from_proto,
    runner_from_proto,
    runner_request,
    watch_request,
)
from ._errors import ServiceUnavailable, from_rpc_error
from ._models import Change, Health, ModelInfo, Resolved, RunnerResolved
from ._resume import aevents, events
from ._watched import (
    DEFAULT_MAX_STALENESS,
    DEFAULT_MAX_WATCHED,
    WATCH_CHANNEL_OPTIONS,
    LoopThread,
    Watched,
    watch_from_env,
)
from .v1 import llmconfig_pb2 as pb
from .v1 import llmconfig_pb2_grpc as pb_grpc


class Overrides(TypedDict, total=False):
    """The run's execution config, as keyword arguments: each one given beats the server's."""

    provider: str | None
    model: str | None
    base_url: str | None
    api_key: str | None
    max_tokens: int | None
    temperature: float | None


OVERRIDES: Final = frozenset(Overrides.__annotations__)
_NONE: Final[frozenset[tuple[str, Any]]] = frozenset()
_RESOLVE, _RUNNER = "resolve", "runner"


def _checked(call: str, overrides: Mapping[str, object]) -> dict[str, Any]:
    if unknown := overrides.keys() - OVERRIDES:
        raise TypeError(f"{call}() got an unexpected keyword argument {min(unknown)!r} (the "
                        f"overrides are {', '.join(sorted(OVERRIDES))})")
    return dict(overrides)


class _BaseClient:
    """`target` (`host:port` or `unix:PATH`) defaults to STIGMER_LLMCONFIG_TARGET, else
    127.0.0.1:50061; `timeout` (seconds) is the default deadline of every call.

    `token` (else `token_file`, else STIGMER_LLMCONFIG_TOKEN / STIGMER_LLMCONFIG_TOKEN_FILE) is
    sent as a bearer token. `ca_file` (else STIGMER_LLMCONFIG_CA_FILE) turns on TLS, verifying
    the server against that CA; `cert_file` and `key_file` (else STIGMER_LLMCONFIG_CERT_FILE /
    _KEY_FILE) present a client certificate to a server that requires mTLS. A token is not sent
    in cleartext to a target beyond this machine (ValueError) unless `insecure=True` (else
    STIGMER_LLMCONFIG_INSECURE=1) says the network in between is trusted.

    `watch=True` (else STIGMER_LLMCONFIG_WATCH=1) keeps the answers of `resolve()` and
    `resolve_runner()` in memory, current through one WatchLLMConfig stream per request shape
    (at most `max_watched` of them, least recently used out first): a repeated call is a
    lookup. While a stream is down, answers come from memory marked `stale` for at most
    `max_staleness` seconds, then from the unary RPC again.
    """

    def __init__(self, target: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 token: str | None = None, token_file: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, insecure: bool | None = None,
                 watch: bool | None = None, max_staleness: float = DEFAULT_MAX_STALENESS,
                 max_watched: int = DEFAULT_MAX_WATCHED) -> None:
        self.target = target_or_default(target)
        self.timeout = timeout
        security = security_from(token, token_file, ca_file, cert_file, key_file)
        check_cleartext(self.target, security, insecure)
        self.tls = security.ca is not None
        # Read once, as the target and the token are: a watched call is a lookup, and reading
        # the environment would be most of its cost.
        self._network = network_or_default(None)
        self._metadata = security.metadata
        self._credentials = security.channel_credentials()
        self.watching = watch_from_env(watch)
        self._watched = Watched(self._connect_watch, self._metadata, timeout, max_staleness,
                                max_watched) if self.watching else None
        self._channel = self._open(self.target, self._credentials)
        self.last_model_warnings: tuple[str, ...] = ()
        self._stub = pb_grpc.LLMConfigServiceStub(self._channel)

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None) -> Any:
        raise NotImplementedError

    def _connect_watch(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        """The loop and asyncio stub the watched memory's streams use."""
        raise NotImplementedError

    # -- requests: built here only ---------------------------------------------------------

    def _network_of(self, network: str | None) -> str:
        return self._network if network is None else network

    @staticmethod
    def _resolve_request(mode: str | None, include_secrets: bool, network: str,
                         overrides: Mapping[str, object]) -> pb.ResolveLLMConfigRequest:
        return resolve_request(mode, _checked("resolve", overrides), include_secrets, network)

    @staticmethod
    def _runner_request(mode: str | None, session_id: str | None, include_secrets: bool,
                        network: str, overrides: Mapping[str, object],
                        ) -> pb.ResolveRunnerConfigRequest:
        return runner_request(mode, session_id, _checked("resolve_runner", overrides),
                              include_secrets, network)

    @staticmethod
    def _watch_request(mode: str | None, include_secrets: bool, network: str,
                       overrides: Mapping[str, object], known_revision: str = "",
                       ) -> pb.WatchLLMConfigRequest:
        return watch_request(mode, _checked("watch", overrides), include_secrets,
                             known_revision, network)

    # -- the watched memory -------------------------------------------------------------------

    @staticmethod
    def _shape(kind: str, mode: str | None, include_secrets: bool, network: str,
               overrides: Mapping[str, object], session_id: str | None = None) -> Hashable:
        """What identifies a request: equal shapes are answered alike."""
        return (kind, mode or "", include_secrets, network, session_id or "",
                frozenset(overrides.items()) if overrides else _NONE)

    def _follow_resolve(self, shape: Hashable, mode: str | None, include_secrets: bool,
                        network: str, overrides: Mapping[str, object]) -> None:
        assert self._watched is not None
        self._watched.follow(shape, self._watch_request(mode, include_secrets, network,
                                                        overrides))

    def _follow_runner(self, shape: Hashable, request: pb.ResolveRunnerConfigRequest,
                       mode: str | None, include_secrets: bool, network: str,
                       overrides: Mapping[str, object]) -> None:
        assert self._watched is not None
        # The runner's LLM part has the stream; ResolveRunnerConfig is asked on its events.
        self._watched.follow(shape, self._watch_request(mode, include_secrets, network,
                                                        overrides), request)

    def _watch_channel_options(self) -> tuple[tuple[str, Any], ...]:
        return (*CHANNEL_OPTIONS, *WATCH_CHANNEL_OPTIONS)


class Client(_BaseClient):
    """Blocking client of llmconfig.v1.LLMConfigService. With `watch=True`, its streams run on
    a daemon thread of its own, which `close()` ends."""

    _stop_watching: weakref.finalize[..., Client] | None = None

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
        if credentials is not None:
            return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)

    def _connect_watch(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        assert self._watched is not None
        background = LoopThread()
        channel = background.run(_aio_channel(self.target, self._credentials,
                                              self._watch_channel_options()))
        # Closed by close(), or when the client is dropped unclosed, or at exit: never a
        # thread or a stream left behind.
        self._stop_watching = weakref.finalize(self, _stop_background, background,
                                               self._watched, channel)
        return background.loop, pb_grpc.LLMConfigServiceStub(channel)

    def resolve(self, mode: str | None = None, *, include_secrets: bool = False,
                network: str | None = None, timeout: float | None = None,
                **overrides: Unpack[Overrides]) -> Resolved:
        """The configuration for a run; the keyword arguments (provider, model, base_url,
        api_key, max_tokens, temperature) are the run's overrides. `network="docker"`
        (default: STIGMER_LLMCONFIG_NETWORK, read when the client is made) asks for endpoints
        as a container on the server's host reaches them."""
        network = self._network_of(network)
        given = overrides
        if self._watched is not None:
            shape = self._shape(_RESOLVE, mode, include_secrets, network, given)
            remembered: Resolved | None = self._watched.remembered(shape)
            if remembered is not None:
                return remembered
        request = self._resolve_request(mode, include_secrets, network, given)
        resolved = resolved_from_proto(self._call(self._stub.ResolveLLMConfig, request, timeout))
        if self._watched is not None:
            self._follow_resolve(shape, mode, include_secrets, network, given)
        return resolved

    def resolve_runner(self, mode: str | None = None, *, session_id: str | None = None,
                       include_secrets: bool = False, network: str | None = None,
                       timeout: float | None = None,
                       **llm_overrides: Unpack[Overrides]) -> RunnerResolved:
        """Everything a runner reads — Temporal, backend, sandbox, Redis — and the mode's LLM
        config (`llm_overrides` as `resolve` takes them). `session_id` gives the session's own
        sandbox folder; secrets only with `include_secrets`."""
        network = self._network_of(network)
        given = llm_overrides
        if self._watched is not None:
            shape = self._shape(_RUNNER, mode, include_secrets, network, given, session_id)
            known: RunnerResolved | None = self._watched.remembered(shape)
            if known is not None:
                return known
        request = self._runner_request(mode, session_id, include_secrets, network, given)
        runner = runner_from_proto(self._call(self._stub.ResolveRunnerConfig, request, timeout))
        if self._watched is not None:
            self._follow_runner(shape, request, mode, include_secrets, network, given)
        return runner

    def check_health(self, provider: str | None = None, *, model: str | None = None,
                     base_url: str | None = None, mode: str | None = None,
                     refresh: bool = False, timeout: float | None = None) -> Health:
        """Whether the provider (default: as resolved for the mode) is usable. Spends no tokens."""
        request = health_request(provider, model, base_url, mode, refresh)
        return health_from_proto(self._call(self._stub.CheckProviderHealth, request, timeout))

    def list_models(self, provider: str | None = None, *, mode: str | None = None,
                    refresh: bool = False, timeout: float | None = None,
                    ) -> tuple[ModelInfo, ...]:
        """The models the catalog and the providers know (default: every provider's), with
        status, limits, retirement and availability at the mode's base URL. `refresh` asks the
        providers for their lists now (zero tokens). Warnings (a provider that could not be
        listed) are in `last_model_warnings`."""
        response = self._call(self._stub.ListModels, models_request(provider, mode, refresh),
                              timeout)
        models, self.last_model_warnings = models_from_proto(response)
        return models

    def watch(self, mode: str | None = None, *, include_secrets: bool = False,
              known_revision: str = "", network: str | None = None,
              unreachable_after: float | None = None,
              **overrides: Unpack[Overrides]) -> Iterator[Change]:
        """The current resolution (unless it is `known_revision`), then one `Change` each time
        it changes. Resumes after any end of the stream it did not cause (a restart, a broken
        connection, a server at its limit), with backoff, the server's pushback and the last
        revision seen, so nothing is missed and nothing repeated; raises the typed error of an
        answer about the request itself (invalid, unauthenticated, denied, …). With
        `unreachable_after`, raises ServiceUnavailable once the service cannot be reached for
        that many seconds. Stop by leaving the loop."""
        request = self._watch_request(mode, include_secrets, self._network_of(network),
                                      overrides, known_revision)
        for event in events(self._stub, self._channel, self._metadata, request, self.target,
                            unreachable_after):
            yield change_from_proto(event)

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout,
                          metadata=self._metadata)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if isinstance(error, ServiceUnavailable) and not self.tls and \
                    speaks_tls(self.target):
                raise ServiceUnavailable(error.code, tls_required_message(self.target),
                                         reason=TLS_REQUIRED) from None
            raise error from None

    def close(self) -> None:
        """Close the channel, and with `watch=True` every stream and the thread they run on."""
        if self._watched is not None:
            self._watched.shut()
        if self._stop_watching is not None:
            self._stop_watching()
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


async def _aio_channel(target: str, credentials: grpc.ChannelCredentials | None,
                       options: tuple[tuple[str, Any], ...]) -> grpc.aio.Channel:
    """An asyncio channel, made on the loop that will use it."""
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)


def _stop_background(background: LoopThread, watched: Watched,
                     channel: grpc.aio.Channel) -> None:
    """End a blocking Client's streams, their channel, and the thread they ran on."""
    watched.shut()
    background.stop(watched.aclose, channel.close)


class AsyncClient(_BaseClient):
    """asyncio client of llmconfig.v1.LLMConfigService; the same calls as `Client`, awaited.
    With `watch=True`, its streams are tasks on the loop it is used from."""

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None,
              ) -> grpc.aio.Channel:
        options = self._watch_channel_options() if self.watching else CHANNEL_OPTIONS
        if credentials is not None:
            return grpc.aio.secure_channel(target, credentials, options=options)
        return grpc.aio.insecure_channel(target, options=options)

    def _connect_watch(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        return asyncio.get_running_loop(), self._stub

    async def resolve(self, mode: str | None = None, *, include_secrets: bool = False,
                      network: str | None = None, timeout: float | None = None,
                      **overrides: Unpack[Overrides]) -> Resolved:
        """As `Client.resolve`, awaited."""
        network = self._network_of(network)
        given = overrides
        if self._watched is not None:
            shape = self._shape(_RESOLVE, mode, include_secrets, network, given)
            remembered: Resolved | None = self._watched.remembered(shape)
            if remembered is not None:
                return remembered
        request = self._resolve_request(mode, include_secrets, network, given)
        resolved = resolved_from_proto(
            await self._call(self._stub.ResolveLLMConfig, request, timeout))
        if self._watched is not None:
            self._follow_resolve(shape, mode, include_secrets, network, given)
        return resolved

    async def resolve_runner(self, mode: str | None = None, *, session_id: str | None = None,
                             include_secrets: bool = False, network: str | None = None,
                             timeout: float | None = None,
                             **llm_overrides: Unpack[Overrides]) -> RunnerResolved:
        """As `Client.resolve_runner`, awaited."""
        network = self._network_of(network)
        given = llm_overrides
        if self._watched is not None:
            shape = self._shape(_RUNNER, mode, include_secrets, network, given, session_id)
            known: RunnerResolved | None = self._watched.remembered(shape)
            if known is not None:
                return known
        request = self._runner_request(mode, session_id, include_secrets, network, given)
        runner = runner_from_proto(
            await self._call(self._stub.ResolveRunnerConfig, request, timeout))
        if self._watched is not None:
            self._follow_runner(shape, request, mode, include_secrets, network, given)
        return runner

    async def check_health(self, provider: str | None = None, *, model: str | None = None,
                           base_url: str | None = None, mode: str | None = None,
                           refresh: bool = False, timeout: float | None = None) -> Health:
        """Whether the provider (default: as resolved for the mode) is usable. Spends no tokens."""
        request = health_request(provider, model, base_url, mode, refresh)
        return health_from_proto(
            await self._call(self._stub.CheckProviderHealth, request, timeout))

    async def list_models(self, provider: str | None = None, *, mode: str | None = None,
                          refresh: bool = False, timeout: float | None = None,
                          ) -> tuple[ModelInfo, ...]:
        """As `Client.list_models`, awaited."""
        response = await self._call(self._stub.ListModels,
                                    models_request(provider, mode, refresh), timeout)
        models, self.last_model_warnings = models_from_proto(response)
        return models

    async def watch(self, mode: str | None = None, *, include_secrets: bool = False,
                    known_revision: str = "", network: str | None = None,
                    unreachable_after: float | None = None,
                    **overrides: Unpack[Overrides]) -> AsyncIterator[Change]:
        """As `Client.watch`, as an async iterator (`async for change in client.watch():`)."""
        request = self._watch_request(mode, include_secrets, self._network_of(network),
                                      overrides, known_revision)
        async for event in aevents(self._stub, self._metadata, request, channel=self._channel,
                                   target=self.target, unreachable_after=unreachable_after):
            yield change_from_proto(event)

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout,
                                metadata=self._metadata)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if isinstance(error, ServiceUnavailable) and not self.tls and \
                    await asyncio.to_thread(speaks_tls, self.target):
                raise ServiceUnavailable(error.code, tls_required_message(self.target),
                                         reason=TLS_REQUIRED) from None
            raise error from None

    async def close(self) -> None:
        """Close every stream (with `watch=True`) and the channel."""
        if self._watched is not None:
            self._watched.shut()
            if self._watched.started:
                await self._watched.aclose()
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


# -- chat_model()'s clients ----------------------------------------------------------------

_SHARED: dict[Hashable, Client] = {}
_SHARED_LOCK = threading.Lock()


def shared_client(target: str | None, token: str | None, ca_file: str | None,
                  insecure: bool | None) -> Client:
    """One watched Client per process and settings, for `chat_model()`: a runner calling it
    once per run keeps one stream instead of opening a channel each time. Closed at exit (as
    every watched Client is: see Client._connect_watch)."""
    key = (target_or_default(target), token, ca_file, insecure)
    with _SHARED_LOCK:
        client = _SHARED.get(key)
        if client is None:
            client = _SHARED[key] = Client(target, token=token, ca_file=ca_file,
                                           insecure=insecure, watch=True)
    return client


def close_shared() -> None:
    """Close chat_model()'s watched clients now (tests do, to leave nothing open)."""
    with _SHARED_LOCK:
        clients = list(_SHARED.values())
        _SHARED.clear()
    for client in clients:
        client.close()
