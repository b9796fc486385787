"""`Client` (blocking) and `AsyncClient` (asyncio): one channel each; use them as context
managers. Every non-OK status is raised as a typed `LLMConfigError`."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import grpc

from ._channel import (
    ANSWERS,
    CHANNEL_OPTIONS,
    DEFAULT_TIMEOUT,
    check_cleartext,
    network_or_default,
    pushback,
    security_from,
    target_or_default,
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
from .v1 import llmconfig_pb2_grpc as pb_grpc


class _Base:
    """`target` (`host:port` or `unix:PATH`) defaults to STIGMER_LLMCONFIG_TARGET, else
    127.0.0.1:50061; `timeout` (seconds) is the default deadline of every call.

    `token` (else `token_file`, else STIGMER_LLMCONFIG_TOKEN / STIGMER_LLMCONFIG_TOKEN_FILE) is
    sent as a bearer token. `ca_file` (else STIGMER_LLMCONFIG_CA_FILE) turns on TLS, verifying
    the server against that CA; `cert_file` and `key_file` (else STIGMER_LLMCONFIG_CERT_FILE /
    _KEY_FILE) present a client certificate to a server that requires mTLS. A token is not sent
    in cleartext to a target beyond this machine (ValueError) unless `insecure=True` (else
    STIGMER_LLMCONFIG_INSECURE=1) says the network in between is trusted.
    """

    def __init__(self, target: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 token: str | None = None, token_file: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, insecure: bool | None = None) -> None:
        self.target = target_or_default(target)
        self.timeout = timeout
        security = security_from(token, token_file, ca_file, cert_file, key_file)
        check_cleartext(self.target, security, insecure)
        self.tls = security.ca is not None
        self._metadata = security.metadata
        self._channel = self._open(self.target, security.channel_credentials())
        self.last_model_warnings: tuple[str, ...] = ()
        self._stub = pb_grpc.LLMConfigServiceStub(self._channel)

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None) -> Any:
        raise NotImplementedError


class Client(_Base):
    """Blocking client of llmconfig.v1.LLMConfigService."""

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
        if credentials is not None:
            return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)

    def resolve(
        self,
        mode: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        include_secrets: bool = False,
        network: str | None = None,
        timeout: float | None = None,
    ) -> Resolved:
        """The configuration for a run; the keyword arguments are the run's overrides.
        `network="docker"` (default: STIGMER_LLMCONFIG_NETWORK) asks for endpoints as a
        container on the server's host reaches them."""
        request = resolve_request(mode, {
            "provider": provider, "model": model, "base_url": base_url, "api_key": api_key,
            "max_tokens": max_tokens, "temperature": temperature,
        }, include_secrets, network_or_default(network))
        return resolved_from_proto(self._call(self._stub.ResolveLLMConfig, request, timeout))

    def resolve_runner(
        self,
        mode: str | None = None,
        *,
        session_id: str | None = None,
        include_secrets: bool = False,
        network: str | None = None,
        timeout: float | None = None,
        **llm_overrides: Any,
    ) -> RunnerResolved:
        """Everything a runner reads — Temporal, backend, sandbox, Redis — and the mode's LLM
        config (`llm_overrides` as `resolve` takes them). `session_id` gives the session's own
        sandbox folder; secrets only with `include_secrets`."""
        request = runner_request(mode, session_id, llm_overrides, include_secrets,
                                 network_or_default(network))
        return runner_from_proto(self._call(self._stub.ResolveRunnerConfig, request, timeout))

    def check_health(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        mode: str | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> Health:
        """Whether the provider (default: as resolved for the mode) is usable. Spends no tokens."""
        request = health_request(provider, model, base_url, mode, refresh)
        return health_from_proto(self._call(self._stub.CheckProviderHealth, request, timeout))

    def list_models(
        self,
        provider: str | None = None,
        *,
        mode: str | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> tuple[ModelInfo, ...]:
        """The models the catalog and the providers know (default: every provider's), with
        status, limits, retirement and availability at the mode's base URL. `refresh` asks the
        providers for their lists now (zero tokens). Warnings (a provider that could not be
        listed) are in `last_model_warnings`."""
        response = self._call(self._stub.ListModels, models_request(provider, mode, refresh),
                              timeout)
        models, self.last_model_warnings = models_from_proto(response)
        return models

    def watch(
        self,
        mode: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        include_secrets: bool = False,
        known_revision: str = "",
        network: str | None = None,
        unreachable_after: float | None = None,
    ) -> Iterator[Change]:
        """The current resolution (unless it is `known_revision`), then one `Change` each time
        it changes. Resumes after any end of the stream it did not cause (a restart, a broken
        connection, a server at its limit), with backoff, the server's pushback and the last
        revision seen, so nothing is missed and nothing repeated; raises the typed error of an
        answer about the request itself (invalid, unauthenticated, denied, …). With
        `unreachable_after`, raises ServiceUnavailable once the service cannot be reached for
        that many seconds. Stop by leaving the loop."""
        overrides = {"provider": provider, "model": model, "base_url": base_url,
                     "api_key": api_key, "max_tokens": max_tokens, "temperature": temperature}
        backoff = _Backoff()
        while True:
            if unreachable_after is not None:
                try:
                    grpc.channel_ready_future(self._channel).result(timeout=unreachable_after)
                except grpc.FutureTimeoutError:
                    raise _unreachable(self.target, unreachable_after) from None
            request = watch_request(mode, overrides, include_secrets, known_revision,
                                    network_or_default(network))
            call = self._stub.WatchLLMConfig(request, metadata=self._metadata,
                                             wait_for_ready=unreachable_after is None)
            delay = backoff.next()
            try:
                for event in call:
                    backoff.reset()
                    change = change_from_proto(event)
                    known_revision = change.resolved.revision if change.resolved else ""
                    yield change
            except grpc.RpcError as exc:
                if exc.code() in ANSWERS:
                    raise from_rpc_error(exc) from None
                delay = max(delay, pushback(exc))
            finally:
                call.cancel()
            time.sleep(delay)

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout,
                          metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client of llmconfig.v1.LLMConfigService; the same calls as `Client`, awaited."""

    def _open(self, target: str, credentials: grpc.ChannelCredentials | None,
              ) -> grpc.aio.Channel:
        if credentials is not None:
            return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)

    async def resolve(
        self,
        mode: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        include_secrets: bool = False,
        network: str | None = None,
        timeout: float | None = None,
    ) -> Resolved:
        """The configuration for a run; the keyword arguments are the run's overrides.
        `network="docker"` (default: STIGMER_LLMCONFIG_NETWORK) asks for endpoints as a
        container on the server's host reaches them."""
        request = resolve_request(mode, {
            "provider": provider, "model": model, "base_url": base_url, "api_key": api_key,
            "max_tokens": max_tokens, "temperature": temperature,
        }, include_secrets, network_or_default(network))
        return resolved_from_proto(await self._call(self._stub.ResolveLLMConfig, request, timeout))

    async def resolve_runner(
        self,
        mode: str | None = None,
        *,
        session_id: str | None = None,
        include_secrets: bool = False,
        network: str | None = None,
        timeout: float | None = None,
        **llm_overrides: Any,
    ) -> RunnerResolved:
        """As `Client.resolve_runner`, awaited."""
        request = runner_request(mode, session_id, llm_overrides, include_secrets,
                                 network_or_default(network))
        return runner_from_proto(
            await self._call(self._stub.ResolveRunnerConfig, request, timeout))

    async def check_health(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        mode: str | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> Health:
        """Whether the provider (default: as resolved for the mode) is usable. Spends no tokens."""
        request = health_request(provider, model, base_url, mode, refresh)
        return health_from_proto(
            await self._call(self._stub.CheckProviderHealth, request, timeout))

    async def list_models(
        self,
        provider: str | None = None,
        *,
        mode: str | None = None,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> tuple[ModelInfo, ...]:
        """As `Client.list_models`, awaited."""
        response = await self._call(self._stub.ListModels,
                                    models_request(provider, mode, refresh), timeout)
        models, self.last_model_warnings = models_from_proto(response)
        return models

    async def watch(
        self,
        mode: str | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        include_secrets: bool = False,
        known_revision: str = "",
        network: str | None = None,
        unreachable_after: float | None = None,
    ) -> AsyncIterator[Change]:
        """As `Client.watch`, as an async iterator (`async for change in client.watch():`)."""
        overrides = {"provider": provider, "model": model, "base_url": base_url,
                     "api_key": api_key, "max_tokens": max_tokens, "temperature": temperature}
        backoff = _Backoff()
        while True:
            if unreachable_after is not None:
                try:
                    await asyncio.wait_for(self._channel.channel_ready(), unreachable_after)
                except TimeoutError:
                    raise _unreachable(self.target, unreachable_after) from None
            request = watch_request(mode, overrides, include_secrets, known_revision,
                                    network_or_default(network))
            call = self._stub.WatchLLMConfig(request, metadata=self._metadata,
                                             wait_for_ready=unreachable_after is None)
            delay = backoff.next()
            try:
                async for event in call:
                    backoff.reset()
                    change = change_from_proto(event)
                    known_revision = change.resolved.revision if change.resolved else ""
                    yield change
            except grpc.RpcError as exc:
                if exc.code() in ANSWERS:
                    raise from_rpc_error(exc) from None
                delay = max(delay, pushback(exc))
            finally:
                call.cancel()
            await asyncio.sleep(delay)

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout,
                                metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def _unreachable(target: str, seconds: float) -> ServiceUnavailable:
    return ServiceUnavailable(grpc.StatusCode.UNAVAILABLE,
                              f"the llmconfig service at {target} could not be reached for "
                              f"{seconds:g} s")


class _Backoff:
    """Exponential with full jitter, 0.1 s → 5 s, so a fleet of watchers does not reconnect
    in lockstep after a restart."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.current = first, cap, first

    def reset(self) -> None:
        self.current = self.first

    def next(self) -> float:
        delay = random.uniform(0, self.current)
        self.current = min(self.current * 2, self.cap)
        return delay
