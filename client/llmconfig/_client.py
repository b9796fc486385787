"""`Client` (blocking) and `AsyncClient` (asyncio): one channel each; use them as context
managers. Every non-OK status is raised as a typed `LLMConfigError`."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import grpc

from ._channel import CHANNEL_OPTIONS, DEFAULT_TIMEOUT, target_or_default
from ._convert import health_from_proto, health_request, resolve_request, resolved_from_proto
from ._errors import from_rpc_error
from ._models import Health, Resolved
from .v1 import llmconfig_pb2_grpc as pb_grpc


class _Base:
    """`target` defaults to STIGMER_LLMCONFIG_TARGET, else 127.0.0.1:50061; `timeout` (seconds)
    is the default deadline of every call."""

    def __init__(self, target: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.target = target_or_default(target)
        self.timeout = timeout
        self._channel = self._open(self.target)
        self._stub = pb_grpc.LLMConfigServiceStub(self._channel)

    def _open(self, target: str) -> Any:
        raise NotImplementedError


class Client(_Base):
    """Blocking client of llmconfig.v1.LLMConfigService."""

    def _open(self, target: str) -> grpc.Channel:
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
        timeout: float | None = None,
    ) -> Resolved:
        """The configuration for a run; the keyword arguments are the run's overrides."""
        request = resolve_request(mode, {
            "provider": provider, "model": model, "base_url": base_url, "api_key": api_key,
            "max_tokens": max_tokens, "temperature": temperature,
        }, include_secrets)
        return resolved_from_proto(self._call(self._stub.ResolveLLMConfig, request, timeout))

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

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
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

    def _open(self, target: str) -> grpc.aio.Channel:
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
        timeout: float | None = None,
    ) -> Resolved:
        """The configuration for a run; the keyword arguments are the run's overrides."""
        request = resolve_request(mode, {
            "provider": provider, "model": model, "base_url": base_url, "api_key": api_key,
            "max_tokens": max_tokens, "temperature": temperature,
        }, include_secrets)
        return resolved_from_proto(await self._call(self._stub.ResolveLLMConfig, request, timeout))

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

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
